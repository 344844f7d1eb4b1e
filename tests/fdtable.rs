//! End-to-end: `crrules dump`, `restore` and `handover` on real processes. `fdholder --restorable` holds one
//! fd of every kind crrules' own backend restores, in a known state; the restored command is `fdreport`,
//! which reports what it really got at each number (kind, flags, offset, and each kind's state read back
//! from the fd). A refusal is checked by what it says and by what did not happen: its command, which would
//! create a marker file, never ran.
//!
//! The contract these tests hold the commands to:
//! - `crrules dump --pid N --image DIR` writes the image at DIR (which does not exist yet) and exits 0, or
//!   exits 1 naming every rejected fd as `crrules check` does, leaving nothing behind.
//! - `crrules restore --image DIR -- COMMAND...` places every fd at its number, with its close-on-exec flag,
//!   and execs COMMAND: an fd that was close-on-exec is closed by that exec, as it would have been by the
//!   process's own. It refuses (non-zero, COMMAND not run) an image it cannot trust or restore exactly.
//! - `crrules handover --pid N [--listen-fds] -- COMMAND...` does the same with duplicates of the live fds;
//!   with `--listen-fds` only the listening sockets, from fd 3 on, with `LISTEN_FDS`, `LISTEN_FDNAMES` and
//!   `LISTEN_PID` set for COMMAND (systemd's socket activation).
//!
//! A restore gives the dumped process's fds 0-2 back too, so every command writes to a file, never to
//! stdout. The holders' stderr goes to a file (fd 2 is then a file a restore reopens, never the terminal
//! the tests run in). Tests that need root (another user, `mknod`, `chown`) say why they skip without it.

