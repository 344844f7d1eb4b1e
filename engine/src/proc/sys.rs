//! The few system calls the scanner makes through libc because nix does not offer them in the shape needed:
//! `readlinkat` into the caller's buffer (nix's version adds an `lstat` per call, a third more syscalls per
//! fd), `getxattr`, `pidfd_open`, `pidfd_getfd` and `statx` (none is in nix).
// Each function is a thin wrapper over one libc call, with NUL-terminated names and buffers this module
// owns or borrows for the call's duration; unsafe code is unavoidable for them and confined here.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// An fd number as a NUL-terminated name, on the stack.
#[derive(Clone, Copy, Debug)]
pub struct FdName {
    buf: [u8; 12],
    len: usize,
}

impl FdName {
    pub fn new(fd: i32) -> FdName {
        let mut digits = [0u8; 11];
        let mut n = fd.unsigned_abs();
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut buf = [0u8; 12];
        let len = digits.len() - i;
        buf[..len].copy_from_slice(&digits[i..]);
        FdName { buf, len }
    }

    pub fn as_cstr(&self) -> &CStr {
        // The buffer holds only digits up to `len` and a NUL right after them.
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// `readlinkat(dir, name)` into `buf`; the length read. A result as long as `buf` may be truncated.
pub fn readlinkat(dir: impl AsFd, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `name` is NUL-terminated; `buf` is writable for `buf.len()` bytes for the whole call.
    let n = unsafe { libc::readlinkat(dir.as_fd().as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// `getxattr(path, name)` into `buf` (following links); the length read.
pub fn getxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: both strings are NUL-terminated; `buf` is writable for `buf.len()` bytes for the whole call.
    let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// `pidfd_open(pid, 0)`: a file descriptor that refers to the process itself, never to a later process that
/// reuses its pid.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments; on success it returns a new fd that nothing else owns.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::other("pidfd_open returned an fd out of range"))?;
    // SAFETY: the kernel just returned this fd to us; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_getfd(pidfd, fd, 0)`: a duplicate, in this process, of the process's open fd `fd` (close-on-exec).
pub fn pidfd_getfd(pidfd: impl AsFd, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments; on success it returns a new fd that nothing else owns.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_fd().as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::other("pidfd_getfd returned an fd out of range"))?;
    // SAFETY: the kernel just returned this fd to us; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `kcmp(pid1, pid2, KCMP_FILE, fd1, fd2)`: 0 when both fds are the same open file, 1 or 2 for an order
/// between different ones, 3 when unordered.
pub fn kcmp_file(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> io::Result<i64> {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: a plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, KCMP_FILE, fd1 as libc::c_long, fd2 as libc::c_long) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// What `statx` says, in the shape of `stat` (which the scanner reads everywhere else), plus the mount id.
pub struct Statx {
    pub st: libc::stat,
    /// The id of the mount the file was reached through (`STATX_MNT_ID`, Linux 5.8+), as fdinfo's `mnt_id:`.
    pub mnt_id: Option<u64>,
}

/// `statx(dir, name, flags, STATX_BASIC_STATS | STATX_MNT_ID)`; an empty `name` with `AT_EMPTY_PATH` in
/// `flags` asks about `dir` itself.
pub fn statx(dir: impl AsFd, name: &CStr, flags: i32) -> io::Result<Statx> {
    let mask = libc::STATX_BASIC_STATS | libc::STATX_MNT_ID;
    // SAFETY: an all-zero `statx` is a valid value of the plain C struct.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated; `sx` is writable for the whole call.
    let r = unsafe { libc::statx(dir.as_fd().as_raw_fd(), name.as_ptr(), flags, mask, &mut sx) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct (its padding fields are private).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_dev = libc::makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st.st_ino = sx.stx_ino;
    st.st_nlink = sx.stx_nlink as _;
    st.st_mode = sx.stx_mode.into();
    st.st_uid = sx.stx_uid;
    st.st_gid = sx.stx_gid;
    st.st_rdev = libc::makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st.st_size = sx.stx_size as _;
    st.st_blksize = sx.stx_blksize as _;
    st.st_blocks = sx.stx_blocks as _;
    st.st_atime = sx.stx_atime.tv_sec as _;
    st.st_atime_nsec = sx.stx_atime.tv_nsec as _;
    st.st_mtime = sx.stx_mtime.tv_sec as _;
    st.st_mtime_nsec = sx.stx_mtime.tv_nsec as _;
    st.st_ctime = sx.stx_ctime.tv_sec as _;
    st.st_ctime_nsec = sx.stx_ctime.tv_nsec as _;
    let mnt_id = (sx.stx_mask & libc::STATX_MNT_ID != 0).then_some(sx.stx_mnt_id);
    Ok(Statx { st, mnt_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names() {
        for fd in [0, 7, 10, 65535, i32::MAX] {
            assert_eq!(FdName::new(fd).as_str(), fd.to_string());
            assert_eq!(FdName::new(fd).as_cstr().to_str().unwrap(), fd.to_string());
        }
    }
}
