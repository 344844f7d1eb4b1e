//! The system calls a restore makes to bring fds back in this process: opening a path with `openat2`
//! (`RESOLVE_NO_MAGICLINKS`, no final symlink, never creating or truncating) and verifying what was opened,
//! making memfds, unlinked files, pipes, socket pairs, bound sockets, eventfds, timerfds, signalfds, epolls
//! and inotify instances with their state and watches, inet, netlink and packet sockets bound and connected
//! as they were, FIFOs and directories that have no name, pidfds on this process and fanotify groups with
//! their marks, placing each at its number, and taking on the filesystem credentials of the image's
//! process for the opens.
// Each unsafe block is one libc call on values owned or borrowed for the call.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn owned(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(r)? as RawFd;
    // SAFETY: the kernel just returned this fd; it is owned once, here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `__O_TMPFILE`: `O_TMPFILE` without the `O_DIRECTORY` bit it includes.
const O_TMPFILE_ONLY: i32 = libc::O_TMPFILE & !libc::O_DIRECTORY;

/// Open flags that a restore never passes: creating, truncating or exclusive opens, and a temporary file
/// (but `O_DIRECTORY` stays).
const NEVER: i32 = libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL | O_TMPFILE_ONLY;

/// Opens `path` with the access mode and flags `flags` (close-on-exec, no controlling terminal), refusing
/// any symlink on the way (`RESOLVE_NO_SYMLINKS`, which includes magic links such as `/proc/PID/fd/N`): the
/// path was the kernel's own name for the file, with every link already resolved, so one found now was
/// put there since.
pub fn open_path(path: &[u8], flags: i32) -> io::Result<OwnedFd> {
    openat2_no_symlinks(path, (flags & !NEVER) | libc::O_CLOEXEC | libc::O_NOCTTY)
}

/// `openat2(AT_FDCWD, path, flags)` with `RESOLVE_NO_SYMLINKS`.
fn openat2_no_symlinks(path: &[u8], flags: i32) -> io::Result<OwnedFd> {
    openat2(libc::AT_FDCWD, path, flags, libc::RESOLVE_NO_SYMLINKS)
}

/// Opens `path`, relative to the directory `dir` and never leaving it (`RESOLVE_BENEATH`), with `flags`
/// (close-on-exec added), refusing a symlink anywhere on the way or at its end (`RESOLVE_NO_SYMLINKS`,
/// `ELOOP`): a file of an image, read through the image directory's fd.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &[u8], flags: i32) -> io::Result<OwnedFd> {
    openat2(dir.as_raw_fd(), path, flags | libc::O_CLOEXEC, libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS)
}

/// `openat2(dir, path, flags)` with the `resolve` restrictions.
fn openat2(dir: RawFd, path: &[u8], flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let path = CString::new(path).map_err(|_| io::Error::other("the path holds a NUL byte"))?;
    // SAFETY: an all-zero open_how is valid (no flags, no mode, no resolve restrictions).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = resolve;
    // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the size passed.
    owned(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    })
}

/// `fstat` of an fd: (mode, rdev, dev, ino, size).
pub fn stat(fd: BorrowedFd<'_>) -> io::Result<(u32, u64, u64, u64, u64)> {
    let st = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    Ok((st.st_mode, st.st_rdev, st.st_dev, st.st_ino, st.st_size as u64))
}

/// Moves a file's offset; a file that has none (a pipe, a character device that refuses) is left as it is.
pub fn seek(fd: BorrowedFd<'_>, pos: u64) -> io::Result<()> {
    // SAFETY: lseek with integer arguments.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), pos as i64, libc::SEEK_SET) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ESPIPE | libc::EINVAL)) && pos == 0 {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Sets the status flags `F_SETFL` can change (`O_APPEND`, `O_NONBLOCK`, `O_ASYNC`, `O_DIRECT`,
/// `O_NOATIME`) to what `flags` holds.
pub fn set_status_flags(fd: BorrowedFd<'_>, flags: i32) -> io::Result<()> {
    const SETTABLE: i32 = libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;
    // SAFETY: fcntl with integer arguments.
    let now = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }.into())? as i32;
    let want = (now & !SETTABLE) | (flags & SETTABLE);
    if want != now {
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, want) }.into())?;
    }
    Ok(())
}

