//! The scanner's errors and states against real processes: a pid that does not exist, a zombie, a process
//! killed mid-scan, a process the user may not inspect, a process whose fds churn while it is scanned a
//! hundred times; and the process tree.

mod scan_common;

use crrules_engine::facts::{ByteString, DevNum, FdFacts, FileType};
use crrules_engine::scan::{FdEntry, KindMask, ScanError, ScanOptions, all_pids, descendants, scan_process};
use crrules_rules::vocab::Kind;
use scan_common::Holder;
use std::process::{Command, Stdio};
use std::time::Duration;

fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().next()?.chars().next()
}

#[test]
fn a_pid_that_does_not_exist() {
    // Above the kernel's pid_max (at most 2^22): never a process.
    let pid = i32::MAX - 1;
    let err = scan_process(pid, &ScanOptions::default()).unwrap_err();
    assert!(matches!(err, ScanError::NoSuchProcess { pid: p } if p == pid), "{err:?}");
    assert_eq!(err.to_string(), format!("process {pid} does not exist"));
    assert!(matches!(descendants(pid), Err(ScanError::NoSuchProcess { .. })));
}

#[test]
fn a_zombie_has_exited() {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id() as i32;
    // Not reaped yet: it stays a zombie until wait().
    while state_of(pid) != Some('Z') {
        std::thread::sleep(Duration::from_millis(2));
    }
    let err = scan_process(pid, &ScanOptions::default()).unwrap_err();
    assert!(matches!(err, ScanError::Exited { pid: p } if p == pid), "{err:?}");
    assert!(err.to_string().contains(&pid.to_string()));
    child.wait().unwrap();
}

#[test]
fn a_process_killed_mid_scan() {
    let mut exited = 0;
    for attempt in 0..30u64 {
        let mut h = Holder::spawn(&["--many", "4000"]);
        let pid = h.pid();
        let result = std::thread::scope(|s| {
            let scanner = s.spawn(|| scan_process(pid, &ScanOptions::default()));
            std::thread::sleep(Duration::from_micros(500 + 300 * (attempt % 10)));
            h.kill();
            scanner.join().expect("scanner thread")
        });
        match result {
            Ok(scan) => assert!(scan.fds.len() >= 4000, "a finished scan is whole"),
            Err(ScanError::Exited { pid: p }) => {
                assert_eq!(p, pid);
                exited += 1;
            }
            // Killed before the scan even opened it.
            Err(ScanError::NoSuchProcess { pid: p }) => assert_eq!(p, pid),
            Err(e) => panic!("a process that exits mid-scan must give `exited`, got: {e}"),
        }
        if exited >= 3 {
            break;
        }
    }
    assert!(exited > 0, "never caught the process exiting mid-scan");
}

/// Run by [`a_process_the_user_may_not_inspect`] as `nobody`, in a copy of this test binary.
#[test]
fn scan_pid_one_when_asked() {
    let Ok(pid) = std::env::var("CRRULES_SCAN_PID") else { return };
    let pid: i32 = pid.parse().unwrap();
    match scan_process(pid, &ScanOptions::default()) {
        Err(e @ ScanError::PermissionDenied { .. }) => {
            println!("DENIED: {e}");
        }
        other => panic!("expected permission denied, got {other:?}"),
    }
}

