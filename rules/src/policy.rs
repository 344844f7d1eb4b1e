//! Finding the effective policy: the three rules.d directories, ordered by file name, later directories
//! overriding and masking earlier ones (the convention udev and systemd users know); explicit `--rules`
//! paths; the compiled-in default when no directory holds a rule file; and, for root, the refusal of
//! policy files that someone else could have written.

use crate::diag::Diagnostic;
use crate::source::Source;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a policy file comes from, lowest precedence first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Compiled into the binary; used only when no directory holds a rule file.
    Builtin,
    /// `/usr/lib/crrules/rules.d`, shipped by the distribution.
    Distribution,
    /// `/run/crrules/rules.d`, written at run time.
    Runtime,
    /// `/etc/crrules/rules.d`, the site's own.
    Site,
    /// Given with `--rules`.
    Explicit,
}

/// The policy directories, lowest precedence first, relative to the root.
pub const DIRECTORIES: [(Layer, &str); 3] = [
    (Layer::Distribution, "usr/lib/crrules/rules.d"),
    (Layer::Runtime, "run/crrules/rules.d"),
    (Layer::Site, "etc/crrules/rules.d"),
];

/// The suffix of rule files.
pub const SUFFIX: &str = ".rules";

/// The fate of one policy file found on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Part of the effective policy.
    Active,
    /// Replaced by a file of the same name in a later directory.
    Overridden { by: PathBuf },
    /// Masked by an empty file or a symlink to `/dev/null` of the same name in a later directory.
    Masked { by: PathBuf },
    /// This file is itself a mask.
    Mask,
}

/// One policy file and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyFile {
    pub path: PathBuf,
    pub layer: Layer,
    #[serde(flatten)]
    pub status: Status,
}

/// The effective policy's files: the sources to compile, in order, and every file considered.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Active files' texts, in effective order.
    pub sources: Vec<Source>,
    /// Every file found, with its status, in effective order (builtin files included when used).
    pub files: Vec<PolicyFile>,
}

/// How policy files are to be found.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    /// Resolve the policy directories under this root instead of `/`.
    pub root: Option<PathBuf>,
    /// Use exactly these files and directories, in order, instead of the policy directories.
    pub explicit: Vec<PathBuf>,
    /// Refuse files and directories not owned by this uid or writable by group or others (set when
    /// running as root: a rule file decides what a restore may open).
    pub require_owner: Option<u32>,
}

/// The compiled-in default policy: (file name, text), in order.
pub type Builtin = &'static [(&'static str, &'static str)];

/// Finds the effective policy. Problems that stop a file from being read (unsafe permissions, unreadable
/// files, invalid UTF-8) are errors; everything found is still listed.
pub fn load(lookup: &Lookup, builtin: Builtin) -> Result<Policy, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut policy = if lookup.explicit.is_empty() {
        from_directories(lookup, &mut errors)
    } else {
        from_explicit(lookup, &mut errors)
    };
    if lookup.explicit.is_empty() && policy.files.is_empty() && errors.is_empty() {
        for (name, text) in builtin {
            policy.sources.push(Source::new(format!("<builtin>/{name}"), *text));
            policy.files.push(PolicyFile {
                path: PathBuf::from(format!("<builtin>/{name}")),
                layer: Layer::Builtin,
                status: Status::Active,
            });
        }
    }
    if errors.is_empty() { Ok(policy) } else { Err(errors) }
}

fn from_directories(lookup: &Lookup, errors: &mut Vec<Diagnostic>) -> Policy {
    let root = lookup.root.as_deref().unwrap_or(Path::new("/"));
    // File name -> every file of that name, lowest precedence first.
    let mut by_name: BTreeMap<String, Vec<(Layer, PathBuf)>> = BTreeMap::new();
    for (layer, dir) in DIRECTORIES {
        let dir = root.join(dir);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(unreadable(&dir, &e));
                continue;
            }
        };
        check_owner(&dir, lookup.require_owner, errors);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(SUFFIX) && !name.starts_with('.') {
                by_name.entry(name).or_default().push((layer, entry.path()));
            }
        }
    }
    let mut policy = Policy::default();
    for versions in by_name.into_values() {
        let (top_layer, top) = versions.last().cloned().expect("every name has a file");
        let top_is_mask = is_mask(&top);
        for (layer, path) in &versions[..versions.len() - 1] {
            let status =
                if top_is_mask { Status::Masked { by: top.clone() } } else { Status::Overridden { by: top.clone() } };
            policy.files.push(PolicyFile { path: path.clone(), layer: *layer, status });
        }
        if top_is_mask {
            policy.files.push(PolicyFile { path: top, layer: top_layer, status: Status::Mask });
        } else if let Some(source) = read(&top, lookup.require_owner, errors) {
            policy.sources.push(source);
            policy.files.push(PolicyFile { path: top, layer: top_layer, status: Status::Active });
        }
    }
    policy
}