/// Writes all of `bytes` at the fd's offset.
pub fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = nix::unistd::write(fd, bytes).map_err(io::Error::from)?;
        if n == 0 {
            return Err(io::Error::other("wrote nothing"));
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// A memfd named `name` (sealable) holding `bytes`.
pub fn memfd(name: &[u8], bytes: &[u8]) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::other("the memfd name holds a NUL byte"))?;
    // SAFETY: `name` is NUL-terminated.
    let fd = owned(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) }.into())?;
    write_all(fd_ref(&fd), bytes)?;
    Ok(fd)
}

/// Adds seals (`F_ADD_SEALS`).
pub fn add_seals(fd: BorrowedFd<'_>, seals: u32) -> io::Result<()> {
    if seals == 0 {
        return Ok(());
    }
    // SAFETY: fcntl with integer arguments.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals as libc::c_int) }.into()).map(drop)
}

/// An unnamed regular file (`O_TMPFILE`) in directory `dir`, with mode `mode`, holding `bytes`, opened
/// read-write.
pub fn tmpfile(dir: &[u8], mode: u32, bytes: &[u8]) -> io::Result<OwnedFd> {
    let dir = CString::new(dir).map_err(|_| io::Error::other("the directory holds a NUL byte"))?;
    // SAFETY: `dir` is NUL-terminated.
    let fd = owned(
        unsafe { libc::open(dir.as_ptr(), libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC, mode & 0o7777) }.into(),
    )?;
    write_all(fd_ref(&fd), bytes)?;
    Ok(fd)
}

/// Reopens an fd this process holds with another access mode, through `/proc/self/fd/N`.
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| io::Error::other("path"))?;
    let flags = (flags & !NEVER) | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated.
    owned(unsafe { libc::open(path.as_ptr(), flags) }.into())
}

/// A pipe: (read end, write end), with `O_DIRECT` (packet mode) when asked, and the capacity given.
pub fn pipe(packet: bool, capacity: Option<u64>) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0; 2];
    let flags = libc::O_CLOEXEC | if packet { libc::O_DIRECT } else { 0 };
    // SAFETY: `ends` has room for the two fds.
    check(unsafe { libc::pipe2(ends.as_mut_ptr(), flags) }.into())?;
    // SAFETY: the kernel just returned these fds.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    if let Some(size) = capacity {
        // SAFETY: fcntl with integer arguments.
        let now = check(unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) }.into())? as u64;
        // SAFETY: as above.
        if now != size && unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) } < 0 {
            let e = io::Error::last_os_error();
            // Past `fs.pipe-user-pages-soft` a user's new pipes are small and may not grow: a smaller pipe
            // that holds the bytes is kept; the caller finds out when they do not fit.
            if e.raw_os_error() != Some(libc::EPERM) || now > size {
                return Err(e);
            }
        }
    }
    Ok((r, w))
}

/// A connected unix socket pair of type `sock_type` (`SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`).
pub fn socketpair(sock_type: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two fds.
    check(unsafe { libc::socketpair(libc::AF_UNIX, sock_type | libc::SOCK_CLOEXEC, 0, ends.as_mut_ptr()) }.into())?;
    // SAFETY: the kernel just returned these fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// Sends one message (a datagram, or bytes of a stream) on a socket.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], stream: bool) -> io::Result<()> {
    if stream {
        return write_all(sock, bytes);
    }
    // SAFETY: `bytes` is valid for reading for the call.
    let n = check(unsafe { libc::send(sock.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) } as libc::c_long)?;
    if n as usize != bytes.len() {
        return Err(io::Error::other("a datagram was cut short"));
    }
    Ok(())
}

/// A unix datagram socket connected to `name`: a path, or `@NAME` for an abstract name (every byte after
/// the `@`). A path's socket file is opened first (`O_PATH`, following links as `connect` would, but no
/// magic link), and `owner_ok` is asked about its owner; the connect then goes to that very file, through
/// `/proc/self/fd/N`, so what was checked is what is connected to. Connecting checks write permission on
/// the socket file with this thread's filesystem credentials, as opening a file does.
pub fn unix_dgram_connected(name: &[u8], owner_ok: impl FnOnce(u32) -> io::Result<()>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{self as s, AddressFamily, SockFlag, SockType, UnixAddr};
    let file;
    let addr = match name.strip_prefix(b"@") {
        Some(abstract_name) => UnixAddr::new_abstract(abstract_name).map_err(io::Error::from)?,
        None => {
            file = openat2(libc::AT_FDCWD, name, libc::O_PATH | libc::O_CLOEXEC, libc::RESOLVE_NO_MAGICLINKS)?;
            let st = nix::sys::stat::fstat(&file).map_err(io::Error::from)?;
            if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                return Err(io::Error::other("it is not a socket"));
            }
            owner_ok(st.st_uid)?;
            UnixAddr::new(format!("/proc/self/fd/{}", file.as_raw_fd()).as_str()).map_err(io::Error::from)?
        }
    };
    let sock =
        s::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(io::Error::from)?;
    s::connect(sock.as_raw_fd(), &addr).map_err(io::Error::from)?;
    Ok(sock)
}

