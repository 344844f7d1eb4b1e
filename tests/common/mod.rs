//! Shared helpers for end-to-end tests: run the real binary, make throwaway policy trees.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `crrules` with `args`, colour off, its stdin a pipe at its end (what a restore hands in as `stdin`,
/// with its captured stdout as `stdout`, to a restored process whose standard streams were pipes to this
/// test).
pub fn crrules(args: &[&str]) -> Output {
    // `wait_with_output` closes stdin first: crrules reads an empty pipe.
    spawn_crrules(args).wait_with_output().expect("run crrules")
}

/// `crrules` with `args` started, colour off, stdin, stdout and stderr pipes; the caller waits.
pub fn spawn_crrules<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_crrules"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crrules")
}

/// Exit code, stdout and stderr as text.
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = crrules(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// True when the tests run as root (then the binary refuses policy paths anyone else could change).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Where temporary directories go. As root, `/run/crrules-tests` (root's, mode 755): crrules run as root
/// refuses a policy path that goes through a directory others can write, and `/tmp` is one (sticky: anyone
/// may create names in it). Otherwise the usual temporary directory, since nothing is refused then.
pub fn temp_base() -> PathBuf {
    if !running_as_root() {
        return std::env::temp_dir();
    }
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let base = PathBuf::from("/run/crrules-tests");
    let _ = std::fs::DirBuilder::new().mode(0o755).create(&base);
    let meta = std::fs::symlink_metadata(&base).expect("/run/crrules-tests");
    assert!(meta.is_dir() && meta.uid() == 0, "/run/crrules-tests must be a directory of root's");
    if meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    base
}

/// A temporary directory removed on drop, under [`temp_base`].
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = temp_base().join(format!("crrules-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `text` at `rel`, creating directories; `->TARGET` makes a symlink instead.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match text.strip_prefix("->") {
            Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            None => std::fs::write(&path, text).unwrap(),
        }
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn str(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
