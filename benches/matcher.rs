//! Deciding fds against policies of 10, 1,000 and 10,000 rules, with the compiled matcher and the
//! reference interpreter in the same run, over one fixed, deterministic set of 100,000 fd facts; and the
//! cost of compiling a 10,000-rule policy. The policies mix what real ones hold: exact device numbers,
//! device ranges and wildcards, path globs (literal, prefix, extension), filesystem and anon-inode names,
//! socket predicates, and the distribution's defaults at the end; most fds match a specific rule.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use crrules_engine::facts::{DevNum, FdFacts, OpenFlags, SocketFacts};
use crrules_engine::matcher::{CompiledMatcher, Matcher, Reference};
use crrules_rules::rule::{Action, CmpOp, Glob, NumSet, Origin, Predicate, Rule, RuleSet};
use crrules_rules::vocab::{Kind, MINOR_LIMIT, SockFamily, SockState, SockType};
use std::time::Duration;

const FACTS: usize = 100_000;
/// The universe both generators draw from: the largest policy's numbering.
const UNIVERSE: u64 = 10_000;

/// splitmix64: a deterministic generator, so every run decides the same facts against the same rules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const FAMILIES: &[SockFamily] = &[SockFamily::Unix, SockFamily::Inet, SockFamily::Inet6, SockFamily::Netlink];
const TYPES: &[SockType] = &[SockType::Stream, SockType::Dgram, SockType::Seqpacket];
const STATES: &[SockState] = &[SockState::Listen, SockState::Established, SockState::Unconnected, SockState::Close];

/// Device `i` of the universe: majors 10-4009, minors below 1,000.
fn device(i: u64) -> (u32, u32) {
    (10 + (i % 4000) as u32, ((i * 7919) % 1000) as u32)
}

fn rule(kind: Kind, predicates: Vec<Predicate>, action: Action, line: usize) -> Rule {
    Rule {
        kind,
        predicates,
        action,
        because: None,
        origin: Origin { file: "bench.rules".into(), line: line as u32, span: 0..0 },
        text: String::new(),
    }
}

fn glob(text: &str) -> Predicate {
    Predicate::Path(Glob::new(text).expect("bench globs compile"))
}

fn dev(major: u32, minor: NumSet) -> Predicate {
    Predicate::Dev { major: NumSet::single(major), minor }
}

/// What one specific rule of the generated policies is about; a fact can be made to match it.
#[derive(Clone, Copy)]
enum Spec {
    CharExact(u64),
    BlockExact(u64),
    CharRange(u64),
    FileLiteral(u64),
    AnyPrefix(u64),
    LogGlob(u64),
    TmpDeleted(u64),
    Fuse(u64),
    Kvm(u64),
    Home(u64),
    Socket(SockFamily, Option<SockType>, Option<SockState>, u32),
}

/// The specific rules of the largest policy, in order; smaller policies take a prefix.
fn specs() -> Vec<Spec> {
    let mut rng = Rng(7);
    (0..UNIVERSE)
        .map(|_| {
            let i = rng.below(UNIVERSE);
            match rng.below(100) {
                0..35 => Spec::CharExact(i),
                35..43 => Spec::BlockExact(i),
                43..53 => Spec::CharRange(i),
                53..63 => Spec::FileLiteral(i),
                63..71 => Spec::AnyPrefix(i),
                71..76 => Spec::LogGlob(i),
                76..81 => Spec::TmpDeleted(i),
                81..84 => Spec::Fuse(i),
                84..88 => Spec::Kvm(i),
                88..96 => Spec::Home(i),
                _ => {
                    let ty = (rng.below(2) == 0).then(|| rng.pick(TYPES));
                    let state = (rng.below(2) == 0).then(|| rng.pick(STATES));
                    Spec::Socket(rng.pick(FAMILIES), ty, state, (i % 1000) as u32)
                }
            }
        })
        .collect()
}

