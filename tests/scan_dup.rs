//! Flags read from a duplicate of each fd (`pidfd_getfd`) instead of its fdinfo: the same facts as the
//! `/proc` reads for every kind `fdholder` holds, and never a duplicate of a socket (a churning process,
//! whose fds may turn into sockets between a link and a duplicate, is in `scan_errors`: the count of
//! sockets received is per test process).

mod scan_common;

use crrules_engine::facts::FdFacts;
use crrules_engine::scan::{FdEntry, KindMask, ProcessScan, ScanOptions, scan_process, sockets_received};
use crrules_rules::vocab::Kind;
use scan_common::{Holder, holder_path};
use std::collections::BTreeMap;

const O_CLOEXEC: u32 = 0o2000000;

/// Flags of every kind, mount ids and filesystems: what a policy that tests flags, access and `fs` asks.
fn flags_scan(stat: bool, duplicates: bool) -> ScanOptions {
    ScanOptions {
        stat,
        flags: KindMask::ALL,
        mount_ids: KindMask::ALL,
        mounts: true,
        duplicates,
        ..ScanOptions::minimal()
    }
}

/// The facts both ways of reading give: a duplicate tells neither close-on-exec (the fd table's) nor what
/// fdinfo alone says (position, locks, the per-kind lines), which the `/proc` reads bring along.
fn comparable(f: &FdFacts) -> FdFacts {
    let mut f = f.clone();
    f.flags.0 &= !O_CLOEXEC;
    f.cloexec = false;
    f.pos = None;
    f.locks.clear();
    (f.eventfd, f.timerfd, f.sigmask, f.epoll, f.inotify, f.fanotify) = (None, None, None, None, None, None);
    (f.pidfd_pid, f.tty_index) = (None, None);
    f
}

/// fdholder with its stderr on /dev/null: a log file there (`cargo test > log 2>&1`) grows between the two
/// scans compared, and its size with it.
fn quiet_holder() -> Holder {
    Holder::spawn_with(&holder_path(), &[], |c| {
        c.stderr(std::process::Stdio::null());
    })
}

fn by_fd(scan: &ProcessScan) -> BTreeMap<i32, &FdFacts> {
    scan.fds.iter().filter_map(FdEntry::facts).map(|f| (f.fd, f)).collect()
}

#[test]
fn duplicates_give_the_facts_of_the_proc_reads_and_never_touch_a_socket() {
    let h = quiet_holder();
    for stat in [false, true] {
        let dup = scan_process(h.pid(), &flags_scan(stat, true)).expect("scan with duplicates");
        let procfs = scan_process(h.pid(), &flags_scan(stat, false)).expect("scan through /proc");
        assert!(procfs.duplicated.is_empty(), "{:?}", procfs.duplicated);
        let (dup_facts, proc_facts) = (by_fd(&dup), by_fd(&procfs));
        assert_eq!(dup_facts.keys().collect::<Vec<_>>(), proc_facts.keys().collect::<Vec<_>>());
        let mut kinds = std::collections::BTreeSet::new();
        for (fd, d) in &dup_facts {
            let p = proc_facts[fd];
            assert_eq!(comparable(d), comparable(p), "fd {fd} (stat: {stat})");
            let duplicated = dup.duplicated.binary_search(fd).is_ok();
            if d.kind == Kind::Socket {
                assert!(!duplicated, "socket fd {fd} was duplicated: {d:?}");
                assert!(p.flags.0 != 0 || p.cloexec || d.flags.0 == 0, "a socket's flags come from fdinfo");
            } else if matches!(
                d.kind,
                Kind::File | Kind::Dir | Kind::Chardev | Kind::Blockdev | Kind::Fifo | Kind::Mqueue
            ) {
                // A path that may be a file or a device: its close may run a flush the target hears.
                assert!(!duplicated, "fd {fd} ({}) was duplicated: {d:?}", d.kind);
                assert!(p.flags.0 != 0 || p.cloexec || d.flags.0 == 0, "a socket's flags come from fdinfo");
            } else {
                assert!(duplicated, "fd {fd} ({}) was read without a duplicate", d.kind);
                assert!(!d.cloexec, "close-on-exec is not the open file's");
                kinds.insert(d.kind);
            }
            // Flags, mount ids and filesystems were read for every fd, one way or the other.
            assert!(d.mnt_id.is_some() && p.mnt_id.is_some(), "fd {fd}: {d:?}");
        }
        // Every kind but sockets and paths that may be files or devices came through a duplicate.
        for name in ["pipe_write", "memfd", "eventfd"] {
            assert!(dup.duplicated.contains(&h.fd(name)), "{name}");
        }
        for kind in [Kind::Memfd, Kind::Pipe, Kind::Eventfd, Kind::Epoll] {
            assert!(kinds.contains(&kind), "no {kind} read through a duplicate: {kinds:?}");
        }
        for kind in [Kind::Memfd, Kind::Pidfd, Kind::Nsfs, Kind::Timerfd, Kind::Signalfd, Kind::Inotify] {
            assert!(kinds.contains(&kind), "no {kind} read through a duplicate: {kinds:?}");
        }
        // Regular files are read through /proc, close-on-exec included.
        let file = dup_facts[&h.fd("file_at_offset")];
        assert_eq!((file.flags, file.cloexec), (proc_facts[&h.fd("file_at_offset")].flags, true));
        assert!(file.fs.is_some(), "{file:?}");
    }
    assert!(h.fds.contains_key("tcp_listen") && h.fds.contains_key("unix_stream_a"));
    assert_eq!(sockets_received(), 0, "a socket was received as a duplicate");
}

/// A policy whose rules test nothing fdinfo alone says but flags takes duplicates; one that tests
/// nothing but `stat` and the filesystem takes none (a `statx` through `/proc` gives those as cheaply).
#[test]
fn duplicates_only_where_flags_are_needed() {
    let h = Holder::spawn(&[]);
    let stat_only = ScanOptions { stat: true, mount_ids: KindMask::ALL, mounts: true, ..ScanOptions::minimal() };
    let scan = scan_process(h.pid(), &stat_only).expect("scan");
    assert!(scan.duplicated.is_empty(), "{:?}", scan.duplicated);
    let file = by_fd(&scan)[&h.fd("file_at_offset")];
    assert!(file.mnt_id.is_some() && file.fs.is_some() && file.pos.is_none(), "no fdinfo: {file:?}");
    // `statx` through `/proc` names the mount fdinfo names, for every kind.
    let full = scan_process(h.pid(), &ScanOptions::all()).expect("scan");
    let full = by_fd(&full);
    for (fd, f) in by_fd(&scan) {
        assert!(f.mnt_id.is_some(), "fd {fd}: {f:?}");
        assert_eq!((f.mnt_id, &f.fs), (full[&fd].mnt_id, &full[&fd].fs), "fd {fd} ({})", f.kind);
    }
    let pipes_only = ScanOptions { flags: KindMask::NONE.with(Kind::Pipe), ..ScanOptions::minimal() };
    let scan = scan_process(h.pid(), &pipes_only).expect("scan");
    let pipes = [h.fd("pipe_read"), h.fd("pipe_write")];
    assert!(pipes.iter().all(|fd| scan.duplicated.contains(fd)), "{:?}", scan.duplicated);
    assert!(scan.duplicated.iter().all(|fd| by_fd(&scan)[fd].kind == Kind::Pipe), "{:?}", scan.duplicated);
    let every = ScanOptions::all();
    assert!(scan_process(h.pid(), &every).expect("scan").duplicated.is_empty(), "fdinfo is read anyway");
}
