//! An fd's flags from a duplicate of it instead of its fdinfo: `pidfd_getfd` hands the scanner a duplicate,
//! on which `statx` and `F_GETFL` answer the fd's `stat`, mount id and open flags (all but close-on-exec,
//! which belongs to the process's fd table) for about a third of what opening, reading and closing
//! `/proc/PID/fdinfo/N` costs. [`super::ProcessDir`] asks for one only when an fd needs its flags and
//! nothing else that only fdinfo says; `stat` and the mount id alone come as cheaply from a `statx` through
//! `/proc`, which takes no duplicate.
//!
//! Never for a socket: receiving one re-labels its net_cls and net_prio cgroup data as the receiver's. The
//! link's text shows a socket before any duplicate is taken, but an fd replaced by a socket between the
//! link and the duplicate would still be received: duplicates are therefore taken only while neither
//! controller is bound to a cgroup v1 hierarchy (`/proc/cgroups`), where every task and every socket carry
//! the root's labels and the re-labelling writes what was there. A socket received that way is counted
//! and the fd read again through `/proc`.
//!
//! Consistency: the duplicate is taken after the link was read. A link that names an inode (a pipe, a
//! namespace) must name the duplicate's; any other (a path, an anonymous inode) must be the duplicate's
//! own link text, so every fact describes the duplicate's file. Otherwise the fd was replaced in between
//! and is read again.
//!
//! Effects on the process, which the `/proc` reads do not have: a duplicate needs ptrace attach rights
//! (refused, the scan reads fdinfo for the rest of the process); while the scanner holds it, a close by
//! the process leaves the file open until the scanner's close, which then releases it; every close runs
//! the file's `flush` (a FUSE server hears it, NFS and CIFS write back dirty pages). No `lseek` is made for
//! the offset: with a second reference the kernel takes the file's position lock, which waits for any
//! read the process has under way.

use super::link::{self, LinkShape};
use super::sys::{self, FdName};
use crate::facts::FileType;
use crate::needs::{KindMask, ScanOptions};
use crrules_rules::vocab::Kind;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::sys::stat::FileStat;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// `O_PATH` as `F_GETFL` shows it.
const O_PATH: i32 = 0o10000000;

/// Which path fds a duplicate is taken of: only those whose link shows what they are, a memfd
/// (`/memfd:NAME (deleted)`) or an anonymous inode behind a path (`/dmabuf:`), whose close runs no
/// `flush` anyone hears. Never a path that may be a regular file (a FUSE server hears the flush, NFS and
/// CIFS write back) or a device (a driver's flush is its own), and its kind is not known before a `stat`:
/// a check changes nothing in the target, so those are read through `/proc`.
fn duplicable_path(path: &[u8], kinds: KindMask) -> bool {
    (link::is_memfd_path(path) && kinds.contains(Kind::Memfd))
        || (link::pseudo_path_anon(path).is_some() && kinds.contains(Kind::Anon))
}

/// Sockets received in this process since it started; stays 0 unless an fd was replaced by a socket
/// between its link and its duplicate.
static SOCKETS_RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// How many sockets this process has received as duplicates: 0 unless an fd was replaced by a socket in
/// the instant between its link and its duplicate (then it was read again through `/proc`).
pub fn sockets_received() -> usize {
    SOCKETS_RECEIVED.load(Ordering::Relaxed)
}

/// What a duplicate says about an fd: `stat`, the mount id and the open flags (`F_GETFL`).
#[derive(Debug)]
pub struct Status {
    pub st: FileStat,
    pub mnt_id: Option<u64>,
    pub flags: u32,
}

/// The outcome of reading an fd through a duplicate.
#[derive(Debug)]
pub enum Read {
    Done(Status),
    /// The duplicate is not the file the link named: the fd was replaced.
    Replaced,
    /// No duplicate was taken (a socket, a kind whose flags are not needed, or the kernel refused one):
    /// read through `/proc`.
    Skipped,
}

/// Takes duplicates of one process's fds through its pidfd.
#[derive(Debug)]
pub struct Duplicator {
    handle: Arc<super::ProcessHandle>,
    /// Cleared when the kernel refuses a duplicate (no ptrace attach rights, no `pidfd_getfd`).
    allowed: AtomicBool,
}

impl Duplicator {
    /// A duplicator for the process `handle` holds; `None` where receiving a socket would change its
    /// cgroup labels, or where the scanner cannot read its own fd links.
    pub fn new(handle: Arc<super::ProcessHandle>) -> Option<Duplicator> {
        (receiving_a_socket_changes_nothing() && own_fds().is_some())
            .then(|| Duplicator { handle, allowed: AtomicBool::new(true) })
    }

    /// True when `reads` asks for the flags of some kind whose fdinfo is not read anyway.
    pub fn useful(&self, reads: &ScanOptions) -> bool {
        reads.duplicates && !wanted(reads).is_empty() && self.allowed.load(Ordering::Relaxed)
    }