fn from_explicit(lookup: &Lookup, errors: &mut Vec<Diagnostic>) -> Policy {
    let mut policy = Policy::default();
    for path in &lookup.explicit {
        let paths = match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                check_owner(path, lookup.require_owner, errors);
                match fs::read_dir(path) {
                    Ok(entries) => {
                        let mut files: Vec<PathBuf> = entries
                            .flatten()
                            .map(|e| e.path())
                            .filter(|p| {
                                p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
                            })
                            .collect();
                        files.sort();
                        files
                    }
                    Err(e) => {
                        errors.push(unreadable(path, &e));
                        continue;
                    }
                }
            }
            Ok(_) => vec![path.clone()],
            Err(e) => {
                errors.push(unreadable(path, &e));
                continue;
            }
        };
        for file in paths {
            if let Some(source) = read(&file, lookup.require_owner, errors) {
                policy.sources.push(source);
                policy.files.push(PolicyFile { path: file, layer: Layer::Explicit, status: Status::Active });
            }
        }
    }
    policy
}

/// True when `path` is an empty file or a symlink to `/dev/null`.
fn is_mask(path: &Path) -> bool {
    if let Ok(target) = fs::read_link(path) {
        return target == Path::new("/dev/null");
    }
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

fn read(path: &Path, owner: Option<u32>, errors: &mut Vec<Diagnostic>) -> Option<Source> {
    if !check_owner(path, owner, errors) {
        return None;
    }
    match fs::read(path) {
        Ok(bytes) => Source::from_bytes(path.display().to_string(), bytes).map_err(|d| errors.push(d)).ok(),
        Err(e) => {
            errors.push(unreadable(path, &e));
            None
        }
    }
}

/// Refuses a policy file or directory someone other than `owner` could write. Returns true when safe.
fn check_owner(path: &Path, owner: Option<u32>, errors: &mut Vec<Diagnostic>) -> bool {
    let Some(owner) = owner else { return true };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            errors.push(unreadable(path, &e));
            return false;
        }
    };
    let shown = path.display();
    if meta.uid() != owner {
        errors.push(
            Diagnostic::error(
                "crrules::policy::owner",
                format!("policy path `{shown}` is owned by uid {}, not by uid {owner} who runs crrules", meta.uid()),
            )
            .with_help(format!(
                "a rule file decides what a restore may open; run `chown {owner} {shown}` if you trust it"
            )),
        );
        return false;
    }
    if meta.mode() & 0o022 != 0 {
        errors.push(
            Diagnostic::error(
                "crrules::policy::writable",
                format!(
                    "policy path `{shown}` is writable by {} (mode {:o})",
                    who_can_write(meta.mode()),
                    meta.mode() & 0o7777
                ),
            )
            .with_help(format!("a rule file decides what a restore may open; run `chmod go-w {shown}`")),
        );
        return false;
    }
    true
}

