//! A process that holds one open fd of every kind the scanner knows, for the scan tests: it prints a JSON
//! map `{"name": fd, ...}` on one line, then blocks until its stdin reaches EOF.
//!
//! `fdholder` opens every kind; `fdholder --netns` first moves into a new network namespace (its inet
//! sockets are then left out: the new namespace's loopback is down); `fdholder --churn` opens and closes fds
//! in a tight loop, printing `{}` once every slot has been filled, keeping fixed fd numbers to fixed kinds:
//! 100-109 pipes, 110-119 eventfds whose count is the fd minus 110, 120-129 `/dev/null`, 130-139 unix
//! sockets, 140-149 regular files; 150-159 and the low fd numbers change between all of these kinds all the
//! time. `fdholder --many N` holds about N fds of mixed kinds and prints `{"count": N}`.
//! `fdholder [--comm NAME] [--open PATH]...` names itself NAME (any bytes, through `/proc/self/comm`) and
//! holds each PATH open read-only (any bytes too), printing `{"open0": fd, "open1": fd, ...}`.
//!
//! Each kind that cannot be opened here is left out of the map, with its error on stderr.
// Raw system calls for what nix does not wrap (pidfd_open, io_uring_setup, perf_event_open, userfaultfd,
// dup2 to a chosen number, unshare, flock): each `unsafe` block is one syscall on values owned here.
#![allow(unsafe_code)]

use nix::fcntl::{OFlag, open};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags as FanInit, MarkFlags, MaskFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, UnixAddr, bind, socket, socketpair};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::unistd::{Whence, lseek, mkfifo, pipe, unlink, write};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Opened = Result<Vec<(&'static str, OwnedFd)>, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A raw syscall's result as an owned fd.
fn fd_of(ret: libc::c_long) -> Result<OwnedFd, String> {
    if ret < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

fn files(dir: &Path) -> Opened {
    let path = dir.join("offset.txt");
    let f =
        open(&path, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o644)).map_err(err)?;
    write(&f, &[b'x'; 100]).map_err(err)?;
    lseek(&f, 42, Whence::SeekSet).map_err(err)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // Opened without O_CLOEXEC on purpose: the scan must report cloexec false for it.
    let append = open(
        &dir.join("append.log"),
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(err)?;
    let deleted_path = dir.join("deleted.bin");
    let deleted =
        open(&deleted_path, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o600))
            .map_err(err)?;
    write(&deleted, &[7u8; 1000]).map_err(err)?;
    unlink(&deleted_path).map_err(err)?;
    let d = open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
    let opath = open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
    Ok(vec![("file_at_offset", f), ("append", append), ("deleted", deleted), ("dir", d), ("opath", opath)])
}

fn devices() -> Opened {
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(err)?;
    nix::pty::grantpt(&master).map_err(err)?;
    nix::pty::unlockpt(&master).map_err(err)?;
    let slave_path = nix::pty::ptsname_r(&master).map_err(err)?;
    let slave =
        open(slave_path.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
    Ok(vec![("devnull", null), ("pty_master", OwnedFd::from(master)), ("pty_slave", slave)])
}

fn pipes(dir: &Path) -> Opened {
    let fifo_path = dir.join("fifo");
    mkfifo(&fifo_path, Mode::from_bits_truncate(0o600)).map_err(err)?;
    let fifo = open(&fifo_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
    let (r, w) = pipe().map_err(err)?;
    write(&w, b"hello pipe").map_err(err)?;
    Ok(vec![("fifo", fifo), ("pipe_read", r), ("pipe_write", w)])
}

fn unix_sockets(dir: &Path) -> Opened {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).map_err(err)?;
    write(&a, b"queued").map_err(err)?;
    let dgram = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(err)?;
    let addr = UnixAddr::new(&dir.join("dgram.sock")).map_err(err)?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&dgram), &addr).map_err(err)?;
    Ok(vec![("unix_stream_a", a), ("unix_stream_b", b), ("unix_dgram", dgram)])
}

fn inet_sockets() -> Opened {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let udp = std::net::UdpSocket::bind("[::1]:0").map_err(err)?;
    Ok(vec![("tcp_listen", OwnedFd::from(tcp)), ("udp6", OwnedFd::from(udp))])
}

fn netlink() -> Opened {
    let nl = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)
        .map_err(err)?;
    // Bound (the kernel picks the port id): sock_diag lists only bound netlink sockets.
    bind(std::os::fd::AsRawFd::as_raw_fd(&nl), &nix::sys::socket::NetlinkAddr::new(0, 0)).map_err(err)?;
    let unbound = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)
        .map_err(err)?;
    Ok(vec![("netlink", nl), ("netlink_unbound", unbound)])
}

