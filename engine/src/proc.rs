//! The only module that reads `/proc` and makes syscalls: a process's `/proc/PID` directory opened once,
//! each fd read through dirfd-relative `fstatat` + `readlinkat` + fdinfo `openat`/`read`, mountinfo, network
//! namespaces and sock_diag, and the process tree. [`crate::scan`] decides what to read and in what order.
//!
//! Consistency: an fd may be closed, or closed and reopened as something else, while it is read. Each fd is
//! read as `stat`, then link, then fdinfo; the link must fit the stat (type; inode for pipes, sockets and
//! namespaces), the fdinfo's `ino:` must be the stat's inode (for a path whose filesystem reports another
//! inode number to `stat`, a second `stat` must agree with the first) and its lines must fit the link's kind.
//! When some reads are turned off, a path (which names no inode) is checked by a second read instead: a
//! second `stat` after the link, or, when only the link comes first, a second link after the `stat`.
//! Otherwise the fd is read again, and after [`ATTEMPTS`] tries reported as vanished. Flags read from a
//! duplicate of the fd instead of fdinfo are checked against the link in [`dup`].

pub mod build;
pub mod capture;
pub mod cgroup;
mod dup;
pub mod fdinfo;
pub mod freeze;
pub mod link;
pub mod mountinfo;
pub mod peers;
pub mod procnet;
pub mod sockdiag;
mod sys;

use crate::error::ScanError;
use crate::facts::{ByteString, DevNum, FdFacts, FileType, OpenFlags, SessionFacts, SocketFacts};
use crate::needs::ScanOptions;
use crrules_rules::vocab::Kind;
use fdinfo::FdInfo;
use link::LinkShape;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};
use sockdiag::{Dump, SockTable};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use sys::FdName;

/// How many times an fd that keeps changing under the scanner is read before it counts as vanished.
pub const ATTEMPTS: usize = 4;

pub use dup::sockets_received;

/// The outcome of reading one fd.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(clippy::large_enum_variant, reason = "almost every fd is open; its facts are moved once, into the scan")]
pub enum FdRead {
    /// Its facts, and whether a duplicate of it was taken to read them.
    Open(FdFacts, bool),
    /// Closed before or while it was read (or replaced again and again).
    Gone,
}

enum Attempt {
    Done(Box<FdFacts>),
    Replaced,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_CLOEXEC);
const FILE_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_CLOEXEC);

