//! Logical lines -> syntax trees, through the pest grammar in `grammar/crrules.pest`.
//!
//! Each logical line of a file ([`crate::lex`]) is parsed on its own, so one bad line never hides the next:
//! every syntax error of a file is reported. The grammar reads the line's text with its comment,
//! continuations, tabs and carriage returns blanked to spaces byte for byte, so every pest offset plus the
//! line's start is a file offset; tree nodes borrow the file's own text.

use crate::ast::{self, CmpOp};
use crate::diag::{Diagnostic, did_you_mean, list, quoted, shown};
use crate::lex::{self, LogicalLine};
use crate::source::{Source, Span};
use crate::vocab::{Access, ActionWord, EXACT, PeerPlace};
use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use std::borrow::Cow;
use std::sync::LazyLock;

mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/crrules.pest"]
    pub struct RuleParser;
}

use grammar::{Rule as G, RuleParser};

/// The most `not`s one predicate may carry; deeper chains are an error, so that nothing downstream (the
/// validated predicate is a nested box) recurses without bound.
pub const MAX_NOT_DEPTH: usize = 32;

/// The syntax trees of one file and the syntax errors found on the way.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// The rules that parsed, in file order.
    pub rules: Vec<ast::Rule<'a>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses every logical line of `source`.
pub fn parse(source: &Source) -> Parsed<'_> {
    let mut parsed = Parsed::default();
    for logical in lex::logical_lines(&source.text) {
        if let Some(rule) = parse_line(source, logical, &mut parsed.diagnostics) {
            parsed.rules.push(rule);
        }
    }
    parsed
}

/// Parses one logical line; `None` (with diagnostics pushed) when it does not parse.
pub fn parse_line<'a>(
    source: &'a Source,
    logical: LogicalLine<'a>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ast::Rule<'a>> {
    let text: &str = &source.text;
    let base = logical.span.start;
    if let Some(open) = &logical.unterminated {
        let mut help = "close it with `\"`; a string cannot span lines, write `\\n` for a newline".to_owned();
        if text.get(open.clone()).is_some_and(|s| s.contains("\\\"")) {
            help.push_str("; `\\\"` is a quote inside the string, not its end");
        }
        diags.push(
            Diagnostic::error("crrules::parse::unterminated_string", "this string has no closing quote")
                .with_source(source)
                .with_label(open.clone(), "the string starts here and runs to the end of the line")
                .with_help(help),
        );
        return None;
    }
    let mut pairs = match RuleParser::parse(G::rule_line, &logical.grammar) {
        Ok(pairs) => pairs,
        Err(err) => {
            diags.push(syntax_error(source, &logical.grammar, base, &err));
            return None;
        }
    };
    let before = diags.len();
    let rule = Builder { source, base, diags }.rule(pairs.next()?, logical.line, logical.text);
    match rule {
        Some(rule) if diags.len() == before => Some(rule),
        Some(_) => None,
        None => {
            if diags.len() == before {
                diags.push(
                    Diagnostic::error("crrules::parse::internal", "this rule could not be read")
                        .with_source(source)
                        .with_label(logical.span.clone(), "here")
                        .with_help("this is a bug in crrules; please report it with the rule"),
                );
            }
            None
        }
    }
}

/// Turns pest pairs into syntax tree nodes with file-relative spans, decoding strings.
struct Builder<'a, 'd> {
    source: &'a Source,
    base: usize,
    diags: &'d mut Vec<Diagnostic>,
}

