//! The COMMAND the fd-table tests hand to `crrules restore` and `crrules handover`: it reports its own whole
//! fd table as one JSON object keyed by fd number (`{"3": {...}, "4": {...}}`), then exits 0, so a test can
//! see what a restore really gave the process it started.
//!
//! Every open fd (from `/proc/self/fd`, without the fd used to list it) has `kind` (`file`, `dir`,
//! `chardev`, `blockdev`, `fifo`, `pipe`, `socket`, `eventfd`, `timerfd`, `signalfd`, `epoll`, `inotify`,
//! `memfd` or `other`), `link` (the `/proc/self/fd` link text, lossy), `flags` (`F_GETFL`), `cloexec`
//! (`F_GETFD`), `ino`, `size` and `nlink` (`fstat`), `pos` where `lseek` answers and `dev` (`MAJ:MIN`) for
//! devices; then the state of its kind, read from the fd itself:
//! - `file` (readable, up to 1 MiB) and `memfd`: `data` (the bytes from offset 0, by `pread`, lossy) and
//!   `data_len`; a memfd also `seals` (`F_GET_SEALS`).
//! - `pipe` and `fifo`: `capacity` (`F_GETPIPE_SZ`) and, when readable, the bytes buffered (`FIONREAD`, then
//!   read: they are consumed) as `data` and `data_len`.
//! - `eventfd`: `count` and `semaphore` (from fdinfo; `semaphore` only where the kernel shows it).
//! - `timerfd`: `clockid` (fdinfo), `value` and `interval` as `[seconds, nanoseconds]` (`timerfd_gettime`).
//! - `signalfd`: `sigmask` (fdinfo's hex) and `signals` (its signal numbers).
//! - `epoll`: `targets`, each `{"tfd", "events", "data"}` (fdinfo, as numbers).
//! - `inotify`: `watches`, each `{"wd", "ino", "mask"}` (fdinfo, as numbers).
//! - `socket`: `family` (`unix`, `inet`, `inet6` or the number), `sock_type` (`stream`, `dgram`,
//!   `seqpacket`, `raw` or the number), `listening` (`SO_ACCEPTCONN`), `local` (`getsockname` as text:
//!   `127.0.0.1:8080`, `[::1]:80`, a unix path, `@name` for an abstract one, empty when unnamed); a unix
//!   socket that is not listening also `messages` (every message queued on it, received with `MSG_DONTWAIT`
//!   until `EAGAIN`, lossy: they are consumed) and `peer_closed` when a stream reached its end. Every socket
//!   also has `protocol` (`SO_PROTOCOL`) and, when connected, `peer` (`getpeername`, as `local`); a netlink
//!   socket `netlink_port` (its port id, 0 when unbound), `netlink_groups` (`NETLINK_LIST_MEMBERSHIPS`,
//!   numbered from 1) and `netlink_peer` (a connected one's peer port id); a packet socket `packet_protocol`
//!   (the ethertype it was made or bound for) and `ifindex` (its bound interface, 0 for every one).
//! - `other` with the link `anon_inode:[pidfd]`: `pidfd_pid` (fdinfo's `Pid:`) and `pidfd_is_self` (it names
//!   this process); with `anon_inode:[fanotify]`: `fanotify_flags` and `fanotify_event_flags` (fdinfo, as
//!   numbers) and `fanotify_marks`, each `{"target", "mflags", "mask", "ignored_mask"}` with `ino` and `sdev`
//!   (`inode`), `mnt_id` (`mount`) or `sdev` (`filesystem`), as numbers.
//!
//! Every fd that is one open file (open file description) with other fds of this process also has `shares`:
//! those fds' numbers, in order (`kcmp(KCMP_FILE)` between its own fds, compared only among fds on one
//! inode); an fd held at one number has no `shares`.
//!
//! A probe that fails leaves its field out and adds to `error`, so an fd always appears with its `kind`.
//!
//! `fdreport --accept FD` first accepts one connection on the listening socket FD and writes
//! `hello from PID\n` on it (for handover tests). `--out PATH` writes the report to PATH instead of stdout:
//! a restore puts the dumped process's own fds 0-2 back, so stdout may be a pipe nobody reads. `--send FD`
//! (repeatable), once every fd was probed, sends one byte `x` on the socket FD (`MSG_DONTWAIT |
//! MSG_NOSIGNAL`) and adds `send` to its report: `"ok"`, or the error's name (`"EPIPE"`, `"ECONNREFUSED"`).
//! `--write FD` (repeatable), before any fd is probed, writes `through fd FD\n` on FD (so that the offset
//! every fd of that open file then reports shows where that write went).
// Raw system calls for what nix does not wrap (FIONREAD, timerfd_gettime on a borrowed fd, getsockopt of
// plain integers) and borrowing fds this process found open: each `unsafe` block is one call on an fd that
// stays open while it runs.
#![allow(unsafe_code)]

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::{MsgFlags, SockaddrLike, SockaddrStorage, getsockname, recv};
use nix::sys::stat::{Mode, fstat};
use nix::unistd::{Whence, lseek};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The most bytes of a file or memfd put in `data`.
const DATA_LIMIT: usize = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = None;
    let mut sends = Vec::new();
    for pair in args.chunks(2) {
        match pair {
            [flag, fd] if flag == "--accept" => {
                let Ok(fd) = fd.parse::<RawFd>() else { fail(&format!("`{fd}` is not an fd number")) };
                if let Err(e) = greet_one(fd) {
                    fail(&format!("cannot accept on fd {fd}: {e}"));
                }
            }
            [flag, path] if flag == "--out" => out = Some(path.clone()),
            [flag, fd] if flag == "--write" => {
                let Ok(fd) = fd.parse::<RawFd>() else { fail(&format!("`{fd}` is not an fd number")) };
                // SAFETY: the caller names an fd this process was started with; it stays open while written.
                let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
                if let Err(e) = nix::unistd::write(borrowed, format!("through fd {fd}\n").as_bytes()) {
                    fail(&format!("cannot write on fd {fd}: {e}"));
                }
            }
            [flag, fd] if flag == "--send" => match fd.parse::<RawFd>() {
                Ok(fd) => sends.push(fd),
                Err(_) => fail(&format!("`{fd}` is not an fd number")),
            },
            _ => fail(&format!("unknown arguments {pair:?} (use --accept FD, --out PATH, --send FD, --write FD)")),
        }
    }
    let mut report = match open_fds() {
        Ok(fds) => fds.into_iter().map(|fd| (fd, probe(fd))).collect::<BTreeMap<RawFd, Value>>(),
        Err(e) => fail(&format!("cannot list /proc/self/fd: {e}")),
    };
    for (fd, others) in shared_files(report.keys().copied()) {
        if let Some(Value::Object(fields)) = report.get_mut(&fd) {
            fields.insert("shares".to_owned(), json!(others));
        }
    }
    for fd in sends {
        let sent = nix::sys::socket::send(fd, b"x", MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL);
        let said = sent.map_or_else(|e| format!("{e:?}"), |_| "ok".to_owned());
        if let Some(Value::Object(fields)) = report.get_mut(&fd) {
            fields.insert("send".to_owned(), json!(said));
        }
    }
    let text = serde_json::to_string(&report).unwrap_or_default() + "\n";
    let written = match &out {
        Some(path) => std::fs::write(path, &text),
        None => std::io::stdout().lock().write_all(text.as_bytes()),
    };
    if let Err(e) = written {
        fail(&format!("cannot write the report: {e}"));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("fdreport: {message}");
    std::process::exit(1);
}