fn io_err(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// An errno from reading `what` of a process that was open: permission, or some other I/O error.
fn scan_error(pid: i32, what: &str, e: Errno) -> ScanError {
    match e {
        Errno::EACCES | Errno::EPERM => {
            ScanError::PermissionDenied { pid, as_root: effective_uid() == 0, source: io::Error::from(e) }
        }
        e => ScanError::Io { pid, what: what.to_string(), source: io::Error::from(e) },
    }
}

/// Like [`scan_error`], but "not found" means the process exited.
fn exited_or(pid: i32, what: &str, e: Errno) -> ScanError {
    match e {
        Errno::ENOENT | Errno::ESRCH => ScanError::Exited { pid },
        e => scan_error(pid, what, e),
    }
}

/// Errors that mean "this fd is no longer there" when reading one fd.
fn is_gone(e: Errno) -> bool {
    matches!(e, Errno::ENOENT | Errno::ESRCH)
}

/// Reads a whole file relative to `dir`.
fn read_at(dir: &OwnedFd, name: &str) -> Result<Vec<u8>, Errno> {
    let fd = openat(dir, name, FILE_FLAGS, Mode::empty())?;
    read_all(&fd, Vec::with_capacity(4096))
}

fn read_all(fd: &OwnedFd, mut out: Vec<u8>) -> Result<Vec<u8>, Errno> {
    let mut chunk = [0u8; 4096];
    loop {
        let n = nix::unistd::read(fd, &mut chunk)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// What `/proc/PID/stat` says that the scanner needs (`1234 (my prog) S 1 ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stat {
    /// The command name, bytes as the process set them (any but NUL: a newline, a `)`, invalid UTF-8).
    comm: ByteString,
    state: char,
    ppid: i32,
    pgrp: i32,
    session: i32,
    /// The controlling terminal's `dev_t` (0: none).
    tty_nr: u64,
    /// The task's `PF_*` flags (the ninth field).
    flags: u32,
}

/// `PF_EXITING`: set when the task starts exiting, before its fd table goes; never cleared.
const PF_EXITING: u32 = 0x4;
/// `PF_KTHREAD`: a kernel thread (kthreadd and every thread it starts), which has no memory of its own and
/// no fd table worth checking: nothing a checkpoint is about.
const PF_KTHREAD: u32 = 0x0020_0000;

impl Stat {
    /// The process's place in its job.
    fn session(&self) -> SessionFacts {
        let tty = (self.tty_nr != 0).then(|| DevNum::from_dev_t(self.tty_nr));
        SessionFacts { ppid: self.ppid, pgrp: self.pgrp, sid: self.session, tty, leader: None }
    }

    /// Exiting, a zombie, or dead: its fd table is gone or going.
    fn exiting(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x') || self.flags & PF_EXITING != 0
    }
}

/// Parses the bytes of `/proc/PID/stat`: the comm between the first `(` and the last `)` (it may hold
/// parentheses itself), then the fields the kernel prints as ASCII numbers and letters.
fn parse_stat(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let comm = ByteString::from(text.get(open + 1..close)?);
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // After the comm: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    let rest: Vec<&str> = rest.split_ascii_whitespace().take(7).collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let pgrp = rest.get(2)?.parse().ok()?;
    let session = rest.get(3)?.parse().ok()?;
    // Printed as a signed int; the kernel's `dev_t` encoding (major in bits 8-19 and 32+, as glibc's).
    let tty_nr = rest.get(4)?.parse::<i64>().ok()? as u32 as u64;
    let flags = rest.get(6)?.parse().ok()?;
    Some(Stat { comm, state, ppid, pgrp, session, tty_nr, flags })
}

/// The network namespace inode of the scanner's own thread.
fn own_netns() -> Option<u64> {
    static OWN: OnceLock<Option<u64>> = OnceLock::new();
    *OWN.get_or_init(|| nix::sys::stat::stat("/proc/thread-self/ns/net").ok().map(|s| s.st_ino))
}

/// A process held by a pidfd: a later stage (a dump, a CRIU run) acts on the process that was scanned, and
/// sees when it has exited, even if its pid is reused meanwhile.
#[derive(Debug)]
pub struct ProcessHandle {
    pid: i32,
    pidfd: OwnedFd,
}

impl ProcessHandle {
    /// The pid the process had when it was opened (in the scanner's pid namespace).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pidfd, for `pidfd_getfd`, `pidfd_send_signal` or `poll`.
    pub fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pidfd.as_fd()
    }

    /// True until the process exits (a pidfd becomes readable when it does).
    pub fn is_running(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(self.pidfd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => true,
            Ok(_) => false,
            Err(_) => false,
        }
    }
}

/// A thread of `pid` that is not exiting, as its open `/proc/PID/task/TID` and its stat, if any.
fn live_thread(dir: &OwnedFd, pid: i32) -> Option<(OwnedFd, Stat)> {
    let tasks = openat(dir, "task", DIR_FLAGS, Mode::empty()).ok()?;
    let listing = std::fs::read_dir(format!("/proc/self/fd/{}", tasks.as_raw_fd())).ok()?;
    for entry in listing.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if tid == pid {
            continue;
        }
        let Ok(task) = openat(&tasks, entry.file_name().as_os_str(), DIR_FLAGS, Mode::empty()) else { continue };
        if let Some(stat) = read_at(&task, "stat").ok().and_then(|s| parse_stat(&s)).filter(|s| !s.exiting()) {
            return Some((task, stat));
        }
    }
    None
}

/// An open `/proc/PID`: every later read is relative to it, so a reused pid can never be confused with
/// the process that was opened (reads then fail as if it exited). A pidfd taken right after it holds the
/// same process for the stages after the scan.
#[derive(Debug)]
pub struct ProcessDir {
    pid: i32,
    dir: OwnedFd,
    fd_dir: OwnedFd,
    fdinfo_dir: OwnedFd,
    comm: ByteString,
    session: SessionFacts,
    handle: Option<std::sync::Arc<ProcessHandle>>,
    /// Duplicates of fds for their flags, through the pidfd (see [`dup`]).
    dup: Option<dup::Duplicator>,
    /// Superblock magic names by device, for files on no listed mount ([`ProcessDir::internal_fs`]).
    magic_by_dev: std::sync::Mutex<HashMap<u64, Option<&'static str>>>,
}

