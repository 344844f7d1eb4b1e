//! End-to-end: `crrules check` on real processes holding every kind of fd, with the built-in default policy;
//! the decisions, the facts in the JSON, exit codes, `--tree`, `explain`, and offline `check --facts`.

mod common;
mod scan_common;

use common::{TempDir, run};
use scan_common::Holder;
use serde_json::Value;

/// `crrules check --format json` of one process under the policy found at `root` (the built-in default when
/// `root` holds no rule file, so the host's policy directories don't count): exit code, stdout, stderr.
fn live_json(pid: &str, root: &TempDir) -> (i32, String, String) {
    run(&["check", "--root", root.str(), "--pid", pid, "--format", "json"])
}

/// [`live_json`], parsed.
fn check_json(pid: i32, root: &TempDir) -> (i32, Value, String) {
    let (code, out, err) = live_json(&pid.to_string(), root);
    let json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, json, err)
}

fn fd_object(json: &Value, fd: i32) -> &Value {
    json["fds"].as_array().unwrap().iter().find(|f| f["fd"] == fd).unwrap_or_else(|| panic!("no fd {fd} in {json}"))
}

/// For each fd the holder opens: its kind, the action the default policy gives it, and the policy file of
/// the deciding rule.
const EXPECTED: &[(&str, &str, &str, &str)] = &[
    ("file_at_offset", "file", "reopen", "20-files.rules"),
    ("append", "file", "reopen", "20-files.rules"),
    ("deleted", "file", "contents", "20-files.rules"),
    ("dir", "dir", "reopen", "20-files.rules"),
    ("opath", "file", "reopen", "20-files.rules"),
    ("devnull", "chardev", "reopen", "10-devices.rules"),
    ("pty_master", "chardev", "inherit", "10-devices.rules"),
    ("pty_slave", "chardev", "inherit", "10-devices.rules"),
    ("fifo", "fifo", "reopen", "20-files.rules"),
    ("pipe_read", "pipe", "recreate", "30-ipc.rules"),
    ("pipe_write", "pipe", "recreate", "30-ipc.rules"),
    ("unix_stream_a", "socket", "recreate", "30-ipc.rules"),
    ("unix_dgram", "socket", "recreate", "30-ipc.rules"),
    ("tcp_listen", "socket", "recreate", "30-ipc.rules"),
    ("udp6", "socket", "recreate", "30-ipc.rules"),
    ("netlink", "socket", "recreate", "30-ipc.rules"),
    ("eventfd", "eventfd", "recreate", "30-ipc.rules"),
    ("epoll", "epoll", "recreate", "30-ipc.rules"),
    ("signalfd", "signalfd", "recreate", "30-ipc.rules"),
    ("timerfd", "timerfd", "recreate", "30-ipc.rules"),
    ("inotify", "inotify", "recreate", "30-ipc.rules"),
    ("fanotify", "fanotify", "recreate", "30-ipc.rules"),
    ("memfd", "memfd", "contents", "20-files.rules"),
    ("pidfd", "pidfd", "recreate", "30-ipc.rules"),
    ("io_uring", "io_uring", "reject", "30-ipc.rules"),
    ("perf_event", "perf_event", "reject", "30-ipc.rules"),
    ("userfaultfd", "userfaultfd", "reject", "30-ipc.rules"),
    ("netns", "nsfs", "inherit", "20-files.rules"),
];