fn specific_rule(spec: Spec, line: usize) -> Rule {
    match spec {
        Spec::CharExact(i) => {
            let (ma, mi) = device(i);
            rule(Kind::Chardev, vec![dev(ma, NumSet::single(mi))], Action::ReopenPath { exact: false }, line)
        }
        Spec::BlockExact(i) => {
            let (ma, mi) = device(i);
            rule(Kind::Blockdev, vec![dev(ma, NumSet::single(mi))], Action::Reject { reason: "disk".into() }, line)
        }
        Spec::CharRange(i) => {
            let (ma, mi) = device(i);
            let minors = if i % 3 == 0 { NumSet::all(MINOR_LIMIT) } else { NumSet::from_ranges([(mi, mi + 50)]) };
            rule(Kind::Chardev, vec![dev(ma, minors)], Action::Inherit { name: format!("tty{i}") }, line)
        }
        Spec::FileLiteral(i) => {
            rule(Kind::File, vec![glob(&format!("/srv/app{i}/data.db"))], Action::ReopenPath { exact: false }, line)
        }
        Spec::AnyPrefix(i) => {
            rule(Kind::Any, vec![glob(&format!("/srv/app{i}/**"))], Action::ReopenPath { exact: false }, line)
        }
        Spec::LogGlob(i) => rule(
            Kind::File,
            vec![glob(&format!("/var/log/app{i}/*.log")), Predicate::Flags(0o2000)],
            Action::ReopenPath { exact: false },
            line,
        ),
        Spec::TmpDeleted(i) => rule(
            Kind::File,
            vec![glob(&format!("/tmp/app{i}/**")), Predicate::Deleted, Predicate::Size(CmpOp::Le, 1 << 24)],
            Action::Contents { limit: None },
            line,
        ),
        Spec::Fuse(i) => rule(
            Kind::File,
            vec![Predicate::Fs(Glob::new(&format!("fuse.app{i}")).expect("glob")), Predicate::Deleted],
            Action::Reject { reason: "fuse".into() },
            line,
        ),
        Spec::Kvm(i) => rule(
            Kind::Anon,
            vec![Predicate::Name(Glob::new(&format!(r"\[kvm-vcpu:{i}\]")).expect("glob"))],
            Action::Plugin { name: "kvm".into() },
            line,
        ),
        Spec::Home(i) => rule(
            Kind::Dir,
            vec![glob(&format!("/home/u{i}")), Predicate::Not(Box::new(Predicate::Deleted))],
            Action::ReopenPath { exact: false },
            line,
        ),
        Spec::Socket(family, ty, state, lo) => {
            let mut ps = vec![Predicate::Family(family)];
            ps.extend(ty.map(Predicate::SockType));
            ps.extend(state.map(Predicate::State));
            ps.push(Predicate::Fd(NumSet::from_ranges([(lo, lo + 20)])));
            rule(Kind::Socket, ps, Action::Recreate, line)
        }
    }
}

/// The distribution's defaults, last: what a real policy ends with, so even the 10-rule policy reads
/// paths, device numbers and socket facts.
fn defaults(line: usize) -> Vec<Rule> {
    let star = || NumSet::all(MINOR_LIMIT);
    vec![
        rule(Kind::File, vec![glob("/proc/**")], Action::ReopenPath { exact: false }, line),
        rule(Kind::Any, vec![glob("/dev/shm/**")], Action::Contents { limit: None }, line + 1),
        rule(Kind::Chardev, vec![dev(1, star())], Action::ReopenPath { exact: false }, line + 2),
        rule(Kind::Chardev, vec![dev(136, star())], Action::Inherit { name: "pts".into() }, line + 3),
        rule(Kind::File, vec![], Action::ReopenPath { exact: false }, line + 4),
        rule(Kind::Dir, vec![], Action::ReopenPath { exact: false }, line + 5),
        rule(Kind::Socket, vec![Predicate::Family(SockFamily::Unix)], Action::Recreate, line + 6),
        rule(Kind::Socket, vec![Predicate::State(SockState::Listen)], Action::Recreate, line + 7),
        rule(Kind::Pipe, vec![], Action::Recreate, line + 8),
        rule(Kind::Any, vec![], Action::Reject { reason: "no rule for this fd".into() }, line + 9),
    ]
}
const DEFAULTS: usize = 10;

/// A policy of exactly `n` rules (n >= 10): the first specific rules, then the defaults.
fn policy(specs: &[Spec], n: usize) -> RuleSet {
    let mut rules: Vec<Rule> =
        specs.iter().take(n - DEFAULTS).enumerate().map(|(line, &s)| specific_rule(s, line)).collect();
    rules.extend(defaults(rules.len()));
    RuleSet { rules }
}

fn with_path(fd: i32, kind: Kind, path: String) -> FdFacts {
    let mut f = FdFacts::new(fd, kind, path.clone());
    f.path = Some(path.into());
    f
}

fn device_fact(fd: i32, kind: Kind, major: u32, minor: u32) -> FdFacts {
    let mut f = with_path(fd, kind, format!("/dev/d{major}-{minor}"));
    f.dev = Some(DevNum { major, minor });
    f
}

fn file_fact(rng: &mut Rng, fd: i32, path: String) -> FdFacts {
    let mut f = with_path(fd, Kind::File, path);
    f.size = Some(rng.below(1 << 26));
    f.deleted = rng.below(3) == 0;
    f.flags = OpenFlags(rng.pick(&[0, 0o2, 0o2001, 0o2002000]));
    f.fs = Some("ext4".into());
    f
}

fn socket_fact(fd: i32, n: usize, family: SockFamily, ty: SockType, state: SockState) -> FdFacts {
    let mut f = FdFacts::new(fd, Kind::Socket, format!("socket:[{n}]"));
    f.socket =
        Some(SocketFacts { family: Some(family), sock_type: Some(ty), state: Some(state), ..SocketFacts::default() });
    f
}

