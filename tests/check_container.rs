//! `check --container ID` against real podman containers: every process of a running container (found by
//! name or by a prefix of its id) with its fds, and nothing outside it; a container that is not running, or
//! that no tool knows, is an error naming it. Skipped, with the reason printed, only when podman is not
//! installed. The image is made here from busybox-static (`podman import`), since nothing can be pulled.

mod common;

use common::TempDir;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/crrules-test-busybox";

/// Runs `crrules` with `args` and, when given, this PATH: exit code, stdout, stderr.
fn crrules(args: &[&str], path: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crrules"));
    cmd.args(args).env("NO_COLOR", "1");
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().expect("run crrules");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().expect("run podman")
}

/// Runs podman and returns its stdout, failing the test with its stderr when it fails.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn podman_installed() -> bool {
    Command::new("podman").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The options `podman run` and `podman create` need on this machine kind: runc, because crun refuses a
/// hybrid cgroup host whose unified hierarchy holds a controller ("cgroups in hybrid mode not supported");
/// the cgroupfs manager (no systemd); no network; and rlimits no higher than the host's, since root here
/// lacks CAP_SYS_RESOURCE and podman's defaults (nofile 1048576, nproc) cannot be set.
fn run_options() -> Vec<&'static str> {
    let mut options = vec!["--cgroup-manager=cgroupfs", "--network=none"];
    options.extend(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]);
    if Command::new("runc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        options.extend(["--runtime", "runc"]);
    }
    options
}

/// The test image: busybox-static and its `sh`, `sleep` and `cat` links, imported unless a run before made it.
fn image() -> &'static str {
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        if podman(&["image", "exists", IMAGE]).status.success() {
            return;
        }
        let busybox = std::path::Path::new("/bin/busybox");
        assert!(busybox.is_file(), "the container test needs /bin/busybox: apt-get install busybox-static");
        let dir = TempDir::new("container-image");
        let root = dir.path().join("root");
        for sub in ["bin", "etc", "dev", "proc", "sys", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "cat"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = dir.path().join("root.tar");
        let made = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status().unwrap();
        assert!(made.success(), "tar of the image's root failed");
        podman_ok(&["import", "--quiet", tar.to_str().unwrap(), IMAGE]);
    });
    IMAGE
}

/// A container made for the test, removed (killed first) when dropped, also when the test fails.
struct Container(String);

impl Container {
    fn name(tag: &str) -> String {
        format!("crrules-test-{tag}-{}", std::process::id())
    }

    /// `podman run -d` (or `create`, with `start: false`) of the test image with `command`.
    fn make(tag: &str, start: bool, command: &[&str]) -> Container {
        // Removed on drop from here on, also when `podman run` fails half-way.
        let container = Container(Container::name(tag));
        let _ = podman(&["rm", "--force", "--time", "0", &container.0]);
        let mut args = if start { vec!["run", "--detach"] } else { vec!["create"] };
        args.extend(run_options());
        args.extend(["--name", &container.0, image()]);
        args.extend(command);
        podman_ok(&args);
        container
    }

    fn inspect(&self, field: &str) -> String {
        podman_ok(&["container", "inspect", "--format", &format!("{{{{{field}}}}}"), &self.0])
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.0]);
    }
}

/// The plans `check --format json` printed, by pid.
fn plans(stdout: &str) -> BTreeMap<i64, Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v["pid"].as_i64()?, v)))
        .collect()
}

/// The fd `fd` of a plan.
fn fd(plan: &Value, fd: i64) -> &Value {
    plan["fds"].as_array().unwrap().iter().find(|f| f["fd"] == fd).unwrap_or_else(|| panic!("no fd {fd}: {plan}"))
}

