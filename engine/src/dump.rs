//! Dumping a decided process's fd table: each fd's decision turned into what restore needs
//! ([`crate::image::Restore`]), with the contents it saves read from duplicates taken through the pidfd the
//! scan holds, without changing the process. A process with a rejected fd, or an fd this backend cannot
//! carry out, is refused whole: nothing is captured, and the caller writes nothing.

use crate::facts::{ByteString, DevNum, FdFacts, FileType};
use crate::image::{
    EpollWatch, FORMAT, Frozen, Identity, ImageFd, InotifyPath, Manifest, ProcessRecord, Restore, VERSION,
};
use crate::plan::{Decision, ProcessPlan};
use crate::proc::capture;
use crrules_rules::Action;
use crrules_rules::vocab::{Kind, SockFamily, SockState, SockType};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};

pub use crate::proc::freeze::Stopped;

/// A dump in memory: the manifest and the data files it names, ready to be written as an image.
#[derive(Debug)]
pub struct Captured {
    pub manifest: Manifest,
    /// `(name, bytes)`: each saved content, under the name the manifest gives it (without `data/`).
    pub data: Vec<(String, Vec<u8>)>,
    /// What the dump did that a reader should know (duplicates of sockets taken, fds that changed).
    pub notes: Vec<String>,
}

/// Why a process could not be dumped.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Some fd is rejected by the policy: the plan says which and why.
    #[error("process {pid} cannot be checkpointed: {count} fd(s) rejected")]
    Rejected { pid: i32, count: usize },
    /// The plan was made from saved facts, not a live process.
    #[error("process {pid}: not a live scan (a dump reads the process itself)")]
    NotLive { pid: i32 },
    /// One fd cannot be carried out as decided.
    #[error("fd {fd} ({kind}, rule {rule}): {why}")]
    Fd { fd: i32, kind: Kind, rule: String, why: String },
    /// Reading the process failed.
    #[error("process {pid}: {what}: {source}")]
    Io {
        pid: i32,
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Captures `plan` (a decided, checkpointable plan of a live process).
pub fn capture(plan: &ProcessPlan, frozen: Option<Frozen>) -> Result<Captured, DumpError> {
    let pid = plan.pid;
    let rejected = plan.fds.iter().filter(|f| f.is_reject()).count();
    if rejected > 0 || !plan.decided {
        return Err(DumpError::Rejected { pid, count: rejected.max(usize::from(!plan.decided)) });
    }
    let handle = plan.process.as_ref().ok_or(DumpError::NotLive { pid })?;
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| DumpError::Io { pid, what, source }
    };
    let creds = capture::creds(pid).map_err(io("credentials"))?;
    // The duplicates of fds whose contents are saved are held until the end of the dump: room for them.
    let may_save = plan
        .fds
        .iter()
        .filter_map(|f| f.facts())
        .filter(|f| matches!(f.kind, Kind::Pipe | Kind::Fifo | Kind::Memfd | Kind::File | Kind::Socket))
        .count();
    let own = crate::proc::build::own_fds().map(|f| f.len()).unwrap_or(0);
    crate::proc::build::ensure_fd_room((own + may_save) as u64 + 64).map_err(io("room for duplicates"))?;
    let open: Vec<(&FdFacts, &Decision)> = plan.fds.iter().filter_map(|f| Some((f.facts()?, f.decision()?))).collect();
    let by_ino: HashMap<u64, Vec<i32>> = open.iter().fold(HashMap::new(), |mut m, (f, _)| {
        if let Some(ino) = f.ino {
            m.entry(ino).or_default().push(f.fd);
        }
        m
    });
    let mut ctx = Ctx {
        pid,
        pidfd: handle.pidfd(),
        by_ino: &by_ino,
        data: Vec::new(),
        notes: Vec::new(),
        held: Vec::new(),
        piped: HashSet::new(),
        contents: HashMap::new(),
        copier: None,
    };
    let mut fds = Vec::with_capacity(open.len());
    for (facts, decision) in &open {
        let held = ctx.held.len();
        let restore = ctx.restore_of(facts, decision).map_err(|why| DumpError::Fd {
            fd: facts.fd,
            kind: facts.kind,
            rule: decision.rule.clone().unwrap_or_else(|| crate::plan::NO_RULE.to_owned()),
            why,
        })?;
        // A duplicate nothing was saved from is let go at once; the others are compared at the end.
        if !saves_data(&restore) {
            ctx.held.truncate(held);
        }
        fds.push(ImageFd { fd: facts.fd, facts: (*facts).clone(), decision: (*decision).clone(), restore });
    }
    check_epoll_targets(&fds)?;
    // Every duplicate still is the process's fd: nothing was saved from a file the fd no longer names.
    for (fd, dup) in &ctx.held {
        if !capture::same_file(pid, *fd, dup.as_fd()).unwrap_or(false) {
            return Err(DumpError::Fd {
                fd: *fd,
                kind: open.iter().find(|(f, _)| f.fd == *fd).map_or(Kind::Any, |(f, _)| f.kind),
                rule: String::new(),
                why: "the fd changed while it was being dumped: run again, or dump with --freeze".into(),
            });
        }
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        crrules: env!("CARGO_PKG_VERSION").to_owned(),
        process: ProcessRecord { pid, comm: plan.comm.clone(), creds, frozen },
        fds,
    };
    Ok(Captured { manifest, data: ctx.data, notes: ctx.notes })
}

