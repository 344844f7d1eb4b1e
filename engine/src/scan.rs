//! A process's fds, scanned in parallel and reported in fd order: [`scan_process`] lists the fds, reads each
//! one on the rayon pool (through [`crate::proc`], the only module that touches `/proc`), then adds what is
//! read once per process (mountinfo, one sock_diag dump of the process's network namespace).
//! An fd closed mid-scan is a state ([`FdEntry::Vanished`]); a process that is gone, or that the user may
//! not inspect, is a [`ScanError`]. [`facts_of_own_fd`] reads one fd of this very process the same way.

pub use crate::error::ScanError;
pub use crate::needs::{KindMask, ScanOptions};
pub use crate::proc::ProcessHandle;

use crate::facts::{ByteString, FdFacts, SocketFacts};
use crate::proc::procnet;
use crate::proc::sockdiag::{self, Dump, SockTable};
use crate::proc::{self, FdRead, ProcessDir};
use crrules_rules::vocab::{Kind, SockProto};
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

/// One process's fds, sorted by fd number.
#[derive(Clone, Debug)]
pub struct ProcessScan {
    pub pid: i32,
    pub comm: crate::facts::ByteString,
    /// Parent, process group, session and controlling terminal; `None` in facts saved without them.
    pub session: Option<crate::facts::SessionFacts>,
    pub fds: Vec<FdEntry>,
    /// The fds of which the scanner took a duplicate (`pidfd_getfd`) to read their flags instead of
    /// fdinfo ([`ScanOptions::flags`]), ascending; never a socket's, unless the fd was replaced by one in
    /// the instant between its link and the duplicate (see [`sockets_received`]). Empty for saved facts.
    pub duplicated: Vec<i32>,
    /// The live process itself, held by a pidfd since its `/proc` directory was opened; `None` for saved
    /// facts and on kernels without pidfds.
    pub process: Option<Arc<ProcessHandle>>,
}

impl ProcessScan {
    /// Facts that are not of a live process (saved, or made by hand).
    pub fn saved(pid: i32, comm: impl Into<ByteString>, fds: Vec<FdEntry>) -> ProcessScan {
        ProcessScan { pid, comm: comm.into(), session: None, fds, duplicated: Vec::new(), process: None }
    }
}

/// Two scans are equal when they say the same about the same pid; whether a live process is held, and how
/// the facts were read, do not count.
impl PartialEq for ProcessScan {
    fn eq(&self, other: &ProcessScan) -> bool {
        (self.pid, &self.comm, &self.session, &self.fds) == (other.pid, &other.comm, &other.session, &other.fds)
    }
}
impl Eq for ProcessScan {}

/// One fd: its facts, or the note that it was closed while the scan ran. Serialised as the facts object,
/// or as `{"fd": N, "state": "vanished"}`. The facts are boxed: a scan's list of fds and a plan's, made
/// from it, stay small, and the facts (half a kilobyte an fd) are not copied from one to the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdEntry {
    Open(Box<FdFacts>),
    Vanished { fd: i32 },
}

impl FdEntry {
    /// The fd number.
    pub fn fd(&self) -> i32 {
        match self {
            FdEntry::Open(f) => f.fd,
            FdEntry::Vanished { fd } => *fd,
        }
    }

    /// The facts, unless the fd vanished.
    pub fn facts(&self) -> Option<&FdFacts> {
        match self {
            FdEntry::Open(f) => Some(f),
            FdEntry::Vanished { .. } => None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum VanishedWord {
    Vanished,
}

/// A vanished fd as written: `{"fd": 4, "state": "vanished"}`.
#[derive(Serialize)]
struct VanishedOut {
    fd: i32,
    state: VanishedWord,
}

/// A vanished fd as read back: `{"fd": 4, "state": "vanished"}`.
#[derive(Deserialize)]
struct VanishedIn {
    fd: i32,
}

impl Serialize for FdEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FdEntry::Open(f) => f.serialize(s),
            FdEntry::Vanished { fd } => VanishedOut { fd: *fd, state: VanishedWord::Vanished }.serialize(s),
        }
    }
}