/// Accepts one connection on `listener` and writes `hello from PID\n` on it, then closes it.
fn greet_one(listener: RawFd) -> Result<(), String> {
    // Wait first: the listener may be non-blocking (O_NONBLOCK is the open file's, kept by a handover).
    let mut wait = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll reads and writes the one pollfd we own; -1 waits as long as it takes.
    if unsafe { libc::poll(&mut wait, 1, -1) } < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: accept4 on a number the caller says is a listening socket; it returns a new fd or -1.
    let conn = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    if conn < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: accept4 returned a new fd that nothing else owns.
    let mut conn = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(conn) });
    conn.write_all(format!("hello from {}\n", std::process::id()).as_bytes()).map_err(|e| e.to_string())
}

/// `kcmp(KCMP_FILE)` of two fds of this process: 0 when they are one open file, else 1 or 2 as the
/// kernel orders them; `None` when it cannot tell.
fn kcmp_file(a: RawFd, b: RawFd) -> Option<i64> {
    const KCMP_FILE: libc::c_long = 0;
    let pid = libc::c_long::from(std::process::id() as libc::pid_t);
    // SAFETY: a plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, a as libc::c_long, b as libc::c_long) };
    (r >= 0).then_some(r)
}

/// For each of `fds` that is one open file with others of them: those others, in order. Fds are compared
/// only with fds on the same inode (`fstat`), each group sorted by kcmp's order.
fn shared_files(fds: impl Iterator<Item = RawFd>) -> BTreeMap<RawFd, Vec<RawFd>> {
    let mut by_inode: BTreeMap<(libc::dev_t, libc::ino_t), Vec<RawFd>> = BTreeMap::new();
    for fd in fds {
        // SAFETY: `fd` was listed open and nothing here closes it.
        if let Ok(s) = fstat(unsafe { BorrowedFd::borrow_raw(fd) }) {
            by_inode.entry((s.st_dev, s.st_ino)).or_default().push(fd);
        }
    }
    let mut out = BTreeMap::new();
    for mut group in by_inode.into_values().filter(|g| g.len() > 1) {
        let order = |a: &RawFd, b: &RawFd| match kcmp_file(*a, *b) {
            Some(1) => std::cmp::Ordering::Less,
            Some(2) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        };
        group.sort_by(order);
        for run in group.chunk_by(|a, b| kcmp_file(*a, *b) == Some(0)) {
            for &fd in run.iter().filter(|_| run.len() > 1) {
                let mut others: Vec<RawFd> = run.iter().copied().filter(|&o| o != fd).collect();
                others.sort_unstable();
                out.insert(fd, others);
            }
        }
    }
    out
}