/// The state of one dump under way.
struct Ctx<'a> {
    pid: i32,
    pidfd: std::os::fd::BorrowedFd<'a>,
    /// Inode -> the fds holding it (both ends of a pipe, a socket's peer).
    by_ino: &'a HashMap<u64, Vec<i32>>,
    data: Vec<(String, Vec<u8>)>,
    notes: Vec<String>,
    /// Duplicates taken, kept until the end to compare with the process's fds.
    held: Vec<(i32, OwnedFd)>,
    /// Pipes and FIFOs whose bytes were saved already (by inode).
    piped: HashSet<u64>,
    /// The scratch pipe buffered bytes are copied through, made at the first pipe with bytes.
    copier: Option<capture::PipeCopier>,
    /// Files whose contents were saved already, by (device, inode).
    contents: HashMap<(Option<DevNum>, Option<u64>), Restore>,
}

/// What a restore needs to bring back an fd that `reopen path` (`substitute` `None`) or `reopen "SUBST"`
/// keeps: the path (the fd's own, or the substitute), the flags to open it with, the offset to seek to and,
/// for the fd's own path, the file type and device number to verify on the opened fd (which
/// [`crate::restore::open_verified`] does). An error when the fd's path no longer names its file. Shared by
/// the fd-table dump and the CRIU plugin, which saves the same fields in a record of its own.
pub fn reopen_of(f: &FdFacts, substitute: Option<&str>) -> Result<Restore, String> {
    if let Some(path) = substitute {
        return Ok(Restore::Open {
            path: ByteString::from(path.as_bytes()),
            flags: open_flags(f) & !(libc::O_APPEND as u32) | (f.flags.0 & libc::O_APPEND as u32),
            pos: 0,
            expect: Identity::default(),
        });
    }
    if f.deleted || f.unlinked {
        return Err("the file's path no longer names it: `reopen path` cannot bring it back".into());
    }
    let path = f.path.clone().ok_or("no path to reopen")?;
    Ok(Restore::Open {
        path,
        flags: open_flags(f),
        pos: f.pos.unwrap_or(0),
        expect: Identity {
            file_type: f.file_type,
            dev: f.dev.filter(|_| matches!(f.file_type, Some(FileType::Char | FileType::Block))),
            inode: None,
        },
    })
}

/// Flags restore reapplies: the access mode and status flags, not close-on-exec (a property of the number).
fn open_flags(f: &FdFacts) -> u32 {
    f.flags.0 & !(libc::O_CLOEXEC as u32)
}

fn readable(f: &FdFacts) -> bool {
    f.flags.0 & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32
}

