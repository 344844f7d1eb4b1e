//! End-to-end: fds that are one open file (open file description) at several numbers, after `dup`, `dup2` or
//! a shell's `>log 2>&1`, through `crrules dump`, `restore` and `handover`, against `fdholder --dups` (a file
//! at four numbers, an eventfd at three, a pipe's write end at two, an `O_APPEND` log at fds 1 and 2). The
//! restored command is `fdreport`, which says which of its own fds are one open file (`kcmp`), and writes
//! through fd 1 first, so the offsets it reports show whether fd 2 moved with it. What a restore gives back
//! must be one open file again, with its offset and status flags, and each number's own close-on-exec flag;
//! a handover must keep the sharing too. A policy deciding differently for fds of one open file is
//! followed fd by fd, and an image whose duplicate names a later fd, a closed one, one not in the image or
//! itself is refused without running the command.

mod common;
mod fdtable_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{image_fd, manifest, names_fd, path_str, read_report, reseal};
use scan_common::{Holder, example_path, holder_path};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `fdholder --dups`, its first stderr in `tmp/holder.log` (it then puts its log over fds 1 and 2), once it
/// has closed the copy of stdout it wrote its map on (so its fd table is the one its map describes); killed
/// when dropped.
fn holder(tmp: &TempDir) -> Holder {
    let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
    let holder = Holder::spawn_with(&holder_path(), &[OsStr::new("--dups")], |c| {
        c.stderr(log);
    });
    let copy = PathBuf::from(format!("/proc/{}/fd/{}", holder.pid(), holder.fd("stdout_copy")));
    let since = Instant::now();
    while copy.symlink_metadata().is_ok() {
        assert!(since.elapsed() < Duration::from_secs(10), "the holder never closed {}", copy.display());
        std::thread::sleep(Duration::from_millis(5));
    }
    holder
}

/// The holder's log file (its fds 1 and 2).
fn log_path(holder: &Holder) -> PathBuf {
    std::fs::read_link(format!("/proc/{}/fd/1", holder.pid())).expect("the holder's fd 1")
}

/// `crrules ARGS -- fdreport --write 1 --out OUT`; the report.
fn report_after(args: &[&str], out: &Path) -> BTreeMap<i32, Value> {
    let fdreport = example_path("fdreport");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--", path_str(&fdreport), "--write", "1", "--out", path_str(out)]);
    let (code, stdout, stderr) = run(&all);
    assert_eq!(code, 0, "crrules {args:?} failed:\n{stdout}\n{stderr}");
    read_report(out)
}

/// The fds of `report` that are one open file with fd `fd`.
fn shares(report: &BTreeMap<i32, Value>, fd: i32) -> Vec<i64> {
    let r = report.get(&fd).unwrap_or_else(|| panic!("fd {fd} is not open: {report:?}"));
    r.get("shares").map_or_else(Vec::new, |s| s.as_array().expect("shares").iter().filter_map(Value::as_i64).collect())
}

fn flags(report: &BTreeMap<i32, Value>, fd: i32) -> i64 {
    report[&fd]["flags"].as_i64().unwrap_or_else(|| panic!("fd {fd} has no flags: {}", report[&fd]))
}