/// The open fds, in order, without the one used to list them.
fn open_fds() -> nix::Result<Vec<RawFd>> {
    let mut dir = nix::dir::Dir::open("/proc/self/fd", OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
    let own = dir.as_raw_fd();
    let mut fds = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        if let Some(fd) = entry.file_name().to_str().ok().and_then(|n| n.parse::<RawFd>().ok()) {
            if fd != own {
                fds.push(fd);
            }
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// One fd's report. Nothing here closes `fd`.
fn probe(fd: RawFd) -> Value {
    // SAFETY: `fd` was listed in /proc/self/fd and nothing in this program closes it, so it stays open
    // for as long as this borrow is used.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut report = Report { fields: Map::new(), errors: Vec::new() };
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|l| l.to_string_lossy().into_owned())
        .map_err(|e| report.errors.push(format!("readlink: {e}")))
        .unwrap_or_default();
    let stat = report.get("fstat", fstat(borrowed));
    let mode = stat.map_or(0, |s| s.st_mode);
    let kind = kind_of(&link, mode);
    report.set("kind", kind);
    report.set("link", link.as_str());
    let flags = report.get("F_GETFL", fcntl(borrowed, FcntlArg::F_GETFL));
    if let Some(flags) = flags {
        report.set("flags", flags);
    }
    if let Some(fd_flags) = report.get("F_GETFD", fcntl(borrowed, FcntlArg::F_GETFD)) {
        report.set("cloexec", fd_flags & libc::FD_CLOEXEC != 0);
    }
    // Pipes, sockets and most anonymous inodes have no offset: ESPIPE is an answer, not an error.
    if let Ok(pos) = lseek(borrowed, 0, Whence::SeekCur) {
        report.set("pos", pos);
    }
    if let Some(s) = stat {
        report.set("ino", s.st_ino);
        report.set("size", s.st_size);
        report.set("nlink", s.st_nlink);
        if matches!(kind, "chardev" | "blockdev") {
            report.set("dev", format!("{}:{}", libc::major(s.st_rdev), libc::minor(s.st_rdev)));
        }
    }
    let readable = flags.is_some_and(|f| matches!(f & libc::O_ACCMODE, libc::O_RDONLY | libc::O_RDWR));
    let size = stat.map_or(0, |s| usize::try_from(s.st_size).unwrap_or(0));
    let state = match kind {
        "file" if readable => file_data(borrowed, size, &mut report),
        "memfd" => memfd_state(borrowed, size, &mut report),
        "pipe" | "fifo" => pipe_state(borrowed, readable, &mut report),
        "eventfd" => eventfd_state(fd, &mut report),
        "timerfd" => timerfd_state(fd, &mut report),
        "signalfd" => signalfd_state(fd, &mut report),
        "epoll" => epoll_state(fd, &mut report),
        "inotify" => inotify_state(fd, &mut report),
        "socket" => socket_state(borrowed, &mut report),
        _ => Ok(()),
    };
    if let Err(e) = state {
        report.errors.push(e);
    }
    let anon = match link.as_str() {
        "anon_inode:[pidfd]" => pidfd_state(fd, &mut report),
        "anon_inode:[fanotify]" => fanotify_state(fd, &mut report),
        _ => Ok(()),
    };
    if let Err(e) = anon {
        report.errors.push(e);
    }
    report.finish()
}

/// One fd's fields and the probes that failed.
struct Report {
    fields: Map<String, Value>,
    errors: Vec<String>,
}

impl Report {
    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    /// A probe's value, or `None` with its error noted.
    fn get<T>(&mut self, what: &str, r: nix::Result<T>) -> Option<T> {
        r.map_err(|e| self.errors.push(format!("{what}: {e}"))).ok()
    }

    fn finish(mut self) -> Value {
        if !self.errors.is_empty() {
            self.set("error", self.errors.join("; "));
        }
        Value::Object(self.fields)
    }
}

/// The kind, from the link text first (pipes, sockets, anonymous inodes, memfds), then the file type.
fn kind_of(link: &str, mode: libc::mode_t) -> &'static str {
    if link.starts_with("pipe:") {
        return "pipe";
    }
    if link.starts_with("socket:") {
        return "socket";
    }
    if link.starts_with("/memfd:") {
        return "memfd";
    }
    if let Some(name) = link.strip_prefix("anon_inode:") {
        return match name {
            "[eventfd]" => "eventfd",
            "[timerfd]" => "timerfd",
            "[signalfd]" => "signalfd",
            "[eventpoll]" => "epoll",
            "inotify" => "inotify",
            _ => "other",
        };
    }
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFCHR => "chardev",
        libc::S_IFBLK => "blockdev",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        _ => "other",
    }
}

