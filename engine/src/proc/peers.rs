//! The reads behind linking the processes checked together (see `crate::link`): whether two fds hold the
//! same open file (`kcmp`), a pty master's index, and one pass over every fd on the host that finds who,
//! outside those processes, holds the other end of a pipe, FIFO, unix socket or terminal. The pass reads a
//! link per fd (as `lsof` does, without its `stat`s) and looks closer only at the few that match.

use super::fdinfo::FdInfo;
use super::sys::{self, FdName};
use super::{DIR_FLAGS, all_pids, parse_fd, parse_stat};
use crate::facts::{ByteString, DevNum};
use nix::fcntl::{AtFlags, openat};
use nix::sys::stat::{Mode, fstatat};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;

/// A kernel object with two ends (or two sides) that fds hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Object {
    /// An anonymous pipe, by the inode its link names.
    Pipe(u64),
    /// A named FIFO, by its filesystem's `st_dev` and its inode.
    Fifo { dev: u64, ino: u64 },
    /// A socket, by its inode (a unix socket's peer, and a local TCP connection's, is another socket).
    Socket(u64),
    /// A pseudo-terminal pair, by its index (`/dev/pts/N`).
    Pty(u32),
}

/// Which end of an [`Object`] an fd holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    /// A pipe's or FIFO's read end.
    Read,
    /// A pipe's or FIFO's write end.
    Write,
    /// The socket itself.
    Socket,
    /// A pty's master side (`/dev/ptmx`).
    Master,
    /// A pty's slave side (`/dev/pts/N`).
    Slave,
}

/// The ends of objects to look for among the fds of processes outside the checkpoint.
#[derive(Debug, Default)]
pub struct Wanted {
    pub ends: HashSet<(Object, End)>,
    /// The paths the FIFOs were opened by (a FIFO is found by its path, then confirmed by `stat`).
    pub fifo_paths: HashSet<Vec<u8>>,
}

impl Wanted {
    fn wants(&self, object: Object, end: End) -> bool {
        self.ends.contains(&(object, end))
    }

    fn wants_pipe(&self, ino: u64) -> bool {
        self.wants(Object::Pipe(ino), End::Read) || self.wants(Object::Pipe(ino), End::Write)
    }

    fn wants_ptys(&self, end: End) -> bool {
        self.ends.iter().any(|&(o, e)| e == end && matches!(o, Object::Pty(_)))
    }
}

/// An end held by a process outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub object: Object,
    pub end: End,
    pub pid: i32,
    pub fd: i32,
}

/// What the pass over the host found.
#[derive(Debug, Default)]
pub struct Search {
    pub holders: Vec<Holder>,
    /// Processes whose fds could not be read (another user's, to an unprivileged caller): an end not found
    /// may be held there.
    pub unreadable: usize,
}

/// The pty index of a slave device number (`/dev/pts/N` is major 136-143, `N = (major - 136) * 256 +
/// minor`).
pub fn pty_index(dev: DevNum) -> Option<u32> {
    (136..=143).contains(&dev.major).then(|| (dev.major - 136) * 256 + dev.minor)
}

/// `/dev/ptmx` (5:2), the pty multiplexer: each fd opened on it is a master.
pub const PTMX: DevNum = DevNum { major: 5, minor: 2 };

/// How fd `fd1` of `pid1` and fd `fd2` of `pid2` compare as open files (`kcmp(KCMP_FILE)`): `Equal` when
/// they are the same open file; otherwise an order that is the same for every call in this boot, so a sort
/// by it brings the fds of each open file together.
pub fn compare_files(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> io::Result<Ordering> {
    match sys::kcmp_file(pid1, fd1, pid2, fd2)? {
        0 => Ok(Ordering::Equal),
        1 => Ok(Ordering::Less),
        2 => Ok(Ordering::Greater),
        _ => Err(io::Error::other("kcmp gave no order")),
    }
}

/// The pty index of a master fd (fdinfo's `tty-index:`).
pub fn tty_index(pid: i32, fd: i32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    FdInfo::parse(&text).tty_index
}

/// The command name of a process, from its `stat`.
pub fn comm(pid: i32) -> Option<ByteString> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|s| s.comm)
}

