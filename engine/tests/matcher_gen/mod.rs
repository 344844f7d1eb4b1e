//! Random policies and fd facts over small, overlapping universes, shared by the matcher's property tests:
//! mixed kinds with `any`, exact devices, ranges and wildcards, globs over a few path pieces, socket
//! predicates, flags, sizes, fd sets, where the other end is, shared open files and nested `not`; facts
//! that land on the same values (some not linked, so without a peer), with paths and names that are not
//! always UTF-8 (the kernel's are bytes).
#![allow(dead_code, reason = "each test file uses part of the generators")]

use crrules_engine::facts::{
    ByteString, DevNum, FanotifyFacts, FanotifyMark, FdFacts, FdRef, Lock, OpenFlags, SocketFacts, TimerfdFacts,
};
use crrules_rules::rule::{Action, CmpOp, Glob, NumSet, Origin, Predicate, Rule};
use crrules_rules::vocab::{
    Access, Clock, Kind, MAJOR_LIMIT, MINOR_LIMIT, MarkTarget, PeerPlace, SockFamily, SockProto, SockState, SockType,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

pub const FACT_KINDS: &[Kind] = &[
    Kind::File,
    Kind::Dir,
    Kind::Chardev,
    Kind::Blockdev,
    Kind::Socket,
    Kind::Anon,
    Kind::Pipe,
    Kind::Timerfd,
    Kind::Pidfd,
    Kind::Fanotify,
    Kind::Mqueue,
];
pub const MAJORS: &[u32] = &[0, 1, 4, 10, 136, 4095];
pub const MINORS: &[u32] = &[0, 3, 5, 64, 255, 256, 1 << 19, MINOR_LIMIT - 1];
/// Path components of facts; some are not UTF-8 (a lone `\xff`, a truncated `\xc3`) but still match the
/// wildcard globs (`*`, `n*`, `*.log`, `?`).
pub const PIECES: &[&[u8]] = &[b"a", b"b", b"dev", b"x.log", b"null", b"\xff", b"n\xff", b"\xfe.log", b"a\xc3"];
pub const GLOB_PIECES: &[&str] = &["a", "b", "dev", "x.log", "null", "*", "**", "*.log", "{a,b}", "?", "[ab]", "n*"];
pub const FS: &[&str] = &["ext4", "tmpfs", "fuse.sshfs", "proc"];
pub const FS_GLOBS: &[&str] = &["ext4", "tmp*", "fuse.*", "*", "proc"];
pub const NAMES: &[&[u8]] = &[b"[eventfd]", b"[kvm-vm]", b"inotify", b"bpf-map", b"[kvm\xff]", b"bpf-\x80"];
pub const NAME_GLOBS: &[&str] = &[r"\[kvm-vm\]", r"\[*\]", "inotify", "*", "bpf-*", "[eventfd]"];
pub const FLAG_BITS: &[u32] = &[0o1, 0o2, 0o200, 0o2000, 0o4000, 0o2000000, 0o10000000];
/// Clock ids: the named clocks and one the language calls `other`.
pub const CLOCK_IDS: &[i32] = &[0, 1, 7, 8, 9, 3];
pub const SIZES: &[u64] = &[0, 1, 100, 4096, 1 << 20, u64::MAX];
pub const FAMILIES: &[SockFamily] = &[SockFamily::Unix, SockFamily::Inet, SockFamily::Inet6, SockFamily::Netlink];
pub const TYPES: &[SockType] = &[SockType::Stream, SockType::Dgram, SockType::Seqpacket];
pub const STATES: &[SockState] = &[SockState::Listen, SockState::Established, SockState::Unconnected];

pub fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(items)
}

/// A number near the interesting ones (`n - 1`, `n`, `n + 1`).
pub fn near(values: &'static [u32]) -> impl Strategy<Value = u32> {
    (pick(values), -1i64..=1).prop_map(|(v, d)| (i64::from(v) + d).clamp(0, i64::from(u32::MAX)) as u32)
}