/// `data` and `data_len`: the first `size` bytes (up to [`DATA_LIMIT`]), read at offset 0 without moving
/// the offset.
fn file_data(fd: BorrowedFd, size: usize, report: &mut Report) -> Result<(), String> {
    let mut buf = vec![0u8; size.min(DATA_LIMIT)];
    let mut got = 0;
    while got < buf.len() {
        match nix::sys::uio::pread(fd, &mut buf[got..], got as libc::off_t) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("pread: {e}")),
        }
    }
    buf.truncate(got);
    report.set("data", String::from_utf8_lossy(&buf));
    report.set("data_len", got);
    Ok(())
}

fn memfd_state(fd: BorrowedFd, size: usize, report: &mut Report) -> Result<(), String> {
    if let Some(seals) = report.get("F_GET_SEALS", fcntl(fd, FcntlArg::F_GET_SEALS)) {
        report.set("seals", seals);
    }
    file_data(fd, size, report)
}

/// The capacity, and the buffered bytes when the fd can read: `FIONREAD` counts them, so reading exactly
/// that many never blocks (`O_NONBLOCK` is not touched: it belongs to the open file, shared with others).
fn pipe_state(fd: BorrowedFd, readable: bool, report: &mut Report) -> Result<(), String> {
    if let Some(capacity) = report.get("F_GETPIPE_SZ", fcntl(fd, FcntlArg::F_GETPIPE_SZ)) {
        report.set("capacity", capacity);
    }
    if !readable {
        return Ok(());
    }
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `count`, which we own, for an open pipe fd.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut count) } < 0 {
        return Err(format!("FIONREAD: {}", std::io::Error::last_os_error()));
    }
    let mut buf = vec![0u8; usize::try_from(count).unwrap_or(0)];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    buf.truncate(got);
    report.set("data", String::from_utf8_lossy(&buf));
    report.set("data_len", got);
    Ok(())
}

