//! Links the fds of the processes checked together (a process, a tree, a cgroup, a container), the facts no
//! single fd shows: which fds share an open file (`shared_with`, compared with `kcmp`, not by inode), and
//! where the other end of each pipe, FIFO, unix socket, TCP connection over a local address and terminal is
//! (`peer`: inside, outside with the process holding it when one is found, or none), plus whether each session's leader is inside. Pure logic
//! over the scans; what it reads from the system comes through [`Probe`], so tests give it data.
//!
//! Cost: fds are grouped by identity in one pass; only fds whose inode another fd also holds are compared
//! with `kcmp`, by a sort (n log n in the size of each group); the other ends are looked up in a map; and
//! when the processes hold ends at all, one pass over the links of every other process's fds finds the
//! ends held outside (see [`crate::proc::peers::search`]).

use crate::facts::{ByteString, DevNum, FdFacts, FdRef, SessionFacts};
use crate::needs::{KindMask, ScanOptions};
use crate::proc::peers::{self, End, Holder, Object, PTMX, Search, Wanted};
use crate::proc::sockdiag;
use crate::scan::{FdEntry, ProcessScan};
use crrules_rules::vocab::{Access, Kind, PeerPlace, SockFamily, SockProto, SockState};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// What linking reads from the system.
pub(crate) trait Probe: Sync {
    /// How two fds compare as open files (`Equal`: the same one), in an order consistent across calls;
    /// `None` when it cannot be told (a process exited).
    fn compare_files(&self, a: FdRef, b: FdRef) -> Option<Ordering>;
    /// A pty master's index, when its facts lack it.
    fn tty_index(&self, at: FdRef) -> Option<u32>;
    /// The fds of processes other than `inside` holding the wanted ends.
    fn search(&self, wanted: &Wanted, inside: &HashSet<i32>) -> Search;
    /// Command names of processes outside.
    fn comms(&self, pids: &[i32]) -> HashMap<i32, ByteString>;
    /// True while a process of that pid exists.
    fn exists(&self, pid: i32) -> bool;
}

/// The running system.
pub(crate) struct LiveProbe;

impl Probe for LiveProbe {
    fn compare_files(&self, a: FdRef, b: FdRef) -> Option<Ordering> {
        peers::compare_files(a.pid, a.fd, b.pid, b.fd).ok()
    }

    fn tty_index(&self, at: FdRef) -> Option<u32> {
        peers::tty_index(at.pid, at.fd)
    }

    fn search(&self, wanted: &Wanted, inside: &HashSet<i32>) -> Search {
        // No listing of /proc at all: nothing can be said of outside, as if no process could be read.
        peers::search(wanted, inside).unwrap_or(Search { holders: Vec::new(), unreadable: 1 })
    }

    fn comms(&self, pids: &[i32]) -> HashMap<i32, ByteString> {
        peers::comms(pids.iter().copied())
    }

    fn exists(&self, pid: i32) -> bool {
        peers::exists(pid)
    }
}

/// The reads linking needs on top of `opts`: pipes' and FIFOs' access modes (which end an fd holds) and
/// sockets' peers.
pub(crate) fn reads_for(opts: ScanOptions) -> ScanOptions {
    if !opts.link {
        return opts;
    }
    let ends = KindMask::NONE.with(Kind::Pipe).with(Kind::Fifo);
    ScanOptions { flags: opts.flags.union(ends), sockets: true, ..opts }
}

/// True when `opts` ask for anything linking gives.
pub(crate) fn wanted(opts: &ScanOptions) -> bool {
    opts.link || opts.shared
}

/// Links the fds of `scans`, the processes checked together, in place: the other ends and sessions with
/// `opts.link`, the shared open files with `opts.shared`.
pub(crate) fn link(scans: &mut [&mut ProcessScan], opts: &ScanOptions, probe: &dyn Probe) {
    let inside: HashSet<i32> = scans.iter().map(|s| s.pid).collect();
    if opts.shared {
        link_shared(scans, probe);
    }
    if opts.link {
        link_peers(scans, &inside, probe);
        for scan in scans.iter_mut() {
            if let Some(session) = &mut scan.session {
                session.leader = Some(leader_place(session, &inside, probe));
            }
        }
    }
}

fn leader_place(session: &SessionFacts, inside: &HashSet<i32>, probe: &dyn Probe) -> PeerPlace {
    if inside.contains(&session.sid) {
        PeerPlace::Inside
    } else if session.sid == 0 {
        // The kernel shows session 0 when the leader lives in an ancestor pid namespace: alive, not ours.
        PeerPlace::Outside
    } else if probe.exists(session.sid) {
        PeerPlace::Outside
    } else {
        PeerPlace::None
    }
}

