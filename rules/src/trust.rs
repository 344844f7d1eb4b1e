//! Reading policy files, which decide what a restore may open, as the hostile paths they may be. A path is
//! walked from `/` one component at a time, symbolic links resolved here (each target walked the same
//! way); when an owner is required (crrules running as root), every directory on the way, every link's
//! target and the file itself must belong to root (or that owner) and be writable by no one else, as
//! OpenSSH requires of its configuration. Only regular files are read, opened without blocking and
//! without following a last link (what was checked is what is read), up to [`MAX_FILE`] bytes.
//!
//! A sticky directory writable by others, such as `/tmp`, is refused on the way too, as OpenSSH refuses
//! it: the sticky bit keeps others from replacing root's entries, not from creating names, and a name root
//! has not created yet (or that a cleaner removed) can become a link to any file root owns.
//!
//! [`judge`], the owner-and-mode rule itself, is public: the engine holds the directories above an image
//! to it, with its own answer on the sticky bit (the image directory exists and is root's, so no name is
//! left for anyone to create).
#![expect(clippy::result_large_err, reason = "a refusal is rare, and its diagnostic goes straight into a list of them")]

use crate::diag::Diagnostic;
use std::ffi::OsString;
use std::fs::{self, FileType, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The largest policy file read: 16 MiB (a policy is a few kilobytes of text).
pub const MAX_FILE: u64 = 16 << 20;

/// Symbolic links followed for one path before giving up, as many as the kernel follows.
const MAX_LINKS: usize = 40;

/// Where a path leads, every component on the way checked.
#[derive(Debug)]
pub(crate) struct Found {
    /// The physical path of the last component (no symbolic link in it).
    pub(crate) path: PathBuf,
    /// The last component's own metadata (a link there was followed, so this is never a link).
    pub(crate) meta: Metadata,
    /// The last symbolic link followed on the way, for messages.
    via: Option<PathBuf>,
}

impl Found {
    fn at(&self) -> At<'_> {
        At { path: &self.path, via: self.via.as_deref(), last: true }
    }
}

/// Why a path cannot be used.
#[derive(Debug)]
pub(crate) enum Miss {
    /// It, or a directory on the way, does not exist: for a policy directory, nothing to read.
    Absent(io::Error),
    /// Anything else, said as a diagnostic.
    Refused(Diagnostic),
}

impl Miss {
    /// The diagnostic, for a path that has to exist.
    pub(crate) fn diagnostic(self, shown: &Path) -> Diagnostic {
        match self {
            Miss::Absent(e) => unreadable(shown, &e),
            Miss::Refused(d) => d,
        }
    }
}

/// One step of a walk.
enum Step {
    Up,
    Name(OsString),
}

/// The steps of `path`, last first (to be popped), and whether it is absolute.
fn steps(path: &Path) -> (bool, Vec<Step>) {
    let mut steps = Vec::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::ParentDir => steps.push(Step::Up),
            Component::Normal(name) => steps.push(Step::Name(name.to_owned())),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    steps.reverse();
    (absolute, steps)
}

/// Walks `shown` (as the user wrote it; relative to the working directory) from `/`, resolving symbolic
/// links here: with `owner`, every directory passed through must be root's (or `owner`'s) and writable by
/// no one else. The last component is returned unchecked, for the caller to check as what it needs.
pub(crate) fn resolve(shown: &Path, owner: Option<u32>) -> Result<Found, Miss> {
    let io = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => Miss::Absent(e),
        _ => Miss::Refused(unreadable(shown, &e)),
    };
    let (absolute, mut pending) = steps(shown);
    if !absolute {
        let cwd = std::env::current_dir().map_err(io)?;
        let (_, mut from_cwd) = steps(&cwd);
        // The working directory's steps come first, so they are popped first: under the path's own.
        pending.append(&mut from_cwd);
    }
    let mut at = PathBuf::from("/");
    let mut via = None;
    let mut links = 0;
    let mut meta = fs::symlink_metadata(&at).map_err(io)?;
    check(shown, &At { path: &at, via: None, last: false }, &meta, owner).map_err(Miss::Refused)?;
    while let Some(step) = pending.pop() {
        let name = match step {
            Step::Up => {
                // `at` holds no link, so its parent is the physical `..`, already checked.
                at.pop();
                meta = fs::symlink_metadata(&at).map_err(io)?;
                continue;
            }
            Step::Name(name) => name,
        };
        let next = at.join(&name);
        let here = fs::symlink_metadata(&next).map_err(io)?;
        if here.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Miss::Refused(unreadable(shown, &io::Error::from_raw_os_error(nix::libc::ELOOP))));
            }
            // The link sits in `at`, checked: only whom `at` trusts could have made it.
            let target = fs::read_link(&next).map_err(io)?;
            let (absolute, mut more) = steps(&target);
            if absolute {
                at = PathBuf::from("/");
                meta = fs::symlink_metadata(&at).map_err(io)?;
            }
            pending.append(&mut more);
            via = Some(next);
            continue;
        }
        if pending.is_empty() {
            return Ok(Found { path: next, meta: here, via });
        }
        check(shown, &At { path: &next, via: via.as_deref(), last: false }, &here, owner).map_err(Miss::Refused)?;
        at = next;
        meta = here;
    }
    // `/` itself, or a path ending in `..`: a directory already checked.
    Ok(Found { path: at, meta, via })
}

