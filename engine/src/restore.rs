//! Restoring an fd table in this process, all or nothing: [`prepare`] brings back every fd of an image
//! (or, for a hand-over, takes every fd of a live process) in fd order, verifying each, and puts it at its
//! number at once unless that number is one of this process's own open fds (stdin, stdout, stderr, an
//! fd handed in); those wait. An object the kernel made at a number a later fd needs (the other end of a
//! pipe, waiting for its own number) is moved out of the way when that number's turn comes, so a table of
//! N fds needs about N numbers, not 2N. An fd that was another number of an earlier fd's open file
//! ([`Restore::Dup`]) is a duplicate of whatever that fd became, so the two share one offset, one set of
//! status flags and one object again. Only when every fd succeeded does [`Prepared::install`] put the
//! waiting ones over this process's own, close everything else, and re-add epoll targets. The caller then
//! execs the command: if anything failed before, the command never runs.
//!
//! Opens are made with the filesystem credentials of the image's process when crrules runs as root for an
//! image of another user, so an image can never make a root restore open what its process could not.

use crate::dump::decode_messages;
use crate::facts::{ByteString, DevNum, FileType};
use crate::image::{EpollWatch, FanotifyPath, Identity, ImageFd, InotifyPath, Manifest, Restore};
use crate::proc::build::{self, FsCreds};
use crrules_rules::vocab::Kind;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Why a restore failed; nothing was installed and the command does not run.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// One fd could not be brought back as its rule said.
    #[error("fd {fd} ({kind}, rule {rule}): {why}")]
    Fd { fd: i32, kind: String, rule: String, why: String },
    /// Something outside any one fd.
    #[error("{0}")]
    Other(String),
}

/// The most throwaway watches one inotify instance's restore adds to reach its highest wd (about 6 us each,
/// measured: under two seconds).
const MAX_SPARE_WATCHES: i64 = 1 << 18;

/// The names `inherit` gives the standard streams, in fd order: handed in from the restorer's own fds 0-2
/// unless `--inherit` names others.
pub const STANDARD_STREAMS: [&str; 3] = ["stdin", "stdout", "stderr"];

/// How a restore runs.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    /// `--inherit NAME=FD`: fds this process was handed, by the name an `inherit` rule gives. `stdin`,
    /// `stdout` and `stderr` not named here are this process's own fds 0, 1 and 2.
    pub inherit: Vec<(String, RawFd)>,
}

/// One fd waiting for a number this process still uses.
#[derive(Debug)]
struct Slot {
    at: RawFd,
    fd: OwnedFd,
    cloexec: bool,
}

/// Every fd brought back and verified: most already at their numbers, the rest waiting.
#[derive(Debug)]
pub struct Prepared {
    placer: Placer,
    epolls: Vec<(RawFd, Vec<EpollWatch>)>,
    /// Numbers left closed on purpose, with the rule that closed them.
    closed: Vec<(RawFd, String)>,
}

/// Puts fds at their numbers without ever closing one of this process's own fds before the install.
#[derive(Debug)]
struct Placer {
    /// This process's fds when the restore began: their numbers wait for the install.
    own: std::collections::HashSet<RawFd>,
    /// Fds at their final numbers (each `OwnedFd`'s number is its target).
    placed: Vec<OwnedFd>,
    /// The numbers of `placed`.
    homes: std::collections::HashSet<RawFd>,
    /// Fds whose number is one of `own`.
    waiting: Vec<Slot>,
    /// Objects held for later fds (the other end of a pipe or socket pair), by handle.
    pending: Vec<Option<OwnedFd>>,
    /// Where waiting and held objects are kept out of the way.
    parking: Parking,
}

/// Numbers no fd of the restore takes, where objects wait: above every number being restored while the
/// open-files limit leaves room there, else in the gaps between them (a table whose highest fd is just
/// below the limit).
#[derive(Debug)]
struct Parking {
    /// Every number the restore places, sorted.
    targets: Vec<RawFd>,
    /// Above every target and every fd this process had.
    high: RawFd,
    /// The next number below `high` to try once there is no room above it.
    gap: RawFd,
}

impl Parking {
    /// A close-on-exec duplicate of `fd` at a number no fd of the restore takes.
    fn park(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
        match build::above(fd, self.high) {
            // EINVAL: `high` is the limit itself; EMFILE: every number from `high` to the limit is taken.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EMFILE)) => {}
            done => return done,
        }
        // From where the last search stopped to `high`, then once more from 0: numbers given back meanwhile.
        for _ in 0..2 {
            while self.gap < self.high {
                let n = self.gap;
                self.gap += 1;
                if self.targets.binary_search(&n).is_err() && !build::is_open(n) {
                    build::place(fd, n, true)?;
                    return Ok(build::adopt(n));
                }
            }
            self.gap = 0;
        }
        Err(std::io::Error::other(format!(
            "no fd number is free below the open files limit to hold it on the way ({} numbers, {} of them taken \
             by the restore)",
            self.high,
            self.targets.len()
        )))
    }
}

impl Placer {
    /// `targets`: every number the restore places.
    fn new(mut targets: Vec<RawFd>) -> Result<Placer, RestoreError> {
        let own = build::own_fds().map_err(|e| RestoreError::Other(format!("cannot list this process's fds: {e}")))?;
        targets.sort_unstable();
        targets.dedup();
        let high = own.iter().chain(targets.last()).copied().max().unwrap_or(2) + 1;
        Ok(Placer {
            own: own.into_iter().collect(),
            placed: Vec::new(),
            homes: std::collections::HashSet::new(),
            waiting: Vec::new(),
            pending: Vec::new(),
            parking: Parking { targets, high, gap: 0 },
        })
    }

    /// Takes a held object out (its last user is being placed); the caller places it.
    fn release(&mut self, handle: usize) -> Option<OwnedFd> {
        self.pending[handle].take()
    }

    /// Keeps an object for a later fd; its handle.
    fn hold(&mut self, fd: OwnedFd) -> usize {
        self.pending.push(Some(fd));
        self.pending.len() - 1
    }

