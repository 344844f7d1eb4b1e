//! The scanner against a real process holding one fd of every kind (`examples/fdholder`): the facts of
//! each fd, as the kernel has them.

mod scan_common;

use crrules_engine::facts::{ByteString, DevNum, FdFacts, FileType};
use crrules_engine::plan::ProcessPlan;
use crrules_engine::scan::{FdEntry, KindMask, ProcessScan, ScanOptions, scan_process};
use crrules_rules::vocab::{Kind, SockFamily, SockState, SockType};
use scan_common::Holder;
use std::collections::{BTreeSet, HashMap};

const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_APPEND: u32 = 0o2000;
const O_PATH: u32 = 0o10000000;

fn by_fd(scan: &ProcessScan) -> HashMap<i32, &FdFacts> {
    scan.fds.iter().filter_map(FdEntry::facts).map(|f| (f.fd, f)).collect()
}

struct Seen<'a> {
    holder: &'a Holder,
    facts: HashMap<i32, &'a FdFacts>,
}

impl Seen<'_> {
    fn get(&self, name: &str) -> &FdFacts {
        let fd = self.holder.fd(name);
        self.facts.get(&fd).unwrap_or_else(|| panic!("fd {fd} ({name}) missing from the scan"))
    }
}

#[test]
fn every_kind_is_reported_with_its_facts() {
    let h = Holder::spawn(&[]);
    let scan = scan_process(h.pid(), &ScanOptions::default()).expect("scan");
    assert_eq!(scan.pid, h.pid());
    assert_eq!(scan.comm, "fdholder");
    assert!(scan.fds.windows(2).all(|w| w[0].fd() < w[1].fd()), "fds in order");
    assert!(scan.fds.iter().all(|e| e.facts().is_some()), "nothing vanished: {:?}", scan.fds);
    let s = Seen { holder: &h, facts: by_fd(&scan) };

    let f = s.get("file_at_offset");
    assert_eq!(f.kind, Kind::File);
    assert!(f.path.as_ref().and_then(ByteString::to_str).unwrap().ends_with("/offset.txt"), "{f:?}");
    assert_eq!((f.pos, f.size, f.file_type), (Some(42), Some(100), Some(FileType::Regular)));
    assert!(f.flags.contains(O_RDWR) && f.cloexec && !f.deleted);
    assert_eq!(f.locks.len(), 1, "{:?}", f.locks);
    let lock = &f.locks[0];
    assert_eq!((lock.class.as_str(), lock.access.as_str(), lock.pid), ("FLOCK", "WRITE", h.pid()));
    assert_eq!((lock.start, lock.end), (0, None));
    assert!(f.mnt_id.is_some() && f.fs.as_deref().is_some_and(|fs| !fs.is_empty()), "{f:?}");
    assert!(f.uid == Some(0) && f.st_dev.is_some() && f.ino.is_some());

    let a = s.get("append");
    assert!(a.flags.contains(O_APPEND | O_WRONLY), "{:?}", a.flags);
    assert!(!a.cloexec, "opened without O_CLOEXEC");

    let d = s.get("deleted");
    assert_eq!((d.kind, d.deleted, d.size), (Kind::File, true, Some(1000)));
    assert!(d.path.as_ref().and_then(ByteString::to_str).unwrap().ends_with("/deleted.bin"), "suffix stripped: {d:?}");
    assert!(d.link.as_bytes().ends_with(b"/deleted.bin (deleted)"));

    let dir = s.get("dir");
    assert_eq!((dir.kind, dir.file_type), (Kind::Dir, Some(FileType::Directory)));

    let op = s.get("opath");
    assert_eq!(op.kind, Kind::File);
    assert!(op.flags.contains(O_PATH));

    let null = s.get("devnull");
    assert_eq!(
        (null.kind, null.dev, null.path.as_ref().and_then(ByteString::to_str)),
        (Kind::Chardev, Some(DevNum { major: 1, minor: 3 }), Some("/dev/null"))
    );

    let master = s.get("pty_master");
    assert_eq!((master.kind, master.dev), (Kind::Chardev, Some(DevNum { major: 5, minor: 2 })));
    let index = master.tty_index.expect("tty-index");
    let slave = s.get("pty_slave");
    assert_eq!((slave.kind, slave.dev), (Kind::Chardev, Some(DevNum { major: 136, minor: index })));
    assert_eq!(slave.path.as_ref().and_then(ByteString::to_str), Some(format!("/dev/pts/{index}").as_str()));

    let fifo = s.get("fifo");
    assert_eq!((fifo.kind, fifo.file_type), (Kind::Fifo, Some(FileType::Fifo)));
    assert!(fifo.path.as_ref().and_then(ByteString::to_str).unwrap().ends_with("/fifo"));

    let (pr, pw) = (s.get("pipe_read"), s.get("pipe_write"));
    assert_eq!((pr.kind, pw.kind), (Kind::Pipe, Kind::Pipe));
    assert_eq!(pr.ino, pw.ino);
    assert_eq!(pr.link, format!("pipe:[{}]", pr.ino.unwrap()));
    assert_eq!(pr.path, None);
    assert!(pw.flags.contains(O_WRONLY) && !pr.flags.contains(O_WRONLY));

    let (ua, ub) = (s.get("unix_stream_a"), s.get("unix_stream_b"));
    let (sa, sb) = (ua.socket.as_ref().expect("socket facts"), ub.socket.as_ref().expect("socket facts"));
    assert_eq!(
        (sa.family, sa.sock_type, sa.state),
        (Some(SockFamily::Unix), Some(SockType::Stream), Some(SockState::Established))
    );
    assert_eq!((sa.peer_ino, sb.peer_ino), (ub.ino, ua.ino));
    assert_eq!(sb.rqueue, Some(6), "`queued` waits at b: {sb:?}");

    let ud = s.get("unix_dgram").socket.as_ref().expect("socket facts");
    assert_eq!((ud.family, ud.sock_type), (Some(SockFamily::Unix), Some(SockType::Dgram)));
    assert!(ud.local.as_ref().and_then(ByteString::to_str).unwrap().ends_with("/dgram.sock"), "{ud:?}");

    let tcp = s.get("tcp_listen").socket.as_ref().expect("socket facts");
    assert_eq!(
        (tcp.family, tcp.sock_type, tcp.state),
        (Some(SockFamily::Inet), Some(SockType::Stream), Some(SockState::Listen))
    );
    assert_eq!(tcp.protocol_number, Some(6));
    assert!(
        tcp.local.as_ref().and_then(ByteString::to_str).unwrap().starts_with("127.0.0.1:") && tcp.peer.is_none(),
        "{tcp:?}"
    );

    let udp = s.get("udp6").socket.as_ref().expect("socket facts");
    assert_eq!(
        (udp.family, udp.sock_type, udp.protocol_number),
        (Some(SockFamily::Inet6), Some(SockType::Dgram), Some(17))
    );
    assert!(udp.local.as_ref().and_then(ByteString::to_str).unwrap().starts_with("[::1]:"), "{udp:?}");

    let nl = s.get("netlink").socket.as_ref().expect("socket facts");
    assert_eq!(
        (nl.family, nl.sock_type, nl.protocol_number),
        (Some(SockFamily::Netlink), Some(SockType::Raw), Some(0))
    );
    assert!(nl.local.as_ref().and_then(ByteString::to_str).is_some_and(|port| port != "0"), "bound: {nl:?}");
    // sock_diag lists only bound netlink sockets: the protocol name still gives the family.
    let unbound = s.get("netlink_unbound").socket.as_ref().expect("socket facts");
    assert_eq!((unbound.family, unbound.sock_type), (Some(SockFamily::Netlink), None));

    let ev = s.get("eventfd");
    assert_eq!(ev.kind, Kind::Eventfd);
    let e = ev.eventfd.as_ref().expect("eventfd facts");
    assert_eq!((e.count, e.semaphore), (5, Some(true)));

    let ep = s.get("epoll");
    assert_eq!(ep.kind, Kind::Epoll);
    let targets: BTreeSet<(i32, u64)> = ep.epoll.as_ref().unwrap().iter().map(|t| (t.tfd, t.data)).collect();
    assert_eq!(targets, BTreeSet::from([(h.fd("eventfd"), 0xe1), (h.fd("pipe_read"), 0xe2)]));

    let sig = s.get("signalfd");
    assert_eq!(sig.kind, Kind::Signalfd);
    assert_eq!(sig.sigmask.as_deref(), Some(&[10][..]));

    let t = s.get("timerfd");
    assert_eq!(t.kind, Kind::Timerfd);
    let tf = t.timerfd.as_ref().expect("timerfd facts");
    assert_eq!((tf.clockid, tf.it_interval), (1, (30, 0)));
    assert!(tf.it_value.0 <= 30 && tf.it_value != (0, 0), "armed: {tf:?}");

    let ino = s.get("inotify");
    assert_eq!((ino.kind, ino.name.as_ref().and_then(ByteString::to_str)), (Kind::Inotify, Some("[inotify]")));
    assert_eq!(ino.inotify.as_ref().map(Vec::len), Some(1));

    let fan = s.get("fanotify");
    assert_eq!(fan.kind, Kind::Fanotify);
    let fa = fan.fanotify.as_ref().expect("fanotify facts");
    assert_eq!(fa.marks.iter().map(|m| m.target.as_str()).collect::<Vec<_>>(), vec!["inode"]);

    let m = s.get("memfd");
    assert_eq!(
        (m.kind, m.path.as_ref().and_then(ByteString::to_str), m.size, m.deleted),
        (Kind::Memfd, Some("/memfd:holder-buf"), Some(4096), false)
    );
    assert_eq!(m.pos, Some(4096));

    let p = s.get("pidfd");
    assert_eq!((p.kind, p.pidfd_pid), (Kind::Pidfd, Some(h.pid())));

    for (name, kind) in
        [("io_uring", Kind::IoUring), ("perf_event", Kind::PerfEvent), ("userfaultfd", Kind::Userfaultfd)]
    {
        let f = s.get(name);
        assert_eq!(f.kind, kind, "{f:?}");
        assert_eq!(f.name.as_ref().and_then(ByteString::to_str), Some(format!("[{name}]").as_str()));
        assert_eq!(f.file_type, Some(FileType::None));
    }

    let ns = s.get("netns");
    assert_eq!((ns.kind, ns.name.as_ref().and_then(ByteString::to_str)), (Kind::Nsfs, Some("net")));
    assert_eq!(ns.link, format!("net:[{}]", ns.ino.unwrap()));

    // What the scan says, it can read back (facts alone, as `crrules facts` writes them).
    let json = serde_json::to_string(&ProcessPlan::undecided(scan.clone())).unwrap();
    let back: ProcessPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back.into_scan(), scan);
}