fn events(dir: &Path, pipe_read: Option<&OwnedFd>) -> Opened {
    let efd = EventFd::from_value_and_flags(5, EfdFlags::EFD_SEMAPHORE | EfdFlags::EFD_CLOEXEC).map_err(err)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(err)?;
    epoll.add(&efd, EpollEvent::new(EpollFlags::EPOLLIN, 0xe1)).map_err(err)?;
    if let Some(p) = pipe_read {
        epoll.add(p, EpollEvent::new(EpollFlags::EPOLLIN, 0xe2)).map_err(err)?;
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGUSR1);
    mask.thread_block().map_err(err)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(err)?;
    let tfd = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC).map_err(err)?;
    tfd.set(Expiration::Interval(TimeSpec::new(30, 0)), TimerSetTimeFlags::empty()).map_err(err)?;
    let ino = Inotify::init(InitFlags::IN_CLOEXEC).map_err(err)?;
    ino.add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_DELETE).map_err(err)?;
    Ok(vec![
        ("eventfd", OwnedFd::from(efd)),
        ("epoll", epoll.0),
        ("signalfd", OwnedFd::from(sfd)),
        ("timerfd", OwnedFd::from(tfd)),
        ("inotify", OwnedFd::from(ino)),
    ])
}

fn fanotify(dir: &Path) -> Opened {
    let fan = Fanotify::init(FanInit::FAN_CLASS_NOTIF | FanInit::FAN_CLOEXEC, EventFFlags::O_RDONLY).map_err(err)?;
    fan.mark(MarkFlags::FAN_MARK_ADD, MaskFlags::FAN_OPEN, nix::fcntl::AT_FDCWD, Some(dir)).map_err(err)?;
    Ok(vec![("fanotify", OwnedFd::from(fan))])
}

fn memfd() -> Opened {
    let m = memfd_create("holder-buf", MFdFlags::MFD_CLOEXEC).map_err(err)?;
    write(&m, &[1u8; 4096]).map_err(err)?;
    Ok(vec![("memfd", m)])
}

fn pidfd() -> Opened {
    // SAFETY: pidfd_open(pid, flags) takes plain integers.
    let fd = fd_of(unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) })?;
    Ok(vec![("pidfd", fd)])
}

fn io_uring() -> Opened {
    // struct io_uring_params is 120 bytes; zeroed asks for the defaults.
    let mut params = [0u8; 120];
    // SAFETY: the kernel writes at most sizeof(struct io_uring_params) into `params`, which we own.
    let fd = fd_of(unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) })?;
    Ok(vec![("io_uring", fd)])
}

fn perf_event() -> Opened {
    // perf_event_attr, first version (64 bytes): type, size, config, then zeroes.
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&1u64.to_ne_bytes()); // PERF_COUNT_SW_TASK_CLOCK
    // SAFETY: the kernel reads `size` bytes of `attr`, which we own; pid 0 = self, cpu -1, no group.
    let fd = fd_of(unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 8u64) })?;
    Ok(vec![("perf_event", fd)])
}