/// What both a restore and a handover must give `fdreport` for the holder's fds: one open file at the
/// numbers that were one, each with its own close-on-exec flag; the offset and status flags shared.
/// `log_pos` is where the log's end is after fdreport's write through fd 1.
fn assert_one_open_file_each(report: &BTreeMap<i32, Value>, holder: &Holder, log_pos: u64, what: &str) {
    let fd = |name: &str| holder.fd(name);
    let nonblock = i64::from(libc::O_NONBLOCK);
    // The file: `file` and `file_dup_cloexec` were close-on-exec, so the exec closed them; the other two
    // are one open file at offset 4.
    for gone in ["file", "file_dup_cloexec", "eventfd_dup_cloexec"] {
        assert!(!report.contains_key(&fd(gone)), "{what}: {gone} was close-on-exec: {:?}", report.get(&fd(gone)));
    }
    assert_eq!(shares(report, fd("file_dup")), [i64::from(fd("file_dup2"))], "{what}: file_dup");
    for name in ["file_dup", "file_dup2"] {
        let r = &report[&fd(name)];
        assert_eq!((&r["pos"], &r["cloexec"], &r["data"]), (&json!(4), &json!(false), &json!("0123456789abcdef")));
    }
    // The eventfd: one counter at two numbers, non-blocking through both.
    assert_eq!(shares(report, fd("eventfd")), [i64::from(fd("eventfd_dup"))], "{what}: eventfd");
    for name in ["eventfd", "eventfd_dup"] {
        let r = &report[&fd(name)];
        assert_eq!((&r["count"], &r["cloexec"]), (&json!(7), &json!(false)), "{what}: {name}: {r}");
        assert_eq!(flags(report, fd(name)) & nonblock, nonblock, "{what}: {name}: {r}");
    }
    // The pipe's write end at two numbers, its read end with the bytes.
    assert_eq!(shares(report, fd("pipe_w")), [i64::from(fd("pipe_w_dup"))], "{what}: pipe_w");
    for name in ["pipe_w", "pipe_w_dup"] {
        assert_eq!(flags(report, fd(name)) & nonblock, nonblock, "{what}: {name}: {}", report[&fd(name)]);
    }
    assert_eq!(report[&fd("pipe_r")]["data"], "pipe bytes", "{what}: pipe_r");
    assert_eq!(shares(report, fd("pipe_r")), Vec::<i64>::new(), "{what}: pipe_r");
    // The log: one open file at fds 1 and 2, appending; fdreport's write through fd 1 moved fd 2's offset.
    assert_eq!((shares(report, 1), shares(report, 2)), (vec![2], vec![1]), "{what}: the log");
    let append = i64::from(libc::O_APPEND);
    for at in [1, 2] {
        let r = &report[&at];
        assert_eq!((&r["pos"], &r["kind"]), (&json!(log_pos), &json!("file")), "{what}: fd {at}: {r}");
        assert_eq!(flags(report, at) & append, append, "{what}: fd {at}: {r}");
    }
}

#[test]
fn fds_of_one_open_file_come_back_as_one_open_file() {
    let tmp = TempDir::new("fdtable-dups");
    let mut holder = holder(&tmp);
    let pid = holder.pid().to_string();
    let log = log_path(&holder);
    let fd = |name: &str| holder.fd(name);

    // The dump keeps the lowest number of each open file and records the others as its duplicates; the
    // pipe's bytes are saved once.
    let image = tmp.path().join("image");
    let (code, out, err) = run(&["dump", "--pid", &pid, "--image", path_str(&image)]);
    assert_eq!(code, 0, "dump:\n{out}\n{err}");
    let m = manifest(&image);
    let dups = [
        ("file_dup", "file"),
        ("file_dup2", "file"),
        ("file_dup_cloexec", "file"),
        ("eventfd_dup", "eventfd"),
        ("eventfd_dup_cloexec", "eventfd"),
        ("pipe_w_dup", "pipe_w"),
    ];
    for (name, of) in dups {
        assert_eq!(image_fd(&m, fd(name))["restore"], json!({"how": "dup", "of": fd(of)}), "{name}");
    }
    assert_eq!(image_fd(&m, 2)["restore"], json!({"how": "dup", "of": 1}));
    let hows: Vec<(&str, &str)> =
        vec![("file", "open"), ("eventfd", "eventfd"), ("pipe_w", "pipe"), ("pipe_r", "pipe")];
    for (name, how) in hows {
        assert_eq!(image_fd(&m, fd(name))["restore"]["how"], how, "{name}");
    }
    assert_eq!(image_fd(&m, 1)["restore"]["how"], "open");
    // Close-on-exec is each number's own, as the facts say.
    for (name, cloexec) in [("file", true), ("file_dup", false), ("file_dup_cloexec", true), ("eventfd_dup", false)] {
        assert_eq!(image_fd(&m, fd(name))["facts"]["cloexec"], cloexec, "{name}");
    }
    let data: Vec<_> = std::fs::read_dir(image.join("data")).expect("data").collect();
    assert_eq!(data.len(), 1, "one data file, the pipe's bytes: {data:?}");

    // Handed over live: each number is a duplicate of the holder's, and numbers of one open file there are
    // numbers of one open file here. The live log is 8 bytes ("out\nerr\n") before fdreport writes.
    let written = "through fd 1\n".len() as u64;
    let live = report_after(&["handover", "--pid", &pid], &tmp.path().join("live.json"));
    assert_one_open_file_each(&live, &holder, 8 + written, "handover");

    // Restored: the log reopened (at offset 8, appending) once, at fds 1 and 2; fdreport's write through
    // fd 1 lands at the end the handover left and moves fd 2's offset there too.
    holder.kill();
    let restored = report_after(&["restore", "--image", path_str(&image)], &tmp.path().join("restored.json"));
    assert_one_open_file_each(&restored, &holder, 8 + 2 * written, "restore");
    let text = std::fs::read_to_string(&log).expect("the log");
    assert_eq!(text, "out\nerr\nthrough fd 1\nthrough fd 1\n");
}

