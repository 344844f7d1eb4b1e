//! Scale (issue 12): the real binary against processes at the edges of what the kernel allows.
//! - A process at its hard open-files limit: `fdholder --high N` holds N fds of mixed kinds at the N highest
//!   numbers below it (here 1,000 fds at 19,000-19,999 beside fds 0-2, and 19,000 fds at 1,000-19,999),
//!   checked, dumped, restored and handed over by a crrules started with a soft limit of 1,024 and the same
//!   hard limit: it raises what it can, restores every fd at its number with its kind, and gives the
//!   command the soft limit it started with. (Both restores failed before: a restore wanted 64 numbers
//!   above the highest fd, past the limit, and a hand-over took a duplicate of every fd before placing any,
//!   with no room for them under a soft limit of 1,024.)
//! - `check --all` on a host with 2,000 more processes (`fdholder --children 2000`): every one is checked.
//! - A file at a path of 4,095 bytes (PATH_MAX - 1, through nested directories) held open: checked, dumped
//!   and restored by that path; deleted, its link text (` (deleted)` added) no longer fits in PATH_MAX and
//!   the kernel will not give it: the check says so, naming the pid and the fd.

mod common;
mod fdtable_common;
mod harden_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{names_fd, path_str, read_report};
use harden_common::{assert_no_panic, crrules_with, fd_limit, fd_of, processes, with_fd_limit};
use scan_common::{Holder, example_path, holder_path};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The soft limit crrules is started with, as most shells give it.
const SOFT: u64 = 1024;

/// `fdholder ARGS` with its stderr in `tmp/holder.log`.
fn holder(tmp: &TempDir, args: &[&str]) -> Holder {
    let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    Holder::spawn_with(&holder_path(), &args, |c| {
        c.stderr(log);
    })
}

/// `crrules ARGS` with a soft fd limit of [`SOFT`] and this process's hard one; exit code and stderr, never
/// a panic.
fn crrules_low_soft(args: &[&str]) -> (i32, String, String) {
    let (_, hard) = fd_limit();
    let (code, out, err) = crrules_with(args, |c| with_fd_limit(c, SOFT, hard));
    assert_no_panic(code, &err, &args.join(" "));
    (code, out, err)
}

/// A restored or handed-over command: records its soft fd limit in `LIMIT`, then fdreport reports its fds
/// in `OUT`.
fn report_command(limit: &Path, out: &Path) -> Vec<String> {
    let fdreport = example_path("fdreport");
    let script = "ulimit -Sn > \"$1\"; exec \"$2\" --out \"$3\"";
    ["sh", "-c", script, "sh", path_str(limit), path_str(&fdreport), path_str(out)].map(String::from).to_vec()
}