fn userfaultfd() -> Opened {
    // SAFETY: userfaultfd(flags) takes plain integers.
    let fd = fd_of(unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    Ok(vec![("userfaultfd", fd)])
}

fn netns() -> Opened {
    Ok(vec![("netns", open("/proc/self/ns/net", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?)])
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crrules-fdholder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn wait_for_eof() {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
}

fn hold(with_inet: bool) {
    let dir = temp_dir();
    let mut held: Vec<(&'static str, OwnedFd)> = Vec::new();
    fn add(held: &mut Vec<(&'static str, OwnedFd)>, what: &str, r: Opened) {
        match r {
            Ok(fds) => held.extend(fds),
            Err(e) => eprintln!("fdholder: cannot open {what}: {e}"),
        }
    }
    add(&mut held, "files", files(&dir));
    add(&mut held, "devices", devices());
    add(&mut held, "pipes", pipes(&dir));
    add(&mut held, "unix sockets", unix_sockets(&dir));
    if with_inet {
        add(&mut held, "inet sockets", inet_sockets());
    }
    add(&mut held, "netlink", netlink());
    add(&mut held, "fanotify", fanotify(&dir));
    add(&mut held, "memfd", memfd());
    add(&mut held, "pidfd", pidfd());
    add(&mut held, "io_uring", io_uring());
    add(&mut held, "perf_event", perf_event());
    add(&mut held, "userfaultfd", userfaultfd());
    add(&mut held, "netns", netns());
    let pipe_read = held.iter().find(|(n, _)| *n == "pipe_read").map(|(_, fd)| fd);
    let ev = events(&dir, pipe_read);
    add(&mut held, "events", ev);
    let map: BTreeMap<&str, RawFd> =
        held.iter().map(|(name, fd)| (*name, std::os::fd::AsRawFd::as_raw_fd(fd))).collect();
    let line = serde_json::to_string(&map).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    drop(out);
    wait_for_eof();
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Moves `fd` to number `to` (replacing whatever was there) and closes the original.
/// Moves `fd` to number `to` and to number `also` (replacing whatever was at either) and closes the original.
fn place(fd: OwnedFd, to: RawFd, also: RawFd) {
    let from = fd.into_raw_fd();
    // SAFETY: dup2 onto numbers this process reserves for the churn; `from` is ours and closed after.
    unsafe {
        libc::dup2(from, to);
        libc::dup2(from, also);
        libc::close(from);
    }
}

fn close_num(fd: RawFd) {
    // SAFETY: closes one of the churn's reserved numbers (EBADF when it is already closed is fine).
    unsafe {
        libc::close(fd);
    }
}

fn churn() {
    let dir = temp_dir();
    let file = dir.join("churn.txt");
    let _ = std::fs::write(&file, b"churn");
    std::thread::spawn(|| {
        wait_for_eof();
        std::process::exit(0);
    });
    let mut n: u32 = 0;
    loop {
        let i = (n % 10) as RawFd;
        // Object k also replaces mixed slot 150 + (n + k) % 10, so those change kind all the time.
        let mixed = |k: u32| 150 + ((n + k) % 10) as RawFd;
        if let Ok((r, w)) = pipe() {
            place(r, 100 + i, mixed(0));
            drop(w);
        }
        if let Ok(e) = EventFd::from_value_and_flags(i as u32, EfdFlags::empty()) {
            place(OwnedFd::from(e), 110 + i, mixed(1));
        }
        if let Ok(null) = open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
            place(null, 120 + i, mixed(2));
        }
        if let Ok((a, b)) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::empty()) {
            place(a, 130 + i, mixed(3));
            drop(b);
        }
        if let Ok(f) = open(&file, OFlag::O_RDONLY, Mode::empty()) {
            place(f, 140 + i, mixed(4));
        }
        if n % 3 == 0 {
            close_num(100 + ((n / 3) % 50) as RawFd);
        }
        n = n.wrapping_add(1);
        if n == 10 {
            // Every slot has been filled once (and the fd table has grown past 159, which can stall a
            // multi-threaded process for a while): only now is the churn what the caller expects.
            println!("{{}}");
            let _ = std::io::stdout().flush();
        }
        if n % 100_000 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Holds about `n` fds of mixed kinds (files, `/dev/null`, pipes, unix socket pairs, eventfds), prints
/// `{"count": N}` with the number actually held.
fn many(n: usize) {
    let dir = temp_dir();
    let file = dir.join("many.txt");
    let _ = std::fs::write(&file, b"many");
    let mut held: Vec<OwnedFd> = Vec::with_capacity(n);
    let mut i = 0usize;
    while held.len() < n {
        let r: Result<Vec<OwnedFd>, String> = match i % 5 {
            0 => open(&file, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map(|f| vec![f]).map_err(err),
            1 => open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map(|f| vec![f]).map_err(err),
            2 => pipe().map(|(r, w)| vec![r, w]).map_err(err),
            3 => socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
                .map(|(a, b)| vec![a, b])
                .map_err(err),
            _ => EventFd::from_value_and_flags(1, EfdFlags::EFD_CLOEXEC).map(|e| vec![OwnedFd::from(e)]).map_err(err),
        };
        match r {
            Ok(fds) => held.extend(fds),
            Err(e) => {
                eprintln!("fdholder: stopped at {} fds: {e}", held.len());
                break;
            }
        }
        i += 1;
    }
    println!("{{\"count\":{}}}", held.len());
    let _ = std::io::stdout().flush();
    wait_for_eof();
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--comm NAME` and `--open PATH` pairs, in any order: a process named by its caller, holding the paths.
fn hold_given(args: &[OsString]) {
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut map: BTreeMap<String, RawFd> = BTreeMap::new();
    let mut opens = 0;
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            eprintln!("fdholder: `{}` needs a value", pair[0].to_string_lossy());
            std::process::exit(2);
        };
        match flag.to_str() {
            Some("--comm") => {
                if let Err(e) = std::fs::write("/proc/self/comm", value.as_bytes()) {
                    eprintln!("fdholder: cannot set the comm: {e}");
                }
            }
            Some("--open") => {
                match open(Path::new(value), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
                    Ok(fd) => {
                        map.insert(format!("open{opens}"), std::os::fd::AsRawFd::as_raw_fd(&fd));
                        held.push(fd);
                    }
                    Err(e) => eprintln!("fdholder: cannot open {}: {e}", value.to_string_lossy()),
                }
                opens += 1;
            }
            _ => {
                eprintln!("fdholder: unknown argument `{}`", flag.to_string_lossy());
                std::process::exit(2);
            }
        }
    }
    println!("{}", serde_json::to_string(&map).unwrap_or_default());
    let _ = std::io::stdout().flush();
    wait_for_eof();
    drop(held);
}

fn main() {
    // Arguments as bytes: a path or a name to hold need not be UTF-8.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().map(|a| a.to_str().unwrap_or("")) {
        None => hold(true),
        Some("--comm" | "--open") => hold_given(&args),
        Some("--netns") => {
            // SAFETY: unshare(CLONE_NEWNET) only changes this (still single-threaded) process's namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                eprintln!("fdholder: unshare: {}", std::io::Error::last_os_error());
                std::process::exit(2);
            }
            hold(false);
        }
        Some("--churn") => churn(),
        Some("--many") => many(args.get(1).and_then(|n| n.to_str()?.parse().ok()).unwrap_or(1000)),
        Some(_) => {
            let other = args[0].to_string_lossy();
            eprintln!("fdholder: unknown argument `{other}` (use --netns, --churn, --many, --comm or --open)");
            std::process::exit(2);
        }
    }
}
