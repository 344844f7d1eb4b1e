//! Stopping a process for a consistent cut (`dump --freeze`), and letting it go: the cgroup v2 freezer when
//! the process has a cgroup of its own (it alone, no child cgroup, not crrules', not frozen already),
//! `SIGSTOP` otherwise; a process stopped already is left stopped. The guard thaws on drop and says how long
//! the process was stopped.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A stopped process; thawed when dropped (or by [`Stopped::thaw`]).
#[derive(Debug)]
pub struct Stopped {
    pid: i32,
    how: How,
    since: Instant,
    thawed: bool,
}

#[derive(Debug)]
enum How {
    Cgroup(PathBuf),
    Sigstop,
    /// It was stopped before: nothing to undo.
    Already,
}

impl Stopped {
    /// Stops `pid` and waits until it is stopped. A process already stopped (by job control or a
    /// tracer) is left as it is, and not let go afterwards either.
    pub fn stop(pid: i32) -> io::Result<Stopped> {
        if stopped(pid) {
            return Ok(Stopped { pid, how: How::Already, since: Instant::now(), thawed: true });
        }
        if let Some(dir) = own_cgroup_of(pid) {
            std::fs::write(dir.join("cgroup.freeze"), "1")?;
            let since = Instant::now();
            let frozen = Stopped { pid, how: How::Cgroup(dir.clone()), since, thawed: false };
            wait_for(|| std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|t| t.contains("frozen 1")))?;
            return Ok(frozen);
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP)
            .map_err(io::Error::from)?;
        let frozen = Stopped { pid, how: How::Sigstop, since: Instant::now(), thawed: false };
        wait_for(|| stopped(pid))?;
        Ok(frozen)
    }

    /// `cgroup` or `sigstop`.
    pub fn how(&self) -> &'static str {
        match self.how {
            How::Cgroup(_) => "cgroup",
            How::Sigstop => "sigstop",
            How::Already => "already stopped",
        }
    }

    /// Lets the process run again; how long it was stopped.
    pub fn thaw(mut self) -> io::Result<Duration> {
        self.release()?;
        Ok(self.since.elapsed())
    }

    fn release(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.thawed, true) {
            return Ok(());
        }
        match &self.how {
            How::Cgroup(dir) => std::fs::write(dir.join("cgroup.freeze"), "0"),
            How::Sigstop => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGCONT)
                    .map_err(io::Error::from)
            }
            How::Already => Ok(()),
        }
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT held back while a process is stopped, so that crrules is not killed
/// before it lets the process go; they are delivered when the guard drops. Taken before crrules starts any
/// thread (threads inherit the mask), dropped after the thaw.
#[derive(Debug)]
pub struct SignalsHeld(nix::sys::signal::SigSet);

impl SignalsHeld {
    pub fn take() -> SignalsHeld {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
            set.add(s);
        }
        let _ = set.thread_block();
        SignalsHeld(set)
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        let _ = self.0.thread_unblock();
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// The cgroup v2 directory of `pid` when it can be frozen alone: not the root, not an ancestor of crrules'
/// own cgroup, holding no other process and no child cgroup, and not frozen by someone else already.
fn own_cgroup_of(pid: i32) -> Option<PathBuf> {
    let theirs = unified_path(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)?;
    let ours = unified_path(&std::fs::read_to_string("/proc/self/cgroup").ok()?)?;
    if theirs == "/" || ours == theirs || ours.starts_with(&format!("{}/", theirs.trim_end_matches('/'))) {
        return None;
    }
    let dir = super::cgroup::unified_root()?.join(theirs.trim_start_matches('/'));
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    let alone = procs.split_whitespace().all(|p| p == pid.to_string());
    let leaf = std::fs::read_dir(&dir).ok()?.flatten().all(|e| !e.file_type().is_ok_and(|t| t.is_dir()));
    let thawed = std::fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|f| f.trim() == "0");
    (alone && leaf && thawed).then_some(dir)
}

/// The `0::PATH` line of a `/proc/PID/cgroup`.
fn unified_path(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned)
}

/// True when the process is stopped: `T` (a stop signal) or `t` (stopped by a tracer) in `/proc/PID/stat`.
fn stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['T', 't'])))
        .unwrap_or(false)
}

fn wait_for(done: impl Fn() -> bool) -> io::Result<()> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > Duration::from_secs(5) {
            return Err(io::Error::other("the process did not stop within 5 s"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_paths() {
        assert_eq!(unified_path("12:cpu:/x\n0::/user.slice/a.scope\n").as_deref(), Some("/user.slice/a.scope"));
        assert_eq!(unified_path("0::/\n").as_deref(), Some("/"));
        assert_eq!(unified_path("1:name=systemd:/\n"), None);
    }

    #[test]
    fn a_child_is_stopped_and_let_go() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let frozen = Stopped::stop(pid).unwrap();
        assert!(stopped(pid), "{}", frozen.how());
        frozen.thaw().unwrap();
        wait_for(|| !stopped(pid)).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