/// How a file or directory fails [`judge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untrusted {
    /// Owned by someone other than root and the owner crrules trusts.
    Owner,
    /// Writable by its group or by others (`mode & 0o022`), sticky or not: the caller decides what the
    /// sticky bit is worth where it stands.
    Writable,
}

/// The rule every component that can redirect a trusted read is held to, here for policy paths and in
/// the engine for the directories above an image: owned by root or by `owner` (the uid crrules runs as),
/// and writable by no one else. `mode` is the `st_mode`.
pub fn judge(uid: u32, mode: u32, owner: u32) -> Result<(), Untrusted> {
    if uid != 0 && uid != owner {
        Err(Untrusted::Owner)
    } else if mode & 0o022 != 0 {
        Err(Untrusted::Writable)
    } else {
        Ok(())
    }
}

/// Who [`judge`] trusts to own a component, in words: `root`, or `root or uid N`.
pub fn trusted_owners(owner: u32) -> String {
    if owner == 0 { "root".to_owned() } else { format!("root or uid {owner}") }
}

/// Refuses a component that someone other than root (or `owner`) owns or could write. No check without
/// an owner (crrules not running as root).
fn check(shown: &Path, at: &At<'_>, meta: &Metadata, owner: Option<u32>) -> Result<(), Diagnostic> {
    let Some(owner) = owner else { return Ok(()) };
    let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
    let whose = trusted_owners(owner);
    let subject = subject(shown, at);
    let component = at.path;
    let component = component.display();
    let why = match judge(uid, mode, owner) {
        Ok(()) => return Ok(()),
        Err(why) => why,
    };
    if why == Untrusted::Owner {
        return Err(Diagnostic::error(
            "crrules::policy::owner",
            format!("{subject} owned by uid {uid}, not by {whose}"),
        )
        .with_help(format!(
            "a rule file decides what a restore may open, so only {whose} may be able to change it or the \
                 directories and links that lead to it; run `chown root {component}` if you trust its owner"
        )));
    }
    let message = format!("{subject} writable by {} (mode {mode:o})", who_can_write(mode));
    let help = if mode & 0o1002 == 0o1002 {
        format!(
            "`{component}` is shared (sticky, and writable by others): anyone may create a name in it, so no \
             policy path may go through it; keep policies in a directory only {whose} can write, such as \
             /etc/crrules/rules.d"
        )
    } else {
        format!("a rule file decides what a restore may open; run `chmod go-w {component}`")
    };
    Err(Diagnostic::error("crrules::policy::writable", message).with_help(help))
}

/// A component checked: its physical path, the last link followed to reach it, and whether it is the
/// path's last.
struct At<'a> {
    path: &'a Path,
    via: Option<&'a Path>,
    last: bool,
}

/// How a message names what is wrong: the path itself, or a component on its way.
fn subject(shown: &Path, at: &At<'_>) -> String {
    let path = shown.display();
    let component = at.path.display();
    match at.via {
        None if at.last => format!("policy path `{path}` is"),
        Some(link) => format!(
            "policy path `{path}` leads through the symbolic link `{}` to `{component}`, which is",
            link.display()
        ),
        None => format!("policy path `{path}` goes through `{component}`, which is"),
    }
}

/// Who the mode lets write besides the owner: `its group`, `others` or `group and others`.
pub fn who_can_write(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

/// The `chmod` argument that takes away what [`who_can_write`] names: `g-w`, `o-w` or `go-w`.
pub fn chmod_fix(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "go-w",
        (true, false) => "g-w",
        _ => "o-w",
    }
}

/// The names in the policy directory `shown`, checked like every policy path; `None` when it does not
/// exist.
pub(crate) fn list(shown: &Path, owner: Option<u32>) -> Result<Option<Vec<OsString>>, Diagnostic> {
    let found = match resolve(shown, owner) {
        Ok(found) => found,
        Err(Miss::Absent(_)) => return Ok(None),
        Err(Miss::Refused(d)) => return Err(d),
    };
    list_found(shown, &found, owner).map(Some)
}

/// The names in a directory `resolve` found.
pub(crate) fn list_found(shown: &Path, found: &Found, owner: Option<u32>) -> Result<Vec<OsString>, Diagnostic> {
    check(shown, &found.at(), &found.meta, owner)?;
    let entries = fs::read_dir(&found.path).map_err(|e| unreadable(shown, &e))?;
    Ok(entries.flatten().map(|e| e.file_name()).collect())
}