mod common;
mod fdtable_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{image_fd, is_root, manifest, names_fd, path_str, read_report, reseal};
use scan_common::{Holder, example_path, holder_path};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Each fd `fdholder --restorable` holds and what `fdreport` must find at its number after a restore or a
/// handover: the kind, then fields of the fd's report with their values as JSON. What depends on the holder
/// (flags, links, the port) or on another fd's number (epoll's targets, the pipe's inode) is compared in
/// [`check_restored`]. `file_cloexec` is not here: the exec of the command closes it.
const RESTORED: &[Expected] = &[
    ("file_ro", "file", &[("pos", "6"), ("data", r#""hello world\n""#), ("nlink", "1")]),
    ("file_append", "file", &[("pos", "9"), ("size", "9")]),
    ("file_no_cloexec", "file", &[("pos", "0"), ("data", r#""kept at exec\n""#)]),
    ("dir", "dir", &[]),
    ("devnull", "chardev", &[("dev", r#""1:3""#)]),
    ("pipe_r", "pipe", &[("data", r#""pipe data""#), ("data_len", "9")]),
    ("pipe_w", "pipe", &[]),
    ("eventfd", "eventfd", &[("count", "5"), ("semaphore", "false")]),
    ("eventfd_sem", "eventfd", &[("count", "3"), ("semaphore", "true")]),
    ("timerfd", "timerfd", &[("interval", "[7, 0]")]),
    ("signalfd", "signalfd", &[]),
    ("memfd", "memfd", &[("pos", "3"), ("data", r#""memfd bytes""#), ("data_len", "11")]),
    ("deleted_file", "file", &[("pos", "2"), ("data", r#""gone but kept""#), ("nlink", "0")]),
    ("unix_a", "socket", &[("family", r#""unix""#), ("sock_type", r#""stream""#), ("messages", r#"["to a"]"#)]),
    ("unix_b", "socket", &[("family", r#""unix""#), ("sock_type", r#""stream""#), ("messages", r#"["to b"]"#)]),
    ("unix_dgram_a", "socket", &[("family", r#""unix""#), ("sock_type", r#""dgram""#), ("messages", "[]")]),
    (
        "unix_dgram_b",
        "socket",
        &[("family", r#""unix""#), ("sock_type", r#""dgram""#), ("messages", r#"["d1", "d2"]"#)],
    ),
    ("epoll", "epoll", &[]),
    ("tcp_listen", "socket", &[("family", r#""inet""#), ("sock_type", r#""stream""#), ("listening", "true")]),
];

/// A holder's fd name, the kind it must have, and `(field, JSON value)` pairs its report must hold.
type Expected = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

/// The fds whose link text (a path) must be the holder's exactly: they are reopened by path, or (the memfd)
/// recreated with their name.
const SAME_LINK: &[&str] = &["file_ro", "file_append", "file_no_cloexec", "dir", "devnull", "memfd"];

/// The open flags a restore must give back as they were (`O_CLOEXEC` is the fd's, checked on its own).
const KEPT_FLAGS: i64 = (libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK | libc::O_DIRECTORY) as i64;

// ---- Running things ----

/// `crrules dump --pid PID --image IMAGE`, which must succeed.
fn dump(pid: i32, image: &Path) {
    let (code, out, err) = run(&["dump", "--pid", &pid.to_string(), "--image", path_str(image)]);
    assert_eq!(code, 0, "dump of {pid} failed:\n{out}\n{err}");
    assert!(image.join("manifest.json").is_file(), "the dump wrote no manifest.json in {}", image.display());
}

/// `crrules restore --image IMAGE -- fdreport --out OUT`, which must succeed; fdreport's report.
fn restore_report(image: &Path, out: &Path) -> BTreeMap<i32, Value> {
    let fdreport = example_path("fdreport");
    let args = ["restore", "--image", path_str(image), "--", path_str(&fdreport), "--out", path_str(out)];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "restore of {} failed:\n{stdout}\n{stderr}", image.display());
    read_report(out)
}

/// A command that creates `marker`: run by a restore, it proves the restore went ahead.
fn marker_command(marker: &Path) -> Vec<String> {
    ["sh", "-c", "touch \"$1\"", "sh", path_str(marker)].map(String::from).to_vec()
}

/// `crrules restore --image IMAGE -- touch MARKER`: exit code, stdout, stderr, and whether the command ran
/// (the marker is removed again).
fn restore_marking(image: &Path, marker: &Path) -> (i32, String, String, bool) {
    let mut args = vec!["restore".to_owned(), "--image".to_owned(), path_str(image).to_owned(), "--".to_owned()];
    args.extend(marker_command(marker));
    let (code, out, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ran = marker.exists();
    let _ = std::fs::remove_file(marker);
    (code, out, err, ran)
}

/// The image restores: the command runs and the restore exits 0 (the control before damaging it).
fn assert_restores(image: &Path, marker: &Path) {
    let (code, out, err, ran) = restore_marking(image, marker);
    assert!(code == 0 && ran, "the untouched image must restore (exit {code}, command ran: {ran}):\n{out}\n{err}");
}

/// The restore is refused: non-zero, its stderr holds every one of `words`, and the command never ran.
fn assert_refused(image: &Path, marker: &Path, words: &[&str]) -> String {
    let (code, out, err, ran) = restore_marking(image, marker);
    assert_ne!(code, 0, "the restore must be refused:\n{out}\n{err}");
    assert!(!ran, "the refused restore ran its command anyway:\n{err}");
    for word in words {
        assert!(err.contains(word), "the refusal must say `{word}`:\n{err}");
    }
    err
}

// ---- The processes ----

/// `fdholder ARGS`, its stderr in `tmp/holder.log`.
fn holder(tmp: &TempDir, args: &[&str]) -> Holder {
    let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    Holder::spawn_with(&holder_path(), &args, |c| {
        c.stderr(log);
    })
}

/// A running `fdholder --restorable`. Killed (not asked to exit) before a restore that rebinds its port
/// while its files must still be there, so its temp dir is removed here.
struct Restorable {
    holder: Holder,
    /// The holder's temp dir (its `dir` fd).
    dir: PathBuf,
    /// What the holder's own fdinfo and links said, by name, before anything was done to it.
    seen: HashMap<String, Seen>,
}

/// One of the holder's fds as the holder had it.
#[derive(Debug)]
struct Seen {
    flags: i64,
    link: String,
}

impl Restorable {
    fn spawn(tmp: &TempDir) -> Restorable {
        let holder = holder(tmp, &["--restorable"]);
        let pid = holder.pid();
        let dir = std::fs::read_link(format!("/proc/{pid}/fd/{}", holder.fd("dir"))).expect("the holder's dir");
        let ours = std::env::temp_dir().join(format!("crrules-fdholder-{pid}"));
        assert_eq!(dir, ours, "the holder's temp dir");
        let seen = holder
            .fds
            .iter()
            .filter(|(name, _)| *name != "tcp_listen_port")
            .map(|(name, &fd)| {
                let flags = i64::from_str_radix(fdinfo_field(pid, fd, "flags").trim(), 8).expect("octal flags");
                let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("link");
                (name.clone(), Seen { flags, link: link.to_string_lossy().into_owned() })
            })
            .collect();
        Restorable { holder, dir, seen }
    }

    fn pid(&self) -> i32 {
        self.holder.pid()
    }

    fn fd(&self, name: &str) -> i32 {
        self.holder.fd(name)
    }

    fn port(&self) -> u16 {
        u16::try_from(self.holder.fd("tcp_listen_port")).expect("a port")
    }
}

impl Drop for Restorable {
    fn drop(&mut self) {
        self.holder.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `key:\tvalue` field of `/proc/PID/fdinfo/FD`.
fn fdinfo_field(pid: i32, fd: i32, key: &str) -> String {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no `{key}` in fdinfo {fd}:\n{info}"))
}

/// The holder is still running: it was neither stopped nor killed by what was done to it.
fn assert_alive(holder: &mut Holder) {
    assert_eq!(holder.child.try_wait().expect("try_wait"), None, "the holder exited");
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(holder.pid()), None).is_ok());
}

// ---- Images ----

/// The data file that holds fd `fd`'s saved bytes (`restore.data`, relative to the image or to its `data`
/// directory).
fn data_file(image: &Path, fd: i32) -> PathBuf {
    let m = manifest(image);
    let entry = image_fd(&m, fd);
    let name = entry["restore"]["data"].as_str().unwrap_or_else(|| panic!("fd {fd} saved no data: {entry}"));
    [image.join(name), image.join("data").join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("fd {fd}'s data file `{name}` is not in {}", image.display()))
}

/// `cp -a FROM TO`.
fn copy_image(from: &Path, to: &Path) {
    let status = Command::new("cp").args(["-a", path_str(from), path_str(to)]).status().expect("cp");
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

// ---- The restored table ----

/// Everything [`RESTORED`] says, and what depends on the holder: flags, close-on-exec, links, the timer,
/// the signal mask, the seals, epoll's targets, the pipe's ends, the listener's address; `file_cloexec` is
/// gone (the exec closed it).
fn check_restored(holder: &Restorable, report: &BTreeMap<i32, Value>) {
    let names: Vec<&str> = RESTORED.iter().map(|(name, _, _)| *name).collect();
    for name in holder.holder.fds.keys() {
        assert!(
            names.contains(&name.as_str()) || ["file_cloexec", "tcp_listen_port"].contains(&name.as_str()),
            "the holder holds `{name}`, which RESTORED does not check"
        );
    }
    let at = |name: &str| -> &Value {
        let fd = holder.fd(name);
        report.get(&fd).unwrap_or_else(|| panic!("{name} (fd {fd}) is missing: the command got {:?}", report.keys()))
    };
    for &(name, kind, fields) in RESTORED {
        let r = at(name);
        assert_eq!(r["kind"], kind, "{name}: {r}");
        assert!(r.get("error").is_none(), "{name}: a probe failed: {r}");
        for &(field, want) in fields {
            let want: Value = serde_json::from_str(want).expect("RESTORED holds JSON");
            assert_eq!(r[field], want, "{name}.{field}: {r}");
        }
        let seen = &holder.seen[name];
        let flags = r["flags"].as_i64().unwrap_or_else(|| panic!("{name} has no flags: {r}"));
        assert_eq!(
            flags & KEPT_FLAGS,
            seen.flags & KEPT_FLAGS,
            "{name}: open flags {flags:o}, holder {:o}",
            seen.flags
        );
        assert_eq!(r["cloexec"], false, "{name}: {r}");
        if SAME_LINK.contains(&name) {
            assert_eq!(r["link"], seen.link.as_str(), "{name}: {r}");
        }
    }
    // So the flags compared above hold O_APPEND where it matters.
    assert_eq!(holder.seen["file_append"].flags & i64::from(libc::O_APPEND), i64::from(libc::O_APPEND));
    let cloexec = holder.fd("file_cloexec");
    assert!(!report.contains_key(&cloexec), "file_cloexec (fd {cloexec}) survived the exec: {}", report[&cloexec]);

    assert_eq!(at("pipe_r")["ino"], at("pipe_w")["ino"], "pipe_r and pipe_w must be one pipe");
    let timer = at("timerfd");
    assert_eq!(timer["clockid"], libc::CLOCK_MONOTONIC, "{timer}");
    let left = timer["value"][0].as_i64().unwrap_or(-1);
    assert!((900..=1000).contains(&left), "the timer has {left} s to go, not 900-1000: {timer}");
    assert_eq!(at("signalfd")["signals"], json!([libc::SIGUSR1, libc::SIGUSR2]), "{}", at("signalfd"));
    assert_eq!(at("memfd")["seals"], libc::F_SEAL_GROW | libc::F_SEAL_SHRINK, "{}", at("memfd"));

    // The kernel adds EPOLLERR | EPOLLHUP to every target: compare the bits the holder chose.
    let chosen = u64::from((libc::EPOLLIN | libc::EPOLLET) as u32);
    let mut targets: Vec<(i64, u64, u64)> = at("epoll")["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("epoll without targets: {}", at("epoll")))
        .iter()
        .map(|t| {
            (
                t["tfd"].as_i64().unwrap_or(-1),
                t["data"].as_u64().unwrap_or(0),
                t["events"].as_u64().unwrap_or(0) & chosen,
            )
        })
        .collect();
    targets.sort_unstable();
    let mut want = vec![
        (i64::from(holder.fd("pipe_r")), 42, u64::from(libc::EPOLLIN as u32)),
        (i64::from(holder.fd("eventfd")), 7, chosen),
    ];
    want.sort_unstable();
    assert_eq!(targets, want, "epoll targets (fd, data, EPOLLIN | EPOLLET bits): {}", at("epoll"));

    let tcp = at("tcp_listen");
    assert_eq!(tcp["local"], format!("127.0.0.1:{}", holder.port()), "{tcp}");
}

// ---- The tests ----

#[test]
fn dump_then_restore_brings_back_every_kind() {
    let tmp = TempDir::new("fdtable-every-kind");
    let mut holder = Restorable::spawn(&tmp);
    let pid = holder.pid();
    let first = tmp.path().join("first");
    dump(pid, &first);

    // The image is whole: its checksums hold, and it says whose it is.
    let sums = Command::new("sha256sum").args(["--check", "--quiet", "SHA256SUMS"]).current_dir(&first).output();
    let sums = sums.expect("sha256sum");
    assert!(sums.status.success(), "sha256sum -c: {}", String::from_utf8_lossy(&sums.stdout));
    let m = manifest(&first);
    assert_eq!(m["process"]["pid"], pid);
    let cloexec = image_fd(&m, holder.fd("file_cloexec"));
    assert_eq!((&cloexec["restore"]["how"], &cloexec["facts"]["cloexec"]), (&json!("open"), &json!(true)));

    // The dump changed nothing in the holder: the counters are as they were, and a second dump sees the
    // pipe's bytes again (a dump that read them would have taken them).
    assert_alive(&mut holder.holder);
    assert_eq!(fdinfo_field(pid, holder.fd("eventfd"), "eventfd-count"), "5");
    assert_eq!(fdinfo_field(pid, holder.fd("eventfd_sem"), "eventfd-count"), "3");
    let second = tmp.path().join("second");
    dump(pid, &second);

    // The listener's port must be free for the restores.
    holder.holder.kill();
    for (image, out) in [(&first, "first.json"), (&second, "second.json")] {
        let report = restore_report(image, &tmp.path().join(out));
        check_restored(&holder, &report);
    }
}

#[test]
fn restore_refuses_a_different_device() {
    let tmp = TempDir::new("fdtable-device");
    let node = tmp.path().join("nodeX");
    let mknod = |major: u64, minor: u64| {
        let _ = std::fs::remove_file(&node);
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
        nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFCHR, mode, nix::sys::stat::makedev(major, minor))
    };
    if let Err(e) = mknod(1, 3) {
        eprintln!("skipped: cannot make a device node in {} ({e}): needs CAP_MKNOD", tmp.str());
        return;
    }
    if let Err(e) = std::fs::File::open(&node) {
        eprintln!("skipped: cannot open a device node in {} ({e}): a nodev mount?", tmp.str());
        return;
    }
    let holder = holder(&tmp, &["--open", path_str(&node)]);
    let fd = holder.fd("open0");
    let image = tmp.path().join("image");
    dump(holder.pid(), &image);
    let marker = tmp.path().join("MARKER");
    assert_restores(&image, &marker);

    mknod(1, 5).expect("mknod 1:5");
    let err = assert_refused(&image, &marker, &["1:5", "1:3", path_str(&node)]);
    assert!(names_fd(&err, fd), "the refusal must name fd {fd}:\n{err}");
}

#[test]
fn restore_refuses_a_missing_file() {
    let tmp = TempDir::new("fdtable-missing");
    let file = tmp.write("kept.txt", "kept\n");
    let holder = holder(&tmp, &["--open", path_str(&file)]);
    let fd = holder.fd("open0");
    let image = tmp.path().join("image");
    dump(holder.pid(), &image);
    let marker = tmp.path().join("MARKER");
    assert_restores(&image, &marker);

    std::fs::remove_file(&file).expect("remove the file");
    let err = assert_refused(&image, &marker, &[path_str(&file)]);
    assert!(names_fd(&err, fd), "the refusal must name fd {fd}:\n{err}");
}

#[test]
fn restore_refuses_a_damaged_image() {
    let tmp = TempDir::new("fdtable-damaged");
    let mut holder = Restorable::spawn(&tmp);
    let image = tmp.path().join("image");
    dump(holder.pid(), &image);
    holder.holder.kill();
    let marker = tmp.path().join("MARKER");
    assert_restores(&image, &marker);

    // One byte of the manifest, inside the process's name: still valid JSON, only the checksum can tell.
    let flipped = tmp.path().join("flipped");
    copy_image(&image, &flipped);
    let path = flipped.join("manifest.json");
    let mut bytes = std::fs::read(&path).expect("manifest.json");
    let at = bytes.windows(8).position(|w| w == b"fdholder").expect("the manifest names the holder");
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write manifest.json");
    assert_refused(&flipped, &marker, &["checksum", "manifest.json"]);

    // The pipe's saved bytes, one short.
    let truncated = tmp.path().join("truncated");
    copy_image(&image, &truncated);
    let data = data_file(&truncated, holder.fd("pipe_r"));
    let len = std::fs::metadata(&data).expect("data file").len();
    assert!(len > 0, "the pipe's data file is empty: {}", data.display());
    std::fs::OpenOptions::new().write(true).open(&data).and_then(|f| f.set_len(len - 1)).expect("truncate");
    let data_name = data.file_name().and_then(|n| n.to_str()).expect("a data file name");
    assert_refused(&truncated, &marker, &["checksum", data_name]);

    let unsigned = tmp.path().join("unsigned");
    copy_image(&image, &unsigned);
    std::fs::remove_file(unsigned.join("SHA256SUMS")).expect("remove SHA256SUMS");
    assert_refused(&unsigned, &marker, &["SHA256SUMS"]);
}

#[test]
fn restore_as_root_opens_nothing_the_recorded_user_could_not() {
    if !is_root() {
        eprintln!("skipped: needs root (a holder running as uid 65534, restored by root)");
        return;
    }
    if !Path::new("/etc/shadow").is_file() {
        eprintln!("skipped: this system has no /etc/shadow");
        return;
    }
    let tmp = TempDir::new("fdtable-creds");
    // A copy the other user can run whatever the permissions of the build directory.
    let exe = tmp.path().join("fdholder");
    std::fs::copy(holder_path(), &exe).expect("copy fdholder");
    let args = [OsStr::new("--open"), OsStr::new("/dev/null")];
    let holder = Holder::spawn_with(&exe, &args, |c| {
        c.uid(65534).gid(65534).stderr(Stdio::null());
    });
    let fd = holder.fd("open0");
    let image = tmp.path().join("image");
    dump(holder.pid(), &image);
    let mut m = manifest(&image);
    assert_eq!(m["process"]["creds"]["uid"], json!([65534, 65534, 65534, 65534]), "the recorded user");
    let marker = tmp.path().join("MARKER");
    assert_restores(&image, &marker);

    // The /dev/null fd now says it was /etc/shadow, consistently, and the checksums agree.
    let entry = m["fds"].as_array_mut().expect("fds").iter_mut().find(|f| f["fd"] == fd).expect("the fd");
    assert_eq!(entry["restore"]["how"], "open", "/dev/null is reopened by path: {entry}");
    entry["restore"]["path"] = json!("/etc/shadow");
    entry["restore"]["expect"] = json!({"file_type": "regular"});
    let facts = entry["facts"].as_object_mut().expect("facts");
    facts.insert("kind".into(), json!("file"));
    facts.insert("link".into(), json!("/etc/shadow"));
    facts.insert("path".into(), json!("/etc/shadow"));
    facts.insert("file_type".into(), json!("regular"));
    facts.remove("dev");
    std::fs::write(image.join("manifest.json"), serde_json::to_string_pretty(&m).expect("json")).expect("write");
    reseal(&image);

    let err = assert_refused(&image, &marker, &["/etc/shadow"]);
    assert!(err.to_lowercase().contains("permission"), "the refusal must say permission:\n{err}");
}

#[test]
fn restore_refuses_an_image_owned_by_another_user() {
    if !is_root() {
        eprintln!("skipped: needs root (to give the image to another user)");
        return;
    }
    let tmp = TempDir::new("fdtable-owner");
    let holder = holder(&tmp, &["--open", "/dev/null"]);
    let image = tmp.path().join("image");
    dump(holder.pid(), &image);
    let marker = tmp.path().join("MARKER");
    assert_restores(&image, &marker);

    std::os::unix::fs::chown(image.join("manifest.json"), Some(12345), None).expect("chown");
    assert_refused(&image, &marker, &["manifest.json", "12345"]);
}

#[test]
fn handover_passes_a_listening_socket_that_accepts_in_the_new_process() {
    let tmp = TempDir::new("fdtable-handover");
    let mut holder = Restorable::spawn(&tmp);
    let out = tmp.path().join("report.json");
    let fdreport = example_path("fdreport");
    let mut handover = Command::new(env!("CARGO_BIN_EXE_crrules"))
        .args(["handover", "--pid", &holder.pid().to_string(), "--", path_str(&fdreport)])
        .args(["--accept", &holder.fd("tcp_listen").to_string(), "--out", path_str(&out)])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crrules handover");

    // The connection waits in the listener's queue until the new process accepts it.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", holder.port())).expect("connect");
    conn.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut greeting = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut buf = [0u8; 64];
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => greeting.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                let exited = handover.try_wait().expect("try_wait").is_some();
                if (exited && greeting.is_empty()) || Instant::now() > deadline {
                    let _ = handover.kill();
                    let output = handover.wait_with_output().expect("handover output");
                    panic!("no greeting from the new process: {}", String::from_utf8_lossy(&output.stderr));
                }
            }
            Err(e) => panic!("reading the greeting: {e}"),
        }
    }
    let new_pid = handover.id();
    let output = handover.wait_with_output().expect("handover output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "handover failed ({}): {stderr}", output.status);
    assert_eq!(String::from_utf8_lossy(&greeting), format!("hello from {new_pid}\n"), "{stderr}");

    // The old process lives on with its fds; the new one got every one of them, in the same state (the pipe
    // is the same pipe: fdreport read its bytes, once).
    assert_alive(&mut holder.holder);
    assert_eq!(fdinfo_field(holder.pid(), holder.fd("eventfd"), "eventfd-count"), "5");
    check_restored(&holder, &read_report(&out));
}

#[test]
fn handover_with_listen_fds_sets_systemd_variables() {
    let tmp = TempDir::new("fdtable-listen-fds");
    let mut holder = Restorable::spawn(&tmp);
    let env_file = tmp.path().join("env");
    let out = tmp.path().join("report.json");
    let fdreport = example_path("fdreport");
    let script = "echo \"$LISTEN_FDS|$LISTEN_FDNAMES|$LISTEN_PID|$$\" > \"$1\"; exec \"$2\" --out \"$3\"";
    let pid = holder.pid().to_string();
    let args = ["handover", "--pid", &pid, "--listen-fds", "--", "sh", "-c", script, "sh"];
    let paths = [path_str(&env_file), path_str(&fdreport), path_str(&out)];
    let (code, stdout, stderr) = run(&[&args[..], &paths[..]].concat());
    assert_eq!(code, 0, "handover --listen-fds failed:\n{stdout}\n{stderr}");

    let env = std::fs::read_to_string(&env_file).expect("the command's environment");
    let [fds, names, listen_pid, shell_pid]: [&str; 4] =
        env.trim_end().split('|').collect::<Vec<_>>().try_into().unwrap_or_else(|_| panic!("env {env:?}"));
    assert_eq!(fds, "1", "LISTEN_FDS: {env}");
    assert!(!names.is_empty() && !names.contains(':'), "LISTEN_FDNAMES names one socket: {env}");
    assert_eq!(listen_pid, shell_pid, "LISTEN_PID must be the pid that execs fdreport: {env}");

    let report = read_report(&out);
    let passed: Vec<i32> = report.keys().copied().filter(|&fd| fd >= 3).collect();
    assert_eq!(passed, [3], "only the listener is passed, at fd 3: {report:?}");
    let sock = &report[&3];
    assert_eq!(
        (&sock["kind"], &sock["listening"], &sock["local"], &sock["cloexec"]),
        (&json!("socket"), &json!(true), &json!(format!("127.0.0.1:{}", holder.port())), &json!(false)),
        "{sock}"
    );
    assert_alive(&mut holder.holder);
}

#[test]
fn dump_refuses_a_rejected_process_and_writes_nothing() {
    let tmp = TempDir::new("fdtable-rejected");
    let mut holder = holder(&tmp, &[]);
    let Some(&mqueue) = holder.fds.get("mqueue") else {
        holder.finish();
        let log = std::fs::read_to_string(tmp.path().join("holder.log")).unwrap_or_default();
        eprintln!("skipped: the holder could not open a POSIX message queue:\n{log}");
        return;
    };
    let parent = tmp.path().join("images");
    std::fs::create_dir(&parent).expect("images dir");
    let image = parent.join("image");
    let (code, out, err) = run(&["dump", "--pid", &holder.pid().to_string(), "--image", path_str(&image)]);
    // Asked to exit, the default holder removes its temp dir itself.
    holder.finish();
    assert_eq!(code, 1, "a process with a rejected fd cannot be dumped:\n{out}\n{err}");
    let said = format!("{out}\n{err}");
    assert!(said.contains("POSIX message queues cannot be checkpointed"), "the rejection's reason:\n{said}");
    // On one line, as `check` prints it (the fd number first) or as a message does (`fd N`).
    let row = format!("{mqueue} ");
    assert!(
        said.lines().any(|l| (l.starts_with(&row) || names_fd(l, mqueue)) && l.contains("message queues")),
        "no line gives the mqueue's fd {mqueue} with its reason:\n{said}"
    );
    let left: Vec<_> = std::fs::read_dir(&parent).expect("images dir").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.is_empty(), "the refused dump left {left:?} in {}", parent.display());
}

// ---- Found in review ----

#[test]
fn a_root_restore_of_another_users_process_reads_its_saved_bytes() {
    if !is_root() {
        eprintln!("skipped: needs root (a holder running as uid 65534, dumped and restored by root)");
        return;
    }
    let tmp = TempDir::new("fdtable-other-user");
    let exe = tmp.path().join("fdholder");
    std::fs::copy(holder_path(), &exe).expect("copy fdholder");
    // Its files in a directory of its own: a /tmp/crrules-fdholder-PID left by an earlier holder with the
    // same pid (and another owner) would stop it.
    let own_tmp = tmp.path().join("tmp");
    std::fs::create_dir(&own_tmp).expect("tmp");
    std::os::unix::fs::chown(&own_tmp, Some(65534), Some(65534)).expect("chown tmp");
    let mut holder = Holder::spawn_with(&exe, &[OsStr::new("--restorable")], |c| {
        c.uid(65534).gid(65534).env("TMPDIR", &own_tmp).stderr(Stdio::null());
    });
    let (pipe_r, memfd) = (holder.fd("pipe_r"), holder.fd("memfd"));
    let image = tmp.path().join("image");
    dump(holder.pid(), &image);
    // The image is root's (0700, 0600), the opens are the other user's: the saved bytes are read first.
    let dir = std::fs::metadata(&image).expect("image");
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&dir),
            std::os::unix::fs::PermissionsExt::mode(&dir.permissions()) & 0o777
        ),
        (0, 0o700)
    );
    holder.kill();
    let report = restore_report(&image, &tmp.path().join("report.json"));
    assert_eq!(report[&pipe_r]["data"], "pipe data", "{:?}", report[&pipe_r]);
    assert_eq!(report[&memfd]["data"], "memfd bytes", "{:?}", report[&memfd]);
}

#[test]
fn an_image_that_lists_an_fd_twice_or_watches_a_missing_fd_is_refused_before_anything_runs() {
    let tmp = TempDir::new("fdtable-table");
    let holder = holder(&tmp, &["--restorable"]);
    let image = tmp.path().join("image");
    dump(holder.pid(), &image);
    let marker = tmp.path().join("MARKER");

    // Fd 1 listed twice: the second copy of the entry for the holder's read-only file renumbered to 1.
    let twice = tmp.path().join("twice");
    copy_image(&image, &twice);
    let mut m = manifest(&twice);
    let fds = m["fds"].as_array_mut().expect("fds");
    let mut copy = fds.iter().find(|f| f["fd"] == holder.fd("file_ro")).expect("file_ro").clone();
    copy["fd"] = json!(1);
    fds.insert(2, copy);
    std::fs::write(twice.join("manifest.json"), serde_json::to_string(&m).expect("json")).expect("write");
    reseal(&twice);
    assert_refused(&twice, &marker, &["each fd once"]);

    // The epoll watches an fd the image does not have.
    let missing = tmp.path().join("missing");
    copy_image(&image, &missing);
    let mut m = manifest(&missing);
    let epoll = holder.fd("epoll");
    let entry = m["fds"].as_array_mut().expect("fds").iter_mut().find(|f| f["fd"] == epoll).expect("epoll");
    entry["restore"]["targets"][0]["fd"] = json!(999);
    std::fs::write(missing.join("manifest.json"), serde_json::to_string(&m).expect("json")).expect("write");
    reseal(&missing);
    let err = assert_refused(&missing, &marker, &["fd 999", "does not come back"]);
    assert!(names_fd(&err, epoll), "{err}");
}
