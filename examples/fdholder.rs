//! A process that holds one open fd of every kind the scanner knows, for the scan tests: it prints a JSON
//! map `{"name": fd, ...}` on one line, then blocks until its stdin reaches EOF.
//!
//! `fdholder` opens every kind; `fdholder --netns` first moves into a new network namespace (its inet
//! sockets are then left out: the new namespace's loopback is down); `fdholder --churn` opens and closes fds
//! in a tight loop, printing `{}` once every slot has been filled, keeping fixed fd numbers to fixed kinds:
//! 100-109 pipes, 110-119 eventfds whose count is the fd minus 110, 120-129 `/dev/null`, 130-139 unix
//! sockets, 140-149 regular files; 150-159 and the low fd numbers change between all of these kinds all the
//! time; 90-96 never change (`stable_fds`: one of each kind, printed as its map). `fdholder --many N` holds
//! about N fds of mixed kinds and prints `{"count": N}`.
//!
//! For the hardening tests (issue 12): `--reexec` (the stable fds, kept across an exec of itself over and
//! over), `--cred-churn` (the stable fds, its effective uid switched between 65534 and 0 all the time),
//! `--setuid` (the stable fds; becomes uid 65534 at a line on stdin), `--high N` (N fds of mixed kinds at
//! the highest numbers its hard open-files limit allows), `--children N` (N sleeping children), `--flicker`
//! (children that open fds and exit, over and over), and `--open-rw PATH` beside `--open PATH`. Each mode's
//! function says what it holds.
//! `fdholder [--comm NAME] [--open PATH]...` names itself NAME (any bytes, through `/proc/self/comm`) and
//! holds each PATH open read-only (any bytes too), printing `{"open0": fd, "open1": fd, ...}`.
//! `fdholder --main-exits` holds `/dev/null` as `devnull` from a second thread after its main thread has
//! exited (the raw `exit` syscall): the process lives on, its leader a zombie.
//!
//! Each kind that cannot be opened here is left out of the map, with its error on stderr.
//!
//! The default mode also holds the shapes that tell a kind's usual case from its hard one (issue 8):
//! `mqueue` (a POSIX message queue with one message, its name unlinked), `secretmem` (`memfd_secret`),
//! `pipe_packet_read`/`pipe_packet_write` (`pipe2(O_DIRECT)`), `timerfd_alarm` (CLOCK_BOOTTIME_ALARM),
//! `pidfd_thread` (`PIDFD_THREAD` on a parked thread); `tcp_unbound`, `udp_unbound`, `tcp_reset` (the peer
//! sent RST), `tcp_close_wait` (the peer closed), `tcp_listen_backlog` with `tcp_backlog_client` waiting in
//! its accept queue; `raw_icmp`, `ping`, `udplite`, `mptcp` (listening), `sctp`, `netlink_pending` (a dump
//! reply never read); `fifo_deleted` (with data), `dir_deleted`, `file_linked_elsewhere` (opened by a name
//! since unlinked, the inode still linked by another), `file_deleted_big` (2 MiB, over CRIU's ghost limit),
//! `posix_lock` (an fcntl write lock); `fanotify_fs` and `fanotify_mount` (a mark on the filesystem, and one
//! on the mount, of the temp dir); `proc_file`, `tracefs`, `debugfs`, `tty0` and `vt1` (`/dev/tty1`). When tracefs or
//! debugfs is not mounted at its usual place, the holder first moves into a private mount namespace and
//! mounts it there, so nothing is left mounted on the host.
//!
//! `fdholder --restorable` holds, in a known state, one fd of every kind the default policy lets crrules'
//! own backend restore, for the dump/restore and handover tests; nothing there is close-on-exec but
//! `file_cloexec` (a restore execs its command: a close-on-exec fd is rightly gone after it):
//! `file_ro` ("hello world\n", read-only, offset 6), `file_append` ("appended\n" written with O_APPEND:
//! offset 9), `file_cloexec` and `file_no_cloexec` (read-only), `dir` (O_DIRECTORY, the holder's temp dir),
//! `devnull` (read-write), `pipe_r`/`pipe_w` ("pipe data" buffered), `eventfd` (count 5), `eventfd_sem`
//! (EFD_SEMAPHORE, count 3), `timerfd` (CLOCK_MONOTONIC, 1000 s to go, interval 7 s), `signalfd` (SIGUSR1
//! and SIGUSR2, both blocked), `memfd` (named `fdholder-restorable`, "memfd bytes", sealed against growing
//! and shrinking, offset 3), `deleted_file` ("gone but kept", unlinked, offset 2), `unix_a`/`unix_b` (a
//! stream pair, "to a" queued on a and "to b" on b), `unix_dgram_a`/`unix_dgram_b` (a datagram pair, "d1"
//! and "d2" queued on b), `epoll` (pipe_r for EPOLLIN with data 42, eventfd for EPOLLIN | EPOLLET with data
//! 7), `tcp_listen` (127.0.0.1, listening, backlog 16). Its map also has `tcp_listen_port`: that
//! listener's port, a number that is not an fd. Any of these that cannot be made fails the whole mode
//! (exit 2): the tests need every one. Its files are in `$TMPDIR/crrules-fdholder-PID`, removed when it exits
//! at its stdin's EOF (a killed holder leaves it to its caller).
//!
//! `fdholder --kinds` holds, none close-on-exec, the kinds the backend recreates beyond those (sockets that
//! neither listen nor hold a TCP connection, netlink and packet sockets, a FIFO and a directory with no
//! name left, pidfds, fanotify groups), and a TCP connection and a pidfd on another process it refuses; see
//! `hold_kinds` for each one's state.
//!
//! Process trees, for linking the fds of processes checked together: each mode forks a child that dies with
//! the holder (`PR_SET_PDEATHSIG`), named `fdholder-child`, and prints its map once the child is set up.
//! `fdholder --socketpair`: a unix stream pair, `parent` held by the holder and `child` by the child.
//! `fdholder --daemon`: the holder is a daemon with a listening unix stream socket (`listener`), the
//! connection it accepted (`accepted`) and a bound unix datagram socket (`dgram`); the child is its client,
//! holding a stream socket connected to the listener (`client_stream`) and a datagram socket connected to
//! `dgram` (`client_dgram`, not close-on-exec). `fdholder --pty`: the holder holds a pty's master (`master`, pty number
//! `index`); the child leads a session of its own with the slave as its controlling terminal on fds 0-2, and
//! `/dev/tty` open as `child_tty`; with `--tty-only` after it, the child's fds 0-2 are then `/dev/null`, so it
//! holds the slave only as `/dev/tty`. `fdholder --writer-exited`: the holder holds the read end (`pipe_read`,
//! `bye` buffered) of a pipe whose only writer was the child, since killed and reaped. Each map has
//! `child_pid`, a pid, not an fd. A shape that cannot be made fails the mode (exit 2).
//!
//! `fdholder --dups` holds open files at several numbers each (after `dup`, as a shell's `>log 2>&1`
//! leaves its stdout and stderr): a file at four numbers, two close-on-exec; an eventfd at three, one
//! close-on-exec; a pipe's
//! write end at two; an `O_APPEND` log at fds 1 and 2 (see `hold_dups`). `fdholder --many-dups N` holds
//! about N fds, nine in ten of them further numbers of an open file it holds (see `many_dups`), for
//! measuring dump and restore when most fds share an open file.
//!
//! `fdholder --tcp-pair`: TCP over loopback. The holder listens on 127.0.0.1 (`listener`) and on `[::]`
//! accepting IPv4 too (`listener6`); the child connects to each from IPv4 sockets, `client` and
//! `client_mapped`, which the holder accepts as `accepted` (IPv4) and `accepted_mapped` (IPv6, the
//! client's address IPv4-mapped); the child also connects as `unaccepted` to a third listener, `backlog`,
//! that never accepts. A fourth, `server` (its port `server_port`, a number, not an fd), is accepted from
//! by a thread of the holder for as long as it runs, each connection kept open: for
//! `fdholder --tcp-connect PORT`, a separate process that connects to 127.0.0.1:PORT and holds `client`.
//! `fdholder --tcp-pair --netns` makes the same tree in a new network namespace, its loopback brought up.
//!
//! `fdholder --peer-closed` holds unix sockets whose peer it has closed (no process holds it), none
//! close-on-exec, each with what the peer sent before it closed still queued: `unix_closed` (stream, "left for
//! you"), `unix_closed_seqpacket` ("m1", then "m22") and `unix_closed_dgram` (datagram, "d1", then "d2").
//! With `--unaccepted` after it, also `unix_listener` (a listening stream socket bound in its temp dir) and
//! `unix_unaccepted`, a stream socket connected to it that it never accepts (its peer has no inode yet, and
//! is alive). Its temp dir is removed at its stdin's EOF.
// Raw system calls for what nix does not wrap (pidfd_open, io_uring_setup, perf_event_open, userfaultfd,
// memfd_secret, mq_*, socket with any protocol number, mount, dup2 to a chosen number, unshare, flock, fork,
// prctl, ioctl(TIOCSCTTY)): each `unsafe` block is one syscall on values owned here.
#![allow(unsafe_code)]

