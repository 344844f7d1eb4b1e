//! End-to-end, more of the fd-table backend's contract (after tests/fdtable.rs): `inherit` checks the kind
//! of the fd it is handed and says which option it wants, `close` leaves the number closed and says so, a
//! `contents limit` is held at dump time, thousands of pipes and a FIFO come back with their bytes,
//! `--freeze` stops the process and lets it go, a dump takes nothing from the process, and a restore whose
//! last fd fails runs nothing.
//!
//! As in tests/fdtable.rs, the restored command is `fdreport --out FILE` (it reports the fd table it got),
//! a refusal is checked by what it says and by a marker file its command would have created, and the
//! holders' stderr goes to a file. `--rules FILE` replaces the whole policy, so each written policy has a
//! rule for every fd its holder has (stdio included). Holders start with no inherited fd above 2, so an
//! image holds only what the holder opened. Two tests began as reproductions of bugs they found, since
//! fixed: a FIFO's bytes lost under the default policy's `reopen path`, and more than 1,024 pipes failing
//! for a user past `fs.pipe-user-pages-soft`; the one as another user skips without root.

mod common;
mod fdtable_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{image_fd, is_root, manifest, names_fd, path_str, read_report};
use scan_common::{Holder, example_path, holder_path};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---- Running things ----

/// `crrules ARGS` with `setup` applied to the command before it starts (its stdin, fds it is given);
/// stdin is `/dev/null` unless `setup` says otherwise. Exit code, stdout and stderr.
fn crrules_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> (i32, String, String) {
    crrules_at(Path::new(env!("CARGO_BIN_EXE_crrules")), args, setup)
}

/// [`crrules_with`] with the binary at `exe` (a copy another user can run).
fn crrules_at(exe: &Path, args: &[&str], setup: impl FnOnce(&mut Command)) -> (i32, String, String) {
    let mut command = Command::new(exe);
    // Stdin a pipe at its end and stdout captured by one: what a restore hands in as `stdin` and `stdout` to
    // a process whose standard streams were pipes to this test.
    command.args(args).env("NO_COLOR", "1").stdin(Stdio::piped());
    setup(&mut command);
    let child = scan_common::spawn_copy(command.stdout(Stdio::piped()).stderr(Stdio::piped())).expect("run crrules");
    let out = child.wait_with_output().expect("run crrules");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `crrules [--rules POLICY] dump --pid PID --image IMAGE`, which must succeed.
fn dump(policy: Option<&Path>, pid: i32, image: &Path) {
    let (code, out, err) = run(&with_rules(policy, &["dump", "--pid", &pid.to_string(), "--image", path_str(image)]));
    assert_eq!(code, 0, "dump of {pid} failed:\n{out}\n{err}");
    assert!(image.join("manifest.json").is_file(), "the dump wrote no manifest.json in {}", image.display());
}

/// `--rules POLICY` (when given) before `args`.
fn with_rules<'a>(policy: Option<&'a Path>, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = policy.map_or_else(Vec::new, |p| vec!["--rules", path_str(p)]);
    all.extend_from_slice(args);
    all
}

/// `crrules restore --image IMAGE -- fdreport --out OUT`, which must succeed; fdreport's report.
fn restore_report(image: &Path, out: &Path) -> BTreeMap<i32, Value> {
    let fdreport = example_path("fdreport");
    let args = ["restore", "--image", path_str(image), "--", path_str(&fdreport), "--out", path_str(out)];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "restore of {} failed:\n{stdout}\n{stderr}", image.display());
    read_report(out)
}

/// `crrules restore --image IMAGE EXTRA... -- sh -c 'touch MARKER'`, set up by `setup`: exit code, stderr,
/// and whether the command ran (the marker is removed again).
fn restore_marking(
    image: &Path,
    extra: &[&str],
    marker: &Path,
    setup: impl FnOnce(&mut Command),
) -> (i32, String, bool) {
    let mut args = vec!["restore", "--image", path_str(image)];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", "touch \"$1\"", "sh", path_str(marker)]);
    let (code, out, err) = crrules_with(&args, setup);
    let ran = marker.exists();
    let _ = std::fs::remove_file(marker);
    (code, format!("{out}{err}"), ran)
}

