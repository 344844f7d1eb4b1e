//! Shadowing, duplicate and never-matching warnings on policy text, and coverage: each case is a policy,
//! the warnings it must produce (code, line, message) and, where a rule is named, which ones.

use crrules_rules::analysis::{Budget, shadowing_within};
use crrules_rules::{Diagnostic, Severity, Source, compile, lint};

fn warnings(text: &str) -> Vec<Diagnostic> {
    let c = lint(&[Source::new("t.rules", text)]);
    assert!(!c.has_errors(), "{text}: {:?}", c.diagnostics);
    c.diagnostics.into_iter().filter(|d| d.severity == Severity::Warning).collect()
}

/// The (code, underlined rule, rules named in related) of each warning.
fn summary(text: &str) -> Vec<(&'static str, String, Vec<String>)> {
    warnings(text)
        .iter()
        .map(|d| {
            let related = d.related.iter().map(|r| r.underlined().unwrap_or("?").to_owned()).collect();
            (d.code, d.underlined().unwrap_or("?").to_owned(), related)
        })
        .collect()
}

fn s(x: &str) -> String {
    x.to_owned()
}

#[test]
fn duplicates_are_reported_once_with_the_first_location() {
    let text = "chardev 1:3 => reopen path\nfile => close\nchardev   1:3   =>   reopen path  # again\n";
    let w = warnings(text);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].code, "crrules::lint::duplicate");
    assert_eq!(w[0].message, "this rule repeats the rule at `t.rules:1`, so it never decides anything");
    assert_eq!(w[0].help.as_deref(), Some("remove one of the two"));
    assert_eq!(w[0].underlined(), Some("chardev   1:3   =>   reopen path"));
    assert_eq!(w[0].related[0].underlined(), Some("chardev 1:3 => reopen path"));
    // Predicates in another order are the same rule.
    let text = "file deleted size <= 1MiB => contents\nfile size <= 1MiB deleted => contents\n";
    assert_eq!(
        summary(text),
        vec![(
            "crrules::lint::duplicate",
            s("file size <= 1MiB deleted => contents"),
            vec![s("file deleted size <= 1MiB => contents")]
        )]
    );
}

#[test]
fn a_rule_covered_by_one_earlier_rule_is_shadowed() {
    let cases: &[(&str, &str, &str)] = &[
        ("chardev 1:* => reopen path\nchardev 1:3 => close\n", "chardev 1:3 => close", "chardev 1:* => reopen path"),
        ("any => close\nfile => reopen path\n", "file => reopen path", "any => close"),
        (
            "chardev *:* => close\nchardev 4:64-255 path \"/dev/ttyS*\" => close\n",
            "chardev 4:64-255 path \"/dev/ttyS*\" => close",
            "chardev *:* => close",
        ),
        (
            "file path \"/var/**\" => reopen path\nfile path \"/var/log/syslog\" => close\n",
            "file path \"/var/log/syslog\" => close",
            "file path \"/var/**\" => reopen path",
        ),
        (
            "file path \"**\" => reopen path\nfile path \"/a\" deleted => close\n",
            "file path \"/a\" deleted => close",
            "file path \"**\" => reopen path",
        ),
        (
            "file deleted => contents\nfile deleted size > 1GiB => close\n",
            "file deleted size > 1GiB => close",
            "file deleted => contents",
        ),
        (
            "socket family unix => recreate\nsocket family unix type stream state listen => close\n",
            "socket family unix type stream state listen => close",
            "socket family unix => recreate",
        ),
        (
            "any fd 0-2 => inherit \"stdio\"\nfile fd 1 => close\n",
            "file fd 1 => close",
            "any fd 0-2 => inherit \"stdio\"",
        ),
        (
            "file flags O_APPEND => reopen path\nfile flags O_APPEND,O_WRONLY => close\n",
            "file flags O_APPEND,O_WRONLY => close",
            "file flags O_APPEND => reopen path",
        ),
        (
            "file access rw => close\nfile flags O_RDWR,O_APPEND => reopen path\n",
            "file flags O_RDWR,O_APPEND => reopen path",
            "file access rw => close",
        ),
        (
            "anon name \"[kvm-*]\" => plugin \"kvm\"\nanon name \"[kvm-vm]\" => close\n",
            "anon name \"[kvm-vm]\" => close",
            "anon name \"[kvm-*]\" => plugin \"kvm\"",
        ),
        (
            "file not deleted => reopen path\nfile not deleted path \"/x\" => close\n",
            "file not deleted path \"/x\" => close",
            "file not deleted => reopen path",
        ),
        ("pipe => recreate\npipe peer outside => close\n", "pipe peer outside => close", "pipe => recreate"),
        (
            "any peer inside => inherit \"peers\"\nsocket peer inside family unix => close\n",
            "socket peer inside family unix => close",
            "any peer inside => inherit \"peers\"",
        ),
        (
            "pipe not peer outside => recreate\npipe peer none => close\n",
            "pipe peer none => close",
            "pipe not peer outside => recreate",
        ),
        (
            "any shared => close\nfile shared deleted => contents\n",
            "file shared deleted => contents",
            "any shared => close",
        ),
    ];
    for &(text, shadowed, by) in cases {
        assert_eq!(summary(text), vec![("crrules::lint::shadowed", s(shadowed), vec![s(by)])], "{text}");
    }
    let w = warnings("chardev 1:* => reopen path\nchardev 1:3 => close\n");
    assert_eq!(w[0].message, "this rule can never match: the rule at `t.rules:1` matches every fd it would");
    assert_eq!(w[0].help.as_deref(), Some("remove this rule, or move it above `t.rules:1` if it should decide first"));
    assert_eq!(w[0].related[0].message, "`t.rules:1` decides first");
}