/// A TCP or UDP socket bound to `addr` (`SO_REUSEADDR`), listening with `backlog` when `listen`.
pub fn inet(addr: std::net::SocketAddr, stream: bool, listen: bool, backlog: u32) -> io::Result<OwnedFd> {
    use nix::sys::socket::{self as s, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let ty = if stream { SockType::Stream } else { SockType::Datagram };
    let sock = s::socket(family, ty, SockFlag::SOCK_CLOEXEC, None).map_err(io::Error::from)?;
    s::setsockopt(&sock, s::sockopt::ReuseAddr, &true).map_err(io::Error::from)?;
    if addr.is_ipv6() {
        // A socket bound to `::` as the dumped one was: dual-stack as the system default says. Left alone.
    }
    s::bind(sock.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(io::Error::from)?;
    if listen {
        let backlog = s::Backlog::new(backlog.clamp(1, i32::MAX as u32) as i32).map_err(io::Error::from)?;
        s::listen(&sock, backlog).map_err(io::Error::from)?;
    }
    Ok(sock)
}

/// A socket of `domain`, `sock_type` and `protocol` (close-on-exec).
pub fn socket(domain: i32, sock_type: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain call with integer arguments.
    owned(unsafe { libc::socket(domain, sock_type | libc::SOCK_CLOEXEC, protocol) }.into())
}

/// Binds an inet socket to `addr` (no socket option is set first: the socket is as it was made).
pub fn bind_inet(sock: BorrowedFd<'_>, addr: std::net::SocketAddr) -> io::Result<()> {
    use nix::sys::socket::{SockaddrStorage, bind};
    bind(sock.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(io::Error::from)
}

/// Connects an inet socket to `addr` (for a datagram or raw socket: only sets where it sends to, and whom
/// it hears from).
pub fn connect_inet(sock: BorrowedFd<'_>, addr: std::net::SocketAddr) -> io::Result<()> {
    use nix::sys::socket::{SockaddrStorage, connect};
    connect(sock.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(io::Error::from)
}

/// A netlink socket of `sock_type` and netlink family `protocol`: bound when `bound` (port id 0: the kernel
/// chooses one) with the `groups` numbered up to 32 in the bind's group mask, every other group (or, when
/// not bound, every group) joined with `NETLINK_ADD_MEMBERSHIP`, and connected to port id `peer` when given.
pub fn netlink(sock_type: i32, protocol: i32, bound: bool, groups: &[u32], peer: Option<u32>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{NetlinkAddr, bind, connect};
    let sock = socket(libc::AF_NETLINK, sock_type, protocol)?;
    let in_mask = |g: &&u32| bound && (1..=32).contains(*g);
    if bound {
        let mask = groups.iter().filter(in_mask).fold(0u32, |m, g| m | 1 << (g - 1));
        bind(sock.as_raw_fd(), &NetlinkAddr::new(0, mask)).map_err(io::Error::from)?;
    }
    for &group in groups.iter().filter(|g| !in_mask(g)) {
        let g = group as libc::c_int;
        // SAFETY: `g` is valid for reading for the call.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_ADD_MEMBERSHIP,
                (&g as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        check(r.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot join group {group}: {e}")))?;
    }
    if let Some(port) = peer {
        connect(sock.as_raw_fd(), &NetlinkAddr::new(port, 0)).map_err(io::Error::from)?;
    }
    Ok(sock)
}

/// A packet socket of `sock_type` for the ethertype `protocol`, bound to interface `ifindex` when given.
pub fn packet(sock_type: i32, protocol: u16, ifindex: Option<u32>) -> io::Result<OwnedFd> {
    let sock = socket(libc::AF_PACKET, sock_type, i32::from(protocol.to_be()))?;
    if let Some(index) = ifindex {
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(r.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind to interface {index}: {e}")))?;
    }
    Ok(sock)
}

/// A new private directory (mode 0700, `mkdtemp`) beside the path `near` (in its parent), or else in
/// `$TMPDIR`: its path.
fn private_dir(near: &[u8]) -> io::Result<Vec<u8>> {
    let parent = near.iter().rposition(|&b| b == b'/').map(|i| if i == 0 { &near[..1] } else { &near[..i] });
    let tmp = std::env::temp_dir();
    let tmp = std::os::unix::ffi::OsStrExt::as_bytes(tmp.as_os_str());
    let mut last = io::Error::other("no directory to make it in");
    for dir in parent.into_iter().chain([tmp]) {
        let slash = if dir.ends_with(b"/") { &b""[..] } else { b"/" };
        let mut template = [dir, slash, b".crrules-ghost-XXXXXX\0"].concat();
        // SAFETY: `template` is NUL-terminated and writable; mkdtemp fills in its Xs.
        if unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) }.is_null() {
            last = io::Error::last_os_error();
            continue;
        }
        template.pop();
        return Ok(template);
    }
    Err(last)
}

fn c_path(path: &[u8]) -> io::Result<CString> {
    CString::new(path).map_err(|_| io::Error::other("the path holds a NUL byte"))
}

/// A new FIFO with no name: made in a private directory beside `near` (else in `$TMPDIR`), opened
/// read-write and non-blocking (so it never waits, and holds the FIFO open for both ends), then unlinked
/// with its directory. The FIFO's own fds are opened again through this one ([`reopen`]).
pub fn ghost_fifo(near: &[u8]) -> io::Result<OwnedFd> {
    let dir = private_dir(near)?;
    let path = c_path(&[&dir[..], b"/fifo"].concat())?;
    let made = (|| {
        // SAFETY: `path` is NUL-terminated.
        check(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }.into())?;
        let flags = libc::O_RDWR | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: as above.
        owned(unsafe { libc::open(path.as_ptr(), flags) }.into())
    })();
    // SAFETY: paths NUL-terminated; the directory is this call's own.
    unsafe {
        libc::unlink(path.as_ptr());
        if let Ok(dir) = c_path(&dir) {
            libc::rmdir(dir.as_ptr());
        }
    }
    made
}

/// A new empty directory with no name: made beside `near` (else in `$TMPDIR`), opened, then removed. Its
/// fds are opened again through this one ([`reopen`]).
pub fn ghost_dir(near: &[u8]) -> io::Result<OwnedFd> {
    let dir = c_path(&private_dir(near)?)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `dir` is NUL-terminated.
    let made = owned(unsafe { libc::open(dir.as_ptr(), flags) }.into());
    // SAFETY: as above; the directory is this call's own, and empty.
    let removed = check(unsafe { libc::rmdir(dir.as_ptr()) }.into());
    let made = made?;
    removed?;
    Ok(made)
}

/// A pidfd on this process (close-on-exec; `flags` may ask for `PIDFD_NONBLOCK`, and `PIDFD_THREAD`, which
/// is `O_EXCL`).
pub fn pidfd_self(flags: u32) -> io::Result<OwnedFd> {
    let flags = flags & (libc::O_NONBLOCK | libc::O_EXCL) as u32;
    // SAFETY: a plain syscall with integer arguments.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), flags) })
}

/// A fanotify group made with `init_flags` (close-on-exec, non-blocking when asked) and `event_flags`.
pub fn fanotify(init_flags: u32, event_flags: u32, nonblock: bool) -> io::Result<OwnedFd> {
    let flags = (init_flags & !libc::FAN_NONBLOCK) | libc::FAN_CLOEXEC | if nonblock { libc::FAN_NONBLOCK } else { 0 };
    // SAFETY: a plain call with integer arguments.
    owned(unsafe { libc::fanotify_init(flags, event_flags) }.into())
}

/// Adds a mark to a fanotify group: on the inode `path` names (`target` `inode`; a final symlink is
/// marked itself, as for [`inotify_add_watch`]), on the mount at `path` (`mount`) or on the filesystem
/// holding it (`filesystem`), for the events in `mask`, then the events in `ignored_mask` ignored, in the
/// style `mflags` says (`FAN_MARK_IGNORE`, else the older ignored mask, `FAN_MARK_IGNORED_SURV_MODIFY` kept),
/// an `FAN_MARK_EVICTABLE` mark made so from the start. `path` is opened as [`open_path`] opens.
pub fn fanotify_mark(
    group: BorrowedFd<'_>,
    target: &str,
    path: &[u8],
    mask: u64,
    ignored_mask: u64,
    mflags: u32,
) -> io::Result<()> {
    let kind = match target {
        "inode" => 0,
        "mount" => libc::FAN_MARK_MOUNT,
        "filesystem" => libc::FAN_MARK_FILESYSTEM,
        other => return Err(io::Error::other(format!("a mark on a {other} cannot be added by path"))),
    };
    let file = openat2_no_symlinks(path, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)?;
    let link = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(|_| io::Error::other("path"))?;
    let base = libc::FAN_MARK_ADD | kind | (mflags & libc::FAN_MARK_EVICTABLE);
    let mark = |flags: u32, mask: u64| {
        // SAFETY: `link` is NUL-terminated; the other arguments are integers.
        check(unsafe { libc::fanotify_mark(group.as_raw_fd(), flags, mask, libc::AT_FDCWD, link.as_ptr()) }.into())
    };
    if mask != 0 {
        mark(base, mask)?;
    }
    if ignored_mask != 0 {
        let style =
            if mflags & libc::FAN_MARK_IGNORE != 0 { libc::FAN_MARK_IGNORE } else { libc::FAN_MARK_IGNORED_MASK };
        mark(base | style | (mflags & libc::FAN_MARK_IGNORED_SURV_MODIFY), ignored_mask)?;
    }
    Ok(())
}

/// An eventfd with count `count`, semaphore mode when asked, and the `flags` (`EFD_NONBLOCK`).
pub fn eventfd(count: u64, semaphore: bool, nonblock: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::EFD_CLOEXEC;
    if semaphore {
        flags |= libc::EFD_SEMAPHORE;
    }
    if nonblock {
        flags |= libc::EFD_NONBLOCK;
    }
    // SAFETY: a plain call with integer arguments.
    let fd = owned(unsafe { libc::eventfd(0, flags) }.into())?;
    if count > 0 {
        // The count may exceed what `eventfd`'s initial value (an unsigned int) holds: write it.
        write_all(fd_ref(&fd), &count.to_ne_bytes())?;
    }
    Ok(fd)
}

/// A timerfd on `clockid`, armed relative to now with `value` remaining and `interval` (both (s, ns));
/// a zero `value` leaves it disarmed.
pub fn timerfd(clockid: i32, nonblock: bool, value: (i64, i64), interval: (i64, i64)) -> io::Result<OwnedFd> {
    let flags = libc::TFD_CLOEXEC | if nonblock { libc::TFD_NONBLOCK } else { 0 };
    // SAFETY: a plain call with integer arguments.
    let fd = owned(unsafe { libc::timerfd_create(clockid, flags) }.into())?;
    let spec = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: interval.0, tv_nsec: interval.1 },
        it_value: libc::timespec { tv_sec: value.0, tv_nsec: value.1 },
    };
    // SAFETY: `spec` is valid for reading; no old value is asked for.
    check(unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) }.into())?;
    Ok(fd)
}