/// The restore was refused as a restore refuses: exit 2, its message holds every one of `words`, and the
/// command never ran.
fn assert_refused((code, said, ran): (i32, String, bool), words: &[&str]) -> String {
    assert_eq!(code, 2, "the restore must be refused with exit 2:\n{said}");
    assert!(!ran, "the refused restore ran its command anyway:\n{said}");
    for word in words {
        assert!(said.contains(word), "the refusal must say `{word}`:\n{said}");
    }
    said
}

/// Before `exec`, makes `fd` (open in this process) also fd number `to` of the command, not close-on-exec.
fn give_fd(command: &mut Command, fd: std::os::fd::RawFd, to: std::os::fd::RawFd) {
    #[allow(unsafe_code, reason = "dup2 in the child between fork and exec")]
    // SAFETY: dup2 is async-signal-safe and touches only the child's fd table; `fd` stays open in the parent
    // until the command has started (the caller holds it across `output()`).
    unsafe {
        command.pre_exec(move || if libc::dup2(fd, to) == to { Ok(()) } else { Err(std::io::Error::last_os_error()) });
    }
}

// ---- The processes ----

/// `fdholder ARGS`, its stderr in `tmp/holder.log`, holding no fd above 2 but its own: whatever this test
/// inherited (a terminal's, a CI runner's) is close-on-exec for it, so the images hold only the holder's fds.
fn holder(tmp: &TempDir, args: &[&str]) -> Holder {
    holder_as(tmp, args, None)
}

/// [`holder`], run as `user` when given (a copy of fdholder in `tmp`, its log writable by that user).
fn holder_as(tmp: &TempDir, args: &[&str], user: Option<u32>) -> Holder {
    let log_path = tmp.path().join("holder.log");
    let log = std::fs::File::create(&log_path).expect("holder.log");
    let exe = match user {
        Some(_) => {
            std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o666)).expect("chmod holder.log");
            runnable_copy(tmp, &holder_path())
        }
        None => holder_path(),
    };
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    Holder::spawn_with(&exe, &args, |c| {
        c.stderr(log);
        if let Some(user) = user {
            c.uid(user).gid(user);
        }
        #[allow(unsafe_code, reason = "close_range in the child between fork and exec")]
        // SAFETY: close_range only sets FD_CLOEXEC on the child's fds from 3 up (its stdio is in place by
        // now); it allocates nothing and is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
                match libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
    })
}