impl ProcessDir {
    /// Opens `/proc/PID` and its `fd` and `fdinfo` directories.
    pub fn open(pid: i32) -> Result<ProcessDir, ScanError> {
        if pid <= 0 {
            return Err(ScanError::NoSuchProcess { pid });
        }
        let dir = openat(nix::fcntl::AT_FDCWD, format!("/proc/{pid}").as_str(), DIR_FLAGS, Mode::empty()).map_err(
            |e| match e {
                Errno::ENOENT | Errno::ESRCH => ScanError::NoSuchProcess { pid },
                e => scan_error(pid, "/proc entry", e),
            },
        )?;
        let stat = read_at(&dir, "stat").map_err(|e| exited_or(pid, "stat", e))?;
        let stat = parse_stat(&stat).ok_or_else(|| ScanError::Io {
            pid,
            what: "stat".into(),
            source: io::Error::other("unreadable"),
        })?;
        if stat.flags & PF_KTHREAD != 0 {
            return Err(ScanError::KernelThread { pid, comm: stat.comm.escaped().into_owned() });
        }
        // A process whose main thread has exited lives on in its other threads, which share its fd table:
        // everything is then read through `/proc/PID/task/TID` of a live one.
        // The process's name stays the leader's (a thread may have named itself otherwise).
        let (dir, stat) = if stat.exiting() {
            let (task, task_stat) = live_thread(&dir, pid).ok_or(ScanError::Exited { pid })?;
            (task, Stat { comm: stat.comm, ..task_stat })
        } else {
            (dir, stat)
        };
        let session = stat.session();
        let comm = stat.comm;
        let fd_dir = openat(&dir, "fd", DIR_FLAGS, Mode::empty()).map_err(|e| exited_or(pid, "fd directory", e))?;
        let fdinfo_dir =
            openat(&dir, "fdinfo", DIR_FLAGS, Mode::empty()).map_err(|e| exited_or(pid, "fdinfo directory", e))?;
        // The pidfd is taken after the directory: if the directory's process is still alive afterwards (the
        // scan checks), the pid was not reused in between and both refer to the same process. A kernel
        // without pidfds (before 5.3) leaves the process unheld.
        let handle = match sys::pidfd_open(pid) {
            Ok(pidfd) => Some(std::sync::Arc::new(ProcessHandle { pid, pidfd })),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(ScanError::Exited { pid }),
            Err(_) => None,
        };
        let dup = handle.clone().and_then(dup::Duplicator::new);
        Ok(ProcessDir { pid, dir, fd_dir, fdinfo_dir, comm, session, handle, dup, magic_by_dev: Default::default() })
    }

    /// The calling thread's own `/proc/thread-self`: the fd table the caller's fds are in (a thread may
    /// have one of its own), for facts about an fd the caller holds. No pidfd is taken and no duplicate
    /// is ever made: the fds are the caller's already. Errors name this process's pid.
    pub fn own() -> Result<ProcessDir, ScanError> {
        let pid = nix::unistd::getpid().as_raw();
        let dir = openat(nix::fcntl::AT_FDCWD, "/proc/thread-self", DIR_FLAGS, Mode::empty())
            .map_err(|e| scan_error(pid, "/proc/thread-self", e))?;
        let stat = read_at(&dir, "stat").map_err(|e| scan_error(pid, "stat", e))?;
        let stat = parse_stat(&stat);
        let session = stat.as_ref().map(Stat::session).unwrap_or_default();
        let comm = stat.map(|s| s.comm).unwrap_or_default();
        let fd_dir = openat(&dir, "fd", DIR_FLAGS, Mode::empty()).map_err(|e| scan_error(pid, "fd directory", e))?;
        let fdinfo_dir =
            openat(&dir, "fdinfo", DIR_FLAGS, Mode::empty()).map_err(|e| scan_error(pid, "fdinfo directory", e))?;
        Ok(ProcessDir {
            pid,
            dir,
            fd_dir,
            fdinfo_dir,
            comm,
            session,
            handle: None,
            dup: None,
            magic_by_dev: Default::default(),
        })
    }

    /// The pidfd taken when the directory was opened, if the kernel has pidfds.
    pub fn handle(&self) -> Option<std::sync::Arc<ProcessHandle>> {
        self.handle.clone()
    }

    /// The command name (`/proc/PID/stat`'s second field), as read at open.
    pub fn comm(&self) -> &ByteString {
        &self.comm
    }

    /// Parent, process group, session and controlling terminal, as read at open.
    pub fn session(&self) -> SessionFacts {
        self.session
    }

    /// False once the process has started exiting (its fd table is then gone or going), is a zombie, or
    /// was reaped. True after a listing means the listing was of a live fd table.
    pub fn alive(&self) -> bool {
        read_at(&self.dir, "stat").ok().and_then(|s| parse_stat(&s)).is_some_and(|s| !s.exiting())
    }

