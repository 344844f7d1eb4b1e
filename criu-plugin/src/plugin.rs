//! The plugin's work, in safe Rust and callable without CRIU: [`Plugin::dump`] reads the facts of the fd
//! CRIU hands over, decides it with the effective policy (loaded at the first call, so a CRIU run that never
//! offers the plugin an fd never reads a policy file) and, for a `reopen` decision, saves a record in
//! CRIU's image directory; [`Plugin::restore`] reads that record back, opens the path, verifies it and
//! seeks. Errors are errno values, as CRIU takes them: `ENOTSUP` declines (the next plugin, or CRIU's own
//! error, speaks), anything else fails CRIU's dump or restore.

use crate::host::{Host, Level};
use crate::record::{self, ExtRecord};
use crrules_engine::facts::{FdFacts, OpenFlags};
use crrules_engine::image::Restore;
use crrules_engine::plan::{Decider, Decision};
use crrules_engine::{dump, restore, scan};
use crrules_rules::Action;
use crrules_rules::diag::Diagnostic;
use crrules_rules::policy::{self, Lookup};
use crrules_rules::vocab::Kind;
use nix::errno::Errno;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// The environment variable naming a root under which the plugin finds the policy directories
/// (`/usr/lib`, `/run`, `/etc` `crrules/rules.d`), as `crrules --root DIR` does: for tests, and for sites
/// that keep the policy CRIU follows apart from the host's.
pub const ROOT_ENV: &str = "CRRULES_ROOT";

/// The plugin's state between CRIU's `init` and `exit`.
#[derive(Debug)]
pub struct Plugin {
    lookup: Lookup,
    /// `None` until the first dump call; then the decider, or `Err` when the policy could not be loaded
    /// (said once in CRIU's log).
    decider: Option<Result<Decider, ()>>,
}

impl Plugin {
    /// A plugin that will load the policy `lookup` finds.
    pub fn new(lookup: Lookup) -> Plugin {
        Plugin { lookup, decider: None }
    }

    /// A plugin that will load the effective policy of the host, or of the root [`ROOT_ENV`] names: the
    /// same lookup the `crrules` binary makes (as root, policy files anyone but root could write are
    /// refused).
    pub fn from_env() -> Plugin {
        let root = std::env::var_os(ROOT_ENV).filter(|r| !r.is_empty()).map(PathBuf::from);
        Plugin::new(Lookup::system(root, Vec::new()))
    }

    /// True once the policy was loaded (or failed to load).
    pub fn policy_loaded(&self) -> bool {
        self.decider.is_some()
    }

    /// `DUMP_EXT_FILE`: decides `fd` (CRIU's own duplicate of the fd of file id `id`). `Ok` when the plugin
    /// saved it for a `reopen`; `Err(ENOTSUP)` for any other decision, with the rule's reason logged.
    pub fn dump(&mut self, host: &dyn Host, fd: BorrowedFd<'_>, id: u32) -> Result<(), Errno> {
        let facts = scan::facts_of_own_fd(fd).map_err(|e| {
            host.log(Level::Error, &format!("crrules: file {id:#x}: cannot read its facts: {e}"));
            Errno::ENOTSUP
        })?;
        let shown = describe(&facts);
        let Some(decider) = self.decider(host) else {
            host.log(
                Level::Warn,
                &format!("crrules: file {id:#x} ({shown}): declined, the policy could not be loaded"),
            );
            return Err(Errno::ENOTSUP);
        };
        let decision = decider.decide(&facts);
        let rule = decision.rule.as_deref().unwrap_or("no rule");
        let open = match &decision.action {
            // CRIU dumps FIFOs itself; a FIFO's `reopen path` promises its bytes, which only CRIU's own dump
            // (or crrules' fd-table backend) saves.
            Action::ReopenPath { .. } if facts.kind == Kind::Fifo => {
                Err("a FIFO's bytes are saved by CRIU itself".into())
            }
            Action::ReopenPath { exact } => dump::reopen_of(&facts, *exact, None),
            Action::ReopenSubst { path } => dump::reopen_of(&facts, false, Some(path)),
            action => {
                host.log(
                    Level::Warn,
                    &format!("crrules: file {id:#x} ({shown}): {rule} decides {}", declined(action, &decision)),
                );
                return Err(Errno::ENOTSUP);
            }
        };
        let (path, flags, pos, expect) = match open {
            Ok(Restore::Open { path, flags, pos, expect }) => (path, flags, pos, expect),
            Ok(_) => return Err(Errno::ENOTSUP),
            Err(why) => {
                host.log(
                    Level::Warn,
                    &format!("crrules: file {id:#x} ({shown}): {rule} decides {}, but {why}", decision.action),
                );
                return Err(Errno::ENOTSUP);
            }
        };
        let record = ExtRecord {
            format: record::FORMAT.into(),
            version: record::VERSION,
            id,
            kind: facts.kind,
            link: facts.link.clone(),
            path,
            flags: OpenFlags(flags),
            pos,
            expect,
            decision: (*decision).clone(),
        };
        let Some(dir) = host.image_dir() else {
            host.log(Level::Error, &format!("crrules: file {id:#x} ({shown}): CRIU gave no image directory"));
            return Err(Errno::EBADF);
        };
        record::write(dir, &record).map_err(|e| {
            let name = record::file_name(id);
            host.log(Level::Error, &format!("crrules: file {id:#x} ({shown}): cannot write {name}: {e}"));
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
        })?;
        host.log(Level::Info, &format!("crrules: file {id:#x} ({shown}) saved for {} by {rule}", decision.action));
        Ok(())
    }

