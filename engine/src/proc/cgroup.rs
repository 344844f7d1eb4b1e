//! Cgroups as the kernel mounts them: the unified (v2) hierarchy wherever it is mounted (`/sys/fs/cgroup`,
//! or `/sys/fs/cgroup/unified` beside v1 controllers), and the v1 controller hierarchies; the processes of
//! a cgroup and of every cgroup below it (`check --cgroup`, what a container is to the kernel), and the
//! cgroups a process is in (`/proc/PID/cgroup`, for `check --container`).

use crate::error::ScanError;
use std::io;
use std::path::{Path, PathBuf};

/// The cgroup filesystems this process sees: (mount point, `true` for the unified hierarchy), from
/// `/proc/self/mountinfo`.
pub fn mounts() -> Vec<(PathBuf, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(text) = std::fs::read("/proc/self/mountinfo") else { return Vec::new() };
    super::mountinfo::mounts(&text)
        .into_iter()
        .filter_map(|m| {
            let unified = match m.fstype.as_str() {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some((PathBuf::from(std::ffi::OsStr::from_bytes(&m.point)), unified))
        })
        .collect()
}

/// The unified hierarchy's mount point, if any.
pub fn unified_root() -> Option<PathBuf> {
    mounts().into_iter().find_map(|(p, unified)| unified.then_some(p))
}

/// The directory a user's `--cgroup PATH` names: PATH itself when it is a cgroup directory (it holds
/// `cgroup.procs`), else PATH below the unified hierarchy, else below the first v1 hierarchy that has it.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    if path.is_absolute() && path.join("cgroup.procs").is_file() {
        return Ok(path.to_owned());
    }
    in_hierarchies(path).next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no cgroup `{}` (neither a cgroup directory nor a path in a mounted hierarchy)", path.display()),
        )
    })
}

/// The directory of the cgroup at `path` (a path inside a hierarchy, as `/proc/PID/cgroup` gives it) in the
/// first hierarchy, unified first, where it exists and holds `pid` (in it or in a cgroup below it).
pub fn resolve_holding(path: &Path, pid: i32) -> Option<PathBuf> {
    in_hierarchies(path).find(|dir| pids(dir).is_ok_and(|found| found.contains(&pid)))
}

/// The cgroup directories at `path` in each mounted hierarchy that has one, the unified hierarchy first.
fn in_hierarchies(path: &Path) -> impl Iterator<Item = PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path).to_owned();
    let mut roots = mounts();
    roots.sort_by_key(|(_, unified)| !unified);
    roots.into_iter().map(move |(root, _)| root.join(&rel)).filter(|dir| dir.join("cgroup.procs").is_file())
}

/// One line of `/proc/PID/cgroup`: a hierarchy and the process's cgroup in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The v1 controllers of the hierarchy (`pids`; `cpu,cpuacct`; `name=systemd`); empty for the unified
    /// hierarchy (the line `0::PATH`).
    pub controllers: Vec<String>,
    /// The cgroup's path inside the hierarchy, from its root (`/` is the root cgroup).
    pub path: String,
}

impl Membership {
    /// The line of the unified (v2) hierarchy.
    pub fn unified(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// The cgroups process `pid` is in, one per hierarchy, as `/proc/PID/cgroup` lists them.
pub fn of_process(pid: i32) -> Result<Vec<Membership>, ScanError> {
    match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(text) => Ok(memberships(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ScanError::NoSuchProcess { pid }),
        Err(source) => Err(ScanError::Io { pid, what: "cgroups (/proc/PID/cgroup)".into(), source }),
    }
}

/// Parses `/proc/PID/cgroup`: `ID:CONTROLLERS:PATH` per line (`0::PATH` for the unified hierarchy; the path
/// may itself hold `:`).
pub fn memberships(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let (_id, rest) = line.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            let controllers = controllers.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
            Some(Membership { controllers, path: path.to_owned() })
        })
        .collect()
}

/// Every process of the cgroup `dir` and of every cgroup below it, each once, in the order found.
pub fn pids(dir: &Path) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let procs = std::fs::read_to_string(d.join("cgroup.procs"))?;
        out.extend(procs.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        let mut children: Vec<PathBuf> = std::fs::read_dir(&d)?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        children.sort();
        stack.extend(children.into_iter().rev());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(*p));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_of_a_hybrid_host() {
        let text = "9:name=systemd:/libpod_parent/libpod-ab\n2:cpu,cpuacct:/\n0::/a:b/c\n";
        let got = memberships(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].controllers, ["name=systemd"]);
        assert_eq!(got[0].path, "/libpod_parent/libpod-ab");
        assert_eq!(got[1].controllers, ["cpu", "cpuacct"]);
        assert!(got[2].unified() && got[2].path == "/a:b/c");
    }

    #[test]
    fn this_process_is_held_by_its_own_cgroups() {
        let me = std::process::id() as i32;
        let mine = of_process(me).unwrap();
        assert!(!mine.is_empty());
        for m in mine.iter().filter(|m| mounts().iter().any(|(_, unified)| *unified == m.unified())) {
            let dir = resolve_holding(Path::new(&m.path), me);
            assert!(dir.is_some(), "{m:?} holds no directory with this process");
        }
        assert!(matches!(of_process(i32::MAX), Err(ScanError::NoSuchProcess { .. })));
    }

    #[test]
    fn this_process_is_in_its_own_cgroup() {
        let Some(root) = unified_root() else { return };
        let me = std::process::id() as i32;
        let line = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let Some(path) = line.lines().find_map(|l| l.strip_prefix("0::")) else { return };
        let dir = resolve(Path::new(path)).unwrap();
        assert!(dir.starts_with(&root), "{} not under {}", dir.display(), root.display());
        assert!(pids(&dir).unwrap().contains(&me));
    }
}