/// A set of numbers: one, `*`, or up to three ranges with ends near the interesting values.
pub fn num_set(values: &'static [u32], limit: u32) -> impl Strategy<Value = NumSet> {
    prop_oneof![
        3 => pick(values).prop_map(NumSet::single),
        2 => Just(NumSet::all(limit)),
        3 => proptest::collection::vec((near(values), near(values)), 1..4)
            .prop_map(|rs| NumSet::from_ranges(rs.into_iter().map(|(a, b)| (a.min(b), a.max(b))))),
        1 => proptest::collection::vec(0u32..40, 17..30).prop_map(|ns| NumSet::from_ranges(ns.into_iter().map(|n| (n * 2, n * 2)))),
    ]
}

pub fn glob_from(pieces: &'static [&'static str], rooted: bool) -> impl Strategy<Value = Glob> {
    proptest::collection::vec(pick(pieces), 1..4).prop_filter_map("glob must compile", move |ps| {
        let text = if rooted { format!("/{}", ps.join("/")) } else { ps.concat() };
        Glob::new(&text).ok()
    })
}

pub fn leaf() -> impl Strategy<Value = Predicate> {
    prop_oneof![
        4 => (num_set(MAJORS, MAJOR_LIMIT), num_set(MINORS, MINOR_LIMIT)).prop_map(|(major, minor)| Predicate::Dev { major, minor }),
        4 => glob_from(GLOB_PIECES, true).prop_map(Predicate::Path),
        1 => pick(FS_GLOBS).prop_map(|g| Predicate::Fs(Glob::new(g).unwrap())),
        1 => Just(Predicate::Deleted),
        1 => proptest::collection::vec(pick(FLAG_BITS), 1..3).prop_map(|bs| Predicate::Flags(bs.into_iter().fold(0, |a, b| a | b))),
        1 => pick(Access::ALL).prop_map(Predicate::Access),
        1 => (pick(&[CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge, CmpOp::Eq][..]), near_size()).prop_map(|(op, n)| Predicate::Size(op, n)),
        1 => num_set(&[0, 1, 2, 3, 5, 7], 64).prop_map(Predicate::Fd),
        2 => pick(FAMILIES).prop_map(Predicate::Family),
        2 => pick(TYPES).prop_map(Predicate::SockType),
        2 => pick(STATES).prop_map(Predicate::State),
        2 => pick(NAME_GLOBS).prop_map(|g| Predicate::Name(Glob::new(g).unwrap())),
        2 => pick(SockProto::ALL).prop_map(Predicate::Protocol),
        1 => Just(Predicate::Queued),
        1 => Just(Predicate::Unlinked),
        1 => Just(Predicate::Packet),
        1 => pick(Clock::ALL).prop_map(Predicate::Clock),
        1 => Just(Predicate::Thread),
        1 => pick(MarkTarget::ALL).prop_map(Predicate::Marks),
        1 => Just(Predicate::Locked),
        1 => pick(PeerPlace::ALL).prop_map(Predicate::Peer),
        1 => Just(Predicate::Shared),
    ]
}

pub fn predicate() -> impl Strategy<Value = Predicate> {
    leaf().prop_recursive(
        2,
        4,
        1,
        |inner| prop_oneof![4 => leaf(), 1 => inner.prop_map(|p| Predicate::Not(Box::new(p)))],
    )
}

pub fn rule() -> impl Strategy<Value = Rule> {
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

/// A size at or next to one of the interesting ones, so that every comparison's boundary is tried.
pub fn near_size() -> impl Strategy<Value = u64> {
    (pick(SIZES), -1i64..=1).prop_map(|(v, d)| match d {
        -1 => v.saturating_sub(1),
        1 => v.saturating_add(1),
        _ => v,
    })
}

/// Rules as people read them, for failure messages.
pub fn show(rules: &[Rule]) -> String {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ps: Vec<String> = r.predicates.iter().map(ToString::to_string).collect();
            format!("  {i}: {} {}\n", r.kind, ps.join(" "))
        })
        .collect()
}