fn facts_of(scan: &ProcessScan, fd: i32) -> &FdFacts {
    scan.fds.iter().filter_map(FdEntry::facts).find(|f| f.fd == fd).expect("fd in scan")
}

#[test]
fn fewer_facts_give_the_same_kinds() {
    let h = Holder::spawn(&[]);
    let full = scan_process(h.pid(), &ScanOptions::default()).expect("scan");
    for opts in [
        ScanOptions::minimal(),
        ScanOptions { stat: false, ..ScanOptions::default() },
        ScanOptions {
            fdinfo: KindMask::NONE,
            flags: KindMask::NONE,
            mount_ids: KindMask::NONE,
            mounts: false,
            ..ScanOptions::default()
        },
    ] {
        let part = scan_process(h.pid(), &opts).expect("scan");
        let kinds =
            |s: &ProcessScan| s.fds.iter().filter_map(FdEntry::facts).map(|f| (f.fd, f.kind)).collect::<Vec<_>>();
        assert_eq!(kinds(&part), kinds(&full), "{opts:?}");
        // Inodes come from stat, fdinfo, or the link text of pipes, sockets and namespaces.
        let inos = |s: &ProcessScan| s.fds.iter().filter_map(FdEntry::facts).map(|f| f.ino).collect::<Vec<_>>();
        if opts.stat || !opts.fdinfo.is_empty() {
            assert_eq!(inos(&part), inos(&full), "{opts:?}");
        }
        assert_eq!(facts_of(&part, h.fd("pipe_read")).ino, facts_of(&full, h.fd("pipe_read")).ino);
        let facts = by_fd(&part);
        assert_eq!(facts[&h.fd("devnull")].dev, Some(DevNum { major: 1, minor: 3 }), "paths are always stat'ed");
        assert_eq!(facts[&h.fd("file_at_offset")].pos.is_some(), !opts.fdinfo.is_empty());
        assert_eq!(facts[&h.fd("tcp_listen")].socket.is_some(), opts.sockets);
        assert_eq!(facts[&h.fd("eventfd")].mode.is_some(), opts.stat);
    }
}