/// Read as an object first, so that a mistake in an fd's facts is reported as itself (`unknown kind `xyz``,
/// `missing field `deleted``), not as an object that fits neither form; `state` tells the forms apart.
impl<'de> Deserialize<'de> for FdEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FdEntry, D::Error> {
        use serde::de::Error;
        let object = serde_json::Value::deserialize(d)?;
        let entry = match object.get("state") {
            None => FdEntry::Open(Box::new(FdFacts::deserialize(object).map_err(D::Error::custom)?)),
            Some(state) if state == "vanished" => {
                FdEntry::Vanished { fd: VanishedIn::deserialize(object).map_err(D::Error::custom)?.fd }
            }
            Some(state) => {
                return Err(D::Error::custom(format!(
                    "unknown fd state {state} (an fd closed while it was read is written `\"state\": \"vanished\"`)"
                )));
            }
        };
        if entry.fd() < 0 {
            return Err(D::Error::custom(format!("`fd` {} is not an fd number (0 or more)", entry.fd())));
        }
        Ok(entry)
    }
}

/// Scans every fd of `pid`, in parallel on the current rayon pool; the result is in fd order.
pub fn scan_process(pid: i32, opts: &ScanOptions) -> Result<ProcessScan, ScanError> {
    let dir = ProcessDir::open(pid)?;
    let fds = dir.list_fds()?;
    let prefetch = fds.len() >= PREFETCH_FDS;
    // With the unix dump made beside the reads, a socket's protocol name is read afterwards, and only for
    // the sockets that dump does not list (most sockets are unix ones, and the dump says all of it).
    let per_fd = ScanOptions { sockets: opts.sockets && !prefetch, ..*opts };
    // Into a list allocated here, each fd's slot written where it was read.
    let read_all = || {
        let mut read = Vec::with_capacity(fds.len());
        fds.par_iter().map(|&fd| dir.read_fd(fd, &per_fd)).collect_into_vec(&mut read);
        read
    };
    // A large fd table is read on every core for a while: the per-process reads (mountinfo, the unix
    // sock_diag dump) then run beside it instead of after it, on a core that would otherwise wait.
    let (read, early) = if prefetch {
        rayon::join(read_all, || Early {
            mounts: opts.mounts.then(|| dir.mounts()),
            // Unix sockets are the common case and their dump is cheap; the others (a TCP dump walks the
            // kernel's whole connection table) are made afterwards, and only for sockets it did not list.
            sockets: opts.sockets.then(|| dir.socket_table(&[Dump::Unix]).ok()),
        })
    } else {
        (read_all(), Early::default())
    };
    // Boxed here, not on the reading threads: boxes kept from there would grow those threads' malloc arenas
    // a page at a time, an `mprotect` each.
    let mut duplicated = Vec::new();
    let mut entries: Vec<FdEntry> = Vec::with_capacity(fds.len());
    for (&fd, r) in fds.iter().zip(read) {
        entries.push(match r? {
            FdRead::Open(facts, dup) => {
                if dup {
                    duplicated.push(fd);
                }
                FdEntry::Open(Box::new(facts))
            }
            FdRead::Gone => FdEntry::Vanished { fd },
        });
    }
    // A process that starts exiting loses every fd, possibly halfway through the listing: only a process
    // still alive after the reads had a whole fd table when it was listed.
    if !dir.alive() {
        return Err(ScanError::Exited { pid });
    }
    complete(&dir, opts, &mut entries, early)?;
    Ok(ProcessScan {
        pid,
        comm: dir.comm().clone(),
        session: Some(dir.session()),
        fds: entries,
        duplicated,
        process: dir.handle(),
    })
}

/// The facts of one fd this process holds, read as [`scan_process`] reads each fd of a process (its
/// `/proc/thread-self/fd/N` link, `stat`, fdinfo, then its filesystem from mountinfo): for a program handed
/// an fd, such as the CRIU plugin, which is given CRIU's own duplicate of each fd it is asked about. The
/// facts' `fd` is this process's number for it, and `cloexec` this process's flag.
pub fn facts_of_own_fd(fd: BorrowedFd<'_>) -> Result<FdFacts, ScanError> {
    let dir = ProcessDir::own()?;
    let opts = ScanOptions { duplicates: false, ..ScanOptions::all() };
    let number = fd.as_raw_fd();
    let mut entries = match dir.read_fd(number, &opts)? {
        FdRead::Open(facts, _) => vec![FdEntry::Open(Box::new(facts))],
        // Borrowed, so open throughout: only an fd that changed on every read ends here.
        FdRead::Gone => return Err(unreadable_own_fd(number)),
    };
    complete(&dir, &opts, &mut entries, Early::default())?;
    match entries.pop() {
        Some(FdEntry::Open(facts)) => Ok(*facts),
        _ => Err(unreadable_own_fd(number)),
    }
}

fn unreadable_own_fd(fd: i32) -> ScanError {
    ScanError::Io {
        pid: nix::unistd::getpid().as_raw(),
        what: format!("fd {fd}"),
        source: io::Error::other("it changed on every read"),
    }
}