#[test]
fn a_rule_covered_by_earlier_rules_together_is_shadowed() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "chardev 4:0-127 => close\nchardev 4:128-1048575 => reopen path\nchardev 4:100-200 => reject \"no\"\n",
            "chardev 4:100-200 => reject \"no\"",
            &["chardev 4:0-127 => close", "chardev 4:128-1048575 => reopen path"],
        ),
        (
            "file deleted => contents\nfile not deleted => reopen path\nfile path \"/x\" => close\n",
            "file path \"/x\" => close",
            &["file deleted => contents", "file not deleted => reopen path"],
        ),
        (
            "socket family unix => recreate\nsocket not family unix => close\nsocket state listen => recreate\n",
            "socket state listen => recreate",
            &["socket family unix => recreate", "socket not family unix => close"],
        ),
        (
            "file access rw => close\nfile access ro => reopen path\nfile access wo => close\nfile flags O_APPEND => reopen path\n",
            "file flags O_APPEND => reopen path",
            &["file access rw => close", "file access ro => reopen path", "file access wo => close"],
        ),
        (
            // A rule that takes no part is not named.
            "chardev 1:3 => close\nfile path \"/a\" => close\nchardev not 1:3 => close\nchardev path \"/dev/null\" => reopen path\n",
            "chardev path \"/dev/null\" => reopen path",
            &["chardev 1:3 => close", "chardev not 1:3 => close"],
        ),
        (
            "chardev 1:{3,5} => reopen path\nchardev not 1:{3,5} => close\nchardev 1:5 access rw => close\n",
            "chardev 1:5 access rw => close",
            &["chardev 1:{3,5} => reopen path"],
        ),
        (
            // Every place, and the fds whose ends were not linked.
            "pipe peer inside => recreate\npipe peer outside => close\npipe peer none => close\n\
             pipe not peer inside not peer outside not peer none => close\npipe packet => close\n",
            "pipe packet => close",
            &[
                "pipe peer inside => recreate",
                "pipe peer outside => close",
                "pipe peer none => close",
                "pipe not peer inside not peer outside not peer none => close",
            ],
        ),
        (
            "file shared => close\nfile not shared => reopen path\nfile path \"/x\" => close\n",
            "file path \"/x\" => close",
            &["file shared => close", "file not shared => reopen path"],
        ),
    ];
    for &(text, shadowed, by) in cases {
        let by = by.iter().map(|b| s(b)).collect();
        assert_eq!(summary(text), vec![("crrules::lint::shadowed", s(shadowed), by)], "{text}");
    }
    let w = warnings(cases[0].0);
    assert_eq!(
        w[0].message,
        "this rule can never match: the rules at `t.rules:1`, `t.rules:2` together match every fd it would"
    );
}

