//! Finding the effective policy: the three rules.d directories, ordered by file name, later directories
//! overriding and masking earlier ones (the convention udev and systemd users know), with the built-in
//! default policy standing in for the distribution's directory when that holds no rule file; explicit
//! `--rules` paths; and, for root, the refusal of policy files that someone else could have written or
//! redirected (read through [`crate::trust`]). [`usable`] is the one call that every user of a policy (the
//! binary, the CRIU plugin) makes.

use crate::diag::Diagnostic;
use crate::source::Source;
use crate::trust;
use crate::{RuleSet, Validated};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// Where a policy file comes from, lowest precedence first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Compiled in ([`BUILTIN`]); stands in for the distribution's directory when that holds no rule file.
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
    /// Errors in files read but not compiled (not UTF-8): findings in those files, like the compiler's.
    pub diagnostics: Vec<Diagnostic>,
}

/// How policy files are to be found.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    /// Resolve the policy directories under this root instead of `/`.
    pub root: Option<PathBuf>,
    /// Use exactly these files and directories, in order, instead of the policy directories.
    pub explicit: Vec<PathBuf>,
    /// Refuse policy paths that anyone but root or this uid owns or could write: the file, every
    /// directory from `/` down to it and every symbolic link's target on the way (set to 0 when running as
    /// root: a rule file decides what a restore may open). `None` checks nothing: the policy can do nothing
    /// its user could not.
    pub require_owner: Option<u32>,
}

/// A compiled-in policy: (file name, text), in order.
pub type Builtin = &'static [(&'static str, &'static str)];

/// The default policy, compiled in from the project's `policy/` folder: the same files a distribution
/// installs into `/usr/lib/crrules/rules.d`, and used in their place when that directory holds none.
pub const BUILTIN: Builtin = &[
    ("10-devices.rules", include_str!("../../policy/10-devices.rules")),
    ("20-files.rules", include_str!("../../policy/20-files.rules")),
    ("30-ipc.rules", include_str!("../../policy/30-ipc.rules")),
];

/// The name shown for a built-in file (`<builtin>/10-devices.rules`), in diagnostics and `FILE:LINE`.
pub fn builtin_name(name: &str) -> String {
    format!("<builtin>/{name}")
}

impl Lookup {
    /// The lookup for this process: the policy directories (under `root`, if given) or exactly `explicit`,
    /// refusing, when running as root, files that anyone but root could have written.
    pub fn system(root: Option<PathBuf>, explicit: Vec<PathBuf>) -> Lookup {
        let euid = nix::unistd::geteuid().as_raw();
        Lookup { root, explicit, require_owner: (euid == 0).then_some(0) }
    }
}

/// The effective policy, ready to decide: found, read, compiled, with no error and at least one rule.
/// Any problem comes back as diagnostics (file, line, help) for the caller to show.
pub fn usable(lookup: &Lookup) -> Result<(Policy, RuleSet), Vec<Diagnostic>> {
    let policy = load(lookup, BUILTIN)?;
    let Validated { rules, diagnostics } = crate::compile(&policy.sources);
    let errors: Vec<Diagnostic> =
        policy.diagnostics.iter().cloned().chain(diagnostics).filter(Diagnostic::is_error).collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    if rules.is_empty() {
        return Err(vec![empty(lookup)]);
    }
    Ok((policy, rules))
}

/// The diagnostic for a policy without a single rule: an error for a check (every fd would be rejected
/// with "no rule matches"), a warning for `lint` and `rules`.
pub fn empty(lookup: &Lookup) -> Diagnostic {
    let where_ = if lookup.explicit.is_empty() {
        let root = lookup.root.as_deref().unwrap_or(Path::new("/"));
        let dirs: Vec<String> = DIRECTORIES.iter().map(|(_, d)| root.join(d).display().to_string()).collect();
        dirs.join(", ")
    } else {
        let paths: Vec<String> = lookup.explicit.iter().map(|p| p.display().to_string()).collect();
        paths.join(", ")
    };
    Diagnostic::error("crrules::policy::empty", format!("the effective policy has no rule (looked in {where_})"))
        .with_help("every fd would be rejected with \"no rule matches\"; check for masked files with `crrules rules`")
}