/// What is read once per process, added to the fds read: filesystems (mountinfo, then superblocks for
/// files no mountinfo lists), sockets (sock_diag) and packet-mode pipes.
fn complete(dir: &ProcessDir, opts: &ScanOptions, entries: &mut [FdEntry], early: Early) -> Result<(), ScanError> {
    if opts.mounts && entries.iter().any(|e| e.facts().is_some_and(|f| f.mnt_id.is_some())) {
        let mounts = match early.mounts {
            Some(mounts) => mounts?,
            None => dir.mounts()?,
        };
        add_filesystems(&mounts, entries);
        // A file on a mount no mountinfo lists (a message queue, secret memory): its superblock says. Only
        // fds whose fdinfo was read name a mount at all.
        // One superblock, one `statfs`: every memfd of a process shares one.
        let mut by_dev: HashMap<Option<crate::facts::DevNum>, Option<&'static str>> = HashMap::new();
        for f in open_facts(entries).filter(|f| f.fs.is_none() && f.mnt_id.is_some() && f.path.is_some()) {
            let fs = *by_dev.entry(f.st_dev).or_insert_with(|| dir.fs_by_magic(f.fd));
            f.fs = fs.map(str::to_owned);
        }
    }
    if opts.sockets {
        add_sockets(dir, entries, early.sockets, opts.link);
    }
    if opts.fdinfo.union(opts.flags).contains(Kind::Pipe) {
        mark_packet_pipes(entries);
    }
    Ok(())
}

fn open_facts(entries: &mut [FdEntry]) -> impl Iterator<Item = &mut FdFacts> {
    entries.iter_mut().filter_map(|e| match e {
        FdEntry::Open(f) => Some(&mut **f),
        FdEntry::Vanished { .. } => None,
    })
}

/// From this many fds on, the per-process reads are made beside the fd reads (see [`scan_process`]).
const PREFETCH_FDS: usize = 1024;

/// Per-process facts read beside the fd reads: `None` when not read early.
#[derive(Default)]
struct Early {
    mounts: Option<Result<HashMap<u64, String>, ScanError>>,
    /// The unix dump of the process's namespace; `Some(None)` when it could not be made.
    sockets: Option<Option<SockTable>>,
}

fn add_filesystems(mounts: &HashMap<u64, String>, entries: &mut [FdEntry]) {
    for f in open_facts(entries) {
        if let Some(fs) = f.mnt_id.and_then(|id| mounts.get(&id)) {
            f.fs = Some(fs.clone());
        }
    }
}

/// Adds what sock_diag knows to each socket's facts (its protocol name was read with the fd): type,
/// state, addresses, peer, queues. The unix dump may have been made beside the fd reads (`early`); then
/// only the dumps that can list the sockets it missed are made. Raw, ping and UDP-Lite sockets, which the
/// scanner does not ask sock_diag about, are looked up in their `/proc/PID/net` tables. A socket nothing
/// lists (unbound, reset) keeps what its name says; one that is no longer open is a vanished fd. With
/// `link`, a TCP connection over a local address is given its peer's inode, as a unix socket is.
fn add_sockets(dir: &ProcessDir, entries: &mut [FdEntry], early: Option<Option<SockTable>>, link: bool) {
    let wanted = |e: &FdEntry| e.facts().is_some_and(|f| f.kind == Kind::Socket);
    if !entries.iter().any(wanted) {
        return;
    }
    let mut made: Vec<Dump> = if early.is_some() { vec![Dump::Unix] } else { Vec::new() };
    // An early dump that could not be made (another namespace we may not join): neither can the others,
    // and every socket keeps what its name says.
    let can_dump = !matches!(early, Some(None));
    let mut table = early.flatten().unwrap_or_default();
    // Beside an early dump the fds were read without their protocol names: read those the dump missed.
    for entry in entries.iter_mut().filter(|e| wanted(e)) {
        let FdEntry::Open(f) = entry else { continue };
        if f.socket.is_some() || f.ino.is_some_and(|ino| table.by_ino.contains_key(&ino)) {
            continue;
        }
        match dir.sockprotoname(f.fd) {
            Ok(name) => f.socket = Some(sockdiag::facts_of_protoname(&name)),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH) => *entry = FdEntry::Vanished { fd: f.fd },
            Err(_) => f.socket = Some(SocketFacts::default()),
        }
    }
    if can_dump {
        let listed = |f: &FdFacts| f.ino.is_some_and(|ino| table.by_ino.contains_key(&ino));
        let mut which: Vec<Dump> = open_facts(entries)
            .filter(|f| f.kind == Kind::Socket && !listed(f))
            .filter_map(|f| f.socket.as_ref().and_then(sockdiag::dump_for))
            .filter(|d| !made.contains(d))
            .collect();
        which.sort_unstable();
        which.dedup();
        if !which.is_empty()
            && let Ok(listed) = dir.socket_table(&which)
        {
            table.by_ino.extend(listed.by_ino);
            made.extend(which);
        }
        if link {
            pair_tcp_connections(dir, entries, &mut table, &made);
        }
    }
    // Raw, ping and UDP-Lite sockets: their tables in `/proc/PID/net` (in the process's namespace, so
    // readable whether or not sock_diag could be asked).
    let listed = |f: &FdFacts| f.ino.is_some_and(|ino| table.by_ino.contains_key(&ino));
    let mut tables: Vec<procnet::Table> = open_facts(entries)
        .filter(|f| f.kind == Kind::Socket && !listed(f))
        .filter_map(|f| f.socket.as_ref().and_then(procnet::table_for))
        .collect();
    tables.sort_unstable();
    tables.dedup();
    for t in tables {
        table.by_ino.extend(dir.proc_net_table(t));
    }
    for entry in entries.iter_mut().filter(|e| wanted(e)) {
        let FdEntry::Open(f) = entry else { continue };
        let named = f.socket.take().unwrap_or_default();
        match f.ino.and_then(|ino| table.by_ino.get(&ino)) {
            Some(listed) => f.socket = Some(merge(named, listed.clone())),
            // Closed since it was read: say so rather than decide a socket that is gone.
            None if matches!(dir.sockprotoname(f.fd), Err(e) if e == nix::errno::Errno::ENOENT) => {
                *entry = FdEntry::Vanished { fd: f.fd };
            }
            None => f.socket = Some(named),
        }
    }
}