#[test]
fn rules_that_only_look_covered_are_not_reported() {
    let clean = [
        // Reverse order: the specific rule decides first.
        "chardev 1:3 => close\nchardev 1:* => reopen path\n",
        // `*` stays inside one component.
        "file path \"/var/*\" => close\nfile path \"/var/log/x\" => reopen path\n",
        // Sizes split at 1 MiB leave the fds of unknown size.
        "file size < 1MiB => contents\nfile size >= 1MiB => reopen path\nfile deleted => close\n",
        // `chardev *:*` leaves device files whose number is unknown.
        "chardev *:* => close\nchardev => reopen path\n",
        // Another kind.
        "file => close\ndir => reopen path\n",
        // Different globs are unrelated in general.
        "file path \"/a/*.log\" => close\nfile path \"/a/b*\" => close\nfile path \"/a/*\" => reopen path\n",
        // `O_WRONLY` set does not make the access `wo` (`O_WRONLY|O_RDWR` is `rw`).
        "file access wo => close\nfile flags O_WRONLY,O_APPEND => reopen path\n",
        // Same selector, the first with an extra condition.
        "socket family unix state listen => recreate\nsocket family unix => close\n",
        // Access modes: ro and wo leave rw.
        "file access ro => close\nfile access wo => close\nfile flags O_APPEND => reopen path\n",
        // An `any` rule is not covered by rules of single kinds (not looked for).
        "file => close\nany path \"/x\" => close\n",
        // The specific rule first.
        "pipe peer outside => close\npipe => recreate\n",
        // Another place.
        "pipe peer inside => recreate\npipe peer outside => close\n",
        // The three places leave the fds whose ends were not linked.
        "pipe peer inside => recreate\npipe peer outside => close\npipe peer none => close\npipe => reject \"x\"\n",
        // `not peer outside` holds for those, `peer inside` does not.
        "pipe peer inside => recreate\npipe not peer outside => close\n",
        "file shared => close\nfile => reopen path\n",
    ];
    for text in clean {
        assert_eq!(summary(text), vec![], "{text}");
    }
}

#[test]
fn contradictory_rules_never_match() {
    let cases = [
        "socket family unix family inet => close\n",
        "file size < 0 => close\n",
        "file deleted not deleted => close\n",
        "file access ro flags O_WRONLY => close\n",
        "file path \"/a\" path \"/b\" => close\n",
        "file path \"/a\" not path \"/*\" => close\n",
        "pipe peer inside peer outside => close\n",
        "socket shared not shared => close\n",
    ];
    for text in cases {
        let w = warnings(text);
        assert_eq!(w.len(), 1, "{text}: {w:?}");
        assert_eq!(w[0].code, "crrules::lint::never_matches", "{text}");
        assert_eq!(w[0].message, "this rule can never match: its conditions exclude each other");
        assert_eq!(w[0].underlined(), Some(text.trim_end()));
    }
}

#[test]
fn shadowing_across_files_points_into_each_file() {
    let sources = [
        Source::new("/usr/lib/crrules/rules.d/10-dist.rules", "chardev 136:* => inherit \"pts\"\n"),
        Source::new("/etc/crrules/rules.d/50-site.rules", "# site\nchardev 136:0-7 => close\n"),
    ];
    let c = lint(&sources);
    let w: Vec<_> = c.diagnostics.iter().filter(|d| d.severity == Severity::Warning).collect();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].underlined(), Some("chardev 136:0-7 => close"));
    assert_eq!(w[0].source.as_ref().map(|s| s.name().to_owned()), Some("/etc/crrules/rules.d/50-site.rules".into()));
    assert!(w[0].message.contains("`/usr/lib/crrules/rules.d/10-dist.rules:1`"), "{}", w[0].message);
    assert_eq!(w[0].related[0].underlined(), Some("chardev 136:* => inherit \"pts\""));
}

#[test]
fn a_large_policy_is_analysed() {
    // Distinct rules of every shape, then catch-alls that must not be reported, then rules they cover.
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!("chardev {}:{} => reopen path\n", 10 + i % 4000, i));
        text.push_str(&format!("file path \"/srv/app{i}/**\" => reopen path\n"));
        text.push_str(&format!("socket family inet fd {i} => recreate\n"));
    }
    text.push_str("chardev 10:* => close\nfile path \"/srv/app7/x\" => close\nany => close\n");
    let w = summary(&text);
    assert_eq!(
        w,
        vec![(
            "crrules::lint::shadowed",
            s("file path \"/srv/app7/x\" => close"),
            vec![s("file path \"/srv/app7/**\" => reopen path")]
        )]
    );
}

/// Nested ranges: each rule overlaps every earlier one and none is covered, so checking them costs more
/// and more; then rules that are shadowed and a duplicate.
fn adversarial() -> String {
    let mut text = String::from("chardev 1:* => reopen path\nchardev 1:3 => close\n");
    for i in 0..60 {
        text.push_str(&format!("chardev 4:0-{} => close\n", 10 + 10 * i));
    }
    text.push_str("chardev 1:5 => close\nchardev 1:3 => close\n");
    text
}