/// The bytes of the policy file `shown`: a regular file, checked like every policy path, at most
/// [`MAX_FILE`] bytes.
pub(crate) fn read(shown: &Path, owner: Option<u32>) -> Result<Vec<u8>, Diagnostic> {
    let found = resolve(shown, owner).map_err(|m| m.diagnostic(shown))?;
    read_found(shown, &found, owner)
}

/// The bytes of a file `resolve` found.
pub(crate) fn read_found(shown: &Path, found: &Found, owner: Option<u32>) -> Result<Vec<u8>, Diagnostic> {
    // What the walk saw first, so that a FIFO or a device is not even opened.
    if !found.meta.is_file() {
        return Err(not_regular(shown, found.meta.file_type()));
    }
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY;
    let file =
        fs::OpenOptions::new().read(true).custom_flags(flags).open(&found.path).map_err(|e| unreadable(shown, &e))?;
    // Then what was opened: the checks hold for what is read, whatever replaced the path meanwhile.
    let meta = file.metadata().map_err(|e| unreadable(shown, &e))?;
    if !meta.is_file() {
        return Err(not_regular(shown, meta.file_type()));
    }
    check(shown, &found.at(), &meta, owner)?;
    if meta.len() > MAX_FILE {
        return Err(too_large(shown, meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| unreadable(shown, &e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(too_large(shown, bytes.len() as u64));
    }
    Ok(bytes)
}

fn not_regular(shown: &Path, kind: FileType) -> Diagnostic {
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a symbolic link"
    };
    Diagnostic::error(
        "crrules::policy::not_regular",
        format!("policy file `{}` is not a regular file: it is {what}", shown.display()),
    )
    .with_help(
        "policy files are read only when they are regular files; `--rules` also takes a directory of `*.rules` files",
    )
}

fn too_large(shown: &Path, len: u64) -> Diagnostic {
    Diagnostic::error(
        "crrules::policy::too_large",
        format!("policy file `{}` is larger than 16 MiB ({len} bytes)", shown.display()),
    )
    .with_help("a policy is a few kilobytes of rules; check that this is the file you meant")
}

pub(crate) fn unreadable(path: &Path, e: &io::Error) -> Diagnostic {
    Diagnostic::error("crrules::policy::unreadable", format!("cannot read policy path `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fresh directory for one test.
    fn scratch(tag: &str) -> PathBuf {
        let dir = crate::policy::tests::base().join(format!("crrules-trust-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn links_and_dot_dots_resolve_as_the_kernel_resolves_them() {
        let dir = scratch("resolve");
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::write(dir.join("a/b/f.rules"), "any => close\n").unwrap();
        fs::write(dir.join("a/g.rules"), "pipe => close\n").unwrap();
        symlink("a/b", dir.join("l")).unwrap();
        symlink(dir.join("a/b/f.rules"), dir.join("abs.rules")).unwrap();
        symlink("../g.rules", dir.join("a/b/rel.rules")).unwrap();
        let physical = |p: &str| resolve(&dir.join(p), None).map(|f| f.path).map_err(|m| m.diagnostic(Path::new(p)));
        // `..` after a link is the parent of the link's target, as the kernel takes it.
        assert_eq!(physical("l/../g.rules").unwrap(), dir.join("a/g.rules"));
        assert_eq!(physical("./l/./f.rules").unwrap(), dir.join("a/b/f.rules"));
        assert_eq!(physical("abs.rules").unwrap(), dir.join("a/b/f.rules"));
        assert_eq!(physical("l/rel.rules").unwrap(), dir.join("a/g.rules"));
        assert_eq!(fs::read(dir.join("l/rel.rules")).unwrap(), read(&dir.join("l/rel.rules"), None).unwrap());
        // A relative path is walked from the working directory's physical path.
        let cwd = std::env::current_dir().unwrap();
        let up = cwd.components().map(|_| "..").collect::<Vec<_>>().join("/");
        let relative = PathBuf::from(up).join(dir.strip_prefix("/").unwrap()).join("l/f.rules");
        assert_eq!(resolve(&relative, None).unwrap().path, dir.join("a/b/f.rules"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_link_loop_and_a_missing_path_are_said() {
        let dir = scratch("loop");
        symlink("two", dir.join("one")).unwrap();
        symlink("one", dir.join("two")).unwrap();
        let shown = dir.join("one");
        let Err(Miss::Refused(d)) = resolve(&shown, None) else { panic!("a loop resolved") };
        assert_eq!(d.code, "crrules::policy::unreadable");
        assert!(d.message.starts_with(&format!("cannot read policy path `{}`: ", shown.display())), "{}", d.message);
        assert!(d.message.contains("os error 40"), "{}", d.message);
        assert!(matches!(resolve(&dir.join("none/x.rules"), None), Err(Miss::Absent(_))));
        assert_eq!(list(&dir.join("none"), None).unwrap(), None, "a missing policy directory is nothing to read");
        fs::remove_dir_all(dir).unwrap();
    }
}
