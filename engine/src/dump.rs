//! Dumping a decided process's fd table: each fd's decision turned into what restore needs
//! ([`crate::image::Restore`]), with the contents it saves read from duplicates taken through the pidfd the
//! scan holds, without changing the process. A process with a rejected fd, or an fd this backend cannot
//! carry out, is refused whole: nothing is captured, and the caller writes nothing.

use crate::facts::{ByteString, DevNum, FdFacts, FileType, SocketFacts};
use crate::image::{
    EpollWatch, FORMAT, FanotifyPath, Frozen, Identity, ImageFd, InotifyPath, Manifest, ProcessRecord, Restore, VERSION,
};
use crate::plan::{Decision, ProcessPlan};
use crate::proc::{capture, procnet};
use crrules_rules::Action;
use crrules_rules::vocab::{Kind, SockFamily, SockProto, SockState, SockType};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

pub use crate::proc::freeze::{SignalsHeld, Stopped};

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
    /// The process exited while it was dumped.
    #[error("the process exited while it was dumped")]
    Exited { pid: i32 },
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
    // Read by pid: only while the scanned process still runs can the pid not be another process's.
    let creds = capture::creds(pid);
    if !handle.is_running() {
        return Err(DumpError::Exited { pid });
    }
    let creds = creds.map_err(io("credentials"))?;
    // The duplicates of fds whose contents are saved are held until the end of the dump: room for them.
    let may_save = plan
        .fds
        .iter()
        .filter_map(|f| f.facts())
        .filter(|f| matches!(f.kind, Kind::Pipe | Kind::Fifo | Kind::Memfd | Kind::File | Kind::Socket))
        .count();
    let own = crate::proc::build::own_fds().map(|f| f.len()).unwrap_or(0);
    // As much as the limit allows: a duplicate that finds no number is an error naming its fd, and most fds
    // counted here save nothing.
    crate::proc::build::raise_fd_limit((own + may_save) as u64 + 64).map_err(io("room for duplicates"))?;
    let open: Vec<(&FdFacts, &Decision)> = plan.fds.iter().filter_map(|f| Some((f.facts()?, f.decision()?))).collect();
    let dups = dup_sources(pid, &open);
    // By open file, not by number (a pipe's write end held at two numbers is one end), and only what comes
    // back (an end the policy closes is not there to say anything for the other).
    let by_ino: HashMap<u64, Vec<i32>> = open
        .iter()
        .filter(|(f, d)| !dups.contains_key(&f.fd) && !matches!(d.action, Action::Close))
        .fold(HashMap::new(), |mut m, (f, _)| {
            if let Some(ino) = f.ino {
                m.entry(ino).or_default().push(f.fd);
            }
            m
        });
    // Every inode an fd of the process holds: a unix socket's peer held here, whatever is decided for it.
    let held_inodes: HashSet<u64> = open.iter().filter_map(|(f, _)| f.ino).collect();
    let mut ctx = Ctx {
        pid,
        pidfd: handle.pidfd(),
        by_ino: &by_ino,
        held_inodes: &held_inodes,
        data: Vec::new(),
        notes: Vec::new(),
        held: Vec::new(),
        piped: HashSet::new(),
        contents: HashMap::new(),
        copier: None,
        saved: HashMap::new(),
    };
    let mut fds = Vec::with_capacity(open.len());
    for (facts, decision) in &open {
        if let Some(&of) = dups.get(&facts.fd) {
            let restore = Restore::Dup { of };
            fds.push(ImageFd { fd: facts.fd, facts: (*facts).clone(), decision: (*decision).clone(), restore });
            continue;
        }
        let held = ctx.held.len();
        let restore = ctx.restore_of(facts, decision).map_err(|why| match handle.is_running() {
            true => DumpError::Fd {
                fd: facts.fd,
                kind: facts.kind,
                rule: decision.rule.clone().unwrap_or_else(|| crate::plan::NO_RULE.to_owned()),
                why,
            },
            false => DumpError::Exited { pid },
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
    // Every duplicate still shares its open file, in fd order: one that does not would come back as another
    // number of the wrong file.
    for f in &fds {
        let Restore::Dup { of } = f.restore else { continue };
        if crate::proc::peers::compare_files(pid, of, pid, f.fd).ok() == Some(std::cmp::Ordering::Equal) {
            continue;
        }
        if !handle.is_running() {
            return Err(DumpError::Exited { pid });
        }
        return Err(DumpError::Fd {
            fd: f.fd,
            kind: f.facts.kind,
            rule: f.decision.rule.clone().unwrap_or_else(|| crate::plan::NO_RULE.to_owned()),
            why: format!(
                "it no longer shares fd {of}'s open file: the process changed it while it was being dumped: run again, \
                 or dump with --freeze"
            ),
        });
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

/// Which fds of the dumped process `pid` come back as another number of an earlier fd's open file
/// ([`Restore::Dup`]): fd -> the fd it duplicates. `fds` are the process's open fds with their decisions,
/// in fd order, with `shared_with` (the fds holding the same open file description, found with `kcmp`).
///
/// The rule, for the fds of the process that share one open file description:
/// - An fd whose decision restores nothing (`close`; `reject`, which refuses the whole dump anyway) is left
///   out: it is never a duplicate and never duplicated from. `fd 1 => close` with fd 2 sharing its file
///   makes fd 2 the one that is dumped.
/// - The others are grouped by decision: fds with the same action and arguments (`reopen path` and
///   `reopen path`, `recreate` and `recreate`, `inherit "stdout"` and `inherit "stdout"`) come back as one
///   open file. The lowest is dumped by its decision, each later one is a `Dup` of it: its contents are
///   saved once, and restore duplicates whatever that lowest fd became (an `inherit`ed fd is the handed-in
///   fd at two numbers, as the process held one open file at two numbers).
/// - Fds with different decisions each follow their own: a rule that sends fd 2 of a `>log 2>&1` to
///   `reopen "/dev/null"`, or `inherit "stdout"` at fd 1 and `inherit "stderr"` at fd 2 over one pipe end,
///   get what each decision says, and those numbers no longer share an open file. The policy decides what
///   an fd becomes; sharing is kept only between fds it decided alike.
///
/// Only this process's own fds count: an open file shared with another process (a fork's parent) is
/// brought back once for this process's numbers, as its own.
pub fn dup_sources(pid: i32, fds: &[(&FdFacts, &Decision)]) -> HashMap<i32, i32> {
    let restores = |d: &Decision| !matches!(d.action, Action::Close | Action::Reject { .. });
    let decided: HashMap<i32, &Decision> = fds.iter().map(|(f, d)| (f.fd, *d)).collect();
    let mut out = HashMap::new();
    for (f, d) in fds {
        if !restores(d) {
            continue;
        }
        let first = f
            .shared_with
            .iter()
            .filter(|r| r.pid == pid && r.fd < f.fd)
            .filter(|r| decided.get(&r.fd).is_some_and(|other| restores(other) && other.action == d.action))
            .map(|r| r.fd)
            .min();
        if let Some(of) = first {
            out.insert(f.fd, of);
        }
    }
    out
}

/// The state of one dump under way.
struct Ctx<'a> {
    pid: i32,
    pidfd: std::os::fd::BorrowedFd<'a>,
    /// Inode -> the fds holding it that come back (both ends of a pipe), one per open file.
    by_ino: &'a HashMap<u64, Vec<i32>>,
    /// Every inode an fd of the process holds (a unix socket's peer).
    held_inodes: &'a HashSet<u64>,
    data: Vec<(String, Vec<u8>)>,
    notes: Vec<String>,
    /// Duplicates taken, kept until the end to compare with the process's fds.
    held: Vec<(i32, OwnedFd)>,
    /// Pipes and FIFOs whose bytes were saved already (by inode).
    piped: HashSet<u64>,
    /// Saved bytes by their hash: indices into `data`.
    saved: HashMap<u64, Vec<usize>>,
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
pub fn reopen_of(f: &FdFacts, exact: bool, substitute: Option<&str>) -> Result<Restore, String> {
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
    let same = if exact { exact_identity(f)? } else { Identity::default() };
    Ok(Restore::Open {
        path,
        flags: open_flags(f),
        pos: f.pos.unwrap_or(0),
        expect: Identity {
            file_type: f.file_type,
            dev: f.dev.filter(|_| matches!(f.file_type, Some(FileType::Char | FileType::Block))),
            ..same
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
        let dup = checked_duplicate(self.pidfd, f)?;
        self.held.push((f.fd, dup));
        Ok(self.held.len() - 1)
    }

    /// Records `bytes` as the data file `name`, or as the data file that already holds the same bytes (a
    /// thousand empty memfds are one empty data file: an image is written faster with fewer files).
    fn save(&mut self, name: String, bytes: Vec<u8>) -> String {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(&bytes);
        let same = self.saved.get(&hash).into_iter().flatten().find(|&&i| self.data[i].1 == bytes);
        let index = match same {
            Some(&i) => i,
            None => {
                self.data.push((name, bytes));
                self.saved.entry(hash).or_default().push(self.data.len() - 1);
                self.data.len() - 1
            }
        };
        format!("{}/{}", crate::image::DATA_DIR, self.data[index].0)
    }

    fn restore_of(&mut self, f: &FdFacts, d: &Decision) -> Result<Restore, String> {
        Ok(match &d.action {
            // A FIFO reopened by path comes back with the bytes it buffered (what the default policy's
            // reason promises): the same restore as `recreate`, held to the very FIFO when `exact`.
            Action::ReopenPath { exact } if f.kind == Kind::Fifo && !f.deleted => {
                let mut restore = self.recreate(f)?;
                if let (Restore::Fifo { expect, .. }, true) = (&mut restore, *exact) {
                    *expect = exact_identity(f)?;
                }
                restore
            }
            Action::ReopenPath { exact } => reopen_of(f, *exact, None)?,
            Action::ReopenSubst { path } => reopen_of(f, false, Some(path))?,
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
        if let Some(Restore::Contents { data, file, size, mode, memfd, name, seals, .. }) =
            self.contents.get(&key).filter(|_| f.ino.is_some())
        {
            return Ok(Restore::Contents {
                data: data.clone(),
                file: *file,
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
            file: f.ino.unwrap_or(f.fd as u64),
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
                let id = f.ino.unwrap_or(0);
                let mut data = None;
                if readable(f) && self.piped.insert(id) {
                    let i = self.take_duplicate(f)?;
                    let bytes = copy_pipe(&mut self.copier, self.held[i].1.as_fd())?;
                    if !bytes.is_empty() {
                        data = Some(self.save(format!("{}-fifo", f.fd), bytes));
                    }
                }
                if !f.deleted {
                    return Ok(Restore::Fifo { path, flags: open_flags(f), data, expect: Identity::default() });
                }
                // No name leads to it: a new FIFO, which the process's other fds of this one share.
                let ino = f.ino.ok_or("a FIFO without an inode")?;
                if !readable(f) && self.by_ino.get(&ino).map_or(1, Vec::len) == 1 {
                    self.notes.push(format!(
                        "fd {}: the deleted FIFO's read end is not in the process: its bytes, if any, are not saved",
                        f.fd
                    ));
                }
                Ok(Restore::DeletedFifo { dev: f.st_dev, ino, path, flags: open_flags(f), data })
            }
            Kind::Dir if f.deleted => Ok(Restore::DeletedDir {
                dev: f.st_dev,
                ino: f.ino.ok_or("a directory without an inode")?,
                path: f.path.clone().ok_or("a directory without a path")?,
                flags: open_flags(f),
            }),
            Kind::Dir => {
                Err("a directory that still has a name is reopened by path (`reopen path`), not recreated".into())
            }
            Kind::Pidfd => self.pidfd(f),
            Kind::Fanotify => self.fanotify(f),
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
            let path = path.map_err(|why| unresolved(&format!("wd {}", w.wd), Noun::Watch, w.ino, w.dev(), why))?;
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
        match s.family {
            Some(family @ (SockFamily::Inet | SockFamily::Inet6)) => return self.inet(f, s, family),
            Some(SockFamily::Netlink) => return self.netlink(f, s),
            Some(SockFamily::Packet) => return self.packet(f, s),
            _ => {}
        }
        let ty = s.sock_type.ok_or("the socket's type is unknown")?;
        match s.family {
            Some(SockFamily::Unix) => {
                let ino = f.ino.ok_or("a socket without an inode")?;
                let peer = unix_peer(s, ty, |p| self.held_inodes.contains(&p))?;
                if let UnixPeer::Named(peer) = peer {
                    // Whose socket file it is: a restore connects only to root's, the user's, or this one's.
                    let owner = match peer.as_bytes().first() {
                        Some(b'/') => Some(
                            capture::socket_file_owner(self.pid, peer.as_bytes())
                                .map_err(|e| format!("cannot stat its peer's socket file `{peer}`: {e}"))?,
                        ),
                        _ => None,
                    };
                    return Ok(Restore::UnixConnect { peer, flags: open_flags(f), owner });
                }
                let peer_closed = peer == UnixPeer::Closed;
                if let (true, Some(name)) = (peer_closed, &s.local) {
                    self.notes.push(format!(
                        "fd {}: the socket's name `{name}` is not given back: the socket rebuilt for a closed peer has \
                         none",
                        f.fd
                    ));
                }
                let mut data = None;
                if s.rqueue.unwrap_or(0) > 0 {
                    let dup = self.duplicate(f)?;
                    let stream = ty == SockType::Stream;
                    // Shut down for reading (the kernel's mask: 1): by a peer that closed, or that shut
                    // its sending side down while still held.
                    let read_shut = peer_closed || s.shutdown.is_some_and(|mask| mask & 1 != 0);
                    let seqpacket_eof = read_shut && ty == SockType::Seqpacket;
                    let messages = capture::queued_messages(dup, stream, seqpacket_eof)
                        .map_err(|e| format!("cannot copy its queue: {e}"))?;
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
                    pair: match peer {
                        UnixPeer::Here(peer) => ino.min(peer),
                        UnixPeer::Closed | UnixPeer::Named(_) => ino,
                    },
                    ino,
                    sock_type: ty.name().to_owned(),
                    flags: open_flags(f),
                    data,
                    peer_closed,
                })
            }
            other => Err(format!(
                "the fd-table backend cannot recreate a {} socket",
                other.map_or("socket of unknown family", |f| f.name())
            )),
        }
    }

    /// What a socket that no table listed says of itself, through a duplicate (and a note saying so).
    fn ask(&mut self, f: &FdFacts) -> Result<capture::SocketSelf, String> {
        let dup = self.duplicate(f)?;
        let me = capture::ask_socket(dup).map_err(|e| format!("cannot ask the socket itself: {e}"))?;
        self.notes.push(format!(
            "fd {}: neither sock_diag nor /proc/PID/net listed the socket (unbound, reset, or in a network namespace \
             the dump could not join), so a duplicate was taken to ask the socket itself (see FACTS: a received \
             socket's cgroup labels)",
            f.fd
        ));
        Ok(me)
    }

    /// An inet socket. A listening TCP socket and a bound, unconnected UDP socket are bound again as they
    /// were ([`Restore::Inet`]); any other TCP, UDP, UDP-Lite, ping or raw socket is made again, bound and
    /// connected as it was ([`Restore::Socket`]), except a TCP connection, which only TCP repair brings
    /// back. A socket no table listed is asked itself: an unlisted socket is not known to be unbound.
    fn inet(&mut self, f: &FdFacts, s: &SocketFacts, family: SockFamily) -> Result<Restore, String> {
        let proto = s.protocol.unwrap_or(SockProto::Other);
        if !matches!(proto, SockProto::Tcp | SockProto::Udp | SockProto::Udplite | SockProto::Icmp | SockProto::Raw) {
            return Err(format!("the fd-table backend cannot recreate a {} socket", proto.name()));
        }
        let parse = |a: &Option<ByteString>| -> Result<Option<SocketAddr>, String> {
            a.as_ref()
                .map(|a| a.to_str().and_then(|t| t.parse().ok()).ok_or_else(|| format!("`{a}` is not an address")))
                .transpose()
        };
        let listed = s.state.is_some() || s.local.is_some();
        let (ty, number, state, local, peer) = if listed {
            let ty = s.sock_type.ok_or("the socket's type is unknown")?;
            let number =
                s.protocol_number.map(i32::from).or_else(|| procnet::protocol_number(family, proto).map(i32::from));
            (ty, number, s.state, parse(&s.local)?, parse(&s.peer)?)
        } else {
            let me = self.ask(f)?;
            let ty = u16::try_from(me.sock_type).ok().and_then(SockType::from_number);
            let ty = ty.ok_or_else(|| format!("the socket's type {} is unknown", me.sock_type))?;
            (ty, Some(me.protocol), me.tcp_state.and_then(SockState::from_tcp), me.local, me.peer)
        };
        let protocol = number.ok_or_else(|| format!("the {} socket's protocol number is unknown", proto.name()))?;
        if ty == SockType::Stream {
            match state {
                Some(SockState::Listen) => {
                    let addr = local.ok_or("a listening socket without a local address")?;
                    return Ok(Restore::Inet {
                        family: family.name().to_owned(),
                        sock_type: ty.name().to_owned(),
                        addr: addr.to_string(),
                        listen: true,
                        backlog: if listed { s.wqueue.unwrap_or(128) } else { 128 },
                        flags: open_flags(f),
                    });
                }
                None | Some(SockState::Close) => {}
                Some(state) => {
                    return Err(format!(
                        "a TCP connection ({}) needs TCP repair, which the fd-table backend does not do: use CRIU with \
                         --tcp-established",
                        state.name()
                    ));
                }
            }
        }
        // A raw socket's local port is its protocol: it is bound only to an address. An unlisted TCP socket
        // is not bound (sock_diag lists bound ones, also those neither listening nor connected): the name
        // it gives is what a reset or closed connection left.
        let local = local.filter(|_| listed || ty != SockType::Stream);
        let bound = local.filter(|a| if ty == SockType::Raw { !a.ip().is_unspecified() } else { a.port() != 0 });
        let peer = peer.filter(|_| ty != SockType::Stream);
        if let Some(q) = s.rqueue.filter(|&q| q > 0 && ty != SockType::Stream) {
            self.notes.push(format!("fd {}: the {q} bytes waiting to be read on the socket are dropped", f.fd));
        }
        if proto == SockProto::Udp && peer.is_none() && ty == SockType::Dgram {
            if let Some(addr) = bound {
                return Ok(Restore::Inet {
                    family: family.name().to_owned(),
                    sock_type: ty.name().to_owned(),
                    addr: addr.to_string(),
                    listen: false,
                    backlog: 128,
                    flags: open_flags(f),
                });
            }
        }
        Ok(Restore::Socket {
            family: family.name().to_owned(),
            sock_type: ty.name().to_owned(),
            protocol,
            bound: bound.map(|a| a.to_string()),
            peer: peer.map(|a| a.to_string()),
            flags: open_flags(f),
        })
    }

    /// A netlink socket: its type and netlink family, whether it was bound (the port id is the kernel's to
    /// choose again), its multicast groups and the port id it is connected to. sock_diag lists every bound
    /// netlink socket and every one in a group: an unlisted one is asked itself.
    fn netlink(&mut self, f: &FdFacts, s: &SocketFacts) -> Result<Restore, String> {
        let port =
            |a: &Option<ByteString>| a.as_ref().and_then(|p| p.to_str()?.parse::<u32>().ok()).filter(|&p| p != 0);
        let (ty, protocol, bound, groups, peer) = match (s.sock_type, s.protocol_number) {
            (Some(ty), Some(number)) => (ty, i32::from(number), port(&s.local), s.groups.clone(), port(&s.peer)),
            _ => {
                let me = self.ask(f)?;
                let ty = u16::try_from(me.sock_type).ok().and_then(SockType::from_number);
                let ty = ty.ok_or_else(|| format!("the socket's type {} is unknown", me.sock_type))?;
                (ty, me.protocol, me.nl_pid.filter(|&p| p != 0), me.groups, me.nl_peer)
            }
        };
        if let Some(was) = bound {
            self.notes.push(format!(
                "fd {}: the netlink socket was bound as port id {was}; at restore the kernel chooses its port id \
                 again, which may differ",
                f.fd
            ));
        }
        if let Some(q) = s.rqueue.filter(|&q| q > 0) {
            self.notes.push(format!("fd {}: the {q} bytes of netlink messages waiting to be read are dropped", f.fd));
        }
        Ok(Restore::Netlink {
            sock_type: ty.name().to_owned(),
            protocol,
            bound: bound.is_some(),
            groups,
            peer,
            flags: open_flags(f),
        })
    }

    /// A packet socket: its type, protocol (the ethertype) and the interface it is bound to. Its options
    /// (`PACKET_VERSION`, rings, fanout, memberships) are not kept.
    fn packet(&mut self, f: &FdFacts, s: &SocketFacts) -> Result<Restore, String> {
        let (ty, protocol, ifindex) = match (s.sock_type, s.protocol_number) {
            (Some(ty), Some(number)) => (ty, number, s.ifindex),
            _ => {
                let me = self.ask(f)?;
                let ty = u16::try_from(me.sock_type).ok().and_then(SockType::from_number);
                let ty = ty.ok_or_else(|| format!("the socket's type {} is unknown", me.sock_type))?;
                let protocol =
                    u16::try_from(me.protocol).map_err(|_| format!("protocol {} is no ethertype", me.protocol))?;
                (ty, protocol, me.ifindex.filter(|&i| i != 0))
            }
        };
        if !matches!(ty, SockType::Raw | SockType::Dgram) {
            return Err(format!("a packet socket of type {} cannot be made again", ty.name()));
        }
        Ok(Restore::Packet { sock_type: ty.name().to_owned(), protocol, ifindex, flags: open_flags(f) })
    }

    /// A pidfd: only one on the dumped process itself comes back (as one on the restored process, which
    /// keeps its restore's pid); the process another pidfd names is not in the checkpoint.
    fn pidfd(&mut self, f: &FdFacts) -> Result<Restore, String> {
        let target = f.pidfd_pid.ok_or("no pidfd target was read")?;
        if target == -1 {
            return Err("the pidfd's process has exited: no process can be named by it again".into());
        }
        if target != self.pid {
            let own_thread = std::path::Path::new(&format!("/proc/{}/task/{target}", self.pid)).exists();
            return Err(if own_thread {
                format!("the pidfd names thread {target} of the process, which a restore cannot give back")
            } else {
                format!("the pidfd's process {target} is not in the checkpoint")
            });
        }
        Ok(Restore::Pidfd { flags: open_flags(f) })
    }

    /// A fanotify group: its `fanotify_init` flags and its marks, each resolved to a path in the process's
    /// view: an inode mark's inode through its file handle (as inotify watches are), a mount mark's mount
    /// by its id in the process's mountinfo, a filesystem mark by a mount of that filesystem. The marks are
    /// read again from a duplicate: one added or removed since the scan would otherwise be lost or brought
    /// back.
    fn fanotify(&mut self, f: &FdFacts) -> Result<Restore, String> {
        let group = f.fanotify.clone().ok_or("no fanotify marks were read")?;
        let dup = self.duplicate(f)?;
        let now = capture::fanotify_group(dup).map_err(|e| format!("cannot read its marks again: {e}"))?;
        if now.as_ref() != Some(&group) {
            return Err("its marks changed while it was being dumped: run again, or dump with --freeze".into());
        }
        let handles: Vec<Option<(i32, Vec<u8>)>> =
            group.marks.iter().map(|m| m.fhandle.as_ref().and_then(|h| Some((h.handle_type, h.decode()?)))).collect();
        let mut inodes = Vec::new();
        for (i, (m, handle)) in group.marks.iter().zip(&handles).enumerate() {
            if m.target != "inode" {
                continue;
            }
            let (Some((handle_type, bytes)), Some(ino), Some(dev)) = (handle, m.ino, m.dev()) else {
                return Err(format!(
                    "mark {}: the kernel shows no file handle for the marked file (its filesystem gives none), so it \
                     cannot be resolved to a path",
                    i + 1
                ));
            };
            inodes.push((i, capture::Handled { ino, dev, handle_type: *handle_type, handle: bytes }));
        }
        let targets: Vec<capture::Handled<'_>> = inodes.iter().map(|(_, h)| *h).collect();
        let mut resolved = capture::handle_paths(self.pid, &targets)
            .map_err(|e| format!("cannot resolve its marks to paths: {e}"))?
            .into_iter();
        let mut marks = Vec::with_capacity(group.marks.len());
        for (i, m) in group.marks.iter().enumerate() {
            let label = format!("mark {}", i + 1);
            let path = match m.target.as_str() {
                "inode" => {
                    let path = resolved.next().ok_or("a mark's path is missing")?;
                    let (ino, dev) = (m.ino.unwrap_or(0), m.dev().unwrap_or(DevNum { major: 0, minor: 0 }));
                    path.map_err(|why| unresolved(&label, Noun::Mark, ino, dev, why))?
                }
                "mount" => {
                    let id = m.mnt_id.ok_or_else(|| format!("{label}: a mount mark without a mount id"))?;
                    capture::mount_point(self.pid, capture::MountOf::Id(id))
                        .map_err(|e| format!("{label}: cannot read the process's mounts: {e}"))?
                        .ok_or_else(|| {
                            format!("{label}: mount {id} is not one the process can reach by a path (gone, or hidden)")
                        })?
                }
                "filesystem" => {
                    let dev = m.dev().ok_or_else(|| format!("{label}: a filesystem mark without a device"))?;
                    capture::mount_point(self.pid, capture::MountOf::Dev(dev))
                        .map_err(|e| format!("{label}: cannot read the process's mounts: {e}"))?
                        .ok_or_else(|| {
                            format!("{label}: no mount of the process holds the marked filesystem ({dev})")
                        })?
                }
                other => {
                    return Err(format!("{label}: a mark on a {other} cannot be added again by path"));
                }
            };
            marks.push(FanotifyPath {
                target: m.target.clone(),
                path: ByteString::from(path),
                mask: m.mask,
                ignored_mask: m.ignored_mask,
                mflags: m.mflags.unwrap_or(0),
            });
        }
        Ok(Restore::Fanotify { init_flags: group.flags, event_flags: group.event_flags, marks, flags: open_flags(f) })
    }
}

/// Where the peer of a unix socket the fd-table backend recreates is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum UnixPeer {
    /// An fd of the process holds it (its inode): both ends come back as one pair.
    Here(u64),
    /// No process holds it any more: the socket comes back with what the peer left queued, then nothing.
    Closed,
    /// A datagram socket's peer, alive outside the process and bound to this name: connected to it again.
    Named(ByteString),
}

/// Where the peer of unix socket `s` of type `ty` is, from what the kernel said of it (sock_diag), `here`
/// telling whether an fd of the process holds an inode. A peer inode that no fd here holds is alive
/// elsewhere (another process, or in flight): refused. A connected socket the kernel names no peer inode
/// for has a peer that was released, except a stream or seqpacket connection a listener has not accepted
/// yet (its peer has no inode until then): the kernel shuts a stream or seqpacket socket down both ways
/// when its peer closes, and only then is it taken as closed. Unconnected and listening sockets are
/// refused: nothing here makes them again.
fn unix_peer(s: &SocketFacts, ty: SockType, here: impl Fn(u64) -> bool) -> Result<UnixPeer, String> {
    const BOTH_WAYS: u8 = 3;
    if let Some(peer) = s.peer_ino {
        if here(peer) {
            return Ok(UnixPeer::Here(peer));
        }
        if ty != SockType::Dgram {
            return Err("its peer is not in this process: the fd-table backend recreates unix socket pairs inside \
                        the process only (hand an outside peer in with `inherit`)"
                .into());
        }
        return dgram_peer_outside(s);
    }
    match (ty, s.state, s.shutdown) {
        (SockType::Stream | SockType::Seqpacket, Some(SockState::Established), Some(BOTH_WAYS)) => Ok(UnixPeer::Closed),
        (SockType::Stream | SockType::Seqpacket, Some(SockState::Established), _) => Err(
            "it is connected, but its peer has no inode and the kernel has not shut it down (a connection a listener \
             has not accepted yet): a connection cannot be rebuilt from one side"
                .into(),
        ),
        (SockType::Dgram, Some(SockState::Established), _) => Ok(UnixPeer::Closed),
        (_, Some(SockState::Listen), _) => {
            Err("a listening unix socket: the fd-table backend does not bind and listen on it again".into())
        }
        (_, Some(_), _) => Err("it is not connected: the fd-table backend recreates unix sockets connected to a \
                                peer in the process, or to one that closed"
            .into()),
        (_, None, _) => Err("sock_diag did not list it, so whether it has a peer is not known".into()),
    }
}

/// A datagram socket connected to a peer outside the process comes back connected to the peer's name, when
/// the peer has one a restore can reach (an absolute path, or an abstract name), the socket has no name of
/// its own (binding it again would find its old path taken) and nothing waits to be read (a connected
/// datagram socket accepts messages from its peer only: they could not be queued again as the peer's).
fn dgram_peer_outside(s: &SocketFacts) -> Result<UnixPeer, String> {
    let name = match &s.peer {
        Some(name) if name.as_bytes().starts_with(b"/") || name.as_bytes().starts_with(b"@") => name.clone(),
        Some(name) => {
            return Err(format!(
                "its peer outside the process is bound to the relative path `{name}`, which a restore elsewhere \
                 cannot find"
            ));
        }
        None => {
            return Err(
                "its peer outside the process has no name to connect to again: hand it in with `inherit`".into()
            );
        }
    };
    if let Some(own) = &s.local {
        return Err(format!(
            "it is bound to `{own}` as well as connected: the fd-table backend connects a datagram socket again, but \
             does not bind it to a name its old socket may still hold"
        ));
    }
    if s.rqueue.unwrap_or(0) > 0 {
        return Err("datagrams from its peer are waiting to be read: a socket connected again cannot receive them \
                    as its peer's; read them, or retry"
            .into());
    }
    Ok(UnixPeer::Named(name))
}

/// What `reopen path exact` holds a restore to: the very file the scan saw (its filesystem's device and its
/// inode) and, for a regular file, its size then.
fn exact_identity(f: &FdFacts) -> Result<Identity, String> {
    let (Some(st_dev), Some(ino)) = (f.st_dev, f.ino) else {
        return Err("`reopen path exact` needs the file's device and inode, which the scan did not read".into());
    };
    let size = match f.file_type {
        Some(FileType::Regular) => {
            Some(f.size.ok_or("`reopen path exact` needs the file's size, which the scan did not read")?)
        }
        _ => None,
    };
    Ok(Identity { inode: Some((st_dev, ino)), size, ..Identity::default() })
}

/// True when the restore reads a data file the dump wrote.
fn saves_data(r: &Restore) -> bool {
    match r {
        Restore::Contents { .. } => true,
        Restore::Pipe { data, .. }
        | Restore::Fifo { data, .. }
        | Restore::DeletedFifo { data, .. }
        | Restore::UnixPair { data, .. } => data.is_some(),
        _ => false,
    }
}

/// The bits of a watch's mask, as fdinfo shows it, that `inotify_add_watch` takes back: the events, and the
/// two flags the kernel keeps with the watch and shows (`IN_EXCL_UNLINK`, `IN_ONESHOT`). `IN_ONLYDIR`,
/// `IN_DONT_FOLLOW`, `IN_MASK_ADD` and `IN_MASK_CREATE` only steer the call that adds a watch and are not
/// shown (measured on 6.18). Any other bit a kernel may print (its internal ones, such as 0x08000000 for
/// events on a directory's children) is no watch flag, and `inotify_add_watch` would refuse it: left out.
const WATCH_BITS: u32 = libc::IN_ALL_EVENTS | libc::IN_EXCL_UNLINK | libc::IN_ONESHOT;

/// An inotify watch or a fanotify mark, as messages name them.
#[derive(Clone, Copy)]
enum Noun {
    Watch,
    Mark,
}

impl Noun {
    /// (`watch`, `watched`) or (`mark`, `marked`).
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Noun::Watch => ("watch", "watched"),
            Noun::Mark => ("mark", "marked"),
        }
    }
}

/// What to say about a watch or mark (`label`: `wd 3`, `mark 2`) on inode `ino` of `dev` that has no path.
fn unresolved(label: &str, noun: Noun, ino: u64, dev: DevNum, why: capture::Unresolved) -> String {
    let (noun, done) = noun.words();
    match why {
        capture::Unresolved::Deleted => {
            format!("{label}: a {noun} on a deleted file cannot be re-added by path (inode {ino})")
        }
        capture::Unresolved::NoMount => {
            format!("{label}: no mount of the process holds the {done} file's filesystem ({dev}), so it has no path")
        }
        capture::Unresolved::NoPath => format!(
            "{label}: no path in the process's view names the {done} file (inode {ino} on {dev}): it cannot be \
             re-added by path"
        ),
        capture::Unresolved::Io("open_by_handle_at", e) if e.raw_os_error() == Some(libc::EPERM) => format!(
            "{label}: opening the {done} file by its handle needs CAP_DAC_READ_SEARCH (run the dump as root): {e}"
        ),
        capture::Unresolved::Io(what, e) => format!("{label}: cannot resolve the {done} file to a path: {what}: {e}"),
    }
}

/// What a hand-over found at an fd's number when it took its duplicate.
#[derive(Debug)]
pub enum Taken {
    /// The file the fd was read as.
    Same(OwnedFd),
    /// Nothing: the process closed the fd since it was read.
    Closed,
    /// Another file: the process closed the fd and opened another at its number since it was read.
    Other(OwnedFd),
}

/// A duplicate of the fd `f` describes, taken from the process `handle` holds (for a hand-over), compared
/// with the file the fd was read as (its inode, and its device where the scan read it). An error when the
/// process could not be asked (it exited).
pub fn duplicate_of(handle: &crate::scan::ProcessHandle, f: &FdFacts) -> Result<Taken, String> {
    let dup = match capture::duplicate(handle.pidfd(), f.fd) {
        Ok(dup) => dup,
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Ok(Taken::Closed),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err("the process exited".to_owned()),
        Err(e) => return Err(format!("cannot take a duplicate: {e}")),
    };
    Ok(if same_file(f, dup.as_fd())? { Taken::Same(dup) } else { Taken::Other(dup) })
}

/// The facts of a duplicate taken for a hand-over that names another file than the fd `was` was read as
/// ([`Taken::Other`]): read from the duplicate as a scan reads an fd (without the links to other fds that a
/// scan of the whole process adds), with `was`'s fd number and close-on-exec flag, so that the policy can
/// decide on the file the process now holds there.
pub fn facts_of_replaced(dup: std::os::fd::BorrowedFd<'_>, was: &FdFacts) -> Result<FdFacts, String> {
    let mut now = crate::scan::facts_of_own_fd(dup).map_err(|e| e.to_string())?;
    let cloexec = libc::O_CLOEXEC as u32;
    now.fd = was.fd;
    now.cloexec = was.cloexec;
    now.flags.0 = (now.flags.0 & !cloexec) | (was.flags.0 & cloexec);
    Ok(now)
}

/// True when `dup` is the file `f` was read as: the same inode, and the same device where the scan read it.
fn same_file(f: &FdFacts, dup: std::os::fd::BorrowedFd<'_>) -> Result<bool, String> {
    let (dev, ino, _) = capture::identity(dup).map_err(|e| e.to_string())?;
    Ok(f.ino == Some(ino) && f.st_dev.is_none_or(|d| d == DevNum::from_dev_t(dev)))
}

/// A duplicate of fd `f.fd` through `pidfd`, which must be the file the scan saw: the same inode, and the
/// same device where the scan read it.
fn checked_duplicate(pidfd: std::os::fd::BorrowedFd<'_>, f: &FdFacts) -> Result<OwnedFd, String> {
    let dup = capture::duplicate(pidfd, f.fd).map_err(|e| format!("cannot take a duplicate: {e}"))?;
    if !same_file(f, dup.as_fd())? {
        return Err("the fd names another file than when it was checked: run again".into());
    }
    Ok(dup)
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

    /// What sock_diag says of a unix socket: its type, state, peer inode and shutdown mask.
    fn unix(ty: SockType, state: Option<SockState>, peer_ino: Option<u64>, shutdown: Option<u8>) -> SocketFacts {
        SocketFacts {
            family: Some(SockFamily::Unix),
            sock_type: Some(ty),
            state,
            peer_ino,
            shutdown,
            ..SocketFacts::default()
        }
    }

    #[test]
    fn a_unix_peer_is_here_closed_or_refused_by_what_the_kernel_says() {
        use SockState::{Close, Established, Listen};
        use SockType::{Dgram, Seqpacket, Stream};
        let here = |p: u64| p == 7;
        let peer = |ty, state, ino, shutdown| unix_peer(&unix(ty, state, ino, shutdown), ty, here);
        assert_eq!(peer(Stream, Some(Established), Some(7), None), Ok(UnixPeer::Here(7)));
        // Closed: a connected stream or seqpacket socket with no peer inode, shut down both ways; a connected
        // datagram socket with no peer inode.
        assert_eq!(peer(Stream, Some(Established), None, Some(3)), Ok(UnixPeer::Closed));
        assert_eq!(peer(Seqpacket, Some(Established), None, Some(3)), Ok(UnixPeer::Closed));
        assert_eq!(peer(Dgram, Some(Established), None, None), Ok(UnixPeer::Closed));
        // A live peer held elsewhere keeps its message, shut down or not.
        for shutdown in [None, Some(3)] {
            let why = peer(Stream, Some(Established), Some(8), shutdown).unwrap_err();
            assert!(why.starts_with("its peer is not in this process: "), "{why}");
        }
        // No peer inode but not shut down (or shut down one way only): a connection not accepted yet.
        for shutdown in [None, Some(1), Some(2)] {
            let why = peer(Stream, Some(Established), None, shutdown).unwrap_err();
            assert!(why.contains("not accepted yet"), "{why}");
        }
        assert!(peer(Stream, Some(Listen), None, None).unwrap_err().contains("listening"));
        for ty in [Stream, Dgram] {
            assert!(peer(ty, Some(Close), None, None).unwrap_err().contains("not connected"));
        }
        // Facts without sock_diag's (from /proc/net/unix, say): no guess.
        assert!(peer(Stream, None, None, None).unwrap_err().contains("sock_diag did not list it"));
    }

    /// A datagram socket whose peer is alive outside comes back connected to the peer's name when it can: an
    /// absolute path or an abstract name, no name of its own, nothing queued; refused otherwise, saying why.
    #[test]
    fn a_datagram_peer_outside_is_connected_again_by_its_name() {
        let here = |p: u64| p == 7;
        let named = |peer: Option<&str>, local: Option<&str>, rqueue: u32| {
            let mut s = unix(SockType::Dgram, Some(SockState::Established), Some(9), None);
            s.peer = peer.map(ByteString::from);
            s.local = local.map(ByteString::from);
            s.rqueue = Some(rqueue);
            unix_peer(&s, SockType::Dgram, here)
        };
        assert_eq!(named(Some("/dev/log"), None, 0), Ok(UnixPeer::Named("/dev/log".into())));
        assert_eq!(named(Some("@journal\0x"), None, 0), Ok(UnixPeer::Named("@journal\0x".into())));
        let refused = |peer, local, rqueue, says: &str| {
            let why = named(peer, local, rqueue).unwrap_err();
            assert!(why.contains(says), "{why}");
        };
        refused(Some("run/log"), None, 0, "relative path `run/log`");
        refused(None, None, 0, "no name to connect to again");
        refused(Some("/dev/log"), Some("/tmp/me"), 0, "bound to `/tmp/me` as well");
        refused(Some("/dev/log"), None, 12, "waiting to be read");
        // A stream connection to a process outside stays refused: it cannot be rebuilt from one side.
        let mut s = unix(SockType::Stream, Some(SockState::Established), Some(9), None);
        s.peer = Some("/run/daemon.sock".into());
        assert!(unix_peer(&s, SockType::Stream, here).unwrap_err().starts_with("its peer is not in this process"));
    }

    /// The rule of [`dup_sources`]: fds of one open file decided alike come back as duplicates of the
    /// lowest; an fd left closed is never one, nor the source of one; different decisions each stand.
    #[test]
    fn fds_of_one_open_file_are_dups_of_the_lowest_decided_alike() {
        use crate::facts::FdRef;
        let decide = |action: Action| Decision { action, rule: None, note: None };
        let reopen = decide(Action::ReopenPath { exact: false });
        let close = decide(Action::Close);
        let stdout = decide(Action::Inherit { name: "stdout".into() });
        let stderr = decide(Action::Inherit { name: "stderr".into() });
        let subst = decide(Action::ReopenSubst { path: "/dev/null".into() });
        // (fd, the fds of this process and of pid 9 it shares its open file with, its decision)
        let table: [(i32, &[i32], &[i32], &Decision); 10] = [
            // A log at 1, 2 and 5; fd 1 closed by its rule: 2 is dumped, 5 duplicates it.
            (1, &[2, 5], &[], &close),
            (2, &[1, 5], &[], &reopen),
            (5, &[1, 2], &[4], &reopen),
            // A pipe end handed in at 3 (`stdout`) and 6 (`stdout`), and 7 (`stderr`).
            (3, &[6, 7], &[], &stdout),
            (6, &[3, 7], &[], &stdout),
            (7, &[3, 6], &[], &stderr),
            // A file at 8 and 9, the second sent to /dev/null; a file held by another process too.
            (8, &[9], &[], &reopen),
            (9, &[8], &[], &subst),
            (10, &[], &[3], &reopen),
            // Held at one number.
            (11, &[], &[], &reopen),
        ];
        let facts: Vec<FdFacts> = table
            .iter()
            .map(|&(fd, here, there, _)| {
                let mut f = FdFacts::new(fd, Kind::File, "/log");
                f.shared_with = here.iter().map(|&fd| FdRef { pid: 4, fd }).collect();
                f.shared_with.extend(there.iter().map(|&fd| FdRef { pid: 9, fd }));
                f
            })
            .collect();
        let fds: Vec<(&FdFacts, &Decision)> = facts.iter().zip(table.iter().map(|t| t.3)).collect();
        let mut dups: Vec<(i32, i32)> = dup_sources(4, &fds).into_iter().collect();
        dups.sort_unstable();
        assert_eq!(dups, [(5, 2), (6, 3)]);
    }

    #[test]
    fn creds_accessors() {
        let c = Creds { uid: [1, 2, 3, 4], gid: [5, 6, 7, 8], groups: vec![] };
        assert_eq!((c.fsuid(), c.fsgid()), (4, 8));
    }
}
