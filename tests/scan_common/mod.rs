//! Shared by the `scan_*` tests: spawn `examples/fdholder` (built by `cargo test`) and read its fd map.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Once;

/// The `fdholder` example next to this test binary (`target/<profile>/examples/fdholder`). `cargo test`
/// builds examples but `cargo test --test NAME` does not, so it is brought up to date here, once per test
/// binary (a no-op build when it is fresh).
pub fn holder_path() -> PathBuf {
    static BUILT: Once = Once::new();
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join("fdholder");
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "--example", "fdholder", "--manifest-path"]);
        build.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build --example fdholder");
        assert!(status.success(), "cannot build the fdholder example");
    });
    path
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
        let path = holder_path();
        let mut child = Command::new(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
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
