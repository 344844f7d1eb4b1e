//! What `compile` makes of valid text: the predicates and actions each construct produces, where each rule
//! came from, precedence across files, and how diagnostics render for a user.

use crrules_rules::rule::{CmpOp, NumSet, Predicate};
use crrules_rules::vocab::{Access, Kind, MAJOR_LIMIT, MINOR_LIMIT, PeerPlace, SockFamily, SockState, SockType};
use crrules_rules::{Action, Source, Validated, compile};

fn one(text: &str) -> Validated {
    compile(&[Source::new("t.rules", text)])
}

/// The single rule of `text`, which must compile cleanly.
fn rule(text: &str) -> crrules_rules::Rule {
    let c = one(text);
    assert!(!c.has_errors(), "{text}: {:?}", c.diagnostics);
    assert_eq!(c.rules.len(), 1, "{text}");
    c.rules.rules[0].clone()
}

#[test]
fn device_numbers_become_number_sets() {
    let r = rule("chardev 1:{3,5,7-9} => reopen path");
    assert_eq!(
        r.predicates,
        vec![Predicate::Dev { major: NumSet::single(1), minor: NumSet::from_ranges([(3, 3), (5, 5), (7, 9)]) }]
    );
    let r = rule("chardev {1,4}:* => close");
    let Predicate::Dev { major, minor } = &r.predicates[0] else { panic!() };
    assert_eq!(major.ranges(), &[(1, 1), (4, 4)]);
    assert!(minor.is_all(MINOR_LIMIT));
    let r = rule("blockdev *:64-255 => close");
    let Predicate::Dev { major, minor } = &r.predicates[0] else { panic!() };
    assert!(major.is_all(MAJOR_LIMIT));
    assert_eq!(minor.ranges(), &[(64, 255)]);
    // The largest numbers the kernel allows are accepted.
    rule("chardev 4095:1048575 => close");
}

