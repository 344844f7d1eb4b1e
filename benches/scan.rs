//! Criterion: scanning a process that holds 10,000 fds of mixed kinds (files, `/dev/null`, pipes, unix
//! socket pairs, eventfds, timerfds, memfds, epolls), per fd (`Throughput::Elements`):
//! `scan/full` (every fact, rayon on all cores), `scan/full-1thread`, `scan/no-stat` (`stat` only for
//! paths), `scan/no-fdinfo`, `scan/minimal` (link + stat of paths only); the whole check (scan + decide)
//! with the default policy, reading every fact (`check-full`, what `--format json` needs) or what the
//! policy needs (`check`, the table), and through the pipeline as `crrules check --pid N` runs it, which
//! also links the fds (`check-linked`: a kcmp per fd whose inode another fd holds, and one pass over the
//! links of every other process's fds for the other ends); the same under a site rule that tests every fd's flags, with
//! duplicates of the fds (`check-flags`) and through fdinfo alone (`check-flags-proc`); the floors
//! (`benches/floor`: `readlinkat` + `fstatat` + fdinfo `openat`/`read`/`close` and nothing else, on two threads and on one
//! thread), a duplicate's cost (`dup-1thread`: `pidfd_getfd` + `fstat` + `F_GETFL` + `lseek` + `close`,
//! per fd that is not a socket) and `lsof -p` when installed.
//!
//! The holder is `benches/holder`: this same binary, re-run with `CRRULES_BENCH_HOLDER=N`.

use criterion::{BenchmarkId, Criterion, Throughput};
use crrules_engine::backend::Backend;
use crrules_engine::pipeline;
use crrules_engine::plan::{Decider, ProcessPlan};
use crrules_engine::scan::{KindMask, ScanOptions, scan_process};
use crrules_engine::source::Live;
use crrules_rules::policy::BUILTIN;
use crrules_rules::{RuleSet, Source};
use std::process::{Command, Stdio};
use std::time::Duration;

mod floor;
mod holder;
use floor::Floor;
use holder::{NFDS, spawn_holder};

/// The default policy shipped in `policy/`.
fn default_policy() -> RuleSet {
    policy_with("")
}

/// The default policy under a site file holding `site`.
fn policy_with(site: &'static str) -> RuleSet {
    let mut sources = vec![Source::new("05-site.rules", site)];
    sources.extend(BUILTIN.iter().map(|(name, text)| Source::new(*name, *text)));
    let compiled = crrules_rules::compile(&sources);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    compiled.rules
}

fn bench_scan(c: &mut Criterion) {
    let holder = spawn_holder(NFDS);
    let (pid, n) = (holder.pid, holder.nfds);
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(n as u64)).sample_size(10).measurement_time(Duration::from_secs(6));
    let full = ScanOptions::default();
    g.bench_function("full", |b| b.iter(|| scan_process(pid, &full).expect("scan").fds.len()));
    g.bench_function("full-1thread", |b| {
        b.iter(|| one_thread.install(|| scan_process(pid, &full).expect("scan").fds.len()))
    });
    let no_stat = ScanOptions { stat: false, ..ScanOptions::default() };
    g.bench_function("no-stat", |b| b.iter(|| scan_process(pid, &no_stat).expect("scan").fds.len()));
    let no_fdinfo = ScanOptions {
        fdinfo: KindMask::NONE,
        flags: KindMask::NONE,
        mount_ids: KindMask::NONE,
        mounts: false,
        ..ScanOptions::default()
    };
    g.bench_function("no-fdinfo", |b| b.iter(|| scan_process(pid, &no_fdinfo).expect("scan").fds.len()));
    let minimal = ScanOptions::minimal();
    g.bench_function("minimal", |b| b.iter(|| scan_process(pid, &minimal).expect("scan").fds.len()));
    // The whole check: scan + decide every fd with the compiled default policy. `check-full` reads every
    // fact (what `--format json` prints); `check` reads what the policy needs (what the table needs).
    let rules = default_policy();
    let narrow = ScanOptions::for_policy(&rules);
    let decider = Decider::new(rules);
    let decide = |opts: &ScanOptions| {
        let scan = scan_process(pid, opts).expect("scan");
        decider.plan(scan).fds.len()
    };
    g.bench_function("check-full", |b| b.iter(|| decide(&full)));
    g.bench_function("check", |b| b.iter(|| decide(&narrow)));
    g.bench_function("check-1thread", |b| b.iter(|| one_thread.install(|| decide(&narrow))));
    // What `crrules check --pid N` does: the pipeline, which also links the fds (the default policy asks
    // where each pipe's and socket's other end is), then a backend that only counts.
    g.bench_function("check-linked", |b| {
        b.iter(|| {
            let mut source = Live::pids(&[pid], false).expect("source");
            let outcome = pipeline::run(Some(&decider), &mut source, Count(0)).expect("run");
            outcome.checkpointable + outcome.rejected
        })
    });
    // A site rule that tests the flags of every fd: flags from a duplicate of each fd but sockets (from
    // fdinfo), and the same through fdinfo alone.
    let flags_rules = policy_with("any flags O_APPEND => close because \"bench: the flags of every fd\"\n");
    let flags_opts = ScanOptions::for_policy(&flags_rules);
    let flags_decider = Decider::new(flags_rules);
    let decide_flags = |opts: &ScanOptions| flags_decider.plan(scan_process(pid, opts).expect("scan")).fds.len();
    g.bench_function("check-flags", |b| b.iter(|| decide_flags(&flags_opts)));
    let flags_proc = ScanOptions { duplicates: false, ..flags_opts };
    g.bench_function("check-flags-proc", |b| b.iter(|| decide_flags(&flags_proc)));
    let floor = Floor::new(pid);
    let two_threads = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    g.bench_function("floor-2threads", |b| b.iter(|| two_threads.install(|| floor.run())));
    g.bench_function("floor-1thread", |b| b.iter(|| floor.run_1thread()));
    // Never a socket (receiving one re-labels its cgroup data): the others, per fd of them.
    let not_sockets = floor.not_sockets();
    g.throughput(Throughput::Elements(not_sockets.len() as u64));
    g.bench_function("dup-1thread", |b| b.iter(|| not_sockets.iter().map(|&fd| floor.dup(fd)).sum::<usize>()));
    g.throughput(Throughput::Elements(n as u64));
    let has_lsof = Command::new("lsof").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if has_lsof {
        g.bench_with_input(BenchmarkId::new("lsof", n), &pid, |b, &pid| {
            b.iter(|| {
                Command::new("lsof")
                    .args(["-n", "-P", "-p", &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("lsof")
            })
        });
    }
    g.finish();
}

/// A backend that counts the fds it is handed.
struct Count(usize);

impl Backend for Count {
    type Error = ();
    fn process(&mut self, plan: &ProcessPlan) -> Result<(), ()> {
        self.0 += plan.fds.len();
        Ok(())
    }
}

fn main() {
    if holder::hold_if_asked() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench_scan(&mut c);
    c.final_summary();
}
