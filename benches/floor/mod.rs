//! The honest floor of a scan: the fastest code that makes the syscalls a full scan makes, and nothing else
//! (`readlinkat` + `fstatat` + fdinfo `openat`/`read`/`close` per fd, relative to open directories, into
//! reused buffers, after one listing that allocates nothing per entry), on one thread or on two. Shared by
//! `benches/scan.rs` (in-process, criterion) and `examples/scanfloor.rs` (a whole process, for hyperfine).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The floor: per fd only `readlinkat`, `fstatat` and fdinfo `openat` + `read` + `close`, relative to the
/// open `fd` and `fdinfo` directories, into buffers reused across fds, after one listing that allocates
/// nothing per entry. The fastest code that makes the syscalls a full scan makes: what a scan costs beyond
/// it is the scanner's own.
pub struct Floor {
    pid: i32,
    pidfd: OwnedFd,
    fd_dir: OwnedFd,
    fdinfo_dir: OwnedFd,
}

/// One thread's buffers for the link and the fdinfo text.
struct Scratch {
    link: [u8; 4096],
    info: [u8; 4096],
}

impl Scratch {
    fn new() -> Box<Scratch> {
        Box::new(Scratch { link: [0; 4096], info: [0; 4096] })
    }
}

/// An fd number as a NUL-terminated name, on the stack.
fn fd_name(fd: i32, buf: &mut [u8; 12]) -> &std::ffi::CStr {
    let mut digits = [0u8; 11];
    let (mut n, mut i) = (fd.unsigned_abs(), digits.len());
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    buf[..len].copy_from_slice(&digits[i..]);
    buf[len] = 0;
    std::ffi::CStr::from_bytes_with_nul(&buf[..=len]).unwrap_or(c"")
}

impl Floor {
    pub fn new(pid: i32) -> Floor {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        let dir = |d: &str| {
            open(
                format!("/proc/{pid}/{d}").as_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .expect("proc dir")
        };
        Floor { pid, pidfd: pidfd_open(pid), fd_dir: dir("fd"), fdinfo_dir: dir("fdinfo") }
    }

    /// The fd numbers, from one `getdents` pass over the open `fd` directory, handed to `each` in batches
    /// of `batch` as they are listed.
    fn list_in(&self, batch: usize, mut each: impl FnMut(Vec<i32>)) {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut dir = nix::dir::Dir::openat(&self.fd_dir, ".", flags, nix::sys::stat::Mode::empty())
            .unwrap_or_else(|e| panic!("list the fds of {}: {e}", self.pid));
        let mut fds: Vec<i32> = Vec::with_capacity(batch);
        for entry in dir.iter().flatten() {
            let name = entry.file_name().to_bytes();
            if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
                fds.push(name.iter().fold(0, |n, &d| n * 10 + i32::from(d - b'0')));
                if fds.len() == batch {
                    each(std::mem::replace(&mut fds, Vec::with_capacity(batch)));
                }
            }
        }
        if !fds.is_empty() {
            each(fds);
        }
    }

    /// Every fd number.
    pub fn list(&self) -> Vec<i32> {
        let mut fds = Vec::with_capacity(1024);
        self.list_in(1024, |batch| fds.extend(batch));
        fds
    }

    #[expect(unsafe_code, reason = "the floor is the raw syscalls, without nix's extra lstat in readlinkat")]
    fn one(&self, fd: i32, scratch: &mut Scratch) -> usize {
        let mut name = [0u8; 12];
        let name = fd_name(fd, &mut name);
        // SAFETY: NUL-terminated name, buffers owned here, fds open for the whole call.
        unsafe {
            let (link, info) = (&mut scratch.link, &mut scratch.info);
            let n = libc::readlinkat(self.fd_dir.as_raw_fd(), name.as_ptr(), link.as_mut_ptr().cast(), link.len());
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstatat(self.fd_dir.as_raw_fd(), name.as_ptr(), &mut st, 0);
            let f = libc::openat(self.fdinfo_dir.as_raw_fd(), name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            let mut total = n.max(0) as usize + st.st_ino as usize;
            if f >= 0 {
                total += libc::read(f, info.as_mut_ptr().cast(), info.len()).max(0) as usize;
                libc::close(f);
            }
            total
        }
    }

    /// What a duplicate of the fd answers instead (FACTS: "about 1.9 us/fd"): `pidfd_getfd` + `fstat` +
    /// `F_GETFL` + `lseek(0, SEEK_CUR)` + `close`, and nothing through `/proc`.
    #[expect(unsafe_code, reason = "raw syscalls, as in the floor")]
    pub fn dup(&self, fd: i32) -> usize {
        // SAFETY: integer arguments and a `stat` owned here; the duplicate is closed before returning.
        unsafe {
            let d = libc::syscall(libc::SYS_pidfd_getfd, self.pidfd.as_raw_fd(), fd, 0) as i32;
            if d < 0 {
                return 0;
            }
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(d, &mut st);
            let flags = libc::fcntl(d, libc::F_GETFL);
            let pos = libc::lseek(d, 0, libc::SEEK_CUR);
            libc::close(d);
            st.st_ino as usize + flags.max(0) as usize + pos.max(0) as usize
        }
    }

    /// The fds that are not sockets, by their links (read once, outside any measurement).
    pub fn not_sockets(&self) -> Vec<i32> {
        let dir = format!("/proc/{}/fd", self.pid);
        let socket = |fd: &i32| {
            std::fs::read_link(format!("{dir}/{fd}"))
                .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
        };
        self.list().into_iter().filter(|fd| !socket(fd)).collect()
    }

    /// The whole floor on one thread: each fd read as it is listed.
    pub fn run_1thread(&self) -> usize {
        let mut scratch = Scratch::new();
        let mut total = 0;
        self.list_in(256, |batch| total += batch.iter().map(|&fd| self.one(fd, &mut scratch)).sum::<usize>());
        total
    }

    /// The whole floor on the current rayon pool (callers install one of two threads): each batch of 256
    /// fds read, one scratch per batch, while the next is listed (as the scanner does; reading after a
    /// whole listing is 5% slower here).
    pub fn run(&self) -> usize {
        let total = AtomicUsize::new(0);
        rayon::scope(|s| {
            let total = &total;
            self.list_in(256, |batch| {
                s.spawn(move |_| {
                    let mut scratch = Scratch::new();
                    let sum = batch.iter().map(|&fd| self.one(fd, &mut scratch)).sum();
                    total.fetch_add(sum, Ordering::Relaxed);
                })
            })
        });
        total.into_inner()
    }
}

#[expect(unsafe_code, reason = "pidfd_open has no wrapper in nix")]
fn pidfd_open(pid: i32) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain syscall; the fd it returns is owned by the `OwnedFd` alone.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        assert!(fd >= 0, "pidfd_open({pid})");
        OwnedFd::from_raw_fd(fd)
    }
}
