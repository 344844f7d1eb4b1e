//! Where facts come from: the seam between the pipeline and whatever reads processes. A [`Source`] yields
//! one process's facts at a time, in a fixed order, read with the [`ScanOptions`] the pipeline asks for.
//! [`Live`] scans running processes (a list of pids, their trees, a cgroup, a container's cgroup, or every
//! process); [`FactsFile`] reads saved plans back, so a check of saved facts takes exactly the path of a
//! live check. A new source is one more type here.

use crate::error::ScanError;
use crate::needs::ScanOptions;
use crate::plan::ProcessPlan;
use crate::scan::{self, ProcessScan};
use rayon::prelude::*;
use std::collections::VecDeque;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// What a source yields for one process.
#[derive(Debug)]
pub enum Sourced {
    /// The process's facts.
    Process(ProcessScan),
    /// A process the source could not read, and that does not stop the run: a descendant that exited
    /// meanwhile, or one of every process on the host that exited or may not be read.
    Skipped(ScanError),
}

/// Why a source cannot go on: the run stops with this error.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A process the user named could not be read.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A container that cannot be found, is not running, or has no cgroup of its own.
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    /// A facts file or a cgroup that cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a facts file that is not a process object.
    #[error("`{}` line {line}: {message}", path.display())]
    Facts { path: PathBuf, line: usize, message: String },
}

/// A source of process facts.
pub trait Source {
    /// How many processes this source will yield, when known up front (for progress bars).
    fn expected(&self) -> Option<usize> {
        None
    }

    /// True when the processes are checked together: the fds of all of them are linked (`peer`, `shared`)
    /// before any is decided, the processes outside being everything else. Every process on the host is
    /// not such a set (nothing would be outside), nor are saved facts (linked when they were saved).
    fn together(&self) -> bool {
        false
    }

    /// The next process, read with `opts` (a source of saved facts yields what was saved); `None` at the
    /// end.
    fn next(&mut self, opts: &ScanOptions) -> Option<Result<Sourced, SourceError>>;
}

/// Running processes, scanned one after another (every fd of each in parallel), or, for every process on
/// the host, several processes at once.
#[derive(Debug)]
pub struct Live {
    /// The pids still to scan, in order, each with whether the user named it: a named process that cannot
    /// be read stops the run; a descendant that exited is skipped.
    pending: VecDeque<(i32, bool)>,
    /// Skip, rather than stop at, an unnamed process that may not be read (every process on the host).
    skip_unreadable: bool,
    total: usize,
    /// Scan this many processes at once (1: one at a time, all cores on its fds).
    batch: usize,
    /// Checked together (see [`Source::together`]).
    together: bool,
    ready: VecDeque<Result<ProcessScan, ScanError>>,
    ready_named: VecDeque<bool>,
}

/// How many processes `--all` scans at once: enough to keep every core busy on small fd tables.
const ALL_BATCH: usize = 64;

impl Live {
    /// The named processes, each followed, with `tree`, by its descendants (each pid once, in the order
    /// given, descendants after their ancestor).
    pub fn pids(pids: &[i32], tree: bool) -> Result<Live, SourceError> {
        let mut order: Vec<(i32, bool)> = Vec::new();
        let mut push = |pid: i32, named: bool| match order.iter_mut().find(|(p, _)| *p == pid) {
            Some(entry) => entry.1 |= named,
            None => order.push((pid, named)),
        };
        for &pid in pids {
            push(pid, true);
            if tree {
                for child in scan::descendants(pid)? {
                    push(child, false);
                }
            }
        }
        Ok(Live::new(order, 1, false, true))
    }

    /// Every process of a cgroup and of the cgroups below it (a container, a service, a job): `path` is a
    /// cgroup directory, or a path in the unified hierarchy, or in a v1 controller's (kernel threads, which
    /// the root cgroup holds, left out). A process that exits during the run is skipped; an empty cgroup is
    /// an error.
    pub fn cgroup(path: &Path) -> Result<Live, SourceError> {
        let io = |source| SourceError::Io { path: path.to_owned(), source };
        let dir = crate::proc::cgroup::resolve(path).map_err(io)?;
        let me = std::process::id() as i32;
        let pids: Vec<(i32, bool)> = crate::proc::cgroup::pids(&dir)
            .map_err(io)?
            .into_iter()
            .filter(|&p| p != me && !crate::proc::is_kernel_thread(p))
            .map(|p| (p, false))
            .collect();
        if pids.is_empty() {
            return Err(io(std::io::Error::other(format!("the cgroup {} holds no process", dir.display()))));
        }
        Ok(Live::new(pids, 1, true, true))
    }

