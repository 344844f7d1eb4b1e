//! No input makes `compile` panic, every error it reports points inside the text it was given, and every
//! diagnostic draws: arbitrary bytes, arbitrary strings, mutations of a valid policy, and the classic
//! hostile inputs (empty file, a 10 MB line, a label past column 65,535, a 100,000-deep `not` chain, NUL
//! bytes, CRLF).

use crrules_rules::{Diagnostic, Source, Validated, compile};
use proptest::prelude::*;

const POLICY: &str = include_str!("fixtures/ok/every_construct.rules");

/// Compiles `text`, checks every diagnostic's span (inside the text, on character boundaries) and draws
/// every diagnostic as the binary does.
fn check(text: &str) -> Validated {
    let c = compile(&[Source::new("p.rules", text)]);
    for d in &c.diagnostics {
        if d.is_error() {
            let span = d.primary_span().unwrap_or_else(|| panic!("error without a span: {d:?}"));
            assert!(span.end <= text.len(), "span {span:?} outside a text of {} bytes: {}", text.len(), d.message);
            assert!(d.underlined().is_some(), "span {span:?} not on character boundaries: {}", d.message);
        }
        draw(d);
    }
    c
}

/// A diagnostic drawn by miette's graphical handler, as `crrules` draws it (without colour).
fn draw(d: &Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, &d.drawable())
        .unwrap();
    out
}

/// Pieces of the language to splice into a valid policy.
const TOKENS: &[&str] = &[
    "=>",
    "not ",
    "\"",
    "\\\n",
    "\\",
    "#",
    "{",
    "}",
    ":",
    "*",
    "-",
    ",",
    "path ",
    "1:3 ",
    "4096:",
    "{3,5-",
    "size <= ",
    "16MiB",
    "99999999999999999999",
    "O_RDONLY",
    "reject \"\"",
    " because \"x\"",
    "\n",
    "\r\n",
    "\0",
    "[",
    "]",
    "chardev",
    "socket",
    "=> contents",
    "\u{feff}",
    "é",
    "\u{202e}",
];