/// The fixed facts: four in five aimed at a random specific rule of the largest policy (most hit it,
/// some miss it narrowly: a neighbouring minor, a flag not set), the rest common fds that only the
/// defaults decide.
fn facts(specs: &[Spec]) -> Vec<FdFacts> {
    let mut rng = Rng(42);
    (0..FACTS)
        .map(|n| {
            let fd = (n % 1024) as i32;
            if rng.below(5) == 0 {
                return match rng.below(6) {
                    0 => device_fact(fd, Kind::Chardev, 1, rng.pick(&[3, 5, 8, 9])),
                    1 => device_fact(fd, Kind::Chardev, 136, rng.below(64) as u32),
                    2 => file_fact(&mut rng, fd, format!("/usr/lib/x86_64-linux-gnu/lib{n}.so")),
                    3 => socket_fact(fd, n, rng.pick(FAMILIES), rng.pick(TYPES), rng.pick(STATES)),
                    4 => FdFacts::new(fd, Kind::Pipe, format!("pipe:[{n}]")),
                    _ => {
                        let mut f = FdFacts::new(fd, Kind::Eventfd, "anon_inode:[eventfd]");
                        f.name = Some("[eventfd]".into());
                        f
                    }
                };
            }
            match specs[rng.below(specs.len() as u64) as usize] {
                Spec::CharExact(i) | Spec::CharRange(i) => {
                    let (ma, mi) = device(i);
                    device_fact(fd, Kind::Chardev, ma, mi + rng.below(3) as u32)
                }
                Spec::BlockExact(i) => {
                    let (ma, mi) = device(i);
                    device_fact(fd, Kind::Blockdev, ma, mi)
                }
                Spec::FileLiteral(i) => file_fact(&mut rng, fd, format!("/srv/app{i}/data.db")),
                Spec::AnyPrefix(i) => {
                    if rng.below(2) == 0 {
                        file_fact(&mut rng, fd, format!("/srv/app{i}/cache/{n}.bin"))
                    } else {
                        with_path(fd, Kind::Dir, format!("/srv/app{i}/cache"))
                    }
                }
                Spec::LogGlob(i) => file_fact(&mut rng, fd, format!("/var/log/app{i}/{n}.log")),
                Spec::TmpDeleted(i) => file_fact(&mut rng, fd, format!("/tmp/app{i}/scratch/{n}")),
                Spec::Fuse(i) => {
                    let mut f = file_fact(&mut rng, fd, format!("/mnt/app{i}/{n}"));
                    f.fs = Some(format!("fuse.app{i}"));
                    f
                }
                Spec::Kvm(i) => {
                    let name = format!("[kvm-vcpu:{i}]");
                    let mut f = FdFacts::new(fd, Kind::Anon, format!("anon_inode:{name}"));
                    f.name = Some(name.into());
                    f
                }
                Spec::Home(i) => with_path(fd, Kind::Dir, format!("/home/u{i}")),
                Spec::Socket(family, ty, state, lo) => {
                    let ty = ty.unwrap_or_else(|| rng.pick(TYPES));
                    let state = state.unwrap_or_else(|| rng.pick(STATES));
                    socket_fact((lo + rng.below(24) as u32) as i32, n, family, ty, state)
                }
            }
        })
        .collect()
}

fn decide_all(matcher: &dyn Matcher, facts: &[FdFacts]) -> usize {
    facts.iter().map(|f| matcher.first_match(f).unwrap_or(usize::MAX)).fold(0, usize::wrapping_add)
}

fn bench(c: &mut Criterion) {
    let specs = specs();
    let facts = facts(&specs);
    let sizes = [10usize, 1_000, 10_000];
    let policies: Vec<RuleSet> = sizes.iter().map(|&n| policy(&specs, n)).collect();

    // What the workload looks like, printed once: how many fds a rule other than a default decides.
    for (n, rules) in sizes.iter().zip(&policies) {
        let compiled = CompiledMatcher::new(rules);
        let specific = facts.iter().filter(|f| compiled.first_match(f).is_some_and(|i| i + DEFAULTS < *n)).count();
        eprintln!("policy of {n} rules: {specific} of {FACTS} fds decided by a specific rule");
    }

    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(FACTS as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for (n, rules) in sizes.iter().zip(&policies) {
        let compiled = CompiledMatcher::new(rules);
        group.bench_with_input(BenchmarkId::new("compiled", n), &facts, |b, facts| {
            b.iter(|| decide_all(&compiled, black_box(facts)))
        });
        let reference = Reference::new(rules);
        group.bench_with_input(BenchmarkId::new("reference", n), &facts, |b, facts| {
            b.iter(|| decide_all(&reference, black_box(facts)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    let big = &policies[2];
    group.bench_function("10000", |b| b.iter(|| CompiledMatcher::new(black_box(big))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
