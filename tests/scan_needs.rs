//! A scan narrowed to what a policy needs (`ScanOptions::for_policy`) decides every fd exactly as a full scan
//! does, while skipping fdinfo for kinds no rule asks about.

mod scan_common;

use crrules_engine::matcher::{CompiledMatcher, Matcher};
use crrules_engine::scan::{FdEntry, KindMask, ScanOptions, scan_process};
use crrules_rules::vocab::Kind;
use crrules_rules::{RuleSet, Source};
use scan_common::Holder;

fn default_policy() -> RuleSet {
    let sources = [
        Source::new("10-devices.rules", include_str!("../policy/10-devices.rules")),
        Source::new("20-files.rules", include_str!("../policy/20-files.rules")),
        Source::new("30-ipc.rules", include_str!("../policy/30-ipc.rules")),
    ];
    let compiled = crrules_rules::compile(&sources);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    compiled.rules
}

fn decisions(rules: &RuleSet, opts: &ScanOptions, pid: i32) -> Vec<(i32, Option<usize>)> {
    let matcher = CompiledMatcher::new(rules);
    scan_process(pid, opts)
        .unwrap()
        .fds
        .iter()
        .filter_map(|e| match e {
            FdEntry::Open(f) => Some((f.fd, matcher.first_match(f))),
            FdEntry::Vanished { .. } => None,
        })
        .collect()
}

#[test]
fn narrowed_scan_decides_like_the_full_scan() {
    let holder = Holder::spawn(&[]);
    let rules = default_policy();
    let narrow = ScanOptions::for_policy(&rules);
    // The default policy tests the filesystem and locks of files (fdinfo), packet mode of pipes (flags, from
    // a duplicate), the clock of timers, thread pidfds and fanotify marks (fdinfo), and what sockets are.
    for kind in [Kind::File, Kind::Timerfd, Kind::Pidfd, Kind::Fanotify] {
        assert!(narrow.fdinfo.contains(kind), "{kind}");
    }
    assert!(narrow.flags.contains(Kind::Pipe) && !narrow.fdinfo.contains(Kind::Pipe));
    assert!(!narrow.fdinfo.contains(Kind::Eventfd) && !narrow.fdinfo.contains(Kind::Socket));
    assert!(narrow.sockets && narrow.mounts && !narrow.stat);
    assert_eq!(decisions(&rules, &narrow, holder.pid()), decisions(&rules, &ScanOptions::all(), holder.pid()));

    // The narrowed scan really skipped fdinfo: an eventfd has no count, a file still has its filesystem.
    let scan = scan_process(holder.pid(), &narrow).unwrap();
    let facts = |fd: i32| scan.fds.iter().find_map(|e| e.facts().filter(|f| f.fd == fd)).unwrap();
    assert!(facts(holder.fds["eventfd"]).eventfd.is_none());
    assert!(facts(holder.fds["file_at_offset"]).fs.is_some());
}

#[test]
fn a_policy_that_tests_flags_of_any_kind_reads_the_flags_of_every_kind() {
    let holder = Holder::spawn(&[]);
    let compiled = crrules_rules::compile(&[Source::new(
        "t.rules",
        "any flags O_APPEND => close\npipe access wo => recreate\nsocket => recreate\neventfd => recreate\nany => close\n",
    )]);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let narrow = ScanOptions::for_policy(&compiled.rules);
    assert!(narrow.flags == KindMask::ALL && narrow.fdinfo.is_empty() && !narrow.sockets);
    assert_eq!(
        decisions(&compiled.rules, &narrow, holder.pid()),
        decisions(&compiled.rules, &ScanOptions::all(), holder.pid())
    );
}

/// Close-on-exec belongs to the fd table, not to the open file: only fdinfo shows it, so a rule that tests
/// it has the kinds it covers read through fdinfo, never through a duplicate.
#[test]
fn a_policy_that_tests_close_on_exec_reads_fdinfo() {
    let holder = Holder::spawn(&[]);
    let compiled = crrules_rules::compile(&[Source::new(
        "t.rules",
        "file flags O_CLOEXEC => close\nfile access rw => reopen path\nany => close\n",
    )]);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let narrow = ScanOptions::for_policy(&compiled.rules);
    assert!(narrow.fdinfo.contains(Kind::File) && !narrow.fdinfo.contains(Kind::Dir));
    assert!(narrow.flags.contains(Kind::File));
    let scan = scan_process(holder.pid(), &narrow).unwrap();
    assert!(scan.duplicated.is_empty(), "{:?}", scan.duplicated);
    assert_eq!(
        decisions(&compiled.rules, &narrow, holder.pid()),
        decisions(&compiled.rules, &ScanOptions::all(), holder.pid())
    );
}

/// Past the size where the unix dump is made beside the fd reads, a socket's protocol name is read only for
/// the sockets that dump does not list: every socket still has its protocol, family and type.
#[test]
fn a_large_fd_table_still_names_every_sockets_protocol() {
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket, socketpair};
    use std::os::fd::AsRawFd;
    raise_fd_limit(2048);
    let nulls: Vec<std::fs::File> = (0..1100).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).unwrap();
    let netlink =
        socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute).unwrap();
    let (a, _b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).unwrap();
    let scan = scan_process(std::process::id() as i32, &ScanOptions::all()).unwrap();
    assert!(scan.fds.len() > 1100);
    let protocol = |fd: i32| {
        let f = scan.fds.iter().find_map(|e| e.facts().filter(|f| f.fd == fd)).unwrap();
        let s = f.socket.as_ref().unwrap();
        (s.protocol.map(|p| p.name()), s.family.map(|f| f.to_string()))
    };
    assert_eq!(protocol(tcp.as_raw_fd()), (Some("tcp"), Some("inet".into())));
    assert_eq!(protocol(udp.as_raw_fd()), (Some("udp"), Some("inet".into())));
    assert_eq!(protocol(netlink.as_raw_fd()), (Some("netlink"), Some("netlink".into())));
    assert_eq!(protocol(a.as_raw_fd()), (Some("unix"), Some("unix".into())));
    drop(nulls);
}

/// Raises this process's soft fd limit to `want` (a shell's default soft limit is often 1024).
#[allow(unsafe_code, reason = "getrlimit/setrlimit on a struct owned here")]
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: both calls only read and write `lim`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
