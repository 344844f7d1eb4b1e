//! Criterion: scanning a process that holds 10,000 fds of mixed kinds (files, `/dev/null`, pipes, unix
//! socket pairs, eventfds, timerfds, memfds, epolls), per fd (`Throughput::Elements`):
//! `scan/full` (every fact, rayon on all cores), `scan/full-1thread`, `scan/no-stat` (`stat` only for
//! paths), `scan/no-fdinfo`, `scan/minimal` (link + stat of paths only); the whole check (scan + decide)
//! with the default policy, reading every fact (`check-full`, what `--format json` needs) or what the
//! policy needs (`check`, the table); the same under a site rule that tests every fd's flags, with
//! duplicates of the fds (`check-flags`) and through fdinfo alone (`check-flags-proc`); the floors
//! (`benches/floor`: `readlinkat` + `fstatat` + fdinfo `openat`/`read`/`close` and nothing else, on two threads and on one
//! thread), a duplicate's cost (`dup-1thread`: `pidfd_getfd` + `fstat` + `F_GETFL` + `lseek` + `close`,
//! per fd that is not a socket) and `lsof -p` when installed.
//!
//! The holder is this same binary, re-run with `CRRULES_BENCH_HOLDER=N`: [`spawn_holder`] is the reusable
//! harness (spawn, wait until it holds its fds, kill on drop).

use criterion::{BenchmarkId, Criterion, Throughput};
use crrules_engine::plan::Decider;
use crrules_engine::scan::{KindMask, ScanOptions, scan_process};
use crrules_rules::policy::BUILTIN;
use crrules_rules::{RuleSet, Source};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

mod floor;
use floor::Floor;

const HOLDER_ENV: &str = "CRRULES_BENCH_HOLDER";
/// How many fds the benchmarked process holds.
pub const NFDS: usize = 10_000;

/// A child process holding about `nfds` open fds of mixed kinds; killed and reaped on drop.
#[derive(Debug)]
pub struct Holder {
    child: Child,
    _stdin: Option<ChildStdin>,
    pub pid: i32,
    /// Fds it holds, counted from `/proc/PID/fd` once it is ready.
    pub nfds: usize,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns a holder of about `nfds` fds and waits until it holds them.
pub fn spawn_holder(nfds: usize) -> Holder {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .env(HOLDER_ENV, nfds.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let stdin = child.stdin.take();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("holder ready line");
    assert_eq!(line.trim(), "ready", "the holder could not open its fds");
    let pid = child.id() as i32;
    let nfds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("holder fds").count();
    Holder { child, _stdin: stdin, pid, nfds }
}

#[expect(unsafe_code, reason = "setrlimit has no safe wrapper among the enabled nix features")]
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max.max(want));
            lim.rlim_max = lim.rlim_max.max(lim.rlim_cur);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The holder's side: open about `n` fds, say `ready`, wait for stdin to close.
fn hold(n: usize) {
    use nix::fcntl::{OFlag, open};
    use nix::sys::epoll::{Epoll, EpollCreateFlags};
    use nix::sys::eventfd::{EfdFlags, EventFd};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use nix::sys::stat::Mode;
    use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
    raise_fd_limit(n as u64 + 256);
    let file = std::env::temp_dir().join(format!("crrules-bench-scan-{}", std::process::id()));
    std::fs::write(&file, b"bench").expect("temp file");
    let mut held: Vec<OwnedFd> = Vec::with_capacity(n + 2);
    let mut i = 0usize;
    while held.len() < n {
        let r: nix::Result<Vec<OwnedFd>> = match i % 8 {
            0 => open(&file, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map(|f| vec![f]),
            1 => open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map(|f| vec![f]),
            2 => nix::unistd::pipe().map(|(r, w)| vec![r, w]),
            3 => {
                socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).map(|(a, b)| vec![a, b])
            }
            4 => EventFd::from_value_and_flags(1, EfdFlags::EFD_CLOEXEC).map(|e| vec![OwnedFd::from(e)]),
            5 => TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC).map(|t| vec![OwnedFd::from(t)]),
            6 => memfd_create("bench", MFdFlags::MFD_CLOEXEC).map(|m| vec![m]),
            // Not inotify: its instances are capped per user (fs.inotify.max_user_instances, 128).
            _ => Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map(|e| vec![e.0]),
        };
        match r {
            Ok(fds) => held.extend(fds),
            Err(e) => {
                eprintln!("bench holder: stopped at {} fds: {e}", held.len());
                break;
            }
        }
        i += 1;
    }
    let _ = std::fs::remove_file(&file);
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut sink = [0u8; 16];
    while matches!(std::io::stdin().read(&mut sink), Ok(k) if k > 0) {}
    drop(held);
}

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

fn main() {
    if let Ok(n) = std::env::var(HOLDER_ENV) {
        hold(n.parse().unwrap_or(NFDS));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench_scan(&mut c);
    c.final_summary();
}
