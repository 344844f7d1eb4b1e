//! Shared by the hardening tests (issue 12): running the real binary with its limits, user or stdin set
//! up, the checks every run must pass (no panic; an error names what it is about), the stable fds the racing
//! holders keep, and a restore whose command proves it ran by making a marker file.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use crate::scan_common::spawn_copy;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The exit status of a Rust program that panicked.
pub const PANIC: i32 = 101;

/// `crrules ARGS` with `setup` applied before it starts; stdin a pipe at its end, stdout and stderr
/// captured. Exit code (-1 for a signal), stdout, stderr.
pub fn crrules_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> (i32, String, String) {
    crrules_at(Path::new(env!("CARGO_BIN_EXE_crrules")), args, setup)
}

/// [`crrules_with`] with the binary at `exe` (a copy another user can run).
pub fn crrules_at(exe: &Path, args: &[&str], setup: impl FnOnce(&mut Command)) -> (i32, String, String) {
    let mut command = Command::new(exe);
    command.args(args).env("NO_COLOR", "1").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    setup(&mut command);
    let out = spawn_copy(&mut command).expect("run crrules").wait_with_output().expect("run crrules");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the command with `RLIMIT_NOFILE` set to `soft`/`hard` (a hard limit can only be lowered here).
pub fn with_fd_limit(command: &mut Command, soft: u64, hard: u64) {
    #[allow(unsafe_code, reason = "setrlimit in the child between fork and exec")]
    // SAFETY: setrlimit reads a struct on this closure's stack; it allocates nothing and is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
}

/// This process's `RLIMIT_NOFILE`: (soft, hard).
pub fn fd_limit() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    #[allow(unsafe_code, reason = "getrlimit into a struct we own")]
    // SAFETY: getrlimit writes into `lim`.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(r, 0, "getrlimit");
    (lim.rlim_cur, lim.rlim_max)
}

/// True when this process holds `CAP_SYS_RESOURCE` (it may raise a hard limit).
pub fn has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("CapEff");
    // CAP_SYS_RESOURCE is capability 24.
    u64::from_str_radix(eff.trim(), 16).expect("hex") & (1 << 24) != 0
}

/// A run of crrules never panics, and says so with `what` when it did.
pub fn assert_no_panic(code: i32, err: &str, what: &str) {
    assert!(code != PANIC && !err.contains("panicked at"), "{what}: crrules panicked (exit {code}):\n{err}");
}

/// The stable fds a racing holder keeps (`stable_fds` in fdholder), by name, with the kind `check` must give
/// each and the kind fdreport finds after a restore or a hand-over.
pub const STABLE: [(&str, &str); 7] = [
    ("stable_null", "chardev"),
    ("stable_file", "file"),
    ("stable_pipe_r", "pipe"),
    ("stable_pipe_w", "pipe"),
    ("stable_eventfd", "eventfd"),
    ("stable_unix_a", "socket"),
    ("stable_unix_b", "socket"),
];

/// The objects of `crrules check --format json` output (one per line).
pub fn processes(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The fd object for fd `fd` of one process object, if it is listed.
pub fn fd_of(process: &Value, fd: i32) -> Option<&Value> {
    process["fds"].as_array()?.iter().find(|f| f["fd"] == fd)
}

/// `text` names process `pid` as crrules does (`process N`, `pid N`), N not followed by another digit.
pub fn names_pid(text: &str, pid: i32) -> bool {
    ["process ", "pid "].iter().any(|word| {
        let needle = format!("{word}{pid}");
        text.match_indices(&needle).any(|(at, _)| !text[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// `crrules restore --image IMAGE -- sh -c 'touch MARKER'` set up by `setup`: exit code, stderr and whether
/// the command ran (the marker is removed again).
pub fn restore_marking(image: &Path, marker: &Path, setup: impl FnOnce(&mut Command)) -> (i32, String, bool) {
    let image = image.to_str().expect("UTF-8 path");
    let marker_arg = marker.to_str().expect("UTF-8 path");
    let args = ["restore", "--image", image, "--", "sh", "-c", "touch \"$1\"", "sh", marker_arg];
    let (code, _, err) = crrules_with(&args, setup);
    let ran = marker.exists();
    let _ = std::fs::remove_file(marker);
    (code, err, ran)
}

/// Nothing is at `image`, and no `.NAME.partial-PID` was left beside it: a failed dump left no image that
/// could be taken for a complete one, nor its remains.
pub fn assert_nothing_written(image: &Path) {
    assert!(!image.exists(), "a failed dump left {}", image.display());
    let parent = image.parent().expect("a parent");
    let name = image.file_name().and_then(|n| n.to_str()).expect("a name");
    let partial = format!(".{name}.partial-");
    let left: Vec<String> = std::fs::read_dir(parent)
        .map(|d| {
            d.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with(&partial)).collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed dump left {left:?} in {}", parent.display());
}