fn who_can_write(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

fn unreadable(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::error("crrules::policy::unreadable", format!("cannot read policy path `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("crrules-policy-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (path, text) in files {
            let p = root.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            if *text == "->/dev/null" {
                symlink("/dev/null", &p).unwrap();
            } else {
                fs::write(&p, text).unwrap();
            }
        }
        root
    }

    #[test]
    fn later_directories_override_and_mask_by_name() {
        let root = tree(&[
            ("usr/lib/crrules/rules.d/10-a.rules", "any => close\n"),
            ("usr/lib/crrules/rules.d/20-b.rules", "pipe => recreate\n"),
            ("usr/lib/crrules/rules.d/30-c.rules", "fifo => recreate\n"),
            ("usr/lib/crrules/rules.d/README", "not a rule file"),
            ("run/crrules/rules.d/20-b.rules", "pipe => close\n"),
            ("etc/crrules/rules.d/30-c.rules", "->/dev/null"),
            ("etc/crrules/rules.d/10-a.rules", ""),
            ("etc/crrules/rules.d/05-site.rules", "chardev 1:3 => reopen path\n"),
        ]);
        let policy = load(&Lookup { root: Some(root.clone()), ..Lookup::default() }, &[]).unwrap();
        let active: Vec<_> =
            policy.sources.iter().map(|s| s.name.strip_prefix(root.to_str().unwrap()).unwrap().to_owned()).collect();
        assert_eq!(active, ["/etc/crrules/rules.d/05-site.rules", "/run/crrules/rules.d/20-b.rules"]);
        let status = |p: &str| policy.files.iter().find(|f| f.path == root.join(p)).map(|f| f.status.clone()).unwrap();
        assert_eq!(
            status("usr/lib/crrules/rules.d/20-b.rules"),
            Status::Overridden { by: root.join("run/crrules/rules.d/20-b.rules") }
        );
        assert_eq!(
            status("usr/lib/crrules/rules.d/30-c.rules"),
            Status::Masked { by: root.join("etc/crrules/rules.d/30-c.rules") }
        );
        assert_eq!(
            status("usr/lib/crrules/rules.d/10-a.rules"),
            Status::Masked { by: root.join("etc/crrules/rules.d/10-a.rules") }
        );
        assert_eq!(status("etc/crrules/rules.d/10-a.rules"), Status::Mask);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn builtin_is_used_only_when_no_directory_holds_a_rule_file() {
        let builtin: Builtin = &[("50-default.rules", "any => close\n")];
        let empty = tree(&[("etc/crrules/rules.d/README", "x")]);
        let policy = load(&Lookup { root: Some(empty.clone()), ..Lookup::default() }, builtin).unwrap();
        assert_eq!(&*policy.sources[0].name, "<builtin>/50-default.rules");
        fs::remove_dir_all(empty).unwrap();
        let site = tree(&[("etc/crrules/rules.d/00-x.rules", "pipe => close\n")]);
        let policy = load(&Lookup { root: Some(site.clone()), ..Lookup::default() }, builtin).unwrap();
        assert_eq!(policy.sources.len(), 1);
        assert!(policy.sources[0].name.ends_with("00-x.rules"));
        fs::remove_dir_all(site).unwrap();
    }

    #[test]
    fn root_refuses_files_others_can_write() {
        let root = tree(&[
            ("etc/crrules/rules.d/10-x.rules", "pipe => close\n"),
            ("etc/crrules/rules.d/20-y.rules", "fifo => close\n"),
        ]);
        let file = root.join("etc/crrules/rules.d/10-x.rules");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let owner = fs::metadata(&file).unwrap().uid();
        let errors = load(&Lookup { root: Some(root.clone()), require_owner: Some(owner), ..Lookup::default() }, &[])
            .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.contains("10-x.rules` is writable by group and others (mode 666)"),
            "{}",
            errors[0].message
        );
        assert!(errors[0].help.as_deref().unwrap().contains("chmod go-w"));
        let errors =
            load(&Lookup { root: Some(root.clone()), require_owner: Some(owner + 1), ..Lookup::default() }, &[])
                .unwrap_err();
        assert!(errors[0].message.contains("is owned by uid"), "{}", errors[0].message);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn explicit_paths_are_used_exactly_in_order() {
        let root = tree(&[
            ("a/20-x.rules", "pipe => close\n"),
            ("a/10-y.rules", "fifo => close\n"),
            ("b.rules", "any => close\n"),
        ]);
        let lookup = Lookup { explicit: vec![root.join("b.rules"), root.join("a")], ..Lookup::default() };
        let policy = load(&lookup, &[("z.rules", "any => close\n")]).unwrap();
        let got: Vec<_> = policy
            .sources
            .iter()
            .map(|s| Path::new(&*s.name).file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(got, ["b.rules", "10-y.rules", "20-x.rules"]);
        let missing = Lookup { explicit: vec![root.join("nope.rules")], ..Lookup::default() };
        let errors = load(&missing, &[]).unwrap_err();
        assert!(errors[0].message.starts_with("cannot read policy path"), "{}", errors[0].message);
        fs::remove_dir_all(root).unwrap();
    }
}
