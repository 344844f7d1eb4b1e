//! The benches' fd holder: a child process (the bench binary itself, re-run with `CRRULES_BENCH_HOLDER=N`)
//! holding about N fds of mixed kinds (files, `/dev/null`, pipes, unix socket pairs, eventfds, timerfds,
//! memfds, epolls); [`spawn_holder`] starts it and waits until it holds them, and drop kills it. A bench's
//! `main` calls [`hold_if_asked`] first.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdin, Command, Stdio};

pub const HOLDER_ENV: &str = "CRRULES_BENCH_HOLDER";
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
        // Not the terminal the bench runs in: a dump would need it handed in.
        .stderr(Stdio::null())
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

/// In the holder's process: hold the fds and return true (the bench's `main` then returns).
pub fn hold_if_asked() -> bool {
    match std::env::var(HOLDER_ENV) {
        Ok(n) => {
            hold(n.parse().unwrap_or(NFDS));
            true
        }
        Err(_) => false,
    }
}