/// Gives each TCP connection of the process over a local address its peer's inode, from the TCP dumps of
/// its network namespace (see [`sockdiag::pair_tcp`]): the peer is a socket of the same namespace, whoever
/// holds it. A connection from an IPv4 socket may end in an IPv6 socket that accepts both, and the other way
/// round: when some end is not found in the dumps `made`, the other family's is made once and searched.
/// MPTCP sockets, listed as their TCP subflows, are left alone.
fn pair_tcp_connections(dir: &ProcessDir, entries: &mut [FdEntry], table: &mut SockTable, made: &[Dump]) {
    let tcp = |f: &FdFacts| f.socket.as_ref().is_some_and(|s| s.protocol == Some(SockProto::Tcp));
    let mine: Vec<u64> =
        open_facts(entries).filter(|f| f.kind == Kind::Socket && tcp(f)).filter_map(|f| f.ino).collect();
    if mine.is_empty() {
        return;
    }
    let alone = sockdiag::pair_tcp(table, &mine);
    let ipv4 = |ino: &u64| table.by_ino.get(ino).and_then(sockdiag::tcp_endpoints).is_some_and(|(_, r)| r.is_ipv4());
    let more: Vec<Dump> = [Dump::Tcp, Dump::Tcp6].into_iter().filter(|d| !made.contains(d)).collect();
    if more.is_empty() || !alone.iter().any(ipv4) {
        return;
    }
    if let Ok(other) = dir.socket_table(&more) {
        for (ino, f) in other.by_ino {
            table.by_ino.entry(ino).or_insert(f);
        }
        sockdiag::pair_tcp(table, &alone);
    }
}

/// sock_diag's facts, but the protocol the socket's own name gives (an MPTCP socket is listed as its
/// TCP subflow).
fn merge(named: SocketFacts, listed: SocketFacts) -> SocketFacts {
    let protocol = named.protocol.filter(|p| *p != SockProto::Other).or(listed.protocol);
    SocketFacts {
        protocol,
        family: listed.family.or(named.family),
        sock_type: listed.sock_type.or(named.sock_type),
        ..listed
    }
}

/// Marks both ends of a packet-mode pipe: the kernel sets `O_DIRECT` on the write end only, and the ends
/// share an inode.
fn mark_packet_pipes(entries: &mut [FdEntry]) {
    const O_DIRECT: u32 = 0o40000;
    let packet: Vec<u64> = open_facts(entries)
        .filter(|f| f.kind == Kind::Pipe && f.flags.contains(O_DIRECT))
        .filter_map(|f| f.ino)
        .collect();
    if packet.is_empty() {
        return;
    }
    for f in open_facts(entries).filter(|f| f.kind == Kind::Pipe) {
        f.packet = f.ino.is_some_and(|ino| packet.contains(&ino));
    }
}

