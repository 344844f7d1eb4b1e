//! What a dump reads from a live process beyond the scan's facts, without changing it: its credentials,
//! duplicates of its fds (`pidfd_getfd`), a pipe's buffered bytes (`tee`, which copies and consumes nothing),
//! a unix socket's queued messages (peeked from offset 0 with `SO_PEEK_OFF`, whose old value is put back),
//! a memfd's or deleted file's bytes (`pread`, which moves no offset) and seals, and whether an fd still is
//! the file a duplicate holds (`kcmp`).
// Each unsafe block is one libc call on fds and buffers owned or borrowed for the call.
#![allow(unsafe_code)]

use crate::image::Creds;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// The credentials of `pid`, from `/proc/PID/status` (`Uid:`, `Gid:`, `Groups:`).
pub fn creds(pid: i32) -> io::Result<Creds> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_creds(&text).ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no Uid/Gid lines")))
}

fn parse_creds(text: &str) -> Option<Creds> {
    let ids = |key: &str| -> Option<Vec<u32>> {
        let line = text.lines().find_map(|l| l.strip_prefix(key))?;
        line.split_ascii_whitespace().map(|w| w.parse().ok()).collect()
    };
    let four = |v: Vec<u32>| -> Option<[u32; 4]> { v.try_into().ok() };
    Some(Creds { uid: four(ids("Uid:")?)?, gid: four(ids("Gid:")?)?, groups: ids("Groups:").unwrap_or_default() })
}

/// `fstat` of an fd this process holds: (device, inode, mode).
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64, u32)> {
    let st = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    Ok((st.st_dev, st.st_ino, st.st_mode))
}

/// True when fd `fd` of process `pid` is the very open file this process holds as `own` (`kcmp`).
pub fn same_file(pid: i32, fd: i32, own: BorrowedFd<'_>) -> io::Result<bool> {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: a plain syscall with integer arguments.
    let r = unsafe {
        libc::syscall(libc::SYS_kcmp, pid, std::process::id(), KCMP_FILE, fd as libc::c_long, own.as_raw_fd())
    };
    Ok(check(r)? == 0)
}

/// A pipe's capacity in bytes (`F_GETPIPE_SZ`).
pub fn pipe_capacity(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: fcntl with an integer command on a borrowed fd.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    Ok(check(r.into())? as u64)
}

/// Copies the bytes buffered in pipes and FIFOs without consuming them: `tee` into one scratch pipe of
/// this process, read back out. One scratch pipe for the whole dump: a pipe made per pipe copied would
/// count against the user's pipe pages (`fs.pipe-user-pages-soft`), past which new pipes are small and
/// cannot grow without `CAP_SYS_RESOURCE`.
#[derive(Debug)]
pub struct PipeCopier {
    r: OwnedFd,
    w: OwnedFd,
    capacity: usize,
}

impl PipeCopier {
    pub fn new() -> io::Result<PipeCopier> {
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two fds the kernel writes.
        check(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }.into())?;
        // SAFETY: the kernel just returned these fds; each is owned once, here.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
        let capacity = pipe_capacity(w.as_fd())? as usize;
        Ok(PipeCopier { r, w, capacity })
    }

    /// The bytes buffered in the pipe or FIFO `read_end` (a read end this process holds).
    pub fn copy(&mut self, read_end: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; it reads nothing from the pipe.
        check(unsafe { libc::ioctl(read_end.as_raw_fd(), libc::FIONREAD, &mut queued) }.into())?;
        let queued = queued.max(0) as usize;
        if queued == 0 {
            return Ok(Vec::new());
        }
        if queued > self.capacity {
            let want = queued.next_power_of_two() as libc::c_int;
            // SAFETY: fcntl with integer arguments on an fd owned here.
            let r = unsafe { libc::fcntl(self.w.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
            if r < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::other(format!(
                    "{queued} bytes are buffered, more than a pipe of this user may hold now ({e}; see \
                     fs.pipe-user-pages-soft)"
                )));
            }
            self.capacity = r as usize;
        }
        // SAFETY: tee between two pipe fds; no memory is passed.
        let n = unsafe { libc::tee(read_end.as_raw_fd(), self.w.as_raw_fd(), queued, libc::SPLICE_F_NONBLOCK) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EAGAIN) { Ok(Vec::new()) } else { Err(e) };
        }
        let mut out = vec![0u8; n as usize];
        let mut done = 0;
        while done < out.len() {
            let k = nix::unistd::read(&self.r, &mut out[done..]).map_err(io::Error::from)?;
            if k == 0 {
                break;
            }
            done += k;
        }
        out.truncate(done);
        Ok(out)
    }
}