    /// The open fd numbers, ascending.
    pub fn list_fds(&self) -> Result<Vec<i32>, ScanError> {
        let pid = self.pid;
        // Listed through our own open `fd` directory, so the listing is of the process opened; names are
        // parsed where `getdents` put them, with no allocation per entry.
        let mut dir = nix::dir::Dir::openat(&self.fd_dir, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| exited_or(pid, "fd directory", e))?;
        let mut fds = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| exited_or(pid, "fd directory", e))?;
            if let Some(fd) = parse_fd(entry.file_name().to_bytes()) {
                fds.push(fd);
            }
        }
        fds.sort_unstable();
        Ok(fds)
    }

    /// Reads one fd's facts: retried while it changes under us, [`FdRead::Gone`] once it is closed.
    pub fn read_fd(&self, fd: i32, reads: &ScanOptions) -> Result<FdRead, ScanError> {
        let name = FdName::new(fd);
        let mut duplicated = false;
        for _ in 0..ATTEMPTS {
            match self.read_fd_once(fd, &name, reads, &mut duplicated) {
                Ok(Attempt::Done(facts)) => return Ok(FdRead::Open(*facts, duplicated)),
                Ok(Attempt::Replaced) => continue,
                Err(e) if is_gone(e) => return Ok(FdRead::Gone),
                Err(e) => return Err(scan_error(self.pid, &format!("fd {fd}"), e)),
            }
        }
        Ok(FdRead::Gone)
    }

    /// `stat` through the fd's link, and the mount id (`statx`) where the kernel gives one.
    fn stat_fd(&self, name: &FdName) -> Result<(FileStat, Option<u64>), Errno> {
        let sx =
            sys::statx(&self.fd_dir, name.as_cstr(), 0).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        Ok((sx.st, sx.mnt_id))
    }

    fn read_link<'b>(&self, name: &FdName, buf: &'b mut [u8]) -> Result<&'b [u8], Errno> {
        let n = sys::readlinkat(&self.fd_dir, name.as_cstr(), buf)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        Ok(&buf[..n])
    }

    fn read_fdinfo(&self, name: &FdName) -> Result<FdInfo, Errno> {
        let file = openat(&self.fdinfo_dir, name.as_cstr(), FILE_FLAGS, Mode::empty())?;
        let mut buf = [0u8; 4096];
        let n = nix::unistd::read(&file, &mut buf)?;
        // A seq_file hands over the whole text in one read when it fits; only a full buffer may have more.
        // Lossy is exact here: the fdinfo lines the parser reads are ASCII (numbers, hex, octal flags and
        // fixed words); only lines it skips (a tun device's `iff:` name) can carry other bytes.
        if n < buf.len() {
            return Ok(FdInfo::parse(&String::from_utf8_lossy(&buf[..n])));
        }
        let all = read_all(&file, buf.to_vec())?;
        Ok(FdInfo::parse(&String::from_utf8_lossy(&all)))
    }

    fn read_fd_once(
        &self,
        fd: i32,
        name: &FdName,
        reads: &ScanOptions,
        duplicated: &mut bool,
    ) -> Result<Attempt, Errno> {
        // Where a duplicate may answer, `stat` comes after the link (a socket's must never be taken).
        let dup = self.dup.as_ref().filter(|d| d.useful(reads));
        let stat_first = reads.stat && dup.is_none();
        let (mut st, mut mnt_id) =
            if stat_first { self.stat_fd(name).map(|(s, m)| (Some(s), m))? } else { (None, None) };
        let mut buf = [0u8; 4096];
        // The link's bytes, exactly: a path need not be UTF-8, and a lossy copy would never equal the second
        // read below, so the fd would be read again and again and reported as vanished.
        let link = self.read_link(name, &mut buf)?;
        let shape = link::classify(link);
        let mut dup_flags = None;
        if let Some(dup) = dup {
            match dup.read(fd, &shape, link, reads, duplicated)? {
                dup::Read::Done(d) => (st, mnt_id, dup_flags) = (Some(d.st), d.mnt_id, Some(d.flags)),
                dup::Read::Replaced => return Ok(Attempt::Replaced),
                dup::Read::Skipped => {}
            }
        }
        if st.is_none() && (reads.stat || matches!(shape, LinkShape::Path(_))) {
            // Read after the link: a path's link is read again to be sure both describe the same file; other
            // links name the inode, compared below.
            (st, mnt_id) = self.stat_fd(name).map(|(s, m)| (Some(s), m))?;
            if matches!(shape, LinkShape::Path(_)) {
                let mut again = [0u8; 4096];
                if self.read_link(name, &mut again)? != link {
                    return Ok(Attempt::Replaced);
                }
            }
        }
        let file_type = st.as_ref().map(|s| FileType::from_mode(s.st_mode));
        let unlinked = st.as_ref().is_some_and(|s| s.st_nlink == 0);
        // A file of a kernel-internal mount (a message queue, secret memory) has a path of one component
        // under that mount's root, on an anonymous device, and no mountinfo lists the mount: its
        // superblock says which it is.
        let internal_fs = match (&shape, &st) {
            (LinkShape::Path(p), Some(s)) if DevNum::from_dev_t(s.st_dev).major == 0 && link::is_root_entry(p) => {
                self.internal_fs(fd, s.st_dev)
            }
            _ => None,
        };
        let kind = match shape {
            LinkShape::Path(_) if internal_fs == Some("mqueue") => Kind::Mqueue,
            LinkShape::Path(p) if link::is_memfd_path(p) && unlinked => Kind::Memfd,
            LinkShape::Path(p) if link::pseudo_path_anon(p).is_some() => Kind::Anon,
            LinkShape::Path(_) => link::path_kind(file_type.unwrap_or(FileType::Regular)),
            LinkShape::Pipe(_) => Kind::Pipe,
            LinkShape::Socket(_) => Kind::Socket,
            LinkShape::Anon(n) => link::anon_kind(n),
            LinkShape::Ns { .. } => Kind::Nsfs,
        };
        // fdinfo for what no `statx` or duplicate gave.
        let fdinfo = reads.fdinfo.contains(kind)
            || (reads.mount_ids.contains(kind) && mnt_id.is_none())
            || (reads.flags.contains(kind) && dup_flags.is_none());
        if let (Some(s), Some(ft)) = (&st, file_type) {
            if !link::type_fits(&shape, ft) || link::link_ino(&shape).is_some_and(|ino| ino != s.st_ino) {
                return Ok(Attempt::Replaced);
            }
            // A path names no inode: without fdinfo's `ino:` to tie the reads together, a second `stat`
            // after the link shows whether the fd still is the file the first one saw.
            if stat_first && !fdinfo && matches!(shape, LinkShape::Path(_)) {
                let (again, _) = self.stat_fd(name)?;
                if (again.st_ino, again.st_dev) != (s.st_ino, s.st_dev) {
                    return Ok(Attempt::Replaced);
                }
            }
        }
        let info = if fdinfo {
            let info = self.read_fdinfo(name)?;
            if !info.fits(kind) {
                return Ok(Attempt::Replaced);
            }
            let expected_ino = st.as_ref().map(|s| s.st_ino).or_else(|| link::link_ino(&shape));
            if matches!((info.ino, expected_ino), (Some(a), Some(b)) if a != b) {
                // Some filesystems (FUSE, overlayfs across devices) give `stat` another inode number than
                // the kernel inode's, which fdinfo prints: for a path, a second `stat` decides.
                let Some(first) = st.as_ref().filter(|_| matches!(shape, LinkShape::Path(_))) else {
                    return Ok(Attempt::Replaced);
                };
                let (again, _) = self.stat_fd(name)?;
                if (again.st_ino, again.st_dev) != (first.st_ino, first.st_dev) {
                    return Ok(Attempt::Replaced);
                }
            }
            Some(info)
        } else {
            None
        };

        let mut facts = FdFacts::new(fd, kind, ByteString::default());
        match shape {
            LinkShape::Path(p) => {
                // ` (deleted)` ends the link text of a file whose path was removed, and may end a live name.
                let suffixed = p.ends_with(link::DELETED_SUFFIX);
                let deleted = unlinked && suffixed;
                // Linked elsewhere: no file of that name is this one. Files of kernel-internal mounts
                // (`/secretmem (deleted)`) keep their one link and have no name anywhere.
                let elsewhere =
                    !unlinked && suffixed && internal_fs.is_none() && st.as_ref().is_some_and(|s| !self.names(p, s));
                let path = if deleted || elsewhere { &p[..p.len() - link::DELETED_SUFFIX.len()] } else { p };
                facts.deleted = deleted && kind != Kind::Memfd;
                facts.unlinked = elsewhere;
                facts.name = link::pseudo_path_anon(p).map(ByteString::from);
                facts.path = Some(ByteString::from(path));
            }
            LinkShape::Anon(n) => facts.name = Some(link::bracketed(n)),
            LinkShape::Ns { ns, .. } => facts.name = Some(ByteString::from(ns)),
            LinkShape::Pipe(_) | LinkShape::Socket(_) => {}
        }
        facts.ino = st.as_ref().map(|s| s.st_ino).or(link::link_ino(&shape));
        // A duplicate `stat`s every fd it is taken of: beyond the inode, that is kept only where asked for.
        if let Some(s) = st.as_ref().filter(|_| reads.stat || matches!(shape, LinkShape::Path(_))) {
            let ft = FileType::from_mode(s.st_mode);
            facts.file_type = Some(ft);
            facts.size = u64::try_from(s.st_size).ok();
            facts.ino = Some(s.st_ino);
            facts.st_dev = Some(DevNum::from_dev_t(s.st_dev));
            facts.mode = Some(s.st_mode);
            facts.uid = Some(s.st_uid);
            facts.gid = Some(s.st_gid);
            if matches!(ft, FileType::Char | FileType::Block) {
                facts.dev = Some(DevNum::from_dev_t(s.st_rdev));
            }
        }
        if let Some(info) = info {
            info.apply(&mut facts);
        } else {
            facts.mnt_id = mnt_id.filter(|_| reads.mount_ids.contains(kind));
            if let Some(flags) = dup_flags.filter(|_| reads.flags.contains(kind)) {
                facts.flags = OpenFlags(flags);
            }
        }
        facts.fs = internal_fs.map(str::to_owned);
        // A socket's protocol name costs one lookup and never touches the socket; sock_diag adds the rest.
        if kind == Kind::Socket && reads.sockets {
            facts.socket = Some(match self.sockprotoname(fd) {
                Ok(name) => sockdiag::facts_of_protoname(&name),
                Err(e) if is_gone(e) => return Err(e),
                Err(_) => SocketFacts::default(),
            });
        }
        facts.link = ByteString::from(link);
        Ok(Attempt::Done(Box::new(facts)))
    }

    /// True when `path`, resolved in the process's own root, is the file `st` describes.
    fn names(&self, path: &[u8], st: &FileStat) -> bool {
        let mut rel = b"root".to_vec();
        rel.extend_from_slice(path);
        let rel = std::ffi::OsStr::from_bytes(&rel);
        fstatat(&self.dir, rel, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|found| (found.st_ino, found.st_dev) == (st.st_ino, st.st_dev))
    }

    /// The kernel-internal filesystem (`mqueue`, `secretmem`) an fd's file is on, if any: one `statfs` per
    /// device (a thousand memfds share one), remembered for the scan.
    fn internal_fs(&self, fd: i32, dev: u64) -> Option<&'static str> {
        let known = self.magic_by_dev.lock().ok().and_then(|m| m.get(&dev).copied());
        let fs = match known {
            Some(fs) => fs,
            None => {
                let fs = self.fs_by_magic(fd);
                if let Ok(mut m) = self.magic_by_dev.lock() {
                    m.insert(dev, fs);
                }
                fs
            }
        };
        fs.filter(|fs| INTERNAL_FS.contains(fs))
    }

    /// The filesystem type of an fd's file from its superblock's magic number, for a file whose mount is in
    /// no mountinfo (POSIX message queues, `memfd_secret`, detached mounts).
    pub fn fs_by_magic(&self, fd: i32) -> Option<&'static str> {
        let path = format!("/proc/self/fd/{}/{}", self.fd_dir.as_raw_fd(), FdName::new(fd).as_str());
        let magic = nix::sys::statfs::statfs(path.as_str()).ok()?.filesystem_type().0;
        fs_name_of_magic(magic as u64)
    }

    /// Mount id -> filesystem type, from this process's mountinfo.
    pub fn mounts(&self) -> Result<HashMap<u64, String>, ScanError> {
        let text = read_at(&self.dir, "mountinfo").map_err(|e| exited_or(self.pid, "mountinfo", e))?;
        // Lossy: mount points and sources may hold any bytes, but only the mount ids and the filesystem
        // types are taken, and a type is a kernel filesystem's name (ASCII), but for a FUSE subtype, which
        // the mounter chooses (`fs` is text: such a subtype's bytes that are not UTF-8 become U+FFFD).
        Ok(mountinfo::fs_types(&String::from_utf8_lossy(&text)))
    }

    /// The sockets of the process's network namespace that the given dumps list, from sock_diag. Made from
    /// the scanner's own thread when the namespaces are the same, otherwise from a thread that joins the
    /// target's namespace (needs `CAP_SYS_ADMIN`; on an error the caller falls back to
    /// [`ProcessDir::sockprotoname`]).
    pub fn socket_table(&self, which: &[Dump]) -> io::Result<SockTable> {
        let ns = openat(&self.dir, "ns/net", FILE_FLAGS, Mode::empty()).map_err(io_err)?;
        let ino = fstat(&ns).map_err(io_err)?.st_ino;
        if own_netns() == Some(ino) { sockdiag::dump(which) } else { sockdiag::dump_in_netns(ns, which) }
    }

    /// The sockets one of `/proc/PID/net`'s tables lists (raw, ping and UDP-Lite sockets of the process's
    /// network namespace), by inode; empty when the table cannot be read (no such protocol here).
    pub fn proc_net_table(&self, table: procnet::Table) -> HashMap<u64, SocketFacts> {
        let text = read_at(&self.dir, &format!("net/{}", table.file())).unwrap_or_default();
        procnet::parse(table, &String::from_utf8_lossy(&text))
    }

    /// A socket fd's protocol name (`UNIX-STREAM`, `TCP`, `NETLINK`), from `getxattr(system.sockprotoname)`
    /// through the fd link; the socket itself is not touched.
    pub fn sockprotoname(&self, fd: i32) -> Result<String, Errno> {
        let path = CString::new(format!("/proc/self/fd/{}/{}", self.fd_dir.as_raw_fd(), FdName::new(fd).as_str()))
            .map_err(|_| Errno::EINVAL)?;
        let mut buf = [0u8; 64];
        let name: &CStr = c"system.sockprotoname";
        let n = sys::getxattr(&path, name, &mut buf).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        // The kernel's protocol names are ASCII.
        let text = String::from_utf8_lossy(&buf[..n]);
        Ok(text.trim_end_matches('\0').to_string())
    }
}