#[test]
fn a_policy_deciding_differently_for_fds_of_one_open_file_is_followed_fd_by_fd() {
    let tmp = TempDir::new("fdtable-dups-policy");
    let holder = holder(&tmp);
    let fd = |name: &str| holder.fd(name);
    // Fd 1 of the log closed: fd 2 is dumped itself. `eventfd_dup` closed: `eventfd_dup_cloexec` is a
    // duplicate of `eventfd`, not of a closed fd. `file_dup2` sent to /dev/null: not a duplicate.
    let policy = format!(
        "file fd 1 => close\neventfd fd {} => close\nfile fd {} => reopen \"/dev/null\"\n",
        fd("eventfd_dup"),
        fd("file_dup2")
    );
    let rules = tmp.write("site.rules", &policy);
    // The shipped policy after the site's lines: a copy in the test's own directory (the checkout may be
    // somewhere root refuses to read policies from, such as under /tmp).
    let builtin = tmp.path().join("policy");
    std::fs::create_dir(&builtin).expect("policy dir");
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policy")).expect("policy/").flatten() {
        if entry.path().extension().is_some_and(|e| e == "rules") {
            std::fs::copy(entry.path(), builtin.join(entry.file_name())).expect("copy a policy file");
        }
    }
    let image = tmp.path().join("image");
    let pid = holder.pid().to_string();
    let args = ["--rules", path_str(&rules), "--rules", path_str(&builtin), "dump", "--pid", &pid, "--image"];
    let (code, out, err) = run(&[&args[..], &[path_str(&image)]].concat());
    assert_eq!(code, 0, "dump:\n{out}\n{err}");
    let m = manifest(&image);
    let how = |at: i32| image_fd(&m, at)["restore"].clone();
    assert_eq!(how(1)["how"], "close");
    assert_eq!(how(2)["how"], "open", "fd 2 is the log's first restored fd: {}", how(2));
    assert_eq!(how(fd("eventfd_dup"))["how"], "close");
    assert_eq!(how(fd("eventfd_dup_cloexec")), json!({"how": "dup", "of": fd("eventfd")}));
    assert_eq!(
        (how(fd("file_dup2"))["how"].clone(), how(fd("file_dup2"))["path"].clone()),
        (json!("open"), json!("/dev/null"))
    );
    assert_eq!(how(fd("file_dup")), json!({"how": "dup", "of": fd("file")}));

    let out = tmp.path().join("restored.json");
    let fdreport = example_path("fdreport");
    let (code, stdout, stderr) =
        run(&["restore", "--image", path_str(&image), "--", path_str(&fdreport), "--out", path_str(&out)]);
    assert_eq!(code, 0, "restore:\n{stdout}\n{stderr}");
    let report = read_report(&out);
    // Left closed; fdreport's Rust runtime opens /dev/null over a closed standard stream.
    assert!(report.get(&1).is_none_or(|r| r["link"] == "/dev/null"), "fd 1 is left closed: {:?}", report.get(&1));
    assert_eq!((&report[&2]["pos"], shares(&report, 2)), (&json!(8), vec![]), "{}", report[&2]);
    assert_eq!(report[&fd("file_dup2")]["link"], "/dev/null");
    assert_eq!((&report[&fd("file_dup")]["pos"], shares(&report, fd("file_dup"))), (&json!(4), vec![]));
    assert!(!report.contains_key(&fd("eventfd_dup")));
    assert_eq!(shares(&report, fd("eventfd")), Vec::<i64>::new(), "its only other number left was close-on-exec");
}