/// The messages queued for reading on a unix socket this process holds a duplicate of, oldest first (a
/// stream's bytes as one message). Peeked from offset 0 with `SO_PEEK_OFF`, which is set back to what it
/// was. A message carrying fds or credentials (`MSG_CTRUNC`) is an error: those cannot be saved.
pub fn queued_messages(sock: BorrowedFd<'_>, stream: bool) -> io::Result<Vec<Vec<u8>>> {
    let old = get_peek_off(sock)?;
    set_peek_off(sock, 0)?;
    let result = peek_all(sock, stream);
    let restored = set_peek_off(sock, old);
    let messages = result?;
    restored?;
    Ok(messages)
}

fn get_peek_off(sock: BorrowedFd<'_>) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writing for the call.
    let r = unsafe {
        libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF, (&mut v as *mut i32).cast(), &mut len)
    };
    check(r.into())?;
    Ok(v)
}

fn set_peek_off(sock: BorrowedFd<'_>, v: i32) -> io::Result<()> {
    // SAFETY: `v` is valid for reading for the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEEK_OFF,
            (&v as *const i32).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(r.into()).map(drop)
}

fn peek_all(sock: BorrowedFd<'_>, stream: bool) -> io::Result<Vec<Vec<u8>>> {
    const MAX: usize = 1 << 20;
    let mut buf = vec![0u8; 256 * 1024];
    let mut messages: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: an all-zero msghdr is valid; it points at `iov` and no control buffer.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: `msg` and the buffer it points at are valid for the call.
        let n =
            unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) {
                break;
            }
            return Err(e);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::other("a queued message carries file descriptors or credentials"));
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(io::Error::other(format!("a queued message of {n} bytes is larger than {} bytes", buf.len())));
        }
        if n == 0 && stream {
            break;
        }
        if stream {
            messages
                .first_mut()
                .map(|m| m.extend_from_slice(&buf[..n]))
                .unwrap_or_else(|| messages.push(buf[..n].to_vec()));
        } else {
            messages.push(buf[..n].to_vec());
        }
        if messages.iter().map(Vec::len).sum::<usize>() > MAX * 64 {
            return Err(io::Error::other("more than 64 MiB queued"));
        }
    }
    Ok(messages)
}

/// Up to `size` bytes of a file from offset 0 (`pread`: the file's offset does not move).
pub fn file_bytes(fd: BorrowedFd<'_>, size: u64) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; size as usize];
    let mut done = 0usize;
    while done < out.len() {
        let n = nix::sys::uio::pread(fd, &mut out[done..], done as i64).map_err(io::Error::from)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    out.truncate(done);
    Ok(out)
}

/// A memfd's seals (`F_GET_SEALS`); 0 for a file that takes none.
pub fn seals(fd: BorrowedFd<'_>) -> u32 {
    // SAFETY: fcntl with an integer command on a borrowed fd.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    r.max(0) as u32
}

/// A duplicate of fd `fd` of the process `pidfd` refers to.
pub fn duplicate(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    super::sys::pidfd_getfd(pidfd.as_fd(), fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_from_status() {
        let status = "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t10\t11\t12\t13\nGroups:\t4 24 27 \n";
        let c = parse_creds(status).unwrap();
        assert_eq!((c.uid, c.gid, c.groups), ([1000, 1001, 1002, 1003], [10, 11, 12, 13], vec![4, 24, 27]));
        assert!(parse_creds("Name:\tx\n").is_none());
        assert_eq!(parse_creds("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n").unwrap().groups, Vec::<u32>::new());
    }

    #[test]
    fn pipe_bytes_are_copied_not_consumed() {
        let mut copier = PipeCopier::new().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"kept").unwrap();
        assert_eq!(copier.copy(r.as_fd()).unwrap(), b"kept");
        assert_eq!(copier.copy(r.as_fd()).unwrap(), b"kept");
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 4);
        assert_eq!(copier.copy(r.as_fd()).unwrap(), b"");
        // More than the scratch pipe holds at first: it grows.
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let big = vec![7u8; 100_000];
        nix::fcntl::fcntl(&w2, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 18)).unwrap();
        let mut off = 0;
        while off < big.len() {
            off += nix::unistd::write(&w2, &big[off..]).unwrap();
        }
        assert_eq!(copier.copy(r2.as_fd()).unwrap(), big);
    }

    #[test]
    fn queued_messages_are_peeked_and_the_peek_offset_kept() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (a, b) = socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC).unwrap();
        nix::unistd::write(&a, b"d1").unwrap();
        nix::unistd::write(&a, b"d22").unwrap();
        assert_eq!(queued_messages(b.as_fd(), false).unwrap(), vec![b"d1".to_vec(), b"d22".to_vec()]);
        assert_eq!(get_peek_off(b.as_fd()).unwrap(), -1);
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(&b, &mut buf).unwrap(), 2);
        let (s, t) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).unwrap();
        nix::unistd::write(&s, b"ab").unwrap();
        nix::unistd::write(&s, b"cd").unwrap();
        set_peek_off(t.as_fd(), 1).unwrap();
        assert_eq!(queued_messages(t.as_fd(), true).unwrap(), vec![b"abcd".to_vec()]);
        assert_eq!(get_peek_off(t.as_fd()).unwrap(), 1);
    }
}
