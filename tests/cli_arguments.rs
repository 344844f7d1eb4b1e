//! End-to-end, issue 12 (arguments): what the parser refuses (negative pids and fds, `--inherit` without a
//! fd number, targets that cannot go together), how a bad facts file is reported (its line, the fd and the
//! field), and what `check --all` reads: no kernel threads, and, run by a user who may read no process,
//! an error rather than a clean result.

mod common;
use common::{TempDir, run};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[test]
fn r12_negative_pids_and_fds_are_refused_where_the_arguments_are_read() {
    let cases: &[(&[&str], &str)] = &[
        (&["check", "--pid", "-1"], "invalid value '-1' for '--pid <PID>': -1 is not in 1..="),
        (&["check", "--pid=-1"], "invalid value '-1' for '--pid <PID>'"),
        (&["check", "--pid", "0"], "invalid value '0' for '--pid <PID>'"),
        (&["check", "--pid", "1", "--pid", "-5"], "invalid value '-5' for '--pid <PID>'"),
        (&["facts", "--pid", "-3"], "invalid value '-3' for '--pid <PID>'"),
        (&["explain", "--pid", "-1", "--fd", "0"], "invalid value '-1' for '--pid <PID>'"),
        (&["explain", "--pid", "1", "--fd", "-1"], "invalid value '-1' for '--fd <FD>': -1 is not in 0..="),
        (&["dump", "--pid", "-1", "--image", "/nonexistent/x"], "invalid value '-1' for '--pid <PID>'"),
        (&["handover", "--pid", "-1", "--", "true"], "invalid value '-1' for '--pid <PID>'"),
        (&["criu", "--pid", "-1"], "invalid value '-1' for '--pid <PID>'"),
        (
            &["restore", "--image", "/nonexistent/x", "--inherit", "pts=-1", "--", "true"],
            "invalid value 'pts=-1' for '--inherit <NAME=FD>': `-1` is not an fd number (0 or more)",
        ),
        (
            &["restore", "--image", "/nonexistent/x", "--inherit", "pts", "--", "true"],
            "invalid value 'pts' for '--inherit <NAME=FD>': expected NAME=FD",
        ),
        (
            &["restore", "--image", "/nonexistent/x", "--inherit", "=3", "--", "true"],
            "invalid value '=3' for '--inherit <NAME=FD>': the NAME before `=` is empty",
        ),
    ];
    for (args, message) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.starts_with(&format!("error: {message}")), "{args:?}: {err}");
    }
    // A name may hold `=`: the fd number is after the last one.
    let (code, _, err) = run(&["restore", "--image", "/nonexistent/x", "--inherit", "a=b=3", "--", "true"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot restore from /nonexistent/x"), "{err}");
}

#[test]
fn r12_criu_action_refuses_a_crtools_init_pid_that_is_no_pid() {
    for given in ["-5", "0", "x"] {
        let out = Command::new(env!("CARGO_BIN_EXE_crrules"))
            .arg("criu-action")
            .env("NO_COLOR", "1")
            .env("CRTOOLS_SCRIPT_ACTION", "pre-dump")
            .env("CRTOOLS_INIT_PID", given)
            .output()
            .expect("run crrules");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{given}: {err}");
        assert!(err.contains(&format!("pre-dump with CRTOOLS_INIT_PID=`{given}`, which is not a pid")), "{err}");
    }
}

#[test]
fn r12_targets_that_cannot_go_together_are_refused_never_ignored() {
    let facts = TempDir::new("targets");
    let file = facts.write("saved.jsonl", "");
    let file = file.to_str().unwrap();
    // Each target, as `check` takes it; `--tree` needs `--pid`.
    let targets: &[&[&str]] =
        &[&["--pid", "1"], &["--tree"], &["--all"], &["--cgroup", "/"], &["--container", "x"], &["--facts", file]];
    for (i, a) in targets.iter().enumerate() {
        for b in &targets[i + 1..] {
            if a[0] == "--pid" && b[0] == "--tree" {
                continue;
            }
            for command in ["check", "facts"] {
                if command == "facts" && (a[0] == "--facts" || b[0] == "--facts") {
                    continue;
                }
                let args: Vec<&str> = [&[command][..], a, b].concat();
                let (code, out, err) = run(&args);
                assert_eq!(code, 2, "{args:?}: {out}{err}");
                let refused =
                    err.contains("cannot be used with") || err.contains("required arguments were not provided");
                assert!(refused && err.starts_with("error: "), "{args:?}: {err}");
            }
        }
    }
    // `--tree` alone: it needs a `--pid`.
    for command in ["check", "facts"] {
        let (code, _, err) = run(&[command, "--tree"]);
        assert_eq!(code, 2);
        assert!(err.contains("required arguments were not provided") && err.contains("--pid <PID>"), "{err}");
    }
}

/// A facts line: pid 1 with a pipe at fd 4 (complete), and `extra` appended to the fds.
fn facts_line(extra: &str) -> String {
    let pipe = r#"{"fd": 4, "kind": "pipe", "link": "pipe:[1]", "deleted": false, "flags": [], "cloexec": false}"#;
    format!(r#"{{"pid": 1, "fds": [{pipe}{extra}]}}"#)
}

#[test]
fn r12_a_bad_facts_file_names_its_line_the_fd_and_the_field() {
    let fd =
        |body: &str| format!(r#", {{"fd": 9, "link": "x", "deleted": false, "flags": [], "cloexec": false{body}}}"#);
    let cases: Vec<(String, String)> = vec![
        (facts_line(&fd(r#", "kind": "xyz""#)), "fd 9: unknown kind `xyz`".into()),
        (
            facts_line(&fd(r#", "kind": "file", "size": "big""#)),
            r#"fd 9: `size`: invalid type: string "big", expected u64"#.into(),
        ),
        (
            facts_line(&fd(r#", "kind": "socket", "socket": {"family": "unx"}"#)),
            "fd 9: unknown socket family `unx`".into(),
        ),
        (
            facts_line(&fd(r#", "kind": "pipe", "action": "frobnicate""#)),
            "fd 9: unknown action `frobnicate`, expected one of reopen, contents, recreate, inherit, close, reject, plugin"
                .into(),
        ),
        (facts_line(r#", {"fd": 9, "kind": "pipe"}"#), "fd 9: missing field `link`".into()),
        (facts_line(r#", {"fd": -9, "state": "vanished"}"#), "`fd` -9 is not an fd number (0 or more)".into()),
        (r#"{"pid": -1, "fds": []}"#.into(), "`pid` -1 is not a process id (1 or more)".into()),
        ("{\"pid\": 1, \"fds\": [".into(), "EOF while parsing a list at column 19".into()),
    ];
    let dir = TempDir::new("bad-facts");
    for (line, message) in cases {
        // The bad line is the third: a good line and a blank one come first.
        let file = dir.write("saved.jsonl", &format!("{}\n\n{line}\n", facts_line("")));
        let file = file.to_str().unwrap();
        let (code, out, err) = run(&["check", "--root", dir.str(), "--facts", file]);
        assert_eq!(code, 2, "{line}: {out}{err}");
        let first = err.lines().next().unwrap_or_default();
        assert_eq!(first, format!("  × `{file}` line 3: {message}"), "{line}");
        // A policy test reads the same way.
        let test = dir.write("bad.test.jsonl", &format!("{line}\n"));
        let (code, _, err) = run(&["test", "--root", dir.str(), test.to_str().unwrap()]);
        assert_eq!(code, 2, "{line}: {err}");
        assert!(err.contains(&format!("line 1: {message}")), "{line}: {err}");
    }
}

/// The pids of `/proc` whose stat says `PF_KTHREAD`.
fn kernel_threads() -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let after_comm = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let flags: u32 = after_comm.split_whitespace().nth(7).and_then(|f| f.parse().ok()).unwrap_or(0);
        if flags & 0x0020_0000 != 0 {
            found.push(pid);
        }
    }
    found
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn r12_check_all_lists_no_kernel_thread() {
    if !running_as_root() {
        eprintln!("skipped: needs root (to read every process)");
        return;
    }
    let kthreads = kernel_threads();
    let root = TempDir::new("all-kthreads");
    let (code, out, err) = run(&["check", "--root", root.str(), "--all", "--format", "json"]);
    assert!(code == 0 || code == 1, "{err}");
    let listed: Vec<i32> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["pid"].as_i64().unwrap() as i32)
        .collect();
    assert!(!listed.is_empty(), "{err}");
    // Where the host's kernel threads are seen (not in a pid namespace of its own), none is listed.
    for pid in &kthreads {
        assert!(!listed.contains(pid), "kernel thread {pid} listed");
    }
    assert!(listed.contains(&(std::process::id() as i32)), "this test is a process like any other");
}

/// A kernel thread named directly is an error saying what it is (it has no fd table to check), not a
/// checkpointable process with no fds.
#[test]
fn r12_a_kernel_thread_named_by_pid_is_refused() {
    let Some(&pid) = kernel_threads().first() else {
        eprintln!("skipped: no kernel thread is visible here (a pid namespace of its own)");
        return;
    };
    let root = TempDir::new("pid-kthread");
    let (code, out, err) = run(&["check", "--root", root.str(), "--pid", &pid.to_string()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(&format!("process {pid} (")) && err.contains("is a kernel thread"), "{err}");
}

/// `crrules` run as the user `nobody`, with colour off and `--root` at an empty directory.
fn as_nobody(args: &[&str], root: &TempDir) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crrules"))
        .args(args)
        .args(["--root", root.str()])
        .env("NO_COLOR", "1")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .expect("run crrules as nobody");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// The pids of the processes `uid` runs.
fn processes_of(uid: u32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let real = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
        if real == Some(&uid.to_string()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn r12_check_all_by_a_user_says_what_it_could_not_read_and_fails_when_it_read_nothing() {
    if !running_as_root() {
        eprintln!("skipped: needs root (to run crrules as nobody)");
        return;
    }
    let root = TempDir::new("all-nobody");
    std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Nothing nobody may read: an error, with the count, not "0 checkpointable" and exit 0.
    if processes_of(65534).is_empty() {
        for command in ["check", "facts"] {
            let (code, out, err) = as_nobody(&[command, "--all"], &root);
            assert_eq!(code, 2, "{command}: {out}{err}");
            assert!(out.is_empty(), "{out}");
            assert!(err.contains("could read none of the ") && err.contains("nothing was checked"), "{err}");
            assert!(err.contains("may not inspect the fds of process"), "{err}");
        }
        let (_, _, err) = as_nobody(&["check", "--all"], &root);
        let summary = err.lines().find(|l| l.ends_with("exited during the check")).expect("summary");
        assert!(summary.contains(" 0 checkpointable, 0 not, ") && !summary.contains(" 0 could not be read"), "{err}");
    }
    // A process of its own: read and checked, the others counted.
    let mut sleeper = Command::new("sleep")
        .arg("600")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sleep as nobody");
    let (code, out, err) = as_nobody(&["check", "--all"], &root);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("pid {} sleep: checkpointable", sleeper.id())), "{out}");
    let summary = err.lines().find(|l| l.ends_with("exited during the check")).expect("summary");
    let unreadable: usize =
        summary.split(", ").find_map(|p| p.strip_suffix(" could not be read")).unwrap().parse().unwrap();
    assert!(unreadable >= 1, "{summary}");
}