#[test]
fn an_image_whose_duplicate_names_a_later_a_closed_a_missing_or_the_same_fd_is_refused() {
    let tmp = TempDir::new("fdtable-dups-edited");
    let holder = holder(&tmp);
    let fd = |name: &str| holder.fd(name);
    let image = tmp.path().join("image");
    let (code, out, err) = run(&["dump", "--pid", &holder.pid().to_string(), "--image", path_str(&image)]);
    assert_eq!(code, 0, "dump:\n{out}\n{err}");
    let original = std::fs::read_to_string(image.join("manifest.json")).expect("manifest");
    let (dup, file) = (fd("file_dup"), fd("file"));
    let cases: [Edit<'_>; 5] = [
        ("a later fd", Box::new(|m| set_of(m, dup, fd("file_dup2"))), dup, fd("file_dup2"), "which comes after it"),
        ("itself", Box::new(|m| set_of(m, dup, dup)), dup, dup, "is a duplicate of itself"),
        (
            "a closed fd",
            Box::new(|m| set_how(m, file, json!({"how": "close"}))),
            dup,
            file,
            "which the image leaves closed",
        ),
        ("an fd not in the image", Box::new(|m| remove(m, file)), dup, file, "which is not in the image"),
        (
            "another kind",
            Box::new(|m| set_of(m, fd("eventfd_dup"), file)),
            fd("eventfd_dup"),
            file,
            "(eventfd) is a duplicate of fd",
        ),
    ];
    for (what, edit, at, other, says) in cases {
        let mut m: Value = serde_json::from_str(&original).expect("manifest");
        edit(&mut m);
        std::fs::write(image.join("manifest.json"), serde_json::to_string(&m).expect("json")).expect("write");
        reseal(&image);
        let out = tmp.path().join("never.json");
        let fdreport = example_path("fdreport");
        let (code, stdout, stderr) =
            run(&["restore", "--image", path_str(&image), "--", path_str(&fdreport), "--out", path_str(&out)]);
        assert_ne!(code, 0, "{what}: the restore must be refused:\n{stdout}\n{stderr}");
        let text = stderr.replace('\n', " ");
        assert!(text.contains("the image is damaged") && text.contains(says), "{what}: {stderr}");
        assert!(names_fd(&text, at) && names_fd(&text, other), "{what}: fds {at} and {other} named: {stderr}");
        assert!(text.contains("the command was not run"), "{what}: {stderr}");
        assert!(!out.exists(), "{what}: the command ran");
    }
}

/// An edit of a manifest: what it does, the edit, the fd the error names, the other fd it names, what it
/// says.
type Edit<'a> = (&'static str, Box<dyn Fn(&mut Value) + 'a>, i32, i32, &'static str);

/// Makes fd `at`'s restore a duplicate of fd `of`.
fn set_of(m: &mut Value, at: i32, of: i32) {
    set_how(m, at, json!({"how": "dup", "of": of}));
}

/// Takes fd `at` out of the image.
fn remove(m: &mut Value, at: i32) {
    m["fds"].as_array_mut().expect("fds").retain(|f| f["fd"] != at);
}

fn set_how(m: &mut Value, at: i32, restore: Value) {
    let fds = m["fds"].as_array_mut().expect("fds");
    let f = fds.iter_mut().find(|f| f["fd"] == at).unwrap_or_else(|| panic!("no fd {at}"));
    f["restore"] = restore;
}