/// Where an fd is: its process's index among the scans and its own index among that process's fds.
type At = (usize, usize);

fn facts_at<'a>(scans: &'a [&mut ProcessScan], (p, f): At) -> &'a FdFacts {
    match &scans[p].fds[f] {
        FdEntry::Open(facts) => facts,
        FdEntry::Vanished { .. } => unreachable!("only open fds are linked"),
    }
}

fn facts_at_mut<'a>(scans: &'a mut [&mut ProcessScan], (p, f): At) -> &'a mut FdFacts {
    match &mut scans[p].fds[f] {
        FdEntry::Open(facts) => facts,
        FdEntry::Vanished { .. } => unreachable!("only open fds are linked"),
    }
}

fn fd_ref(scans: &[&mut ProcessScan], at: At) -> FdRef {
    FdRef { pid: scans[at.0].pid, fd: facts_at(scans, at).fd }
}

/// What two fds of one open file certainly have in common, whatever the process does meanwhile: the same
/// kind, filesystem, inode and name (the anonymous inodes share one inode, and differ by name), access mode
/// (`F_SETFL` cannot change it) and, for an eventfd, its counter's id. Not the offset, which a process
/// reading between two reads of the scan moves.
type Identity<'a> = (Kind, Option<DevNum>, Option<u64>, Option<&'a ByteString>, u32, Option<u64>);

fn identity(f: &FdFacts) -> Identity<'_> {
    const O_ACCMODE_PATH: u32 = 0o3 | 0o10000000;
    let eventfd = f.eventfd.as_ref().and_then(|e| e.id);
    (f.kind, f.st_dev, f.ino, f.name.as_ref(), f.flags.0 & O_ACCMODE_PATH, eventfd)
}

/// `shared_with`: the fds of each open file held more than once, found by sorting each identity group with
/// `kcmp`'s order.
fn link_shared(scans: &mut [&mut ProcessScan], probe: &dyn Probe) {
    let mut groups: HashMap<Identity<'_>, Vec<At>> = HashMap::new();
    for (p, scan) in scans.iter().enumerate() {
        for (f, entry) in scan.fds.iter().enumerate() {
            if let FdEntry::Open(facts) = entry {
                groups.entry(identity(facts)).or_default().push((p, f));
            }
        }
    }
    let groups: Vec<Vec<At>> = groups.into_values().filter(|g| g.len() > 1).collect();
    // Each group sorted on its own: in parallel.
    let order: HashMap<i32, usize> = scans.iter().enumerate().map(|(i, s)| (s.pid, i)).collect();
    let scans_ref: &[&mut ProcessScan] = scans;
    let shared: Vec<(At, Vec<FdRef>)> = groups
        .par_iter()
        .flat_map_iter(|group| {
            let refs: Vec<FdRef> = group.iter().map(|&at| fd_ref(scans_ref, at)).collect();
            let mut out = Vec::new();
            let Some(sorted) = sort_by_file(refs.len(), |a, b| probe.compare_files(refs[a], refs[b])) else {
                return out;
            };
            for run in runs(&sorted, |a, b| probe.compare_files(refs[a], refs[b]) == Some(Ordering::Equal)) {
                if run.len() < 2 {
                    continue;
                }
                for &i in run {
                    let mut others: Vec<FdRef> = run.iter().filter(|&&j| j != i).map(|&j| refs[j]).collect();
                    others.sort_by_key(|r| (order.get(&r.pid).copied().unwrap_or(usize::MAX), r.fd));
                    out.push((group[i], others));
                }
            }
            out
        })
        .collect();
    for (at, others) in shared {
        facts_at_mut(scans, at).shared_with = others;
    }
}

/// The indexes `0..n` sorted by a comparison that may fail: `None` if any comparison failed. A merge sort
/// of our own, as the standard sorts may panic when a comparison is not a total order (a failed `kcmp`
/// is no order at all).
fn sort_by_file(n: usize, mut cmp: impl FnMut(usize, usize) -> Option<Ordering>) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut scratch = Vec::with_capacity(n);
    let mut width = 1;
    while width < n {
        scratch.clear();
        for start in (0..n).step_by(2 * width) {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j) = (start, mid);
            while i < mid && j < end {
                if cmp(order[j], order[i])? == Ordering::Less {
                    scratch.push(order[j]);
                    j += 1;
                } else {
                    scratch.push(order[i]);
                    i += 1;
                }
            }
            scratch.extend_from_slice(&order[i..mid]);
            scratch.extend_from_slice(&order[j..end]);
        }
        std::mem::swap(&mut order, &mut scratch);
        width *= 2;
    }
    Some(order)
}