/// The warnings and notes of the shadowing analysis within `budget`: (code, underlined rule, message).
fn within(text: &str, budget: Budget) -> Vec<(&'static str, String, String)> {
    let sources = [Source::new("t.rules", text)];
    let c = compile(&sources);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    shadowing_within(&c.rules, &sources, budget)
        .into_iter()
        .map(|d| (d.code, d.underlined().unwrap_or("?").to_owned(), d.message))
        .collect()
}

#[test]
fn past_its_budget_the_analysis_stops_says_where_and_keeps_what_it_checked() {
    let text = adversarial();
    // Unlimited, everything is checked.
    let all = within(&text, Budget { total: u64::MAX / 16, per_rule: u64::MAX / 16 });
    let codes: Vec<(&str, &str)> = all.iter().map(|(c, u, _)| (*c, u.as_str())).collect();
    assert_eq!(
        codes,
        vec![
            ("crrules::lint::shadowed", "chardev 1:3 => close"),
            ("crrules::lint::shadowed", "chardev 1:5 => close"),
            ("crrules::lint::duplicate", "chardev 1:3 => close"),
        ]
    );
    // Each case: the budget, the warnings (code, line) still reported, and part of the note.
    type Case = (Budget, &'static [(&'static str, usize)], &'static str);
    let cases: &[Case] = &[
        // The whole budget runs out among the nested rules: the rule shadowed before them is reported, the
        // one after them is not, the duplicate is (duplicates are found everywhere).
        (
            Budget { total: 300, per_rule: 10_000 },
            &[("crrules::lint::shadowed", 2), ("crrules::lint::duplicate", 64)],
            "the shadowing analysis stopped after ",
        ),
        // One rule's share runs out: those rules are left unchecked, the others still are.
        (
            Budget { total: 1_000_000, per_rule: 40 },
            &[("crrules::lint::shadowed", 2), ("crrules::lint::shadowed", 63), ("crrules::lint::duplicate", 64)],
            "rules, the first here, overlap too many earlier rules to be checked for being shadowed within 40 comparisons each",
        ),
    ];
    let lines: Vec<&str> = text.lines().collect();
    for (budget, warnings, note) in cases {
        let found = within(&text, *budget);
        let (notes, rest): (Vec<_>, Vec<_>) = found.iter().partition(|(c, _, _)| *c == "crrules::lint::incomplete");
        let rest: Vec<(&str, &str)> = rest.iter().map(|(c, u, _)| (*c, u.as_str())).collect();
        let expected: Vec<(&str, &str)> = warnings.iter().map(|&(c, line)| (c, lines[line - 1])).collect();
        assert_eq!(rest, expected, "{budget:?}");
        assert_eq!(notes.len(), 1, "{budget:?}: {found:?}");
        let (_, underlined, message) = notes[0];
        assert!(message.contains(note), "{budget:?}: {message}");
        assert!(underlined.starts_with("chardev 4:0-"), "{budget:?}: the note points at {underlined}");
    }
    // The note names the first rule left unchecked and how many follow it.
    let stopped = within(&text, cases[0].0);
    let (_, underlined, message) = stopped.iter().find(|(c, _, _)| *c == "crrules::lint::incomplete").unwrap();
    let line = 1 + lines.iter().position(|l| l == underlined).unwrap();
    let tail = format!(
        " comparisons: the {} rule(s) from `t.rules:{line}` on were not checked for being shadowed",
        lines.len() - line + 1
    );
    assert!(message.ends_with(&tail), "{message}");
}

mod coverage {
    use crrules_rules::analysis::coverage::{DeviceGap, FamilyGap, Status};
    use crrules_rules::analysis::{Coverage, coverage};
    use crrules_rules::rule::NumSet;
    use crrules_rules::vocab::{Kind, SockFamily, SockType};
    use crrules_rules::{Source, compile};

    const POLICY: &str = r#"chardev 1:* => reopen path
chardev 136:* => inherit "pts"
chardev 4:1-63 => inherit "vt"
chardev path "/dev/kvm" => reject "kvm"
chardev 10:{200,229} 10:229-232 => reject "fuse"
file => reopen path
socket family unix => recreate
socket family inet type stream => recreate
socket family inet not type stream => close
socket family inet6 type dgram => close
pipe => recreate
any fd 0-2 => inherit "stdio"
"#;

    fn of(text: &str) -> Coverage {
        let c = compile(&[Source::new("t.rules", text)]);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        coverage(&c.rules)
    }