/// A signalfd for the signals `signals`.
pub fn signalfd(signals: &[u32], nonblock: bool) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero sigset is valid; sigemptyset/sigaddset write into it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writing.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: as above; an invalid signal number is an error, not undefined behaviour.
        check(unsafe { libc::sigaddset(&mut set, s as i32) }.into())?;
    }
    let flags = libc::SFD_CLOEXEC | if nonblock { libc::SFD_NONBLOCK } else { 0 };
    // SAFETY: `set` is valid for reading.
    owned(unsafe { libc::signalfd(-1, &set, flags) }.into())
}

/// An epoll instance.
pub fn epoll() -> io::Result<OwnedFd> {
    // SAFETY: a plain call with an integer argument.
    owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }.into())
}

/// Adds fd number `target` (at its final number) to an epoll instance, with its events and data.
pub fn epoll_add(epoll: RawFd, target: RawFd, events: u32, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is valid for the call.
    check(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, target, &mut ev) }.into()).map(drop)
}

/// An inotify instance (close-on-exec), non-blocking when asked.
pub fn inotify(nonblock: bool) -> io::Result<OwnedFd> {
    let flags = libc::IN_CLOEXEC | if nonblock { libc::IN_NONBLOCK } else { 0 };
    // SAFETY: a plain call with an integer argument.
    owned(unsafe { libc::inotify_init1(flags) }.into())
}