/// The runs of equal neighbours in a sorted order.
fn runs(order: &[usize], mut equal: impl FnMut(usize, usize) -> bool) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || !equal(order[i - 1], order[i]) {
            out.push(&order[start..i]);
            start = i;
        }
    }
    out
}

/// An end of an object.
type EndOf = (Object, End);

/// The ends an fd holds, the ends that are its peers, and whether the kernel says its other end exists even
/// where no fd shows it (a socket's peer in flight, or not accepted yet).
struct Ends {
    held: Vec<EndOf>,
    peers: Vec<EndOf>,
    exists: bool,
}

/// The ends an fd holds, and the ends that are its peers.
fn ends_of(f: &FdFacts, session: Option<&SessionFacts>, tty_index: Option<u32>) -> Option<Ends> {
    let (held, peers) = match f.kind {
        Kind::Socket => return socket_ends(f),
        _ => other_ends(f, session, tty_index)?,
    };
    Some(Ends { held, peers, exists: false })
}

/// A socket's ends. A unix socket's peer is the socket sock_diag names. A TCP connection's is the socket
/// the scan found with its addresses swapped, when its remote address is local (see
/// [`sockdiag::remote_is_local`]); a connection to another host has no place (`peer` says where on this
/// host the other end is); one over a local address whose peer was not found exists all the same unless
/// the peer has closed its side (it is then gone, or orphaned by its process); a listening, bound or
/// unconnected TCP socket has no peer. A TCP socket sock_diag does not list (never bound, reset, or in a
/// namespace that could not be asked) has no place either: nothing is known of its connection.
fn socket_ends(f: &FdFacts) -> Option<Ends> {
    let s = f.socket.as_ref()?;
    let me = (Object::Socket(f.ino?), End::Socket);
    let peer = s.peer_ino.filter(|&p| p != 0).map(|p| (Object::Socket(p), End::Socket));
    let ends = |peers: Vec<EndOf>, exists: bool| Some(Ends { held: vec![me], peers, exists });
    match s.family? {
        SockFamily::Unix => ends(peer.into_iter().collect(), peer.is_some()),
        SockFamily::Inet | SockFamily::Inet6 if s.protocol == Some(SockProto::Tcp) => {
            if let Some(peer) = peer {
                return ends(vec![peer], true);
            }
            let state = s.state?;
            let Some((local, remote)) = sockdiag::tcp_endpoints(s).filter(|_| state != SockState::Listen) else {
                return ends(Vec::new(), false);
            };
            if !sockdiag::remote_is_local(local, remote) {
                return None;
            }
            use SockState::{Close, CloseWait, Closing, LastAck, TimeWait};
            ends(Vec::new(), !matches!(state, CloseWait | LastAck | Closing | TimeWait | Close))
        }
        _ => None,
    }
}

/// The ends a pipe, FIFO or terminal fd holds, and the ends that are its peers.
fn other_ends(f: &FdFacts, session: Option<&SessionFacts>, tty_index: Option<u32>) -> Option<(Vec<EndOf>, Vec<EndOf>)> {
    let pipe_like = |object: Object| {
        let (read, write) = match Access::from_flags(f.flags.0) {
            Access::Ro => (true, false),
            Access::Wo => (false, true),
            Access::Rw => (true, true),
        };
        let mut held = Vec::new();
        let mut peers = Vec::new();
        if read {
            held.push((object, End::Read));
            peers.push((object, End::Write));
        }
        if write {
            held.push((object, End::Write));
            peers.push((object, End::Read));
        }
        (held, peers)
    };
    match f.kind {
        Kind::Pipe => Some(pipe_like(Object::Pipe(f.ino?))),
        Kind::Fifo => {
            let dev = f.st_dev?.to_dev_t();
            Some(pipe_like(Object::Fifo { dev, ino: f.ino? }))
        }
        Kind::Chardev => {
            let dev = f.dev?;
            if dev == PTMX {
                let index = f.tty_index.or(tty_index)?;
                return Some((vec![(Object::Pty(index), End::Master)], vec![(Object::Pty(index), End::Slave)]));
            }
            // `/dev/tty` is the process's controlling terminal.
            let dev = if dev == (DevNum { major: 5, minor: 0 }) { session?.tty? } else { dev };
            let index = peers::pty_index(dev)?;
            Some((vec![(Object::Pty(index), End::Slave)], vec![(Object::Pty(index), End::Master)]))
        }
        _ => None,
    }
}