impl<'a> Builder<'a, '_> {
    /// A pair's span in the file. (Blanks are explicit in the grammar, so no pair ends with one.)
    fn span(&self, p: &Pair<'_, G>) -> Span {
        self.base + p.as_span().start()..self.base + p.as_span().end()
    }

    /// The file's text at `span` (pairs read a blanked copy of the line, whose words are the file's).
    fn text(&self, span: Span) -> &'a str {
        let text: &'a str = &self.source.text;
        text.get(span).unwrap_or("")
    }

    /// The keyword that starts at `start` (keywords are silent in the grammar: they have no pair).
    fn keyword_span(&self, start: usize) -> Span {
        let rest = self.source.text.get(start..).unwrap_or("");
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        start..start + len
    }

    fn word(&self, p: &Pair<'_, G>) -> ast::Word<'a> {
        let span = self.span(p);
        ast::Word { text: self.text(span.clone()), span }
    }

    /// The rule of a logical line that starts on `line` and whose text is `text`.
    fn rule(&mut self, rule: Pair<'_, G>, line: u32, text: Cow<'a, str>) -> Option<ast::Rule<'a>> {
        let mut inner = rule.into_inner();
        let selector = inner.next()?;
        let arrow = inner.next()?;
        let action = inner.next()?;
        let because = inner.next().filter(|p| p.as_rule() == G::because);
        let start = self.span(&selector).start;
        let end = self.span(because.as_ref().unwrap_or(&action)).end;
        let span = start..end;

        let mut sel = selector.into_inner();
        let kind = self.word(&sel.next()?);
        let mut predicates = Vec::new();
        for p in sel {
            predicates.push(self.predicate(p)?);
        }
        let arrow = self.span(&arrow);
        let action = self.action(action)?;
        let because = match because {
            Some(b) => {
                let keyword = self.keyword_span(self.span(&b).start);
                Some(ast::Because { keyword, note: self.string(b.into_inner().next()?) })
            }
            None => None,
        };
        // The rule runs from the line's first token to its last, which is what the line's text holds.
        Some(ast::Rule { kind, predicates, arrow, action, because, span, line, text })
    }

    fn predicate(&mut self, p: Pair<'_, G>) -> Option<ast::Predicate<'a>> {
        let span = self.span(&p);
        let mut nots = Vec::new();
        let mut atom = None;
        for q in p.into_inner() {
            if q.as_rule() == G::not_kw {
                nots.push(self.span(&q));
            } else {
                atom = Some(self.atom(q)?);
            }
        }
        Some(ast::Predicate { nots, atom: atom?, span })
    }

    fn atom(&mut self, p: Pair<'_, G>) -> Option<ast::Atom<'a>> {
        use ast::AtomBody as B;
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut it = p.into_inner();
        if rule == G::dev {
            let major = self.numspec(it.next()?)?;
            let minor = self.numspec(it.next()?)?;
            return Some(ast::Atom { keyword: span.clone(), body: B::Dev { major, minor }, span });
        }
        let keyword = self.keyword_span(span.start);
        let body = match rule {
            G::path => B::Path(self.string(it.next()?)),
            G::fs => {
                let arg = it.next()?;
                if arg.as_rule() == G::string {
                    B::Fs(self.string(arg))
                } else {
                    B::Fs(ast::Str { value: Cow::Borrowed(self.text(self.span(&arg))), span: self.span(&arg) })
                }
            }
            G::deleted => B::Deleted,
            G::flags => B::Flags(it.map(|f| self.word(&f)).collect()),
            G::access => B::Access(self.word(&it.next()?)),
            G::size => {
                let op_pair = it.next()?;
                let op = CmpOp::from_symbol(op_pair.as_str())?;
                B::Size { op, op_span: self.span(&op_pair), size: self.size(it.next()?)? }
            }
            G::fd => B::Fd(self.numspec(it.next()?)?),
            G::family => B::Family(self.word(&it.next()?)),
            G::sock_type => B::Type(self.word(&it.next()?)),
            G::state => B::State(self.word(&it.next()?)),
            G::name => B::Name(self.string(it.next()?)),
            G::protocol => B::Protocol(self.word(&it.next()?)),
            G::queued => B::Queued,
            G::unlinked => B::Unlinked,
            G::packet => B::Packet,
            G::clock => B::Clock(self.word(&it.next()?)),
            G::thread => B::Thread,
            G::marks => B::Marks(self.word(&it.next()?)),
            G::locked => B::Locked,
            G::peer => B::Peer(self.word(&it.next()?)),
            G::shared => B::Shared,
            G::unknown_pred => B::Unknown(self.word(&it.next()?)),
            _ => return None,
        };
        Some(ast::Atom { keyword, body, span })
    }

    fn numspec(&self, p: Pair<'_, G>) -> Option<ast::NumSpec<'a>> {
        let span = self.span(&p);
        let inner = p.into_inner().next()?;
        Some(match inner.as_rule() {
            G::star => ast::NumSpec::Any(span),
            G::set => {
                ast::NumSpec::Set { items: inner.into_inner().map(|r| self.range(r)).collect::<Option<_>>()?, span }
            }
            _ => ast::NumSpec::Set { items: vec![self.range(inner)?], span },
        })
    }

    fn range(&self, p: Pair<'_, G>) -> Option<ast::NumRange<'a>> {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let lo = self.word(&it.next()?);
        let hi = it.next().map(|h| self.word(&h));
        Some(ast::NumRange { lo, hi, span })
    }

    fn size(&self, p: Pair<'_, G>) -> Option<ast::Size<'a>> {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let number = self.word(&it.next()?);
        let unit = it.next().map(|u| self.word(&u));
        Some(ast::Size { number, unit, span })
    }

    fn action(&mut self, p: Pair<'_, G>) -> Option<ast::Action<'a>> {
        use ast::ActionBody as A;
        let span = self.span(&p);
        let inner = p.into_inner().next()?;
        let rule = inner.as_rule();
        let keyword_span = self.keyword_span(span.start);
        let keyword = ast::Word { text: self.text(keyword_span.clone()), span: keyword_span };
        let mut it = inner.into_inner();
        let body = match rule {
            G::reopen => {
                let arg = it.next()?;
                if arg.as_rule() == G::string {
                    A::ReopenSubst(self.string(arg))
                } else {
                    A::ReopenPath { exact: arg.into_inner().next().map(|exact| self.span(&exact)) }
                }
            }
            G::contents => {
                // `limit`, then the size.
                let limit = match it.nth(1) {
                    Some(size) => Some(self.size(size)?),
                    None => None,
                };
                A::Contents { limit }
            }
            G::recreate => A::Recreate,
            G::inherit => A::Inherit(self.string(it.next()?)),
            G::close => A::Close,
            G::reject => A::Reject(self.string(it.next()?)),
            G::plugin => A::Plugin(self.string(it.next()?)),
            G::unknown_action => A::Unknown,
            _ => return None,
        };
        Some(ast::Action { keyword, body, span })
    }

    /// Decodes a string literal; a bad escape is reported and decoded as written.
    fn string(&mut self, p: Pair<'_, G>) -> ast::Str<'a> {
        let span = self.span(&p);
        let raw = self.text(span.clone());
        let body = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
        if !body.contains('\\') {
            return ast::Str { value: Cow::Borrowed(body), span };
        }
        let mut value = String::with_capacity(body.len());
        let mut chars = body.char_indices();
        while let Some((at, c)) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => {
                    let start = span.start + 1 + at;
                    let escape: String = ['\\', other].iter().collect();
                    self.diags.push(
                        Diagnostic::error(
                            "crrules::parse::bad_escape",
                            format!("unknown escape `{escape}` in a string"),
                        )
                        .with_source(self.source)
                        .with_label(start..start + 1 + other.len_utf8(), "not an escape the language knows")
                        .with_help(format!(
                            "strings know `\\\"`, `\\\\`, `\\n` and `\\t`; for a backslash followed by `{other}` \
                                 (a glob escape) write `\\\\{other}`"
                        )),
                    );
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            }
        }
        ast::Str { value: Cow::Owned(value), span }
    }
}

/// What a grammar rule is called in "expected ..." messages, if it should be named at all.
fn describe(rule: G) -> Option<&'static str> {
    Some(match rule {
        G::kind => "a kind",
        G::arrow => "`=>`",
        G::predicate
        | G::dev
        | G::path
        | G::fs
        | G::deleted
        | G::flags
        | G::access
        | G::size
        | G::fd
        | G::family
        | G::sock_type
        | G::state
        | G::name
        | G::protocol
        | G::queued
        | G::unlinked
        | G::packet
        | G::clock
        | G::thread
        | G::marks
        | G::locked
        | G::peer
        | G::shared
        | G::unknown_pred
        | G::bad_pred
        | G::not_kw => "a predicate",
        G::numspec | G::star | G::set | G::range | G::number => "a number, a range `N-M`, a set `{..}` or `*`",
        G::string => "a quoted string",
        G::fs_word => "a filesystem type",
        G::flag => "an open flag such as `O_APPEND`",
        G::access_word => {
            static ACCESS: LazyLock<String> =
                LazyLock::new(|| format!("an access mode ({})", quoted(Access::words(), "or")));
            &ACCESS
        }
        G::family_word => "a socket family such as `unix`",
        G::type_word => "a socket type such as `stream`",
        G::state_word => "a socket state such as `listen`",
        G::protocol_word => "a socket protocol such as `tcp`",
        G::clock_word => "a clock such as `boottime_alarm`",
        G::mark_word => "a mark target such as `filesystem`",
        G::peer_word => {
            static PEER: LazyLock<String> =
                LazyLock::new(|| format!("a peer place ({})", quoted(PeerPlace::words(), "or")));
            &PEER
        }
        G::word => "a word",
        G::cmp => {
            static CMP: LazyLock<String> =
                LazyLock::new(|| format!("a comparison ({})", quoted(CmpOp::ALL.map(CmpOp::as_str), "or")));
            &CMP
        }
        G::size_lit | G::size_num | G::unit => "a size such as `16MiB`",
        G::action
        | G::reopen
        | G::contents
        | G::recreate
        | G::inherit
        | G::close
        | G::reject
        | G::plugin
        | G::unknown_action
        | G::bad_action => "an action",
        G::because => "`because`",
        G::EOI => "the end of the rule",
        G::reopen_path => "`path`",
        G::reopen_exact => "`exact`",
        G::kw_limit => "`limit`",
        _ => return None,
    })
}

/// Every form an action is written in (`reopen path`, `reopen "PATH"`, `contents`...), for help texts.
fn action_forms() -> Vec<String> {
    let mut forms = Vec::new();
    for action in ActionWord::ALL {
        match action.arguments() {
            [] => forms.push(action.name().to_owned()),
            arguments => forms.extend(arguments.iter().map(|a| format!("{action} {a}"))),
        }
    }
    forms
}

/// The text found at byte `pos` of a line, for "found ..." (a string literal, a word, or one character).
fn token_at(line: &str, pos: usize) -> &str {
    let rest = line.get(pos..).unwrap_or("");
    let Some(first) = rest.chars().next() else { return "" };
    let len = if first == '"' {
        rest[1..].find(['"', '\n']).map_or(rest.len(), |e| e + 2).min(rest.len())
    } else if first.is_ascii_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())
    } else if rest.starts_with("=>") {
        2
    } else {
        // Punctuation: the run up to the next blank, quote or comment (`->`, `/x`).
        rest.find(|c: char| c.is_whitespace() || c == '"' || c == '#').unwrap_or(rest.len()).max(first.len_utf8())
    };
    &rest[..len]
}

/// A pest failure as a diagnostic: what was expected in plain words, the token found underlined.
fn syntax_error(source: &Source, line: &str, base: usize, err: &pest::error::Error<G>) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) | InputLocation::Span((p, _)) => p.min(line.len()),
    };
    // Point at the next token, not at the blank before it.
    let pos = pos + line.get(pos..).map_or(0, |rest| rest.len() - rest.trim_start_matches(' ').len());
    let mut expected: Vec<&str> = Vec::new();
    if let ErrorVariant::ParsingError { positives, .. } = &err.variant {
        for &r in positives {
            if let Some(d) = describe(r)
                && !expected.contains(&d)
            {
                expected.push(d);
            }
        }
    }
    // Only blanks and a comment left means the rule ended here.
    let rest = line.get(pos..).unwrap_or("");
    let at_end = rest.trim_start_matches(' ').is_empty();
    let token = if at_end { "" } else { token_at(line, pos) };
    let span = base + pos..base + pos + token.len();
    let list = list(&expected, "or");
    let wants_arrow = expected.contains(&"`=>`");

    let diag = |code, message: String, label: &str| {
        Diagnostic::error(code, message).with_source(source).with_label(span.clone(), label)
    };
    if wants_arrow && ActionWord::from_name(token).is_some() {
        return diag(
            "crrules::parse::missing_arrow",
            format!("missing `=>` before the action `{token}`"),
            "expected `=>` before this",
        )
        .with_help(format!("a rule reads `SELECTOR => ACTION`: write `=> {token}`"));
    }
    if wants_arrow && at_end {
        return diag(
            "crrules::parse::missing_arrow",
            "this rule has no `=>` and no action".to_owned(),
            "the rule ends here",
        )
        .with_help("a rule reads `SELECTOR => ACTION`, for example `file => reopen path`");
    }
    let found = if at_end { "the end of the rule".to_owned() } else { shown(token) };
    let message =
        if list.is_empty() { format!("unexpected {found}") } else { format!("expected {list}, found {found}") };
    let label = if at_end { "the rule ends here".to_owned() } else { format!("expected {list}") };
    let mut d = diag("crrules::parse::syntax", message, &label);
    if wants_arrow && rest.starts_with(',') {
        d = d.with_help("several numbers are written as a set in braces: `{1,2}`");
    } else if wants_arrow && (rest.starts_with("->") || rest.starts_with('=') || rest.starts_with('>')) {
        d = d.with_help("the arrow between selector and action is `=>`");
    } else if token == "\\" {
        d = d.with_help("a `\\` continues a rule only as the last character of its line");
    } else if pos == 0 || expected == ["a kind"] {
        d = d.with_help("a rule starts with a kind, such as `file`, `chardev`, `socket` or `any`");
    } else if expected.contains(&"`path`") {
        d = d.with_help("write `reopen path` to reopen the same path, or `reopen \"/other/path\"` for a substitute");
    } else if expected.contains(&"`exact`") {
        let meant = did_you_mean(token, [EXACT]).map_or_else(String::new, |w| format!("did you mean `{w}`? "));
        d = d.with_help(format!(
            "{meant}`reopen path` may be followed by `{EXACT}` (the very same file: device, inode and a regular \
             file's size), then `because \"NOTE\"`"
        ));
    } else if token == EXACT {
        let before = line.get(..pos).unwrap_or("").trim_end();
        d = d.with_help(if before.ends_with(EXACT) {
            format!("write `{EXACT}` once")
        } else if before.ends_with('"') && expected.contains(&"`because`") {
            format!("`{EXACT}` goes with `reopen path` only: a substitute path names another file by design")
        } else {
            format!("`{EXACT}` goes with `reopen path` only: `reopen path {EXACT}`")
        });
    } else if expected.iter().any(|e| e.starts_with("a comparison")) {
        d = d.with_help("`size` takes a comparison and a size, such as `size <= 16MiB`");
    } else if expected.contains(&"an action") {
        d = d.with_help(format!("actions are {}", quoted(action_forms().iter().map(String::as_str), "and")));
    } else if expected.contains(&"a quoted string") && !token.is_empty() && !token.starts_with('"') {
        let word = rest.split_whitespace().next().unwrap_or(token);
        d = d.with_help(format!("put the text in double quotes: `\"{}\"`", shown(word).trim_matches('`')));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        let src = Source::new("t.rules", "chardev 1:3 => reopen path                # /dev/null\n");
        let parsed = parse(&src);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let rule = &parsed.rules[0];
        assert_eq!(rule.text, "chardev 1:3 => reopen path");
        assert_eq!(rule.span, 0..26);
        assert_eq!(rule.kind.text, "chardev");
        assert_eq!(rule.action.body, ast::ActionBody::ReopenPath { exact: None });
    }

    #[test]
    fn reopen_path_exact_keeps_the_span_of_exact() {
        let src = Source::new("t.rules", "file => reopen path  exact because \"same bytes\"\n");
        let parsed = parse(&src);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let action = &parsed.rules[0].action;
        assert_eq!(action.body, ast::ActionBody::ReopenPath { exact: Some(21..26) });
        assert_eq!(&src.text[action.span.clone()], "reopen path  exact");
        assert!(parsed.rules[0].because.is_some());
    }

    /// The keywords in `grammar`'s rule `name` (`pred_kw = _{ kw_path | kw_fs ... }`), as words.
    fn keywords_of<'g>(grammar: &'g str, name: &str) -> Vec<&'g str> {
        let start = grammar.find(&format!("\n{name} ")).unwrap_or_else(|| panic!("no rule {name}"));
        let body = &grammar[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        body.split('|').map(|kw| kw.trim().trim_start_matches("kw_")).collect()
    }

    #[test]
    fn the_grammar_spells_the_keywords_as_the_vocabulary_does() {
        use crate::vocab::{self, PredicateWord};
        let grammar = include_str!("../../grammar/crrules.pest");
        assert_eq!(keywords_of(grammar, "pred_kw"), PredicateWord::words().collect::<Vec<_>>());
        assert_eq!(keywords_of(grammar, "action_kw"), ActionWord::words().collect::<Vec<_>>());
        for word in PredicateWord::words().chain(ActionWord::words()).chain([vocab::NOT, vocab::BECAUSE]) {
            let name = format!("kw_{word}");
            let rule = grammar.lines().find(|l| l.split_whitespace().next() == Some(name.as_str()));
            let rule = rule.unwrap_or_else(|| panic!("the grammar has no rule `{name}`"));
            assert!(rule.contains(&format!("\"{word}\" ~ !ident_char")), "`{rule}` does not spell `{word}`");
        }
    }
}