/// `/proc/self/fdinfo/FD` as `(key, value)` lines, values trimmed.
fn fdinfo(fd: RawFd) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).map_err(|e| format!("fdinfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// The value of `key` in fdinfo lines.
fn field<'a>(info: &'a [(String, String)], key: &str) -> Result<&'a str, String> {
    info.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).ok_or_else(|| format!("fdinfo has no `{key}`"))
}

fn hex(text: &str) -> Result<u64, String> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|_| format!("`{text}` is not hex"))
}

fn eventfd_state(fd: RawFd, report: &mut Report) -> Result<(), String> {
    let info = fdinfo(fd)?;
    report.set("count", hex(field(&info, "eventfd-count")?)?);
    // Shown since Linux 6.5; before, the semaphore mode is not visible without reading the counter.
    if let Ok(sem) = field(&info, "eventfd-semaphore") {
        report.set("semaphore", sem != "0");
    }
    Ok(())
}

fn timerfd_state(fd: RawFd, report: &mut Report) -> Result<(), String> {
    let info = fdinfo(fd)?;
    let clockid = field(&info, "clockid")?;
    report.set("clockid", clockid.parse::<i64>().map_err(|_| format!("clockid `{clockid}`"))?);
    // SAFETY: an all-zero itimerspec is a valid value of this plain C struct.
    let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
    // SAFETY: timerfd_gettime writes one itimerspec into `spec`, which we own, for an open timerfd.
    if unsafe { libc::timerfd_gettime(fd, &mut spec) } < 0 {
        return Err(format!("timerfd_gettime: {}", std::io::Error::last_os_error()));
    }
    report.set("value", json!([spec.it_value.tv_sec, spec.it_value.tv_nsec]));
    report.set("interval", json!([spec.it_interval.tv_sec, spec.it_interval.tv_nsec]));
    Ok(())
}

fn signalfd_state(fd: RawFd, report: &mut Report) -> Result<(), String> {
    let info = fdinfo(fd)?;
    let mask = field(&info, "sigmask")?;
    let bits = hex(mask)?;
    // Bit N - 1 is signal N.
    let signals: Vec<u32> = (1..=64).filter(|n| bits & (1 << (n - 1)) != 0).collect();
    report.set("sigmask", mask);
    report.set("signals", signals);
    Ok(())
}

/// The `key:value` words of one fdinfo line, such as `tfd: 5 events: 19 data: 2a pos:0 ino:12 sdev:f`.
fn words(line: &str) -> Vec<(&str, &str)> {
    let mut pairs = Vec::new();
    let mut tokens = line.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        if let Some((key, value)) = token.split_once(':') {
            let value = if value.is_empty() { tokens.next().unwrap_or("") } else { value };
            pairs.push((key, value));
        }
    }
    pairs
}

fn word<'a>(pairs: &[(&str, &'a str)], key: &str) -> Result<&'a str, String> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).ok_or_else(|| format!("fdinfo line has no `{key}`"))
}

