//! Why a process could not be scanned: a leaf module of plain data, so that the `/proc` code, the scanner
//! and the sources of facts can all name the same errors without importing each other.

use std::io;

/// Why a process could not be scanned. Every variant that is about a process names its pid.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("process {pid} does not exist")]
    NoSuchProcess { pid: i32 },
    #[error("may not inspect the fds of process {pid}: permission denied ({})", permission_hint(*as_root))]
    PermissionDenied {
        pid: i32,
        /// The scanner ran as root (the hint then names the kernel checks that can still refuse).
        as_root: bool,
        #[source]
        source: io::Error,
    },
    #[error(
        "process {pid} has exited or is exiting: its fds are closed (a zombie stays listed until its parent reaps it)"
    )]
    Exited { pid: i32 },
    #[error(
        "process {pid} ({comm}) is a kernel thread: it has no fd table or memory of its own, nothing to checkpoint"
    )]
    KernelThread { pid: i32, comm: String },
    #[error("cannot read the {what} of process {pid}: {source}")]
    Io {
        pid: i32,
        what: String,
        #[source]
        source: io::Error,
    },
    /// `/proc` itself could not be listed (no pid to name).
    #[error("cannot list the processes in /proc: {source}")]
    ListProcesses {
        #[source]
        source: io::Error,
    },
}

impl ScanError {
    /// The pid the error is about, if it is about one.
    pub fn pid(&self) -> Option<i32> {
        match self {
            ScanError::NoSuchProcess { pid }
            | ScanError::PermissionDenied { pid, .. }
            | ScanError::Exited { pid }
            | ScanError::KernelThread { pid, .. }
            | ScanError::Io { pid, .. } => Some(*pid),
            ScanError::ListProcesses { .. } => None,
        }
    }

    /// True when the process is gone (never existed, or exited): nothing is left to check.
    pub fn is_gone(&self) -> bool {
        matches!(self, ScanError::NoSuchProcess { .. } | ScanError::Exited { .. })
    }
}

/// What to try when the kernel refuses to show a process's fds.
fn permission_hint(as_root: bool) -> &'static str {
    if as_root {
        "even to root: the kernel's ptrace access check refused, e.g. a security module, Yama's \
         ptrace_scope 3, or a process in a user namespace this one does not own"
    } else {
        "run as its owner or as root"
    }
}