/// How many sockets this process has received as duplicates of scanned fds: 0 unless an fd was replaced by
/// a socket in the instant between its link and its duplicate (it was then read again through `/proc`;
/// duplicates are taken only where receiving a socket leaves its cgroup labels as they were).
pub fn sockets_received() -> usize {
    proc::sockets_received()
}

/// `pid`'s whole subtree (children, their children...), not including `pid`, ascending.
pub fn descendants(pid: i32) -> Result<Vec<i32>, ScanError> {
    if !proc::exists(pid) {
        return Err(ScanError::NoSuchProcess { pid });
    }
    proc::descendants(pid).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ScanError::NoSuchProcess { pid },
        io::ErrorKind::PermissionDenied => {
            ScanError::PermissionDenied { pid, as_root: proc::effective_uid() == 0, source: e }
        }
        _ => ScanError::Io { pid, what: "children".into(), source: e },
    })
}

/// Every pid on the host (in the scanner's pid namespace), ascending.
pub fn all_pids() -> Result<Vec<i32>, ScanError> {
    proc::all_pids().map_err(|source| ScanError::ListProcesses { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serialise_as_facts_or_vanished() {
        let open = FdEntry::Open(Box::new(FdFacts::new(3, Kind::Pipe, "pipe:[7]")));
        let gone = FdEntry::Vanished { fd: 4 };
        let json = serde_json::to_value(vec![&open, &gone]).unwrap();
        assert_eq!(json[0]["kind"], "pipe");
        assert_eq!(json[1], serde_json::json!({"fd": 4, "state": "vanished"}));
        let back: Vec<FdEntry> = serde_json::from_value(json).unwrap();
        assert_eq!(back, vec![open, gone]);
        let error = |text: &str| serde_json::from_str::<FdEntry>(text).unwrap_err().to_string();
        assert!(error(r#"{"fd": 4, "state": "open"}"#).starts_with("unknown fd state \"open\""));
        assert!(error(r#"{"fd": -4, "state": "vanished"}"#).starts_with("`fd` -4 is not an fd number"));
        let facts = r#"{"fd": 4, "kind": "xyz", "link": "x", "deleted": false, "flags": [], "cloexec": false}"#;
        assert!(error(facts).starts_with("unknown kind `xyz`"), "{}", error(facts));
        assert!(error(r#"{"fd": 4, "kind": "pipe"}"#).starts_with("missing field `link`"));
    }

    #[test]
    fn errors_name_the_pid() {
        let e = scan_process(-5, &ScanOptions::default()).unwrap_err();
        assert_eq!(e.to_string(), "process -5 does not exist");
        assert_eq!(e.pid(), Some(-5));
        assert!(matches!(descendants(i32::MAX), Err(ScanError::NoSuchProcess { pid: i32::MAX })));
    }

    #[test]
    fn facts_of_an_own_fd() {
        use std::io::{Seek, SeekFrom, Write};
        let path = std::env::temp_dir().join(format!("crrules-own-fd-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"0123456789").unwrap();
        file.seek(SeekFrom::Start(4)).unwrap();
        use std::os::fd::AsFd;
        let facts = facts_of_own_fd(file.as_fd()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(facts.fd, file.as_raw_fd());
        assert_eq!((facts.kind, facts.pos, facts.size), (Kind::File, Some(4), Some(10)));
        assert_eq!(facts.path.as_ref().map(|p| p.as_bytes()), Some(path.as_os_str().as_encoded_bytes()));
        assert!(facts.cloexec && facts.fs.is_some(), "{facts:?}");
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
        let facts = facts_of_own_fd(null.as_fd()).unwrap();
        assert_eq!((facts.kind, facts.dev), (Kind::Chardev, Some(crate::facts::DevNum { major: 1, minor: 3 })));
        assert!(facts.flags.contains(libc::O_WRONLY as u32));
    }

    #[test]
    fn scans_itself() {
        let me = std::process::id() as i32;
        let scan = scan_process(me, &ScanOptions::default()).unwrap();
        assert_eq!(scan.pid, me);
        assert!(!scan.comm.is_empty());
        assert!(scan.fds.windows(2).all(|w| w[0].fd() < w[1].fd()));
        let minimal = scan_process(me, &ScanOptions::minimal()).unwrap();
        assert!(minimal.fds.iter().filter_map(FdEntry::facts).all(|f| f.pos.is_none() && f.socket.is_none()));
    }
}
