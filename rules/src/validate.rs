//! Syntax tree -> validated rule: meaning, applicability, ranges, globs.
//!
//! Words are resolved here against the vocabulary tables (so every unknown word gets a did-you-mean),
//! numbers are range-checked, globs compiled, and each predicate and action is checked against the kind
//! it is written for. A rule with any error is left out of the rule set; every error is reported.

use crate::diag::{Diagnostic, did_you_mean, quoted, shown};
use crate::parse::MAX_NOT_DEPTH;
use crate::rule::{Action, Glob, NumSet, Origin, Predicate, Rule};
use crate::source::Span;
use crate::vocab::{
    self, Access, ActionWord, Clock, Kind, MAJOR_LIMIT, MINOR_LIMIT, MarkTarget, PeerPlace, PredicateWord, SockFamily,
    SockProto, SockState, SockType,
};
use crate::{Source, ast};

/// The longest glob accepted, in bytes (`PATH_MAX`).
pub const MAX_GLOB_LEN: usize = 4096;

/// fd numbers are non-negative `int`s.
pub const FD_LIMIT: u32 = 1 << 31;

/// Validates one parsed rule, pushing its errors; `None` when it has any.
pub fn validate_rule(source: &Source, rule: &ast::Rule, diags: &mut Vec<Diagnostic>) -> Option<Rule> {
    let before = diags.len();
    let mut v = Validator { source, diags };
    let kind = v.kind(&rule.kind);
    let mut predicates = Vec::with_capacity(rule.predicates.len());
    for p in &rule.predicates {
        if let Some(p) = v.predicate(kind, p) {
            predicates.push(p);
        }
    }
    let action = v.action(kind, &rule.action);
    let because = rule.because.as_ref().and_then(|b| v.because(&action, b));
    if v.diags.len() > before {
        return None;
    }
    Some(Rule {
        kind: kind?,
        predicates,
        action: action?,
        because,
        origin: Origin { file: source.name.clone(), line: rule.line, span: rule.span.clone() },
        text: rule.text.clone().into_owned(),
    })
}

/// The kinds a predicate can be written for (`not P` as `P`); `None`: every kind.
fn predicate_kinds(body: &ast::AtomBody) -> Option<&'static [Kind]> {
    use Kind::*;
    use PredicateWord as P;
    if let ast::AtomBody::Dev { .. } = body {
        return Some(&[Chardev, Blockdev]);
    }
    Some(match body.keyword()? {
        P::Path => &[File, Dir, Chardev, Blockdev, Fifo, Memfd, Mqueue, Nsfs, Any],
        P::Fs => &[File, Dir, Chardev, Blockdev, Fifo, Memfd, Mqueue, Any],
        P::Deleted | P::Unlinked => &[File, Dir, Chardev, Blockdev, Fifo, Any],
        P::Size => &[File, Memfd, Blockdev, Any],
        P::Family | P::Type | P::State | P::Protocol | P::Queued => &[Socket],
        P::Name => &[Anon, Nsfs],
        P::Packet => &[Pipe],
        P::Clock => &[Timerfd],
        P::Thread => &[Pidfd],
        P::Marks => &[Fanotify],
        // The kinds with another end: a pipe's or FIFO's, a unix socket's peer, a terminal's other side.
        P::Peer => &[Chardev, Fifo, Pipe, Socket, Any],
        P::Flags | P::Access | P::Fd | P::Locked | P::Shared => return None,
    })
}

/// The kinds an action can apply to; `None`: every kind, `any` included.
fn action_kinds(action: ActionWord) -> Option<&'static [Kind]> {
    use ActionWord as A;
    use Kind::*;
    Some(match action {
        A::Reopen => &[File, Dir, Chardev, Blockdev, Fifo, Nsfs],
        A::Contents => &[File, Memfd],
        A::Recreate => &[Pipe, Fifo, Dir, Socket, Eventfd, Epoll, Signalfd, Timerfd, Inotify, Fanotify, Memfd, Pidfd],
        A::Inherit | A::Close | A::Reject | A::Plugin => return None,
    })
}

/// The help that names the word likely meant.
fn you_mean(word: &str) -> String {
    format!("did you mean `{word}`?")
}

struct Validator<'a> {
    source: &'a Source,
    diags: &'a mut Vec<Diagnostic>,
}