    fn kind(c: &Coverage, k: Kind) -> &crrules_rules::analysis::coverage::KindCoverage {
        c.kinds.iter().find(|x| x.kind == k).unwrap()
    }

    #[test]
    fn device_numbers_fall_through_as_ranges() {
        let c = of(POLICY);
        let chardev = kind(&c, Kind::Chardev);
        assert_eq!(chardev.status, Status::Partial);
        let gap = |majors: &[(u32, u32)], minors: &[(u32, u32)]| DeviceGap {
            majors: NumSet::from_ranges(majors.iter().copied()),
            minors: NumSet::from_ranges(minors.iter().copied()),
        };
        let all = (0, (1 << 20) - 1);
        assert_eq!(
            chardev.devices,
            vec![
                gap(&[(0, 0)], &[all]),
                gap(&[(2, 3)], &[all]),
                gap(&[(4, 4)], &[(0, 0), (64, (1 << 20) - 1)]),
                gap(&[(5, 9)], &[all]),
                gap(&[(10, 10)], &[(0, 228), (230, (1 << 20) - 1)]),
                gap(&[(11, 135)], &[all]),
                gap(&[(137, 4095)], &[all]),
            ]
        );
        assert_eq!(chardev.conditions, vec![r#"path "/dev/kvm""#.to_owned(), "fd 0-2".to_owned()]);
        let blockdev = kind(&c, Kind::Blockdev);
        assert_eq!(blockdev.devices, vec![gap(&[(0, 4095)], &[all])]);
    }

    #[test]
    fn socket_families_fall_through_with_their_open_types() {
        let c = of(POLICY);
        let socket = kind(&c, Kind::Socket);
        assert_eq!(socket.status, Status::Partial);
        let families: Vec<Option<SockFamily>> = socket.families.iter().map(|g| g.family).collect();
        assert!(!families.contains(&Some(SockFamily::Unix)) && !families.contains(&Some(SockFamily::Inet)));
        assert!(families.contains(&None) && families.contains(&Some(SockFamily::Netlink)));
        let inet6 = socket.families.iter().find(|g| g.family == Some(SockFamily::Inet6)).unwrap();
        let open: Vec<Option<SockType>> = std::iter::once(None)
            .chain(SockType::ALL.iter().copied().filter(|t| *t != SockType::Dgram).map(Some))
            .collect();
        assert_eq!(inet6, &FamilyGap { family: Some(SockFamily::Inet6), types: open });
    }

    #[test]
    fn kinds_are_covered_partly_covered_or_not_at_all() {
        let c = of(POLICY);
        assert_eq!(kind(&c, Kind::File).status, Status::Covered);
        assert_eq!(kind(&c, Kind::Pipe).status, Status::Covered);
        assert_eq!(kind(&c, Kind::Eventfd).status, Status::Partial);
        assert_eq!(kind(&c, Kind::Eventfd).conditions, vec!["fd 0-2".to_owned()]);
        let c = of("file deleted => contents\nfile not deleted => reopen path\nchardev *:* => close\n");
        assert_eq!(kind(&c, Kind::File).status, Status::Covered, "covered by two rules together");
        assert_eq!(kind(&c, Kind::Pipe).status, Status::Uncovered);
        // `*:*` leaves device files whose number is unknown, so the kind is only partly covered, yet no
        // device number is listed.
        assert_eq!(kind(&c, Kind::Chardev).status, Status::Partial);
        assert_eq!(kind(&c, Kind::Chardev).devices, vec![]);
    }

    #[test]
    fn the_report_is_compact() {
        let shown = of(POLICY).to_string();
        let expected = r#"coverage (fds no rule decides are rejected with "no rule matches"):
  every fd decided: file, pipe
  dir: decided only when `fd 0-2`
  chardev: no rule for device numbers 0:*, 2-3:*, 4:{0,64-1048575}, 5-9:*, 10:{0-228,230-1048575}, 11-135:*, 137-4095:*; other rules decide only when `path "/dev/kvm"`, `fd 0-2`
"#;
        assert!(shown.starts_with(expected), "{shown}");
        assert!(shown.contains("\n  socket: no rule for family (unknown), inet6 (type (unknown), stream, raw, rdm, seqpacket, packet), netlink,"), "{shown}");
        assert!(shown.contains("\n  eventfd: decided only when `fd 0-2`\n"), "{shown}");
        let c = of("file => close\n");
        assert!(c.to_string().contains("\n  no rule at all: dir, chardev, blockdev,"), "{c}");
    }
}