/// The kernel-internal filesystems whose files are told apart by their superblock.
const INTERNAL_FS: [&str; 2] = ["mqueue", "secretmem"];

/// An fd number from its name in `/proc/PID/fd` (`.` and `..` are not).
fn parse_fd(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    name.iter().try_fold(0i32, |n, &d| n.checked_mul(10)?.checked_add(i32::from(d - b'0')))
}

/// The filesystem types `statfs` can name that matter for an fd whose mount is in no mountinfo (the values
/// are the kernel's `*_MAGIC` constants, `include/uapi/linux/magic.h`).
pub fn fs_name_of_magic(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0x1980_0202 => "mqueue",
        0x5345_434d => "secretmem",
        0x0102_1994 => "tmpfs",
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x1cd1 => "devpts",
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x794c_7630 => "overlay",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x6367_7270 => "cgroup2",
        0x0027_e0eb => "cgroup",
        0x6573_5546 => "fuse",
        0x6e73_6673 => "nsfs",
        0xcafe_4a11 => "bpf",
        0x9584_58f6 => "hugetlbfs",
        0x0904_1934 => "anon_inodefs",
        _ => return None,
    })
}

/// The scanner's effective user id.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Every pid in `/proc`, ascending.
pub fn all_pids() -> io::Result<Vec<i32>> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&p: &i32| p > 0)
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// True when `pid` is a kernel thread (`PF_KTHREAD` in the flags of `/proc/PID/stat`, which anyone may
/// read); false when that cannot be told (the process exited: its scan says so).
pub fn is_kernel_thread(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| parse_stat(&text))
        .is_some_and(|stat| stat.flags & PF_KTHREAD != 0)
}