use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl, open};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags as FanInit, MarkFlags, MaskFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockProtocol, SockType, SockaddrIn, UnixAddr, bind, getsockname, listen, socket,
    socketpair,
};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::unistd::{Whence, lseek, mkfifo, pipe, unlink, write};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Named fds, as they are put in the map.
type Held = Vec<(&'static str, OwnedFd)>;
type Opened = Result<Held, String>;

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

// ---- Shapes (issue 8): one attempt per fd, so each that the kernel refuses is left out alone. ----

/// One named attempt: the name, and the fds it gave (or why not).
type Tried = (&'static str, Opened);

fn one(name: &'static str, r: Result<OwnedFd, String>) -> Tried {
    (name, r.map(|fd| vec![(name, fd)]))
}

fn raw(fd: &OwnedFd) -> RawFd {
    std::os::fd::AsRawFd::as_raw_fd(fd)
}

/// A syscall's `0 or -1` result as a `Result`.
fn ok_or_errno(ret: libc::c_int) -> Result<(), String> {
    if ret < 0 { Err(std::io::Error::last_os_error().to_string()) } else { Ok(()) }
}

/// When tracefs or debugfs is not mounted at its usual place: moves into a private mount namespace and
/// mounts it there, so the fds opened on it have a mount in the holder's mountinfo and nothing stays
/// mounted on the host. Must run before any fd is opened (their mounts must be the new namespace's).
fn mount_kernel_fs() -> Result<(), String> {
    use std::ffi::CStr;
    let empty = |at: &CStr| std::fs::read_dir(at.to_str().unwrap_or("/")).map_or(true, |mut d| d.next().is_none());
    let missing: Vec<(&CStr, &CStr)> = [(c"tracefs", c"/sys/kernel/tracing"), (c"debugfs", c"/sys/kernel/debug")]
        .into_iter()
        .filter(|(_, at)| empty(at))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: unshare(CLONE_NEWNS) only changes this (still single-threaded) process's mount namespace.
    ok_or_errno(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map_err(|e| format!("unshare: {e}"))?;
    // SAFETY: mount with static C strings; MS_REC | MS_PRIVATE keeps the mounts below from propagating.
    ok_or_errno(unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map_err(|e| format!("make / private: {e}"))?;
    let mut errors = Vec::new();
    for (fs, at) in missing {
        // SAFETY: mount with static C strings, in this process's private mount namespace.
        let ret = unsafe { libc::mount(c"nodev".as_ptr(), at.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
        if let Err(e) = ok_or_errno(ret) {
            errors.push(format!("mount {fs:?} at {at:?}: {e}"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// A socket of any domain, type and protocol number (nix names only some protocols), close-on-exec.
fn any_socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: socket(2) takes plain integers and returns a new fd.
    fd_of(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) }.into())
}

fn mqueue() -> Result<OwnedFd, String> {
    let name = std::ffi::CString::new(format!("/crrules-fdholder-{}", std::process::id())).map_err(err)?;
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    // SAFETY: mq_open with a C string owned here, a mode and no attributes (the defaults); returns an fd.
    let q = fd_of(
        unsafe { libc::mq_open(name.as_ptr(), flags, 0o600 as libc::mode_t, std::ptr::null::<libc::mq_attr>()) }.into(),
    )?;
    let msg = b"queued message";
    // SAFETY: mq_send reads `msg.len()` bytes of `msg`, which we own, on the queue we own.
    ok_or_errno(unsafe { libc::mq_send(raw(&q), msg.as_ptr().cast(), msg.len(), 0) })?;
    // Unlinked: the queue lives on through the fd, and no name outlives a killed holder.
    // SAFETY: mq_unlink with a C string owned here.
    ok_or_errno(unsafe { libc::mq_unlink(name.as_ptr()) })?;
    Ok(q)
}

fn secretmem() -> Result<OwnedFd, String> {
    // SAFETY: memfd_secret(flags) takes a plain integer and returns a new fd.
    let fd = fd_of(unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC) })?;
    nix::unistd::ftruncate(&fd, 4096).map_err(err)?;
    Ok(fd)
}

/// A pidfd on a thread of this process that parks forever.
fn pidfd_thread() -> Result<OwnedFd, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fdholder-park".into())
        .spawn(move || {
            let _ = tx.send(nix::unistd::gettid());
            loop {
                std::thread::park();
            }
        })
        .map_err(err)?;
    let tid = rx.recv().map_err(err)?;
    // PIDFD_THREAD is O_EXCL (libc does not name it).
    // SAFETY: pidfd_open(pid, flags) takes plain integers.
    fd_of(unsafe { libc::syscall(libc::SYS_pidfd_open, tid.as_raw(), libc::O_EXCL) })
}

/// Kernel objects whose fds look like something else: a message queue and secret memory (files by their
/// link), a packet-mode pipe, an alarm-clock timer, a thread's pidfd.
fn ipc_shapes() -> Vec<Tried> {
    let packet_pipe = || -> Opened {
        let (r, w) = nix::unistd::pipe2(OFlag::O_DIRECT | OFlag::O_CLOEXEC).map_err(err)?;
        write(&w, b"one packet").map_err(err)?;
        Ok(vec![("pipe_packet_read", r), ("pipe_packet_write", w)])
    };
    let alarm = || -> Result<OwnedFd, String> {
        let t = TimerFd::new(ClockId::CLOCK_BOOTTIME_ALARM, TimerFlags::TFD_CLOEXEC).map_err(err)?;
        t.set(Expiration::Interval(TimeSpec::new(30, 0)), TimerSetTimeFlags::empty()).map_err(err)?;
        Ok(OwnedFd::from(t))
    };
    vec![
        one("mqueue", mqueue()),
        one("secretmem", secretmem()),
        ("packet pipe", packet_pipe()),
        one("timerfd_alarm", alarm()),
        one("pidfd_thread", pidfd_thread()),
    ]
}

/// Waits (up to a second) until `fd` reports one of `events`, without consuming anything.
fn wait_for(fd: &OwnedFd, events: nix::poll::PollFlags) -> Result<(), String> {
    use nix::poll::{PollFd, PollTimeout, poll};
    let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), events)];
    match poll(&mut fds, PollTimeout::from(1000u16)).map_err(err)? {
        0 => Err(format!("no {events:?} within a second")),
        _ => Ok(()),
    }
}

/// A loopback listener and a client connected to it, accepted.
fn connected_pair() -> Result<(OwnedFd, std::net::TcpStream), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let client = std::net::TcpStream::connect(listener.local_addr().map_err(err)?).map_err(err)?;
    let (accepted, _) = listener.accept().map_err(err)?;
    Ok((OwnedFd::from(client), accepted))
}

/// TCP and UDP sockets in the states past and before the usual ones.
fn tcp_shapes() -> Vec<Tried> {
    use nix::poll::PollFlags;
    let reset = || -> Result<OwnedFd, String> {
        let (client, accepted) = connected_pair()?;
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        nix::sys::socket::setsockopt(&accepted, nix::sys::socket::sockopt::Linger, &linger).map_err(err)?;
        drop(accepted);
        wait_for(&client, PollFlags::POLLERR | PollFlags::POLLHUP)?;
        Ok(client)
    };
    let close_wait = || -> Result<OwnedFd, String> {
        let (client, accepted) = connected_pair()?;
        drop(accepted);
        wait_for(&client, PollFlags::POLLIN)?;
        Ok(client)
    };
    let backlog = || -> Opened {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
        let client = std::net::TcpStream::connect(listener.local_addr().map_err(err)?).map_err(err)?;
        let listener = OwnedFd::from(listener);
        wait_for(&listener, PollFlags::POLLIN)?;
        Ok(vec![("tcp_listen_backlog", listener), ("tcp_backlog_client", OwnedFd::from(client))])
    };
    vec![
        one("tcp_unbound", any_socket(libc::AF_INET, libc::SOCK_STREAM, 0)),
        one("udp_unbound", any_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)),
        one("tcp_reset", reset()),
        one("tcp_close_wait", close_wait()),
        ("tcp backlog", backlog()),
    ]
}

/// Inet protocols beside TCP and UDP, and a netlink socket with a reply waiting.
fn protocol_sockets() -> Vec<Tried> {
    let mptcp = || -> Result<OwnedFd, String> {
        let s = any_socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_MPTCP)?;
        bind(raw(&s), &nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 0)).map_err(err)?;
        nix::sys::socket::listen(&s, nix::sys::socket::Backlog::new(4).map_err(err)?).map_err(err)?;
        Ok(s)
    };
    let netlink_pending = || -> Result<OwnedFd, String> {
        let nl = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)
            .map_err(err)?;
        bind(raw(&nl), &nix::sys::socket::NetlinkAddr::new(0, 0)).map_err(err)?;
        // nlmsghdr (len, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, port 0) + a zeroed ifinfomsg: the
        // kernel writes the first part of the dump into the receive queue before send returns.
        let mut req = [0u8; 32];
        req[0..4].copy_from_slice(&32u32.to_ne_bytes());
        req[4..6].copy_from_slice(&(libc::RTM_GETLINK).to_ne_bytes());
        req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        write(&nl, &req).map_err(err)?;
        Ok(nl)
    };
    vec![
        one("raw_icmp", any_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)),
        one("ping", any_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP)),
        one("udplite", any_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE)),
        one("mptcp", mptcp()),
        one("sctp", any_socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP)),
        one("netlink_pending", netlink_pending()),
    ]
}

/// Files whose names no longer lead to them, a file too big to copy as a ghost, a POSIX lock.
fn file_shapes(dir: &Path) -> Vec<Tried> {
    let rw_create = |path: &Path| {
        open(path, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o600)).map_err(err)
    };
    let fifo_deleted = || -> Result<OwnedFd, String> {
        let path = dir.join("fifo-deleted");
        mkfifo(&path, Mode::from_bits_truncate(0o600)).map_err(err)?;
        let fifo = open(&path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
        write(&fifo, b"fifo data").map_err(err)?;
        unlink(&path).map_err(err)?;
        Ok(fifo)
    };
    let dir_deleted = || -> Result<OwnedFd, String> {
        let path = dir.join("dir-deleted");
        std::fs::create_dir(&path).map_err(err)?;
        let d = open(&path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
        std::fs::remove_dir(&path).map_err(err)?;
        Ok(d)
    };
    let linked_elsewhere = || -> Result<OwnedFd, String> {
        let (a, b) = (dir.join("linked-a"), dir.join("linked-b"));
        let f = rw_create(&a)?;
        write(&f, b"still linked as linked-b").map_err(err)?;
        std::fs::hard_link(&a, &b).map_err(err)?;
        unlink(&a).map_err(err)?;
        Ok(f)
    };
    let deleted_big = || -> Result<OwnedFd, String> {
        let path = dir.join("deleted-big.bin");
        let mut f = std::fs::File::from(rw_create(&path)?);
        f.write_all(&vec![9u8; 2 << 20]).map_err(err)?;
        unlink(&path).map_err(err)?;
        Ok(OwnedFd::from(f))
    };
    let posix_lock = || -> Result<OwnedFd, String> {
        let f = rw_create(&dir.join("posix.lock"))?;
        write(&f, &[b'l'; 100]).map_err(err)?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETLK(&lock)).map_err(err)?;
        Ok(f)
    };
    vec![
        one("fifo_deleted", fifo_deleted()),
        one("dir_deleted", dir_deleted()),
        one("file_linked_elsewhere", linked_elsewhere()),
        one("file_deleted_big", deleted_big()),
        one("posix_lock", posix_lock()),
    ]
}

/// fanotify groups marking the whole filesystem, and the whole mount, of `dir`.
fn fanotify_marks(dir: &Path) -> Vec<Tried> {
    let marked = |how: MarkFlags| -> Result<OwnedFd, String> {
        let fan =
            Fanotify::init(FanInit::FAN_CLASS_NOTIF | FanInit::FAN_CLOEXEC, EventFFlags::O_RDONLY).map_err(err)?;
        // Executions only: rare, so the unread queue stays short.
        fan.mark(MarkFlags::FAN_MARK_ADD | how, MaskFlags::FAN_OPEN_EXEC, nix::fcntl::AT_FDCWD, Some(dir))
            .map_err(err)?;
        Ok(OwnedFd::from(fan))
    };
    vec![
        one("fanotify_fs", marked(MarkFlags::FAN_MARK_FILESYSTEM)),
        one("fanotify_mount", marked(MarkFlags::FAN_MARK_MOUNT)),
    ]
}