    /// Reads fd `fd`, whose link `link` was just read as `shape`, through a duplicate when its kind's flags
    /// are needed; sets `duplicated` when one was taken.
    pub fn read(
        &self,
        fd: i32,
        shape: &LinkShape<'_>,
        link: &[u8],
        reads: &ScanOptions,
        duplicated: &mut bool,
    ) -> Result<Read, Errno> {
        let kinds = wanted(reads);
        let wanted = match *shape {
            LinkShape::Socket(_) => false,
            LinkShape::Pipe(_) => kinds.contains(Kind::Pipe),
            LinkShape::Ns { .. } => kinds.contains(Kind::Nsfs),
            LinkShape::Anon(name) => kinds.contains(link::anon_kind(name)),
            LinkShape::Path(p) => duplicable_path(p, kinds),
        };
        if !wanted {
            return Ok(Read::Skipped);
        }
        let dup = match sys::pidfd_getfd(self.handle.pidfd(), fd) {
            Ok(dup) => dup,
            Err(e) => {
                return match Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)) {
                    // Closed meanwhile (or the process is gone): the caller's "gone".
                    Errno::EBADF => Err(Errno::ENOENT),
                    Errno::ESRCH => Err(Errno::ESRCH),
                    Errno::EPERM | Errno::EACCES | Errno::ENOSYS => {
                        self.allowed.store(false, Ordering::Relaxed);
                        Ok(Read::Skipped)
                    }
                    // Out of fds or memory here: this fd through `/proc`.
                    _ => Ok(Read::Skipped),
                };
            }
        };
        *duplicated = true;
        let sx = sys::statx(&dup, c"", libc::AT_EMPTY_PATH).map_err(errno)?;
        let flags = fcntl(&dup, FcntlArg::F_GETFL)?;
        let file_type = FileType::from_mode(sx.st.st_mode);
        if file_type == FileType::Socket && flags & O_PATH == 0 {
            SOCKETS_RECEIVED.fetch_add(1, Ordering::Relaxed);
            return Ok(Read::Replaced);
        }
        if !link::type_fits(shape, file_type) || !same_file(shape, link, &dup, sx.st.st_ino)? {
            return Ok(Read::Replaced);
        }
        Ok(Read::Done(Status { st: sx.st, mnt_id: sx.mnt_id, flags: flags as u32 }))
    }
}

/// The kinds whose flags are needed and not read from fdinfo anyway.
fn wanted(reads: &ScanOptions) -> KindMask {
    reads.flags.without(reads.fdinfo)
}

/// True when the duplicate `dup` is the file the link (read before it was taken) named: the inode the link
/// names, or else the duplicate's own link text.
fn same_file(shape: &LinkShape<'_>, link: &[u8], dup: &OwnedFd, ino: u64) -> Result<bool, Errno> {
    if let Some(named) = link::link_ino(shape) {
        return Ok(named == ino);
    }
    let Some(own) = own_fds() else { return Ok(false) };
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 4096];
    let n = sys::readlinkat(own, FdName::new(dup.as_raw_fd()).as_cstr(), &mut buf).map_err(errno)?;
    Ok(buf[..n] == *link)
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The scanner's own `/proc/self/fd`, opened once.
fn own_fds() -> Option<&'static OwnedFd> {
    static OWN: OnceLock<Option<OwnedFd>> = OnceLock::new();
    OWN.get_or_init(|| nix::fcntl::open("/proc/self/fd", super::DIR_FLAGS, nix::sys::stat::Mode::empty()).ok()).as_ref()
}

/// True when no cgroup v1 hierarchy has the net_cls or net_prio controller (`/proc/cgroups`, second column
/// 0): every task and socket then carries the root's class id and priority index, and a socket received
/// keeps the labels it had. Read once; unreadable counts as bound.
fn receiving_a_socket_changes_nothing() -> bool {
    static FREE: OnceLock<bool> = OnceLock::new();
    *FREE.get_or_init(|| std::fs::read("/proc/cgroups").is_ok_and(|text| no_v1_socket_labels(&text)))
}

/// `/proc/cgroups` text: neither net_cls nor net_prio is bound to a v1 hierarchy.
fn no_v1_socket_labels(text: &[u8]) -> bool {
    String::from_utf8_lossy(text).lines().all(|line| {
        let mut words = line.split_ascii_whitespace();
        match (words.next(), words.next()) {
            (Some("net_cls" | "net_prio"), Some(hierarchy)) => hierarchy == "0",
            _ => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_labels_of_v1_hierarchies() {
        let v2 = b"#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\nnet_cls\t0\t1\t1\nnet_prio\t0\t1\t1\n";
        assert!(no_v1_socket_labels(v2));
        assert!(no_v1_socket_labels(b"#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t0\t1\t1\n"));
        assert!(!no_v1_socket_labels(b"net_cls\t4\t1\t1\nnet_prio\t0\t1\t1\n"));
        assert!(!no_v1_socket_labels(b"net_cls\t0\t1\t1\nnet_prio\t9\t3\t1\n"));
    }

    #[test]
    fn only_paths_that_cannot_be_files_or_devices_are_duplicated() {
        assert!(duplicable_path(b"/memfd:buf (deleted)", KindMask::ALL));
        assert!(!duplicable_path(b"/memfd:buf (deleted)", KindMask::NONE.with(Kind::File)));
        for path in [&b"/tmp/a"[..], b"/dev/null", b"/tmp/fifo", b"/"] {
            assert!(!duplicable_path(path, KindMask::ALL), "{path:?}");
        }
    }
}
