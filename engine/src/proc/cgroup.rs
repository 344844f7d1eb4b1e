//! Cgroups as the kernel mounts them: the unified (v2) hierarchy wherever it is mounted (`/sys/fs/cgroup`,
//! or `/sys/fs/cgroup/unified` beside v1 controllers), and the v1 controller hierarchies; the processes of
//! a cgroup and of every cgroup below it (`check --cgroup`, what a container is to the kernel).

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
    let rel = path.strip_prefix("/").unwrap_or(path);
    let mut roots = mounts();
    roots.sort_by_key(|(_, unified)| !unified);
    roots.into_iter().map(|(root, _)| root.join(rel)).find(|dir| dir.join("cgroup.procs").is_file()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no cgroup `{}` (neither a cgroup directory nor a path in a mounted hierarchy)", path.display()),
        )
    })
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