/// Files of the kernel's own filesystems (proc, tracefs, debugfs) and virtual consoles.
fn kernel_files() -> Vec<Tried> {
    let read_only = |path: &str, extra: OFlag| {
        open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC | extra, Mode::empty()).map_err(|e| format!("{path}: {e}"))
    };
    // A plain read-only file: opening `trace` itself for reading would pause tracing while it is held.
    let tracefs = read_only("/sys/kernel/tracing/README", OFlag::empty());
    let debugfs = read_only("/sys/kernel/debug/sleep_time", OFlag::empty())
        .or_else(|_| read_only("/sys/kernel/debug/fault_around_bytes", OFlag::empty()));
    vec![
        one("proc_file", read_only("/proc/self/status", OFlag::empty())),
        one("tracefs", tracefs),
        one("debugfs", debugfs),
        one("tty0", read_only("/dev/tty0", OFlag::O_NOCTTY)),
        one("vt1", read_only("/dev/tty1", OFlag::O_NOCTTY)),
    ]
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crrules-fdholder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Prints the map of what is held ([`print_map`]), then holds it all until stdin's EOF.
fn report_and_wait(map: &impl serde::Serialize) {
    print_map(map);
    wait_for_eof();
}

/// Prints the map of what is held: one JSON line, flushed, which the tests read.
fn print_map(map: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(map).unwrap_or_default());
    let _ = std::io::stdout().flush();
}

fn wait_for_eof() {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
}

/// Holds one fd of every kind; with `shapes` (the default mode), the issue-8 shapes too.
fn hold(with_inet: bool, shapes: bool) {
    if shapes {
        if let Err(e) = mount_kernel_fs() {
            eprintln!("fdholder: cannot mount tracefs/debugfs privately: {e}");
        }
    }
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
    if shapes {
        let tried =
            [ipc_shapes(), tcp_shapes(), protocol_sockets(), file_shapes(&dir), fanotify_marks(&dir), kernel_files()];
        for (what, r) in tried.into_iter().flatten() {
            add(&mut held, what, r);
        }
    }
    let map: BTreeMap<&str, RawFd> =
        held.iter().map(|(name, fd)| (*name, std::os::fd::AsRawFd::as_raw_fd(fd))).collect();
    report_and_wait(&map);
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--restorable`: the fds of every kind crrules' own backend restores, in the state the module doc lists,
/// none close-on-exec but `file_cloexec`; the map adds `tcp_listen_port`.
fn hold_restorable() {
    let dir = temp_dir();
    let (held, port) = match restorable(&dir) {
        Ok(made) => made,
        Err(e) => {
            eprintln!("fdholder: --restorable: {e}");
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(2);
        }
    };
    let mut map: BTreeMap<&str, i64> = held.iter().map(|(name, fd)| (*name, i64::from(raw(fd)))).collect();
    // Not an fd: the port `tcp_listen` listens on.
    map.insert("tcp_listen_port", i64::from(port));
    report_and_wait(&map);
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens the `--restorable` fds in `dir`; also returns the listener's port.
fn restorable(dir: &Path) -> Result<(Held, u16), String> {
    /// An error of the step `what`.
    fn at(what: &str) -> impl Fn(nix::Error) -> String + '_ {
        move |e| format!("{what}: {e}")
    }
    let create = |name: &str, text: &[u8], flags: OFlag| -> Result<OwnedFd, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        open(&path, flags, Mode::empty()).map_err(|e| format!("{}: {e}", path.display()))
    };

    let file_ro = create("ro.txt", b"hello world\n", OFlag::O_RDONLY)?;
    lseek(&file_ro, 6, Whence::SeekSet).map_err(at("file_ro"))?;
    let file_append = create("append.log", b"", OFlag::O_WRONLY | OFlag::O_APPEND)?;
    write(&file_append, b"appended\n").map_err(at("file_append"))?;
    let file_cloexec = create("cloexec.txt", b"closed at exec\n", OFlag::O_RDONLY | OFlag::O_CLOEXEC)?;
    let file_no_cloexec = create("no-cloexec.txt", b"kept at exec\n", OFlag::O_RDONLY)?;
    let dir_fd = open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).map_err(at("dir"))?;
    let devnull = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map_err(at("/dev/null"))?;

    let (pipe_r, pipe_w) = pipe().map_err(at("pipe"))?;
    write(&pipe_w, b"pipe data").map_err(at("pipe"))?;

    let eventfd = EventFd::from_value_and_flags(5, EfdFlags::empty()).map_err(at("eventfd"))?;
    let eventfd_sem = EventFd::from_value_and_flags(3, EfdFlags::EFD_SEMAPHORE).map_err(at("eventfd_sem"))?;

    let timerfd = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::empty()).map_err(at("timerfd"))?;
    let first_and_every = Expiration::IntervalDelayed(TimeSpec::new(1000, 0), TimeSpec::new(7, 0));
    timerfd.set(first_and_every, TimerSetTimeFlags::empty()).map_err(at("timerfd"))?;

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGUSR1);
    mask.add(Signal::SIGUSR2);
    mask.thread_block().map_err(at("sigprocmask"))?;
    let signalfd = SignalFd::with_flags(&mask, SfdFlags::empty()).map_err(at("signalfd"))?;

    let memfd = memfd_create("fdholder-restorable", MFdFlags::MFD_ALLOW_SEALING).map_err(at("memfd"))?;
    write(&memfd, b"memfd bytes").map_err(at("memfd"))?;
    fcntl(&memfd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK)).map_err(at("memfd seals"))?;
    lseek(&memfd, 3, Whence::SeekSet).map_err(at("memfd"))?;

    let deleted_file = create("deleted.txt", b"gone but kept", OFlag::O_RDWR)?;
    lseek(&deleted_file, 2, Whence::SeekSet).map_err(at("deleted_file"))?;
    unlink(&dir.join("deleted.txt")).map_err(at("deleted_file"))?;

    let (unix_a, unix_b) =
        socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::empty()).map_err(at("unix pair"))?;
    write(&unix_a, b"to b").map_err(at("unix_a"))?;
    write(&unix_b, b"to a").map_err(at("unix_b"))?;
    let (unix_dgram_a, unix_dgram_b) =
        socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::empty()).map_err(at("unix dgram pair"))?;
    write(&unix_dgram_a, b"d1").map_err(at("unix_dgram_a"))?;
    write(&unix_dgram_a, b"d2").map_err(at("unix_dgram_a"))?;

    let epoll = Epoll::new(EpollCreateFlags::empty()).map_err(at("epoll"))?;
    epoll.add(&pipe_r, EpollEvent::new(EpollFlags::EPOLLIN, 42)).map_err(at("epoll pipe_r"))?;
    epoll.add(&eventfd, EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, 7)).map_err(at("epoll eventfd"))?;

    let tcp_listen = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).map_err(at("tcp"))?;
    bind(raw(&tcp_listen), &SockaddrIn::new(127, 0, 0, 1, 0)).map_err(at("tcp bind"))?;
    listen(&tcp_listen, Backlog::new(16).map_err(at("backlog"))?).map_err(at("tcp listen"))?;
    let port = getsockname::<SockaddrIn>(raw(&tcp_listen)).map_err(at("tcp getsockname"))?.port();

    let held = vec![
        ("file_ro", file_ro),
        ("file_append", file_append),
        ("file_cloexec", file_cloexec),
        ("file_no_cloexec", file_no_cloexec),
        ("dir", dir_fd),
        ("devnull", devnull),
        ("pipe_r", pipe_r),
        ("pipe_w", pipe_w),
        ("eventfd", OwnedFd::from(eventfd)),
        ("eventfd_sem", OwnedFd::from(eventfd_sem)),
        ("timerfd", OwnedFd::from(timerfd)),
        ("signalfd", OwnedFd::from(signalfd)),
        ("memfd", memfd),
        ("deleted_file", deleted_file),
        ("unix_a", unix_a),
        ("unix_b", unix_b),
        ("unix_dgram_a", unix_dgram_a),
        ("unix_dgram_b", unix_dgram_b),
        ("epoll", epoll.0),
        ("tcp_listen", tcp_listen),
    ];
    Ok((held, port))
}

/// `--inotify`: one inotify instance (`IN_NONBLOCK`, not close-on-exec) whose watches have gaps between
/// their numbers, on files in `$TMPDIR/crrules-fdholder-PID`: wd 1 on `dir_a` (`IN_CREATE | IN_DELETE |
/// IN_MOVED_TO`), wd 2 on `dir_gap` removed again, wd 3 on `dir_b` (`IN_MODIFY | IN_ATTRIB |
/// IN_EXCL_UNLINK | IN_ONLYDIR`), wd 4 on the file `file_c` (`IN_CLOSE_WRITE | IN_ONESHOT`), wds 5 and 6
/// on `dir_gap` removed again, wd 7 on `dir_a/sub` (`IN_ALL_EVENTS`). It prints `{"inotify": FD, "wd_dir_a":
/// 1, "wd_dir_b": 3, "wd_file_c": 4, "wd_sub": 7}` (the wds as the kernel gave them: numbers, not fds); the
/// removals' `IN_IGNORED` events stay queued. `--inotify --deleted` also holds the file `file_gone` open
/// (`gone` in the map), watched as wd 8 (`IN_MODIFY`, `wd_gone`), and unlinked. Any step that fails ends it
/// (exit 2).
fn hold_inotify(deleted: bool) {
    let dir = temp_dir();
    let made = (|| -> Result<(Vec<OwnedFd>, BTreeMap<&'static str, i64>), String> {
        // SAFETY: a plain call with an integer argument.
        let fd = fd_of(unsafe { libc::inotify_init1(libc::IN_NONBLOCK) }.into())?;
        let add = |name: &str, mask: u32| -> Result<i64, String> {
            let path = dir.join(name);
            let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(err)?;
            // SAFETY: `c` is NUL-terminated; the inotify fd is ours.
            let wd = unsafe { libc::inotify_add_watch(raw(&fd), c.as_ptr(), mask) };
            if wd < 0 {
                return Err(format!("watch {}: {}", path.display(), std::io::Error::last_os_error()));
            }
            Ok(i64::from(wd))
        };
        let rm = |wd: i64| -> Result<(), String> {
            // SAFETY: a plain call with integer arguments on our inotify fd.
            ok_or_errno(unsafe { libc::inotify_rm_watch(raw(&fd), wd as i32) })
        };
        for sub in ["dir_a", "dir_a/sub", "dir_b", "dir_gap"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{sub}: {e}"))?;
        }
        std::fs::write(dir.join("file_c"), b"c").map_err(|e| format!("file_c: {e}"))?;
        let mut map = BTreeMap::new();
        map.insert("wd_dir_a", add("dir_a", libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_TO)?);
        rm(add("dir_gap", libc::IN_ACCESS)?)?;
        let dir_b = libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_EXCL_UNLINK | libc::IN_ONLYDIR;
        map.insert("wd_dir_b", add("dir_b", dir_b)?);
        map.insert("wd_file_c", add("file_c", libc::IN_CLOSE_WRITE | libc::IN_ONESHOT)?);
        rm(add("dir_gap", libc::IN_ACCESS)?)?;
        rm(add("dir_gap", libc::IN_ACCESS)?)?;
        map.insert("wd_sub", add("dir_a/sub", libc::IN_ALL_EVENTS)?);
        map.insert("inotify", i64::from(raw(&fd)));
        let mut held = Vec::new();
        if deleted {
            let gone = dir.join("file_gone");
            let file = open(&gone, OFlag::O_RDWR | OFlag::O_CREAT, Mode::from_bits_truncate(0o600)).map_err(err)?;
            map.insert("wd_gone", add("file_gone", libc::IN_MODIFY)?);
            unlink(&gone).map_err(err)?;
            map.insert("gone", i64::from(raw(&file)));
            held.push(file);
        }
        held.push(fd);
        Ok((held, map))
    })();
    let (held, map) = match made {
        Ok(made) => made,
        Err(e) => {
            eprintln!("fdholder: --inotify: {e}");
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(2);
        }
    };
    report_and_wait(&map);
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
    let (_, file, stable) = stable_in_temp("--churn", "churn");
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
            print_map(&stable);
        }
        if n % 100_000 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// For the stable-fd modes: `NAME.txt` (holding NAME) in a new temp dir, and [`stable_fds`] on it; a
/// failure ends the mode (exit 2). Returns the dir, the file and the map.
fn stable_in_temp(mode: &str, name: &str) -> (PathBuf, PathBuf, BTreeMap<&'static str, RawFd>) {
    let dir = temp_dir();
    let file = dir.join(format!("{name}.txt"));
    let _ = std::fs::write(&file, name);
    let stable = stable_fds(&file).unwrap_or_else(|e| {
        eprintln!("fdholder: {mode}: {e}");
        std::process::exit(2);
    });
    (dir, file, stable)
}

/// The fds a racing holder keeps from start to end, none close-on-exec (they outlive an exec and come back in
/// a restore), at fixed numbers 90-96 well above the low numbers its churn takes and gives back:
/// `stable_null` (`/dev/null`, read-write), `stable_file` (`file`, read-only), `stable_pipe_r`/`stable_pipe_w`
/// (`stable` buffered), `stable_eventfd` (count 42), `stable_unix_a`/`stable_unix_b` (a stream pair). Their
/// map, fd numbers by name.
fn stable_fds(file: &Path) -> Result<BTreeMap<&'static str, RawFd>, String> {
    let null = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map_err(err)?;
    let f = open(file, OFlag::O_RDONLY, Mode::empty()).map_err(err)?;
    let (r, w) = pipe().map_err(err)?;
    write(&w, b"stable").map_err(err)?;
    let e = OwnedFd::from(EventFd::from_value_and_flags(42, EfdFlags::empty()).map_err(err)?);
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::empty()).map_err(err)?;
    let named = [
        ("stable_null", null),
        ("stable_file", f),
        ("stable_pipe_r", r),
        ("stable_pipe_w", w),
        ("stable_eventfd", e),
        ("stable_unix_a", a),
        ("stable_unix_b", b),
    ];
    let mut map = BTreeMap::new();
    for (at, (name, fd)) in (90..).zip(named) {
        let from = fd.into_raw_fd();
        // SAFETY: dup2 onto a number nothing in this process uses yet (90-96); the original is ours, closed
        // after. The number is kept open until the process ends.
        if unsafe { libc::dup2(from, at) } != at {
            return Err(format!("dup2 to {at}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: as above.
        unsafe { libc::close(from) };
        map.insert(name, at);
    }
    Ok(map)
}

/// True once this process's stdin reached its end (checked without waiting).
fn stdin_closed() -> bool {
    let mut fds = [libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 }];
    // SAFETY: poll on one pollfd we own, without waiting.
    if unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) } <= 0 {
        return false;
    }
    let mut byte = [0u8; 1];
    // SAFETY: reads at most one byte into `byte`; stdin was just reported readable.
    unsafe { libc::read(0, byte.as_mut_ptr().cast(), 1) == 0 }
}