/// Adds a watch with `mask` on the file `path` names, opened as [`open_path`] opens (no symlink on the way),
/// and on that very file: a final symlink is watched itself, never followed, since the path is the watched
/// inode's own name. `IN_MASK_CREATE`: a file this instance watches already is an error (`EEXIST`), never
/// a change to that watch. The watch's descriptor.
pub fn inotify_add_watch(inotify: BorrowedFd<'_>, path: &[u8], mask: u32) -> io::Result<i32> {
    let file = openat2_no_symlinks(path, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)?;
    add_watch_on(inotify, fd_ref(&file), mask | libc::IN_MASK_CREATE)
}

/// A watch on the file `file` holds, through its `/proc/self/fd/N` link (which leads to that file and no
/// other, and which this process may always follow).
fn add_watch_on(inotify: BorrowedFd<'_>, file: BorrowedFd<'_>, mask: u32) -> io::Result<i32> {
    let link = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(|_| io::Error::other("path"))?;
    // SAFETY: `link` is NUL-terminated; the other arguments are integers.
    check(unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), link.as_ptr(), mask) }.into()).map(|wd| wd as i32)
}

/// Removes watch `wd` (the kernel queues an `IN_IGNORED` event for it).
pub fn inotify_rm_watch(inotify: BorrowedFd<'_>, wd: i32) -> io::Result<()> {
    // SAFETY: a plain call with integer arguments.
    check(unsafe { libc::inotify_rm_watch(inotify.as_raw_fd(), wd) }.into()).map(drop)
}

