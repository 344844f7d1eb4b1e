//! End-to-end: the built-in policy as the distribution layer under `--root` (a site file beside it, a
//! same-named override of one built-in file, an empty file masking one, a missing root), one JSON form of
//! an action in `rules` and `check` (`reopen path exact` included), and policy tests that compare whole
//! decisions.

mod common;
mod scan_common;

use common::{TempDir, run};
use scan_common::Holder;
use serde_json::Value;

/// The deciding rule's file (`10-devices.rules`), action and reason of each named fd of the holder, as
/// `check --format json` under `root` gives them, and the exit code.
fn decisions(holder: &Holder, root: &TempDir, names: &[&str]) -> (i32, Vec<(String, String, String)>) {
    let (code, out, err) =
        run(&["check", "--root", root.str(), "--pid", &holder.pid().to_string(), "--format", "json"]);
    assert!(code == 0 || code == 1, "{err}");
    let json: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let fds = json["fds"].as_array().unwrap();
    let got = names
        .iter()
        .map(|name| {
            let f = fds.iter().find(|f| f["fd"] == holder.fd(name)).unwrap_or_else(|| panic!("no {name}"));
            let rule = f["rule"].as_str().unwrap_or("-");
            let file = rule.rsplit('/').next().unwrap().split(':').next().unwrap().to_owned();
            (file, f["action"].as_str().unwrap().to_owned(), f["reason"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    (code, got)
}

fn row(file: &str, action: &str, reason: &str) -> (String, String, String) {
    (file.to_owned(), action.to_owned(), reason.to_owned())
}

#[test]
fn site_files_layer_over_the_builtin_policy_file_by_file() {
    let holder = Holder::spawn(&[]);
    let fds = ["devnull", "pipe_read", "append"];
    // A site file beside the built-in policy: it decides first, and every other fd keeps its built-in rule.
    let site = TempDir::new("layer-site");
    site.write("etc/crrules/rules.d/05-site.rules", "chardev 1:3 => close because \"site says so\"\n");
    let (_, got) = decisions(&holder, &site, &fds);
    assert_eq!(
        got,
        [
            row("05-site.rules", "close", "site says so"),
            row("30-ipc.rules", "recreate", &got[1].2),
            row("20-files.rules", "reopen", "")
        ]
    );
    assert!(!got[1].2.is_empty(), "the built-in pipe rule keeps its note");

    // A site file named like a built-in one replaces just that file.
    let over = TempDir::new("layer-override");
    over.write("etc/crrules/rules.d/30-ipc.rules", "pipe => close\n");
    let (_, got) = decisions(&holder, &over, &fds);
    assert_eq!(
        got,
        [row("10-devices.rules", "reopen", ""), row("30-ipc.rules", "close", ""), row("20-files.rules", "reopen", "")]
    );
    let (code, out, _) = run(&["rules", "--root", over.str(), "--format", "json"]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).unwrap();
    let builtin_ipc = json["files"].as_array().unwrap().iter().find(|f| f["path"] == "<builtin>/30-ipc.rules").unwrap();
    assert_eq!(builtin_ipc["status"], "overridden");
    assert_eq!(builtin_ipc["layer"], "builtin");

    // An empty site file masks just that built-in file: pipes fall through to "no rule matches".
    let mask = TempDir::new("layer-mask");
    mask.write("etc/crrules/rules.d/30-ipc.rules", "");
    let (code, got) = decisions(&holder, &mask, &fds);
    assert_eq!(code, 1);
    assert_eq!(
        got,
        [
            row("10-devices.rules", "reopen", ""),
            row("-", "reject", "no rule matches"),
            row("20-files.rules", "reopen", "")
        ]
    );

    // `crrules rules` says where each file came from.
    let (_, text, _) = run(&["rules", "--root", site.str()]);
    assert!(
        text.contains("# <builtin>/10-devices.rules (built in, standing in for /usr/lib/crrules/rules.d)"),
        "{text}"
    );
    assert!(text.contains("05-site.rules (site)"), "{text}");
}

#[test]
fn a_missing_root_and_an_empty_policy_are_named() {
    let (code, _, err) = run(&["check", "--root", "/nonexistent/crrules-root", "--pid", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("policy root `/nonexistent/crrules-root` does not exist"), "{err}");

    let empty = TempDir::new("all-masked");
    for name in ["10-devices.rules", "20-files.rules", "30-ipc.rules"] {
        empty.write(&format!("etc/crrules/rules.d/{name}"), "");
    }
    let (code, _, err) = run(&["check", "--root", empty.str(), "--pid", "1"]);
    assert_eq!(code, 2, "an empty policy is an error for check");
    assert!(err.contains("the effective policy has no rule"), "{err}");
    for command in ["lint", "rules"] {
        let (code, _, err) = run(&[command, "--root", empty.str()]);
        assert_eq!(code, 0, "{command}: a warning, not an error: {err}");
        assert!(err.contains("the effective policy has no rule"), "{command}: {err}");
    }
}

#[test]
fn rules_and_check_print_the_same_action_objects() {
    let holder = Holder::spawn(&[]);
    let root = TempDir::new("action-objects");
    let (_, out, _) = run(&["rules", "--root", root.str(), "--format", "json"]);
    let rules: Value = serde_json::from_str(&out).unwrap();
    let (_, out, _) = run(&["check", "--root", root.str(), "--pid", &holder.pid().to_string(), "--format", "json"]);
    let check: Value = serde_json::from_str(out.trim()).unwrap();
    let keys = ["action", "substitute", "exact", "limit", "inherit", "plugin"];
    let object = |v: &Value, reason: bool| -> Vec<(String, Value)> {
        let mut keys: Vec<&str> = keys.to_vec();
        if reason {
            keys.push("reason");
        }
        keys.iter().filter_map(|k| v.get(*k).map(|x| ((*k).to_owned(), x.clone()))).collect()
    };
    let mut compared = 0;
    for fd in check["fds"].as_array().unwrap() {
        let Some(rule) = fd["rule"].as_str() else { continue };
        let r =
            rules["rules"].as_array().unwrap().iter().find(|r| r["rule"] == rule).expect("the deciding rule is listed");
        let reject = fd["action"] == "reject";
        assert_eq!(object(fd, reject), object(r, reject), "fd {} decided by {rule}", fd["fd"]);
        compared += 1;
    }
    assert!(compared >= 20, "{compared}");
    // And the old second spelling is gone.
    assert!(!out.contains("reopen_subst"));
}

#[test]
fn a_policy_test_fails_when_a_because_note_is_deleted() {
    let holder = Holder::spawn(&[]);
    let dir = TempDir::new("because");
    let policy = dir.write("p.rules", "pipe => recreate because \"pipes are rebuilt\"\nany => close\n");
    let policy = policy.to_str().unwrap();
    let (code, saved, err) = run(&["check", "--rules", policy, "--pid", &holder.pid().to_string(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let pipes = serde_json::from_str::<Value>(saved.trim()).unwrap()["fds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "pipe")
        .count();
    assert!(pipes >= 2, "{saved}");
    let test = dir.write("t.test.jsonl", &saved);
    let (code, out, _) = run(&["test", "--rules", policy, test.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // The same rule on the same line, its note deleted: every pipe's decision changed.
    dir.write("p.rules", "pipe => recreate\nany => close\n");
    let (code, out, _) = run(&["test", "--rules", policy, test.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("- expected: recreate (rule {policy}:1): pipes are rebuilt")), "{out}");
    assert!(out.contains(&format!("+ got:      recreate (rule {policy}:1)\n")), "{out}");
    assert!(out.contains(&format!(" {pipes} changed")), "{out}");
}

/// `reopen path exact` is `{"action": "reopen", "exact": true}` in `rules` and `check`, reads back from saved
/// facts, and a policy test tells it from plain `reopen path`.
#[test]
fn reopen_path_exact_round_trips_and_a_policy_test_tells_it_from_reopen_path() {
    let dir = TempDir::new("exact-json");
    let file = dir.write("held.txt", "held\n");
    let holder = Holder::spawn(&["--open", file.to_str().unwrap()]);
    let fd = holder.fd("open0");
    let policy = dir.write("p.rules", &format!("file path {:?} => reopen path exact\nany => close\n", file));
    let policy = policy.to_str().unwrap();
    let (_, rules, _) = run(&["--rules", policy, "rules", "--format", "json"]);
    let rules: Value = serde_json::from_str(&rules).unwrap();
    assert_eq!(
        (&rules["rules"][0]["action"], &rules["rules"][0]["exact"]),
        (&Value::from("reopen"), &Value::from(true))
    );
    assert_eq!(rules["rules"][1].get("exact"), None, "`exact` is left out when false: {rules}");

    let (code, saved, err) = run(&["--rules", policy, "check", "--pid", &holder.pid().to_string(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(saved.trim()).unwrap();
    let held = json["fds"].as_array().unwrap().iter().find(|f| f["fd"] == fd).expect("the held file");
    assert_eq!((&held["action"], &held["exact"]), (&Value::from("reopen"), &Value::from(true)), "{held}");
    let test = dir.write("t.test.jsonl", &saved);
    let (code, out, _) = run(&["--rules", policy, "test", test.to_str().unwrap()]);
    assert_eq!(code, 0, "the saved decisions read back and hold:\n{out}");

    // The same rule without `exact`: that fd's decision changed, and the report says how.
    dir.write("p.rules", &format!("file path {:?} => reopen path\nany => close\n", file));
    let (code, out, _) = run(&["--rules", policy, "test", test.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("- expected: reopen path exact (rule {policy}:1)\n")), "{out}");
    assert!(out.contains(&format!("+ got:      reopen path (rule {policy}:1)\n")), "{out}");
    assert!(out.contains(" 1 changed"), "{out}");
}

#[test]
fn a_policy_test_without_decisions_is_an_error() {
    let holder = Holder::spawn(&[]);
    let dir = TempDir::new("no-decisions");
    let (_, facts, _) = run(&["facts", "--pid", &holder.pid().to_string()]);
    let test = dir.write("facts.test.jsonl", &facts);
    let (code, _, err) = run(&["test", "--root", dir.str(), test.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no expected decision"), "{err}");
    let blank = dir.write("blank/empty.test.jsonl", "\n");
    let (code, _, err) = run(&["test", "--root", dir.str(), blank.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no decision to test"), "{err}");
    let none = dir.write("none/README", "x");
    let (code, _, err) = run(&["test", "--root", dir.str(), none.parent().unwrap().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no policy test"), "{err}");
}