/// `--reexec`: holds the stable fds, prints their map, then execs itself again and again (`--reexec-again`,
/// which skips closing inherited fds) until its stdin reaches its end: a process that is always in or
/// near an exec while it is scanned, its stable fds kept across each one.
fn reexec(first: bool) {
    if first {
        let (_, _, stable) = stable_in_temp("--reexec", "reexec");
        print_map(&stable);
    }
    // SAFETY: prctl with integer arguments: dies with the test that started it, even mid-exec loop.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if stdin_closed() {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("crrules-fdholder-{}", std::process::id())));
        std::process::exit(0);
    }
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let e = std::os::unix::process::CommandExt::exec(std::process::Command::new(exe).arg("--reexec-again"));
    eprintln!("fdholder: --reexec: exec: {e}");
    std::process::exit(2);
}

/// `--cred-churn`: holds the stable fds, prints their map, then (as root) switches its effective uid between
/// 65534 and 0 over and over (raw `setresuid`: saved uid 0 lets it back) until its stdin reaches its end:
/// a process whose credentials, and so whether `/proc` lets others in, change all the time.
fn cred_churn() {
    let (dir, _, stable) = stable_in_temp("--cred-churn", "cred");
    print_map(&stable);
    let mut n: u64 = 0;
    loop {
        let euid: libc::c_long = if n % 2 == 0 { 65534 } else { 0 };
        // SAFETY: setresuid with integer arguments (-1 leaves the real and saved uids), this thread only.
        if unsafe { libc::syscall(libc::SYS_setresuid, -1 as libc::c_long, euid, -1 as libc::c_long) } != 0 {
            eprintln!("fdholder: --cred-churn: setresuid: {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
        n += 1;
        if n % 256 == 0 && stdin_closed() {
            // SAFETY: as above, back to root to remove its files.
            unsafe { libc::syscall(libc::SYS_setresuid, -1 as libc::c_long, 0 as libc::c_long, -1 as libc::c_long) };
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(0);
        }
    }
}

/// `--setuid`: holds the stable fds, prints their map, and at the first line on its stdin becomes uid and
/// gid 65534 for good (real, effective, saved; no supplementary groups) and marks itself dumpable again (so
/// that user may read its `/proc`); then waits for its stdin's end. Its files are in a directory anyone may
/// enter, readable by all.
fn setuid_on_input() {
    let (dir, file, stable) = stable_in_temp("--setuid", "setuid");
    let open_to_all = |p: &Path, mode| std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode));
    let _ = open_to_all(&dir, 0o755);
    let _ = open_to_all(&file, 0o644);
    print_map(&stable);
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    // SAFETY: setgroups, setresgid, setresuid and prctl with integer arguments and no buffer.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(65534, 65534, 65534) == 0
            && libc::setresuid(65534, 65534, 65534) == 0
            && libc::prctl(libc::PR_SET_DUMPABLE, 1) == 0
    };
    if !dropped {
        eprintln!("fdholder: --setuid: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    wait_for_eof();
}

/// `--high N`: raises its soft open-files limit to the hard one and holds `n` fds at the `n` highest numbers
/// below it (so with a hard limit of 20,000 and N 1,000: 19,000-19,999), of mixed kinds in turn: a regular
/// file, `/dev/null`, a pipe with `p` buffered (read end, then write end), a unix stream pair, an eventfd;
/// none close-on-exec. Prints `{"first": F, "count": N, "limit": HARD}`. Exits 2 when any cannot be made.
fn high(n: usize) {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("fdholder: --high {n}: {what}: {e}");
        std::process::exit(2);
    };
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write `lim`, which we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            fail("getrlimit", &std::io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            fail("setrlimit", &std::io::Error::last_os_error());
        }
    }
    let limit = lim.rlim_max.min(i32::MAX as u64) as RawFd;
    let first = limit - n as RawFd;
    if first < 16 {
        fail("too many", &format!("the hard limit is {limit}"));
    }
    let dir = temp_dir();
    let file = dir.join("high.txt");
    let _ = std::fs::write(&file, b"high");
    let mut at = first;
    let mut i = 0usize;
    while at < limit {
        let made: Result<Vec<OwnedFd>, String> = match i % 5 {
            0 => open(&file, OFlag::O_RDONLY, Mode::empty()).map(|f| vec![f]).map_err(err),
            1 => open("/dev/null", OFlag::O_RDWR, Mode::empty()).map(|f| vec![f]).map_err(err),
            2 => pipe().map_err(err).and_then(|(r, w)| write(&w, b"p").map(|_| vec![r, w]).map_err(err)),
            3 => socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::empty())
                .map(|(a, b)| vec![a, b])
                .map_err(err),
            _ => EventFd::from_value_and_flags(1, EfdFlags::empty()).map(|e| vec![OwnedFd::from(e)]).map_err(err),
        };
        let fds = made.unwrap_or_else(|e| fail(&format!("fd {at}"), &e));
        // A pair that does not fit below the limit is dropped whole, and the last numbers get single fds.
        if at + fds.len() as RawFd > limit {
            i += 1;
            continue;
        }
        for fd in fds {
            let from = fd.into_raw_fd();
            // SAFETY: dup2 onto a number this process has not used (above every fd it opened, below its
            // limit); the original is ours, closed after; the number stays open until the process ends.
            if unsafe { libc::dup2(from, at) } != at {
                fail(&format!("dup2 to {at}"), &std::io::Error::last_os_error());
            }
            // SAFETY: as above.
            unsafe { libc::close(from) };
            at += 1;
        }
        i += 1;
    }
    println!("{{\"first\":{first},\"count\":{n},\"limit\":{limit}}}");
    let _ = std::io::stdout().flush();
    wait_for_eof();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--children N`: forks `n` children that sleep (`pause`), each holding what the holder held when it forked
/// (its stdin, stdout and stderr); prints `{"count": N, "child0": PID, ...}` once all are running, then
/// waits for its stdin's end, kills them and reaps every one before it exits (an init that reaps no
/// orphans would keep them as zombies). A holder killed instead takes them with it (`PR_SET_PDEATHSIG`).
fn children(n: usize) {
    let mut map: BTreeMap<String, i32> = BTreeMap::new();
    map.insert("count".to_owned(), n as i32);
    // SAFETY: getpid takes no arguments.
    let parent = unsafe { libc::getpid() };
    for i in 0..n {
        // SAFETY: fork of this single-threaded process; the child only makes async-signal-safe calls.
        let child = unsafe { libc::fork() };
        if child < 0 {
            eprintln!("fdholder: --children {n}: fork {i}: {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
        if child == 0 {
            // SAFETY: prctl, getppid, pause and _exit with integer arguments.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
        }
        map.insert(format!("child{i}"), child);
    }
    report_and_wait(&map);
    for (_, &pid) in map.iter().filter(|(name, _)| name.starts_with("child")) {
        // SAFETY: kill and waitpid of a child of this process, by pid; a null status pointer is allowed.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// `--flicker`: forks children over and over, each opening a few fds (a pipe, `/dev/null`, an eventfd),
/// closing them and exiting at once, reaped as they go, until its stdin reaches its end: pids and `/proc`
/// entries that appear and vanish while a scan lists them. Prints `{}` once it has started.
fn flicker() {
    println!("{{}}");
    let _ = std::io::stdout().flush();
    loop {
        // SAFETY: fork of this single-threaded process; the child only makes raw syscalls, then `_exit`.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: plain syscalls on fds the child makes and closes itself.
            unsafe {
                let mut ends = [0; 2];
                for _ in 0..4 {
                    libc::pipe(ends.as_mut_ptr());
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    let ev = libc::eventfd(1, 0);
                    for fd in [ends[0], ends[1], null, ev] {
                        libc::close(fd);
                    }
                }
                libc::_exit(0);
            }
        }
        if child > 0 {
            // SAFETY: waits for the child just forked; a null status pointer is allowed.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        }
        if stdin_closed() {
            std::process::exit(0);
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
            Some(flag @ ("--open" | "--open-rw")) => {
                let access = if flag == "--open" { OFlag::O_RDONLY } else { OFlag::O_RDWR };
                match open(Path::new(value), access | OFlag::O_CLOEXEC, Mode::empty()) {
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
    report_and_wait(&map);
    drop(held);
}

fn main_exits() {
    let devnull = match open("/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("fdholder: /dev/null: {e}");
            std::process::exit(2);
        }
    };
    std::thread::spawn(move || {
        // Wait until the main thread is gone, then say so.
        let me = std::process::id();
        for _ in 0..500 {
            let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).unwrap_or("");
            if state == "Z" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let map = BTreeMap::from([("devnull".to_owned(), std::os::fd::AsRawFd::as_raw_fd(&devnull))]);
        report_and_wait(&map);
        std::process::exit(0);
    });
    // The raw exit(2) ends only the calling thread, without unwinding (glibc's pthread_exit would unwind
    // through Rust frames and abort).
    // SAFETY: ends the main thread; the other thread, which owns everything it uses, keeps the process alive.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("exit(2) returned");
}

/// `--pipes N`: holds `n` pipes, pipe I with `pipe I\n` buffered, its read end at FIRST + 2I and its write end
/// at FIRST + 2I + 1 (none close-on-exec); prints `{"count": N, "first": FIRST}`. First raises its own fd
/// limit to what that needs (the hard limit too, which only root may). Exits 2 when any pipe cannot be made.
fn hold_pipes(n: usize) {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("fdholder: --pipes {n}: {what}: {e}");
        std::process::exit(2);
    };
    let need = 2 * n as u64 + 64;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write `lim`, which we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < need {
            lim.rlim_cur = need;
            lim.rlim_max = lim.rlim_max.max(need);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                fail(&format!("cannot raise the open files limit to {need}"), &std::io::Error::last_os_error());
            }
        }
    }
    // Above every fd open now: a new pipe's ends take the lowest free numbers, always below `first`, and
    // are moved up from there.
    let own: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .unwrap_or_else(|e| fail("/proc/self/fd", &e))
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let first = own.into_iter().max().unwrap_or(2) + 3;
    let mut held: Vec<OwnedFd> = Vec::with_capacity(2 * n);
    for i in 0..n {
        let (r, w) = pipe().unwrap_or_else(|e| fail(&format!("pipe {i}"), &e));
        write(&w, format!("pipe {i}\n").as_bytes()).unwrap_or_else(|e| fail(&format!("pipe {i}"), &e));
        let at = first + 2 * i as RawFd;
        for (end, to) in [(r, at), (w, at + 1)] {
            // SAFETY: dup2 onto a number above every fd this process had (nothing else owns it); the
            // original is closed when `end` drops.
            if unsafe { libc::dup2(raw(&end), to) } != to {
                fail(&format!("dup2 to {to}"), &std::io::Error::last_os_error());
            }
            // SAFETY: dup2 just made `to`, owned from here on only by `held`.
            held.push(unsafe { OwnedFd::from_raw_fd(to) });
        }
    }
    println!("{{\"count\":{n},\"first\":{first}}}");
    let _ = std::io::stdout().flush();
    wait_for_eof();
    drop(held);
}

/// `--fifo`: holds a FIFO made as `fifo` in its temp dir, opened read-write (not close-on-exec), with
/// `fifo bytes` buffered; prints `{"fifo": FD}` (its path is the fd's link). The temp dir is removed at
/// stdin's EOF (a killed holder leaves it to its caller).
fn hold_fifo() {
    let dir = temp_dir();
    let path = dir.join("fifo");
    let made = mkfifo(&path, Mode::from_bits_truncate(0o600))
        .and_then(|()| open(&path, OFlag::O_RDWR, Mode::empty()))
        .and_then(|fd| write(&fd, b"fifo bytes").map(|_| fd));
    let fifo = match made {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("fdholder: --fifo: {}: {e}", path.display());
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(2);
        }
    };
    println!("{{\"fifo\":{}}}", raw(&fifo));
    let _ = std::io::stdout().flush();
    wait_for_eof();
    drop(fifo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child process that dies with the holder (`PR_SET_PDEATHSIG`), and a pidfd on it. Forked before any
/// thread exists, so the child only makes async-signal-safe calls.
fn child_pidfd() -> Result<OwnedFd, String> {
    // SAFETY: getpid and fork take no arguments; the child below calls only prctl, getppid, pause and _exit.
    let (parent, child) = unsafe { (libc::getpid(), libc::fork()) };
    if child < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if child == 0 {
        // SAFETY: async-signal-safe calls with integer arguments, in the forked child.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(0);
            }
            loop {
                libc::pause();
            }
        }
    }
    // SAFETY: pidfd_open(pid, flags) takes plain integers.
    fd_of(unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) })
}

/// `--kinds`: the kinds crrules' backend recreates beyond `--restorable`, each in a known state and none
/// close-on-exec; each that cannot be made here (raw and packet sockets need CAP_NET_RAW, ping sockets a
/// group in `net.ipv4.ping_group_range`, fanotify CAP_SYS_ADMIN) is left out with its error on stderr.
/// Inet sockets, all IPv4 on 127.0.0.1: `tcp_unbound`; `tcp_bound` (bound, not listening); `tcp_reset` (the
/// peer sent RST); `tcp_established` and the end it was accepted as, `tcp_accepted`; `udp_unbound`;
/// `udp_bound`, and `udp_connected` (bound, connected to `udp_bound`); `udplite` (bound); `ping` (bound, ident
/// 4660); `raw_icmp` (unbound); `raw_bound` (ICMP, bound to 127.0.0.1); `raw_connected` (IPPROTO_RAW,
/// connected to 127.0.0.2). Netlink: `netlink_groups` (NETLINK_ROUTE, bound, in groups 1 and 5 by its bind
/// and 33 and 36 by `NETLINK_ADD_MEMBERSHIP`), `netlink_unbound` (NETLINK_ROUTE), `netlink_uevent` (a
/// datagram socket of NETLINK_KOBJECT_UEVENT, bound), `netlink_connected` (NETLINK_ROUTE, connected to port
/// id 4242). Packet: `packet_lo` (raw, ETH_P_ALL, bound to `lo`),
/// `packet_dgram` (datagram, ETH_P_IP, unbound). In `ghosts/` of its temp dir, since removed:
/// `fifo_deleted` (read-write, `fifo data` buffered), `fifo_deleted_read` (the same FIFO opened again
/// read-only and non-blocking) and `dir_deleted` (read-only, O_DIRECTORY). `pidfd_self` (on the holder,
/// PIDFD_NONBLOCK) and `pidfd_child` (on a child that dies with it). `fanotify` (FAN_CLASS_NOTIF |
/// FAN_NONBLOCK, events O_RDONLY | O_LARGEFILE) with three marks: on the directory `watched` (FAN_OPEN |
/// FAN_CLOSE_WRITE | FAN_ONDIR | FAN_EVENT_ON_CHILD), on the file `watched/file` (FAN_MODIFY, FAN_CLOSE_NOWRITE
/// ignored with FAN_MARK_IGNORED_SURV_MODIFY) and on the temp dir's mount (FAN_OPEN_EXEC); `fanotify_fs`
/// (FAN_CLASS_NOTIF) with a filesystem mark on the temp dir's filesystem (FAN_OPEN_EXEC) and an inode mark
/// on `watched/other` ignoring FAN_OPEN_EXEC with FAN_MARK_IGNORE. The temp dir is removed at stdin's EOF
/// (a killed holder leaves it, and its child dies with it).
fn hold_kinds() {
    let child = child_pidfd();
    let dir = temp_dir();
    let mut held: Held = Vec::new();
    for (what, r) in kinds(&dir, child) {
        match r {
            Ok(fds) => held.extend(fds),
            Err(e) => eprintln!("fdholder: --kinds: cannot make {what}: {e}"),
        }
    }
    for (name, fd) in &held {
        // Inherited by a restored command: none close-on-exec.
        if let Err(e) = fcntl(fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())) {
            eprintln!("fdholder: --kinds: {name}: {e}");
            std::process::exit(2);
        }
    }
    let map: BTreeMap<&str, RawFd> = held.iter().map(|(name, fd)| (*name, raw(fd))).collect();
    report_and_wait(&map);
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `--kinds` fds, one attempt per shape.
fn kinds(dir: &Path, child: Result<OwnedFd, String>) -> Vec<Tried> {
    let loopback = |port: u16| SockaddrIn::new(127, 0, 0, 1, port);
    let bound = |ty: libc::c_int, protocol: libc::c_int, port: u16| -> Result<OwnedFd, String> {
        let s = any_socket(libc::AF_INET, ty, protocol)?;
        bind(raw(&s), &loopback(port)).map_err(err)?;
        Ok(s)
    };
    let tcp_reset = || -> Result<OwnedFd, String> {
        let (client, accepted) = connected_pair()?;
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        nix::sys::socket::setsockopt(&accepted, nix::sys::socket::sockopt::Linger, &linger).map_err(err)?;
        drop(accepted);
        wait_for(&client, nix::poll::PollFlags::POLLERR | nix::poll::PollFlags::POLLHUP)?;
        Ok(client)
    };
    let tcp_established = || -> Opened {
        let (client, accepted) = connected_pair()?;
        Ok(vec![("tcp_established", client), ("tcp_accepted", OwnedFd::from(accepted))])
    };
    let udp_pair = || -> Opened {
        let server = bound(libc::SOCK_DGRAM, 0, 0)?;
        let port = getsockname::<SockaddrIn>(raw(&server)).map_err(err)?.port();
        let client = bound(libc::SOCK_DGRAM, 0, 0)?;
        nix::sys::socket::connect(raw(&client), &loopback(port)).map_err(err)?;
        Ok(vec![("udp_bound", server), ("udp_connected", client)])
    };
    let raw_connected = || -> Result<OwnedFd, String> {
        let s = any_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        nix::sys::socket::connect(raw(&s), &SockaddrIn::new(127, 0, 0, 2, 0)).map_err(err)?;
        Ok(s)
    };
    let netlink_groups = || -> Result<OwnedFd, String> {
        let nl = any_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        bind(raw(&nl), &nix::sys::socket::NetlinkAddr::new(0, 1 | 1 << 4)).map_err(err)?;
        for group in [33 as libc::c_int, 36] {
            // SAFETY: `group` is valid for reading for the call, on a socket we own.
            ok_or_errno(unsafe {
                libc::setsockopt(
                    raw(&nl),
                    libc::SOL_NETLINK,
                    libc::NETLINK_ADD_MEMBERSHIP,
                    (&group as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            })
            .map_err(|e| format!("group {group}: {e}"))?;
        }
        Ok(nl)
    };
    let netlink_connected = || -> Result<OwnedFd, String> {
        let nl = any_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        nix::sys::socket::connect(raw(&nl), &nix::sys::socket::NetlinkAddr::new(4242, 0)).map_err(err)?;
        Ok(nl)
    };
    let netlink_uevent = || -> Result<OwnedFd, String> {
        let nl = any_socket(libc::AF_NETLINK, libc::SOCK_DGRAM, libc::NETLINK_KOBJECT_UEVENT)?;
        bind(raw(&nl), &nix::sys::socket::NetlinkAddr::new(0, 0)).map_err(err)?;
        Ok(nl)
    };
    let packet_lo = || -> Result<OwnedFd, String> {
        let all = (libc::ETH_P_ALL as u16).to_be();
        let s = any_socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(all))?;
        // SAFETY: the name is NUL-terminated.
        let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        if index == 0 {
            return Err(format!("lo: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = all;
        addr.sll_ifindex = index as libc::c_int;
        // SAFETY: `addr` is a valid sockaddr_ll of the size passed, for a socket we own.
        ok_or_errno(unsafe {
            libc::bind(
                raw(&s),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(s)
    };
    let packet_dgram =
        || any_socket(libc::AF_PACKET, libc::SOCK_DGRAM, libc::c_int::from((libc::ETH_P_IP as u16).to_be()));
    let ghosts = dir.join("ghosts");
    let fifo_deleted = || -> Opened {
        std::fs::create_dir_all(&ghosts).map_err(err)?;
        let path = ghosts.join("fifo");
        mkfifo(&path, Mode::from_bits_truncate(0o600)).map_err(err)?;
        let fifo = open(&path, OFlag::O_RDWR, Mode::empty()).map_err(err)?;
        write(&fifo, b"fifo data").map_err(err)?;
        let again = format!("/proc/self/fd/{}", raw(&fifo));
        let read = open(again.as_str(), OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty()).map_err(err)?;
        unlink(&path).map_err(err)?;
        Ok(vec![("fifo_deleted", fifo), ("fifo_deleted_read", read)])
    };
    let dir_deleted = || -> Result<OwnedFd, String> {
        let path = ghosts.join("dir");
        std::fs::create_dir_all(&path).map_err(err)?;
        let d = open(&path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).map_err(err)?;
        std::fs::remove_dir(&path).map_err(err)?;
        Ok(d)
    };
    // SAFETY: pidfd_open(pid, flags) takes plain integers.
    let pidfd_self = fd_of(unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), libc::PIDFD_NONBLOCK) });
    let watched = dir.join("watched");
    let fanotify = || -> Result<OwnedFd, String> {
        std::fs::create_dir_all(&watched).map_err(err)?;
        std::fs::write(watched.join("file"), b"f").map_err(err)?;
        let fan = Fanotify::init(
            FanInit::FAN_CLASS_NOTIF | FanInit::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE,
        )
        .map_err(err)?;
        let at = nix::fcntl::AT_FDCWD;
        let on_dir =
            MaskFlags::FAN_OPEN | MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_ONDIR | MaskFlags::FAN_EVENT_ON_CHILD;
        fan.mark(MarkFlags::FAN_MARK_ADD, on_dir, at, Some(&watched)).map_err(|e| format!("watched: {e}"))?;
        let file = watched.join("file");
        fan.mark(MarkFlags::FAN_MARK_ADD, MaskFlags::FAN_MODIFY, at, Some(&file)).map_err(|e| format!("file: {e}"))?;
        let ignore =
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_IGNORED_MASK | MarkFlags::FAN_MARK_IGNORED_SURV_MODIFY;
        fan.mark(ignore, MaskFlags::FAN_CLOSE_NOWRITE, at, Some(&file)).map_err(|e| format!("file ignored: {e}"))?;
        let mount = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT;
        fan.mark(mount, MaskFlags::FAN_OPEN_EXEC, at, Some(dir)).map_err(|e| format!("mount: {e}"))?;
        Ok(OwnedFd::from(fan))
    };
    let fanotify_fs = || -> Result<OwnedFd, String> {
        std::fs::create_dir_all(&watched).map_err(err)?;
        std::fs::write(watched.join("other"), b"o").map_err(err)?;
        let fan = Fanotify::init(FanInit::FAN_CLASS_NOTIF, EventFFlags::O_RDONLY).map_err(err)?;
        let at = nix::fcntl::AT_FDCWD;
        let fs = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM;
        fan.mark(fs, MaskFlags::FAN_OPEN_EXEC, at, Some(dir)).map_err(|e| format!("filesystem: {e}"))?;
        let fan = OwnedFd::from(fan);
        let other = std::ffi::CString::new(watched.join("other").as_os_str().as_bytes()).map_err(err)?;
        let (flags, mask) = (libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORE, libc::FAN_OPEN_EXEC);
        // SAFETY: `other` is NUL-terminated; the group is ours (nix does not name FAN_MARK_IGNORE).
        ok_or_errno(unsafe { libc::fanotify_mark(raw(&fan), flags, mask, libc::AT_FDCWD, other.as_ptr()) })
            .map_err(|e| format!("ignore: {e}"))?;
        Ok(fan)
    };
    vec![
        one("tcp_unbound", any_socket(libc::AF_INET, libc::SOCK_STREAM, 0)),
        one("tcp_bound", bound(libc::SOCK_STREAM, 0, 0)),
        one("tcp_reset", tcp_reset()),
        ("tcp established", tcp_established()),
        one("udp_unbound", any_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)),
        ("udp pair", udp_pair()),
        one("udplite", bound(libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE, 0)),
        one("ping", bound(libc::SOCK_DGRAM, libc::IPPROTO_ICMP, 4660)),
        one("raw_icmp", any_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)),
        one("raw_bound", bound(libc::SOCK_RAW, libc::IPPROTO_ICMP, 0)),
        one("raw_connected", raw_connected()),
        one("netlink_groups", netlink_groups()),
        one("netlink_unbound", any_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)),
        one("netlink_uevent", netlink_uevent()),
        one("netlink_connected", netlink_connected()),
        one("packet_lo", packet_lo()),
        one("packet_dgram", packet_dgram()),
        ("deleted FIFO", fifo_deleted()),
        one("dir_deleted", dir_deleted()),
        one("pidfd_self", pidfd_self),
        one("pidfd_child", child),
        one("fanotify", fanotify()),
        one("fanotify_fs", fanotify_fs()),
    ]
}

// ---- Trees: a holder and its child, each holding one side of a shape. ----

/// Forks a child that dies with the holder (`PR_SET_PDEATHSIG`), named `fdholder-child`: it closes its
/// copies of `parent_only`, runs `setup`, sends the holder the numbers `setup` gives (its fds), then waits
/// to be killed. Returns the child's pid and those numbers once the child is set up. The holder has a
/// single thread here, so the child may go on as the holder would; it never returns from this function.
fn fork_child<const N: usize>(
    parent_only: &[RawFd],
    setup: impl FnOnce() -> Result<[RawFd; N], String>,
) -> Result<(libc::pid_t, [RawFd; N]), String> {
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(err)?;
    // SAFETY: getpid and fork take no arguments.
    let (parent, child) = unsafe { (libc::getpid(), libc::fork()) };
    if child < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        drop(ready_r);
        // SAFETY: prctl with integer arguments and a static C string, getppid, and close of the child's copies
        // of fds the holder keeps (the child never returns to the code that owns them).
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(0);
            }
            libc::prctl(libc::PR_SET_NAME, c"fdholder-child".as_ptr());
            for &fd in parent_only {
                libc::close(fd);
            }
        }
        let code = match setup() {
            Ok(fds) => {
                let bytes: Vec<u8> = fds.iter().flat_map(|fd| fd.to_ne_bytes()).collect();
                if write(&ready_w, &bytes).is_ok() {
                    drop(ready_w);
                    loop {
                        // SAFETY: pause takes no arguments; the holder's exit kills the child.
                        unsafe { libc::pause() };
                    }
                }
                2
            }
            Err(e) => {
                eprintln!("fdholder: the child: {e}");
                2
            }
        };
        // SAFETY: ends the child without running the holder's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(ready_w);
    let mut bytes = vec![0u8; 4 * N];
    std::fs::File::from(ready_r).read_exact(&mut bytes).map_err(|e| format!("the child failed to set up: {e}"))?;
    let mut fds = [0; N];
    for (fd, b) in fds.iter_mut().zip(bytes.chunks_exact(4)) {
        *fd = RawFd::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok((child, fds))
}

/// Prints a tree mode's map, waits for stdin's EOF, then lets `held` go (the child dies with the holder).
fn hold_tree(map: &[(&str, i32)], held: impl Sized) {
    let map: BTreeMap<&str, i32> = map.iter().copied().collect();
    report_and_wait(&map);
    drop(held);
}

/// Exits 2 naming the mode, when a tree cannot be made.
fn tree_failed(mode: &str, e: &str) -> ! {
    eprintln!("fdholder: {mode}: {e}");
    std::process::exit(2);
}

/// `--socketpair`: one end of a unix stream pair here, the other in the child.
fn hold_socketpair() {
    let made = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::empty()).map_err(err);
    let (mine, theirs) = made.unwrap_or_else(|e| tree_failed("--socketpair", &e));
    let (mine_fd, their_fd) = (raw(&mine), raw(&theirs));
    let (child, _) = fork_child(&[mine_fd], || Ok([their_fd])).unwrap_or_else(|e| tree_failed("--socketpair", &e));
    drop(theirs);
    hold_tree(&[("parent", mine_fd), ("child", their_fd), ("child_pid", child)], mine);
}

/// `--daemon`: a listener, an accepted connection and a bound datagram socket here; the client in the child.
fn hold_daemon() {
    use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
    let dir = temp_dir();
    let fail = |e: String| -> ! {
        let _ = std::fs::remove_dir_all(&dir);
        tree_failed("--daemon", &e)
    };
    let (stream_path, dgram_path) = (dir.join("stream.sock"), dir.join("dgram.sock"));
    let listener = UnixListener::bind(&stream_path).unwrap_or_else(|e| fail(format!("listen: {e}")));
    let dgram = UnixDatagram::bind(&dgram_path).unwrap_or_else(|e| fail(format!("datagram: {e}")));
    let (listen_fd, dgram_fd) = (std::os::fd::AsRawFd::as_raw_fd(&listener), std::os::fd::AsRawFd::as_raw_fd(&dgram));
    let client = fork_child(&[listen_fd, dgram_fd], || {
        let stream = UnixStream::connect(&stream_path).map_err(|e| format!("connect: {e}"))?;
        let to = UnixDatagram::unbound().map_err(err)?;
        to.connect(&dgram_path).map_err(|e| format!("connect the datagram socket: {e}"))?;
        // Not close-on-exec: a restore of the client hands it to the command it runs.
        nix::fcntl::fcntl(&to, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).map_err(err)?;
        Ok([stream.into_raw_fd(), to.into_raw_fd()])
    });
    let (child, [client_stream, client_dgram]) = client.unwrap_or_else(|e| fail(e));
    let (accepted, _) = listener.accept().unwrap_or_else(|e| fail(format!("accept: {e}")));
    let map = [
        ("listener", listen_fd),
        ("accepted", std::os::fd::AsRawFd::as_raw_fd(&accepted)),
        ("dgram", dgram_fd),
        ("child_pid", child),
        ("client_stream", client_stream),
        ("client_dgram", client_dgram),
    ];
    hold_tree(&map, (listener, accepted, dgram));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--pty`: a pty's master here; the child leads a session on its slave, its controlling terminal. With