/// The hard shapes of each kind (issue 8): the default policy's action, the policy file of the deciding rule,
/// and words its reason must hold, so a reason that stops naming the loss or the requirement fails.
const HARD: &[(&str, &str, &str, &str)] = &[
    ("mqueue", "reject", "20-files.rules", "message queues"),
    ("secretmem", "reject", "20-files.rules", "memfd_secret"),
    ("pipe_packet_read", "reject", "30-ipc.rules", "packet-mode"),
    ("pipe_packet_write", "reject", "30-ipc.rules", "packet-mode"),
    ("timerfd_alarm", "reject", "30-ipc.rules", "alarm clocks"),
    ("pidfd_thread", "reject", "30-ipc.rules", "PIDFD_THREAD"),
    ("tcp_unbound", "recreate", "30-ipc.rules", "unbound"),
    ("udp_unbound", "recreate", "30-ipc.rules", "dropped"),
    ("tcp_reset", "recreate", "30-ipc.rules", "reset"),
    ("tcp_close_wait", "recreate", "30-ipc.rules", "--tcp-established"),
    ("tcp_listen_backlog", "reject", "30-ipc.rules", "waiting to be accepted"),
    ("tcp_backlog_client", "recreate", "30-ipc.rules", "--tcp-established"),
    ("raw_icmp", "recreate", "30-ipc.rules", "dropped"),
    ("udplite", "recreate", "30-ipc.rules", "dropped"),
    ("mptcp", "reject", "30-ipc.rules", "MPTCP"),
    ("netlink_pending", "reject", "30-ipc.rules", "waiting to be read"),
    ("fifo_deleted", "recreate", "20-files.rules", "deleted"),
    ("dir_deleted", "recreate", "20-files.rules", "deleted"),
    ("file_linked_elsewhere", "contents", "20-files.rules", "--link-remap"),
    ("file_deleted_big", "contents", "20-files.rules", "--ghost-limit"),
    ("posix_lock", "reopen", "20-files.rules", "--file-locks"),
    ("dir", "reopen", "20-files.rules", "O_DIRECTORY"),
    ("fanotify_fs", "reject", "30-ipc.rules", "filesystem marks"),
    ("fanotify_mount", "recreate", "30-ipc.rules", "marks are re-added"),
    ("proc_file", "reopen", "20-files.rules", "names a pid"),
    ("tracefs", "reject", "20-files.rules", "tracefs"),
    ("debugfs", "reject", "20-files.rules", "debugfs"),
    ("tty0", "reject", "10-devices.rules", "/dev/tty0"),
    ("vt1", "reopen", "10-devices.rules", "virtual consoles"),
    ("pty_master", "inherit", "10-devices.rules", "16 KiB"),
];

#[test]
fn every_hard_shape_is_decided_with_a_true_reason() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("check-hard");
    let (_, json, err) = check_json(holder.pid(), &root);
    let mut wrong = Vec::new();
    for &(name, action, file, words) in HARD {
        // Shapes this machine cannot make are left out by the holder (scan_shapes says which must exist).
        let Some(&fd) = holder.fds.get(name) else { continue };
        let f = fd_object(&json, fd);
        let rule = f["rule"].as_str().unwrap_or("-");
        let reason = f["reason"].as_str().unwrap_or("");
        if f["action"] != action || !rule.starts_with(&format!("<builtin>/{file}:")) || !reason.contains(words) {
            wrong.push(format!("{name}: want {action} by {file} saying `{words}`, got {f}"));
        }
    }
    assert!(wrong.is_empty(), "{err}\n{}", wrong.join("\n"));
}

#[test]
fn every_kind_is_classified_and_decided_by_the_default_policy() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("check-live");
    let (code, json, err) = check_json(holder.pid(), &root);
    assert_eq!(code, 1, "io_uring, perf_event and userfaultfd are rejected: {err}");
    assert_eq!(json["pid"], holder.pid());
    assert_eq!(json["checkpointable"], false);
    let mut missing = Vec::new();
    for &(name, kind, action, file) in EXPECTED {
        let Some(&fd) = holder.fds.get(name) else {
            missing.push(name);
            continue;
        };
        let f = fd_object(&json, fd);
        assert_eq!(f["kind"], kind, "{name}: {f}");
        assert_eq!(f["action"], action, "{name}: {f}");
        let rule = f["rule"].as_str().unwrap_or_else(|| panic!("{name} has no rule: {f}"));
        assert!(rule.starts_with(&format!("<builtin>/{file}:")), "{name}: {rule}");
        if action == "reject" {
            assert!(f["reason"].as_str().is_some_and(|r| r.len() > 20), "{name} needs a reason: {f}");
        }
    }
    // Only kinds the kernel refused to the holder may be missing (it says so on stderr).
    assert!(missing.len() <= 3, "the holder could not open {missing:?}");

    // Facts the issue names, in the JSON shape the README documents.
    let f = fd_object(&json, holder.fds["devnull"]);
    assert_eq!((f["path"].as_str(), f["dev"].as_str()), (Some("/dev/null"), Some("1:3")));
    assert_eq!(fd_object(&json, holder.fds["file_at_offset"])["pos"], 42);
    let append = fd_object(&json, holder.fds["append"]);
    assert!(append["flags"].as_array().unwrap().contains(&Value::from("O_APPEND")), "{append}");
    assert_eq!(fd_object(&json, holder.fds["deleted"])["deleted"], true);
    let tcp = fd_object(&json, holder.fds["tcp_listen"]);
    assert_eq!((tcp["socket"]["family"].as_str(), tcp["socket"]["state"].as_str()), (Some("inet"), Some("listen")));
    let udp = fd_object(&json, holder.fds["udp6"]);
    assert_eq!((udp["socket"]["family"].as_str(), udp["socket"]["type"].as_str()), (Some("inet6"), Some("dgram")));
    assert!(udp["reason"].as_str().unwrap().contains("dropped"), "the lost UDP queue is said: {udp}");
    assert_eq!(fd_object(&json, holder.fds["eventfd"])["eventfd"]["count"], 5);
    let reject = fd_object(&json, holder.fds["io_uring"]);
    assert!(reject["reason"].as_str().unwrap().contains("io_uring"), "{reject}");
}