/// `peer`, `peer_pid`, `peer_fd`, `peer_comm`.
fn link_peers(scans: &mut [&mut ProcessScan], inside: &HashSet<i32>, probe: &dyn Probe) {
    // Every end held inside, by whom (in scan order), and what each fd looks for.
    let mut held: HashMap<EndOf, Vec<At>> = HashMap::new();
    let mut looking: Vec<(At, Vec<EndOf>, bool)> = Vec::new();
    let mut wanted = Wanted::default();
    for (p, scan) in scans.iter().enumerate() {
        for (f, entry) in scan.fds.iter().enumerate() {
            let FdEntry::Open(facts) = entry else { continue };
            let master_index = (facts.kind == Kind::Chardev && facts.dev == Some(PTMX) && facts.tty_index.is_none())
                .then(|| probe.tty_index(FdRef { pid: scan.pid, fd: facts.fd }))
                .flatten();
            let Some(Ends { held: ends, peers: peer_ends, exists }) =
                ends_of(facts, scan.session.as_ref(), master_index)
            else {
                continue;
            };
            for end in ends {
                held.entry(end).or_default().push((p, f));
            }
            if facts.kind == Kind::Fifo
                && let Some(path) = &facts.path
            {
                wanted.fifo_paths.insert(path.as_bytes().to_vec());
            }
            wanted.ends.extend(peer_ends.iter().copied());
            looking.push(((p, f), peer_ends, exists));
        }
    }
    if looking.is_empty() {
        return;
    }
    let search = probe.search(&wanted, inside);
    let mut outside: HashMap<EndOf, Vec<&Holder>> = HashMap::new();
    for h in &search.holders {
        outside.entry((h.object, h.end)).or_default().push(h);
    }
    let mut outside_pids: Vec<i32> = search.holders.iter().map(|h| h.pid).collect();
    outside_pids.sort_unstable();
    outside_pids.dedup();
    let comms = probe.comms(&outside_pids);

    let mut results: Vec<(At, Peer)> = Vec::with_capacity(looking.len());
    for (at, peer_ends, exists) in &looking {
        let outside_holder = peer_ends
            .iter()
            .flat_map(|end| outside.get(end).into_iter().flatten())
            .min_by_key(|h| (h.pid, h.fd))
            .map(|h| FdRef { pid: h.pid, fd: h.fd });
        let inside_holder = peer_ends
            .iter()
            .flat_map(|end| held.get(end).into_iter().flatten())
            .filter(|&&other| other != *at)
            .min()
            .map(|&other| fd_ref(scans, other));
        let peer = match (outside_holder, inside_holder) {
            (Some(h), _) => Peer { place: PeerPlace::Outside, holder: Some(h), comm: comms.get(&h.pid).cloned() },
            (None, Some(h)) => Peer { place: PeerPlace::Inside, holder: Some(h), comm: comm_of(scans, h.pid) },
            // No fd holds the other end that could be seen: none, unless some processes could not be read, or
            // the kernel says a socket's peer exists (held where no fd shows it: in flight, another namespace,
            // a TCP connection's peer not accepted yet).
            (None, None) if search.unreadable > 0 || *exists => {
                Peer { place: PeerPlace::Outside, holder: None, comm: None }
            }
            (None, None) => Peer { place: PeerPlace::None, holder: None, comm: None },
        };
        results.push((*at, peer));
    }
    for (at, peer) in results {
        let f = facts_at_mut(scans, at);
        f.peer = Some(peer.place);
        f.peer_pid = peer.holder.map(|h| h.pid);
        f.peer_fd = peer.holder.map(|h| h.fd);
        f.peer_comm = peer.comm;
    }
}

fn comm_of(scans: &[&mut ProcessScan], pid: i32) -> Option<ByteString> {
    scans.iter().find(|s| s.pid == pid).map(|s| s.comm.clone())
}

struct Peer {
    place: PeerPlace,
    holder: Option<FdRef>,
    comm: Option<ByteString>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{OpenFlags, SocketFacts};

    /// The system as data: which open file each fd holds, the ends processes outside hold.
    #[derive(Default)]
    struct Fake {
        /// Open file ids; an fd not listed cannot be compared (its process exited).
        files: HashMap<FdRef, u64>,
        outside: Vec<Holder>,
        unreadable: usize,
        comms: HashMap<i32, ByteString>,
        alive: HashSet<i32>,
        tty_index: HashMap<FdRef, u32>,
    }