/// `tty_only`, the child keeps that terminal only as `/dev/tty` (its fds 0-2 on `/dev/null`).
fn hold_pty(tty_only: bool) {
    let made = || -> Result<(OwnedFd, OwnedFd, i32), String> {
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(err)?;
        nix::pty::grantpt(&master).map_err(err)?;
        nix::pty::unlockpt(&master).map_err(err)?;
        let path = nix::pty::ptsname_r(&master).map_err(err)?;
        let index = path.strip_prefix("/dev/pts/").and_then(|n| n.parse().ok()).ok_or(format!("slave {path}"))?;
        let slave = open(path.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY, Mode::empty()).map_err(err)?;
        Ok((OwnedFd::from(master), slave, index))
    };
    let (master, slave, index) = made().unwrap_or_else(|e| tree_failed("--pty", &e));
    let (master_fd, slave_fd) = (raw(&master), raw(&slave));
    let child = fork_child(&[master_fd], || {
        nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
        // SAFETY: ioctl(TIOCSCTTY, 0) on the slave this child holds; dup2 onto its own stdio numbers (the
        // stdio it had is not used here again), then the original closed.
        unsafe {
            ok_or_errno(libc::ioctl(slave_fd, libc::TIOCSCTTY, 0)).map_err(|e| format!("TIOCSCTTY: {e}"))?;
            for to in 0..3 {
                if libc::dup2(slave_fd, to) != to {
                    return Err(format!("dup2 to {to}: {}", std::io::Error::last_os_error()));
                }
            }
            libc::close(slave_fd);
        }
        let tty = open("/dev/tty", OFlag::O_RDWR, Mode::empty()).map_err(|e| format!("/dev/tty: {e}"))?;
        if tty_only {
            let null = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map_err(|e| format!("/dev/null: {e}"))?;
            // SAFETY: dup2 onto the child's own stdio numbers, which hold the slave and nothing else uses.
            unsafe {
                for to in 0..3 {
                    if libc::dup2(raw(&null), to) != to {
                        return Err(format!("dup2 to {to}: {}", std::io::Error::last_os_error()));
                    }
                }
            }
        }
        Ok([tty.into_raw_fd()])
    });
    let (child, [child_tty]) = child.unwrap_or_else(|e| tree_failed("--pty", &e));
    drop(slave);
    hold_tree(&[("master", master_fd), ("index", index), ("child_pid", child), ("child_tty", child_tty)], master);
}