impl Ctx<'_> {
    /// A duplicate of fd `fd`, checked to be the file the scan saw (device and inode).
    fn duplicate(&mut self, f: &FdFacts) -> Result<std::os::fd::BorrowedFd<'_>, String> {
        let i = self.take_duplicate(f)?;
        Ok(self.held[i].1.as_fd())
    }

    /// Takes the duplicate and returns its index in `held`.
    fn take_duplicate(&mut self, f: &FdFacts) -> Result<usize, String> {
        let dup = capture::duplicate(self.pidfd, f.fd).map_err(|e| format!("cannot take a duplicate: {e}"))?;
        let (dev, ino, _) = capture::identity(dup.as_fd()).map_err(|e| e.to_string())?;
        let same = f.ino == Some(ino) && f.st_dev.is_none_or(|d| d == DevNum::from_dev_t(dev));
        if !same {
            return Err("the fd names another file than when it was checked: run again".into());
        }
        self.held.push((f.fd, dup));
        Ok(self.held.len() - 1)
    }

    fn save(&mut self, name: String, bytes: Vec<u8>) -> String {
        let recorded = format!("{}/{name}", crate::image::DATA_DIR);
        self.data.push((name, bytes));
        recorded
    }

    fn restore_of(&mut self, f: &FdFacts, d: &Decision) -> Result<Restore, String> {
        Ok(match &d.action {
            // A FIFO reopened by path comes back with the bytes it buffered (what the default policy's
            // reason promises): the same restore as `recreate`.
            Action::ReopenPath if f.kind == Kind::Fifo => self.recreate(f)?,
            Action::ReopenPath => reopen_of(f, None)?,
            Action::ReopenSubst { path } => reopen_of(f, Some(path))?,
            Action::Contents { limit } => self.contents(f, *limit)?,
            Action::Recreate => self.recreate(f)?,
            Action::Inherit { name } => Restore::Inherit { name: name.clone(), kind: f.kind.name().to_owned() },
            Action::Close => Restore::Close,
            Action::Plugin { name } => Restore::Plugin { name: name.clone() },
            Action::Reject { reason } => return Err(format!("rejected: {reason}")),
        })
    }

    fn contents(&mut self, f: &FdFacts, limit: Option<u64>) -> Result<Restore, String> {
        if !matches!(f.file_type, Some(FileType::Regular)) {
            return Err("`contents` saves a regular file's bytes; this is not one".into());
        }
        let size = f.size.unwrap_or(0);
        if let Some(limit) = limit.filter(|&l| size > l) {
            return Err(format!("{size} bytes, over the rule's limit of {limit}"));
        }
        let memfd = f.kind == Kind::Memfd;
        // Fds of one file save its bytes once, and come back as fds of one file again.
        let key = (f.st_dev, f.ino);
        if let Some(Restore::Contents { data, size, mode, memfd, name, seals, .. }) =
            self.contents.get(&key).filter(|_| f.ino.is_some())
        {
            return Ok(Restore::Contents {
                data: data.clone(),
                size: *size,
                flags: open_flags(f),
                pos: f.pos.unwrap_or(0),
                mode: *mode,
                memfd: *memfd,
                name: name.clone(),
                seals: *seals,
            });
        }
        let dup = self.duplicate(f)?;
        let bytes = capture::file_bytes(dup, size).map_err(|e| format!("cannot read its bytes: {e}"))?;
        let seals = if memfd { capture::seals(dup) } else { 0 };
        let name = f.path.as_ref().and_then(|p| p.as_bytes().strip_prefix(b"/memfd:")).map(ByteString::from);
        let size = bytes.len() as u64;
        let data = self.save(format!("{}-contents", f.fd), bytes);
        let restore = Restore::Contents {
            data,
            size,
            flags: open_flags(f),
            pos: f.pos.unwrap_or(0),
            mode: f.mode.unwrap_or(0o600) & 0o7777,
            memfd,
            name: if memfd { name } else { f.path.clone() },
            seals,
        };
        self.contents.insert(key, restore.clone());
        Ok(restore)
    }

    fn recreate(&mut self, f: &FdFacts) -> Result<Restore, String> {
        match f.kind {
            Kind::Pipe => {
                let id = f.ino.ok_or("a pipe without an inode")?;
                let write = !readable(f);
                let ends = self.by_ino.get(&id).map_or(1, Vec::len);
                let mut data = None;
                let first_reader = !write && self.piped.insert(id);
                // A write end whose read end is in the process too: that end's duplicate says it all.
                if write && ends > 1 {
                    return Ok(Restore::Pipe { id, write, flags: open_flags(f), data, capacity: None });
                }
                let i = self.take_duplicate(f)?;
                let dup = self.held[i].1.as_fd();
                let capacity = capture::pipe_capacity(dup).ok();
                if first_reader {
                    let bytes = copy_pipe(&mut self.copier, dup)?;
                    if !bytes.is_empty() {
                        data = Some(self.save(format!("{}-pipe", f.fd), bytes));
                    }
                }
                if ends == 1 && write {
                    self.notes.push(format!(
                        "fd {}: the pipe's read end is not in the process; its bytes, if any, stay with that reader",
                        f.fd
                    ));
                }
                Ok(Restore::Pipe { id, write, flags: open_flags(f), data, capacity })
            }
            Kind::Fifo => {
                let path = f.path.clone().ok_or("a FIFO without a path")?;
                if f.deleted {
                    return Err("the FIFO was deleted: the fd-table backend reopens FIFOs by path".into());
                }
                let id = f.ino.unwrap_or(0);
                let mut data = None;
                if readable(f) && self.piped.insert(id) {
                    let i = self.take_duplicate(f)?;
                    let bytes = copy_pipe(&mut self.copier, self.held[i].1.as_fd())?;
                    if !bytes.is_empty() {
                        data = Some(self.save(format!("{}-fifo", f.fd), bytes));
                    }
                }
                Ok(Restore::Fifo { path, flags: open_flags(f), data })
            }
            Kind::Socket => self.socket(f),
            Kind::Eventfd => {
                let e = f.eventfd.as_ref().ok_or("no eventfd count was read")?;
                Ok(Restore::Eventfd { count: e.count, semaphore: e.semaphore.unwrap_or(false), flags: open_flags(f) })
            }
            Kind::Timerfd => {
                let t = f.timerfd.as_ref().ok_or("no timer settings were read")?;
                Ok(Restore::Timerfd {
                    clockid: t.clockid,
                    flags: open_flags(f),
                    value: t.it_value,
                    interval: t.it_interval,
                })
            }
            Kind::Signalfd => Ok(Restore::Signalfd {
                signals: f.sigmask.clone().ok_or("no signal mask was read")?,
                flags: open_flags(f),
            }),
            Kind::Epoll => {
                let targets = f.epoll.as_ref().ok_or("no epoll targets were read")?;
                Ok(Restore::Epoll {
                    targets: targets.iter().map(|t| EpollWatch { fd: t.tfd, events: t.events, data: t.data }).collect(),
                    flags: open_flags(f),
                })
            }
            Kind::Inotify => self.inotify(f),
            other => Err(format!("the fd-table backend cannot recreate a {other} (CRIU may: see `crrules criu`)")),
        }
    }

    /// An inotify instance: each watch resolved to the path that names its inode in the process's view,
    /// through the file handle fdinfo shows, in wd order. The watches are read again from a duplicate: one
    /// added or removed since the scan would otherwise be lost or brought back.
    fn inotify(&mut self, f: &FdFacts) -> Result<Restore, String> {
        let mut watches = f.inotify.clone().ok_or("no inotify watches were read")?;
        watches.sort_by_key(|w| w.wd);
        let dup = self.duplicate(f)?;
        let mut now = capture::inotify_watches(dup).map_err(|e| format!("cannot read its watches again: {e}"))?;
        now.sort_by_key(|w| w.wd);
        if now != watches {
            return Err("its watches changed while it was being dumped: run again, or dump with --freeze".into());
        }
        let handles: Vec<(i32, Vec<u8>)> = watches
            .iter()
            .map(|w| {
                w.fhandle.as_ref().and_then(|h| Some((h.handle_type, h.decode()?))).ok_or_else(|| {
                    format!(
                        "wd {}: the kernel shows no file handle for the watched file (its filesystem gives none), so \
                         it cannot be resolved to a path",
                        w.wd
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let targets: Vec<capture::Handled<'_>> = watches
            .iter()
            .zip(&handles)
            .map(|(w, (handle_type, bytes))| capture::Handled {
                ino: w.ino,
                dev: w.dev(),
                handle_type: *handle_type,
                handle: bytes,
            })
            .collect();
        let paths = capture::handle_paths(self.pid, &targets)
            .map_err(|e| format!("cannot resolve its watches to paths: {e}"))?;
        let mut out = Vec::with_capacity(watches.len());
        for (w, path) in watches.iter().zip(paths) {
            let path = path.map_err(|why| unresolved(w, why))?;
            let mask = w.mask & WATCH_BITS;
            if mask & libc::IN_ALL_EVENTS == 0 {
                return Err(format!("wd {}: its mask {:#x} holds no event a watch can be added for", w.wd, w.mask));
            }
            out.push(InotifyPath { wd: w.wd, path: ByteString::from(path), mask });
        }
        Ok(Restore::Inotify { watches: out, flags: open_flags(f) })
    }

    fn socket(&mut self, f: &FdFacts) -> Result<Restore, String> {
        let s = f.socket.as_ref().ok_or("no socket facts were read")?;
        let ty = s.sock_type.ok_or("the socket's type is unknown")?;
        match s.family {
            Some(SockFamily::Unix) => {
                let ino = f.ino.ok_or("a socket without an inode")?;
                let peer = s.peer_ino.filter(|p| self.by_ino.contains_key(p)).ok_or(
                    "its peer is not in this process: the fd-table backend recreates unix socket pairs inside the \
                     process only (hand an outside peer in with `inherit`)",
                )?;
                let mut data = None;
                if s.rqueue.unwrap_or(0) > 0 {
                    let dup = self.duplicate(f)?;
                    let stream = ty == SockType::Stream;
                    let messages =
                        capture::queued_messages(dup, stream).map_err(|e| format!("cannot copy its queue: {e}"))?;
                    self.notes.push(format!(
                        "fd {}: a duplicate of the socket was taken to copy its queue (see FACTS: a received socket's \
                         cgroup labels)",
                        f.fd
                    ));
                    if !messages.is_empty() {
                        data = Some(self.save(format!("{}-queue", f.fd), encode_messages(&messages)));
                    }
                }
                Ok(Restore::UnixPair {
                    pair: ino.min(peer),
                    ino,
                    sock_type: ty.name().to_owned(),
                    flags: open_flags(f),
                    data,
                })
            }
            Some(family @ (SockFamily::Inet | SockFamily::Inet6)) => {
                let addr = s.local.as_ref().and_then(|a| a.to_str()).ok_or("the socket is not bound")?;
                let listen = s.state == Some(SockState::Listen);
                let bound_udp = ty == SockType::Dgram && s.peer.is_none() && !addr.ends_with(":0");
                let listening_tcp = listen && ty == SockType::Stream;
                if !listening_tcp && !bound_udp {
                    return Err(format!(
                        "the fd-table backend re-binds listening TCP and bound UDP sockets only; this one is {} {}",
                        ty.name(),
                        s.state.map_or("in no known state", |st| st.name())
                    ));
                }
                Ok(Restore::Inet {
                    family: family.name().to_owned(),
                    sock_type: ty.name().to_owned(),
                    addr: addr.to_owned(),
                    listen,
                    backlog: s.wqueue.unwrap_or(128),
                    flags: open_flags(f),
                })
            }
            other => Err(format!(
                "the fd-table backend cannot recreate a {} socket",
                other.map_or("socket of unknown family", |f| f.name())
            )),
        }
    }
}

/// True when the restore reads a data file the dump wrote.
fn saves_data(r: &Restore) -> bool {
    match r {
        Restore::Contents { .. } => true,
        Restore::Pipe { data, .. } | Restore::Fifo { data, .. } | Restore::UnixPair { data, .. } => data.is_some(),
        _ => false,
    }
}

/// The bits of a watch's mask, as fdinfo shows it, that `inotify_add_watch` takes back: the events, and the
/// two flags the kernel keeps with the watch and shows (`IN_EXCL_UNLINK`, `IN_ONESHOT`). `IN_ONLYDIR`,
/// `IN_DONT_FOLLOW`, `IN_MASK_ADD` and `IN_MASK_CREATE` only steer the call that adds a watch and are not
/// shown (measured on 6.18). Any other bit a kernel may print (its internal ones, such as 0x08000000 for
/// events on a directory's children) is no watch flag, and `inotify_add_watch` would refuse it: left out.
const WATCH_BITS: u32 = libc::IN_ALL_EVENTS | libc::IN_EXCL_UNLINK | libc::IN_ONESHOT;

/// What to say about a watch that has no path.
fn unresolved(w: &crate::facts::InotifyWatch, why: capture::Unresolved) -> String {
    let wd = w.wd;
    match why {
        capture::Unresolved::Deleted => {
            format!("wd {wd}: a watch on a deleted file cannot be re-added by path (inode {})", w.ino)
        }
        capture::Unresolved::NoMount => format!(
            "wd {wd}: no mount of the process holds the watched file's filesystem ({}), so it has no path",
            w.dev()
        ),
        capture::Unresolved::NoPath => format!(
            "wd {wd}: no path in the process's view names the watched file (inode {} on {}): it cannot be re-added \
             by path",
            w.ino,
            w.dev()
        ),
        capture::Unresolved::Io("open_by_handle_at", e) if e.raw_os_error() == Some(libc::EPERM) => format!(
            "wd {wd}: opening the watched file by its handle needs CAP_DAC_READ_SEARCH (run the dump as root): {e}"
        ),
        capture::Unresolved::Io(what, e) => format!("wd {wd}: cannot resolve the watched file to a path: {what}: {e}"),
    }
}

/// A duplicate of fd `fd` of the process `handle` holds (for a hand-over).
pub fn duplicate_of(handle: &crate::scan::ProcessHandle, fd: i32) -> std::io::Result<OwnedFd> {
    capture::duplicate(handle.pidfd(), fd)
}

/// The bytes buffered in a pipe or FIFO, through the dump's one scratch pipe.
fn copy_pipe(
    copier: &mut Option<capture::PipeCopier>,
    read_end: std::os::fd::BorrowedFd<'_>,
) -> Result<Vec<u8>, String> {
    let copier = match copier {
        Some(c) => c,
        None => copier.insert(capture::PipeCopier::new().map_err(|e| format!("cannot make a scratch pipe: {e}"))?),
    };
    copier.copy(read_end).map_err(|e| format!("cannot copy its buffered bytes: {e}"))
}

/// Messages as records: a 4-byte little-endian length, then the bytes.
pub fn encode_messages(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.len() + 4).sum());
    for m in messages {
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// The records [`encode_messages`] wrote; `None` when the bytes are not such records.
pub fn decode_messages(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        out.push(bytes.get(4..4 + len)?.to_vec());
        bytes = &bytes[4 + len..];
    }
    Some(out)
}

/// Every epoll target is an fd of the image holding the file epoll watches.
fn check_epoll_targets(fds: &[ImageFd]) -> Result<(), DumpError> {
    let held: HashMap<i32, &ImageFd> = fds.iter().map(|f| (f.fd, f)).collect();
    for f in fds {
        let (Restore::Epoll { .. }, Some(targets)) = (&f.restore, &f.facts.epoll) else { continue };
        for t in targets {
            let fail = |why: String| DumpError::Fd {
                fd: f.fd,
                kind: Kind::Epoll,
                rule: f.decision.rule.clone().unwrap_or_default(),
                why,
            };
            let target = held.get(&t.tfd).ok_or_else(|| fail(format!("it watches fd {}, which is not open", t.tfd)))?;
            if t.ino.is_some_and(|ino| target.facts.ino != Some(ino)) {
                return Err(fail(format!("it watches a file that fd {} no longer holds", t.tfd)));
            }
            if matches!(target.restore, Restore::Close) {
                return Err(fail(format!("it watches fd {}, which its rule closes", t.tfd)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Creds;

    #[test]
    fn message_records_round_trip() {
        let messages = vec![b"d1".to_vec(), Vec::new(), vec![0u8; 300]];
        assert_eq!(decode_messages(&encode_messages(&messages)).unwrap(), messages);
        assert_eq!(decode_messages(b""), Some(vec![]));
        assert_eq!(decode_messages(&[5, 0, 0, 0, 1]), None);
    }

    #[test]
    fn creds_accessors() {
        let c = Creds { uid: [1, 2, 3, 4], gid: [5, 6, 7, 8], groups: vec![] };
        assert_eq!((c.fsuid(), c.fsgid()), (4, 8));
    }
}