/// A file to add throwaway watches on: a memfd of this process, an inode no one else can watch, which its
/// creator may always read (as `inotify_add_watch` requires).
pub fn inotify_spare() -> io::Result<OwnedFd> {
    // SAFETY: the name is NUL-terminated.
    owned(unsafe { libc::memfd_create(c"crrules-spare-watch".as_ptr(), libc::MFD_CLOEXEC) }.into())
}

/// A throwaway watch on `spare` ([`inotify_spare`]), for `IN_ACCESS` (which nothing does to it): its
/// descriptor.
pub fn inotify_add_spare(inotify: BorrowedFd<'_>, spare: BorrowedFd<'_>) -> io::Result<i32> {
    add_watch_on(inotify, spare, libc::IN_ACCESS)
}

/// Reads away every event queued on an inotify instance (as many bytes as `FIONREAD` says are queued).
pub fn inotify_drain(inotify: BorrowedFd<'_>) -> io::Result<()> {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `queued`.
    check(unsafe { libc::ioctl(inotify.as_raw_fd(), libc::FIONREAD, &mut queued) }.into())?;
    if queued <= 0 {
        return Ok(());
    }
    // Events are only added meanwhile: a buffer of this size holds every event queued now, whole, and the
    // read does not wait.
    let mut buf = vec![0u8; queued as usize];
    nix::unistd::read(inotify, &mut buf).map_err(io::Error::from).map(drop)
}

/// Duplicates an fd at or above `min` (close-on-exec): out of the way of the numbers being restored.
pub fn above(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl with integer arguments.
    owned(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) }.into())
}

/// Places `fd` at number `at` (replacing whatever is there), close-on-exec as asked. The number is then
/// owned by the process image being prepared, not by an `OwnedFd`.
pub fn place(fd: BorrowedFd<'_>, at: RawFd, cloexec: bool) -> io::Result<()> {
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: dup3 with integer arguments; `at` is a number the restore owns.
    check(unsafe { libc::dup3(fd.as_raw_fd(), at, flags) }.into()).map(drop)
}

/// Takes ownership of fd number `fd`, just made by [`place`].
pub fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: `place` just put an open file at this number, which nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// True when fd number `fd` is open in this process.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any number only reads the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Sets or clears close-on-exec.
pub fn set_cloexec(fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<()> {
    let flags = if cloexec { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: fcntl with integer arguments.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags) }.into()).map(drop)
}

/// Closes fd number `fd`, which the restore owns.
pub fn close_number(fd: RawFd) {
    // SAFETY: the number is not held by any `OwnedFd` (see `place`).
    unsafe { libc::close(fd) };
}