    /// `RESTORE_EXT_FILE`: brings back file id `id` from its record, opened, verified and at its offset.
    /// `Err(ENOTSUP)` when there is no record (the file is another plugin's).
    pub fn restore(&self, host: &dyn Host, id: u32) -> Result<OwnedFd, Errno> {
        let Some(dir) = host.image_dir() else {
            host.log(Level::Error, &format!("crrules: file {id:#x}: CRIU gave no image directory"));
            return Err(Errno::EBADF);
        };
        let record = match record::read(dir, id) {
            Ok(Some(record)) => record,
            Ok(None) => return Err(Errno::ENOTSUP),
            Err(why) => {
                host.log(Level::Error, &format!("crrules: file {id:#x}: {why}"));
                return Err(Errno::EINVAL);
            }
        };
        let fd = restore::open_verified(record.path.as_bytes(), record.flags.0, record.pos, &record.expect).map_err(
            |e| {
                host.log(Level::Error, &format!("crrules: file {id:#x}: {e}"));
                Errno::from_raw(e.errno())
            },
        )?;
        let rule = record.decision.rule.as_deref().unwrap_or("no rule");
        host.log(
            Level::Info,
            &format!(
                "crrules: file {id:#x} ({}) reopened at offset {} as {rule} decided",
                record.path.escaped(),
                record.pos
            ),
        );
        Ok(fd)
    }

    /// The decider, loading the policy at the first call; `None` when it could not be loaded.
    fn decider(&mut self, host: &dyn Host) -> Option<&Decider> {
        let lookup = &self.lookup;
        self.decider
            .get_or_insert_with(|| match policy::usable(lookup) {
                Ok((_, rules)) => Ok(Decider::new(rules)),
                Err(errors) => {
                    for e in &errors {
                        host.log(Level::Error, &format!("crrules: the policy cannot be loaded: {}", diagnostic(e)));
                    }
                    Err(())
                }
            })
            .as_ref()
            .ok()
    }
}

/// How an fd is named in the log: its path (or link text) and a device's number.
fn describe(f: &FdFacts) -> String {
    let name = f.path.as_ref().unwrap_or(&f.link).escaped().into_owned();
    match f.dev {
        Some(dev) => format!("{name} {dev}"),
        None => name,
    }
}

/// `ACTION: REASON` for a decision the plugin declines.
fn declined(action: &Action, decision: &Decision) -> String {
    let what = match action {
        Action::Reject { .. } => "reject".to_owned(),
        other => other.to_string(),
    };
    match decision.reason() {
        Some(reason) => format!("{what}: {reason}"),
        None => format!("{what}, which the CRIU plugin does not do (it only reopens)"),
    }
}