#[test]
fn sockets_of_another_network_namespace() {
    let h = Holder::spawn(&["--netns"]);
    let scan = scan_process(h.pid(), &ScanOptions::default()).expect("scan");
    let s = Seen { holder: &h, facts: by_fd(&scan) };
    let own_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(s.get("netns").link, own_net.to_string_lossy().as_ref(), "the holder is in its own namespace");
    // These sockets exist only in the holder's namespace: found there, not in ours.
    let (ua, ub) = (s.get("unix_stream_a"), s.get("unix_stream_b"));
    let sa = ua.socket.as_ref().expect("socket facts");
    assert_eq!((sa.family, sa.sock_type, sa.peer_ino), (Some(SockFamily::Unix), Some(SockType::Stream), ub.ino));
    let nl = s.get("netlink").socket.as_ref().expect("socket facts");
    assert_eq!((nl.family, nl.protocol_number), (Some(SockFamily::Netlink), Some(0)));
    assert!(!h.fds.contains_key("tcp_listen"));
}

/// A large fd table takes the path where mountinfo and sock_diag are read beside the fd reads: the facts
/// are the same as on the small-table path.
#[test]
fn a_large_fd_table_gets_socket_and_filesystem_facts_too() {
    let h = Holder::spawn(&["--many", "2000"]);
    let scan = scan_process(h.pid(), &ScanOptions::default()).unwrap();
    assert!(scan.fds.len() >= 2000);
    let facts: Vec<_> = scan.fds.iter().filter_map(|e| e.facts()).collect();
    let sockets: Vec<_> = facts.iter().filter(|f| f.kind == Kind::Socket).collect();
    assert!(sockets.len() > 100, "{} sockets", sockets.len());
    for s in sockets {
        let sock = s.socket.as_ref().unwrap();
        assert_eq!(sock.family, Some(crrules_rules::vocab::SockFamily::Unix), "{s:?}");
        assert!(sock.peer_ino.is_some(), "{s:?}");
    }
    let devices: Vec<_> = facts.iter().filter(|f| f.kind == Kind::Chardev).collect();
    assert!(!devices.is_empty() && devices.iter().all(|f| f.fs.as_deref() == Some("devtmpfs")), "{devices:?}");
}
