//! The plugin's own image file: CRIU records only `{type EXT, id}` for an fd a plugin dumped, so what a
//! restore needs (path, kind, file type, `major:minor`, open flags, offset, and the decision with its rule)
//! is in `crrules-ext-<ID>.json` beside CRIU's images, one JSON object per file id. Written and read
//! relative to CRIU's image directory fd, never following a symlink.

use crrules_engine::facts::{ByteString, OpenFlags};
use crrules_engine::image::Identity;
use crrules_engine::plan::Decision;
use crrules_rules::vocab::Kind;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;

/// `format` in every record.
pub const FORMAT: &str = "crrules-criu-ext";
/// The record layout this build writes and reads; a reader refuses any other.
pub const VERSION: u32 = 1;
/// The largest record read back (a path is at most 4 KiB; the rest is small).
const MAX_BYTES: u64 = 1 << 20;

/// The record's file name for CRIU's file id `id` (in decimal).
pub fn file_name(id: u32) -> String {
    format!("crrules-ext-{id}.json")
}

/// One fd the plugin dumped, and how it comes back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtRecord {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for this build.
    pub version: u32,
    /// CRIU's file id (unique per open file description).
    pub id: u32,
    /// The fd's kind, as the policy saw it.
    pub kind: Kind,
    /// The fd's link text at the dump (`/dev/kvm`), byte for byte.
    pub link: ByteString,
    /// The path restore opens: the fd's own, or a `reopen "SUBST"` substitute.
    pub path: ByteString,
    /// The access mode and status flags to open it with (never close-on-exec).
    pub flags: OpenFlags,
    /// The offset to seek to.
    pub pos: u64,
    /// What the opened fd must be: `file_type` and, for a device, `dev` (`major:minor`); absent for a
    /// substitute path, which is whatever it is.
    #[serde(flatten)]
    pub expect: Identity,
    /// The decision and the rule (`FILE:LINE`) that made it.
    pub decision: Decision,
}

/// Writes the record into the image directory `dir` as a new file, mode 0600. A record of the same name
/// (left by an earlier dump into the same directory) is replaced: unlinked, then created exclusively, so a
/// symlink planted there is never followed.
pub fn write(dir: BorrowedFd<'_>, record: &ExtRecord) -> std::io::Result<()> {
    let name = file_name(record.id);
    let mut text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let mode = Mode::from_bits_truncate(0o600);
    let fd = match openat(dir, name.as_str(), flags, mode) {
        Err(Errno::EEXIST) => {
            unlinkat(dir, name.as_str(), UnlinkatFlags::NoRemoveDir)?;
            openat(dir, name.as_str(), flags, mode)?
        }
        r => r?,
    };
    std::fs::File::from(fd).write_all(&text)
}

/// True when the image directory `dir` holds a record (or anything of its name) for file id `id`.
pub fn exists(dir: BorrowedFd<'_>, id: u32) -> bool {
    nix::sys::stat::fstatat(dir, file_name(id).as_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
}

/// Reads the record of file id `id` from the image directory `dir`; `None` when there is none (the file
/// was dumped by another plugin).
pub fn read(dir: BorrowedFd<'_>, id: u32) -> Result<Option<ExtRecord>, String> {
    let name = file_name(id);
    let fd = match openat(dir, name.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot open {name}: {}", std::io::Error::from(e))),
    };
    let mut text = Vec::new();
    std::fs::File::from(fd).take(MAX_BYTES).read_to_end(&mut text).map_err(|e| format!("cannot read {name}: {e}"))?;
    let record: ExtRecord =
        serde_json::from_slice(&text).map_err(|e| format!("{name} is not a crrules record: {e}"))?;
    if record.format != FORMAT || record.version != VERSION {
        return Err(format!(
            "{name} is a `{}` record of version {}, not `{FORMAT}` version {VERSION}",
            record.format, record.version
        ));
    }
    if record.id != id {
        return Err(format!("{name} is the record of file id {}", record.id));
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crrules_engine::facts::{DevNum, FileType};
    use crrules_rules::Action;
    use std::os::fd::AsFd;

    fn record(id: u32) -> ExtRecord {
        ExtRecord {
            format: FORMAT.into(),
            version: VERSION,
            id,
            kind: Kind::Chardev,
            link: "/dev/kvm".into(),
            path: "/dev/kvm".into(),
            flags: OpenFlags(libc::O_RDWR as u32),
            pos: 0,
            expect: Identity {
                file_type: Some(FileType::Char),
                dev: Some(DevNum { major: 10, minor: 232 }),
                inode: None,
                size: None,
            },
            decision: Decision {
                action: Action::ReopenPath { exact: false },
                rule: Some("site.rules:1".into()),
                note: None,
            },
        }
    }

    fn scratch(name: &str) -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("crrules-record-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        let dir = std::fs::File::open(&path).unwrap();
        (path, dir)
    }

    #[test]
    fn records_round_trip_in_their_documented_shape() {
        let (path, dir) = scratch("round");
        write(dir.as_fd(), &record(7)).unwrap();
        let text = std::fs::read_to_string(path.join("crrules-ext-7.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "format": "crrules-criu-ext", "version": 1, "id": 7, "kind": "chardev",
                "link": "/dev/kvm", "path": "/dev/kvm", "flags": ["O_RDWR"], "pos": 0,
                "file_type": "char", "dev": "10:232",
                "decision": {"action": "reopen", "rule": "site.rules:1"}
            })
        );
        assert_eq!(read(dir.as_fd(), 7).unwrap(), Some(record(7)));
        assert_eq!(read(dir.as_fd(), 8).unwrap(), None);
        // An earlier dump's record is replaced, never written through.
        let mut again = record(7);
        again.pos = 5;
        write(dir.as_fd(), &again).unwrap();
        assert_eq!(read(dir.as_fd(), 7).unwrap().unwrap().pos, 5);
        std::fs::remove_dir_all(path).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_followed_and_bad_records_are_refused() {
        let (path, dir) = scratch("bad");
        let target = path.join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, path.join("crrules-ext-3.json")).unwrap();
        write(dir.as_fd(), &record(3)).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(path.join("crrules-ext-3.json")).unwrap().is_symlink());
        std::fs::write(path.join("crrules-ext-4.json"), "{").unwrap();
        assert!(read(dir.as_fd(), 4).unwrap_err().starts_with("crrules-ext-4.json is not a crrules record"));
        std::fs::copy(path.join("crrules-ext-3.json"), path.join("crrules-ext-5.json")).unwrap();
        assert_eq!(read(dir.as_fd(), 5).unwrap_err(), "crrules-ext-5.json is the record of file id 3");
        std::fs::remove_dir_all(path).unwrap();
    }
}
