//! The scanner against the fd shapes that tell a kind's usual case from its hard one (issue 8), held by a
//! real process (`examples/fdholder`): one table row per shape, with the facts that tell it apart as the
//! scanner reports them *today*. A shape nothing tells apart yet says so; new facts extend its row.

mod scan_common;

use crrules_engine::facts::{ByteString, DevNum, FdFacts, FileType};
use crrules_engine::plan::ProcessPlan;
use crrules_engine::scan::{FdEntry, ScanOptions, scan_process};
use crrules_rules::vocab::{Kind, SockFamily, SockProto, SockState, SockType};
use scan_common::Holder;
use std::collections::HashMap;

const O_EXCL: u32 = 0o200;
const O_DIRECT: u32 = 0o40000;
const O_DIRECTORY: u32 = 0o200000;

/// One fact of a shape, as the scanner reports it.
#[derive(Debug)]
enum Fact {
    /// The link text; `{dir}` stands for the holder's temp dir, `{pid}` for its pid, `{ino}` for the fd's
    /// inode.
    Link(&'static str),
    /// The link text starts with this (placeholders as in `Link`).
    LinkStarts(&'static str),
    /// The path, placeholders as in `Link`.
    Path(&'static str),
    FileType(FileType),
    Deleted(bool),
    /// The path it was opened by is gone, the file linked elsewhere.
    Unlinked(bool),
    /// All these open flags are set.
    Flags(u32),
    /// None of these open flags is set.
    NoFlags(u32),
    /// The filesystem type, from mountinfo or, for a mount no mountinfo lists, the superblock's magic.
    Fs(Option<&'static str>),
    Dev(u32, u32),
    Size(u64),
    /// A lock of this class and access held by the holder.
    Lock(&'static str, &'static str),
    TimerClock(i32),
    /// The targets of the fanotify marks, in fdinfo order.
    FanotifyMarks(&'static [&'static str]),
    /// `pidfd_pid` is a thread of the holder other than its main thread.
    PidOfOwnThread,
    /// The socket facts: family, type, state, protocol number (`None`: not reported).
    Socket(Option<SockFamily>, Option<SockType>, Option<SockState>, Option<u16>),
    /// The socket's receive queue (`None`: not reported).
    Rqueue(Option<u32>),
    /// Something waits in the socket's receive queue (a reported queue above zero).
    Queued(bool),
    /// The socket's protocol, from its kernel name.
    Proto(SockProto),
    /// A packet-mode pipe (either end).
    Packet(bool),
    /// The socket's peer address is the local address of the holder's fd of this name.
    PeerIsLocalOf(&'static str),
}

use Fact::*;

/// Whether the holder manages a shape wherever the tests run (as root), or only where the kernel
/// configuration, the sysctls and the container allow it.
#[derive(Debug, PartialEq)]
enum Held {
    Always,
    IfAllowed,
}

struct Shape {
    name: &'static str,
    held: Held,
    kind: Kind,
    facts: &'static [Fact],
}

/// A socket sock_diag does not list: family and type from its protocol name, no state, no number.
const fn named(sock_type: SockType) -> Fact {
    Socket(Some(SockFamily::Inet), Some(sock_type), None, None)
}

const SHAPES: &[Shape] = &[
    // A POSIX message queue: a deleted regular file by its link, on a mount outside every mountinfo, which
    // its superblock names.
    Shape {
        name: "mqueue",
        held: Held::Always,
        kind: Kind::Mqueue,
        facts: &[
            Link("/crrules-fdholder-{pid} (deleted)"),
            FileType(FileType::Regular),
            Deleted(true),
            Fs(Some("mqueue")),
        ],
    },
    // memfd_secret: a regular file named `/secretmem (deleted)` whose suffix is not believed (st_nlink 1):
    // its filesystem is `secretmem`, and it is not taken for a file linked elsewhere.
    Shape {
        name: "secretmem",
        held: Held::IfAllowed,
        kind: Kind::File,
        facts: &[
            Link("/secretmem (deleted)"),
            Path("/secretmem (deleted)"),
            FileType(FileType::Regular),
            Deleted(false),
            Unlinked(false),
            Fs(Some("secretmem")),
        ],
    },
    // Packet mode is an O_DIRECT on the write end only: the read end looks like any pipe.
    Shape {
        name: "pipe_packet_write",
        held: Held::Always,
        kind: Kind::Pipe,
        facts: &[Link("pipe:[{ino}]"), FileType(FileType::Fifo), Flags(O_DIRECT), Packet(true)],
    },
    Shape {
        name: "pipe_packet_read",
        held: Held::Always,
        kind: Kind::Pipe,
        facts: &[Link("pipe:[{ino}]"), FileType(FileType::Fifo), NoFlags(O_DIRECT), Packet(true)],
    },
    // CLOCK_BOOTTIME_ALARM.
    Shape {
        name: "timerfd_alarm",
        held: Held::IfAllowed,
        kind: Kind::Timerfd,
        facts: &[Link("anon_inode:[timerfd]"), TimerClock(9)],
    },
    // PIDFD_THREAD is O_EXCL in the flags; the pid is the thread's.
    Shape {
        name: "pidfd_thread",
        held: Held::IfAllowed,
        kind: Kind::Pidfd,
        facts: &[Link("anon_inode:[pidfd]"), Flags(O_EXCL), PidOfOwnThread],
    },
    Shape { name: "pidfd", held: Held::Always, kind: Kind::Pidfd, facts: &[NoFlags(O_EXCL)] },
    // Inet sockets sock_diag does not list (never bound, or reset and unhashed): family, type and protocol
    // from the protocol name; nothing tells an unbound TCP socket from a reset one.
    Shape {
        name: "tcp_unbound",
        held: Held::Always,
        kind: Kind::Socket,
        facts: &[Link("socket:[{ino}]"), named(SockType::Stream), Proto(SockProto::Tcp)],
    },
    Shape {
        name: "udp_unbound",
        held: Held::Always,
        kind: Kind::Socket,
        facts: &[named(SockType::Dgram), Proto(SockProto::Udp)],
    },
    Shape {
        name: "tcp_reset",
        held: Held::Always,
        kind: Kind::Socket,
        facts: &[named(SockType::Stream), Proto(SockProto::Tcp)],
    },
    // The peer's FIN counts as one byte of the receive queue.
    Shape {
        name: "tcp_close_wait",
        held: Held::Always,
        kind: Kind::Socket,
        facts: &[
            Socket(Some(SockFamily::Inet), Some(SockType::Stream), Some(SockState::CloseWait), Some(6)),
            Proto(SockProto::Tcp),
            Rqueue(Some(1)),
        ],
    },
    // A listener's receive queue is its accept queue.
    Shape {
        name: "tcp_listen_backlog",
        held: Held::Always,
        kind: Kind::Socket,
        facts: &[
            Socket(Some(SockFamily::Inet), Some(SockType::Stream), Some(SockState::Listen), Some(6)),
            Rqueue(Some(1)),
            Queued(true),
        ],
    },
    Shape { name: "tcp_listen", held: Held::Always, kind: Kind::Socket, facts: &[Rqueue(Some(0)), Queued(false)] },
    Shape {
        name: "tcp_backlog_client",
        held: Held::Always,
        kind: Kind::Socket,
        facts: &[
            Socket(Some(SockFamily::Inet), Some(SockType::Stream), Some(SockState::Established), Some(6)),
            PeerIsLocalOf("tcp_listen_backlog"),
        ],
    },
    // Protocols the scanner does not ask sock_diag about: family, type and protocol from the name; a raw
    // socket (always listed there) with its state and protocol number from `/proc/PID/net/raw`, an unbound
    // UDP-Lite socket (listed nowhere) with what its name says only.
    Shape {
        name: "raw_icmp",
        held: Held::IfAllowed,
        kind: Kind::Socket,
        facts: &[
            Socket(Some(SockFamily::Inet), Some(SockType::Raw), Some(SockState::Close), Some(1)),
            Proto(SockProto::Raw),
        ],
    },
    Shape {
        name: "udplite",
        held: Held::IfAllowed,
        kind: Kind::Socket,
        facts: &[named(SockType::Dgram), Proto(SockProto::Udplite)],
    },
    // Not seen here (ping_group_range, no SCTP module): only the kind and protocol are asserted.
    Shape {
        name: "ping",
        held: Held::IfAllowed,
        kind: Kind::Socket,
        facts: &[Link("socket:[{ino}]"), Proto(SockProto::Icmp)],
    },
    Shape {
        name: "sctp",
        held: Held::IfAllowed,
        kind: Kind::Socket,
        facts: &[Link("socket:[{ino}]"), Proto(SockProto::Sctp)],
    },
    // An MPTCP socket is MPTCP, whatever TCP subflow sock_diag lists under its inode.
    Shape { name: "mptcp", held: Held::IfAllowed, kind: Kind::Socket, facts: &[Proto(SockProto::Mptcp)] },
    // The dump reply waiting to be read: sock_diag's memory counters say so.
    Shape {
        name: "netlink_pending",
        held: Held::Always,
        kind: Kind::Socket,
        facts: &[
            Socket(Some(SockFamily::Netlink), Some(SockType::Raw), Some(SockState::Unconnected), Some(0)),
            Proto(SockProto::Netlink),
            Queued(true),
        ],
    },
    Shape {
        name: "fifo_deleted",
        held: Held::Always,
        kind: Kind::Fifo,
        facts: &[
            Link("{dir}/fifo-deleted (deleted)"),
            Path("{dir}/fifo-deleted"),
            FileType(FileType::Fifo),
            Deleted(true),
        ],
    },
    Shape {
        name: "dir_deleted",
        held: Held::Always,
        kind: Kind::Dir,
        facts: &[
            Link("{dir}/dir-deleted (deleted)"),
            Path("{dir}/dir-deleted"),
            FileType(FileType::Directory),
            Deleted(true),
            Flags(O_DIRECTORY),
        ],
    },
    // Unlinked by the name it was opened with, still linked as `linked-b` (st_nlink 1): no file is named
    // `linked-a (deleted)`, so the name is gone and the file lives on elsewhere.
    Shape {
        name: "file_linked_elsewhere",
        held: Held::Always,
        kind: Kind::File,
        facts: &[Link("{dir}/linked-a (deleted)"), Path("{dir}/linked-a"), Deleted(false), Unlinked(true)],
    },
    Shape {
        name: "file_deleted_big",
        held: Held::Always,
        kind: Kind::File,
        facts: &[Link("{dir}/deleted-big.bin (deleted)"), Deleted(true), Size(2 << 20)],
    },
    Shape {
        name: "posix_lock",
        held: Held::Always,
        kind: Kind::File,
        facts: &[Link("{dir}/posix.lock"), Lock("POSIX", "WRITE")],
    },
    Shape {
        name: "fanotify_fs",
        held: Held::Always,
        kind: Kind::Fanotify,
        facts: &[Link("anon_inode:[fanotify]"), FanotifyMarks(&["filesystem"])],
    },
    Shape {
        name: "fanotify_mount",
        held: Held::Always,
        kind: Kind::Fanotify,
        facts: &[Link("anon_inode:[fanotify]"), FanotifyMarks(&["mount"])],
    },
    Shape {
        name: "proc_file",
        held: Held::Always,
        kind: Kind::File,
        facts: &[Link("/proc/{pid}/status"), FileType(FileType::Regular), Fs(Some("proc"))],
    },
    Shape {
        name: "tracefs",
        held: Held::IfAllowed,
        kind: Kind::File,
        facts: &[Link("/sys/kernel/tracing/README"), FileType(FileType::Regular), Fs(Some("tracefs"))],
    },
    Shape {
        name: "debugfs",
        held: Held::IfAllowed,
        kind: Kind::File,
        facts: &[LinkStarts("/sys/kernel/debug/"), FileType(FileType::Regular), Fs(Some("debugfs"))],
    },
    Shape {
        name: "tty0",
        held: Held::IfAllowed,
        kind: Kind::Chardev,
        facts: &[Link("/dev/tty0"), FileType(FileType::Char), Dev(4, 0), Fs(Some("devtmpfs"))],
    },
    Shape {
        name: "vt1",
        held: Held::IfAllowed,
        kind: Kind::Chardev,
        facts: &[Link("/dev/tty1"), FileType(FileType::Char), Dev(4, 1), Fs(Some("devtmpfs"))],
    },
];

/// `text` with the placeholders of [`Fact::Link`] filled in for fd `f` of holder `pid`.
fn fill(text: &str, pid: i32, f: &FdFacts) -> String {
    let dir = std::env::temp_dir().join(format!("crrules-fdholder-{pid}"));
    text.replace("{dir}", &dir.to_string_lossy())
        .replace("{pid}", &pid.to_string())
        .replace("{ino}", &f.ino.map_or("?".into(), |i| i.to_string()))
}

/// Why `f` does not show `fact`, if it does not; `named` holds the facts of the holder's other fds.
fn check(fact: &Fact, f: &FdFacts, pid: i32, named: &HashMap<&str, &FdFacts>) -> Option<String> {
    let text = |b: &ByteString| b.escaped().into_owned();
    let sock = f.socket.as_ref();
    let holds = match fact {
        Link(want) => text(&f.link) == fill(want, pid, f),
        LinkStarts(want) => text(&f.link).starts_with(&fill(want, pid, f)),
        Path(want) => f.path.as_ref().map(text) == Some(fill(want, pid, f)),
        FileType(t) => f.file_type == Some(*t),
        Deleted(d) => f.deleted == *d,
        Unlinked(u) => f.unlinked == *u,
        Flags(bits) => f.flags.contains(*bits),
        NoFlags(bits) => f.flags.0 & bits == 0,
        Fs(fs) => f.fs.as_deref() == *fs,
        Dev(major, minor) => f.dev == Some(DevNum { major: *major, minor: *minor }),
        Size(size) => f.size == Some(*size),
        Lock(class, access) => f.locks.iter().any(|l| l.class == *class && l.access == *access && l.pid == pid),
        TimerClock(clock) => f.timerfd.as_ref().is_some_and(|t| t.clockid == *clock),
        FanotifyMarks(targets) => f
            .fanotify
            .as_ref()
            .is_some_and(|fan| fan.marks.iter().map(|m| m.target.as_str()).eq(targets.iter().copied())),
        PidOfOwnThread => f
            .pidfd_pid
            .is_some_and(|tid| tid != pid && std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists()),
        Socket(family, sock_type, state, protocol) => sock.is_some_and(|s| {
            (s.family, s.sock_type, s.state, s.protocol_number) == (*family, *sock_type, *state, *protocol)
        }),
        Rqueue(q) => sock.is_some_and(|s| s.rqueue == *q),
        Queued(q) => sock.is_some_and(|s| s.rqueue.is_some_and(|n| n > 0) == *q),
        Proto(p) => sock.is_some_and(|s| s.protocol == Some(*p)),
        Packet(p) => f.packet == *p,
        PeerIsLocalOf(other) => {
            let local = named.get(other).and_then(|o| o.socket.as_ref()?.local.clone());
            local.is_some() && sock.and_then(|s| s.peer.clone()) == local
        }
    };
    (!holds).then(|| format!("{fact:?}"))
}

#[test]
fn each_shape_shows_the_facts_that_tell_it_apart() {
    let h = Holder::spawn(&[]);
    let scan = scan_process(h.pid(), &ScanOptions::all()).expect("scan");
    let facts: HashMap<i32, &FdFacts> = scan.fds.iter().filter_map(FdEntry::facts).map(|f| (f.fd, f)).collect();
    let named: HashMap<&str, &FdFacts> =
        h.fds.iter().filter_map(|(name, fd)| Some((name.as_str(), *facts.get(fd)?))).collect();
    let json: serde_json::Value = serde_json::to_value(ProcessPlan::undecided(scan.clone())).unwrap();
    let json_of = |fd: i32| json["fds"].as_array().unwrap().iter().find(|f| f["fd"] == fd).cloned();

    let (mut left_out, mut wrong) = (Vec::new(), Vec::new());
    for shape in SHAPES {
        let Some(&fd) = h.fds.get(shape.name) else {
            left_out.push(shape.name);
            continue;
        };
        let f = facts.get(&fd).unwrap_or_else(|| panic!("fd {fd} ({}) missing from the scan", shape.name));
        // Shown with `--nocapture`: what the scanner says of each shape today.
        println!("{}: {}", shape.name, json_of(fd).unwrap());
        let mut bad: Vec<String> = shape.facts.iter().filter_map(|fact| check(fact, f, h.pid(), &named)).collect();
        if f.kind != shape.kind {
            bad.insert(0, format!("kind {:?}", shape.kind));
        }
        if !bad.is_empty() {
            wrong.push(format!("{} does not show {}: {}", shape.name, bad.join(", "), json_of(fd).unwrap()));
        }
    }
    println!("left out by the holder here: {left_out:?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let must: Vec<_> =
        SHAPES.iter().filter(|s| s.held == Held::Always && left_out.contains(&s.name)).map(|s| s.name).collect();
    assert!(must.is_empty(), "the holder could not open {must:?} (see its stderr)");
}

/// The table covers every shape the holder holds beyond the kinds `scan_kinds` checks.
#[test]
fn the_table_names_every_shape_the_holder_can_hold() {
    let holder = include_str!("../examples/fdholder.rs");
    for shape in SHAPES {
        assert!(holder.contains(&format!("\"{}\"", shape.name)), "the holder never opens `{}`", shape.name);
    }
    let h = Holder::spawn(&[]);
    let scan_kinds = include_str!("scan_kinds.rs");
    let unchecked: Vec<_> = h
        .fds
        .keys()
        .filter(|name| !SHAPES.iter().any(|s| s.name == name.as_str()))
        .filter(|name| !scan_kinds.contains(&format!("\"{name}\"")))
        .collect();
    assert!(unchecked.is_empty(), "no test checks the facts of {unchecked:?}");
}

/// A live file whose own name ends in ` (deleted)` is neither deleted nor unlinked, and keeps its name.
#[test]
fn a_live_name_ending_in_the_deleted_suffix_is_believed() {
    let dir = std::env::temp_dir().join(format!("crrules-live-suffix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notes (deleted)");
    std::fs::write(&path, "still here").unwrap();
    let h = Holder::spawn(&["--open", path.to_str().unwrap()]);
    let scan = scan_process(h.pid(), &ScanOptions::all()).expect("scan");
    let f = scan.fds.iter().filter_map(FdEntry::facts).find(|f| f.fd == h.fd("open0")).expect("fd");
    assert_eq!((f.deleted, f.unlinked), (false, false), "{f:?}");
    assert_eq!(f.path.as_ref().and_then(|p| p.to_str()), path.to_str());
    drop(h);
    std::fs::remove_dir_all(&dir).unwrap();
}