#[test]
fn every_process_of_a_running_container_is_checked_with_its_fds() {
    if !podman_installed() {
        eprintln!("skipped: podman is not installed");
        return;
    }
    // sh holds /etc/hostname at fd 3 and forks sleep and cat, joined by a pipe; all three inherit fd 3.
    let ctr = Container::make("running", true, &["sh", "-c", "exec 3</etc/hostname; sleep 1000 | cat"]);
    let id = ctr.inspect(".Id");
    let main: i64 = ctr.inspect(".State.Pid").parse().unwrap();
    // The shell forks its pipeline after `podman run` returns: wait for the three processes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, found, err) = loop {
        let (code, out, err) = crrules(&["check", "--container", &ctr.0, "--format", "json"], None);
        let found = plans(&out);
        if found.len() >= 3 || Instant::now() > deadline {
            break (code, found, err);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(code, 2, "{err}");
    let mut comms: Vec<&str> = found.values().map(|p| p["comm"].as_str().unwrap()).collect();
    comms.sort_unstable();
    assert_eq!(comms, ["cat", "sh", "sleep"], "{err}");
    assert_eq!(found[&main]["comm"], "sh", "the main pid is the shell");
    // Only the container's processes (not conmon, not crrules): each is in the container's cgroup.
    for pid in found.keys() {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(cgroups.contains(&id), "process {pid} is not in the container's cgroup:\n{cgroups}");
    }
    for plan in found.values() {
        let held = fd(plan, 3);
        assert_eq!((&held["kind"], &held["path"]), (&Value::from("file"), &Value::from("/etc/hostname")), "{plan}");
    }
    let by_comm = |comm: &str| found.values().find(|p| p["comm"] == comm).unwrap();
    let (out, into) = (fd(by_comm("sleep"), 1), fd(by_comm("cat"), 0));
    assert_eq!((&out["kind"], &into["kind"]), (&Value::from("pipe"), &Value::from("pipe")));
    assert_eq!(out["ino"], into["ino"], "sleep's stdout is cat's stdin");
    // The container is the checkpoint's boundary: the pipe between sleep and cat is inside it; the
    // container's stdout, held at its other end by podman's conmon, is outside and handed in.
    assert_eq!((&out["peer"], &out["peer_comm"]), (&Value::from("inside"), &Value::from("cat")));
    let stdout = fd(by_comm("cat"), 1);
    assert_eq!((&stdout["peer"], &stdout["peer_comm"]), (&Value::from("outside"), &Value::from("conmon")), "{stdout}");
    assert_eq!((&stdout["action"], &stdout["inherit"]), (&Value::from("inherit"), &Value::from("stdout")));
    assert_eq!(fd(by_comm("sh"), 3)["shared_with"].as_array().map(Vec::len), Some(2), "fd 3, opened before the forks");

    // By a unique prefix of its id: the same processes.
    let (_, out, err) = crrules(&["check", "--container", &id[..10], "--format", "json"], None);
    assert_eq!(plans(&out).keys().collect::<Vec<_>>(), found.keys().collect::<Vec<_>>(), "{err}");
}

#[test]
fn a_container_that_is_not_running_is_an_error_naming_it_and_its_state() {
    if !podman_installed() {
        eprintln!("skipped: podman is not installed");
        return;
    }
    let ctr = Container::make("created", false, &["true"]);
    let (code, out, err) = crrules(&["check", "--container", &ctr.0], None);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(&format!("container `{}` (podman, id", ctr.0)), "{err}");
    assert!(err.contains("is not running: its state is `created`"), "{err}");
}

#[test]
fn a_container_no_tool_knows_is_an_error_with_each_tools_answer() {
    let name = Container::name("unknown");
    let (code, _, err) = crrules(&["check", "--container", &name], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("no container `{name}` found")), "{err}");
    assert!(err.contains("`podman container inspect`: ") && err.contains("`docker container inspect`: "), "{err}");
    if podman_installed() {
        assert!(err.contains(&format!("no such container {name}")), "podman's answer: {err}");
    }
    // Neither tool on PATH.
    let empty = TempDir::new("container-path");
    let (code, _, err) = crrules(&["facts", "--container", &name], Some(empty.str()));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`podman container inspect`: not found on PATH; `docker container inspect`: not found on PATH"),
        "{err}"
    );
}
