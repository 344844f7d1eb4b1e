//! End-to-end: an inotify instance through `crrules dump` and `crrules restore`. `fdholder --inotify` holds
//! one whose watches have gaps between their numbers (wds 1, 3, 4 and 7); the restored command, `fdreport`,
//! reports the watches its fd has (`{wd, ino, mask}` from its own fdinfo), which must be the holder's: the
//! same numbers, on the same inodes, with the same masks. A watch that cannot come back by path refuses the
//! dump (a deleted file) or the restore (an image whose two watches name one file), naming the fd and the
//! wd, and a refused restore never runs its command.
//!
//! The watches are resolved to paths with `open_by_handle_at`, which needs `CAP_DAC_READ_SEARCH`: without
//! root the tests say so and skip.

mod common;
mod fdtable_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{names_fd, path_str, reseal};
use scan_common::{Holder, example_path, holder_path};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// True when the dump can open file handles; otherwise says why the test skips.
fn can_open_handles() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: resolving inotify watches to paths needs CAP_DAC_READ_SEARCH (run as root)");
    }
    root
}

/// `fdholder --inotify ARGS`, its stderr in `tmp/holder.log`; and its temp dir, where the watched files are.
fn holder(tmp: &TempDir, args: &[&str]) -> (Holder, PathBuf) {
    let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
    let args: Vec<&OsStr> = [OsStr::new("--inotify")].into_iter().chain(args.iter().map(OsStr::new)).collect();
    let holder = Holder::spawn_with(&holder_path(), &args, |c| {
        c.stderr(log);
    });
    let dir = std::env::temp_dir().join(format!("crrules-fdholder-{}", holder.pid()));
    assert!(dir.join("dir_a").is_dir(), "the holder's temp dir {} has no dir_a", dir.display());
    (holder, dir)
}

/// A watch as fdinfo shows it: `(wd, ino, mask)`.
type Watch = (i64, u64, u64);

/// The watches of `/proc/PID/fdinfo/FD`, in wd order.
fn fdinfo_watches(pid: i32, fd: i32) -> Vec<Watch> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
    let field = |line: &str, key: &str| -> u64 {
        let value = line.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix(':'));
        u64::from_str_radix(value.unwrap_or_else(|| panic!("no {key} in {line:?}")), 16).expect("hex")
    };
    let mut watches: Vec<Watch> = info
        .lines()
        .filter_map(|l| l.strip_prefix("inotify "))
        .map(|l| (field(l, "wd") as i64, field(l, "ino"), field(l, "mask")))
        .collect();
    watches.sort_unstable();
    watches
}

/// The watches fdreport reported for one fd, in wd order.
fn reported_watches(report: &Value) -> Vec<Watch> {
    let list = report["watches"].as_array().unwrap_or_else(|| panic!("no watches reported: {report}"));
    let mut watches: Vec<Watch> = list
        .iter()
        .map(|w| (w["wd"].as_i64().unwrap_or(-1), w["ino"].as_u64().unwrap_or(0), w["mask"].as_u64().unwrap_or(0)))
        .collect();
    watches.sort_unstable();
    watches
}

fn inode(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).ino()
}

/// `crrules dump --pid PID --image IMAGE`: exit code, stdout, stderr.
fn dump(pid: i32, image: &Path) -> (i32, String, String) {
    run(&["dump", "--pid", &pid.to_string(), "--image", path_str(image)])
}

/// `crrules restore --image IMAGE -- fdreport --out OUT`, which must succeed; fdreport's report by fd.
fn restore_report(image: &Path, out: &Path) -> BTreeMap<i32, Value> {
    let fdreport = example_path("fdreport");
    let args = ["restore", "--image", path_str(image), "--", path_str(&fdreport), "--out", path_str(out)];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "restore of {} failed:\n{stdout}\n{stderr}", image.display());
    let text = std::fs::read_to_string(out).unwrap_or_else(|e| panic!("no report at {}: {e}", out.display()));
    let by_name: BTreeMap<String, Value> = serde_json::from_str(&text).expect("fdreport's JSON");
    by_name.into_iter().map(|(fd, v)| (fd.parse().expect("an fd number"), v)).collect()
}