/// `--writer-exited`: the read end of a pipe the child wrote to and closed by exiting (killed, and reaped).
fn hold_writer_exited() {
    let (r, w) = pipe().unwrap_or_else(|e| tree_failed("--writer-exited", &err(e)));
    let (read_fd, write_fd) = (raw(&r), raw(&w));
    let writer = fork_child(&[read_fd], || {
        write(&w, b"bye").map_err(err)?;
        Ok([write_fd])
    });
    let (child, _) = writer.unwrap_or_else(|e| tree_failed("--writer-exited", &e));
    drop(w);
    let child_pid = nix::unistd::Pid::from_raw(child);
    let gone =
        nix::sys::signal::kill(child_pid, Signal::SIGKILL).and_then(|()| nix::sys::wait::waitpid(child_pid, None));
    if let Err(e) = gone {
        tree_failed("--writer-exited", &format!("cannot end the writer: {e}"));
    }
    hold_tree(&[("pipe_read", read_fd), ("child_pid", child)], r);
}

/// Moves this (still single-threaded) process into a new network namespace and brings its loopback
/// interface up, which a new namespace has down.
fn netns_with_loopback() -> Result<(), String> {
    // SAFETY: unshare(CLONE_NEWNET) only changes this process's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()));
    }
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(err)?;
    // SAFETY: an all-zero ifreq is a valid one (an empty name, no flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in req.ifr_name.iter_mut().zip(b"lo") {
        *to = *from as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write the flags of the ifreq owned here; the union's
    // flags member is the one these requests use.
    let up = unsafe {
        libc::ioctl(raw(&sock), libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(raw(&sock), libc::SIOCSIFFLAGS, &req) == 0
        }
    };
    if !up {
        return Err(format!("bring lo up: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `--tcp-pair [--netns]`: see the header.
fn hold_tcp_pair(netns: bool) {
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    let fail = |e: String| -> ! { tree_failed("--tcp-pair", &e) };
    if netns {
        netns_with_loopback().unwrap_or_else(|e| fail(e));
    }
    let listen = |at: &str| TcpListener::bind(at).map_err(|e| format!("listen on {at}: {e}"));
    let made = || -> Result<[TcpListener; 4], String> {
        Ok([listen("127.0.0.1:0")?, listen("[::]:0")?, listen("127.0.0.1:0")?, listen("127.0.0.1:0")?])
    };
    let [listener, listener6, backlog, server] = made().unwrap_or_else(|e| fail(e));
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_else(|e| fail(err(e)));
    let loopback = |l: &TcpListener| SocketAddr::from((Ipv4Addr::LOCALHOST, port(l)));
    let to = [loopback(&listener), loopback(&listener6), loopback(&backlog)];
    let listeners = [&listener, &listener6, &backlog, &server].map(|l| l.as_raw_fd());
    let client = fork_child(&listeners, || {
        let connect = |at: &SocketAddr| TcpStream::connect(at).map(|s| s.into_raw_fd()).map_err(err);
        Ok([connect(&to[0])?, connect(&to[1])?, connect(&to[2])?])
    });
    let (child, [client, client_mapped, unaccepted]) = client.unwrap_or_else(|e| fail(e));
    let accept = |l: &TcpListener| l.accept().map(|(s, _)| s).unwrap_or_else(|e| fail(format!("accept: {e}")));
    let (accepted, accepted_mapped) = (accept(&listener), accept(&listener6));
    let server_port = port(&server);
    let server_fd = server.as_raw_fd();
    // Accepts for as long as the holder runs, keeping every connection.
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in server.incoming().map_while(Result::ok) {
            kept.push(stream);
        }
    });
    let map = [
        ("listener", listener.as_raw_fd()),
        ("listener6", listener6.as_raw_fd()),
        ("backlog", backlog.as_raw_fd()),
        ("server", server_fd),
        ("server_port", i32::from(server_port)),
        ("accepted", accepted.as_raw_fd()),
        ("accepted_mapped", accepted_mapped.as_raw_fd()),
        ("child_pid", child),
        ("client", client),
        ("client_mapped", client_mapped),
        ("unaccepted", unaccepted),
    ];
    hold_tree(&map, (listener, listener6, backlog, accepted, accepted_mapped));
}

/// `--tcp-connect PORT`: a connection to 127.0.0.1:PORT, held as `client`.
fn hold_tcp_connect(port: Option<u16>) {
    let Some(port) = port else { tree_failed("--tcp-connect", "give the port to connect to") };
    let stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| tree_failed("--tcp-connect", &err(e)));
    hold_tree(&[("client", std::os::fd::AsRawFd::as_raw_fd(&stream))], stream);
}