#[test]
fn a_process_the_user_may_not_inspect() {
    // A copy of this binary that `nobody` can run, in a directory it can enter.
    let dir = std::env::temp_dir().join(format!("crrules-scan-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("scan_errors");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(&exe);
    command
        .args(["--exact", "scan_pid_one_when_asked", "--nocapture", "--test-threads", "1"])
        .env("CRRULES_SCAN_PID", "1")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = scan_common::spawn_copy(&mut command).and_then(|c| c.wait_with_output()).expect("run as nobody");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout
            .contains("DENIED: may not inspect the fds of process 1: permission denied (run as its owner or as root)"),
        "{stdout}"
    );
}

/// What each fd of a churning holder may be: its facts must agree with each other, and the fixed slots
/// must hold their fixed kind. Facts a scan did not fetch (`opts`) are absent, never wrong.
fn check_churn_facts(f: &FdFacts, opts: &ScanOptions) {
    if f.fd <= 2 {
        return; // stdin, stdout, stderr: whatever the test harness gave
    }
    let slot_kind = match f.fd {
        100..=109 => Some(Kind::Pipe),
        110..=119 => Some(Kind::Eventfd),
        120..=129 => Some(Kind::Chardev),
        130..=139 => Some(Kind::Socket),
        140..=149 => Some(Kind::File),
        _ => None,
    };
    if let Some(kind) = slot_kind {
        assert_eq!(f.kind, kind, "fd {} is always a {kind} or absent: {f:?}", f.fd);
    }
    let typed = |want: FileType| {
        if opts.stat {
            assert_eq!(f.file_type, Some(want), "{f:?}");
        }
        assert!(f.file_type.is_none_or(|t| t == want), "{f:?}");
    };
    match f.kind {
        Kind::Pipe => {
            typed(FileType::Fifo);
            assert_eq!(f.link, format!("pipe:[{}]", f.ino.unwrap()), "{f:?}");
            assert!(f.path.is_none());
        }
        Kind::Socket => {
            typed(FileType::Socket);
            assert_eq!(f.link, format!("socket:[{}]", f.ino.unwrap()), "{f:?}");
        }
        Kind::Eventfd => {
            typed(FileType::None);
            assert_eq!(f.link, "anon_inode:[eventfd]");
            assert_eq!(f.eventfd.is_some(), !opts.fdinfo.is_empty(), "{f:?}");
            if let Some(e) = &f.eventfd {
                if (110..=119).contains(&f.fd) {
                    assert_eq!(e.count, (f.fd - 110) as u64, "{f:?}");
                }
            }
        }
        Kind::Chardev => {
            typed(FileType::Char);
            assert_eq!(
                (f.path.as_ref().and_then(ByteString::to_str), f.dev),
                (Some("/dev/null"), Some(DevNum { major: 1, minor: 3 })),
                "{f:?}"
            );
        }
        Kind::File => {
            typed(FileType::Regular);
            assert!(f.path.as_ref().and_then(ByteString::to_str).unwrap().ends_with("/churn.txt"), "{f:?}");
            assert_eq!(f.size, Some(5));
        }
        other => panic!("the churn holder opens no {other}: {f:?}"),
    }
    if f.kind != Kind::Eventfd {
        assert!(f.eventfd.is_none(), "{f:?}");
    }
}

#[test]
fn a_hundred_scans_of_a_churning_process() {
    let h = Holder::spawn(&["--churn"]);
    let no_fdinfo = ScanOptions {
        fdinfo: KindMask::NONE,
        flags: KindMask::NONE,
        mount_ids: KindMask::NONE,
        mounts: false,
        ..ScanOptions::default()
    };
    let choices = [ScanOptions::default(), no_fdinfo, ScanOptions::minimal()];
    let (mut open, mut vanished) = (0usize, 0usize);
    for round in 0..150 {
        let opts = &choices[round % choices.len()];
        let scan = scan_process(h.pid(), opts).unwrap_or_else(|e| panic!("scan failed ({opts:?}): {e}"));
        assert!(scan.fds.windows(2).all(|w| w[0].fd() < w[1].fd()));
        for entry in &scan.fds {
            match entry {
                FdEntry::Open(f) => {
                    check_churn_facts(f, opts);
                    open += 1;
                }
                FdEntry::Vanished { .. } => vanished += 1,
            }
        }
    }
    assert!(open > 150 * 20, "the churning slots were seen: {open} open, {vanished} vanished");
}

/// The churning holder replaces fds between kinds all the time: facts read through duplicates still
/// agree with the link they were read with (a duplicate of another file means a second try).
#[test]
fn duplicates_of_churning_fds_agree_with_their_links() {
    let h = Holder::spawn(&["--churn"]);
    let opts = ScanOptions { flags: KindMask::ALL, mount_ids: KindMask::ALL, mounts: true, ..ScanOptions::minimal() };
    let (mut open, mut duplicated) = (0usize, 0usize);
    for _ in 0..60 {
        let scan = scan_process(h.pid(), &opts).expect("scan");
        duplicated += scan.duplicated.len();
        for f in scan.fds.iter().filter_map(FdEntry::facts) {
            open += 1;
            let ft = f.file_type;
            match f.kind {
                Kind::Pipe => {
                    assert_eq!(f.link, format!("pipe:[{}]", f.ino.unwrap()), "{f:?}");
                    assert!(ft.is_none_or(|t| t == FileType::Fifo), "{f:?}");
                }
                Kind::Chardev => assert_eq!(f.path.as_ref().map(|p| p.as_bytes()), Some(&b"/dev/null"[..]), "{f:?}"),
                Kind::File if f.fd > 2 => {
                    assert!(f.link.as_bytes().ends_with(b"/churn.txt"), "{f:?}");
                    assert_eq!((ft, f.size), (Some(FileType::Regular), Some(5)), "{f:?}");
                }
                Kind::Eventfd => assert_eq!(f.link, "anon_inode:[eventfd]", "{f:?}"),
                _ => {}
            }
            // In its slots 100-159, the churn keeps /dev/null read-write, files read-only and the read ends
            // of pipes (their write ends pass only through other numbers).
            let access = match f.kind {
                Kind::Chardev => Some(2),
                Kind::File | Kind::Pipe => Some(0),
                _ => None,
            };
            if let Some(access) = access.filter(|_| (100..160).contains(&f.fd)) {
                assert_eq!(f.flags.0 & 3, access, "{f:?}");
            }
        }
    }
    assert!(open > 1000 && duplicated > 500, "{open} fds, {duplicated} duplicated");
}

#[test]
fn the_process_tree() {
    let mut sh = Command::new("sh")
        .args(["-c", "sh -c 'sleep 30 & wait' & sleep 30 & wait"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = sh.id() as i32;
    let comms = |tree: &[i32]| -> Vec<String> {
        tree.iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default().trim().to_string())
            .collect()
    };
    let sleeps = |tree: &[i32]| comms(tree).iter().filter(|c| *c == "sleep").count();
    // Until the shells have forked and the children have exec'd `sleep`.
    let mut tree = Vec::new();
    for _ in 0..500 {
        tree = descendants(pid).expect("descendants");
        if tree.len() >= 3 && sleeps(&tree) >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(tree.len(), 3, "sh -> (sh -> sleep), sleep: {tree:?}");
    assert!(!tree.contains(&pid));
    assert_eq!(sleeps(&tree), 2, "{:?}", comms(&tree));
    let pids = all_pids().expect("all pids");
    assert!(pids.contains(&pid) && tree.iter().all(|p| pids.contains(p)));
    assert!(pids.windows(2).all(|w| w[0] < w[1]));
    for p in tree {
        let _ = Command::new("kill").arg(p.to_string()).status();
    }
    let _ = sh.kill();
    let _ = sh.wait();
}

#[test]
fn a_scan_holds_its_process_until_it_exits() {
    let mut holder = Holder::spawn(&[]);
    let scan = scan_process(holder.pid(), &ScanOptions::minimal()).expect("scan");
    let process = scan.process.expect("a pidfd on this kernel");
    assert_eq!(process.pid(), holder.pid());
    assert!(process.is_running());
    holder.kill();
    assert!(!process.is_running(), "the pidfd sees the exit even once the pid is free for reuse");
}

#[test]
fn a_process_whose_main_thread_exited_is_read_through_a_live_thread() {
    let holder = Holder::spawn(&["--main-exits"]);
    assert_eq!(state_of(holder.pid()), Some('Z'), "the leader is a zombie, the process lives on");
    let scan = scan_process(holder.pid(), &ScanOptions::default()).expect("a live thread holds the fd table");
    assert_eq!(scan.comm, "fdholder");
    let devnull = scan.fds.iter().filter_map(FdEntry::facts).find(|f| f.fd == holder.fd("devnull")).expect("fd");
    assert_eq!(devnull.dev, Some(DevNum { major: 1, minor: 3 }));
    assert!(devnull.pos.is_some(), "fdinfo is read through the thread too");
}
