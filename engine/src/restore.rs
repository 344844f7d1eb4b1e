//! Restoring an fd table in this process, all or nothing: [`prepare`] brings back every fd of an image
//! (or, for a hand-over, takes every fd of a live process) at a temporary number above all the numbers
//! being restored, verifying each as it goes; only when every one succeeded does [`Prepared::install`] put
//! each at its number, close everything else, and re-add epoll targets. The caller then execs the command:
//! if anything failed before, the command never runs.
//!
//! Opens are made with the filesystem credentials of the image's process when crrules runs as root for an
//! image of another user, so an image can never make a root restore open what its process could not.

use crate::dump::decode_messages;
use crate::facts::{DevNum, FileType};
use crate::image::{EpollWatch, Identity, ImageFd, InotifyPath, Manifest, Restore};
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

/// How a restore runs.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    /// `--inherit NAME=FD`: fds this process was handed, by the name an `inherit` rule gives.
    pub inherit: Vec<(String, RawFd)>,
}

/// One fd ready to be placed.
#[derive(Debug)]
struct Slot {
    at: RawFd,
    fd: OwnedFd,
    cloexec: bool,
}

/// Every fd brought back and verified, held above the numbers it goes to.
#[derive(Debug)]
pub struct Prepared {
    slots: Vec<Slot>,
    epolls: Vec<(RawFd, Vec<EpollWatch>)>,
    /// Numbers left closed on purpose, with the rule that closed them.
    closed: Vec<(RawFd, String)>,
    /// Helpers kept open until the fds are placed (a FIFO's reader while its data waits).
    keep: Vec<OwnedFd>,
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
    let creds = &manifest.process.creds;
    let as_user = (nix::unistd::geteuid().is_root() && creds.fsuid() != 0)
        .then(|| FsCreds::assume(creds.fsuid(), creds.fsgid(), &creds.groups))
        .transpose()
        .map_err(|e| RestoreError::Other(format!("cannot take on the image's user for the opens: {e}")))?;
    let base = base_number(manifest.fds.iter().map(|f| f.fd))?;
    room(base, manifest.fds.len())?;
    let mut b = Builder {
        base,
        data,
        opts,
        image_pid: manifest.process.pid,
        image_uid: creds.fsuid(),
        prepared: Prepared { slots: Vec::new(), epolls: Vec::new(), closed: Vec::new(), keep: Vec::new() },
        pipes: HashMap::new(),
        pairs: HashMap::new(),
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

/// Room for `count` temporaries from `base` on, plus the pipes' and pairs' other ends and a margin.
fn room(base: RawFd, count: usize) -> Result<(), RestoreError> {
    build::ensure_fd_room(base as u64 + 2 * count as u64 + 64).map_err(|e| RestoreError::Other(e.to_string()))
}

/// The lowest number above every number being restored and every fd this process has open.
fn base_number(targets: impl Iterator<Item = RawFd>) -> Result<RawFd, RestoreError> {
    let own = build::own_fds().map_err(|e| RestoreError::Other(format!("cannot list this process's fds: {e}")))?;
    Ok(targets.chain(own).max().unwrap_or(2).max(2) + 1)
}

struct Builder<'a> {
    base: RawFd,
    data: &'a dyn Fn(&str) -> Result<Vec<u8>, String>,
    opts: &'a RestoreOptions,
    image_pid: i32,
    image_uid: u32,
    prepared: Prepared,
    /// Pipe id -> (read end, write end), made when the first end is met.
    pipes: HashMap<u64, (OwnedFd, OwnedFd)>,
    /// Socket pair id -> (the end whose inode is the id, the other end).
    pairs: HashMap<u64, (OwnedFd, OwnedFd)>,
}

fn err(e: std::io::Error) -> String {
    e.to_string()
}

fn nonblock(flags: u32) -> bool {
    flags & libc::O_NONBLOCK as u32 != 0
}

impl Builder<'_> {
    fn slot(&mut self, at: RawFd, fd: BorrowedFd<'_>, cloexec: bool) -> Result<(), String> {
        let fd = build::above(fd, self.base).map_err(err)?;
        self.prepared.slots.push(Slot { at, fd, cloexec });
        Ok(())
    }

    fn bytes(&self, name: &Option<String>) -> Result<Vec<u8>, String> {
        name.as_deref().map_or(Ok(Vec::new()), |n| (self.data)(n))
    }