impl Validator<'_> {
    /// Pushes an error pointing at `span`.
    fn error(&mut self, code: &'static str, message: String, span: Span, label: &str, help: Option<String>) {
        let mut d = Diagnostic::error(code, message).with_source(self.source).with_label(span, label);
        if let Some(help) = help {
            d = d.with_help(help);
        }
        self.diags.push(d);
    }

    /// Resolves a word against a vocabulary, reporting an unknown one with a did-you-mean.
    fn word<T, I: Iterator<Item = &'static str>>(
        &mut self,
        word: &ast::Word,
        from_name: impl Fn(&str) -> Option<T>,
        words: impl Fn() -> I,
        code: &'static str,
        (what, plural): (&str, &str),
    ) -> Option<T> {
        if let Some(v) = from_name(word.text) {
            return Some(v);
        }
        let meant = did_you_mean(word.text, words());
        let otherwise = format!("the {plural} are {}", quoted(words(), "and"));
        let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        self.unknown(word, code, (what, &format!("not {article} {what}")), meant, otherwise);
        None
    }

    /// Reports `word` as an unknown WHAT (`unknown socket family `unx``), labelled `label`, with a help
    /// naming the word `meant` when there is one, else `otherwise`.
    fn unknown(
        &mut self,
        word: &ast::Word,
        code: &'static str,
        (what, label): (&str, &str),
        meant: Option<&str>,
        otherwise: String,
    ) {
        let help = meant.map_or(otherwise, you_mean);
        self.error(code, format!("unknown {what} {}", shown(word.text)), word.span.clone(), label, Some(help));
    }

    fn kind(&mut self, word: &ast::Word) -> Option<Kind> {
        self.word(word, Kind::from_name, Kind::words, "crrules::parse::unknown_kind", ("kind", "kinds"))
    }

    fn predicate(&mut self, kind: Option<Kind>, p: &ast::Predicate) -> Option<Predicate> {
        if p.nots.len() > MAX_NOT_DEPTH {
            let at = p.nots[MAX_NOT_DEPTH].clone();
            self.error(
                "crrules::parse::too_many_nots",
                format!("more than {MAX_NOT_DEPTH} `not`s in a row"),
                at,
                "one too many",
                Some("`not not P` means `P`: remove `not`s in pairs".to_owned()),
            );
            // Still check the atom itself, for its own errors.
        }
        let atom = self.atom(kind, &p.atom)?;
        if p.nots.len() > MAX_NOT_DEPTH {
            return None;
        }
        Some(p.nots.iter().fold(atom, |inner, _| Predicate::Not(Box::new(inner))))
    }

    fn atom(&mut self, kind: Option<Kind>, atom: &ast::Atom) -> Option<Predicate> {
        use ast::AtomBody as B;
        let mut applicable = true;
        if let (Some(kind), Some(kinds)) = (kind, predicate_kinds(&atom.body))
            && !kinds.contains(&kind)
        {
            applicable = false;
            let kind_words = kinds.iter().map(|k| k.name());
            let (message, help) = match &atom.body {
                B::Dev { .. } => (
                    format!("a device number does not apply to `{kind}`"),
                    format!("device numbers apply to {}", quoted(kind_words, "and")),
                ),
                body => {
                    let word = body.keyword().map_or("?", PredicateWord::name);
                    (
                        format!("`{word}` does not apply to `{kind}`"),
                        format!("`{word}` applies to {}", quoted(kind_words, "and")),
                    )
                }
            };
            self.error(
                "crrules::validate::inapplicable_predicate",
                message,
                atom.keyword.clone(),
                &format!("not for `{kind}`"),
                Some(help),
            );
        }
        let pred = match &atom.body {
            B::Dev { major, minor } => {
                let major = self.numset(major, MAJOR_LIMIT, "major number");
                let minor = self.numset(minor, MINOR_LIMIT, "minor number");
                Predicate::Dev { major: major?, minor: minor? }
            }
            B::Path(s) => Predicate::Path(self.glob(s, &s.value)?),
            B::Fs(s) => Predicate::Fs(self.glob(s, &s.value)?),
            B::Deleted => Predicate::Deleted,
            B::Flags(words) => {
                let mut bits = 0u32;
                let mut ok = true;
                for w in words {
                    match self.flag(w) {
                        Some(b) => bits |= b,
                        None => ok = false,
                    }
                }
                ok.then_some(Predicate::Flags(bits))?
            }
            B::Access(w) => Predicate::Access(self.word(
                w,
                Access::from_name,
                Access::words,
                "crrules::parse::unknown_access",
                ("access mode", "access modes"),
            )?),
            B::Size { op, size, .. } => Predicate::Size(*op, self.size(size)?),
            B::Fd(spec) => Predicate::Fd(self.numset(spec, FD_LIMIT, "fd number")?),
            B::Family(w) => Predicate::Family(self.word(
                w,
                SockFamily::from_name,
                SockFamily::words,
                "crrules::parse::unknown_family",
                ("socket family", "socket families"),
            )?),
            B::Type(w) => Predicate::SockType(self.word(
                w,
                SockType::from_name,
                SockType::words,
                "crrules::parse::unknown_type",
                ("socket type", "socket types"),
            )?),
            B::State(w) => Predicate::State(self.word(
                w,
                SockState::from_name,
                SockState::words,
                "crrules::parse::unknown_state",
                ("socket state", "socket states"),
            )?),
            B::Name(s) => Predicate::Name(self.glob(s, &name_glob(&s.value))?),
            B::Protocol(w) => Predicate::Protocol(self.word(
                w,
                SockProto::from_name,
                SockProto::words,
                "crrules::parse::unknown_protocol",
                ("socket protocol", "socket protocols"),
            )?),
            B::Queued => Predicate::Queued,
            B::Unlinked => Predicate::Unlinked,
            B::Packet => Predicate::Packet,
            B::Clock(w) => Predicate::Clock(self.word(
                w,
                Clock::from_name,
                Clock::words,
                "crrules::parse::unknown_clock",
                ("clock", "clocks"),
            )?),
            B::Thread => Predicate::Thread,
            B::Locked => Predicate::Locked,
            B::Marks(w) => Predicate::Marks(self.word(
                w,
                MarkTarget::from_name,
                MarkTarget::words,
                "crrules::parse::unknown_mark",
                ("mark target", "mark targets"),
            )?),
            B::Peer(w) => Predicate::Peer(self.word(
                w,
                PeerPlace::from_name,
                PeerPlace::words,
                "crrules::parse::unknown_peer",
                ("peer place", "peer places"),
            )?),
            B::Shared => Predicate::Shared,
            B::Unknown(w) => {
                self.unknown_predicate(w);
                return None;
            }
        };
        applicable.then_some(pred)
    }

    fn unknown_predicate(&mut self, w: &ast::Word) {
        let (meant, otherwise) = if let Some(k) = Kind::from_name(w.text) {
            (None, format!("a rule has one kind; write a second rule for `{k}`, or use `any`"))
        } else if w.text == vocab::BECAUSE {
            (None, "`because \"NOTE\"` goes after the action".to_owned())
        } else {
            let meant = did_you_mean(w.text, PredicateWord::words().chain([vocab::NOT]));
            let otherwise = format!(
                "predicates are {}, device numbers like `1:3`, and `{}` before any of them",
                quoted(PredicateWord::words(), "and"),
                vocab::NOT
            );
            (meant, otherwise)
        };
        self.unknown(w, "crrules::parse::unknown_predicate", ("predicate", "not a predicate"), meant, otherwise);
    }

    fn flag(&mut self, w: &ast::Word) -> Option<u32> {
        if let Some(bits) = vocab::open_flag(w.text) {
            return Some(bits);
        }
        if w.text == "O_RDONLY" {
            self.error(
                "crrules::validate::rdonly_flag",
                "`O_RDONLY` cannot be tested as a flag: it is zero".to_owned(),
                w.span.clone(),
                "always true",
                Some("use `access ro`".to_owned()),
            );
            return None;
        }
        let names = vocab::OPEN_FLAGS.iter().map(|(n, _)| *n);
        let otherwise = format!("the open flags are {}", quoted(names.clone(), "and"));
        let meant = did_you_mean(w.text, names);
        self.unknown(w, "crrules::parse::unknown_flag", ("open flag", "not an open flag"), meant, otherwise);
        None
    }

    /// A number specification as a set below `limit`.
    fn numset(&mut self, spec: &ast::NumSpec, limit: u32, what: &str) -> Option<NumSet> {
        let items = match spec {
            ast::NumSpec::Any(_) => return Some(NumSet::all(limit)),
            ast::NumSpec::Set { items, .. } => items,
        };
        let mut ranges = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            let lo = self.number(&item.lo, limit, what);
            let hi = match &item.hi {
                Some(hi) => self.number(hi, limit, what),
                None => lo,
            };
            match (lo, hi) {
                (Some(lo), Some(hi)) if lo <= hi => ranges.push((lo, hi)),
                (Some(lo), Some(hi)) => {
                    ok = false;
                    let text = self.source.text.get(item.span.clone()).unwrap_or("");
                    self.error(
                        "crrules::validate::empty_range",
                        format!("the range {} is empty", shown(text)),
                        item.span.clone(),
                        "holds no number",
                        Some(format!("write the smaller number first: `{hi}-{lo}`")),
                    );
                }
                _ => ok = false,
            }
        }
        ok.then(|| NumSet::from_ranges(ranges))
    }

    fn number(&mut self, w: &ast::Word, limit: u32, what: &str) -> Option<u32> {
        match w.text.parse::<u64>() {
            Ok(n) if n < u64::from(limit) => u32::try_from(n).ok(),
            _ => {
                self.error(
                    "crrules::validate::out_of_range",
                    format!("the {what} {} is out of range", shown(w.text)),
                    w.span.clone(),
                    &format!("must be below {limit}"),
                    Some(format!("{what}s go from 0 to {}", limit - 1)),
                );
                None
            }
        }
    }

    fn size(&mut self, size: &ast::Size) -> Option<u64> {
        let factor = match &size.unit {
            None => 1,
            Some(unit) => match vocab::SIZE_UNITS.iter().find(|(u, _)| *u == unit.text) {
                Some((_, f)) => *f,
                None => {
                    let units = vocab::SIZE_UNITS.iter().map(|(u, _)| *u);
                    // `MB`, `mib`, `K`: the prefix letter says which was meant.
                    let by_prefix = unit
                        .text
                        .chars()
                        .next()
                        .map(|c| c.to_ascii_uppercase())
                        .and_then(|c| units.clone().find(|u| u.len() == 3 && u.starts_with(c)));
                    let sizes =
                        format!("sizes take {} (powers of 1024), or no unit for bytes", quoted(units.clone(), "or"));
                    // The units are few: they are listed after a did-you-mean too.
                    let help = match by_prefix.or_else(|| did_you_mean(unit.text, units)) {
                        Some(meant) => format!("{} {sizes}", you_mean(meant)),
                        None => sizes,
                    };
                    self.unknown(unit, "crrules::parse::unknown_unit", ("size unit", "not a size unit"), None, help);
                    return None;
                }
            },
        };
        match size.number.text.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)) {
            Some(n) => Some(n),
            None => {
                let text = self.source.text.get(size.span.clone()).unwrap_or("");
                self.error(
                    "crrules::validate::size_overflow",
                    format!("the size {} is too large", shown(text)),
                    size.span.clone(),
                    "does not fit in 64 bits",
                    Some("sizes must be below 16 EiB (2^64 bytes)".to_owned()),
                );
                None
            }
        }
    }

    /// Compiles a glob written in string `s` (`text` may differ from `s.value`: see [`name_glob`]).
    fn glob(&mut self, s: &ast::Str, text: &str) -> Option<Glob> {
        // globset panics on a pattern whose regex outgrows its size limit; PATH_MAX-long globs of any
        // shape stay far below it.
        if text.len() > MAX_GLOB_LEN {
            self.error(
                "crrules::validate::glob_too_long",
                format!("this glob is {} bytes long, more than the {MAX_GLOB_LEN} allowed", text.len()),
                s.span.clone(),
                "too long",
                Some(format!(
                    "paths on Linux are at most {MAX_GLOB_LEN} bytes; use `*` or `**` for the parts that vary"
                )),
            );
            return None;
        }
        match Glob::new(text) {
            Ok(g) => Some(g),
            Err(e) => {
                self.error(
                    "crrules::validate::bad_glob",
                    format!("malformed glob: {}", e.kind()),
                    s.span.clone(),
                    "this glob",
                    Some(
                        "in a glob `*`, `?`, `[..]` and `{a,b}` are special; a `\\\\` in the string escapes one"
                            .to_owned(),
                    ),
                );
                None
            }
        }
    }

    fn action(&mut self, kind: Option<Kind>, a: &ast::Action) -> Option<Action> {
        use ast::ActionBody as A;
        let mut applicable = true;
        if let (Some(kind), Some(kinds)) = (kind, a.body.keyword().and_then(action_kinds))
            && !kinds.contains(&kind)
        {
            applicable = false;
            let word = &a.keyword.text;
            self.error(
                "crrules::validate::inapplicable_action",
                format!("`{word}` cannot apply to `{kind}`"),
                a.span.clone(),
                &format!("not for `{kind}`"),
                Some(format!(
                    "`{word}` applies to {}; {} apply to every kind",
                    quoted(kinds.iter().map(|k| k.name()), "and"),
                    quoted(ActionWord::ALL.iter().filter(|a| action_kinds(**a).is_none()).map(|a| a.name()), "and")
                )),
            );
        }
        let action = match &a.body {
            A::ReopenPath { exact } => Action::ReopenPath { exact: exact.is_some() },
            A::ReopenSubst(s) => {
                if !s.value.starts_with('/') {
                    let what = if s.value.is_empty() { "empty" } else { "not absolute" };
                    self.error(
                        "crrules::validate::relative_path",
                        format!("the substitute path {} is {what}", shown(&s.value)),
                        s.span.clone(),
                        "must start with `/`",
                        Some(
                            "write the full path of the file to open at restore, or `reopen path` for the same one"
                                .to_owned(),
                        ),
                    );
                    return None;
                }
                Action::ReopenSubst { path: s.value.clone().into_owned() }
            }
            A::Contents { limit } => Action::Contents {
                limit: match limit {
                    Some(l) => Some(self.size(l)?),
                    None => None,
                },
            },
            A::Recreate => Action::Recreate,
            A::Inherit(s) => {
                Action::Inherit { name: self.nonempty(s, "inherit name", "the name the restorer gives this fd")? }
            }
            A::Close => Action::Close,
            A::Reject(s) => Action::Reject {
                reason: self.nonempty(
                    s,
                    "reject reason",
                    "a sentence telling the user why this fd cannot be checkpointed",
                )?,
            },
            A::Plugin(s) => Action::Plugin { name: self.nonempty(s, "plugin name", "the name of the backend plugin")? },
            A::Unknown => {
                let meant = did_you_mean(a.keyword.text, ActionWord::words());
                let otherwise = format!("the actions are {}", quoted(ActionWord::words(), "and"));
                self.unknown(
                    &a.keyword,
                    "crrules::parse::unknown_action",
                    ("action", "not an action"),
                    meant,
                    otherwise,
                );
                return None;
            }
        };
        applicable.then_some(action)
    }

    fn nonempty(&mut self, s: &ast::Str, what: &str, hint: &str) -> Option<String> {
        if s.value.trim().is_empty() {
            self.error(
                "crrules::validate::empty_string",
                format!("the {what} is empty"),
                s.span.clone(),
                "empty",
                Some(format!("write {hint}")),
            );
            return None;
        }
        Some(s.value.clone().into_owned())
    }

    fn because(&mut self, action: &Option<Action>, b: &ast::Because) -> Option<String> {
        if matches!(action, Some(Action::Reject { .. })) {
            self.error(
                "crrules::validate::because_after_reject",
                "a `reject` rule takes no `because` note".to_owned(),
                b.keyword.start..b.note.span.end,
                "the reject reason says it already",
                Some("the reject reason is what users read: put the note there".to_owned()),
            );
            return None;
        }
        self.nonempty(&b.note, "`because` note", "why the rule is what it is, or drop `because`")
    }
}

/// The glob for `name "..."`: square brackets are literal there (anonymous inode names such as
/// `[eventfd]` carry them), so they are escaped; `*`, `?` and `{a,b}` keep their glob meaning.
pub fn name_glob(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            // Already escaped by the user (`\\[` in the string): keep as is.
            '\\' => {
                out.push(c);
                out.extend(chars.next());
            }
            '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}
