//! The compiled matcher picks the same rule as the reference interpreter: random policies (mixed kinds
//! with `any`, exact devices, ranges and wildcards, globs over a small alphabet of path pieces, socket
//! predicates, flags, sizes, fd sets, nested `not`) against random fd facts drawn from a universe that
//! overlaps the rules, so that most facts match something and the precedence between rules is exercised.

use crrules_engine::facts::{DevNum, FdFacts, OpenFlags, SocketFacts};
use crrules_engine::matcher::{Compiled, Matcher, Reference};
use crrules_rules::rule::{Action, CmpOp, Glob, NumSet, Origin, Predicate, Rule, RuleSet};
use crrules_rules::vocab::{Access, Kind, MAJOR_LIMIT, MINOR_LIMIT, SockFamily, SockState, SockType};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::Cell;

const FACT_KINDS: &[Kind] =
    &[Kind::File, Kind::Dir, Kind::Chardev, Kind::Blockdev, Kind::Socket, Kind::Anon, Kind::Pipe];
const MAJORS: &[u32] = &[0, 1, 4, 10, 136, 4095];
const MINORS: &[u32] = &[0, 3, 5, 64, 255, 256, 1 << 19, MINOR_LIMIT - 1];
const PIECES: &[&str] = &["a", "b", "dev", "x.log", "null"];
const GLOB_PIECES: &[&str] = &["a", "b", "dev", "x.log", "null", "*", "**", "*.log", "{a,b}", "?", "[ab]", "n*"];
const FS: &[&str] = &["ext4", "tmpfs", "fuse.sshfs", "proc"];
const FS_GLOBS: &[&str] = &["ext4", "tmp*", "fuse.*", "*", "proc"];
const NAMES: &[&str] = &["[eventfd]", "[kvm-vm]", "inotify", "bpf-map"];
const NAME_GLOBS: &[&str] = &[r"\[kvm-vm\]", r"\[*\]", "inotify", "*", "bpf-*", "[eventfd]"];
const FLAG_BITS: &[u32] = &[0o1, 0o2, 0o2000, 0o4000, 0o2000000, 0o10000000];
const SIZES: &[u64] = &[0, 1, 100, 4096, 1 << 20, u64::MAX];
const FAMILIES: &[SockFamily] = &[SockFamily::Unix, SockFamily::Inet, SockFamily::Inet6, SockFamily::Netlink];
const TYPES: &[SockType] = &[SockType::Stream, SockType::Dgram, SockType::Seqpacket];
const STATES: &[SockState] = &[SockState::Listen, SockState::Established, SockState::Unconnected];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(items)
}

/// A number near the interesting ones (`n - 1`, `n`, `n + 1`).
fn near(values: &'static [u32]) -> impl Strategy<Value = u32> {
    (pick(values), -1i64..=1).prop_map(|(v, d)| (i64::from(v) + d).clamp(0, i64::from(u32::MAX)) as u32)
}

/// A set of numbers: one, `*`, or up to three ranges with ends near the interesting values.
fn num_set(values: &'static [u32], limit: u32) -> impl Strategy<Value = NumSet> {
    prop_oneof![
        3 => pick(values).prop_map(NumSet::single),
        2 => Just(NumSet::all(limit)),
        3 => proptest::collection::vec((near(values), near(values)), 1..4)
            .prop_map(|rs| NumSet::from_ranges(rs.into_iter().map(|(a, b)| (a.min(b), a.max(b))))),
        1 => proptest::collection::vec(0u32..40, 17..30).prop_map(|ns| NumSet::from_ranges(ns.into_iter().map(|n| (n * 2, n * 2)))),
    ]
}

fn glob_from(pieces: &'static [&'static str], rooted: bool) -> impl Strategy<Value = Glob> {
    proptest::collection::vec(pick(pieces), 1..4).prop_filter_map("glob must compile", move |ps| {
        let text = if rooted { format!("/{}", ps.join("/")) } else { ps.concat() };
        Glob::new(&text).ok()
    })
}