/// The soft `RLIMIT_NOFILE` before [`raise_fd_limit`] first raised it.
static ORIGINAL_NOFILE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Puts back the soft open-files limit this process started with (the restored command inherits it; the
/// fds already open above it stay open): a program that uses `select()` relies on 1024.
pub fn restore_fd_limit() {
    let Some(&soft) = ORIGINAL_NOFILE.get() else { return };
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into `lim`; setrlimit reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = soft.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The kernel's `fs.nr_open`: no open-files limit goes above it.
pub fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(1 << 20)
}

/// Raises this process's soft `RLIMIT_NOFILE` towards `wanted` (fd numbers below it are usable): to `wanted`
/// where the hard limit allows, and past the hard limit where the kernel lets this process raise it too
/// (`CAP_SYS_RESOURCE`, up to `fs.nr_open`); otherwise as far as the hard limit. Never lowers it. Returns the
/// soft limit now in force, which the caller compares with what it needs.
pub fn raise_fd_limit(wanted: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into `lim`.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }.into())?;
    if lim.rlim_cur >= wanted {
        return Ok(lim.rlim_cur);
    }
    let _ = ORIGINAL_NOFILE.set(lim.rlim_cur);
    let wanted = wanted.min(nr_open()).max(lim.rlim_cur);
    let both = libc::rlimit { rlim_cur: wanted, rlim_max: lim.rlim_max.max(wanted) };
    // SAFETY: setrlimit reads `both`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &both) } == 0 {
        return Ok(wanted);
    }
    let soft = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
    // SAFETY: as above.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) }.into())?;
    Ok(lim.rlim_max)
}

/// The fd numbers this process has open.
pub fn own_fds() -> io::Result<Vec<RawFd>> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir =
        nix::dir::Dir::open("/proc/self/fd", flags, nix::sys::stat::Mode::empty()).map_err(io::Error::from)?;
    // The listing's own directory fd is not one of the process's.
    let listing = dir.as_raw_fd();
    let mut fds: Vec<RawFd> = dir
        .iter()
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok()?.parse().ok())
        .filter(|&fd| fd != listing)
        .collect();
    fds.sort_unstable();
    Ok(fds)
}

/// The link text of one of this process's fds.
pub fn own_link(fd: RawFd) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    Ok(std::fs::read_link(format!("/proc/self/fd/{fd}"))?.into_os_string().into_vec())
}

/// The calling thread's filesystem credentials, switched to another user's while opens are made and
/// switched back on drop: the kernel then checks every open as that user (a root caller's
/// `CAP_DAC_OVERRIDE` and the other filesystem capabilities leave the effective set while its fsuid is not
/// 0). Per thread: the raw syscalls, not glibc's process-wide wrappers.
#[derive(Debug)]
pub struct FsCreds {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl FsCreds {
    /// Takes on `uid`, `gid` and `groups` for filesystem access on this thread.
    pub fn assume(uid: u32, gid: u32, groups: &[u32]) -> io::Result<FsCreds> {
        let saved = FsCreds { uid: current_fsuid(), gid: current_fsgid(), groups: current_groups()? };
        set_groups(groups)?;
        // SAFETY: plain syscalls with integer arguments.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, gid);
            libc::syscall(libc::SYS_setfsuid, uid);
        }
        if current_fsuid() != uid || current_fsgid() != gid {
            drop(saved);
            return Err(io::Error::other(format!("cannot take on uid {uid} gid {gid} for the opens")));
        }
        Ok(saved)
    }
}

impl Drop for FsCreds {
    fn drop(&mut self) {
        // SAFETY: plain syscalls with integer arguments; restoring what the thread had.
        unsafe {
            libc::syscall(libc::SYS_setfsuid, self.uid);
            libc::syscall(libc::SYS_setfsgid, self.gid);
        }
        let _ = set_groups(&self.groups);
    }
}

fn current_fsuid() -> u32 {
    // SAFETY: setfsuid(-1) changes nothing and returns the current fsuid.
    unsafe { libc::syscall(libc::SYS_setfsuid, -1i32 as libc::c_long) as u32 }
}

fn current_fsgid() -> u32 {
    // SAFETY: as for setfsuid(-1).
    unsafe { libc::syscall(libc::SYS_setfsgid, -1i32 as libc::c_long) as u32 }
}

fn current_groups() -> io::Result<Vec<u32>> {
    // SAFETY: a size query with no buffer.
    let n = check(unsafe { libc::syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<libc::gid_t>()) })?;
    let mut groups = vec![0u32; n as usize];
    // SAFETY: `groups` has room for `n` entries.
    let n = check(unsafe { libc::syscall(libc::SYS_getgroups, n, groups.as_mut_ptr()) })?;
    groups.truncate(n as usize);
    Ok(groups)
}

fn set_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is valid for reading; the raw syscall changes this thread's groups only.
    check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