#[test]
fn text_output_is_a_table_with_a_summary() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("check-text");
    let (code, out, _) = run(&["check", "--root", root.str(), "--pid", &holder.pid().to_string()]);
    assert_eq!(code, 1);
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), format!("pid {} fdholder: NOT checkpointable", holder.pid()));
    // Column widths follow the widest cell, so compare the header's words, not its spacing.
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["FD", "KIND", "TARGET", "ACTION", "RULE", "REASON"], "{out}");
    let devnull = out.lines().find(|l| l.starts_with(&format!("{} ", holder.fds["devnull"]))).unwrap();
    assert!(devnull.contains("/dev/null (1:3)") && devnull.contains("reopen"), "{devnull}");
    assert!(out.lines().last().unwrap().contains(" reject"), "{out}");
}

#[test]
fn a_clean_process_exits_0_and_tree_covers_children() {
    let root = TempDir::new("check-tree");
    // A shell with a child; both hold only stdio and /dev/null.
    let mut parent = std::process::Command::new("sh")
        .args(["-c", "sleep 30 </dev/null & wait"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = parent.id().to_string();
    // Wait until the child exists.
    let mut children = String::new();
    for _ in 0..100 {
        children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if !children.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let child: i32 = children.trim().parse().expect("a child");
    let (code, out, err) = run(&["check", "--root", root.str(), "--pid", &pid, "--tree", "--format", "json"]);
    let _ = parent.kill();
    let _ = parent.wait();
    let _ = std::process::Command::new("kill").arg(child.to_string()).status();
    assert_eq!(code, 0, "{out}{err}");
    let pids: Vec<i64> =
        out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["pid"].as_i64().unwrap()).collect();
    assert_eq!(pids, [pid.parse::<i64>().unwrap(), i64::from(child)]);
}

#[test]
fn missing_process_is_exit_2_naming_the_pid() {
    let (code, _, err) = run(&["check", "--pid", "999999999"]);
    assert_eq!(code, 2);
    assert!(err.contains("999999999"), "{err}");
}

#[test]
fn saved_facts_decide_exactly_as_the_live_check() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("check-facts");
    let pid = holder.pid().to_string();
    let (_, live, _) = live_json(&pid, &root);
    let saved = root.write("saved.jsonl", &live);
    let (code, offline, err) =
        run(&["check", "--root", root.str(), "--facts", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    assert!(offline == live, "offline decisions differ from the live check:\n{offline}");

    // `crrules facts` output decides the same way too.
    let (code, facts, err) = run(&["facts", "--pid", &pid]);
    assert_eq!(code, 0, "{err}");
    assert!(!facts.contains("\"action\""), "facts carry no decisions");
    let facts_file = root.write("facts.jsonl", &facts);
    let (_, from_facts, _) =
        run(&["check", "--root", root.str(), "--facts", facts_file.to_str().unwrap(), "--format", "json"]);
    // A second scan sees a timer that moved on, so compare the decisions, fd by fd.
    let decisions = |out: &str| -> Vec<(Value, Value, Value)> {
        let json: Value = serde_json::from_str(out.trim()).unwrap();
        json["fds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["fd"].clone(), f["action"].clone(), f["rule"].clone()))
            .collect()
    };
    assert_eq!(decisions(&from_facts), decisions(&live));
}

#[test]
fn explain_shows_the_rules_tried_up_to_the_decision() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("explain");
    let policy = root.write(
        "p.rules",
        "pipe => recreate\nchardev 1:5 => reopen path\nchardev 1:3 flags O_APPEND => close\nchardev 1:3 => reopen path\n",
    );
    let args = ["explain", "--rules", policy.to_str().unwrap(), "--pid", &holder.pid().to_string()];
    let fd = holder.fds["devnull"].to_string();
    let (code, out, err) = run(&[&args[..], &["--fd", &fd]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dev: 1:3"), "{out}");
    let tried: Vec<&str> = out.lines().filter(|l| l.contains("p.rules:")).collect();
    assert_eq!(tried.len(), 3, "{out}");
    assert!(out.contains("passed over: `1:5` does not hold"), "{out}");
    assert!(out.contains("passed over: `flags O_APPEND` does not hold"), "{out}");
    assert!(out.contains("decides"), "{out}");
    assert!(out.contains("(1 rules for other kinds skipped)"), "{out}");
}

#[test]
fn policy_tests_pass_and_then_show_a_diff_when_a_decision_changes() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("policytest");
    let pid = holder.pid().to_string();
    let (_, live, _) = live_json(&pid, &root);
    let test = root.write("tests/host.test.jsonl", &live);
    let (code, out, err) = run(&["test", "--root", root.str(), test.parent().unwrap().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 changed"), "{out}");

    // A site rule that closes /dev/null changes one decision.
    root.write("etc/crrules/rules.d/05-site.rules", "chardev 1:3 => close\n");
    let (code, out, _) = run(&["test", "--root", root.str(), test.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("FAIL {}:1: pid {pid} fd {} (chardev /dev/null)", test.display(), holder.fds["devnull"])),
        "{out}"
    );
    assert!(out.contains("- expected: reopen") && out.contains("+ got:      close (rule"), "{out}");
}

#[test]
fn checking_a_process_that_churns_its_fds_never_fails_or_misreports_a_kind() {
    let holder = Holder::spawn(&["--churn"]);
    let root = TempDir::new("churn");
    let pid = holder.pid().to_string();
    let mut seen = 0;
    for round in 0..100 {
        let (code, out, err) = live_json(&pid, &root);
        assert!(code == 0 || code == 1, "round {round}: exit {code}: {err}");
        let json: Value = serde_json::from_str(out.trim()).unwrap();
        for f in json["fds"].as_array().unwrap() {
            if f["state"] == "vanished" {
                continue;
            }
            if let Some(kind) = scan_common::churn_slot(f["fd"].as_i64().unwrap()) {
                assert_eq!(f["kind"], kind, "round {round}: {f}");
                seen += 1;
            }
        }
    }
    assert!(seen > 100, "the churning fds were seen only {seen} times");
}

#[test]
fn check_all_summarises_the_host() {
    let root = TempDir::new("all");
    let (code, out, err) = run(&["check", "--root", root.str(), "--all", "--format", "json"]);
    assert!(code == 0 || code == 1, "{err}");
    let processes = out.lines().count();
    assert!(processes >= 2, "{out}");
    let summary = err.lines().find(|l| l.contains(" processes: ")).unwrap_or_else(|| panic!("no summary: {err}"));
    let checked: usize = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(checked >= processes, "{summary}");
    assert!(summary.contains(" checkpointable, "), "{summary}");
}

#[test]
fn ron_output_has_the_json_shape() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("ron");
    let pid = holder.pid().to_string();
    let (code, ron_text, err) = run(&["check", "--root", root.str(), "--pid", &pid, "--format", "ron"]);
    assert_eq!(code, 1, "{err}");
    let opts = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let from_ron: Value = opts.from_str(ron_text.trim()).unwrap_or_else(|e| panic!("{e}: {ron_text}"));
    assert_eq!(from_ron["pid"], holder.pid());
    let devnull = from_ron["fds"].as_array().unwrap().iter().find(|f| f["fd"] == holder.fds["devnull"]).unwrap();
    assert_eq!((devnull["dev"].as_str(), devnull["action"].as_str()), (Some("1:3"), Some("reopen")));
}