/// A copy of the program at `exe` in `tmp`, which another user can run whatever the permissions of the
/// build directory.
fn runnable_copy(tmp: &TempDir, exe: &Path) -> PathBuf {
    let copy = tmp.path().join(exe.file_name().expect("a file name"));
    std::fs::copy(exe, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", exe.display()));
    copy
}

/// A holder with a temp dir of its own (`--restorable`, `--fifo`), killed when dropped and its temp dir
/// removed: a holder killed before a restore (to free its port, or to let go of its FIFO) cannot.
struct Owned {
    holder: Holder,
    dir: PathBuf,
}

impl Owned {
    fn spawn(tmp: &TempDir, args: &[&str]) -> Owned {
        let holder = holder(tmp, args);
        let dir = std::env::temp_dir().join(format!("crrules-fdholder-{}", holder.pid()));
        Owned { holder, dir }
    }

    fn pid(&self) -> i32 {
        self.holder.pid()
    }

    fn fd(&self, name: &str) -> i32 {
        self.holder.fd(name)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.holder.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How many bytes wait in the pipe or FIFO that fd `fd` of process `pid` holds (`FIONREAD` on the same
/// pipe, opened through `/proc`: nothing is read).
fn buffered(pid: i32, fd: i32) -> i32 {
    let path = format!("/proc/{pid}/fd/{fd}");
    let pipe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let mut count: libc::c_int = -1;
    #[allow(unsafe_code, reason = "FIONREAD has no safe wrapper")]
    // SAFETY: FIONREAD writes one int into `count`, which we own, for a pipe fd open for the call.
    let ret = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut count) };
    assert_eq!(ret, 0, "FIONREAD on {path}: {}", std::io::Error::last_os_error());
    count
}

/// The state letter of `/proc/PID/stat` (`S`, `T`, ...).
fn state(pid: i32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("?").to_owned()
}

// ---- Images ----

/// A policy file `name` in `tmp` holding `rules`.
fn policy(tmp: &TempDir, name: &str, rules: &str) -> PathBuf {
    tmp.write(name, rules)
}

// ---- The tests ----

/// `/dev/null` handed in by the restorer; everything else closed.
const NULL_INHERITED: &str = "chardev path \"/dev/null\" => inherit \"null\"\nany => close\n";

/// An image of `fdholder --restorable` whose `devnull` (read-write, not close-on-exec: it outlives the
/// exec of the command) is `inherit "null"`; the holder and the image's devnull fd.
fn null_image(tmp: &TempDir) -> (Owned, PathBuf, i32) {
    let rules = policy(tmp, "null.rules", NULL_INHERITED);
    let holder = Owned::spawn(tmp, &["--restorable"]);
    let fd = holder.fd("devnull");
    let image = tmp.path().join("image");
    dump(Some(&rules), holder.pid(), &image);
    let m = manifest(&image);
    let entry = image_fd(&m, fd);
    assert_eq!(entry["restore"]["how"], "inherit", "the policy makes /dev/null inherited: {entry}");
    (holder, image, fd)
}

#[test]
fn restore_checks_the_kind_of_an_inherited_fd() {
    let tmp = TempDir::new("more-inherit-kind");
    let (_holder, image, fd) = null_image(&tmp);
    let marker = tmp.path().join("MARKER");

    // fd 0 is a pipe, not the character device the image holds at `null`.
    let given = restore_marking(&image, &["--inherit", "null=0"], &marker, |c| {
        c.stdin(Stdio::piped());
    });
    let said = assert_refused(given, &["null", "pipe", "chardev"]);
    assert!(names_fd(&said, fd), "the refusal must name fd {fd}:\n{said}");

    // /dev/null, write-only (the holder's was read-write: what comes back is the fd handed in, not a
    // reopen), given at fd 50.
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null").expect("open /dev/null");
    let out = tmp.path().join("report.json");
    let fdreport = example_path("fdreport");
    let args = ["restore", "--image", path_str(&image), "--inherit", "null=50", "--"];
    let args = [&args[..], &[path_str(&fdreport), "--out", path_str(&out)]].concat();
    let (code, stdout, stderr) = crrules_with(&args, |c| give_fd(c, null.as_raw_fd(), 50));
    drop(null);
    assert_eq!(code, 0, "the restore with /dev/null handed in failed:\n{stdout}\n{stderr}");
    let report = read_report(&out);
    let got = report.get(&fd).unwrap_or_else(|| panic!("fd {fd} is missing: the command got {:?}", report.keys()));
    assert_eq!((&got["kind"], &got["dev"], &got["link"]), (&json!("chardev"), &json!("1:3"), &json!("/dev/null")));
    let access = got["flags"].as_i64().expect("flags") & i64::from(libc::O_ACCMODE);
    assert_eq!(access, i64::from(libc::O_WRONLY), "fd {fd} must be the write-only fd handed in: {got}");
    // The image closes fds 0-2 too; fdreport's runtime then opens /dev/null there itself.
    let above_stdio: Vec<i32> = report.keys().copied().filter(|&n| n > 2).collect();
    assert_eq!(above_stdio, [fd], "only the image's inherited fd is open: {report:?}");
}

#[test]
fn restore_without_an_inherited_fd_names_the_option() {
    let tmp = TempDir::new("more-inherit-missing");
    let (_holder, image, fd) = null_image(&tmp);
    let marker = tmp.path().join("MARKER");
    let said = assert_refused(restore_marking(&image, &[], &marker, |_| {}), &["--inherit null=FD"]);
    assert!(names_fd(&said, fd), "the refusal must name fd {fd}:\n{said}");
}

/// `--restorable` with its `/dev/null` closed, its files and pipes restored, the rest closed.
const NULL_CLOSED: &str =
    "chardev => close\nfile deleted => contents\nfile => reopen path\npipe => recreate\nany => close\n";

#[test]
fn close_rules_leave_the_number_closed_and_say_so() {
    let tmp = TempDir::new("more-close");
    let rules = policy(&tmp, "close.rules", NULL_CLOSED);
    let holder = Owned::spawn(&tmp, &["--restorable"]);
    let fd = holder.fd("devnull");
    let image = tmp.path().join("image");
    dump(Some(&rules), holder.pid(), &image);
    let m = manifest(&image);
    assert_eq!(image_fd(&m, fd)["restore"]["how"], "close", "{}", image_fd(&m, fd));

    // The restore itself has a file at that number: the install must close it, not keep it or reopen
    // /dev/null there.
    let occupier = std::fs::File::open(tmp.write("occupier.txt", "in the way\n")).expect("occupier");
    let out = tmp.path().join("report.json");
    let fdreport = example_path("fdreport");
    let args = ["restore", "--image", path_str(&image), "--", path_str(&fdreport), "--out", path_str(&out)];
    let (code, stdout, stderr) = crrules_with(&args, |c| give_fd(c, occupier.as_raw_fd(), fd));
    drop(occupier);
    assert_eq!(code, 0, "restore failed:\n{stdout}\n{stderr}");
    let said = format!("fd {fd} is left closed");
    assert!(stderr.contains(&said), "the restore must say `{said}`:\n{stderr}");
    let report = read_report(&out);
    assert!(!report.contains_key(&fd), "fd {fd} must be closed: {}", report[&fd]);
    // The other rules still restored what they cover, at their numbers.
    for (name, kind) in [("file_ro", "file"), ("deleted_file", "file"), ("pipe_r", "pipe"), ("pipe_w", "pipe")] {
        let at = holder.fd(name);
        assert_eq!(report.get(&at).map(|r| &r["kind"]), Some(&json!(kind)), "{name} (fd {at}): {report:?}");
    }
    assert_eq!(report[&holder.fd("pipe_r")]["data"], "pipe data");
}

/// A pipe's read end the policy closes does not stand in for the write end: the write end's capacity is
/// kept and the dump says its reader is not there (the read end counted once made the write end skip both).
#[test]
fn a_write_end_whose_read_end_is_closed_is_dumped_on_its_own() {
    let tmp = TempDir::new("more-closed-reader");
    let holder = Owned::spawn(&tmp, &["--restorable"]);
    let (r, w) = (holder.fd("pipe_r"), holder.fd("pipe_w"));
    let rules = policy(&tmp, "close-reader.rules", &format!("pipe fd {r} => close\n{NULL_CLOSED}"));
    let image = tmp.path().join("image");
    let pid = holder.pid().to_string();
    let args = ["--rules", path_str(&rules), "dump", "--pid", &pid, "--image", path_str(&image)];
    let (code, out, err) = crrules_with(&args, |_| {});
    assert_eq!(code, 0, "dump:\n{out}\n{err}");
    let m = manifest(&image);
    assert_eq!(image_fd(&m, r)["restore"]["how"], "close");
    let write_end = &image_fd(&m, w)["restore"];
    assert_eq!((&write_end["how"], &write_end["write"]), (&json!("pipe"), &json!(true)), "{write_end}");
    assert!(write_end["capacity"].as_u64().is_some_and(|c| c > 0), "{write_end}");
    assert!(err.contains(&format!("fd {w}: the pipe's read end is not in the process")), "{err}");
}

#[test]
fn contents_over_the_limit_is_refused_at_dump_and_writes_nothing() {
    let tmp = TempDir::new("more-limit");
    let rules = policy(&tmp, "limit.rules", "memfd => contents limit 4\nany => close\n");
    let holder = Owned::spawn(&tmp, &["--restorable"]);
    let memfd = holder.fd("memfd");
    let parent = tmp.path().join("images");
    std::fs::create_dir(&parent).expect("images dir");
    let image = parent.join("image");
    let pid = holder.pid().to_string();
    let args = with_rules(Some(&rules), &["dump", "--pid", &pid, "--image", path_str(&image)]);
    let (code, out, err) = run(&args);
    assert_eq!(code, 2, "a dump that cannot carry out a rule could not run:\n{out}\n{err}");
    assert!(names_fd(&err, memfd), "the error must name the memfd, fd {memfd}:\n{err}");
    for word in ["11 bytes", "limit of 4"] {
        assert!(err.contains(word), "the error must say `{word}`:\n{err}");
    }
    assert!(!image.exists(), "the refused dump wrote {}", image.display());
    let left: Vec<_> = std::fs::read_dir(&parent).expect("images dir").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.is_empty(), "the refused dump left {left:?} in {}", parent.display());

    // The control: within the limit, the same holder dumps.
    let roomy = policy(&tmp, "roomy.rules", "memfd => contents limit 11\nany => close\n");
    dump(Some(&roomy), holder.pid(), &image);
}

/// The user the unprivileged runs are made as.
const NOBODY: u32 = 65534;

/// `fdholder --pipes 2000` (CRIU 4.2 refuses more than 1,024 pipes holding data) dumped, and restored into
/// fdreport once it is gone; with `user`, everything runs as that user. Every read end must report its
/// exact bytes, every write end be its read end's pipe.
fn pipes_round_trip(tmp: &TempDir, user: Option<u32>) {
    const PIPES: i32 = 2000;
    let mut hard = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    #[allow(unsafe_code, reason = "getrlimit into a struct owned here")]
    // SAFETY: getrlimit only writes `hard`.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard);
    }
    if !is_root() && hard.rlim_max < 2 * PIPES as u64 + 64 {
        let max = hard.rlim_max;
        eprintln!("skipped: the open files hard limit is {max}, under the {} fds the holder needs", 2 * PIPES);
        return;
    }
    // Where `user` writes the image and the report: sticky, as `/tmp` is, so that a restore as root takes
    // an image under it (in a directory others may write but not sticky, another image could be put in its
    // place, and root's restore refuses it).
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o1777)).expect("chmod work");
    let (crrules, fdreport) = match user {
        Some(_) => (
            runnable_copy(tmp, Path::new(env!("CARGO_BIN_EXE_crrules"))),
            runnable_copy(tmp, &example_path("fdreport")),
        ),
        None => (PathBuf::from(env!("CARGO_BIN_EXE_crrules")), example_path("fdreport")),
    };
    let as_user = |c: &mut Command| {
        if let Some(user) = user {
            c.uid(user).gid(user);
        }
    };

    let mut holder = holder_as(tmp, &["--pipes", &PIPES.to_string()], user);
    assert_eq!(holder.fd("count"), PIPES);
    let first = holder.fd("first");
    let image = work.join("image");
    let pid = holder.pid().to_string();
    let (code, out, err) = crrules_at(&crrules, &["dump", "--pid", &pid, "--image", path_str(&image)], as_user);
    assert_eq!(code, 0, "dump of {PIPES} pipes failed:\n{out}\n{err}");
    holder.finish();

    let report_path = work.join("report.json");
    let args = ["restore", "--image", path_str(&image), "--", path_str(&fdreport), "--out", path_str(&report_path)];
    let (code, out, err) = crrules_at(&crrules, &args, as_user);
    assert_eq!(code, 0, "restore of {PIPES} pipes failed:\n{out}\n{err}");
    let report = read_report(&report_path);
    let mut wrong = Vec::new();
    for i in 0..PIPES {
        let (r, w) = (first + 2 * i, first + 2 * i + 1);
        let want = format!("pipe {i}\n");
        let (Some(read_end), Some(write_end)) = (report.get(&r), report.get(&w)) else {
            wrong.push(format!("pipe {i}: fd {r} or {w} is missing"));
            continue;
        };
        if read_end["kind"] != "pipe" || read_end["data"] != want.as_str() {
            wrong.push(format!("pipe {i}: fd {r} is {read_end}"));
        }
        if write_end["kind"] != "pipe" || write_end["ino"] != read_end["ino"] {
            wrong.push(format!("pipe {i}: fd {w} is not fd {r}'s write end: {write_end}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {PIPES} pipes came back wrong, first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}

#[test]
fn thousands_of_pipes_with_data_come_back() {
    let tmp = TempDir::new("more-pipes");
    pipes_round_trip(&tmp, None);
}

/// Without CAP_SYS_RESOURCE a user's pipes share `fs.pipe-user-pages-soft` (16,384 pages: 1,024 pipes of
/// 64 KiB); past it, new pipes get 2 pages and may not grow.
#[test]
fn thousands_of_pipes_with_data_come_back_for_an_unprivileged_user() {
    if !is_root() {
        eprintln!("skipped: needs root (to run the holder, the dump and the restore as uid {NOBODY})");
        return;
    }
    let tmp = TempDir::new("more-pipes-nobody");
    pipes_round_trip(&tmp, Some(NOBODY));
}

/// `fdholder --fifo` dumped twice with `policy` (the default one when `None`), then restored from both
/// images once it is gone: the FIFO comes back at its number, by its path, with its bytes each time, and
/// the dumps took none of them from the holder.
fn fifo_round_trip(tmp: &TempDir, policy: Option<&Path>) {
    let mut holder = Owned::spawn(tmp, &["--fifo"]);
    let fd = holder.fd("fifo");
    let path = holder.dir.join("fifo");
    assert_eq!(std::fs::read_link(format!("/proc/{}/fd/{fd}", holder.pid())).expect("link"), path);
    assert_eq!(buffered(holder.pid(), fd), 10, "the holder's FIFO holds `fifo bytes`");

    let first = tmp.path().join("first");
    dump(policy, holder.pid(), &first);
    assert_eq!(buffered(holder.pid(), fd), 10, "the dump took bytes from the holder's FIFO");
    let second = tmp.path().join("second");
    dump(policy, holder.pid(), &second);

    // The holder gone, the FIFO (still there by name) is empty: what a restore finds in it, it put back.
    holder.holder.kill();
    for (image, out) in [(&first, "first.json"), (&second, "second.json")] {
        let report = restore_report(image, &tmp.path().join(out));
        let got = report.get(&fd).unwrap_or_else(|| panic!("fd {fd} is missing: the command got {:?}", report.keys()));
        assert_eq!((&got["kind"], &got["link"]), (&json!("fifo"), &json!(path_str(&path))), "{got}");
        assert_eq!(got["data"], "fifo bytes", "the FIFO restored from {} lost its bytes: {got}", image.display());
    }
}

#[test]
fn a_fifo_keeps_its_buffered_bytes() {
    let tmp = TempDir::new("more-fifo");
    fifo_round_trip(&tmp, None);
}

#[test]
fn a_fifo_recreated_by_rule_keeps_its_buffered_bytes() {
    let tmp = TempDir::new("more-fifo-recreate");
    let rules = policy(&tmp, "fifo.rules", "fifo => recreate\npipe => recreate\nfile => reopen path\n");
    fifo_round_trip(&tmp, Some(&rules));
}

#[test]
fn freeze_stops_the_process_and_lets_it_go() {
    let tmp = TempDir::new("more-freeze");
    let mut holder = Owned::spawn(&tmp, &["--restorable"]);
    let pid = holder.pid();
    let image = tmp.path().join("image");
    let (code, out, err) = run(&["dump", "--pid", &pid.to_string(), "--image", path_str(&image), "--freeze"]);
    assert_eq!(code, 0, "dump --freeze failed:\n{out}\n{err}");

    // `the process was stopped (HOW) for N us`, as the manifest records it.
    let line = err.lines().find(|l| l.contains("stopped (")).unwrap_or_else(|| panic!("no `stopped (`:\n{err}"));
    let (how, rest) = line.split_once("stopped (").and_then(|(_, r)| r.split_once(')')).expect("stopped (HOW)");
    let micros: u64 = rest
        .trim()
        .strip_prefix("for ")
        .and_then(|r| r.strip_suffix(" us"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("`for N us` after the stop: {line}"));
    let frozen = &manifest(&image)["process"]["frozen"];
    assert!(frozen["how"] == "sigstop" || frozen["how"] == "cgroup", "process.frozen.how: {frozen}");
    assert_eq!((&frozen["how"], &frozen["micros"]), (&json!(how), &json!(micros)), "{line}");

    // Let go: not stopped, and it runs (it exits at its stdin's EOF, which a stopped process cannot).
    let deadline = Instant::now() + Duration::from_secs(2);
    while state(pid) == "T" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(state(pid), "T", "process {pid} is still stopped 2 s after the dump");
    let (tx, rx) = std::sync::mpsc::channel();
    let finisher = std::thread::spawn(move || {
        holder.holder.finish();
        let _ = tx.send(());
        holder
    });
    let exited = rx.recv_timeout(Duration::from_secs(5)).is_ok();
    if !exited {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    drop(finisher.join());
    assert!(exited, "process {pid} did not exit at its stdin's EOF within 5 s: it was not let go");
}

#[test]
fn dump_leaves_the_process_unchanged() {
    let tmp = TempDir::new("more-unchanged");
    let mut holder = Owned::spawn(&tmp, &["--restorable"]);
    let pid = holder.pid();
    let first = tmp.path().join("first");
    dump(None, pid, &first);
    assert_eq!(buffered(pid, holder.fd("pipe_r")), 9, "the pipe still holds `pipe data` after a dump");
    let second = tmp.path().join("second");
    dump(None, pid, &second);

    // The listener's port must be free for the restores.
    holder.holder.kill();
    let fields = [("pipe_r", "data"), ("unix_a", "messages"), ("unix_b", "messages"), ("unix_dgram_b", "messages")];
    let states: Vec<Vec<Value>> = [(&first, "first.json"), (&second, "second.json")]
        .into_iter()
        .map(|(image, out)| {
            let report = restore_report(image, &tmp.path().join(out));
            fields.iter().map(|(name, field)| report[&holder.fd(name)][field].clone()).collect()
        })
        .collect();
    let want = [json!("pipe data"), json!(["to a"]), json!(["to b"]), json!(["d1", "d2"])];
    assert_eq!(states[0], want, "the first image's queues and bytes ({fields:?})");
    assert_eq!(states[1], want, "the second image's: the first dump took something from the process");
}

#[test]
fn restore_is_all_or_nothing_when_a_late_fd_fails() {
    let tmp = TempDir::new("more-late-fail");
    let files: Vec<PathBuf> = ["a.txt", "b.txt", "c.txt"].iter().map(|n| tmp.write(n, n)).collect();
    let args: Vec<&str> = files.iter().flat_map(|f| ["--open", path_str(f)]).collect();
    let mut holder = holder(&tmp, &args);
    let fds: Vec<i32> = (0..files.len()).map(|i| holder.fd(&format!("open{i}"))).collect();
    let image = tmp.path().join("image");
    dump(None, holder.pid(), &image);
    holder.finish();
    let highest = manifest(&image)["fds"].as_array().expect("fds").iter().filter_map(|f| f["fd"].as_i64()).max();
    let last = *fds.last().expect("three fds");
    assert_eq!(highest, Some(i64::from(last)), "the last file opened is the image's highest fd");
    let marker = tmp.path().join("MARKER");
    let (code, said, ran) = restore_marking(&image, &[], &marker, |_| {});
    assert!(code == 0 && ran, "the untouched image must restore (exit {code}, ran: {ran}):\n{said}");

    std::fs::remove_file(files.last().expect("c.txt")).expect("remove c.txt");
    let said = assert_refused(restore_marking(&image, &[], &marker, |_| {}), &[path_str(&files[2])]);
    assert!(names_fd(&said, last), "the refusal must name fd {last}:\n{said}");
    for fd in &fds[..2] {
        assert!(!names_fd(&said, *fd), "fd {fd} restored fine, yet the refusal names it:\n{said}");
    }
}