fn manifest(image: &Path) -> Value {
    let text = std::fs::read_to_string(image.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

#[test]
fn inotify_watches_come_back_with_their_numbers_inodes_and_masks() {
    if !can_open_handles() {
        return;
    }
    let tmp = TempDir::new("fdtable-inotify");
    let (mut holder, dir) = holder(&tmp, &[]);
    let (pid, fd) = (holder.pid(), holder.fd("inotify"));

    // The shape the holder promises: gaps at 2, 5 and 6; the masks as the kernel shows them (IN_ONLYDIR
    // steers the call only and is not shown; IN_EXCL_UNLINK and IN_ONESHOT are kept).
    let wds: Vec<i32> = ["wd_dir_a", "wd_dir_b", "wd_file_c", "wd_sub"].iter().map(|n| holder.fd(n)).collect();
    assert_eq!(wds, [1, 3, 4, 7], "the holder's wds");
    let before = fdinfo_watches(pid, fd);
    let want: Vec<Watch> = vec![
        (1, inode(&dir.join("dir_a")), u64::from(libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_TO)),
        (3, inode(&dir.join("dir_b")), u64::from(libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_EXCL_UNLINK)),
        (4, inode(&dir.join("file_c")), u64::from(libc::IN_CLOSE_WRITE | libc::IN_ONESHOT)),
        (7, inode(&dir.join("dir_a/sub")), u64::from(libc::IN_ALL_EVENTS)),
    ];
    assert_eq!(before, want, "the holder's watches (wd, ino, mask)");

    // The default policy recreates it, its watches resolved to their paths in wd order.
    let image = tmp.path().join("image");
    let (code, out, err) = dump(pid, &image);
    assert_eq!(code, 0, "dump of {pid} failed:\n{out}\n{err}");
    let m = manifest(&image);
    let entry = m["fds"].as_array().expect("fds").iter().find(|f| f["fd"] == fd).expect("the inotify fd");
    assert_eq!(entry["decision"]["action"], "recreate", "{entry}");
    assert_eq!(entry["restore"]["how"], "inotify", "{entry}");
    let paths: Vec<(&Value, &Value)> =
        entry["restore"]["watches"].as_array().expect("watches").iter().map(|w| (&w["wd"], &w["path"])).collect();
    let at = |name: &str| json!(path_str(&dir.join(name)));
    let want_paths =
        [(json!(1), at("dir_a")), (json!(3), at("dir_b")), (json!(4), at("file_c")), (json!(7), at("dir_a/sub"))];
    assert_eq!(paths, want_paths.iter().map(|(w, p)| (w, p)).collect::<Vec<_>>(), "{entry}");
    // The fdinfo facts carry each watch's file handle.
    let facts = entry["facts"]["inotify"].as_array().expect("inotify facts");
    assert!(facts.iter().all(|w| w["fhandle"]["bytes"].is_string() && w["fhandle"]["type"].is_i64()), "{entry}");
    // The dump changed nothing: the holder's watches are as they were.
    assert_eq!(fdinfo_watches(pid, fd), before, "the holder's watches after the dump");

    // Restored while the watched files are still there: the same numbers, inodes and masks, non-blocking
    // as the holder's, and not close-on-exec (it survived the exec of fdreport).
    let report = restore_report(&image, &tmp.path().join("report.json"));
    let restored = report.get(&fd).unwrap_or_else(|| panic!("fd {fd} is missing: {:?}", report.keys()));
    assert_eq!(restored["kind"], "inotify", "{restored}");
    assert!(restored.get("error").is_none(), "a probe failed: {restored}");
    assert_eq!(reported_watches(restored), before, "the restored watches (wd, ino, mask): {restored}");
    let flags = restored["flags"].as_i64().expect("flags");
    assert_eq!(flags & i64::from(libc::O_NONBLOCK), i64::from(libc::O_NONBLOCK), "{restored}");
    assert_eq!(restored["cloexec"], false, "{restored}");
    holder.finish();
}

#[test]
fn dump_refuses_a_watch_on_a_deleted_file() {
    if !can_open_handles() {
        return;
    }
    let tmp = TempDir::new("fdtable-inotify-deleted");
    let (mut holder, _dir) = holder(&tmp, &["--deleted"]);
    let (fd, wd) = (holder.fd("inotify"), holder.fd("wd_gone"));
    let parent = tmp.path().join("images");
    std::fs::create_dir(&parent).expect("images dir");
    let (code, out, err) = dump(holder.pid(), &parent.join("image"));
    holder.finish();
    assert_ne!(code, 0, "a watch on a deleted file cannot be dumped:\n{out}\n{err}");
    assert!(names_fd(&err, fd), "the refusal must name fd {fd}:\n{err}");
    assert!(err.contains(&format!("wd {wd}:")), "the refusal must name wd {wd}:\n{err}");
    assert!(err.contains("a watch on a deleted file cannot be re-added by path"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&parent).expect("images dir").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.is_empty(), "the refused dump left {left:?} in {}", parent.display());
}

#[test]
fn restore_refuses_two_watches_on_one_file() {
    if !can_open_handles() {
        return;
    }
    let tmp = TempDir::new("fdtable-inotify-twice");
    let (mut holder, dir) = holder(&tmp, &[]);
    let fd = holder.fd("inotify");
    let image = tmp.path().join("image");
    let (code, out, err) = dump(holder.pid(), &image);
    assert_eq!(code, 0, "dump failed:\n{out}\n{err}");

    // wd 3 now says it watches dir_a, as wd 1 does: the kernel would give that file's watch back as wd 1.
    let mut m = manifest(&image);
    let entry = m["fds"].as_array_mut().expect("fds").iter_mut().find(|f| f["fd"] == fd).expect("the inotify fd");
    let watches = entry["restore"]["watches"].as_array_mut().expect("watches");
    let third = watches.iter_mut().find(|w| w["wd"] == 3).expect("wd 3");
    third["path"] = json!(path_str(&dir.join("dir_a")));
    std::fs::write(image.join("manifest.json"), serde_json::to_string_pretty(&m).expect("json")).expect("write");
    reseal(&image);

    let marker = tmp.path().join("MARKER");
    let script = ["sh", "-c", "touch \"$1\"", "sh", path_str(&marker)];
    let (code, out, err) = run(&[&["restore", "--image", path_str(&image), "--"][..], &script[..]].concat());
    holder.finish();
    assert_ne!(code, 0, "the restore must be refused:\n{out}\n{err}");
    assert!(!marker.exists(), "the refused restore ran its command anyway:\n{err}");
    assert!(names_fd(&err, fd), "the refusal must name fd {fd}:\n{err}");
    assert!(err.contains("wd 3:") && err.contains("dir_a"), "the refusal must name wd 3 and its path:\n{err}");
}
