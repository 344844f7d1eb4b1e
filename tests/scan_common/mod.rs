//! Shared by the tests that drive real processes: spawn `examples/fdholder` and read its fd map; find the other
//! examples (`fdreport`), built on demand.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The `fdholder` example next to this test binary (`target/<profile>/examples/fdholder`).
pub fn holder_path() -> PathBuf {
    example_path("fdholder")
}

/// The example `name` next to this test binary (`target/<profile>/examples/NAME`). `cargo test` builds
/// examples but `cargo test --test NAME` does not, so each is brought up to date here, once per test binary
/// (a no-op build when it is fresh).
pub fn example_path(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "--example", name, "--manifest-path"]);
        build.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if release {
            build.arg("--release");
        }
        let status = build.status().unwrap_or_else(|e| panic!("cargo build --example {name}: {e}"));
        assert!(status.success(), "cannot build the {name} example");
        built.push(name.to_owned());
    }
    path
}

/// Spawns `command`, trying again while its program is "busy": a copy just written by this process (for
/// another user to run) is, until every child forked meanwhile by another test thread, which inherited the
/// copy's open fd, has exec'd.
pub fn spawn_copy(command: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// A running `fdholder`; killed and reaped on drop.
pub struct Holder {
    pub child: Child,
    stdin: Option<ChildStdin>,
    /// The map it printed: kind name -> fd number (or `count` for `--many`).
    pub fds: HashMap<String, i32>,
}

impl Holder {
    pub fn spawn(args: &[&str]) -> Holder {
        Holder::spawn_os(&args.iter().map(OsStr::new).collect::<Vec<_>>())
    }

    /// [`Holder::spawn`] with arguments that need not be UTF-8 (`--open PATH`, `--comm NAME`).
    pub fn spawn_os(args: &[&OsStr]) -> Holder {
        Holder::spawn_with(&holder_path(), args, |_| {})
    }

    /// The holder at `path` (a copy elsewhere, for another user), its command set up by `setup` before it
    /// starts (its stderr, its user); stdin and stdout stay the holder's pipes.
    pub fn spawn_with(path: &Path, args: &[&OsStr], setup: impl FnOnce(&mut Command)) -> Holder {
        let mut command = Command::new(path);
        command.args(args);
        setup(&mut command);
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = spawn_copy(&mut command).unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("holder output");
        let fds: HashMap<String, i32> =
            serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("holder printed {line:?}: {e}"));
        Holder { child, stdin, fds }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn fd(&self, name: &str) -> i32 {
        *self.fds.get(name).unwrap_or_else(|| panic!("the holder did not open `{name}` (see its stderr)"))
    }

    /// Writes `bytes` to its stdin (`fdholder --setuid` acts on a line).
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the holder's stdin is open");
        stdin.write_all(bytes).and_then(|()| stdin.flush()).expect("write to the holder");
    }

    /// Closes its stdin and waits for it to exit: it removes its temp dir itself, which a killed holder
    /// cannot.
    pub fn finish(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }

    /// Kills it now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        self.kill();
    }
}

/// The kind `fdholder --churn` keeps at fd `fd` (fds 100-149 each hold one kind, replaced over and over),
/// if it keeps one.
pub fn churn_slot(fd: i64) -> Option<&'static str> {
    match fd {
        100..=109 => Some("pipe"),
        110..=119 => Some("eventfd"),
        120..=129 => Some("chardev"),
        130..=139 => Some("socket"),
        140..=149 => Some("file"),
        _ => None,
    }
}
