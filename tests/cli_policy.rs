//! End-to-end: `crrules lint` and `crrules rules` on policy trees built under `--root`: order, override,
//! mask, the built-in default, exit codes, permissions.

mod common;
use common::{TempDir, run};
use std::os::unix::fs::PermissionsExt;

#[test]
fn builtin_default_policy_lints_clean() {
    let root = TempDir::new("empty-root");
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 file(s)") && err.contains(": 0 error(s), 0 warning(s)"), "{err}");
}

#[test]
fn design_example_lints_clean() {
    let dir = TempDir::new("design");
    let file = dir.write(
        "design.rules",
        "chardev 1:3 => reopen path                # /dev/null\n\
         chardev 136:* => inherit \"pts\"            # pty slaves come from the restorer\n\
         file deleted size <= 16MiB => contents\n\
         perf_event => reject \"perf events cannot be checkpointed\"\n",
    );
    let (code, _, err) = run(&["lint", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("4 rule(s): 0 error(s)"), "{err}");
}

#[test]
fn rules_shows_effective_order_overrides_and_masks() {
    let root = TempDir::new("layers");
    root.write("usr/lib/crrules/rules.d/10-devices.rules", "chardev 1:3 => reopen path\n");
    root.write("usr/lib/crrules/rules.d/20-ipc.rules", "pipe => recreate\n");
    root.write("usr/lib/crrules/rules.d/30-old.rules", "fifo => recreate\n");
    root.write("run/crrules/rules.d/20-ipc.rules", "pipe => close\n");
    root.write("etc/crrules/rules.d/30-old.rules", "->/dev/null");
    root.write("etc/crrules/rules.d/05-site.rules", "chardev 1:5 => reopen \"/dev/null\"\n");
    let (code, out, err) = run(&["rules", "--root", root.str(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rules: Vec<(String, String)> = json["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["rule"].as_str().unwrap().rsplit('/').next().unwrap().to_owned(), r["text"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("05-site.rules:1".to_owned(), "chardev 1:5 => reopen \"/dev/null\"".to_owned()),
            ("10-devices.rules:1".to_owned(), "chardev 1:3 => reopen path".to_owned()),
            ("20-ipc.rules:1".to_owned(), "pipe => close".to_owned()),
        ]
    );
    let status = |suffix: &str| {
        json["files"].as_array().unwrap().iter().find(|f| f["path"].as_str().unwrap().ends_with(suffix)).unwrap()
            ["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status("usr/lib/crrules/rules.d/20-ipc.rules"), "overridden");
    assert_eq!(status("usr/lib/crrules/rules.d/30-old.rules"), "masked");
    assert_eq!(status("etc/crrules/rules.d/30-old.rules"), "mask");
    assert_eq!(status("run/crrules/rules.d/20-ipc.rules"), "active");

    let (_, text, _) = run(&["rules", "--root", root.str()]);
    assert!(text.contains("20-ipc.rules overridden by"), "{text}");
    assert!(text.contains("30-old.rules masked by"), "{text}");
}

#[test]
fn lint_reports_every_error_with_location_and_exits_1() {
    let dir = TempDir::new("errors");
    let file =
        dir.write("bad.rules", "chrdev 1:3 => reopen path\npipe => recreate\nfile flags O_APEND => reopen path\n");
    let (code, _, err) = run(&["lint", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.rules:1:1"), "{err}");
    assert!(err.contains("bad.rules:3:12"), "{err}");
    assert!(err.contains("chardev") && err.contains("O_APPEND"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn deny_warnings_turns_a_duplicate_into_a_failure() {
    let dir = TempDir::new("dup");
    let file = dir.write("dup.rules", "pipe => recreate\npipe => recreate\n");
    let (code, _, err) = run(&["lint", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 warning(s)"), "{err}");
    let (code, _, err) = run(&["lint", "--deny-warnings", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn unreadable_policy_path_is_exit_2() {
    let (code, _, err) = run(&["lint", "/nonexistent/crrules/x.rules"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read policy path `/nonexistent/crrules/x.rules`"), "{err}");
}

#[test]
fn root_refuses_a_world_writable_policy_file() {
    if !running_as_root() {
        eprintln!("skipped: the ownership check applies to root only");
        return;
    }
    let root = TempDir::new("perm");
    let file = root.write("etc/crrules/rules.d/10-x.rules", "pipe => recreate\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("10-x.rules` is writable by group and others"), "{err}");
    assert!(err.contains("chmod go-w"), "{err}");
}

#[test]
fn man_page_and_completions_come_from_the_same_definitions() {
    let (code, man, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(man.contains(".TH crrules") && man.contains("check"), "{man}");
    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(bash.contains("--deny-warnings") && bash.contains("explain"));
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

#[test]
fn site_rules_that_change_distribution_decisions_are_reported_with_both_locations() {
    let root = TempDir::new("overrides");
    root.write(
        "usr/lib/crrules/rules.d/10-devices.rules",
        "chardev 1:* => reopen path\nchardev 10:200 => reject \"tun\"\n",
    );
    root.write("etc/crrules/rules.d/05-site.rules", "chardev 1:3 => reopen path\nchardev 10:200 => reopen path\n");
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 0, "an override is information, not an error: {err}");
    // The site's /dev/null rule repeats the distribution's decision: nothing to say. Its tun rule changes one.
    assert!(err.contains("1 site override(s)"), "{err}");
    assert!(err.contains("05-site.rules:2:1"), "{err}");
    assert!(err.contains("this rule changes what the distribution rule at"), "{err}");
    assert!(
        err.contains("10-devices.rules:2` decides for the fds both match: `reopen path` instead of `reject`"),
        "{err}"
    );
    assert!(err.contains("10-devices.rules:2:1"), "the distribution rule is shown too: {err}");
    // The distribution rule the site rule overrides is not called shadowed.
    assert!(err.contains("0 warning(s)") && !err.contains("never match"), "{err}");
}

#[test]
fn coverage_shows_what_falls_through_compactly() {
    let dir = TempDir::new("coverage");
    let file =
        dir.write("c.rules", "chardev 1:* => reopen path\nchardev 10:{200,229} => reject \"x\"\npipe => recreate\n");
    let (code, out, err) = run(&["lint", "--coverage", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("every fd decided: pipe"), "{out}");
    assert!(
        out.contains("chardev: no rule for device numbers 0:*, 2-9:*, 10:{0-199,201-228,230-1048575}, 11-4095:*"),
        "{out}"
    );
    assert!(out.contains("no rule at all: file, dir, blockdev"), "{out}");
}

#[test]
fn the_default_policy_passes_its_own_policy_tests() {
    // Facts of every fd kind (a live fdholder, saved) and of devices and objects no test machine has (a
    // serial line, /dev/kvm, GPUs, a block device, KVM and BPF inodes, TCP states a test cannot hold still),
    // loopback TCP connections linked inside and outside (`fdholder --tcp-pair`), with the decision each
    // must get.
    let root = TempDir::new("default-tests");
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/policy/tests");
    let (code, out, err) = run(&["test", "--root", root.str(), tests]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("121 decision(s) as expected, 0 changed"), "{out}");
}

#[test]
fn every_default_rule_decides_a_fd_of_the_policy_tests() {
    let root = TempDir::new("coverage-root");
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/policy/tests/default.test.jsonl");
    let (code, out, err) = run(&["check", "--root", root.str(), "--facts", tests, "--format", "json"]);
    assert!(code == 0 || code == 1, "{err}");
    let used: std::collections::HashSet<String> = out
        .lines()
        .flat_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["fds"].as_array().unwrap().clone())
        .filter_map(|f| f["rule"].as_str().map(str::to_owned))
        .collect();
    let (_, rules, _) = run(&["rules", "--root", root.str(), "--format", "json"]);
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let unused: Vec<String> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !used.contains(r["rule"].as_str().unwrap()))
        .map(|r| format!("{}  {}", r["rule"], r["text"]))
        .collect();
    assert!(unused.is_empty(), "default rules no policy test exercises:\n{}", unused.join("\n"));
}