    impl Probe for Fake {
        fn compare_files(&self, a: FdRef, b: FdRef) -> Option<Ordering> {
            Some(self.files.get(&a)?.cmp(self.files.get(&b)?))
        }
        fn tty_index(&self, at: FdRef) -> Option<u32> {
            self.tty_index.get(&at).copied()
        }
        fn search(&self, wanted: &Wanted, inside: &HashSet<i32>) -> Search {
            let holders = self
                .outside
                .iter()
                .filter(|h| !inside.contains(&h.pid) && wanted.ends.contains(&(h.object, h.end)))
                .cloned()
                .collect();
            Search { holders, unreadable: self.unreadable }
        }
        fn comms(&self, pids: &[i32]) -> HashMap<i32, ByteString> {
            pids.iter().filter_map(|p| Some((*p, self.comms.get(p)?.clone()))).collect()
        }
        fn exists(&self, pid: i32) -> bool {
            self.alive.contains(&pid)
        }
    }

    const RO: u32 = 0;
    const WO: u32 = 1;

    fn pipe(fd: i32, ino: u64, flags: u32) -> FdFacts {
        let mut f = FdFacts::new(fd, Kind::Pipe, format!("pipe:[{ino}]"));
        f.ino = Some(ino);
        f.flags = OpenFlags(flags);
        f
    }

    fn unix(fd: i32, ino: u64, peer: Option<u64>) -> FdFacts {
        let mut f = FdFacts::new(fd, Kind::Socket, format!("socket:[{ino}]"));
        f.ino = Some(ino);
        f.socket = Some(SocketFacts { family: Some(SockFamily::Unix), peer_ino: peer, ..SocketFacts::default() });
        f
    }

    /// A TCP socket as the scan gives it: its addresses from sock_diag and, for a connection over a local
    /// address whose other end the scan found, that end's inode.
    fn tcp(fd: i32, ino: u64, state: SockState, local: &str, remote: Option<&str>, peer: Option<u64>) -> FdFacts {
        let mut f = FdFacts::new(fd, Kind::Socket, format!("socket:[{ino}]"));
        f.ino = Some(ino);
        let family = if local.starts_with('[') { SockFamily::Inet6 } else { SockFamily::Inet };
        f.socket = Some(SocketFacts {
            family: Some(family),
            protocol: Some(SockProto::Tcp),
            state: Some(state),
            local: Some(local.into()),
            peer: remote.map(Into::into),
            peer_ino: peer,
            ..SocketFacts::default()
        });
        f
    }

    fn chardev(fd: i32, path: &str, major: u32, minor: u32) -> FdFacts {
        let mut f = FdFacts::new(fd, Kind::Chardev, path);
        f.dev = Some(DevNum { major, minor });
        f
    }

    fn file(fd: i32, ino: u64) -> FdFacts {
        let mut f = FdFacts::new(fd, Kind::File, "/var/log/x");
        f.ino = Some(ino);
        f.st_dev = Some(DevNum { major: 254, minor: 0 });
        f
    }

    fn process(pid: i32, comm: &str, sid: i32, fds: Vec<FdFacts>) -> ProcessScan {
        let mut scan = ProcessScan::saved(pid, comm, fds.into_iter().map(|f| FdEntry::Open(Box::new(f))).collect());
        scan.session = Some(SessionFacts { ppid: 1, pgrp: sid, sid, tty: None, leader: None });
        scan
    }

    fn holder(object: Object, end: End, pid: i32, fd: i32) -> Holder {
        Holder { object, end, pid, fd }
    }

    fn run(mut scans: Vec<ProcessScan>, probe: &Fake) -> Vec<ProcessScan> {
        let mut refs: Vec<&mut ProcessScan> = scans.iter_mut().collect();
        link(&mut refs, &ScanOptions::all(), probe);
        scans
    }

    /// The facts of fd `fd` of `pid`.
    fn fd_of(scans: &[ProcessScan], pid: i32, fd: i32) -> &FdFacts {
        let scan = scans.iter().find(|s| s.pid == pid).unwrap();
        scan.fds.iter().find_map(|e| e.facts().filter(|f| f.fd == fd)).unwrap()
    }