    fn held(&self, handle: usize) -> Result<BorrowedFd<'_>, String> {
        self.pending[handle].as_ref().map(|fd| fd.as_fd()).ok_or_else(|| "its object was already given away".to_owned())
    }

    /// Puts `fd` at number `at`, close-on-exec as asked (or makes it wait for the install).
    /// Every object this restore makes is close-on-exec when made, so only the others need a change.
    fn place(&mut self, at: RawFd, fd: OwnedFd, cloexec: bool) -> std::io::Result<()> {
        if self.own.contains(&at) {
            // Out of the way of every later target (they are few: stdin, stdout, stderr).
            let fd = self.parking.park(fd.as_fd())?;
            self.waiting.push(Slot { at, fd, cloexec });
            return Ok(());
        }
        if fd.as_raw_fd() == at {
            // The kernel gave the lowest free number, which was this fd's own: nothing to move.
            if !cloexec {
                build::set_cloexec(fd.as_fd(), false)?;
            }
            self.placed.push(fd);
            self.homes.insert(at);
            return Ok(());
        }
        self.make_free(at)?;
        build::place(fd.as_fd(), at, cloexec)?;
        self.placed.push(build::adopt(at));
        self.homes.insert(at);
        Ok(())
    }

    /// What was restored for number `at` so far: the fd at that number, or the one waiting for it.
    fn restored(&self, at: RawFd) -> Option<BorrowedFd<'_>> {
        if self.own.contains(&at) {
            return self.waiting.iter().find(|s| s.at == at).map(|s| s.fd.as_fd());
        }
        self.homes.contains(&at).then(|| build::borrow(at))
    }

    /// A duplicate of a held or borrowed object, put at `at`.
    fn place_copy(&mut self, at: RawFd, fd: BorrowedFd<'_>, cloexec: bool) -> std::io::Result<()> {
        let copy = build::above(fd, 0)?;
        self.place(at, copy, cloexec)
    }

    /// Moves whatever object of the restore sits at `at` to another number.
    fn make_free(&mut self, at: RawFd) -> std::io::Result<()> {
        if !build::is_open(at) {
            return Ok(());
        }
        let candidates = self.pending.iter_mut().flatten().chain(self.waiting.iter_mut().map(|s| &mut s.fd));
        for fd in candidates {
            if fd.as_raw_fd() == at {
                // Parked: moved once, never again in the way of a later target.
                *fd = self.parking.park(fd.as_fd())?;
                return Ok(());
            }
        }
        Err(std::io::Error::other(format!("fd {at} is held by something else in this process")))
    }
}

/// What an install did, for the report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// Fd numbers restored.
    pub restored: Vec<RawFd>,
    /// Fd numbers left closed, with the rule.
    pub closed: Vec<(RawFd, String)>,
}

/// The owner an image must have to be trusted: as root, root itself (an image another user could have
/// written or edited is refused); otherwise any (the restore cannot exceed the user's own rights).
pub fn trusted_image_owner() -> Option<u32> {
    nix::unistd::geteuid().is_root().then_some(0)
}

/// Brings back every fd of `manifest`, reading saved contents with `data` (a data file's bytes by the
/// manifest's name, verified), opening as the image's user when this process is root and that user is not.
pub fn prepare(
    manifest: &Manifest,
    data: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    opts: &RestoreOptions,
) -> Result<Prepared, RestoreError> {
    check_table(manifest)?;
    // Every saved byte is read, and verified, before the credentials change: the image is root's (0700, 0600)
    // when root restores another user's process.
    let mut loaded: HashMap<String, Vec<u8>> = HashMap::new();
    for name in data_names(manifest) {
        if !loaded.contains_key(name) {
            let bytes = data(name).map_err(|e| RestoreError::Other(format!("cannot read {name}: {e}")))?;
            loaded.insert(name.to_owned(), bytes);
        }
    }
    let read = |name: &str| loaded.get(name).cloned().ok_or_else(|| format!("{name} is not in the image"));
    let data: &dyn Fn(&str) -> Result<Vec<u8>, String> = &read;
    let creds = &manifest.process.creds;
    let as_user = (nix::unistd::geteuid().is_root() && creds.fsuid() != 0)
        .then(|| FsCreds::assume(creds.fsuid(), creds.fsgid(), &creds.groups))
        .transpose()
        .map_err(|e| RestoreError::Other(format!("cannot take on the image's user for the opens: {e}")))?;
    let targets: Vec<RawFd> =
        manifest.fds.iter().filter(|f| !matches!(f.restore, Restore::Close)).map(|f| f.fd).collect();
    room(targets.iter().copied().max().unwrap_or(0), targets.len())?;
    let mut b = Builder {
        data,
        opts,
        image_pid: manifest.process.pid,
        own_pid: std::process::id() as i32,
        image_uid: creds.fsuid(),
        prepared: Prepared { placer: Placer::new(targets)?, epolls: Vec::new(), closed: Vec::new() },
        contents: HashMap::new(),
        saved: manifest
            .fds
            .iter()
            .filter_map(|f| match &f.restore {
                Restore::Pipe { id, data: Some(d), .. } => Some(((Shared::Pipe, *id, 0), d.clone())),
                Restore::UnixPair { pair, ino, data: Some(d), .. } => Some(((Shared::Pair, *pair, *ino), d.clone())),
                _ => None,
            })
            .collect(),
        uses: manifest.fds.iter().fold(HashMap::new(), |mut uses, f| {
            if let Some(key) = shared_end(&f.restore) {
                *uses.entry(key).or_insert(0) += 1;
            }
            uses
        }),
        pipes: HashMap::new(),
        // A pipe's capacity is saved with the end that was read; the pipe is made when its first end is met.
        capacities: manifest
            .fds
            .iter()
            .filter_map(|f| match f.restore {
                Restore::Pipe { id, capacity: Some(c), .. } => Some((id, c)),
                _ => None,
            })
            .collect(),
        pairs: HashMap::new(),
        ghosts: manifest.fds.iter().fold(HashMap::new(), |mut ghosts, f| {
            if let Some(key) = ghost_of(&f.restore) {
                ghosts.entry(key).or_insert(Ghost { held: None, left: 0 }).left += 1;
            }
            ghosts
        }),
    };
    for f in &manifest.fds {
        b.one(f).map_err(|why| RestoreError::Fd {
            fd: f.fd,
            kind: f.facts.kind.name().to_owned(),
            rule: f.decision.rule.clone().unwrap_or_else(|| crate::plan::NO_RULE.to_owned()),
            why,
        })?;
    }
    drop(as_user);
    Ok(b.prepared)
}

/// The data files a manifest's restores read.
fn data_names(manifest: &Manifest) -> impl Iterator<Item = &str> {
    manifest.fds.iter().filter_map(|f| match &f.restore {
        Restore::Contents { data, .. } => Some(data.as_str()),
        Restore::Pipe { data, .. }
        | Restore::Fifo { data, .. }
        | Restore::DeletedFifo { data, .. }
        | Restore::UnixPair { data, .. } => data.as_deref(),
        _ => None,
    })
}