/// `--peer-closed [--unaccepted]`: see the header.
fn hold_peer_closed(unaccepted: bool) {
    let dir = temp_dir();
    let closed = |ty: SockType, sent: &[&[u8]]| -> Result<OwnedFd, String> {
        let (mine, peer) = socketpair(AddressFamily::Unix, ty, None, SockFlag::empty()).map_err(err)?;
        for m in sent {
            write(&peer, m).map_err(err)?;
        }
        drop(peer);
        Ok(mine)
    };
    let mut made = vec![
        one("unix_closed", closed(SockType::Stream, &[b"left for you"])),
        one("unix_closed_seqpacket", closed(SockType::SeqPacket, &[b"m1", b"m22"])),
        one("unix_closed_dgram", closed(SockType::Datagram, &[b"d1", b"d2"])),
    ];
    if unaccepted {
        let pending = || -> Opened {
            let listener = socket(AddressFamily::Unix, SockType::Stream, SockFlag::empty(), None).map_err(err)?;
            let addr = UnixAddr::new(&dir.join("listener.sock")).map_err(err)?;
            bind(raw(&listener), &addr).map_err(err)?;
            listen(&listener, Backlog::new(4).map_err(err)?).map_err(err)?;
            let client = socket(AddressFamily::Unix, SockType::Stream, SockFlag::empty(), None).map_err(err)?;
            nix::sys::socket::connect(raw(&client), &addr).map_err(err)?;
            Ok(vec![("unix_listener", listener), ("unix_unaccepted", client)])
        };
        made.push(("unaccepted", pending()));
    }
    let mut held: Held = Vec::new();
    for (what, r) in made {
        match r {
            Ok(fds) => held.extend(fds),
            Err(e) => {
                eprintln!("fdholder: --peer-closed: cannot make {what}: {e}");
                std::process::exit(2);
            }
        }
    }
    let map: BTreeMap<&str, RawFd> = held.iter().map(|(name, fd)| (*name, raw(fd))).collect();
    report_and_wait(&map);
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A duplicate of `fd` at the lowest free number, close-on-exec or not: another number of its open file.
fn dup_of(fd: &OwnedFd, cloexec: bool) -> Result<OwnedFd, String> {
    let cmd = if cloexec { libc::F_DUPFD_CLOEXEC } else { libc::F_DUPFD };
    // SAFETY: fcntl(F_DUPFD[_CLOEXEC]) on an fd we own returns a new fd or -1.
    fd_of(libc::c_long::from(unsafe { libc::fcntl(raw(fd), cmd, 0) }))
}

/// Sets `O_NONBLOCK` on the open file `fd` holds (every number of it sees the flag).
fn set_nonblock(fd: &OwnedFd) -> Result<(), String> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map(|_| ()).map_err(err)
}