    /// `(peer, peer_pid, peer_fd, peer_comm)` of fd `fd` of `pid`.
    fn peer_of(
        scans: &[ProcessScan],
        pid: i32,
        fd: i32,
    ) -> (Option<PeerPlace>, Option<i32>, Option<i32>, Option<String>) {
        let f = fd_of(scans, pid, fd);
        (f.peer, f.peer_pid, f.peer_fd, f.peer_comm.as_ref().map(|c| c.to_string()))
    }

    fn shared_of(scans: &[ProcessScan], pid: i32, fd: i32) -> Vec<(i32, i32)> {
        fd_of(scans, pid, fd).shared_with.iter().map(|r| (r.pid, r.fd)).collect()
    }

    use PeerPlace::{Inside, None as Nowhere, Outside};

    /// `producer | filter`, checked together, with the filter's output read by a logger outside.
    #[test]
    fn a_pipeline_with_a_logger_outside() {
        let scans = vec![
            process(10, "producer", 10, vec![pipe(1, 100, WO)]),
            process(11, "filter", 10, vec![pipe(0, 100, RO), pipe(1, 200, WO)]),
        ];
        let probe = Fake {
            outside: vec![holder(Object::Pipe(200), End::Read, 50, 0), holder(Object::Pipe(100), End::Read, 60, 7)],
            comms: HashMap::from([(50, "logger".into())]),
            ..Fake::default()
        };
        let scans = run(scans, &probe);
        // Pid 60 holds the *read* end of pipe 100, as the filter does: no peer of the filter's, but one of
        // the producer's.
        assert_eq!(peer_of(&scans, 10, 1), (Some(Outside), Some(60), Some(7), None));
        assert_eq!(peer_of(&scans, 11, 0), (Some(Inside), Some(10), Some(1), Some("producer".into())));
        assert_eq!(peer_of(&scans, 11, 1), (Some(Outside), Some(50), Some(0), Some("logger".into())));
        assert_eq!(scans[0].session.unwrap().leader, Some(Inside));
    }

    /// A socketpair across a fork, a connection to a daemon outside, a listener, and a peer the kernel
    /// names but no fd shows.
    #[test]
    fn unix_sockets() {
        let scans = vec![
            process(20, "parent", 5, vec![unix(3, 300, Some(301)), unix(4, 500, Some(501)), unix(5, 600, None)]),
            process(21, "child", 5, vec![unix(3, 301, Some(300)), unix(6, 700, Some(701))]),
        ];
        let probe = Fake {
            outside: vec![holder(Object::Socket(501), End::Socket, 400, 9)],
            comms: HashMap::from([(400, "daemon".into())]),
            alive: HashSet::from([5]),
            ..Fake::default()
        };
        let scans = run(scans, &probe);
        assert_eq!(peer_of(&scans, 20, 3), (Some(Inside), Some(21), Some(3), Some("child".into())));
        assert_eq!(peer_of(&scans, 21, 3), (Some(Inside), Some(20), Some(3), Some("parent".into())));
        assert_eq!(peer_of(&scans, 20, 4), (Some(Outside), Some(400), Some(9), Some("daemon".into())));
        assert_eq!(peer_of(&scans, 20, 5), (Some(Nowhere), None, None, None));
        assert_eq!(peer_of(&scans, 21, 6), (Some(Outside), None, None, None));
        assert_eq!(scans[1].session.unwrap().leader, Some(Outside), "session 5's leader is alive, not checked");
    }