fn epoll_state(fd: RawFd, report: &mut Report) -> Result<(), String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).map_err(|e| format!("fdinfo: {e}"))?;
    let mut targets = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("tfd:")) {
        let w = words(line);
        let tfd = word(&w, "tfd")?;
        targets.push(json!({
            "tfd": tfd.parse::<i64>().map_err(|_| format!("tfd `{tfd}`"))?,
            "events": hex(word(&w, "events")?)?,
            "data": hex(word(&w, "data")?)?,
        }));
    }
    report.set("targets", targets);
    Ok(())
}

fn inotify_state(fd: RawFd, report: &mut Report) -> Result<(), String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).map_err(|e| format!("fdinfo: {e}"))?;
    let mut watches = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("inotify ")) {
        let w = words(line);
        watches.push(json!({
            "wd": hex(word(&w, "wd")?)?,
            "ino": hex(word(&w, "ino")?)?,
            "mask": hex(word(&w, "mask")?)?,
        }));
    }
    report.set("watches", watches);
    Ok(())
}

/// An integer socket option.
fn sockopt_int(fd: BorrowedFd, option: libc::c_int) -> Result<libc::c_int, String> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which we own, for an open fd.
    let ret = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, option, (&raw mut value).cast(), &mut len) };
    if ret < 0 { Err(format!("getsockopt({option}): {}", std::io::Error::last_os_error())) } else { Ok(value) }
}

fn socket_state(fd: BorrowedFd, report: &mut Report) -> Result<(), String> {
    let family = sockopt_int(fd, libc::SO_DOMAIN)?;
    let sock_type = sockopt_int(fd, libc::SO_TYPE)?;
    let listening = sockopt_int(fd, libc::SO_ACCEPTCONN)? != 0;
    report.set(
        "family",
        match family {
            libc::AF_UNIX => json!("unix"),
            libc::AF_INET => json!("inet"),
            libc::AF_INET6 => json!("inet6"),
            n => json!(n),
        },
    );
    report.set(
        "sock_type",
        match sock_type {
            libc::SOCK_STREAM => json!("stream"),
            libc::SOCK_DGRAM => json!("dgram"),
            libc::SOCK_SEQPACKET => json!("seqpacket"),
            libc::SOCK_RAW => json!("raw"),
            n => json!(n),
        },
    );
    report.set("listening", listening);
    match getsockname::<SockaddrStorage>(fd.as_raw_fd()) {
        Ok(addr) => report.set("local", address(&addr)),
        Err(e) => report.errors.push(format!("getsockname: {e}")),
    }
    if family == libc::AF_UNIX && !listening {
        unix_messages(fd, sock_type != libc::SOCK_DGRAM, report)?;
    }
    socket_more(fd, family, report)
}

/// `protocol` and `peer` of any socket; a netlink socket's port, groups and peer; a packet socket's protocol
/// and interface.
fn socket_more(fd: BorrowedFd, family: libc::c_int, report: &mut Report) -> Result<(), String> {
    use nix::sys::socket::getpeername;
    report.set("protocol", sockopt_int(fd, libc::SO_PROTOCOL)?);
    // A packet socket has no peer (getpeername is not supported), a raw one never says it (ENOTCONN).
    let peer = if family == libc::AF_PACKET { Err(nix::errno::Errno::ENOTCONN) } else { getpeername(fd.as_raw_fd()) };
    match peer {
        Ok(peer) if family == libc::AF_NETLINK => {
            let port = SockaddrStorage::as_netlink_addr(&peer).map_or(0, |a| a.pid());
            if port != 0 {
                report.set("netlink_peer", port);
            }
        }
        Ok(peer) => report.set("peer", address(&peer)),
        Err(nix::errno::Errno::ENOTCONN) => {}
        Err(e) => report.errors.push(format!("getpeername: {e}")),
    }
    let local = getsockname::<SockaddrStorage>(fd.as_raw_fd()).map_err(|e| format!("getsockname: {e}"))?;
    if family == libc::AF_NETLINK {
        report.set("netlink_port", local.as_netlink_addr().map_or(0, |a| a.pid()));
        report.set("netlink_groups", netlink_groups(fd)?);
    }
    if family == libc::AF_PACKET {
        let link = local.as_link_addr().ok_or("getsockname: not a link-layer address")?;
        report.set("packet_protocol", u16::from_be(link.protocol()));
        report.set("ifindex", link.ifindex());
    }
    Ok(())
}