/// Runs a property, failing with its own message only (the inputs are large).
pub fn run<S: Strategy>(cases: u32, strategy: &S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    match runner.run(strategy, test) {
        Ok(()) => {}
        Err(TestError::Fail(reason, _)) => panic!("{reason}"),
        Err(TestError::Abort(reason)) => panic!("{reason}"),
    }
}

pub fn maybe<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    prop_oneof![4 => s.prop_map(Some), 1 => Just(None)].boxed()
}

pub fn facts() -> impl Strategy<Value = FdFacts> {
    let socket = (
        (maybe(pick(FAMILIES)), maybe(pick(TYPES)), maybe(pick(STATES))),
        (maybe(pick(SockProto::ALL)), maybe(pick(&[0u32, 1, 80][..]))),
    )
        .prop_map(|((family, sock_type, state), (protocol, rqueue))| SocketFacts {
            family,
            sock_type,
            state,
            protocol,
            rqueue,
            ..SocketFacts::default()
        });
    let extra = (
        (any::<bool>(), any::<bool>(), any::<bool>()),
        maybe(pick(CLOCK_IDS)),
        maybe(proptest::collection::vec(pick(MarkTarget::ALL), 0..3)),
        // Where the other end is (`None`: not linked), and how many other fds share the open file.
        (maybe(pick(PeerPlace::ALL)), 0usize..3),
    );
    (
        (pick(FACT_KINDS), prop_oneof![10 => 0i32..8, 1 => Just(-1), 1 => Just(100)]),
        maybe(
            proptest::collection::vec(pick(PIECES), 1..4)
                .prop_map(|ps| ByteString::new([&b"/"[..], &ps.join(&b'/')].concat())),
        ),
        maybe((near(MAJORS), near(MINORS)).prop_map(|(major, minor)| DevNum { major, minor })),
        (maybe(pick(FS)), maybe(pick(NAMES)), maybe(near_size())),
        (any::<bool>(), proptest::collection::vec(pick(FLAG_BITS), 0..3)),
        maybe(socket),
        extra,
    )
        .prop_map(|((kind, fd), path, dev, (fs, name, size), (deleted, flags), socket, extra)| {
            let ((unlinked, packet, locked), clock, marks, (peer, shared)) = extra;
            let mut f = FdFacts::new(fd, kind, path.clone().unwrap_or_default());
            f.path = path;
            f.dev = dev;
            f.fs = fs.map(str::to_owned);
            f.name = name.map(ByteString::from);
            f.size = size;
            f.deleted = deleted;
            f.flags = OpenFlags(flags.into_iter().fold(0, |a, b| a | b));
            f.socket = socket;
            f.unlinked = unlinked;
            f.packet = packet;
            f.peer = peer;
            f.shared_with = (0..shared).map(|i| FdRef { pid: 1, fd: 10 + i as i32 }).collect();
            if locked {
                let lock = Lock {
                    class: "POSIX".into(),
                    mode: "ADVISORY".into(),
                    access: "WRITE".into(),
                    pid: 1,
                    start: 0,
                    end: None,
                };
                f.locks.push(lock);
            }
            f.timerfd = clock.map(|clockid| TimerfdFacts {
                clockid,
                ticks: 0,
                settime_flags: 0,
                it_value: (0, 0),
                it_interval: (0, 0),
            });
            f.fanotify = marks.map(|ms| FanotifyFacts {
                flags: 0,
                event_flags: 0,
                marks: ms
                    .iter()
                    .map(|m| FanotifyMark { target: m.name().into(), mask: 1, ..FanotifyMark::default() })
                    .collect(),
            });
            f
        })
}