    /// TCP: a loopback connection between two processes checked together (IPv4, and IPv6 to an IPv4-mapped
    /// dual-stack end), one to a database outside, one to the host's own address, a connection whose peer
    /// is not accepted yet and one whose peer closed; a listener, a connection to another host, a socket
    /// sock_diag did not list, and sockets that are not TCP.
    #[test]
    fn tcp_connections() {
        use SockState::{CloseWait, Established, FinWait2, Listen};
        let lo = |port: u16| format!("127.0.0.1:{port}");
        let web = vec![
            tcp(3, 900, Listen, "127.0.0.1:8080", None, None),
            tcp(4, 901, Established, &lo(8080), Some(&lo(41000)), Some(910)),
            tcp(5, 902, Established, &lo(41500), Some(&lo(5432)), Some(950)),
            tcp(6, 903, Established, "192.0.2.2:41600", Some("93.184.216.34:443"), None),
            tcp(7, 904, Established, "192.0.2.2:41700", Some("192.0.2.2:9000"), Some(960)),
            tcp(8, 905, Established, &lo(41800), Some(&lo(7000)), None),
            tcp(9, 906, CloseWait, &lo(41900), Some(&lo(7001)), None),
            tcp(10, 907, FinWait2, "[::ffff:127.0.0.1]:8443", Some("[::ffff:127.0.0.1]:42000"), Some(911)),
        ];
        let mut unlisted = FdFacts::new(11, Kind::Socket, "socket:[908]");
        unlisted.ino = Some(908);
        unlisted.socket = Some(SocketFacts {
            family: Some(SockFamily::Inet),
            protocol: Some(SockProto::Tcp),
            ..SocketFacts::default()
        });
        let mut udp = tcp(12, 909, Established, &lo(5353), Some(&lo(53)), None);
        udp.socket.as_mut().unwrap().protocol = Some(SockProto::Udp);
        let mut mptcp = tcp(13, 912, Established, &lo(42100), Some(&lo(7002)), None);
        mptcp.socket.as_mut().unwrap().protocol = Some(SockProto::Mptcp);
        let (mut web, client) = (
            web,
            vec![
                tcp(3, 910, Established, &lo(41000), Some(&lo(8080)), Some(901)),
                tcp(4, 911, Established, &lo(42000), Some(&lo(8443)), Some(907)),
            ],
        );
        web.extend([unlisted, udp, mptcp]);
        let scans = vec![process(60, "web", 60, web), process(61, "client", 60, client)];
        let probe = Fake {
            outside: vec![
                holder(Object::Socket(950), End::Socket, 70, 12),
                holder(Object::Socket(960), End::Socket, 71, 3),
            ],
            comms: HashMap::from([(70, "postgres".into()), (71, "api".into())]),
            ..Fake::default()
        };
        let scans = run(scans, &probe);
        assert_eq!(peer_of(&scans, 60, 4), (Some(Inside), Some(61), Some(3), Some("client".into())));
        assert_eq!(peer_of(&scans, 61, 3), (Some(Inside), Some(60), Some(4), Some("web".into())));
        assert_eq!(peer_of(&scans, 60, 10), (Some(Inside), Some(61), Some(4), Some("client".into())));
        assert_eq!(peer_of(&scans, 61, 4), (Some(Inside), Some(60), Some(10), Some("web".into())));
        assert_eq!(peer_of(&scans, 60, 5), (Some(Outside), Some(70), Some(12), Some("postgres".into())));
        assert_eq!(peer_of(&scans, 60, 7), (Some(Outside), Some(71), Some(3), Some("api".into())));
        assert_eq!(peer_of(&scans, 60, 3), (Some(Nowhere), None, None, None), "a listener has no peer");
        assert_eq!(peer_of(&scans, 60, 6), (None, None, None, None), "another host is no place on this one");
        assert_eq!(peer_of(&scans, 60, 8), (Some(Outside), None, None, None), "alive, not accepted yet");
        assert_eq!(peer_of(&scans, 60, 9), (Some(Nowhere), None, None, None), "the peer closed its side");
        for fd in [11, 12, 13] {
            assert_eq!(peer_of(&scans, 60, fd), (None, None, None, None), "fd {fd}");
        }
        // The child alone: the web server is outside, found by the pass over the host.
        let alone =
            vec![process(61, "client", 60, vec![tcp(3, 910, Established, &lo(41000), Some(&lo(8080)), Some(901))])];
        let probe = Fake {
            outside: vec![holder(Object::Socket(901), End::Socket, 60, 4)],
            comms: HashMap::from([(60, "web".into())]),
            ..Fake::default()
        };
        let alone = run(alone, &probe);
        assert_eq!(peer_of(&alone, 61, 3), (Some(Outside), Some(60), Some(4), Some("web".into())));
    }

    /// Session 0 is one whose leader lives in an ancestor pid namespace (a job started inside a container
    /// from a shell outside it): outside, though no process here can be that pid; a session whose leader
    /// was never seen alive has none.
    #[test]
    fn session_leaders() {
        let scans =
            vec![process(40, "job", 0, vec![]), process(41, "orphan", 39, vec![]), process(42, "x", 40, vec![])];
        let scans = run(scans, &Fake::default());
        let leaders: Vec<_> = scans.iter().map(|s| s.session.unwrap().leader).collect();
        assert_eq!(leaders, [Some(Outside), Some(Nowhere), Some(Inside)]);
    }