/// A policy diagnostic on one line: `FILE:LINE: message (help)`.
fn diagnostic(d: &Diagnostic) -> String {
    let mut out = String::new();
    if let Some(source) = &d.source {
        out.push_str(source.name());
        if let Some(span) = d.primary_span() {
            let line = 1 + source.text.get(..span.start).map_or(0, |t| t.matches('\n').count());
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
    }
    out.push_str(&d.message);
    if let Some(help) = &d.help {
        out.push_str(&format!(" ({help})"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::fd::AsFd;

    struct Fake {
        dir: std::fs::File,
        lines: RefCell<Vec<(Level, String)>>,
    }

    impl Host for Fake {
        fn image_dir(&self) -> Option<BorrowedFd<'_>> {
            Some(self.dir.as_fd())
        }
        fn log(&self, level: Level, message: &str) {
            self.lines.borrow_mut().push((level, message.to_owned()));
        }
    }

    fn scratch(name: &str) -> (PathBuf, Fake) {
        let path = std::env::temp_dir().join(format!("crrules-plugin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let dir = std::fs::File::open(&path).unwrap();
        (path, Fake { dir, lines: RefCell::default() })
    }

    fn rules(path: &std::path::Path, text: &str) -> Plugin {
        let file = path.join("site.rules");
        std::fs::write(&file, text).unwrap();
        Plugin::new(Lookup { explicit: vec![file], ..Lookup::default() })
    }

    #[test]
    fn the_policy_is_loaded_at_the_first_dump_only() {
        let (path, host) = scratch("lazy");
        let mut plugin = rules(&path, "chardev 1:3 => reopen path\n");
        assert!(!plugin.policy_loaded());
        assert_eq!(plugin.restore(&host, 1).unwrap_err(), Errno::ENOTSUP);
        assert!(!plugin.policy_loaded(), "a restore reads no policy");
        let null = std::fs::File::open("/dev/null").unwrap();
        plugin.dump(&host, null.as_fd(), 1).unwrap();
        assert!(plugin.policy_loaded());
        let lines = host.lines.borrow();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let (level, text) = &lines[0];
        assert_eq!(*level, Level::Info);
        assert!(text.starts_with("crrules: file 0x1 (/dev/null 1:3) saved for reopen path by "), "{text}");
        assert!(text.ends_with("site.rules:1"), "{text}");
        std::fs::remove_dir_all(path).unwrap();
    }

    #[test]
    fn a_broken_policy_declines_every_fd_and_says_why_once() {
        let (path, host) = scratch("broken");
        let mut plugin = rules(&path, "chardev 1:3 => reopen path\nnonsense here\n");
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(plugin.dump(&host, null.as_fd(), 1).unwrap_err(), Errno::ENOTSUP);
        assert_eq!(plugin.dump(&host, null.as_fd(), 2).unwrap_err(), Errno::ENOTSUP);
        let lines = host.lines.borrow();
        let errors: Vec<_> = lines.iter().filter(|(l, _)| *l == Level::Error).collect();
        assert_eq!(errors.len(), 1, "{lines:?}");
        assert!(errors[0].1.starts_with("crrules: the policy cannot be loaded: "), "{}", errors[0].1);
        assert!(errors[0].1.contains("site.rules:2: "), "{}", errors[0].1);
        assert_eq!(lines.iter().filter(|(_, t)| t.contains("declined, the policy could not be loaded")).count(), 2);
        assert!(
            std::fs::read_dir(&path).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".json"))
        );
        std::fs::remove_dir_all(path).unwrap();
    }

    #[test]
    fn a_substitute_is_reopened_without_identity_checks() {
        let (path, host) = scratch("subst");
        let mut plugin = rules(&path, "chardev 1:3 => reopen \"/dev/zero\" because \"tests\"\n");
        let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").unwrap();
        plugin.dump(&host, null.as_fd(), 9).unwrap();
        let fd = plugin.restore(&host, 9).unwrap();
        let st = nix::sys::stat::fstat(&fd).unwrap();
        assert_eq!(crrules_engine::facts::DevNum::from_dev_t(st.st_rdev).to_string(), "1:5");
        let record = record::read(host.dir.as_fd(), 9).unwrap().unwrap();
        assert_eq!((record.path.as_bytes(), record.expect.dev), (&b"/dev/zero"[..], None));
        std::fs::remove_dir_all(path).unwrap();
    }
}
