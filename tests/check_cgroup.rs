//! `check --cgroup PATH` covers every process of a cgroup and of the cgroups below it, on the unified
//! hierarchy and on a v1 controller's, named by directory or by path in the hierarchy; a cgroup that does
//! not exist is an error naming it.

mod common;
mod scan_common;

use common::run;
use scan_common::Holder;
use std::path::{Path, PathBuf};

/// A cgroup made for the test under `root` (with a child cgroup), removed with its processes' exit.
struct Cgroup {
    dir: PathBuf,
    child: PathBuf,
}

impl Cgroup {
    fn make(root: &Path, tag: &str) -> Option<Cgroup> {
        let dir = root.join(format!("crrules-test-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let child = dir.join("inner");
        std::fs::create_dir(&child).ok()?;
        Some(Cgroup { dir, child })
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.child);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The processes whose plans `check --format json` printed.
fn checked(args: &[&str]) -> (i32, Vec<i64>, String) {
    let (code, out, err) = run(args);
    let pids = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["pid"].as_i64())
        .collect();
    (code, pids, err)
}

fn cgroup_roots() -> Vec<(PathBuf, bool)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = PathBuf::from(left.split_whitespace().nth(4)?);
            match right.split_whitespace().next()? {
                "cgroup2" => Some((point, true)),
                "cgroup" if right.split_whitespace().nth(2)?.split(',').any(|o| o == "pids") => Some((point, false)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn every_process_of_a_cgroup_and_below_is_checked() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: making cgroups needs root");
        return;
    }
    for (root, unified) in cgroup_roots() {
        let tag = if unified { "v2" } else { "v1" };
        let Some(cg) = Cgroup::make(&root, tag) else {
            eprintln!("skipped {tag}: cannot make a cgroup under {}", root.display());
            continue;
        };
        let a = Holder::spawn(&["--open", "/dev/null"]);
        let b = Holder::spawn(&["--open", "/dev/null"]);
        // One in the cgroup, one in the cgroup below it. (A v2 cgroup with a child may hold no process of its
        // own when controllers are enabled below it; none are here.)
        let moved = std::fs::write(cg.dir.join("cgroup.procs"), a.pid().to_string()).is_ok()
            && std::fs::write(cg.child.join("cgroup.procs"), b.pid().to_string()).is_ok();
        if !moved {
            eprintln!("skipped {tag}: cannot move processes into {}", cg.dir.display());
            continue;
        }
        let by_dir = cg.dir.to_str().unwrap().to_owned();
        let (code, mut pids, err) = checked(&["check", "--cgroup", &by_dir, "--format", "json"]);
        pids.sort_unstable();
        let mut want = vec![i64::from(a.pid()), i64::from(b.pid())];
        want.sort_unstable();
        assert_eq!(pids, want, "{tag} by directory: exit {code}\n{err}");
        // By its path in the hierarchy (the unified one first, then the v1 controllers').
        let rel = format!("/{}", cg.dir.strip_prefix(&root).unwrap().display());
        if unified {
            let (_, mut pids, err) = checked(&["check", "--cgroup", &rel, "--format", "json"]);
            pids.sort_unstable();
            assert_eq!(pids, want, "{tag} by path {rel}:\n{err}");
        }
        // Back to the root cgroup before the cgroups go.
        let _ = std::fs::write(root.join("cgroup.procs"), a.pid().to_string());
        let _ = std::fs::write(root.join("cgroup.procs"), b.pid().to_string());
        drop((a, b));
    }
}

#[test]
fn a_cgroup_that_does_not_exist_is_an_error_naming_it() {
    let (code, _, err) = checked(&["check", "--cgroup", "/crrules-no-such-cgroup"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("crrules-no-such-cgroup") && err.contains("no cgroup"), "{err}");
}
