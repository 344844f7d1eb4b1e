//! Each predicate's meaning, as a table of (rule, fd facts, expected) cases decided by both matchers;
//! then precedence between anchored and unanchored rules, and `explain`'s trials.

use crrules_engine::facts::{DevNum, FdFacts, FdRef, OpenFlags, SocketFacts};
use crrules_engine::matcher::{CompiledMatcher, Matcher, Outcome, Reference, Trial, explain};
use crrules_rules::rule::{Action, CmpOp, Glob, NumSet, Origin, Predicate, Rule, RuleSet};
use crrules_rules::vocab::{Access, Kind, MAJOR_LIMIT, MINOR_LIMIT, PeerPlace, SockFamily, SockState, SockType};

fn rule(kind: Kind, predicates: Vec<Predicate>) -> Rule {
    Rule {
        kind,
        predicates,
        action: Action::Close,
        because: None,
        origin: Origin { file: "test.rules".into(), line: 1, span: 0..0 },
        text: String::new(),
    }
}

fn set(rules: Vec<Rule>) -> RuleSet {
    RuleSet { rules }
}

fn glob(text: &str) -> Glob {
    Glob::new(text).unwrap()
}

fn dev(major: NumSet, minor: NumSet) -> Predicate {
    Predicate::Dev { major, minor }
}

fn not(p: Predicate) -> Predicate {
    Predicate::Not(Box::new(p))
}

fn chardev(major: u32, minor: u32) -> FdFacts {
    let mut f = FdFacts::new(3, Kind::Chardev, "/dev/x");
    f.dev = Some(DevNum { major, minor });
    f.path = Some("/dev/x".into());
    f
}

fn file(path: &str) -> FdFacts {
    let mut f = FdFacts::new(4, Kind::File, path);
    f.path = Some(path.into());
    f.size = Some(100);
    f.fs = Some("ext4".into());
    f
}

fn socket(family: Option<SockFamily>, sock_type: Option<SockType>, state: Option<SockState>) -> FdFacts {
    let mut f = FdFacts::new(5, Kind::Socket, "socket:[1]");
    f.socket = Some(SocketFacts { family, sock_type, state, ..SocketFacts::default() });
    f
}

/// A pipe end whose other end is at `peer` (`None`: the ends were not linked).
fn pipe(peer: Option<PeerPlace>) -> FdFacts {
    let mut f = FdFacts::new(7, Kind::Pipe, "pipe:[9]");
    f.peer = peer;
    f
}

fn with(mut f: FdFacts, change: impl FnOnce(&mut FdFacts)) -> FdFacts {
    change(&mut f);
    f
}

/// Both matchers give `expected` for one rule against `facts`.
fn decide(name: &str, rule: Rule, facts: &FdFacts, expected: bool) {
    let rules = set(vec![rule]);
    let want = expected.then_some(0);
    assert_eq!(Reference::new(&rules).first_match(facts), want, "reference: {name}");
    assert_eq!(CompiledMatcher::new(&rules).first_match(facts), want, "compiled: {name}");
}