    /// Every process of a podman or docker container (a full id, a unique prefix of one, or a name): its
    /// cgroup, as [`Live::cgroup`] (see [`crate::container`]).
    pub fn container(id: &str) -> Result<Live, SourceError> {
        Live::cgroup(&crate::container::resolve(id)?.cgroup)
    }

    /// Every process on the host (in this pid namespace) but the scanner itself and kernel threads.
    pub fn all() -> Result<Live, SourceError> {
        let me = std::process::id() as i32;
        let user = |p: &i32| *p != me && !crate::proc::is_kernel_thread(*p);
        let pids = scan::all_pids()?.into_iter().filter(user).map(|p| (p, false)).collect();
        Ok(Live::new(pids, ALL_BATCH, true, false))
    }

    fn new(pending: Vec<(i32, bool)>, batch: usize, skip_unreadable: bool, together: bool) -> Live {
        Live {
            skip_unreadable,
            together,
            total: pending.len(),
            pending: pending.into(),
            batch,
            ready: VecDeque::new(),
            ready_named: VecDeque::new(),
        }
    }
}

impl Source for Live {
    fn expected(&self) -> Option<usize> {
        Some(self.total)
    }

    fn together(&self) -> bool {
        self.together
    }

    fn next(&mut self, opts: &ScanOptions) -> Option<Result<Sourced, SourceError>> {
        if self.ready.is_empty() {
            let n = self.batch.min(self.pending.len());
            let batch: Vec<(i32, bool)> = self.pending.drain(..n).collect();
            let scans: Vec<Result<ProcessScan, ScanError>> = if n == 1 {
                vec![scan::scan_process(batch[0].0, opts)]
            } else {
                batch.par_iter().map(|&(pid, _)| scan::scan_process(pid, opts)).collect()
            };
            self.ready.extend(scans);
            self.ready_named.extend(batch.iter().map(|&(_, named)| named));
        }
        let result = self.ready.pop_front()?;
        let named = self.ready_named.pop_front().unwrap_or(true);
        Some(match result {
            Ok(scan) => Ok(Sourced::Process(scan)),
            Err(e) if !named && (e.is_gone() || self.skip_unreadable) => Ok(Sourced::Skipped(e)),
            Err(e) => Err(SourceError::Scan(e)),
        })
    }
}

/// Saved plans (from `crrules facts` or `check --format json`), one process object per line; blank lines
/// are skipped. Decisions saved with the facts are dropped: the facts are decided again.
pub struct FactsFile {
    path: PathBuf,
    lines: std::io::Lines<Box<dyn BufRead + Send>>,
    line: usize,
}

impl std::fmt::Debug for FactsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactsFile").field("path", &self.path).field("line", &self.line).finish_non_exhaustive()
    }
}

impl FactsFile {
    /// Opens a facts file.
    pub fn open(path: &Path) -> Result<FactsFile, SourceError> {
        let file = std::fs::File::open(path).map_err(|source| SourceError::Io { path: path.to_owned(), source })?;
        Ok(FactsFile::from_reader(path, Box::new(std::io::BufReader::new(file))))
    }

    /// Facts read from any reader; `path` names it in errors.
    pub fn from_reader(path: &Path, reader: Box<dyn BufRead + Send>) -> FactsFile {
        FactsFile { path: path.to_owned(), lines: reader.lines(), line: 0 }
    }

    /// The next saved plan, as written (decisions kept), with its line number.
    pub fn next_plan(&mut self) -> Option<Result<(usize, ProcessPlan), SourceError>> {
        loop {
            self.line += 1;
            let text = match self.lines.next()? {
                Ok(text) => text,
                Err(source) => return Some(Err(SourceError::Io { path: self.path.clone(), source })),
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(
                ProcessPlan::from_json(&text).map(|plan| (self.line, plan)).map_err(|message| SourceError::Facts {
                    path: self.path.clone(),
                    line: self.line,
                    message,
                }),
            );
        }
    }
}

impl Source for FactsFile {
    fn next(&mut self, _opts: &ScanOptions) -> Option<Result<Sourced, SourceError>> {
        self.next_plan().map(|r| r.map(|(_, plan)| Sourced::Process(plan.into_scan())))
    }
}