/// The fd table an image describes is one a process can have: each number once, in increasing order, not
/// negative; every epoll target one of its fds that comes back (not one its rule closes); every duplicate
/// ([`Restore::Dup`]) of an earlier fd of the same kind that comes back, so that it is made after that fd
/// and never of an fd left closed or of itself.
fn check_table(manifest: &Manifest) -> Result<(), RestoreError> {
    let bad = |fd: i32, why: String| RestoreError::Fd { fd, kind: String::new(), rule: String::new(), why };
    let mut last = -1;
    for f in &manifest.fds {
        if f.fd <= last {
            return Err(bad(f.fd, format!("the image lists fd {} after fd {last}: each fd once, in order", f.fd)));
        }
        last = f.fd;
    }
    let back = |fd: i32| {
        manifest
            .fds
            .binary_search_by_key(&fd, |f| f.fd)
            .is_ok_and(|i| !matches!(manifest.fds[i].restore, Restore::Close))
    };
    for f in &manifest.fds {
        if let Restore::Epoll { targets, .. } = &f.restore
            && let Some(t) = targets.iter().find(|t| !back(t.fd))
        {
            return Err(bad(f.fd, format!("the epoll watches fd {}, which does not come back", t.fd)));
        }
    }
    for f in &manifest.fds {
        let Restore::Dup { of } = f.restore else { continue };
        let kind = f.facts.kind.name();
        let damaged = |why: String| RestoreError::Fd {
            fd: f.fd,
            kind: kind.to_owned(),
            rule: f.decision.rule.clone().unwrap_or_else(|| crate::plan::NO_RULE.to_owned()),
            why: format!("the image is damaged: {why}; a duplicate names an earlier fd of the image that comes back"),
        };
        let source = manifest.fds.binary_search_by_key(&of, |g| g.fd).ok().map(|i| &manifest.fds[i]);
        if of == f.fd {
            return Err(damaged(format!("fd {of} is a duplicate of itself")));
        }
        if of > f.fd {
            return Err(damaged(format!("fd {} is a duplicate of fd {of}, which comes after it", f.fd)));
        }
        let Some(source) = source else {
            return Err(damaged(format!("fd {} is a duplicate of fd {of}, which is not in the image", f.fd)));
        };
        if matches!(source.restore, Restore::Close) {
            return Err(damaged(format!("fd {} is a duplicate of fd {of}, which the image leaves closed", f.fd)));
        }
        if source.facts.kind != f.facts.kind {
            return Err(damaged(format!(
                "fd {} ({kind}) is a duplicate of fd {of} ({})",
                f.fd,
                source.facts.kind.name()
            )));
        }
    }
    Ok(())
}

/// Numbers a restore keeps free beyond its fds and this process's own, for the objects it holds on the
/// way (a pipe's other end, a copy of stderr) when they cannot go above the highest fd.
const SPARE_FDS: u64 = 16;

/// Room for a restore of `count` fds up to fd number `highest`: the open-files limit raised, as far as it
/// goes, to every number up to the highest and as many again above it for objects on the way (64 more for
/// this process's own). Enough when the limit is above the highest fd and leaves [`SPARE_FDS`] numbers free
/// once the fds and this process's own are open; otherwise an error saying which limit is short, before
/// anything is made.
fn room(highest: RawFd, count: usize) -> Result<(), RestoreError> {
    let own = build::own_fds().map(|f| f.len()).unwrap_or(0) as u64;
    let highest = highest.max(0) as u64;
    let count = count as u64;
    let wanted = (highest + 1).max(count) + own + 64;
    let limit = build::raise_fd_limit(wanted)
        .map_err(|e| RestoreError::Other(format!("cannot raise the open files limit: {e}")))?;
    let raise = format!(
        "the hard limit, which only a process with CAP_SYS_RESOURCE can raise: `ulimit -Hn`, up to fs.nr_open, {} here",
        build::nr_open()
    );
    if limit <= highest {
        return Err(RestoreError::Other(format!(
            "the image has fd {highest}, but the open files limit is {limit}: fd numbers must be below it ({raise})"
        )));
    }
    let busy = count + own + SPARE_FDS;
    if limit < busy {
        return Err(RestoreError::Other(format!(
            "the image has {count} fds, which with this process's own {own} and {SPARE_FDS} to work with need {busy} \
             fd numbers, but the open files limit is {limit} ({raise})"
        )));
    }
    Ok(())
}

struct Builder<'a> {
    data: &'a dyn Fn(&str) -> Result<Vec<u8>, String>,
    opts: &'a RestoreOptions,
    image_pid: i32,
    /// This process's pid: the restored command's.
    own_pid: i32,
    image_uid: u32,
    prepared: Prepared,
    /// Pipe id -> (read end, write end) held in the placer, made when the first end is met.
    pipes: HashMap<u64, (usize, usize)>,
    capacities: HashMap<u64, u64>,
    /// Saved contents already made, by data file name and dumped file, held in the placer.
    contents: HashMap<(String, u64), usize>,
    /// The data file of each pipe (id, 0) and socket-pair end (pair, inode) that has saved bytes.
    saved: HashMap<End, String>,
    /// How many fds of the image still use each pipe end or socket-pair end ([`shared_end`]).
    uses: HashMap<End, usize>,
    /// Socket pair id -> (the end whose inode is the id, the other end), held in the placer.
    pairs: HashMap<u64, (usize, usize)>,
    /// Each deleted FIFO and directory ([`ghost_of`]): the new one, held until its last fd is made.
    ghosts: HashMap<GhostKey, Ghost>,
}

/// A deleted FIFO (`true`) or directory (`false`), by its device and inode.
type GhostKey = (bool, Option<DevNum>, u64);

/// The new object standing for a deleted FIFO or directory.
struct Ghost {
    /// Its holder in the placer, once made.
    held: Option<usize>,
    /// How many fds of the image still reopen it.
    left: usize,
}

/// The deleted FIFO or directory an fd restores.
fn ghost_of(r: &Restore) -> Option<GhostKey> {
    match r {
        Restore::DeletedFifo { dev, ino, .. } => Some((true, *dev, *ino)),
        Restore::DeletedDir { dev, ino, .. } => Some((false, *dev, *ino)),
        _ => None,
    }
}

/// A socket type's number, from its name in the image.
fn sock_type(name: &str) -> Result<i32, String> {
    Ok(match name {
        "stream" => libc::SOCK_STREAM,
        "dgram" => libc::SOCK_DGRAM,
        "raw" => libc::SOCK_RAW,
        "seqpacket" => libc::SOCK_SEQPACKET,
        other => return Err(format!("a socket of type `{other}`")),
    })
}