    /// A shell on /dev/pts/4 whose master a terminal server outside holds; `/dev/tty` is the same terminal;
    /// a pty pair whose both sides are inside; a master whose index only fdinfo tells.
    #[test]
    fn terminals() {
        let mut shell = process(30, "bash", 30, vec![chardev(0, "/dev/pts/4", 136, 4), chardev(9, "/dev/tty", 5, 0)]);
        shell.session.as_mut().unwrap().tty = Some(DevNum { major: 136, minor: 4 });
        let mut master = chardev(5, "/dev/ptmx", 5, 2);
        master.tty_index = Some(7);
        let unknown_master = chardev(6, "/dev/ptmx", 5, 2);
        let scans = vec![
            shell,
            process(
                31,
                "tmux",
                30,
                vec![master, unknown_master, chardev(1, "/dev/pts/7", 136, 7), chardev(2, "/dev/null", 1, 3)],
            ),
        ];
        let probe = Fake {
            outside: vec![holder(Object::Pty(4), End::Master, 2, 11), holder(Object::Pty(8), End::Slave, 90, 0)],
            comms: HashMap::from([(2, "sshd".into())]),
            tty_index: HashMap::from([(FdRef { pid: 31, fd: 6 }, 8)]),
            ..Fake::default()
        };
        let scans = run(scans, &probe);
        assert_eq!(peer_of(&scans, 30, 0), (Some(Outside), Some(2), Some(11), Some("sshd".into())));
        assert_eq!(peer_of(&scans, 30, 9), (Some(Outside), Some(2), Some(11), Some("sshd".into())));
        assert_eq!(peer_of(&scans, 31, 5), (Some(Inside), Some(31), Some(1), Some("tmux".into())));
        assert_eq!(peer_of(&scans, 31, 1), (Some(Inside), Some(31), Some(5), Some("tmux".into())));
        assert_eq!(peer_of(&scans, 31, 6), (Some(Outside), Some(90), Some(0), None));
        assert_eq!(peer_of(&scans, 31, 2), (None, None, None, None), "/dev/null has no other end");
    }

    /// A pipe whose other end no process holds; the same when some processes could not be read.
    #[test]
    fn no_other_end() {
        let scans = || vec![process(40, "reader", 40, vec![pipe(0, 800, RO)])];
        let found = run(scans(), &Fake::default());
        assert_eq!(peer_of(&found, 40, 0), (Some(Nowhere), None, None, None));
        let found = run(scans(), &Fake { unreadable: 3, ..Fake::default() });
        assert_eq!(peer_of(&found, 40, 0), (Some(Outside), None, None, None), "it may be held where we cannot see");
    }

    /// Fds of one open file (after dup and fork) share it; another open file of the same inode does not; a
    /// group whose comparison fails is left unlinked.
    #[test]
    fn shared_open_files() {
        let scans = vec![
            process(50, "a", 50, vec![file(1, 9), file(2, 9), file(3, 9), file(4, 77)]),
            process(51, "b", 50, vec![file(1, 9), file(4, 77)]),
        ];
        let r = |pid, fd| FdRef { pid, fd };
        let probe = Fake {
            files: HashMap::from([(r(50, 1), 1), (r(50, 2), 1), (r(51, 1), 1), (r(50, 3), 2), (r(50, 4), 3)]),
            ..Fake::default()
        };
        let scans = run(scans, &probe);
        assert_eq!(shared_of(&scans, 50, 1), [(50, 2), (51, 1)]);
        assert_eq!(shared_of(&scans, 51, 1), [(50, 1), (50, 2)]);
        assert_eq!(shared_of(&scans, 50, 3), []);
        // Fd 4 of pid 51 cannot be compared: neither fd 4 is said to be shared.
        assert_eq!(shared_of(&scans, 50, 4), []);
        assert_eq!(shared_of(&scans, 51, 4), []);
    }

    #[test]
    fn the_merge_sort_sorts_and_stops_at_a_failed_comparison() {
        let keys = [5u32, 3, 9, 3, 1, 8, 8, 0, 2, 7, 6];
        for n in 0..=keys.len() {
            let order = sort_by_file(n, |a, b| Some(keys[a].cmp(&keys[b]))).unwrap();
            let sorted: Vec<u32> = order.iter().map(|&i| keys[i]).collect();
            let mut expect = keys[..n].to_vec();
            expect.sort();
            assert_eq!(sorted, expect);
            let groups: Vec<usize> = runs(&order, |a, b| keys[a] == keys[b]).iter().map(|r| r.len()).collect();
            assert_eq!(groups.iter().sum::<usize>(), n);
        }
        assert_eq!(sort_by_file(4, |a, b| (a != 2 && b != 2).then_some(Ordering::Less)), None);
    }
}