/// The kind of one of this process's fds, as a scan would name it (for `--inherit` type checks).
pub fn own_kind(fd: RawFd) -> io::Result<crrules_rules::vocab::Kind> {
    use super::link::{self, LinkShape};
    use crate::facts::FileType;
    use crrules_rules::vocab::Kind;
    let text = own_link(fd)?;
    // SAFETY: the caller names an fd it was handed; it is only borrowed for this `fstat`.
    let st = nix::sys::stat::fstat(unsafe { BorrowedFd::borrow_raw(fd) }).map_err(io::Error::from)?;
    let file_type = FileType::from_mode(st.st_mode);
    Ok(match link::classify(&text) {
        LinkShape::Path(p) if link::is_memfd_path(p) => Kind::Memfd,
        LinkShape::Path(_) => link::path_kind(file_type),
        LinkShape::Pipe(_) => Kind::Pipe,
        LinkShape::Socket(_) => Kind::Socket,
        LinkShape::Anon(n) => link::anon_kind(n),
        LinkShape::Ns { .. } => Kind::Nsfs,
    })
}

/// Borrows an fd number this process was handed (`--inherit NAME=FD`) and keeps open while borrowed.
pub fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the number was handed to this process to restore from, and nothing closes it before the
    // install places it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn fd_ref(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_path_refuses_magic_links_and_a_final_symlink() {
        let e = open_path(b"/proc/self/fd/0", libc::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let dir = std::env::temp_dir().join(format!("crrules-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        use std::os::unix::ffi::OsStrExt;
        assert!(open_path(link.as_os_str().as_bytes(), libc::O_RDONLY).is_err());
        assert!(open_path(b"/dev/null", libc::O_RDWR).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inotify_numbers_watches_in_order_and_never_reuses_one() {
        use std::os::fd::AsFd;
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("crrules-build-inotify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::os::unix::fs::symlink("a", dir.join("link")).unwrap();
        let path = |name: &str| dir.join(name).as_os_str().as_bytes().to_vec();
        let fd = inotify(true).unwrap();
        let spare = inotify_spare().unwrap();
        assert_eq!(inotify_add_watch(fd.as_fd(), &path("a"), libc::IN_CREATE).unwrap(), 1);
        let gap = inotify_add_spare(fd.as_fd(), spare.as_fd()).unwrap();
        assert_eq!(gap, 2);
        inotify_rm_watch(fd.as_fd(), gap).unwrap();
        // The freed number is not given out again.
        assert_eq!(inotify_add_watch(fd.as_fd(), &path("b"), libc::IN_DELETE | libc::IN_ONESHOT).unwrap(), 3);
        let e = inotify_add_watch(fd.as_fd(), &path("a"), libc::IN_DELETE).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "a watched file is never watched twice: {e}");
        // A final symlink is watched itself, a symlink on the way is refused.
        assert_eq!(inotify_add_watch(fd.as_fd(), &path("link"), libc::IN_ATTRIB).unwrap(), 4);
        let e = inotify_add_watch(fd.as_fd(), &path("link/x"), libc::IN_ATTRIB).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        let watches = super::super::fdinfo::FdInfo::parse(&info).inotify;
        let link_ino = std::fs::symlink_metadata(dir.join("link")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(watches.iter().any(|w| w.wd == 4 && w.ino == link_ino.ino()), "{info}");
        assert!(watches.iter().any(|w| w.wd == 3 && w.mask == libc::IN_DELETE | libc::IN_ONESHOT), "{info}");
        // The removal queued IN_IGNORED; draining leaves nothing to read.
        let mut buf = [0u8; 64];
        inotify_drain(fd.as_fd()).unwrap();
        assert_eq!(nix::unistd::read(&fd, &mut buf).unwrap_err(), nix::errno::Errno::EAGAIN);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn eventfd_and_timerfd_state() {
        let e = eventfd(5, true, true).unwrap();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", e.as_raw_fd())).unwrap();
        let field = |key: &str| info.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).unwrap_or_default();
        assert_eq!(u64::from_str_radix(field("eventfd-count:"), 16).unwrap(), 5, "{info}");
        assert_eq!(field("eventfd-semaphore:"), "1", "{info}");
        let t = timerfd(libc::CLOCK_MONOTONIC, false, (100, 0), (7, 0)).unwrap();
        // SAFETY: an all-zero itimerspec is valid, and `cur` is valid for writing.
        let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
        unsafe { libc::timerfd_gettime(t.as_raw_fd(), &mut cur) };
        assert_eq!(cur.it_interval.tv_sec, 7);
        assert!((95..=100).contains(&cur.it_value.tv_sec));
    }
}