/// The session id of `pid` as its own, innermost, pid namespace sees it (the last number of `NSsid:` in
/// `/proc/PID/status`): 0 when its session's leader is in an ancestor namespace, though the id this
/// process reads in `stat` may not be 0. `None` when the status cannot be read or has no such line.
pub fn own_namespace_sid(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    innermost_sid(&text)
}

fn innermost_sid(status: &str) -> Option<i32> {
    status.lines().find_map(|l| l.strip_prefix("NSsid:"))?.split_ascii_whitespace().last()?.parse().ok()
}

/// True while `/proc/PID` exists.
pub fn exists(pid: i32) -> bool {
    pid > 0 && std::fs::metadata(format!("/proc/{pid}")).is_ok()
}

/// The children of every thread of `pid`, from `/proc/PID/task/*/children`. `Ok(None)` when the kernel has
/// no `children` files (built without `CONFIG_PROC_CHILDREN`).
pub fn children(pid: i32) -> io::Result<Option<Vec<i32>>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(task) = task else { continue };
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => out.extend(text.split_ascii_whitespace().filter_map(|p| p.parse::<i32>().ok())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !task.path().exists() => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) => continue,
        }
    }
    Ok(Some(out))
}

/// Parent -> children for every process, from each `/proc/PID/stat`'s ppid (the slow way, for kernels
/// without `children` files).
pub fn children_by_ppid() -> io::Result<HashMap<i32, Vec<i32>>> {
    let mut map: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in all_pids()? {
        // Bytes: a comm that is not UTF-8 must not hide the process and its children.
        let Ok(text) = std::fs::read(format!("/proc/{pid}/stat")) else { continue };
        if let Some(stat) = parse_stat(&text) {
            map.entry(stat.ppid).or_default().push(pid);
        }
    }
    Ok(map)
}