/// `--dups`: open files held at several numbers each (one open file description, shared offset and status
/// flags), for the tests of restoring them as one. `file` ("0123456789abcdef", read-write, opened once,
/// close-on-exec, offset 4) with `file_dup` and `file_dup2` (not close-on-exec) and `file_dup_cloexec`;
/// `eventfd` (count 7, `O_NONBLOCK`, not close-on-exec) with `eventfd_dup` (not close-on-exec) and
/// `eventfd_dup_cloexec`; `pipe_r` and
/// `pipe_w` ("pipe bytes" buffered), the write end also at `pipe_w_dup`, both with `O_NONBLOCK`; and fds 1
/// and 2 (`log_out`, `log_err`): `log.txt` in its temp dir, opened once with `O_APPEND`, "out\n" written
/// through fd 1 and "err\n" through fd 2 (offset 8), as a shell's `>log 2>&1` leaves them. Its map is
/// printed on a copy of its stdout at `stdout_copy`, which it closes once the map is written: a caller
/// waits until that number is closed before reading the process. Its temp dir is removed at its stdin's
/// EOF.
fn hold_dups() {
    let dir = temp_dir();
    let make = || -> Result<(Held, OwnedFd), String> {
        let path = dir.join("file.txt");
        std::fs::write(&path, b"0123456789abcdef").map_err(err)?;
        let file = open(&path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
        lseek(&file, 4, Whence::SeekSet).map_err(err)?;
        let file_dup = dup_of(&file, false)?;
        let file_dup2 = dup_of(&file, false)?;
        let file_dup_cloexec = dup_of(&file, true)?;
        let eventfd = OwnedFd::from(EventFd::from_value_and_flags(7, EfdFlags::empty()).map_err(err)?);
        set_nonblock(&eventfd)?;
        let eventfd_dup = dup_of(&eventfd, false)?;
        let eventfd_dup_cloexec = dup_of(&eventfd, true)?;
        let (pipe_r, pipe_w) = pipe().map_err(err)?;
        write(&pipe_w, b"pipe bytes").map_err(err)?;
        let pipe_w_dup = dup_of(&pipe_w, false)?;
        set_nonblock(&pipe_w)?;
        // The map goes out through a copy of stdout: fds 1 and 2 become the log.
        let stdout_copy = std::io::stdout().as_fd().try_clone_to_owned().map_err(err)?;
        let log = open(
            &dir.join("log.txt"),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(err)?;
        let _ = std::io::stdout().flush();
        for at in [1, 2] {
            // SAFETY: dup2 of an fd we own onto a standard stream's number; the old stream is replaced.
            ok_or_errno(unsafe { libc::dup2(raw(&log), at) })?;
        }
        drop(log);
        // SAFETY: fds 1 and 2 now hold the log; each is borrowed only for its write.
        let (out, errs) = unsafe { (BorrowedFd::borrow_raw(1), BorrowedFd::borrow_raw(2)) };
        write(out, b"out\n").map_err(err)?;
        write(errs, b"err\n").map_err(err)?;
        let held = vec![
            ("file", file),
            ("file_dup", file_dup),
            ("file_dup2", file_dup2),
            ("file_dup_cloexec", file_dup_cloexec),
            ("eventfd", eventfd),
            ("eventfd_dup", eventfd_dup),
            ("eventfd_dup_cloexec", eventfd_dup_cloexec),
            ("pipe_r", pipe_r),
            ("pipe_w", pipe_w),
            ("pipe_w_dup", pipe_w_dup),
        ];
        Ok((held, stdout_copy))
    };
    let (held, stdout_copy) = match make() {
        Ok(made) => made,
        Err(e) => {
            eprintln!("fdholder: --dups: {e}");
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(2);
        }
    };
    let mut map: BTreeMap<&str, RawFd> = held.iter().map(|(name, fd)| (*name, raw(fd))).collect();
    map.insert("log_out", 1);
    map.insert("log_err", 2);
    map.insert("stdout_copy", raw(&stdout_copy));
    let line = serde_json::to_string(&map).unwrap_or_default() + "\n";
    let _ = std::fs::File::from(stdout_copy).write_all(line.as_bytes());
    wait_for_eof();
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--many-dups N`: about N fds, most of them further numbers of fewer open files: each round opens a file
/// (read-only, its own open file), `/dev/null`, an eventfd and a pipe, and puts each at nine more numbers
/// (the pipe's write end; its read end once). Prints `{"count": N}` with the number held.
fn many_dups(n: usize) {
    let dir = temp_dir();
    let file = dir.join("many.txt");
    let _ = std::fs::write(&file, b"many");
    let mut held: Vec<OwnedFd> = Vec::with_capacity(n);
    let round = || -> Result<Vec<OwnedFd>, String> {
        let (r, w) = pipe().map_err(err)?;
        let mut fds = vec![r];
        let firsts = [
            open(&file, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?,
            open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?,
            OwnedFd::from(EventFd::from_value_and_flags(1, EfdFlags::EFD_CLOEXEC).map_err(err)?),
            w,
        ];
        for first in firsts {
            for _ in 0..9 {
                fds.push(dup_of(&first, true)?);
            }
            fds.push(first);
        }
        Ok(fds)
    };
    while held.len() < n {
        match round() {
            Ok(fds) => held.extend(fds),
            Err(e) => {
                eprintln!("fdholder: stopped at {} fds: {e}", held.len());
                break;
            }
        }
    }
    println!("{{\"count\":{}}}", held.len());
    let _ = std::io::stdout().flush();
    wait_for_eof();
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // Arguments as bytes: a path or a name to hold need not be UTF-8.
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Exec'd by `--reexec`: the fds it holds are the ones to keep.
    if args.first().is_some_and(|a| a == "--reexec-again") {
        reexec(false);
    }
    // Only what it opens itself: an fd leaked by whatever ran the tests (a CI runner's pipe, say) is not part
    // of the shapes, and would have an other end outside.
    // SAFETY: nothing in this process uses an fd above 2 yet.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } != 0 {
        eprintln!("fdholder: close_range: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    // `--setsid` first: lead a session of its own, as a service does (a job started from a shell does not,
    // and CRIU then wants `--shell-job`).
    if args.first().is_some_and(|a| a == "--setsid") {
        args.remove(0);
        if let Err(e) = nix::unistd::setsid() {
            eprintln!("fdholder: setsid: {e}");
            std::process::exit(2);
        }
    }
    match args.first().map(|a| a.to_str().unwrap_or("")) {
        None => hold(true, true),
        Some("--comm" | "--open" | "--open-rw") => hold_given(&args),
        Some("--netns") => {
            // SAFETY: unshare(CLONE_NEWNET) only changes this (still single-threaded) process's namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                eprintln!("fdholder: unshare: {}", std::io::Error::last_os_error());
                std::process::exit(2);
            }
            hold(false, false);
        }
        Some("--restorable") => hold_restorable(),
        Some("--inotify") => hold_inotify(args.get(1).is_some_and(|a| a == "--deleted")),
        Some("--churn") => churn(),
        Some("--main-exits") => main_exits(),
        Some("--pipes") => hold_pipes(args.get(1).and_then(|n| n.to_str()?.parse().ok()).unwrap_or(2000)),
        Some("--fifo") => hold_fifo(),
        Some("--socketpair") => hold_socketpair(),
        Some("--daemon") => hold_daemon(),
        Some("--pty") => hold_pty(args.get(1).is_some_and(|a| a == "--tty-only")),
        Some("--writer-exited") => hold_writer_exited(),
        Some("--kinds") => hold_kinds(),
        Some("--tcp-pair") => hold_tcp_pair(args.get(1).is_some_and(|a| a == "--netns")),
        Some("--tcp-connect") => hold_tcp_connect(args.get(1).and_then(|n| n.to_str()?.parse().ok())),
        Some("--peer-closed") => hold_peer_closed(args.get(1).is_some_and(|a| a == "--unaccepted")),
        Some("--dups") => hold_dups(),
        Some("--many-dups") => many_dups(args.get(1).and_then(|n| n.to_str()?.parse().ok()).unwrap_or(10_000)),
        Some("--many") => many(args.get(1).and_then(|n| n.to_str()?.parse().ok()).unwrap_or(1000)),
        Some("--reexec") => reexec(true),
        Some("--cred-churn") => cred_churn(),
        Some("--setuid") => setuid_on_input(),
        Some("--high") => high(args.get(1).and_then(|n| n.to_str()?.parse().ok()).unwrap_or(1000)),
        Some("--children") => children(args.get(1).and_then(|n| n.to_str()?.parse().ok()).unwrap_or(100)),
        Some("--flicker") => flicker(),
        Some(_) => {
            let other = args[0].to_string_lossy();
            eprintln!(
                "fdholder: unknown argument `{other}` (use --netns, --restorable, --kinds, --churn, --many, --many-dups, --dups, --comm, \
                 --open, --socketpair, --daemon, --pty, --writer-exited or --peer-closed)"
            );
            std::process::exit(2);
        }
    }
}