#[test]
fn every_predicate_means_what_it_says() {
    let r = rule(r#"file path "/var/log/*" fs "fuse.*" deleted flags O_APPEND,O_WRONLY access wo => close"#);
    assert!(
        matches!(&r.predicates[0], Predicate::Path(g) if g.is_match("/var/log/syslog") && !g.is_match("/var/log/a/b"))
    );
    assert!(matches!(&r.predicates[1], Predicate::Fs(g) if g.is_match("fuse.sshfs")));
    assert_eq!(r.predicates[2], Predicate::Deleted);
    assert_eq!(r.predicates[3], Predicate::Flags(0o2001));
    assert_eq!(r.predicates[4], Predicate::Access(Access::Wo));
    let r = rule("file fs tmpfs size <= 16MiB fd {0,2-4} => contents limit 1GiB");
    assert!(matches!(&r.predicates[0], Predicate::Fs(g) if g.is_match("tmpfs") && !g.is_match("tmpfs2")));
    assert_eq!(r.predicates[1], Predicate::Size(CmpOp::Le, 16 << 20));
    assert_eq!(r.predicates[2], Predicate::Fd(NumSet::from_ranges([(0, 0), (2, 4)])));
    assert_eq!(r.action, Action::Contents { limit: Some(1 << 30) });
    for (text, op, n) in
        [("< 3", CmpOp::Lt, 3), ("> 2KiB", CmpOp::Gt, 2048), (">= 1TiB", CmpOp::Ge, 1 << 40), ("== 7B", CmpOp::Eq, 7)]
    {
        assert_eq!(rule(&format!("file size {text} => close")).predicates, vec![Predicate::Size(op, n)]);
    }
    let r = rule("socket family inet6 type dgram state listen => recreate");
    assert_eq!(
        r.predicates,
        vec![
            Predicate::Family(SockFamily::Inet6),
            Predicate::SockType(SockType::Dgram),
            Predicate::State(SockState::Listen)
        ]
    );
    let r = rule("file fd * => close");
    assert!(matches!(&r.predicates[0], Predicate::Fd(s) if s.contains(0) && s.contains(i32::MAX as u32)));
}

#[test]
fn peer_names_where_the_other_end_is_and_shared_who_else_holds_the_file() {
    let r = rule("pipe peer outside not peer none shared => close");
    assert_eq!(
        r.predicates,
        vec![
            Predicate::Peer(PeerPlace::Outside),
            Predicate::Not(Box::new(Predicate::Peer(PeerPlace::None))),
            Predicate::Shared
        ]
    );
    assert_eq!(rule("socket peer inside => recreate").predicates, vec![Predicate::Peer(PeerPlace::Inside)]);
    // `peer` is for the kinds with another end; `shared` for every kind.
    for kind in Kind::ALL {
        let c = one(&format!("{kind} peer inside => close"));
        let has_ends = matches!(kind, Kind::Chardev | Kind::Fifo | Kind::Pipe | Kind::Socket | Kind::Any);
        assert_eq!(c.has_errors(), !has_ends, "{kind}: {:?}", c.diagnostics);
        rule(&format!("{kind} shared => close"));
    }
}

/// A rule's predicates, shown as the language writes them, compile back to the same predicates.
#[test]
fn predicates_display_as_they_are_written() {
    for text in [include_str!("fixtures/ok/every_construct.rules"), include_str!("fixtures/ok/linked.rules")] {
        let c = one(text);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        for r in c.rules.rules() {
            let shown: Vec<String> = r.predicates.iter().map(ToString::to_string).collect();
            let again = format!("{} {} => close", r.kind, shown.join(" "));
            assert_eq!(rule(&again).predicates, r.predicates, "{} shown as {again}", r.text);
        }
    }
}

#[test]
fn not_wraps_its_predicate_once_per_not() {
    let r = rule("file not not deleted not fd 0 => close");
    assert_eq!(r.predicates[0], Predicate::Not(Box::new(Predicate::Not(Box::new(Predicate::Deleted)))));
    assert_eq!(r.predicates[1], Predicate::Not(Box::new(Predicate::Fd(NumSet::single(0)))));
    // 32 deep is allowed, 33 is not.
    rule(&format!("file {}deleted => close", "not ".repeat(32)));
    assert!(one(&format!("file {}deleted => close", "not ".repeat(33))).has_errors());
}

#[test]
fn anon_names_take_brackets_literally_and_keep_wildcards() {
    let r = rule(r#"anon name "[kvm-vm]" => plugin "kvm""#);
    let Predicate::Name(g) = &r.predicates[0] else { panic!() };
    assert!(g.is_match("[kvm-vm]"));
    assert!(!g.is_match("k"), "brackets must not form a character class");
    let r = rule(r#"anon name "[kvm-*]" => close"#);
    let Predicate::Name(g) = &r.predicates[0] else { panic!() };
    assert!(g.is_match("[kvm-vcpu]") && !g.is_match("kvm-vcpu"));
    // A bracket the user escaped stays escaped (not escaped twice).
    let r = rule(r#"anon name "\\[x\\]" => close"#);
    let Predicate::Name(g) = &r.predicates[0] else { panic!() };
    assert!(g.is_match("[x]"));
    // In paths, brackets are a class, as in every glob.
    let r = rule(r#"file path "/dev/tty[0-9]" => close"#);
    let Predicate::Path(g) = &r.predicates[0] else { panic!() };
    assert!(g.is_match("/dev/tty3") && !g.is_match("/dev/tty[0-9]"));
}

#[test]
fn actions_and_notes() {
    assert_eq!(rule("file => reopen path").action, Action::ReopenPath { exact: false });
    assert_eq!(rule("file => reopen path exact").action, Action::ReopenPath { exact: true });
    assert_eq!(rule("dir => reopen   path\texact").action, Action::ReopenPath { exact: true });
    let r = rule(r#"file => reopen path exact because "the same bytes""#);
    assert_eq!((r.action.to_string(), r.because.as_deref()), ("reopen path exact".into(), Some("the same bytes")));
    assert_eq!(rule(r#"file => reopen "/new""#).action, Action::ReopenSubst { path: "/new".into() });
    assert_eq!(rule("memfd => contents").action, Action::Contents { limit: None });
    assert_eq!(rule("pipe => recreate").action, Action::Recreate);
    assert_eq!(rule(r#"any => inherit "x""#).action, Action::Inherit { name: "x".into() });
    assert_eq!(rule("any => close").action, Action::Close);
    assert_eq!(rule(r#"bpf => plugin "b""#).action, Action::Plugin { name: "b".into() });
    let r = rule(r#"io_uring => reject "say \"no\"\tplease\\""#);
    assert_eq!(r.action, Action::Reject { reason: "say \"no\"\tplease\\".into() });
    assert_eq!(r.reason(), Some("say \"no\"\tplease\\"));
    let r = rule(r#"inotify => recreate because "events\nare dropped""#);
    assert_eq!(r.because.as_deref(), Some("events\nare dropped"));
}

#[test]
fn rules_know_their_origin_and_joined_text() {
    let text = "# head\n\nfile => close\n  socket family unix \\\n     type stream  \\\r\n  => recreate   # note\npipe => recreate";
    let c = one(text);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let rules = c.rules.rules();
    assert_eq!(rules.len(), 3);
    assert_eq!((rules[0].origin.line, &text[rules[0].origin.span.clone()]), (3, "file => close"));
    assert_eq!(rules[1].origin.line, 4);
    assert_eq!(&text[rules[1].origin.span.clone()], "socket family unix \\\n     type stream  \\\r\n  => recreate");
    assert_eq!(rules[1].text, "socket family unix type stream => recreate");
    assert_eq!(rules[1].origin.to_string(), "t.rules:4");
    assert_eq!(rules[2].origin.line, 7);
    assert_eq!(rules[1].kind, Kind::Socket);
}

#[test]
fn sources_keep_their_order_and_bad_rules_are_left_out() {
    let a = Source::new("a.rules", "file => close\nchrdev => close\npipe => recreate\n");
    let b = Source::new("b.rules", "socket => contents\nsocket => recreate\n");
    let c = compile(&[b.clone(), a.clone()]);
    let got: Vec<String> = c.rules.rules().iter().map(|r| r.origin.to_string()).collect();
    assert_eq!(got, ["b.rules:2", "a.rules:1", "a.rules:3"]);
    let errors: Vec<(&str, &str)> =
        c.diagnostics.iter().filter(|d| d.is_error()).map(|d| (d.source.as_ref().unwrap().name(), d.code)).collect();
    assert_eq!(
        errors,
        [("b.rules", "crrules::validate::inapplicable_action"), ("a.rules", "crrules::parse::unknown_kind")]
    );
}

#[test]
fn one_rule_can_carry_several_errors() {
    let c = one("chrdev pth \"/x\" flags O_APEND => reopn");
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "crrules::parse::unknown_kind",
            "crrules::parse::unknown_predicate",
            "crrules::parse::unknown_flag",
            "crrules::parse::unknown_action"
        ]
    );
    assert!(c.rules.is_empty());
}

#[test]
fn a_file_with_thousands_of_errors_reports_a_bounded_number() {
    let text = "chrdev => close\n".repeat(5000);
    let c = one(&text);
    assert_eq!(c.diagnostics.len(), 101);
    let last = c.diagnostics.last().unwrap();
    assert_eq!(last.code, "crrules::parse::too_many_errors");
    assert_eq!(last.message, "4900 more problems in this file are not shown");
}

#[test]
fn rendered_errors_name_file_line_column_and_show_the_help() {
    let c = compile(&[Source::new("site/10-local.rules", "file => close\n\nchardev  1:3 => contents\n")]);
    let d = &c.diagnostics[0];
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, &d.drawable())
        .unwrap();
    assert!(out.contains("crrules::validate::inapplicable_action"), "{out}");
    assert!(out.contains("`contents` cannot apply to `chardev`"), "{out}");
    assert!(out.contains("[site/10-local.rules:3:17]"), "{out}");
    assert!(out.contains("chardev  1:3 => contents"), "{out}");
    assert!(out.contains("help: `contents` applies to `file` and `memfd`"), "{out}");
}

#[test]
fn invalid_utf8_is_an_error_naming_the_offset() {
    let err = Source::from_bytes("bad.rules", b"file => close\n\xff\xfe => close\n".to_vec()).unwrap_err();
    assert_eq!(err.message, "`bad.rules` is not valid UTF-8: byte offset 14 (line 2) is 0xff");
}

#[test]
fn globs_escape_metacharacters_and_fs_takes_bare_words() {
    let r = rule(r#"file path "/srv/\\*weird" fs fuse.* => close"#);
    let Predicate::Path(g) = &r.predicates[0] else { panic!() };
    assert!(g.is_match("/srv/*weird") && !g.is_match("/srv/xweird"));
    let Predicate::Fs(g) = &r.predicates[1] else { panic!() };
    assert!(g.is_match("fuse.sshfs") && !g.is_match("fuseblk"));
}

/// Every rule in a code block of grammar/README.md compiles as documented.
#[test]
fn the_grammar_readme_examples_compile() {
    let readme = include_str!("../../grammar/README.md");
    let mut in_block = false;
    let mut block = String::new();
    let mut blocks = 0;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            if in_block {
                let c = one(&block);
                assert!(!c.has_errors(), "{block}\n{:?}", c.diagnostics);
                assert!(!c.rules.is_empty(), "{block}");
                blocks += 1;
                block.clear();
            }
            in_block = !in_block;
        } else if in_block {
            block.push_str(line.trim_start());
            block.push('\n');
        }
    }
    assert!(blocks >= 4, "{blocks} code blocks");
}

/// Large files are compiled in chunks on several threads; the result must be the same as in order.
#[test]
fn a_large_file_keeps_rule_and_error_order() {
    let mut text = String::new();
    for i in 0..9000 {
        if i % 1000 == 999 {
            text.push_str("chrdev => close\n");
        } else {
            text.push_str(&format!("any fd {i} => close\n"));
        }
    }
    let c = one(&text);
    assert_eq!(c.rules.len(), 9000 - 9);
    let lines: Vec<u32> = c.rules.rules().iter().map(|r| r.origin.line).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]));
    assert_eq!((lines[998], lines[999]), (999, 1001));
    let errors: Vec<usize> = c.diagnostics.iter().map(|d| d.primary_span().unwrap().start).collect();
    assert_eq!(errors.len(), 9);
    assert!(errors.windows(2).all(|w| w[0] < w[1]));
}