/// Checks, dumps, restores and hands over `fdholder --high N`; returns (fds, highest fd).
fn at_the_limit(n: usize, tag: &str) -> (usize, i64) {
    let (_, hard) = fd_limit();
    let tmp = TempDir::new(tag);
    let holder = holder(&tmp, &["--high", &n.to_string()]);
    let (first, limit) = (holder.fd("first") as i64, holder.fd("limit") as i64);
    assert_eq!(limit as u64, hard.min(1 << 20), "the holder is at this test's hard limit");
    let pid = holder.pid().to_string();

    // Checked: every fd from `first` up to the limit, each of the kind it was made as.
    let (code, out, err) = crrules_low_soft(&["check", "--pid", &pid, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let checked = processes(&out).remove(0);
    let fds = checked["fds"].as_array().expect("fds");
    let numbers: Vec<i64> = fds.iter().map(|f| f["fd"].as_i64().expect("fd")).collect();
    let expected: Vec<i64> = [0, 1, 2].into_iter().chain(first..limit).collect();
    assert_eq!(numbers, expected, "the fds listed");
    let kinds: HashMap<i64, String> =
        fds.iter().map(|f| (f["fd"].as_i64().unwrap_or(-1), f["kind"].as_str().unwrap_or("?").to_owned())).collect();
    let kind_of = |fd: i64| kinds[&fd].as_str();
    for kind in ["file", "chardev", "pipe", "socket", "eventfd"] {
        assert!((first..limit).any(|fd| kind_of(fd) == kind), "no {kind} among the high fds");
    }

    // Dumped and restored at the same numbers, with the same kinds; the pipes' bytes come back.
    let image = tmp.path().join("image");
    let (code, _, err) = crrules_low_soft(&["dump", "--pid", &pid, "--image", path_str(&image)]);
    assert_eq!(code, 0, "{err}");
    let (limit_file, report) = (tmp.path().join("limit"), tmp.path().join("restored.json"));
    let mut args = vec!["restore".to_owned(), "--image".to_owned(), path_str(&image).to_owned(), "--".to_owned()];
    args.extend(report_command(&limit_file, &report));
    let (code, _, err) = crrules_low_soft(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "the restore at the limit failed:\n{err}");
    let restored = read_report(&report);
    for fd in first..limit {
        let got = &restored[&(fd as i32)];
        assert_eq!(got["kind"].as_str(), Some(kind_of(fd)), "restored fd {fd}: {got}");
        if got["kind"] == "pipe" && got.get("data").is_some() {
            assert_eq!(got["data"], "p", "restored fd {fd}: {got}");
        }
    }
    let given = std::fs::read_to_string(&limit_file).expect("the command's limit");
    assert_eq!(given.trim(), SOFT.to_string(), "the command gets the soft limit crrules started with");

    // Handed over the same way, from the live process.
    let report = tmp.path().join("handed.json");
    let mut args = vec!["handover".to_owned(), "--pid".to_owned(), pid.clone(), "--".to_owned()];
    args.extend(report_command(&limit_file, &report));
    let (code, _, err) = crrules_low_soft(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "the hand-over at the limit failed:\n{err}");
    let handed = read_report(&report);
    for fd in first..limit {
        let got = &handed[&(fd as i32)];
        assert_eq!(got["kind"].as_str(), Some(kind_of(fd)), "handed-over fd {fd}: {got}");
    }
    (numbers.len(), limit - 1)
}

#[test]
fn a_thousand_fds_just_below_the_hard_limit_are_checked_dumped_restored_and_handed_over() {
    let (count, highest) = at_the_limit(1000, "scale-high");
    eprintln!("figures: {count} fds, the highest fd {highest}");
}

#[test]
fn nineteen_thousand_fds_up_to_the_hard_limit_are_checked_dumped_restored_and_handed_over() {
    let (_, hard) = fd_limit();
    if hard < 20_000 {
        eprintln!("skipped: the hard fd limit is {hard}, below 20,000");
        return;
    }
    let (count, highest) = at_the_limit(19_000, "scale-dense");
    eprintln!("figures: {count} fds, the highest fd {highest}");
}

/// The children `fdholder --children` reported, by pid.
fn children_of(holder: &Holder) -> Vec<i32> {
    holder.fds.iter().filter(|(name, _)| name.starts_with("child")).map(|(_, &pid)| pid).collect()
}

#[test]
fn check_all_checks_two_thousand_more_processes() {
    const CHILDREN: usize = 2000;
    let root = TempDir::new("scale-all");
    let mut holder = holder(&root, &["--children", &CHILDREN.to_string()]);
    let children = children_of(&holder);
    assert_eq!(children.len(), CHILDREN);
    let (code, out, err) = run(&["check", "--root", root.str(), "--all", "--format", "json"]);
    assert_no_panic(code, &err, "check --all");
    assert!(code == 0 || code == 1, "check --all: exit {code}:\n{err}");
    let checked = processes(&out);
    let pids: std::collections::HashSet<i64> = checked.iter().filter_map(|p| p["pid"].as_i64()).collect();
    let missing: Vec<&i32> = children.iter().filter(|&&c| !pids.contains(&i64::from(c))).collect();
    assert!(missing.is_empty(), "check --all left out {} of the children: {missing:?}", missing.len());
    for p in checked.iter().filter(|p| children.contains(&(p["pid"].as_i64().unwrap_or(0) as i32))) {
        assert_eq!(p["comm"], "fdholder", "{p}");
        assert!(fd_of(p, 0).is_some_and(|f| f["kind"] == "pipe"), "a child holds the holder's stdin: {p}");
    }
    let summary = err.lines().find(|l| l.contains(" processes: ")).unwrap_or_else(|| panic!("no summary: {err}"));
    let counted: usize = summary.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a count");
    assert!(counted >= checked.len() && counted > CHILDREN, "{summary}");
    eprintln!("figures: check --all checked {} processes ({summary})", checked.len());
    // The holder kills and reaps every child at its stdin's end.
    holder.finish();
    for child in children {
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        assert!(!state.contains("(fdholder)"), "child {child} is still there: {state}");
    }
}

/// A directory tree under `base` holding a file whose absolute path is exactly `len` bytes: components of
/// 200 bytes, then one that makes up the length. Returns the file's path.
fn long_path(base: &Path, len: usize) -> PathBuf {
    let mut dir = base.to_path_buf();
    while dir.as_os_str().len() + 1 + 200 + 1 + 20 < len {
        dir.push("d".repeat(200));
    }
    std::fs::create_dir_all(&dir).expect("the nested directories");
    let rest = len - dir.as_os_str().len() - 1;
    let file = dir.join("f".repeat(rest));
    assert_eq!(file.as_os_str().len(), len);
    std::fs::write(&file, b"a long way down\n").expect("the file");
    file
}

#[test]
fn a_file_at_a_path_of_4095_bytes_is_checked_dumped_and_restored() {
    const LEN: usize = 4095;
    let tmp = TempDir::new("scale-path");
    let file = long_path(tmp.path(), LEN);
    let mut holder = holder(&tmp, &["--open", path_str(&file)]);
    let (pid, fd) = (holder.pid().to_string(), holder.fd("open0"));

    let (code, out, err) = run(&["check", "--pid", &pid, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let checked = processes(&out).remove(0);
    let facts = fd_of(&checked, fd).expect("the long fd");
    assert_eq!((facts["kind"].as_str(), facts["path"].as_str()), (Some("file"), Some(path_str(&file))));
    assert_eq!(facts["action"], "reopen", "{facts}");

    // Dumped, then restored by its path: the restore opens and verifies it (it is close-on-exec, so the
    // command does not keep it); with the file gone the same image is refused, naming the path.
    let image = tmp.path().join("image");
    let (code, _, err) = run(&["dump", "--pid", &pid, "--image", path_str(&image)]);
    assert_eq!(code, 0, "{err}");
    let marker = tmp.path().join("MARKER");
    let (code, err, ran) = harden_common::restore_marking(&image, &marker, |_| {});
    assert!(code == 0 && ran, "the restore of a 4,095-byte path failed:\n{err}");

    // Deleted while held: the link text would be the path and ` (deleted)`, 4,105 bytes, which the kernel
    // refuses to give (ENAMETOOLONG). The check stops at that fd, naming it and the process.
    std::fs::remove_file(&file).expect("remove the file");
    let (code, err, ran) = harden_common::restore_marking(&image, &marker, |_| {});
    assert!(code == 2 && !ran, "exit {code}:\n{err}");
    assert!(names_fd(&err, fd) && err.contains("No such file or directory"), "{err}");
    let (code, _, err) = run(&["check", "--pid", &pid]);
    assert_no_panic(code, &err, "check");
    assert_eq!(code, 2, "{err}");
    let said = format!("cannot read the fd {fd} of process {pid}: File name too long (os error 36)");
    assert!(err.contains(&said), "{err}");
    holder.finish();
    eprintln!("figures: a path of {LEN} bytes; deleted: `{said}`");
}