#[test]
fn each_predicate_means_what_the_reference_says() {
    use Predicate as P;
    let ro = NumSet::single;
    let r = |a: u32, b: u32| NumSet::from_ranges([(a, b)]);
    let null = chardev(1, 3);
    let cases: Vec<(&str, Rule, FdFacts, bool)> = vec![
        ("kind any covers chardev", rule(Kind::Any, vec![]), null.clone(), true),
        ("kind file does not cover chardev", rule(Kind::File, vec![]), null.clone(), false),
        ("exact device", rule(Kind::Chardev, vec![dev(ro(1), ro(3))]), null.clone(), true),
        ("exact device, other minor", rule(Kind::Chardev, vec![dev(ro(1), ro(5))]), null.clone(), false),
        ("exact device, blockdev kind", rule(Kind::Blockdev, vec![dev(ro(1), ro(3))]), null.clone(), false),
        (
            "device wildcard minor",
            rule(Kind::Chardev, vec![dev(ro(136), NumSet::all(MINOR_LIMIT))]),
            chardev(136, 7),
            true,
        ),
        ("device minor range in", rule(Kind::Chardev, vec![dev(ro(4), r(64, 255))]), chardev(4, 64), true),
        ("device minor range out", rule(Kind::Chardev, vec![dev(ro(4), r(64, 255))]), chardev(4, 63), false),
        (
            "device major range",
            rule(Kind::Chardev, vec![dev(r(128, 135), NumSet::all(MINOR_LIMIT))]),
            chardev(130, 2),
            true,
        ),
        (
            "device major range out",
            rule(Kind::Chardev, vec![dev(r(128, 135), NumSet::all(MINOR_LIMIT))]),
            chardev(136, 2),
            false,
        ),
        ("device *:5", rule(Kind::Chardev, vec![dev(NumSet::all(MAJOR_LIMIT), ro(5))]), chardev(4000, 5), true),
        (
            "device *:5 other minor",
            rule(Kind::Chardev, vec![dev(NumSet::all(MAJOR_LIMIT), ro(5))]),
            chardev(4000, 6),
            false,
        ),
        (
            "device set",
            rule(Kind::Chardev, vec![dev(ro(1), NumSet::from_ranges([(3, 3), (5, 5), (7, 9)]))]),
            chardev(1, 8),
            true,
        ),
        (
            "device set gap",
            rule(Kind::Chardev, vec![dev(ro(1), NumSet::from_ranges([(3, 3), (5, 5), (7, 9)]))]),
            chardev(1, 6),
            false,
        ),
        (
            "device wide minor beyond the kernel's range",
            rule(Kind::Chardev, vec![dev(r(1, 200), NumSet::all(MINOR_LIMIT))]),
            chardev(2, MINOR_LIMIT),
            false,
        ),
        ("device on an fd without one", rule(Kind::Any, vec![dev(ro(1), ro(3))]), file("/dev/null"), false),
        ("not device on an fd without one", rule(Kind::Any, vec![not(dev(ro(1), ro(3)))]), file("/dev/null"), true),
        ("path literal", rule(Kind::File, vec![P::Path(glob("/etc/passwd"))]), file("/etc/passwd"), true),
        ("path literal other", rule(Kind::File, vec![P::Path(glob("/etc/passwd"))]), file("/etc/shadow"), false),
        (
            "path star stays in a component",
            rule(Kind::File, vec![P::Path(glob("/var/log/*"))]),
            file("/var/log/apt/x"),
            false,
        ),
        ("path double star crosses", rule(Kind::File, vec![P::Path(glob("/var/**"))]), file("/var/log/apt/x"), true),
        (
            "path alternatives",
            rule(Kind::Any, vec![P::Path(glob("/dev/{null,zero}"))]),
            with(chardev(1, 5), |f| f.path = Some("/dev/zero".into())),
            true,
        ),
        ("path on an fd without one", rule(Kind::Any, vec![P::Path(glob("**"))]), socket(None, None, None), false),
        (
            "not path on an fd without one",
            rule(Kind::Any, vec![not(P::Path(glob("**")))]),
            socket(None, None, None),
            true,
        ),
        ("fs", rule(Kind::File, vec![P::Fs(glob("ext*"))]), file("/a"), true),
        ("fs other", rule(Kind::File, vec![P::Fs(glob("fuse.*"))]), file("/a"), false),
        ("fs unknown", rule(Kind::File, vec![P::Fs(glob("*"))]), with(file("/a"), |f| f.fs = None), false),
        ("deleted", rule(Kind::File, vec![P::Deleted]), with(file("/a"), |f| f.deleted = true), true),
        ("deleted, not deleted", rule(Kind::File, vec![P::Deleted]), file("/a"), false),
        ("not deleted", rule(Kind::File, vec![not(P::Deleted)]), file("/a"), true),
        (
            "flags all set",
            rule(Kind::File, vec![P::Flags(0o2001)]),
            with(file("/a"), |f| f.flags = OpenFlags(0o2002001)),
            true,
        ),
        (
            "flags one missing",
            rule(Kind::File, vec![P::Flags(0o2001)]),
            with(file("/a"), |f| f.flags = OpenFlags(0o2000)),
            false,
        ),
        (
            "access rw from O_RDWR",
            rule(Kind::File, vec![P::Access(Access::Rw)]),
            with(file("/a"), |f| f.flags = OpenFlags(0o2)),
            true,
        ),
        (
            "access ro from O_PATH",
            rule(Kind::File, vec![P::Access(Access::Ro)]),
            with(file("/a"), |f| f.flags = OpenFlags(0o10000000)),
            true,
        ),
        ("access wo, opened ro", rule(Kind::File, vec![P::Access(Access::Wo)]), file("/a"), false),
        ("size <=", rule(Kind::File, vec![P::Size(CmpOp::Le, 100)]), file("/a"), true),
        ("size <", rule(Kind::File, vec![P::Size(CmpOp::Lt, 100)]), file("/a"), false),
        ("size >", rule(Kind::File, vec![P::Size(CmpOp::Gt, 99)]), file("/a"), true),
        ("size >=", rule(Kind::File, vec![P::Size(CmpOp::Ge, 101)]), file("/a"), false),
        ("size ==", rule(Kind::File, vec![P::Size(CmpOp::Eq, 100)]), file("/a"), true),
        (
            "size < 0 never",
            rule(Kind::File, vec![P::Size(CmpOp::Lt, 0)]),
            with(file("/a"), |f| f.size = Some(0)),
            false,
        ),
        ("size unknown", rule(Kind::File, vec![P::Size(CmpOp::Ge, 0)]), with(file("/a"), |f| f.size = None), false),
        ("fd in range", rule(Kind::Any, vec![P::Fd(r(0, 4))]), file("/a"), true),
        ("fd out of range", rule(Kind::Any, vec![P::Fd(r(0, 2))]), file("/a"), false),
        ("negative fd", rule(Kind::Any, vec![P::Fd(NumSet::all(u32::MAX))]), with(file("/a"), |f| f.fd = -1), false),
        (
            "fd set with many ranges",
            rule(Kind::Any, vec![P::Fd(NumSet::from_ranges((0..40).map(|i| (i * 3, i * 3))))]),
            with(file("/a"), |f| f.fd = 117),
            true,
        ),
        (
            "family",
            rule(Kind::Socket, vec![P::Family(SockFamily::Unix)]),
            socket(Some(SockFamily::Unix), None, None),
            true,
        ),
        (
            "family other",
            rule(Kind::Socket, vec![P::Family(SockFamily::Inet)]),
            socket(Some(SockFamily::Unix), None, None),
            false,
        ),
        ("family unknown", rule(Kind::Socket, vec![P::Family(SockFamily::Inet)]), socket(None, None, None), false),
        (
            "not family unknown",
            rule(Kind::Socket, vec![not(P::Family(SockFamily::Inet))]),
            socket(None, None, None),
            true,
        ),
        (
            "type",
            rule(Kind::Socket, vec![P::SockType(SockType::Dgram)]),
            socket(None, Some(SockType::Dgram), None),
            true,
        ),
        (
            "type other",
            rule(Kind::Socket, vec![P::SockType(SockType::Dgram)]),
            socket(None, Some(SockType::Stream), None),
            false,
        ),
        (
            "state",
            rule(Kind::Socket, vec![P::State(SockState::Listen)]),
            socket(None, None, Some(SockState::Listen)),
            true,
        ),
        (
            "state with no socket facts",
            rule(Kind::Socket, vec![P::State(SockState::Listen)]),
            FdFacts::new(5, Kind::Socket, "socket:[1]"),
            false,
        ),
        (
            "triple",
            rule(
                Kind::Socket,
                vec![P::Family(SockFamily::Inet6), P::SockType(SockType::Stream), P::State(SockState::Listen)],
            ),
            socket(Some(SockFamily::Inet6), Some(SockType::Stream), Some(SockState::Listen)),
            true,
        ),
        (
            "triple, one part differs",
            rule(
                Kind::Socket,
                vec![P::Family(SockFamily::Inet6), P::SockType(SockType::Stream), P::State(SockState::Listen)],
            ),
            socket(Some(SockFamily::Inet6), Some(SockType::Dgram), Some(SockState::Listen)),
            false,
        ),
        (
            "two families can never both hold",
            rule(Kind::Socket, vec![P::Family(SockFamily::Inet6), P::Family(SockFamily::Inet)]),
            socket(Some(SockFamily::Inet6), None, None),
            false,
        ),
        (
            "name",
            rule(Kind::Anon, vec![P::Name(glob(r"\[kvm-*\]"))]),
            with(FdFacts::new(6, Kind::Anon, "anon_inode:[kvm-vm]"), |f| f.name = Some("[kvm-vm]".into())),
            true,
        ),
        (
            "name unknown",
            rule(Kind::Anon, vec![P::Name(glob("*"))]),
            FdFacts::new(6, Kind::Anon, "anon_inode:x"),
            false,
        ),
        ("peer outside", rule(Kind::Pipe, vec![P::Peer(PeerPlace::Outside)]), pipe(Some(PeerPlace::Outside)), true),
        (
            "peer inside, end outside",
            rule(Kind::Pipe, vec![P::Peer(PeerPlace::Inside)]),
            pipe(Some(PeerPlace::Outside)),
            false,
        ),
        ("peer none", rule(Kind::Any, vec![P::Peer(PeerPlace::None)]), pipe(Some(PeerPlace::None)), true),
        ("peer none, not linked", rule(Kind::Pipe, vec![P::Peer(PeerPlace::None)]), pipe(None), false),
        ("peer outside, not linked", rule(Kind::Pipe, vec![P::Peer(PeerPlace::Outside)]), pipe(None), false),
        ("not peer outside, not linked", rule(Kind::Pipe, vec![not(P::Peer(PeerPlace::Outside))]), pipe(None), true),
        (
            "not peer outside, end outside",
            rule(Kind::Pipe, vec![not(P::Peer(PeerPlace::Outside))]),
            pipe(Some(PeerPlace::Outside)),
            false,
        ),
        (
            "shared",
            rule(Kind::File, vec![P::Shared]),
            with(file("/a"), |f| f.shared_with = vec![FdRef { pid: 12, fd: 3 }]),
            true,
        ),
        ("shared, held once", rule(Kind::File, vec![P::Shared]), file("/a"), false),
        ("not shared, held once", rule(Kind::Any, vec![not(P::Shared)]), file("/a"), true),
        ("not not", rule(Kind::File, vec![not(not(P::Deleted))]), with(file("/a"), |f| f.deleted = true), true),
        ("all predicates must hold", rule(Kind::File, vec![P::Path(glob("/a")), P::Deleted]), file("/a"), false),
    ];
    for (name, rule, facts, expected) in cases {
        decide(name, rule, &facts, expected);
    }
}

