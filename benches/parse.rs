//! Criterion bench of the rule language front end: parse and validate a generated 10,000-rule policy
//! (mixed kinds, device numbers, ranges and sets, globs, socket predicates, flags, sizes, continuations),
//! through `crrules_rules::compile` (what `check` does), `crrules_rules::lint` (plus the whole-policy
//! shadowing analysis, what `crrules lint` does), and the parse stage alone; then `lint` of adversarial
//! policies (issue 8: rules that overlap many earlier ones, see `adversarial/`), 10,000 and 20,000 rules.

mod adversarial;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crrules_rules::{Source, compile, lint, parse};
use std::fmt::Write as _;
use std::hint::black_box;

/// A small deterministic generator, so every run times the same text.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// A policy of `n` valid, distinct rules.
fn policy(n: usize) -> String {
    let mut g = Lcg(42);
    let mut out = String::from("# generated policy for the parse bench\n\n");
    for i in 0..n {
        let _ = match g.next(10) {
            0 => writeln!(out, "chardev {}:{} => reopen path", g.next(4096), i),
            1 => writeln!(out, "chardev {}:{}-{} access rw => inherit \"tty{i}\"", g.next(4096), i, i + g.next(100)),
            2 => writeln!(
                out,
                "blockdev {{{},{}-{}}}:* => reject \"block device {i} cannot be checkpointed\"",
                g.next(100),
                200,
                200 + g.next(50)
            ),
            3 => writeln!(out, "file path \"/srv/app{i}/**/*.{{log,txt}}\" flags O_APPEND,O_WRONLY => reopen path"),
            4 => writeln!(
                out,
                "file fs tmpfs deleted size <= {}MiB path \"/tmp/job{i}/*\" => contents limit 64MiB",
                1 + g.next(64)
            ),
            5 => writeln!(
                out,
                "socket family {} type {} \\\n    state {} fd {i} => recreate because \"rule {i}\"",
                ["unix", "inet", "inet6", "netlink"][g.next(4)],
                ["stream", "dgram", "seqpacket"][g.next(3)],
                ["listen", "established", "close"][g.next(3)]
            ),
            6 => writeln!(out, "anon name \"[driver-{i}]\" => plugin \"driver{}\"", g.next(8)),
            7 => writeln!(out, "memfd path \"/memfd:cache-{i}*\" not size > {}KiB => contents", g.next(4096)),
            8 => writeln!(out, "fifo path \"/run/svc{i}/*.fifo\" not deleted => recreate   # named pipes"),
            _ => writeln!(
                out,
                "{} fd {{{i},{}-{}}} => close",
                ["eventfd", "timerfd", "signalfd", "pidfd", "epoll"][g.next(5)],
                i + 20000,
                i + 20000 + g.next(9)
            ),
        };
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = policy(10_000);
    let sources = [Source::new("bench.rules", text.as_str())];
    let compiled = compile(&sources);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics.first());
    assert_eq!(compiled.rules.len(), 10_000);

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    group.bench_function("compile_10k_rules", |b| b.iter(|| compile(black_box(&sources))));
    group.bench_function("lint_10k_rules", |b| b.iter(|| lint(black_box(&sources))));
    group.bench_function("syntax_only_10k_rules", |b| b.iter(|| parse::parse(black_box(&sources[0]))));
    group.finish();

    let mut group = c.benchmark_group("parse");
    group.sample_size(10);
    for (name, generate) in adversarial::SHAPES {
        for n in [10_000, 20_000] {
            let text = generate(n);
            let sources = [Source::new("adversarial.rules", text.as_str())];
            let compiled = lint(&sources);
            assert!(!compiled.has_errors(), "{name}: {:?}", compiled.diagnostics.first());
            assert_eq!(compiled.rules.len(), n);
            group.throughput(Throughput::Elements(n as u64));
            let id = format!("lint_{}k_overlapping_{}", n / 1000, name.replace('-', "_"));
            group.bench_function(id, |b| b.iter(|| lint(black_box(&sources))));
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