/// Finds the effective policy, with `builtin` standing in for the distribution's directory. Problems that
/// stop a file from being read (unsafe permissions, unreadable files, FIFOs and devices, files over 16 MiB,
/// a missing root) are errors; a file that is not UTF-8 is a finding in [`Policy::diagnostics`];
/// everything found is still listed.
pub fn load(lookup: &Lookup, builtin: Builtin) -> Result<Policy, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let policy = if lookup.explicit.is_empty() {
        from_directories(lookup, builtin, &mut errors)
    } else {
        from_explicit(lookup, &mut errors)
    };
    if errors.is_empty() { Ok(policy) } else { Err(errors) }
}

/// One candidate for a file name: a file in a policy directory, or a built-in text.
#[derive(Clone)]
enum Candidate {
    File(PathBuf),
    Builtin { name: &'static str, text: &'static str },
}

impl Candidate {
    fn path(&self) -> PathBuf {
        match self {
            Candidate::File(p) => p.clone(),
            Candidate::Builtin { name, .. } => PathBuf::from(builtin_name(name)),
        }
    }
}

fn from_directories(lookup: &Lookup, builtin: Builtin, errors: &mut Vec<Diagnostic>) -> Policy {
    let root = lookup.root.as_deref().unwrap_or(Path::new("/"));
    if let Some(given) = &lookup.root {
        if !given.is_dir() {
            errors.push(
                Diagnostic::error(
                    "crrules::policy::root",
                    format!("policy root `{}` does not exist or is not a directory", given.display()),
                )
                .with_help("`--root DIR` resolves /usr/lib, /run and /etc crrules/rules.d under DIR"),
            );
            return Policy::default();
        }
    }
    // File name -> every candidate of that name, lowest precedence first.
    let mut by_name: BTreeMap<String, Vec<(Layer, Candidate)>> = BTreeMap::new();
    for (layer, dir) in DIRECTORIES {
        let dir = root.join(dir);
        let names = match trust::list(&dir, lookup.require_owner) {
            Ok(Some(names)) => names,
            Ok(None) => continue,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        for name in names.into_iter().filter(is_rule_file) {
            let path = dir.join(&name);
            by_name.entry(name.to_string_lossy().into_owned()).or_default().push((layer, Candidate::File(path)));
        }
    }
    // The built-in files are the distribution's when the distribution installed none.
    let distribution_empty = !by_name.values().flatten().any(|(layer, _)| *layer == Layer::Distribution);
    if distribution_empty {
        for &(name, text) in builtin {
            by_name.entry(name.to_owned()).or_default().insert(0, (Layer::Builtin, Candidate::Builtin { name, text }));
        }
    }
    let mut policy = Policy::default();
    for versions in by_name.into_values() {
        let (top_layer, top) = versions.last().cloned().expect("every name has a candidate");
        // The top file's bytes: read (and checked) once, to tell a mask and to compile.
        let bytes = match &top {
            Candidate::File(p) if is_null_link(p) => Some(Vec::new()),
            Candidate::File(p) => trust::read(p, lookup.require_owner).map_err(|d| errors.push(d)).ok(),
            Candidate::Builtin { .. } => None,
        };
        let top_is_mask = bytes.as_ref().is_some_and(Vec::is_empty);
        let by = top.path();
        for (layer, candidate) in &versions[..versions.len() - 1] {
            let status =
                if top_is_mask { Status::Masked { by: by.clone() } } else { Status::Overridden { by: by.clone() } };
            policy.files.push(PolicyFile { path: candidate.path(), layer: *layer, status });
        }
        if top_is_mask {
            policy.files.push(PolicyFile { path: by, layer: top_layer, status: Status::Mask });
            continue;
        }
        match (&top, bytes) {
            (Candidate::Builtin { name, text }, _) => policy.add(Source::new(builtin_name(name), *text), by, top_layer),
            (Candidate::File(_), Some(bytes)) => policy.add_file(by, top_layer, bytes),
            (Candidate::File(_), None) => {}
        }
    }
    policy
}

impl Policy {
    /// Adds an active file's text.
    fn add(&mut self, source: Source, path: PathBuf, layer: Layer) {
        self.sources.push(source);
        self.files.push(PolicyFile { path, layer, status: Status::Active });
    }

    /// Adds an active file from its bytes; one that is not UTF-8 is listed with its error.
    fn add_file(&mut self, path: PathBuf, layer: Layer, bytes: Vec<u8>) {
        match Source::from_bytes(path.display().to_string(), bytes) {
            Ok(source) => self.add(source, path, layer),
            Err(d) => {
                self.diagnostics.push(d);
                self.files.push(PolicyFile { path, layer, status: Status::Active });
            }
        }
    }
}

/// A name that counts as a rule file in a directory: `*.rules`, not hidden.
fn is_rule_file(name: &OsString) -> bool {
    name.to_str().is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
}

fn from_explicit(lookup: &Lookup, errors: &mut Vec<Diagnostic>) -> Policy {
    let owner = lookup.require_owner;
    let mut policy = Policy::default();
    for path in &lookup.explicit {
        let found = match trust::resolve(path, owner) {
            Ok(found) => found,
            Err(miss) => {
                errors.push(miss.diagnostic(path));
                continue;
            }
        };
        if !found.meta.is_dir() {
            match trust::read_found(path, &found, owner) {
                Ok(bytes) => policy.add_file(path.clone(), Layer::Explicit, bytes),
                Err(d) => errors.push(d),
            }
            continue;
        }
        let mut names = match trust::list_found(path, &found, owner) {
            Ok(names) => names,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        names.retain(is_rule_file);
        names.sort();
        for name in names {
            let file = path.join(name);
            match trust::read(&file, owner) {
                Ok(bytes) => policy.add_file(file, Layer::Explicit, bytes),
                Err(d) => errors.push(d),
            }
        }
    }
    policy
}

/// True when `path` is a symlink to `/dev/null` (a mask, whatever `/dev/null` is; an empty file is one
/// too, told once read).
fn is_null_link(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|target| target == Path::new("/dev/null"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    /// Where trees go: as root, a directory only root can write (a policy path may not go through `/tmp`).
    pub(crate) fn base() -> PathBuf {
        if !nix::unistd::geteuid().is_root() {
            return std::env::temp_dir();
        }
        let base = PathBuf::from("/run/crrules-tests");
        let _ = fs::create_dir(&base);
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(fs::symlink_metadata(&base).unwrap().uid(), 0);
        base
    }

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = base().join(format!("crrules-policy-{}-{n}", std::process::id()));
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
    fn builtin_files_stand_in_for_the_distribution_directory() {
        let builtin: Builtin = &[("10-a.rules", "any => close\n"), ("20-b.rules", "pipe => close\n")];
        let names = |p: &Policy| p.sources.iter().map(|s| s.name.to_string()).collect::<Vec<_>>();
        // No directory at all: the built-in files are the policy.
        let empty = tree(&[("etc/crrules/rules.d/README", "x")]);
        let policy = load(&Lookup { root: Some(empty.clone()), ..Lookup::default() }, builtin).unwrap();
        assert_eq!(names(&policy), ["<builtin>/10-a.rules", "<builtin>/20-b.rules"]);
        fs::remove_dir_all(empty).unwrap();
        // A site file adds to them, a same-named one replaces one, an empty one masks one.
        let site = tree(&[
            ("etc/crrules/rules.d/05-site.rules", "fifo => close\n"),
            ("etc/crrules/rules.d/10-a.rules", ""),
            ("run/crrules/rules.d/20-b.rules", "pipe => recreate\n"),
        ]);
        let policy = load(&Lookup { root: Some(site.clone()), ..Lookup::default() }, builtin).unwrap();
        let at = |p: &str| site.join(p).display().to_string();
        assert_eq!(names(&policy), [at("etc/crrules/rules.d/05-site.rules"), at("run/crrules/rules.d/20-b.rules")]);
        let status =
            |p: &str| policy.files.iter().find(|f| f.path == Path::new(p)).map(|f| (f.layer, f.status.clone()));
        assert_eq!(
            status("<builtin>/10-a.rules"),
            Some((Layer::Builtin, Status::Masked { by: site.join("etc/crrules/rules.d/10-a.rules") }))
        );
        assert_eq!(
            status("<builtin>/20-b.rules"),
            Some((Layer::Builtin, Status::Overridden { by: site.join("run/crrules/rules.d/20-b.rules") }))
        );
        fs::remove_dir_all(site).unwrap();
        // A distribution that installed its files replaces the built-in ones whole.
        let dist = tree(&[("usr/lib/crrules/rules.d/50-x.rules", "pipe => close\n")]);
        let policy = load(&Lookup { root: Some(dist.clone()), ..Lookup::default() }, builtin).unwrap();
        assert_eq!(names(&policy), [dist.join("usr/lib/crrules/rules.d/50-x.rules").display().to_string()]);
        assert!(policy.files.iter().all(|f| f.layer != Layer::Builtin));
        fs::remove_dir_all(dist).unwrap();
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let lookup = Lookup { root: Some(PathBuf::from("/nonexistent/crrules-root")), ..Lookup::default() };
        let errors = load(&lookup, BUILTIN).unwrap_err();
        assert_eq!(errors[0].message, "policy root `/nonexistent/crrules-root` does not exist or is not a directory");
    }

    #[test]
    fn usable_refuses_an_empty_policy() {
        let root = tree(&[
            ("etc/crrules/rules.d/10-devices.rules", ""),
            ("etc/crrules/rules.d/20-files.rules", ""),
            ("etc/crrules/rules.d/30-ipc.rules", ""),
        ]);
        let errors = usable(&Lookup { root: Some(root.clone()), ..Lookup::default() }).unwrap_err();
        assert!(errors[0].message.starts_with("the effective policy has no rule"), "{}", errors[0].message);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn root_refuses_files_others_can_write() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (to give a file to another user)");
            return;
        }
        let root = tree(&[
            ("etc/crrules/rules.d/10-x.rules", "pipe => close\n"),
            ("etc/crrules/rules.d/20-y.rules", "fifo => close\n"),
        ]);
        let file = root.join("etc/crrules/rules.d/10-x.rules");
        let shown = file.display();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let lookup = |owner| Lookup { root: Some(root.clone()), require_owner: Some(owner), ..Lookup::default() };
        let errors = load(&lookup(0), &[]).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].code, "crrules::policy::writable");
        assert_eq!(errors[0].message, format!("policy path `{shown}` is writable by group and others (mode 666)"));
        assert!(errors[0].help.as_deref().unwrap().ends_with(&format!("run `chmod go-w {shown}`")));
        // Another user's file: refused unless that user is the one required (root's files always do).
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let errors = load(&lookup(0), &[]).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].code, "crrules::policy::owner");
        assert_eq!(errors[0].message, format!("policy path `{shown}` is owned by uid 65534, not by root"));
        assert!(
            errors[0].help.as_deref().unwrap().ends_with(&format!("run `chown root {shown}` if you trust its owner"))
        );
        let policy = load(&lookup(65534), &[]).unwrap();
        assert_eq!(policy.sources.len(), 2);
        let errors = load(&lookup(1000), &[]).unwrap_err();
        assert!(errors[0].message.ends_with("is owned by uid 65534, not by root or uid 1000"), "{}", errors[0].message);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_empty_file_masks_once_read_and_a_file_not_utf8_is_a_finding_in_it() {
        let root = tree(&[
            ("usr/lib/crrules/rules.d/10-a.rules", "pipe => close\n"),
            ("etc/crrules/rules.d/10-a.rules", ""),
            ("etc/crrules/rules.d/20-b.rules", "any => close # caf\u{e9}\n"),
        ]);
        let latin1 = root.join("etc/crrules/rules.d/20-b.rules");
        fs::write(&latin1, b"any => close # caf\xe9\n").unwrap();
        let policy = load(&Lookup { root: Some(root.clone()), ..Lookup::default() }, &[]).unwrap();
        assert!(policy.sources.is_empty(), "{:?}", policy.sources);
        let status = |p: &str| policy.files.iter().find(|f| f.path == root.join(p)).map(|f| f.status.clone());
        assert_eq!(status("etc/crrules/rules.d/10-a.rules"), Some(Status::Mask));
        assert_eq!(status("etc/crrules/rules.d/20-b.rules"), Some(Status::Active));
        let [d] = &policy.diagnostics[..] else { panic!("{:?}", policy.diagnostics) };
        assert_eq!(d.message, format!("`{}` is not valid UTF-8: byte offset 18 (line 1) is 0xe9", latin1.display()));
        assert_eq!(d.source.as_ref().map(|s| s.name()), Some(&*latin1.display().to_string()));
        assert_eq!(d.underlined(), Some("\u{fffd}"));
        // `usable` refuses it like any error in the policy.
        let errors = usable(&Lookup { root: Some(root.clone()), ..Lookup::default() }).unwrap_err();
        assert_eq!(errors[0].code, "crrules::source::invalid_utf8");
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