#[test]
fn the_first_matching_rule_wins_across_anchored_and_unanchored_rules() {
    use Predicate as P;
    let rules = set(vec![
        rule(Kind::File, vec![P::Path(glob("/a")), P::Deleted]), // 0: anchored on path, fails
        rule(Kind::File, vec![P::Size(CmpOp::Gt, 1000)]),        // 1: unanchored, fails
        rule(Kind::Any, vec![P::Flags(0o2000)]),                 // 2: unanchored any, fails
        rule(Kind::File, vec![P::Path(glob("/*"))]),             // 3: anchored, holds
        rule(Kind::Any, vec![]),                                 // 4: unanchored any, holds
        rule(Kind::Chardev, vec![dev(NumSet::single(1), NumSet::single(3))]), // 5
        rule(Kind::Any, vec![dev(NumSet::single(1), NumSet::all(MINOR_LIMIT))]), // 6
    ]);
    let compiled = CompiledMatcher::new(&rules);
    let reference = Reference::new(&rules);
    let cases = [
        (file("/a"), Some(3)),
        (with(file("/a"), |f| f.deleted = true), Some(0)),
        (with(file("/a"), |f| f.size = Some(5000)), Some(1)),
        (with(file("/b/c"), |f| f.flags = OpenFlags(0o2000)), Some(2)),
        (file("/b/c"), Some(4)),
        (chardev(1, 3), Some(4)),
    ];
    for (facts, want) in cases {
        assert_eq!(reference.first_match(&facts), want, "{facts:?}");
        assert_eq!(compiled.first_match(&facts), want, "{facts:?}");
    }
    // Without the catch-all, the device rules decide.
    let mut rules = rules;
    rules.rules.remove(4);
    let compiled = CompiledMatcher::new(&rules);
    assert_eq!(compiled.first_match(&chardev(1, 3)), Some(4));
    assert_eq!(compiled.first_match(&chardev(1, 7)), Some(5));
    assert_eq!(compiled.first_match(&chardev(2, 7)), None);
    assert_eq!(compiled.len(), 6);
}