/// `pid`'s whole subtree below it (breadth-first, then sorted), not including `pid`.
pub fn descendants(pid: i32) -> io::Result<Vec<i32>> {
    let mut seen = HashSet::from([pid]);
    let mut queue = vec![pid];
    let mut by_ppid: Option<HashMap<i32, Vec<i32>>> = None;
    while let Some(p) = queue.pop() {
        let kids = match &by_ppid {
            Some(map) => map.get(&p).cloned().unwrap_or_default(),
            None => match children(p) {
                Ok(Some(kids)) => kids,
                Ok(None) => {
                    let map = children_by_ppid()?;
                    let kids = map.get(&p).cloned().unwrap_or_default();
                    by_ppid = Some(map);
                    kids
                }
                // A process in the tree that exited meanwhile has no children left to visit.
                Err(_) if p != pid => Vec::new(),
                Err(e) => return Err(e),
            },
        };
        for kid in kids {
            if seen.insert(kid) {
                queue.push(kid);
            }
        }
    }
    seen.remove(&pid);
    let mut out: Vec<i32> = seen.into_iter().collect();
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_innermost_session_id_is_the_last_of_nssid() {
        assert_eq!(super::innermost_sid("Name:\tsleep\nNSsid:\t1662\t0\nNSpgid:\t5\n"), Some(0));
        assert_eq!(super::innermost_sid("NSsid:\t41\n"), Some(41));
        assert_eq!(super::innermost_sid("Name:\tsleep\n"), None);
        assert_eq!(
            super::own_namespace_sid(std::process::id() as i32),
            Some(nix::unistd::getsid(None).unwrap().as_raw())
        );
    }

    use super::*;

    #[test]
    fn stat_lines() {
        let s = parse_stat(b"12 (a) b) c) S 1 12 12 0 -1 4194560 5 0").unwrap();
        assert_eq!((&s.comm, s.state, s.ppid, s.flags), (&"a) b) c".into(), 'S', 1, 4194560));
        assert_eq!((s.pgrp, s.session, s.tty_nr), (12, 12, 0));
        assert!(!s.exiting());
        // A shell job on /dev/pts/3 (136:3 is 0x8803), in process group 40 of session 7.
        let job = parse_stat(b"41 (sleep) S 7 40 7 34819 40 4194304 5").unwrap().session();
        assert_eq!((job.ppid, job.pgrp, job.sid), (7, 40, 7));
        assert_eq!(job.tty, Some(DevNum { major: 136, minor: 3 }));
        assert!(parse_stat(b"12 (x) S 1 12 12 0 -1 4194564 5").unwrap().exiting(), "PF_EXITING");
        assert!(parse_stat(b"12 (x) Z 7 12 12 0 -1 0").unwrap().exiting());
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"12 (x) Z 7"), None);
        // A comm is bytes: a newline, a closing parenthesis, bytes that are not UTF-8.
        let s = parse_stat(b"12 (ok\nPWNED) \xff) S 3 12 12 0 -1 0").unwrap();
        assert_eq!((s.comm.as_bytes(), s.ppid), (&b"ok\nPWNED) \xff"[..], 3));
    }

    #[test]
    fn own_process_reads() {
        let me = std::process::id() as i32;
        let dir = ProcessDir::open(me).unwrap();
        assert!(dir.alive());
        let fds = dir.list_fds().unwrap();
        assert!(fds.windows(2).all(|w| w[0] < w[1]));
        assert!(all_pids().unwrap().contains(&me));
        assert!(!is_kernel_thread(me));
        // kthreadd, pid 2 where the host's pid namespace is seen, starts every kernel thread.
        let kthreadd = std::fs::read("/proc/2/stat").ok().and_then(|t| parse_stat(&t)).filter(|s| s.ppid == 0);
        assert_eq!(is_kernel_thread(2), kthreadd.is_some_and(|s| s.comm == "kthreadd"));
        assert!(descendants(me).unwrap().iter().all(|&p| p != me));
    }
}