#[derive(Clone, Debug)]
enum Mutation {
    InsertChar(usize, char),
    InsertToken(usize, usize),
    Delete(usize, usize),
    Replace(usize, char),
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for m in mutations {
        let len = chars.len().max(1);
        match *m {
            Mutation::InsertChar(at, c) => chars.insert(at % (chars.len() + 1), c),
            Mutation::InsertToken(at, t) => {
                let at = at % (chars.len() + 1);
                chars.splice(at..at, TOKENS[t % TOKENS.len()].chars());
            }
            Mutation::Delete(at, n) => {
                let at = at % len;
                let end = (at + n % 12).min(chars.len());
                if at < end {
                    chars.drain(at..end);
                }
            }
            Mutation::Replace(at, c) => {
                if !chars.is_empty() {
                    chars[at % len] = c;
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Mutation::InsertChar(a, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, t)| Mutation::InsertToken(a, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), prop::sample::select(vec!['"', '\\', '#', '\n', ' ', 'x', '0', '{', ':', '=']))
            .prop_map(|(a, c)| Mutation::Replace(a, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(source) = Source::from_bytes("b.rules", bytes) {
            check(&source.text);
        }
    }

    #[test]
    fn arbitrary_strings(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn rule_shaped_strings(text in r#"([a-z_]{1,8}|[0-9*{},:-]{1,6}|"[^"\n]{0,6}"?|=>|\\\r?\n|#[^\n]*|[ \t\r\n]){0,40}"#) {
        check(&text);
    }

    #[test]
    fn mutated_valid_policies(mutations in prop::collection::vec(mutation(), 1..8)) {
        let text = apply(POLICY, &mutations);
        check(&text);
    }
}

#[test]
fn the_unmutated_policy_is_clean() {
    assert!(!check(POLICY).has_errors());
}

#[test]
fn empty_and_blank_files_have_no_rules_and_no_errors() {
    for text in ["", "\n", "   \t\r\n", "# only a comment", "\\", "\\\n\\\n", "\r\n\r\n"] {
        let c = check(text);
        assert!(c.rules.is_empty() && c.diagnostics.is_empty(), "{text:?}: {:?}", c.diagnostics);
    }
}

#[test]
fn a_ten_megabyte_line() {
    let big = "a".repeat(10 << 20);
    // A valid rule with a huge glob: the glob is reported as too long.
    let c = check(&format!("file path \"/{big}\" => close\n"));
    assert_eq!(c.diagnostics[0].code, "crrules::validate::glob_too_long");
    assert_eq!(c.diagnostics[0].message, "this glob is 10485761 bytes long, more than the 4096 allowed");
    // PATH_MAX is still fine, whatever the glob's shape.
    for unit in ["a", "*", "?", "[!a]", "{a,b}", "/**", "[é-ü]"] {
        let glob = unit.repeat(4096 / unit.len());
        assert!(!check(&format!("file path \"{glob}\" => close")).has_errors(), "{unit}");
        assert!(!check(&format!("anon name \"{glob}\" => close")).has_errors() || unit.contains('['), "{unit}");
    }
    // A huge unknown word: reported with its text shortened in the message.
    let c = check(&format!("{big} => close\n"));
    assert_eq!(c.diagnostics.len(), 1);
    assert!(c.diagnostics[0].message.len() < 100, "{}", c.diagnostics[0].message);
    // Huge runs of punctuation and digits.
    check(&"{".repeat(10 << 20));
    check(&format!("chardev {}:1 => close", "9".repeat(10 << 20)));
}

/// miette draws a label with format widths, which panic past 65,535 columns: lines that long are cut
/// around the labels, and the position shown is still the file's.
#[test]
fn labels_past_column_65535_are_drawn_cut_around_them() {
    let cases = [
        (format!("pipe {}=> frobnicate\n", " ".repeat(70_000)), "[p.rules:1:70009]"),
        (format!("pipe{}=> frobnicate", "\t".repeat(70_000)), "[p.rules:1:70008]"),
        (format!("# {}\r\npipe => frobnicate\n", "é".repeat(40_000)), "[p.rules:2:9]"),
        (
            format!(
                "pipe => close # {}\npipe{} => frobnicate # {}\n",
                "x".repeat(70_000),
                " ".repeat(2000),
                "y".repeat(70_000)
            ),
            "[p.rules:2:2009]",
        ),
    ];
    for (text, at) in &cases {
        let c = check(text);
        let [d] = &c.diagnostics[..] else { panic!("{:?}", c.diagnostics) };
        assert_eq!(d.underlined(), Some("frobnicate"));
        let drawn = draw(d);
        assert!(drawn.contains(at), "{drawn}");
        let line =
            drawn.lines().find(|l| l.contains("│") && l.contains("=> frobnicate")).unwrap_or_else(|| panic!("{drawn}"));
        assert!(drawn.contains('…'), "{drawn}");
        // The label's bar stands under the word, in the line as drawn.
        let column = |l: &str, byte: usize| l[..byte].chars().count();
        let word = column(line, line.find("frobnicate").unwrap());
        let under = drawn.lines().find(|l| l.contains('┬')).unwrap();
        assert!((word..word + 10).contains(&column(under, under.find('┬').unwrap())), "{drawn}");
        assert!(drawn.lines().all(|l| l.chars().count() < 800), "{drawn}");
    }
    // A label across a whole 140,000-column rule, and one past the end of a long last line.
    let rule = format!("pipe {}=> close", " ".repeat(140_000));
    let c = crrules_rules::lint(&[Source::new("p.rules", format!("{rule}\n{rule}"))]);
    assert_eq!(c.diagnostics[0].code, "crrules::lint::duplicate", "{:?}", c.diagnostics);
    let drawn = draw(&c.diagnostics[0]);
    assert!(drawn.contains("[p.rules:2:1]") && drawn.lines().all(|l| l.chars().count() < 800), "{drawn}");
    check(&format!("pipe {}", "x".repeat(70_000)));
}

#[test]
fn a_hundred_thousand_nots() {
    let c = check(&format!("file {}deleted => close", "not ".repeat(100_000)));
    assert_eq!(c.diagnostics.len(), 1);
    assert_eq!(c.diagnostics[0].code, "crrules::parse::too_many_nots");
    // And a not chain with nothing after it.
    assert!(check(&format!("file {}=> close", "not ".repeat(100_000))).has_errors());
}

#[test]
fn nul_bytes_are_just_bad_characters() {
    let c = check("file\0 => close\nfile path \"/a\0b\" => close\n\0\0\0\n");
    assert_eq!(c.rules.len(), 1, "a NUL inside a string is text: {:?}", c.diagnostics);
    assert_eq!(c.diagnostics.iter().filter(|d| d.is_error()).count(), 2);
}