/// The end of a pipe (`Pipe`, id, 0 read / 1 write) or of a socket pair (`Pair`, pair, inode) an fd
/// restores: kept apart, so that a pipe's id can never stand for a socket pair's.
fn shared_end(r: &Restore) -> Option<End> {
    match r {
        Restore::Pipe { id, write, .. } => Some((Shared::Pipe, *id, u64::from(*write))),
        Restore::UnixPair { pair, ino, .. } => Some((Shared::Pair, *pair, *ino)),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Shared {
    Pipe,
    Pair,
}

type End = (Shared, u64, u64);

fn err(e: std::io::Error) -> String {
    e.to_string()
}

fn nonblock(flags: u32) -> bool {
    flags & libc::O_NONBLOCK as u32 != 0
}

impl Builder<'_> {
    fn slot(&mut self, at: RawFd, fd: OwnedFd, cloexec: bool) -> Result<(), String> {
        self.prepared.placer.place(at, fd, cloexec).map_err(|e| format!("cannot put it at its number: {e}"))
    }

    /// Places a held pipe or socket-pair end: the object itself for its last user, a duplicate otherwise.
    fn place_end(&mut self, at: RawFd, handle: usize, end: Option<End>, cloexec: bool) -> Result<(), String> {
        let left = end.and_then(|k| self.uses.get_mut(&k)).map(|n| {
            *n -= 1;
            *n
        });
        let placer = &mut self.prepared.placer;
        if left == Some(0)
            && let Some(fd) = placer.release(handle)
        {
            return placer.place(at, fd, cloexec).map_err(err);
        }
        let copy = build::above(placer.held(handle)?, 0).map_err(err)?;
        placer.place(at, copy, cloexec).map_err(err)
    }

    fn bytes(&self, name: &Option<String>) -> Result<Vec<u8>, String> {
        name.as_deref().map_or(Ok(Vec::new()), |n| (self.data)(n))
    }

    /// A new open file, with `flags`, of the deleted FIFO or directory `key`: the object is made beside
    /// `path` (else in `$TMPDIR`) for its first fd, and let go after its last. A FIFO is refilled with
    /// `bytes`.
    fn ghost(&mut self, key: GhostKey, path: &ByteString, flags: u32, bytes: &[u8]) -> Result<OwnedFd, String> {
        let (fifo, ..) = key;
        let near = self.remap(path.as_bytes());
        let ghost = self.ghosts.get_mut(&key).ok_or("a deleted file the image does not count")?;
        let handle = match ghost.held {
            Some(h) => h,
            None => {
                let made = if fifo { build::ghost_fifo(&near) } else { build::ghost_dir(&near) };
                let made = made.map_err(|e| {
                    let what = if fifo { "FIFO" } else { "directory" };
                    format!("cannot make a new {what} beside {} or in $TMPDIR: {e}", String::from_utf8_lossy(&near))
                })?;
                let h = self.prepared.placer.hold(made);
                ghost.held = Some(h);
                h
            }
        };
        ghost.left -= 1;
        let last = ghost.left == 0;
        let holder = self.prepared.placer.held(handle)?;
        if !bytes.is_empty() {
            build::write_all(holder, bytes)
                .map_err(|e| format!("cannot refill the FIFO with its {} bytes: {e}", bytes.len()))?;
        }
        // Opened again through the holder (never waiting: the holder is both a reader and a writer), with
        // its own flags.
        let extra = if fifo { libc::O_NONBLOCK } else { 0 };
        let fd = build::reopen(holder, flags as i32 | extra).map_err(|e| format!("cannot open it again: {e}"))?;
        let want = if fifo { FileType::Fifo } else { FileType::Directory };
        verify(fd.as_fd(), &Identity { file_type: Some(want), ..Identity::default() })?;
        build::set_status_flags(fd.as_fd(), flags as i32).map_err(err)?;
        if last {
            drop(self.prepared.placer.release(handle));
        }
        Ok(fd)
    }

    fn one(&mut self, f: &ImageFd) -> Result<(), String> {
        let (at, cloexec) = (f.fd, f.facts.cloexec);
        match &f.restore {
            Restore::Open { path, flags, pos, expect } => {
                let path = self.remap(path.as_bytes());
                let fd = open_verified(&path, *flags, *pos, expect).map_err(|e| match e {
                    ReopenError::Open { path, source } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                        format!("cannot open {path}: permission denied to uid {} (the image's process)", self.image_uid)
                    }
                    e => e.to_string(),
                })?;
                self.slot(at, fd, cloexec)
            }
            Restore::Contents { data, file, size, flags, pos, mode, memfd, name, seals } => {
                // One file per dumped file: fds that held the same file share it again.
                let handle = match self.contents.get(&(data.clone(), *file)) {
                    Some(&h) => h,
                    None => {
                        let bytes = (self.data)(data)?;
                        if bytes.len() as u64 != *size {
                            return Err(format!("the saved contents hold {} bytes, not {size}", bytes.len()));
                        }
                        let made = if *memfd {
                            let name = name.as_ref().map_or(&b"restored"[..], |n| n.as_bytes());
                            build::memfd(name, &bytes).map_err(err)?
                        } else {
                            let path = name.as_ref().map(|n| n.as_bytes()).unwrap_or(b"/tmp/x");
                            let dir = path
                                .rsplit_once_byte(b'/')
                                .map_or(&b"/tmp"[..], |(d, _)| if d.is_empty() { b"/" } else { d });
                            build::tmpfile(dir, *mode, &bytes).map_err(|e| {
                                format!("cannot make an unnamed file in {}: {e}", String::from_utf8_lossy(dir))
                            })?
                        };
                        if *memfd {
                            build::add_seals(made.as_fd(), *seals).map_err(|e| format!("cannot seal: {e}"))?;
                        }
                        let h = self.prepared.placer.hold(made);
                        self.contents.insert((data.clone(), *file), h);
                        h
                    }
                };
                // A new open file for each fd (its own offset and flags), and never `O_TMPFILE`'s flag.
                let fd = build::reopen(self.prepared.placer.held(handle)?, *flags as i32).map_err(err)?;
                build::seek(fd.as_fd(), *pos).map_err(err)?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Inherit { name, kind } => {
                let given = self.opts.inherit.iter().find(|(n, _)| n == name).map(|(_, fd)| *fd);
                // The standard streams are the restorer's own unless another fd is named for them.
                let given = given.or_else(|| STANDARD_STREAMS.iter().position(|s| s == name).map(|fd| fd as i32));
                let given = &given
                    .ok_or_else(|| format!("its rule says `inherit \"{name}\"`: pass it with --inherit {name}=FD"))?;
                let found = build::own_kind(*given).map_err(|e| format!("--inherit {name}={given}: {e}"))?;
                if found.name() != kind {
                    return Err(format!("--inherit {name}={given} is a {found}, but the image holds a {kind} there"));
                }
                // The caller handed this number in and keeps it open until the install.
                let given = build::borrow(*given);
                self.prepared.placer.place_copy(at, given, cloexec).map_err(err)
            }
            Restore::Close => {
                self.prepared.closed.push((at, f.decision.rule.clone().unwrap_or_default()));
                Ok(())
            }
            Restore::Dup { of } => {
                // `check_table` made sure `of` is an earlier fd that comes back: restored by now.
                let placer = &mut self.prepared.placer;
                let from =
                    placer.restored(*of).ok_or_else(|| format!("fd {of}, of which it is a duplicate, is not open"))?;
                let copy = build::above(from, 0).map_err(err)?;
                placer.place(at, copy, cloexec).map_err(|e| format!("cannot put it at its number: {e}"))
            }
            Restore::Plugin { name } => {
                Err(format!("plugin `{name}`: the fd-table backend has no plugin of that name (it has none yet)"))
            }
            Restore::Pipe { id, write, flags, data: _, capacity: _ } => {
                if !self.pipes.contains_key(id) {
                    // Made, and refilled, when its first end is met: the bytes were saved with the read end.
                    let capacity = self.capacities.get(id).copied();
                    let (r, w) = build::pipe(*flags & libc::O_DIRECT as u32 != 0, capacity).map_err(err)?;
                    let bytes = self.bytes(&self.saved.get(&(Shared::Pipe, *id, 0)).cloned())?;
                    if !bytes.is_empty() {
                        // Never blocking: bytes that do not fit (a small pipe, past the user's pipe pages) are
                        // an error, not a hang.
                        build::set_status_flags(w.as_fd(), libc::O_NONBLOCK).map_err(err)?;
                        build::write_all(w.as_fd(), &bytes).map_err(|e| {
                            format!(
                                "cannot refill the pipe with its {} bytes: {e} (a user's new pipes are small past \
                                 fs.pipe-user-pages-soft)",
                                bytes.len()
                            )
                        })?;
                    }
                    let ends = (self.prepared.placer.hold(r), self.prepared.placer.hold(w));
                    // An end no fd of the image holds (its other process had it) is let go at once.
                    for (handle, end) in [(ends.0, 0), (ends.1, 1)] {
                        if !self.uses.contains_key(&(Shared::Pipe, *id, end)) {
                            drop(self.prepared.placer.release(handle));
                        }
                    }
                    self.pipes.insert(*id, ends);
                }
                let (r, w) = self.pipes[id];
                let handle = if *write { w } else { r };
                build::set_status_flags(self.prepared.placer.held(handle)?, *flags as i32).map_err(err)?;
                self.place_end(at, handle, shared_end(&f.restore), cloexec)
            }
            Restore::Fifo { path, flags, data, expect } => {
                let path = self.remap(path.as_bytes());
                let shown = String::from_utf8_lossy(&path).into_owned();
                let expect = Identity { file_type: Some(FileType::Fifo), ..expect.clone() };
                let bytes = self.bytes(data)?;
                // A helper end only where one is needed, with no more access than needed: to refill the bytes
                // (read-write), or as the reader a write-only open waits for.
                let access = *flags as i32 & libc::O_ACCMODE;
                let helper_mode = if !bytes.is_empty() {
                    Some(libc::O_RDWR)
                } else if access == libc::O_WRONLY {
                    Some(libc::O_RDONLY)
                } else {
                    None
                };
                let holder = match helper_mode {
                    Some(mode) => {
                        let holder = build::open_path(&path, mode | libc::O_NONBLOCK)
                            .map_err(|e| format!("cannot open the FIFO {shown}: {e}"))?;
                        verify(holder.as_fd(), &expect).map_err(|why| format!("{shown}: {why}"))?;
                        build::write_all(holder.as_fd(), &bytes).map_err(|e| format!("cannot refill the FIFO: {e}"))?;
                        // Held where placing can move it, until the restored fd holds the FIFO.
                        Some(self.prepared.placer.hold(holder))
                    }
                    None => None,
                };
                let fd = build::open_path(&path, *flags as i32 | libc::O_NONBLOCK)
                    .map_err(|e| format!("cannot open the FIFO {shown}: {e}"))?;
                verify(fd.as_fd(), &expect).map_err(|why| format!("{shown}: {why}"))?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd, cloexec)?;
                if let Some(h) = holder {
                    drop(self.prepared.placer.release(h));
                }
                Ok(())
            }
            Restore::UnixPair { pair, ino, sock_type, flags, data: _, peer_closed } => {
                if *peer_closed && ino != pair {
                    return Err(format!("a socket whose peer closed is its own pair ({ino}), not part of pair {pair}"));
                }
                let (ty, stream) = match sock_type.as_str() {
                    "stream" => (libc::SOCK_STREAM, true),
                    "dgram" => (libc::SOCK_DGRAM, false),
                    "seqpacket" => (libc::SOCK_SEQPACKET, false),
                    other => return Err(format!("a unix socket pair of type {other}")),
                };
                if !self.pairs.contains_key(pair) {
                    // Made, and both queues refilled, when its first end is met: the messages queued on one
                    // end are sent from the other.
                    let (a, b) = build::socketpair(ty).map_err(err)?;
                    let ends: Vec<(u64, &OwnedFd, &OwnedFd)> = self
                        .saved
                        .keys()
                        .filter(|(kind, p, _)| *kind == Shared::Pair && p == pair)
                        .map(|&(_, _, end)| if end == *pair { (end, &a, &b) } else { (end, &b, &a) })
                        .collect();
                    for (end, _, peer) in ends {
                        let queued = self.bytes(&self.saved.get(&(Shared::Pair, *pair, end)).cloned())?;
                        let messages = decode_messages(&queued).ok_or("the saved queue is not a list of messages")?;
                        for m in &messages {
                            build::send(peer.as_fd(), m, stream)
                                .map_err(|e| format!("cannot refill the queue: {e}"))?;
                        }
                    }
                    let ends = (self.prepared.placer.hold(a), self.prepared.placer.hold(b));
                    // The peer no process held: closed once it has sent what was left for this end, which then
                    // reads those messages and the end, as the dumped one would have.
                    if *peer_closed {
                        drop(self.prepared.placer.release(ends.1));
                    }
                    self.pairs.insert(*pair, ends);
                }
                let (a, b) = self.pairs[pair];
                let mine = if ino == pair { a } else { b };
                build::set_status_flags(self.prepared.placer.held(mine)?, *flags as i32).map_err(err)?;
                self.place_end(at, mine, shared_end(&f.restore), cloexec)
            }
            Restore::UnixConnect { peer, flags, owner } => {
                // The socket file must be its daemon's: root's, the image's user's, or its owner's at dump; not
                // one another user bound (or linked) at that name since.
                let (image_uid, dumped) = (self.image_uid, *owner);
                let owner_ok = |uid: u32| match uid {
                    0 => Ok(()),
                    uid if uid == image_uid || Some(uid) == dumped => Ok(()),
                    uid => Err(std::io::Error::other(format!(
                        "its socket file is owned by uid {uid}, not by root, uid {image_uid} (the image's process) \
                         or {} (its owner when dumped)",
                        dumped.map_or("anyone".to_owned(), |o| format!("uid {o}"))
                    ))),
                };
                let fd = build::unix_dgram_connected(peer.as_bytes(), owner_ok)
                    .map_err(|e| format!("cannot connect a datagram socket to `{peer}` again: {e}"))?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Inet { family: _, sock_type, addr, listen, backlog, flags } => {
                let addr: std::net::SocketAddr = addr.parse().map_err(|_| format!("`{addr}` is not an address"))?;
                let fd = build::inet(addr, sock_type == "stream", *listen, *backlog)
                    .map_err(|e| format!("cannot bind {addr}: {e}"))?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Eventfd { count, semaphore, flags } => {
                let fd = build::eventfd(*count, *semaphore, nonblock(*flags)).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Timerfd { clockid, flags, value, interval } => {
                let fd = build::timerfd(*clockid, nonblock(*flags), *value, *interval)
                    .map_err(|e| format!("cannot make a timer on clock {clockid}: {e}"))?;
                self.slot(at, fd, cloexec)
            }
            Restore::Signalfd { signals, flags } => {
                let fd = build::signalfd(signals, nonblock(*flags)).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Epoll { targets, flags: _ } => {
                let fd = build::epoll().map_err(err)?;
                self.prepared.epolls.push((at, targets.clone()));
                self.slot(at, fd, cloexec)
            }
            Restore::Inotify { watches, flags } => {
                let fd = build::inotify(nonblock(*flags)).map_err(err)?;
                self.inotify_watches(fd.as_fd(), watches)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Socket { family, sock_type: ty, protocol, bound, peer, flags } => {
                let domain = match family.as_str() {
                    "inet" => libc::AF_INET,
                    "inet6" => libc::AF_INET6,
                    other => return Err(format!("a socket of family `{other}`")),
                };
                let fd = build::socket(domain, sock_type(ty)?, *protocol).map_err(|e| match e.raw_os_error() {
                    Some(libc::EPERM | libc::EACCES) => format!(
                        "cannot make a {family} {ty} socket of protocol {protocol}: {e} (raw sockets need CAP_NET_RAW; \
                         ping sockets a group in net.ipv4.ping_group_range)"
                    ),
                    _ => format!("cannot make a {family} {ty} socket of protocol {protocol}: {e}"),
                })?;
                let addr = |a: &str| a.parse::<std::net::SocketAddr>().map_err(|_| format!("`{a}` is not an address"));
                if let Some(a) = bound {
                    build::bind_inet(fd.as_fd(), addr(a)?).map_err(|e| format!("cannot bind {a}: {e}"))?;
                }
                if let Some(p) = peer {
                    build::connect_inet(fd.as_fd(), addr(p)?).map_err(|e| format!("cannot connect to {p}: {e}"))?;
                }
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Netlink { sock_type: ty, protocol, bound, groups, peer, flags } => {
                let fd = build::netlink(sock_type(ty)?, *protocol, *bound, groups, *peer)
                    .map_err(|e| format!("cannot make netlink socket of family {protocol} again: {e}"))?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::Packet { sock_type: ty, protocol, ifindex, flags } => {
                let fd = build::packet(sock_type(ty)?, *protocol, *ifindex).map_err(|e| match e.raw_os_error() {
                    Some(libc::EPERM) => format!("cannot make a packet socket: {e} (it needs CAP_NET_RAW)"),
                    _ => format!("cannot make a packet socket for protocol {protocol:#06x}: {e}"),
                })?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd, cloexec)
            }
            Restore::DeletedFifo { dev, ino, path, flags, data } => {
                let bytes = self.bytes(data)?;
                let fd = self.ghost((true, *dev, *ino), path, *flags, &bytes)?;
                self.slot(at, fd, cloexec)
            }
            Restore::DeletedDir { dev, ino, path, flags } => {
                let fd = self.ghost((false, *dev, *ino), path, *flags, &[])?;
                self.slot(at, fd, cloexec)
            }
            Restore::Pidfd { flags } => {
                let fd = build::pidfd_self(*flags).map_err(|e| format!("cannot make a pidfd on this process: {e}"))?;
                self.slot(at, fd, cloexec)
            }
            Restore::Fanotify { init_flags, event_flags, marks, flags } => {
                let fd = build::fanotify(*init_flags, *event_flags, nonblock(*flags)).map_err(|e| {
                    format!("cannot make a fanotify group (flags {init_flags:#x}, event flags {event_flags:#x}): {e}")
                })?;
                self.fanotify_marks(fd.as_fd(), marks)?;
                self.slot(at, fd, cloexec)
            }
        }
    }

    /// Adds every mark of a fanotify group again, by path, in the image's order.
    fn fanotify_marks(&self, fd: BorrowedFd<'_>, marks: &[FanotifyPath]) -> Result<(), String> {
        for (i, m) in marks.iter().enumerate() {
            let path = self.remap(m.path.as_bytes());
            let shown = String::from_utf8_lossy(&path);
            build::fanotify_mark(fd, &m.target, &path, m.mask, m.ignored_mask, m.mflags).map_err(|e| {
                let what = format!("mark {}: cannot mark the {} at {shown}", i + 1, m.target);
                match e.raw_os_error() {
                    Some(libc::EACCES | libc::EPERM) => {
                        format!("{what}: permission denied to uid {} (the image's process)", self.image_uid)
                    }
                    Some(libc::ELOOP) => format!("{what}: a symlink is in the way"),
                    _ => format!("{what}: {e}"),
                }
            })?;
        }
        Ok(())
    }

    /// Adds every watch of an inotify instance with its own wd. The kernel numbers an instance's watches
    /// from 1 up, never reusing a number (until it wraps at `i32::MAX`), so the watches are added in wd
    /// order, and each number between them is used up by a throwaway watch, added and removed. The events
    /// those removals queue (`IN_IGNORED`) are read away, with any other event queued meanwhile: a restored
    /// instance starts with an empty queue, as the dump dropped its queued events.
    fn inotify_watches(&self, fd: BorrowedFd<'_>, watches: &[InotifyPath]) -> Result<(), String> {
        let mut order: Vec<&InotifyPath> = watches.iter().collect();
        order.sort_by_key(|w| w.wd);
        if let Some(w) = order.iter().find(|w| w.wd < 1) {
            return Err(format!("wd {}: watch descriptors start at 1", w.wd));
        }
        if let Some(pair) = order.windows(2).find(|p| p[0].wd == p[1].wd) {
            return Err(format!("wd {} is in the image twice", pair[0].wd));
        }
        let last_wd = order.last().map_or(0, |w| w.wd);
        let spares = i64::from(last_wd) - order.len() as i64;
        if spares > MAX_SPARE_WATCHES {
            return Err(format!(
                "wd {last_wd}: the kernel numbers watches in order, so giving it back takes {spares} throwaway watches \
                 first, more than the {MAX_SPARE_WATCHES} a restore makes"
            ));
        }
        let spare = if spares > 0 {
            Some(build::inotify_spare().map_err(|e| format!("cannot make a file for throwaway watches: {e}"))?)
        } else {
            None
        };
        let mut last = 0;
        let mut removed = 0u32;
        for w in order {
            while last + 1 < w.wd {
                let spare = spare.as_ref().ok_or("no file for throwaway watches")?.as_fd();
                let got =
                    build::inotify_add_spare(fd, spare).map_err(|e| format!("cannot add a throwaway watch: {e}"))?;
                build::inotify_rm_watch(fd, got).map_err(|e| format!("cannot remove a throwaway watch: {e}"))?;
                if got <= last || got >= w.wd {
                    return Err(format!(
                        "wd {}: the kernel numbered a throwaway watch {got} after {last}, so wd {} cannot be given back",
                        w.wd, w.wd
                    ));
                }
                last = got;
                removed += 1;
                // Each removal queued an event: keep the queue short of its limit.
                if removed % 1024 == 0 {
                    build::inotify_drain(fd).map_err(|e| format!("cannot read away queued events: {e}"))?;
                }
            }
            let path = self.remap(w.path.as_bytes());
            let shown = String::from_utf8_lossy(&path);
            let got = build::inotify_add_watch(fd, &path, w.mask).map_err(|e| match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM) => format!(
                    "wd {}: cannot watch {shown}: permission denied to uid {} (the image's process)",
                    w.wd, self.image_uid
                ),
                Some(libc::ELOOP) => format!("wd {}: cannot watch {shown}: a symlink is in the way", w.wd),
                Some(libc::EEXIST) => format!("wd {}: {shown} is the file another watch of the image watches", w.wd),
                Some(libc::ENOSPC) => format!(
                    "wd {}: cannot watch {shown}: the user's inotify watch limit is reached (sysctl \
                     fs.inotify.max_user_watches)",
                    w.wd
                ),
                _ => format!("wd {}: cannot watch {shown}: {e}", w.wd),
            })?;
            if got != w.wd {
                return Err(format!("wd {}: the kernel gave the watch on {shown} wd {got}", w.wd));
            }
            last = got;
        }
        if removed > 0 {
            build::inotify_drain(fd).map_err(|e| format!("cannot read away queued events: {e}"))?;
        }
        Ok(())
    }

    /// A path under `/proc/PID/` of the dumped process names this process (the one the command becomes).
    fn remap(&self, path: &[u8]) -> Vec<u8> {
        remap_proc(path, self.image_pid, self.own_pid)
    }
}

/// `/proc/OLD/...` as `/proc/NEW/...`, and its main thread's `/proc/OLD/task/OLD/...` as `NEW`'s too.
fn remap_proc(path: &[u8], old: i32, new: i32) -> Vec<u8> {
    let Some(rest) = path.strip_prefix(format!("/proc/{old}/").as_bytes()) else { return path.to_vec() };
    let rest = match rest.strip_prefix(format!("task/{old}/").as_bytes()) {
        Some(below) => [format!("task/{new}/").as_bytes(), below].concat(),
        None => rest.to_vec(),
    };
    [format!("/proc/{new}/").as_bytes(), &rest].concat()
}

/// Why [`open_verified`] brought no fd back. Paths are shown lossily, as text.
#[derive(Debug, thiserror::Error)]
pub enum ReopenError {
    /// The open failed (a symlink on the way fails with `ELOOP`).
    #[error("cannot open {path}: {}", open_failure(source))]
    Open { path: String, source: std::io::Error },
    /// The path now names something else than what was saved.
    #[error("{path}: {why}")]
    Changed { path: String, why: String },
    /// The offset could not be restored.
    #[error("{path}: cannot seek to {pos}: {source}")]
    Seek { path: String, pos: u64, source: std::io::Error },
}

impl ReopenError {
    /// The errno that best says what failed: the system call's own, `EINVAL` for a changed file.
    pub fn errno(&self) -> i32 {
        match self {
            ReopenError::Open { source, .. } | ReopenError::Seek { source, .. } => {
                source.raw_os_error().unwrap_or(libc::EIO)
            }
            ReopenError::Changed { .. } => libc::EINVAL,
        }
    }
}

fn open_failure(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "a symlink or magic link is in the way".into(),
        _ => e.to_string(),
    }
}

/// Opens `path` as a `reopen` restore does (what [`crate::dump::reopen_of`] saved): `openat2` with
/// `RESOLVE_NO_SYMLINKS`, with the saved access mode and status flags but never `O_CREAT`, `O_TRUNC`,
/// `O_EXCL` or `O_TMPFILE`, close-on-exec; then verifies on the opened fd that it is what `expect` says
/// (file type, device number, inode) and seeks to `pos`. Opens with this process's credentials.
pub fn open_verified(path: &[u8], flags: u32, pos: u64, expect: &Identity) -> Result<OwnedFd, ReopenError> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    let fd = build::open_path(path, flags as i32).map_err(|source| ReopenError::Open { path: shown(), source })?;
    verify(fd.as_fd(), expect).map_err(|why| ReopenError::Changed { path: shown(), why })?;
    if pos != 0 {
        build::seek(fd.as_fd(), pos).map_err(|source| ReopenError::Seek { path: shown(), pos, source })?;
    }
    Ok(fd)
}

/// The opened fd is what the image says: its file type, a device's number, and where the rule asked for the
/// very same file (`reopen path exact`) its inode and a regular file's size.
fn verify(fd: BorrowedFd<'_>, expect: &Identity) -> Result<(), String> {
    let (mode, rdev, dev, ino, size) = build::stat(fd).map_err(err)?;
    let found = FileType::from_mode(mode);
    let show =
        |t: FileType| serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    if let Some(want) = expect.file_type.filter(|&t| t != found) {
        return Err(format!("it is now a {} file, not {}", show(found), show(want)));
    }
    if let Some(want) = expect.dev {
        let now = DevNum::from_dev_t(rdev);
        if now != want {
            return Err(format!("the device is now {} {now}, not {want}", show(found)));
        }
    }
    if let Some((want_dev, want_ino)) = expect.inode {
        let now = DevNum::from_dev_t(dev);
        if (now, ino) != (want_dev, want_ino) {
            return Err(format!(
                "it is another file (inode {ino} on {now}) than the one dumped (inode {want_ino} on {want_dev})"
            ));
        }
    }
    if let Some(want) = expect.size.filter(|&want| want != size) {
        return Err(format!("it is now {size} bytes, not {want}"));
    }
    Ok(())
}

pub use crate::proc::build::restore_fd_limit;

impl Prepared {
    /// A close-on-exec copy of this process's stderr at a number the restore does not take: errors after
    /// [`Prepared::install`] (which replaces fd 2) are written there, and the exec closes it. `None` when no
    /// number is free.
    pub fn stderr_for_errors(&mut self) -> Option<OwnedFd> {
        self.placer.parking.park(build::borrow(2)).ok()
    }

    /// Takes fds handed over from a live process: for each `(fd, at, cloexec)` (its number there, the number
    /// it gets here, close-on-exec), `take(fd)` makes the duplicate (`None`: there is nothing to hand over
    /// there after all), which is put at its number before the next is taken, so a table of N fds needs
    /// about N numbers here, not 2N. An error names the fd.
    pub fn from_live(
        fds: &[(RawFd, RawFd, bool)],
        mut take: impl FnMut(RawFd) -> Result<Option<OwnedFd>, String>,
        closed: Vec<(RawFd, String)>,
    ) -> Result<Prepared, RestoreError> {
        let mut order = fds.to_vec();
        order.sort_unstable_by_key(|&(_, at, _)| at);
        if let Some(w) = order.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(RestoreError::Other(format!("fd {} is handed over twice", w[0].1)));
        }
        room(order.last().map_or(0, |&(_, at, _)| at), order.len())?;
        let mut placer = Placer::new(order.iter().map(|&(_, at, _)| at).collect())?;
        for (fd, at, cloexec) in order {
            let Some(dup) = take(fd).map_err(|why| RestoreError::Other(format!("fd {fd}: {why}")))? else {
                continue;
            };
            placer
                .place(at, dup, cloexec)
                .map_err(|e| RestoreError::Other(format!("cannot put fd {at} at its number: {e}")))?;
        }
        Ok(Prepared { placer, epolls: Vec::new(), closed })
    }

    /// The numbers left closed on purpose, with the rule that closed each.
    pub fn closed(&self) -> &[(RawFd, String)] {
        &self.closed
    }

    /// How many fds will be restored.
    pub fn len(&self) -> usize {
        self.placer.placed.len() + self.placer.waiting.len()
    }

    /// True when no fd will be restored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts the waiting fds over this process's own, closes every other fd of this process (stdin, stdout
    /// and stderr stay unless the image has their numbers), and re-adds epoll targets at their numbers.
    /// After this the process holds the restored table and the caller execs the command.
    ///
    /// `keep` (a close-on-exec fd, such as [`Prepared::stderr_for_errors`]'s) stays open through the install, so that
    /// what goes wrong after it can still be said where the user sees it; the exec closes it.
    pub fn install(self, keep: Option<&OwnedFd>) -> Result<Installed, RestoreError> {
        let keep = keep.map(AsRawFd::as_raw_fd);
        let Placer { placed, waiting, pending, .. } = self.placer;
        drop(pending);
        for s in &waiting {
            build::place(s.fd.as_fd(), s.at, s.cloexec)
                .map_err(|e| RestoreError::Other(format!("cannot place fd {}: {e}", s.at)))?;
        }
        let mut restored: Vec<RawFd> = waiting.iter().map(|s| s.at).collect();
        drop(waiting);
        // From here the numbers belong to the process image the command will run with.
        restored.extend(placed.into_iter().map(std::os::fd::IntoRawFd::into_raw_fd));
        restored.sort_unstable();
        let closed_numbers: Vec<RawFd> = self.closed.iter().map(|(fd, _)| *fd).collect();
        for fd in build::own_fds().map_err(|e| RestoreError::Other(e.to_string()))? {
            let stdio_kept = fd <= 2 && !closed_numbers.contains(&fd);
            if restored.binary_search(&fd).is_err() && !stdio_kept && Some(fd) != keep {
                build::close_number(fd);
            }
        }
        for (epoll, targets) in &self.epolls {
            for t in targets {
                build::epoll_add(*epoll, t.fd, t.events, t.data).map_err(|e| RestoreError::Fd {
                    fd: *epoll,
                    kind: Kind::Epoll.name().to_owned(),
                    rule: String::new(),
                    why: format!("cannot watch fd {} again: {e}", t.fd),
                })?;
            }
        }
        Ok(Installed { restored, closed: self.closed })
    }
}

/// `rsplit_once` on bytes.
trait RsplitByte {
    fn rsplit_once_byte(&self, b: u8) -> Option<(&[u8], &[u8])>;
}

impl RsplitByte for [u8] {
    fn rsplit_once_byte(&self, b: u8) -> Option<(&[u8], &[u8])> {
        let i = self.iter().rposition(|&c| c == b)?;
        Some((&self[..i], &self[i + 1..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_of_the_dumped_process_name_the_restored_one() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"/proc/41/stat", b"/proc/7/stat"),
            (b"/proc/41/task/41/status", b"/proc/7/task/7/status"),
            (b"/proc/41/task/42/status", b"/proc/7/task/42/status"),
            (b"/proc/410/stat", b"/proc/410/stat"),
            (b"/tmp/proc/41/stat", b"/tmp/proc/41/stat"),
        ];
        for (path, want) in cases {
            assert_eq!(remap_proc(path, 41, 7), want, "{}", String::from_utf8_lossy(path));
        }
    }
}