fn leaf() -> impl Strategy<Value = Predicate> {
    prop_oneof![
        4 => (num_set(MAJORS, MAJOR_LIMIT), num_set(MINORS, MINOR_LIMIT)).prop_map(|(major, minor)| Predicate::Dev { major, minor }),
        4 => glob_from(GLOB_PIECES, true).prop_map(Predicate::Path),
        1 => pick(FS_GLOBS).prop_map(|g| Predicate::Fs(Glob::new(g).unwrap())),
        1 => Just(Predicate::Deleted),
        1 => proptest::collection::vec(pick(FLAG_BITS), 1..3).prop_map(|bs| Predicate::Flags(bs.into_iter().fold(0, |a, b| a | b))),
        1 => pick(Access::ALL).prop_map(Predicate::Access),
        1 => (pick(&[CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge, CmpOp::Eq][..]), pick(SIZES)).prop_map(|(op, n)| Predicate::Size(op, n)),
        1 => num_set(&[0, 1, 2, 3, 5, 7], 64).prop_map(Predicate::Fd),
        2 => pick(FAMILIES).prop_map(Predicate::Family),
        2 => pick(TYPES).prop_map(Predicate::SockType),
        2 => pick(STATES).prop_map(Predicate::State),
        2 => pick(NAME_GLOBS).prop_map(|g| Predicate::Name(Glob::new(g).unwrap())),
    ]
}

fn predicate() -> impl Strategy<Value = Predicate> {
    leaf().prop_recursive(
        2,
        4,
        1,
        |inner| prop_oneof![4 => leaf(), 1 => inner.prop_map(|p| Predicate::Not(Box::new(p)))],
    )
}

fn rule() -> impl Strategy<Value = Rule> {
    let kind = prop_oneof![3 => pick(FACT_KINDS), 1 => Just(Kind::Any)];
    (kind, proptest::collection::vec(predicate(), 0..4)).prop_map(|(kind, predicates)| Rule {
        kind,
        predicates,
        action: Action::Close,
        because: None,
        origin: Origin { file: "prop.rules".into(), line: 1, span: 0..0 },
        text: String::new(),
    })
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    prop_oneof![4 => s.prop_map(Some), 1 => Just(None)].boxed()
}

fn facts() -> impl Strategy<Value = FdFacts> {
    let socket = (maybe(pick(FAMILIES)), maybe(pick(TYPES)), maybe(pick(STATES)))
        .prop_map(|(family, sock_type, state)| SocketFacts { family, sock_type, state, ..SocketFacts::default() });
    (
        (pick(FACT_KINDS), prop_oneof![10 => 0i32..8, 1 => Just(-1), 1 => Just(100)]),
        maybe(proptest::collection::vec(pick(PIECES), 1..4).prop_map(|ps| format!("/{}", ps.join("/")))),
        maybe((near(MAJORS), near(MINORS)).prop_map(|(major, minor)| DevNum { major, minor })),
        (maybe(pick(FS)), maybe(pick(NAMES)), maybe(pick(SIZES))),
        (any::<bool>(), proptest::collection::vec(pick(FLAG_BITS), 0..3)),
        maybe(socket),
    )
        .prop_map(|((kind, fd), path, dev, (fs, name, size), (deleted, flags), socket)| {
            let mut f = FdFacts::new(fd, kind, path.clone().unwrap_or_default());
            f.path = path;
            f.dev = dev;
            f.fs = fs.map(str::to_owned);
            f.name = name.map(str::to_owned);
            f.size = size;
            f.deleted = deleted;
            f.flags = OpenFlags(flags.into_iter().fold(0, |a, b| a | b));
            f.socket = socket;
            f
        })
}

#[test]
fn compiled_and_reference_pick_the_same_rule() {
    let cases: u32 = std::env::var("MATCHER_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let decided = Cell::new(0u64);
    let matched = Cell::new(0u64);
    let not_first = Cell::new(0u64);
    let strategy = (proptest::collection::vec(rule(), 1..24), proptest::collection::vec(facts(), 50));
    runner
        .run(&strategy, |(rules, facts)| {
            let rules = RuleSet { rules };
            let compiled = Compiled::new(&rules);
            let reference = Reference::new(&rules);
            for f in &facts {
                let want = reference.first_match(f);
                prop_assert_eq!(compiled.first_match(f), want, "facts: {:?}", f);
                decided.set(decided.get() + 1);
                matched.set(matched.get() + u64::from(want.is_some()));
                not_first.set(not_first.get() + u64::from(want.is_some_and(|i| i > 0)));
            }
            Ok(())
        })
        .unwrap();
    let (decided, matched, not_first) = (decided.get(), matched.get(), not_first.get());
    eprintln!("{decided} decisions, {matched} matched a rule, {not_first} a rule other than the first");
    assert!(decided >= u64::from(cases) * 50);
    assert!(matched * 2 >= decided, "only {matched} of {decided} facts matched a rule: the universes drifted apart");
    assert!(not_first * 5 >= decided, "only {not_first} of {decided} matched past the first rule");
}