#[test]
fn an_empty_rule_set_matches_nothing() {
    let rules = RuleSet::default();
    assert_eq!(CompiledMatcher::new(&rules).first_match(&file("/a")), None);
    assert!(CompiledMatcher::new(&rules).is_empty());
    assert_eq!(Reference::new(&rules).first_match(&file("/a")), None);
}

#[test]
fn explain_lists_each_rule_tried_up_to_the_decision() {
    use Predicate as P;
    let rules = set(vec![
        rule(Kind::Socket, vec![]),
        rule(Kind::File, vec![P::Path(glob("/a")), P::Deleted]),
        rule(Kind::File, vec![P::Path(glob("/b"))]),
        rule(Kind::File, vec![]),
        rule(Kind::Any, vec![]),
    ]);
    let trials = explain(&rules, &file("/a"));
    assert_eq!(
        trials,
        vec![
            Trial { rule: 0, outcome: Outcome::Kind },
            Trial { rule: 1, outcome: Outcome::Predicate(1) },
            Trial { rule: 2, outcome: Outcome::Predicate(0) },
            Trial { rule: 3, outcome: Outcome::Matched },
        ]
    );
    let trials = explain(&rules, &chardev(1, 3));
    assert_eq!(trials.len(), 5);
    assert_eq!(trials.last(), Some(&Trial { rule: 4, outcome: Outcome::Matched }));
    rules.rules.len(); // rules outlive the trials: trials hold indices only
    let none = explain(&set(vec![rule(Kind::Socket, vec![])]), &file("/a"));
    assert_eq!(none, vec![Trial { rule: 0, outcome: Outcome::Kind }]);
}

#[test]
fn compiled_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledMatcher>();
    let rules = set(vec![rule(Kind::File, vec![Predicate::Path(glob("/t/*"))]), rule(Kind::Any, vec![])]);
    let compiled = CompiledMatcher::new(&rules);
    std::thread::scope(|s| {
        for t in 0..4 {
            let compiled = &compiled;
            s.spawn(move || {
                for i in 0..200 {
                    let want = if (i + t) % 2 == 0 { Some(0) } else { Some(1) };
                    let path = if want == Some(0) { format!("/t/{i}") } else { format!("/u/{i}") };
                    assert_eq!(compiled.first_match(&file(&path)), want);
                }
            });
        }
    });
}