/// The multicast groups a netlink socket is in, numbered from 1 (`NETLINK_LIST_MEMBERSHIPS`: a bitmap of
/// 32-bit words; the kernel says how long the whole of it is).
fn netlink_groups(fd: BorrowedFd) -> Result<Vec<u32>, String> {
    let mut words = vec![0u32; 64];
    let mut len = (words.len() * 4) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `words`, which we own, for an open fd.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_LIST_MEMBERSHIPS,
            words.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(format!("NETLINK_LIST_MEMBERSHIPS: {}", std::io::Error::last_os_error()));
    }
    words.truncate((len as usize / 4).min(words.len()));
    Ok(words
        .iter()
        .enumerate()
        .flat_map(|(i, w)| (0..32u32).filter(move |b| w & (1 << b) != 0).map(move |b| i as u32 * 32 + b + 1))
        .collect())
}

fn pidfd_state(fd: RawFd, report: &mut Report) -> Result<(), String> {
    let info = fdinfo(fd)?;
    let pid = field(&info, "Pid")?;
    let pid: i64 = pid.parse().map_err(|_| format!("Pid `{pid}`"))?;
    report.set("pidfd_pid", pid);
    report.set("pidfd_is_self", pid == i64::from(std::process::id()));
    Ok(())
}

fn fanotify_state(fd: RawFd, report: &mut Report) -> Result<(), String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).map_err(|e| format!("fdinfo: {e}"))?;
    let mut marks = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("fanotify ")) {
        let w = words(line);
        if let Ok(flags) = word(&w, "flags") {
            report.set("fanotify_flags", hex(flags)?);
            report.set("fanotify_event_flags", hex(word(&w, "event-flags")?)?);
            continue;
        }
        let (target, keys): (&str, &[&str]) = match w.first().map(|(k, _)| *k) {
            Some("ino") => ("inode", &["ino", "sdev"]),
            Some("mnt_id") => ("mount", &["mnt_id"]),
            Some("sdev") => ("filesystem", &["sdev"]),
            _ => ("other", &[]),
        };
        let mut mark = Map::new();
        mark.insert("target".into(), json!(target));
        for key in keys.iter().chain(&["mflags", "mask", "ignored_mask"]) {
            mark.insert((*key).into(), json!(hex(word(&w, key)?)?));
        }
        marks.push(Value::Object(mark));
    }
    report.set("fanotify_marks", marks);
    Ok(())
}

/// An address as text: `IP:PORT`, `[IP6]:PORT`, a unix path, `@name` (abstract), empty (unnamed).
fn address(addr: &SockaddrStorage) -> String {
    if let Some(v4) = addr.as_sockaddr_in() {
        return v4.to_string();
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        return v6.to_string();
    }
    if let Some(unix) = addr.as_unix_addr() {
        if let Some(path) = unix.path() {
            return path.to_string_lossy().into_owned();
        }
        if let Some(name) = unix.as_abstract() {
            return format!("@{}", String::from_utf8_lossy(name));
        }
        return String::new();
    }
    format!("family {:?}", addr.family())
}

/// Receives, without waiting, every message queued on a unix socket (`messages`); a stream whose peer
/// closed ends with `peer_closed`.
fn unix_messages(fd: BorrowedFd, stream: bool, report: &mut Report) -> Result<(), String> {
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let result = loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) if stream => {
                report.set("peer_closed", true);
                break Ok(());
            }
            Ok(n) => messages.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(nix::errno::Errno::EAGAIN) => break Ok(()),
            Err(e) => break Err(format!("recv: {e}")),
        }
        if messages.len() >= 10_000 {
            break Err("more than 10000 messages queued".to_owned());
        }
    };
    report.set("messages", messages);
    result
}