    fn one(&mut self, f: &ImageFd) -> Result<(), String> {
        let (at, cloexec) = (f.fd, f.facts.cloexec);
        match &f.restore {
            Restore::Open { path, flags, pos, expect } => {
                let path = self.remap(path.as_bytes());
                let fd = build::open_path(&path, *flags as i32).map_err(|e| match e.raw_os_error() {
                    Some(libc::EACCES | libc::EPERM) => format!(
                        "cannot open {}: permission denied to uid {} (the image's process)",
                        String::from_utf8_lossy(&path),
                        self.image_uid
                    ),
                    Some(libc::ELOOP) => {
                        format!("cannot open {}: a symlink or magic link is in the way", String::from_utf8_lossy(&path))
                    }
                    _ => format!("cannot open {}: {e}", String::from_utf8_lossy(&path)),
                })?;
                verify(fd.as_fd(), expect).map_err(|why| format!("{}: {why}", String::from_utf8_lossy(&path)))?;
                build::seek(fd.as_fd(), *pos).map_err(|e| format!("cannot seek to {pos}: {e}"))?;
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::Contents { data, size, flags, pos, mode, memfd, name, seals } => {
                let bytes = (self.data)(data)?;
                if bytes.len() as u64 != *size {
                    return Err(format!("the saved contents hold {} bytes, not {size}", bytes.len()));
                }
                let made = if *memfd {
                    build::memfd(name.as_ref().map_or(&b"restored"[..], |n| n.as_bytes()), &bytes).map_err(err)?
                } else {
                    let path = name.as_ref().map(|n| n.as_bytes()).unwrap_or(b"/tmp/x");
                    let dir =
                        path.rsplit_once_byte(b'/').map_or(&b"/tmp"[..], |(d, _)| if d.is_empty() { b"/" } else { d });
                    build::tmpfile(dir, *mode, &bytes)
                        .map_err(|e| format!("cannot make an unnamed file in {}: {e}", String::from_utf8_lossy(dir)))?
                };
                let access = *flags as i32 & libc::O_ACCMODE;
                // An `O_TMPFILE` file keeps that flag in its open file: reopened, it has only the dumped flags.
                let fd = if access == libc::O_RDWR && *memfd {
                    made
                } else {
                    build::reopen(made.as_fd(), *flags as i32).map_err(err)?
                };
                if *memfd {
                    build::add_seals(fd.as_fd(), *seals).map_err(|e| format!("cannot seal: {e}"))?;
                }
                build::seek(fd.as_fd(), *pos).map_err(err)?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::Inherit { name, kind } => {
                let (_, given) =
                    self.opts.inherit.iter().find(|(n, _)| n == name).ok_or_else(|| {
                        format!("its rule says `inherit \"{name}\"`: pass it with --inherit {name}=FD")
                    })?;
                let found = build::own_kind(*given).map_err(|e| format!("--inherit {name}={given}: {e}"))?;
                if found.name() != kind {
                    return Err(format!("--inherit {name}={given} is a {found}, but the image holds a {kind} there"));
                }
                // The caller handed this number in and keeps it open until the install.
                let given = build::borrow(*given);
                self.slot(at, given, cloexec)
            }
            Restore::Close => {
                self.prepared.closed.push((at, f.decision.rule.clone().unwrap_or_default()));
                Ok(())
            }
            Restore::Plugin { name } => {
                Err(format!("plugin `{name}`: the fd-table backend has no plugin of that name (it has none yet)"))
            }
            Restore::Pipe { id, write, flags, data, capacity } => {
                if !self.pipes.contains_key(id) {
                    let (r, w) = build::pipe(*flags & libc::O_DIRECT as u32 != 0, *capacity).map_err(err)?;
                    self.pipes.insert(*id, (r, w));
                }
                let bytes = self.bytes(data)?;
                let (r, w) = &self.pipes[id];
                if !bytes.is_empty() {
                    build::write_all(w.as_fd(), &bytes).map_err(|e| format!("cannot refill the pipe: {e}"))?;
                }
                let end = if *write { w } else { r };
                build::set_status_flags(end.as_fd(), *flags as i32).map_err(err)?;
                let end = build::above(end.as_fd(), self.base).map_err(err)?;
                self.prepared.slots.push(Slot { at, fd: end, cloexec });
                Ok(())
            }
            Restore::Fifo { path, flags, data } => {
                let path = self.remap(path.as_bytes());
                let holder = build::open_path(&path, libc::O_RDWR | libc::O_NONBLOCK)
                    .map_err(|e| format!("cannot open the FIFO {}: {e}", String::from_utf8_lossy(&path)))?;
                verify(holder.as_fd(), &Identity { file_type: Some(FileType::Fifo), ..Identity::default() })?;
                let bytes = self.bytes(data)?;
                build::write_all(holder.as_fd(), &bytes).map_err(|e| format!("cannot refill the FIFO: {e}"))?;
                let fd = build::open_path(&path, *flags as i32 | libc::O_NONBLOCK).map_err(err)?;
                verify(fd.as_fd(), &Identity { file_type: Some(FileType::Fifo), ..Identity::default() })?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.prepared.keep.push(holder);
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::UnixPair { pair, ino, sock_type, flags, data } => {
                let (ty, stream) = match sock_type.as_str() {
                    "stream" => (libc::SOCK_STREAM, true),
                    "dgram" => (libc::SOCK_DGRAM, false),
                    "seqpacket" => (libc::SOCK_SEQPACKET, false),
                    other => return Err(format!("a unix socket pair of type {other}")),
                };
                if !self.pairs.contains_key(pair) {
                    self.pairs.insert(*pair, build::socketpair(ty).map_err(err)?);
                }
                let (a, b) = &self.pairs[pair];
                let (mine, peer) = if ino == pair { (a, b) } else { (b, a) };
                let queued = self.bytes(data)?;
                let messages = decode_messages(&queued).ok_or("the saved queue is not a list of messages")?;
                for m in &messages {
                    build::send(peer.as_fd(), m, stream).map_err(|e| format!("cannot refill the queue: {e}"))?;
                }
                build::set_status_flags(mine.as_fd(), *flags as i32).map_err(err)?;
                let mine = build::above(mine.as_fd(), self.base).map_err(err)?;
                self.prepared.slots.push(Slot { at, fd: mine, cloexec });
                Ok(())
            }
            Restore::Inet { family: _, sock_type, addr, listen, backlog, flags } => {
                let addr: std::net::SocketAddr = addr.parse().map_err(|_| format!("`{addr}` is not an address"))?;
                let fd = build::inet(addr, sock_type == "stream", *listen, *backlog)
                    .map_err(|e| format!("cannot bind {addr}: {e}"))?;
                build::set_status_flags(fd.as_fd(), *flags as i32).map_err(err)?;
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::Eventfd { count, semaphore, flags } => {
                let fd = build::eventfd(*count, *semaphore, nonblock(*flags)).map_err(err)?;
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::Timerfd { clockid, flags, value, interval } => {
                let fd = build::timerfd(*clockid, nonblock(*flags), *value, *interval)
                    .map_err(|e| format!("cannot make a timer on clock {clockid}: {e}"))?;
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::Signalfd { signals, flags } => {
                let fd = build::signalfd(signals, nonblock(*flags)).map_err(err)?;
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::Epoll { targets, flags: _ } => {
                let fd = build::epoll().map_err(err)?;
                self.prepared.epolls.push((at, targets.clone()));
                self.slot(at, fd.as_fd(), cloexec)
            }
            Restore::Inotify { watches, flags } => {
                let fd = build::inotify(nonblock(*flags)).map_err(err)?;
                self.inotify_watches(fd.as_fd(), watches)?;
                self.slot(at, fd.as_fd(), cloexec)
            }
        }
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
        let old = format!("/proc/{}/", self.image_pid);
        match path.strip_prefix(old.as_bytes()) {
            Some(rest) => [format!("/proc/{}/", std::process::id()).as_bytes(), rest].concat(),
            None => path.to_vec(),
        }
    }
}

/// The opened fd is what the image says: its file type, a device's number, the very inode where asked.
fn verify(fd: BorrowedFd<'_>, expect: &Identity) -> Result<(), String> {
    let (mode, rdev, dev, ino, _) = build::stat(fd).map_err(err)?;
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
    if let Some((want_dev, want_ino)) = expect.inode
        && (DevNum::from_dev_t(dev), ino) != (want_dev, want_ino)
    {
        return Err("it is another file than the one dumped (inode)".into());
    }
    Ok(())
}

impl Prepared {
    /// Takes fds handed over from a live process: `(number, duplicate, close-on-exec)`.
    pub fn from_live(fds: Vec<(RawFd, OwnedFd, bool)>, closed: Vec<(RawFd, String)>) -> Result<Prepared, RestoreError> {
        let base = base_number(fds.iter().map(|(at, _, _)| *at))?;
        room(base, fds.len())?;
        let mut slots = Vec::with_capacity(fds.len());
        for (at, fd, cloexec) in fds {
            let fd = build::above(fd.as_fd(), base).map_err(|e| RestoreError::Other(e.to_string()))?;
            slots.push(Slot { at, fd, cloexec });
        }
        Ok(Prepared { slots, epolls: Vec::new(), closed, keep: Vec::new() })
    }

    /// The numbers left closed on purpose, with the rule that closed each.
    pub fn closed(&self) -> &[(RawFd, String)] {
        &self.closed
    }

    /// How many fds will be placed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no fd will be placed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Puts every fd at its number, closes every other fd of this process (stdin, stdout and stderr stay
    /// unless the image has their numbers), and re-adds epoll targets at their numbers. After this the
    /// process holds the restored table and the caller execs the command.
    pub fn install(self) -> Result<Installed, RestoreError> {
        let mut restored: Vec<RawFd> = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            build::place(s.fd.as_fd(), s.at, s.cloexec)
                .map_err(|e| RestoreError::Other(format!("cannot place fd {}: {e}", s.at)))?;
            restored.push(s.at);
        }
        let temporaries: Vec<RawFd> = self.slots.iter().map(|s| s.fd.as_raw_fd()).collect();
        drop(self.slots);
        drop(self.keep);
        restored.sort_unstable();
        let closed_numbers: Vec<RawFd> = self.closed.iter().map(|(fd, _)| *fd).collect();
        for fd in build::own_fds().map_err(|e| RestoreError::Other(e.to_string()))? {
            let stdio_kept = fd <= 2 && !closed_numbers.contains(&fd);
            if restored.binary_search(&fd).is_err() && !stdio_kept && !temporaries.contains(&fd) {
                build::close_number(fd);
            }
        }
        for &fd in &closed_numbers {
            if restored.binary_search(&fd).is_err() {
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