/// True while a process of that pid exists (a session leader's, for instance).
pub fn exists(pid: i32) -> bool {
    super::exists(pid)
}

/// Every fd of every process but those in `skip` (and this one) that holds one of the `wanted` ends, in
/// pid and fd order. Processes are read in parallel; one that exits meanwhile is passed over.
pub fn search(wanted: &Wanted, skip: &HashSet<i32>) -> io::Result<Search> {
    let me = std::process::id() as i32;
    let pids: Vec<i32> = all_pids()?.into_iter().filter(|p| *p != me && !skip.contains(p)).collect();
    let per_process: Vec<Result<Vec<Holder>, ()>> = pids.par_iter().map(|&pid| search_process(pid, wanted)).collect();
    let mut found = Search::default();
    for r in per_process {
        match r {
            Ok(holders) => found.holders.extend(holders),
            Err(()) => found.unreadable += 1,
        }
    }
    Ok(found)
}

/// The wanted ends one process holds; `Err` when its fds may not be read (it exiting is not an error).
fn search_process(pid: i32, wanted: &Wanted) -> Result<Vec<Holder>, ()> {
    let path = format!("/proc/{pid}/fd");
    let fd_dir: OwnedFd = match openat(nix::fcntl::AT_FDCWD, path.as_str(), DIR_FLAGS, Mode::empty()) {
        Ok(dir) => dir,
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => return Err(()),
        Err(_) => return Ok(Vec::new()),
    };
    let Ok(mut listing) = nix::dir::Dir::openat(&fd_dir, ".", DIR_FLAGS, Mode::empty()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for entry in listing.iter() {
        let Ok(entry) = entry else { break };
        let Some(fd) = parse_fd(entry.file_name().to_bytes()) else { continue };
        let name = FdName::new(fd);
        let Ok(n) = sys::readlinkat(&fd_dir, name.as_cstr(), &mut buf) else { continue };
        let link = &buf[..n];
        let mut held = |object: Object, end: End| {
            if wanted.wants(object, end) {
                out.push(Holder { object, end, pid, fd });
            }
        };
        if let Some(ino) = bracketed_ino(link, b"pipe:[") {
            if wanted.wants_pipe(ino) {
                let (read, write) = access(&fd_dir, &name);
                if read {
                    held(Object::Pipe(ino), End::Read);
                }
                if write {
                    held(Object::Pipe(ino), End::Write);
                }
            }
        } else if let Some(ino) = bracketed_ino(link, b"socket:[") {
            held(Object::Socket(ino), End::Socket);
        } else if link == b"/dev/ptmx" || link == b"/dev/pts/ptmx" {
            if wanted.wants_ptys(End::Master)
                && let Some(index) = tty_index(pid, fd)
            {
                held(Object::Pty(index), End::Master);
            }
        } else if link.starts_with(b"/dev/pts/") || link == b"/dev/tty" || link == b"/dev/console" {
            if wanted.wants_ptys(End::Slave)
                && let Ok(st) = fstatat(&fd_dir, name.as_cstr(), AtFlags::empty())
                && let Some(index) = pty_index(terminal(pid, DevNum::from_dev_t(st.st_rdev)))
            {
                held(Object::Pty(index), End::Slave);
            }
        } else if wanted.fifo_paths.contains(link)
            && let Ok(st) = fstatat(&fd_dir, name.as_cstr(), AtFlags::empty())
            && st.st_mode & libc::S_IFMT == libc::S_IFIFO
        {
            let object = Object::Fifo { dev: st.st_dev, ino: st.st_ino };
            let (read, write) = access(&fd_dir, &name);
            if read {
                held(object, End::Read);
            }
            if write {
                held(object, End::Write);
            }
        }
    }
    Ok(out)
}

/// The terminal an fd of `pid` on device `dev` is: `/dev/tty` (5:0) is the process's controlling terminal
/// (from its `stat`), any other device itself.
fn terminal(pid: i32, dev: DevNum) -> DevNum {
    if dev != (DevNum { major: 5, minor: 0 }) {
        return dev;
    }
    let controlling = std::fs::read(format!("/proc/{pid}/stat")).ok().and_then(|text| parse_stat(&text)?.session().tty);
    controlling.unwrap_or(dev)
}

/// Whether the fd reads and writes, from its `/proc/PID/fd/N` link's own mode: the kernel gives the link
/// `S_IRUSR` when the file is open for reading and `S_IWUSR` when it is open for writing (an `lstat`, not an
/// fdinfo read). Both when the mode cannot be read.
fn access(fd_dir: &OwnedFd, name: &FdName) -> (bool, bool) {
    match fstatat(fd_dir, name.as_cstr(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => (st.st_mode & libc::S_IRUSR != 0, st.st_mode & libc::S_IWUSR != 0),
        Err(_) => (true, true),
    }
}

/// The number in `PREFIX<digits>]`.
fn bracketed_ino(link: &[u8], prefix: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(prefix)?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The command names of processes, read once each.
pub fn comms(pids: impl IntoIterator<Item = i32>) -> HashMap<i32, ByteString> {
    pids.into_iter().filter_map(|pid| Some((pid, comm(pid)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_numbers() {
        assert_eq!(bracketed_ino(b"pipe:[123]", b"pipe:["), Some(123));
        assert_eq!(bracketed_ino(b"socket:[9]", b"pipe:["), None);
        assert_eq!(bracketed_ino(b"pipe:[12", b"pipe:["), None);
        assert_eq!(pty_index(DevNum { major: 136, minor: 3 }), Some(3));
        assert_eq!(pty_index(DevNum { major: 137, minor: 1 }), Some(257));
        assert_eq!(pty_index(DevNum { major: 5, minor: 2 }), None);
    }

    /// A pipe whose ends a child inherited: the pass finds the child holding both, each in its direction;
    /// a pipe no other process holds is found nowhere; the same open file compares equal across processes.
    #[test]
    fn a_child_holding_a_pipe_is_found() {
        use std::os::fd::AsRawFd;
        // Not close-on-exec: the child inherits both ends at the same numbers.
        let (r, w) = nix::unistd::pipe().unwrap();
        let ino = nix::sys::stat::fstat(&r).unwrap().st_ino;
        let (r2, _w2) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let lonely = nix::sys::stat::fstat(&r2).unwrap().st_ino;
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let mut wanted = Wanted::default();
        for end in [End::Read, End::Write] {
            wanted.ends.insert((Object::Pipe(ino), end));
            wanted.ends.insert((Object::Pipe(lonely), end));
        }
        let found = search(&wanted, &HashSet::new()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let mine: Vec<&Holder> = found.holders.iter().filter(|h| h.pid == pid).collect();
        let expect = [
            Holder { object: Object::Pipe(ino), end: End::Read, pid, fd: r.as_raw_fd() },
            Holder { object: Object::Pipe(ino), end: End::Write, pid, fd: w.as_raw_fd() },
        ];
        assert_eq!(mine, expect.iter().collect::<Vec<_>>(), "{found:?}");
        assert!(found.holders.iter().all(|h| h.object != Object::Pipe(lonely)), "{found:?}");
        let me = std::process::id() as i32;
        assert_eq!(compare_files(me, r.as_raw_fd(), pid, r.as_raw_fd()).ok(), None, "the child has exited");
        assert_eq!(compare_files(me, r.as_raw_fd(), me, r.as_raw_fd()).unwrap(), Ordering::Equal);
        assert_ne!(compare_files(me, r.as_raw_fd(), me, w.as_raw_fd()).unwrap(), Ordering::Equal);
    }
}
