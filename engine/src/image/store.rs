//! The fd-table image on disk: [`ImageWriter`] builds one in a private temporary directory and renames it into
//! place only once it is complete and synced; [`Image::open`] reads one back only after checking who owns it,
//! that it holds nothing but regular files, and that every file matches its line in `SHA256SUMS`, all
//! through one fd of its directory, opened once.
//!
//! Integrity rests on the checksums held in memory: the manifest is parsed from the very bytes that were
//! hashed, and [`Image::read_data`] hashes a data file again as it reads it, so a file changed after
//! [`Image::open`] is refused rather than used.
//!
//! As root, the directories above the image are checked too, as OpenSSH's `StrictModes` and sudo check
//! theirs: whoever can change one of them could move the image away and put another root-owned directory
//! (an older image, say) at its name. They are walked from `/` one handle at a time, and the image is read
//! through the last handle, so what was checked is what is read. The writer makes the same walk to the
//! directory it writes in, and writes through handles of the directories it made.

use super::{DATA_DIR, FORMAT, MANIFEST, Manifest, Restore, SUMS, VERSION};
use crate::proc::build;
use crrules_rules::trust::{self, Untrusted};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, fstatat};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The copy buffer of [`ImageWriter::copy_data`] and of hashing on read.
const BUF_SIZE: usize = 64 * 1024;
/// A SHA-256 digest.
type Sum = [u8; 32];

/// Why an image could not be written or read. Every variant names the path or the image file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A system call failed; `op` says what was being done (`read`, `create`, `sync`...).
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// [`ImageWriter::create`]: something is already at the image's place.
    #[error("`{}` already exists and is not an empty directory", path.display())]
    Exists { path: PathBuf },
    /// [`ImageWriter::write_data`]: a name that is not a plain file name.
    #[error("`{name}` is not a data file name: use letters, digits, `.`, `_` and `-` (and not `.` or `..` alone)")]
    DataName { name: String },
    #[error("image damaged: `{file}` does not match its checksum in {SUMS}")]
    Checksum { file: String },
    /// A file listed in `SHA256SUMS` (or `SHA256SUMS` itself) is absent.
    #[error("image incomplete: `{file}` is missing")]
    Missing { file: String },
    /// A file in the image that `SHA256SUMS` does not cover, or a manifest data name that is not a plain
    /// `data/NAME` listed there.
    #[error("image damaged: `{file}` is not covered by {SUMS}")]
    Unlisted { file: String },
    #[error("image damaged: line {line} of {SUMS} is malformed: {why}")]
    Sums { line: usize, why: String },
    #[error("the manifest is not valid: {source}")]
    Manifest {
        #[source]
        source: serde_json::Error,
    },
    #[error("this is not a crrules fd image: its format is `{found}`, not `{FORMAT}`")]
    Format { found: String },
    #[error("the image has manifest version {found}, and this crrules reads versions 1 to {expected}")]
    Version { found: u32, expected: u32 },
    #[error(
        "`{}` is owned by uid {uid}, not by uid {expected} who runs crrules: refusing an image another user could have edited",
        path.display()
    )]
    Owner { path: PathBuf, uid: u32, expected: u32 },
    #[error(
        "`{}` is writable by group or others (mode {mode:#o}): refusing an image another user could have edited",
        path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
    /// A directory above the image (checked as root) that someone else owns or may write; `owner` is the
    /// uid crrules runs as.
    #[error("{}", above_message(path, *uid, *gid, *mode, *why, *owner))]
    Above { path: PathBuf, uid: u32, gid: u32, mode: u32, why: Untrusted, owner: u32 },
    /// A symbolic link on the way to the image (checked as root), pointing at `target`; `real` is the image
    /// path without links, when it resolves.
    #[error(
        "`{}`, on the way to the image, is a symbolic link (to `{}`): as root, crrules reads an image only \
         through a path without symbolic links, as it refuses one at the image itself{}",
        path.display(),
        target.display(),
        real.as_ref().map(|r| format!("; give the path it leads to, `{}`", r.display())).unwrap_or_default()
    )]
    LinkAbove { path: PathBuf, target: PathBuf, real: Option<PathBuf> },
    /// A symlink, FIFO, device, socket or subdirectory inside the image; `found` says which.
    #[error("`{}` is {found}: an image holds only regular files, in its directory and in `{DATA_DIR}/`", path.display())]
    NotRegular { path: PathBuf, found: &'static str },
}

/// The text of [`ImageError::Above`]: the directory, what is wrong with it, its owner and mode, and the fix.
fn above_message(path: &Path, uid: u32, gid: u32, mode: u32, why: Untrusted, owner: u32) -> String {
    let shown = path.display();
    let mode = mode & 0o7777;
    match why {
        Untrusted::Owner => format!(
            "`{shown}`, above the image, is owned by uid {uid}, not by {} (gid {gid}, mode {mode:#o}): its owner \
             could swap the image for another directory; run `chown root {shown}` if you trust uid {uid}",
            trust::trusted_owners(owner)
        ),
        Untrusted::Writable => format!(
            "`{shown}`, above the image, is writable by {} (uid {uid}, gid {gid}, mode {mode:#o}): they could swap \
             the image for another directory; run `chmod {} {shown}`, or `chmod +t` it if others must make \
             entries in it",
            trust::who_can_write(mode),
            trust::chmod_fix(mode)
        ),
    }
}

/// Wraps an `io::Error` with what was being done, and to which path.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io { op, path: path.to_owned(), source }
}

/// An image being written. Nothing appears at its final place before [`ImageWriter::commit`] succeeds; dropped
/// uncommitted, it removes what it wrote.
///
/// Everything goes through directory handles: the parent's (found, as root, by the same walk from `/` that
/// [`Image::open`] makes), the temporary directory's, opened right after it was made and checked to be the
/// one made, and `data/`'s. Another user who can write the parent can therefore not redirect a write by
/// renaming the temporary directory and putting a link to a directory of theirs in its place.
#[derive(Debug)]
pub struct ImageWriter {
    /// The final place, for messages.
    dir: PathBuf,
    /// The final name, in `parent`.
    name: OsString,
    /// The directory holding `dir` (readable: it is synced after the rename).
    parent: OwnedFd,
    /// `.NAME.partial-PID`, in `parent`, where everything is written.
    tmp_name: OsString,
    /// Its path, for messages.
    tmp: PathBuf,
    tmp_fd: OwnedFd,
    data_fd: OwnedFd,
    /// Every file written so far (`data/NAME`, then `manifest.json`) and its digest.
    sums: BTreeMap<String, Sum>,
    committed: bool,
}

impl ImageWriter {
    /// Starts an image to be committed at `dir`: `dir` must not exist, or be an empty directory. Everything is
    /// written in a temporary sibling directory `.NAME.partial-PID` (mode 0700), which must not exist yet.
    ///
    /// With `owner` set (crrules runs as root), the directories from `/` to the one holding `dir` are held
    /// to the rule [`Image::open`] holds them to: no symbolic link on the way, each owned by root or `owner`
    /// and writable by no one else unless sticky.
    pub fn create(dir: &Path, owner: Option<u32>) -> Result<ImageWriter, ImageError> {
        let Some(name) = dir.file_name() else {
            let why = io::Error::new(io::ErrorKind::InvalidInput, "an image directory needs a name, not `..` or `/`");
            return Err(io_err("create the image", dir)(why));
        };
        match fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => match fs::read_dir(dir).map_err(io_err("list", dir))?.next() {
                None => {}
                Some(Ok(_)) => return Err(ImageError::Exists { path: dir.to_owned() }),
                Some(Err(e)) => return Err(io_err("list", dir)(e)),
            },
            Ok(_) => return Err(ImageError::Exists { path: dir.to_owned() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", dir)(e)),
        }
        let parent_path = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let parent = match owner {
            Some(owner) => open_chain(&parent_path, owner, false)?,
            None => open_dir(&parent_path)?,
        };
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".partial-{}", std::process::id()));
        let tmp = parent_path.join(&tmp_name);
        let tmp_fd = make_private_dir(parent.as_fd(), &tmp_name, &tmp)?;
        let remove_tmp = |e: ImageError| {
            let _ = nix::unistd::unlinkat(&parent, tmp_name.as_os_str(), nix::unistd::UnlinkatFlags::RemoveDir);
            e
        };
        let data_path = tmp.join(DATA_DIR);
        let data_fd = make_private_dir(tmp_fd.as_fd(), OsStr::new(DATA_DIR), &data_path).map_err(remove_tmp)?;
        // From here on, Drop removes `tmp` should anything fail.
        Ok(ImageWriter {
            dir: dir.to_owned(),
            name: name.to_owned(),
            parent,
            tmp_name,
            tmp,
            tmp_fd,
            data_fd,
            sums: BTreeMap::new(),
            committed: false,
        })
    }

    /// Writes `bytes` as `data/NAME` (NAME: letters, digits, `.`, `_`, `-`), hashing as it writes; returns the
    /// name the manifest records, `data/NAME`.
    pub fn write_data(&mut self, name: &str, bytes: &[u8]) -> Result<String, ImageError> {
        let rel = data_path(name)?;
        self.write_file(rel, |file, hasher, path| {
            hasher.update(bytes);
            file.write_all(bytes).map_err(io_err("write", path))
        })
    }

    /// Like [`ImageWriter::write_data`], streaming from a reader (for big files) through a 64 KiB buffer;
    /// returns `data/NAME` and the number of bytes copied.
    pub fn copy_data(&mut self, name: &str, from: &mut dyn Read) -> Result<(String, u64), ImageError> {
        let rel = data_path(name)?;
        let mut total = 0u64;
        let rel = self.write_file(rel, |file, hasher, path| {
            let mut buf = vec![0u8; BUF_SIZE];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("read the contents to save as", path)(e)),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err("write", path))?;
                total += n as u64;
            }
        })?;
        Ok((rel, total))
    }

    /// Writes `manifest.json` (compact JSON), then `SHA256SUMS` (lines `HEX  PATH`, sorted by path, covering
    /// `manifest.json` and every data file), syncs the filesystem they are on, renames the temporary
    /// directory to the final one (replacing it when it is an empty directory) and syncs the parent. Until
    /// this returns `Ok` nothing at the final place looks like an image.
    ///
    /// Refuses a manifest this crate could not open again: another format or version, or a data name that
    /// was not written.
    pub fn commit(mut self, manifest: &Manifest) -> Result<(), ImageError> {
        if manifest.format != FORMAT {
            return Err(ImageError::Format { found: manifest.format.clone() });
        }
        if manifest.version != VERSION {
            return Err(ImageError::Version { found: manifest.version, expected: VERSION });
        }
        if let Some(name) = data_names(manifest).find(|name| !self.sums.contains_key(*name)) {
            return Err(ImageError::Unlisted { file: name.to_owned() });
        }
        let mut json = serde_json::to_vec(manifest).map_err(|source| ImageError::Manifest { source })?;
        json.push(b'\n');
        self.write_file(MANIFEST.to_owned(), |file, hasher, path| {
            hasher.update(&json);
            file.write_all(&json).map_err(io_err("write", path))
        })?;
        let sums = render_sums(&self.sums);
        let sums_path = self.tmp.join(SUMS);
        write_new(self.tmp_fd.as_fd(), OsStr::new(SUMS), &sums_path, |file| {
            file.write_all(sums.as_bytes()).map_err(io_err("write", &sums_path))
        })?;
        // One `syncfs` for every file and directory written (thousands of data files, one `fsync` each,
        // took seconds), before the rename makes the image visible.
        nix::unistd::syncfs(&self.tmp_fd).map_err(|e| io_err("sync", &self.tmp)(e.into()))?;
        // The rename is by name: the name must still be the directory written through `tmp_fd`. As root the
        // parent passed the walk (nobody else may change it, or it is sticky), so nothing can come between
        // this check and the rename; in a directory others may change it catches a swap made while the
        // image was written, not one made in between.
        let ours = nix::sys::stat::fstat(&self.tmp_fd).map_err(|e| io_err("read", &self.tmp)(e.into()))?;
        match fstatat(&self.parent, self.tmp_name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(there) if (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino) => {}
            _ => {
                let why = io::Error::other("it was moved or replaced while the image was written");
                return Err(io_err("move the finished image from", &self.tmp)(why));
            }
        }
        let renamed =
            nix::fcntl::renameat(&self.parent, self.tmp_name.as_os_str(), &self.parent, self.name.as_os_str());
        if let Err(e) = renamed {
            // Something came to the final place since `create`.
            return Err(match e {
                nix::errno::Errno::ENOTEMPTY
                | nix::errno::Errno::EEXIST
                | nix::errno::Errno::ENOTDIR
                | nix::errno::Errno::EISDIR => ImageError::Exists { path: self.dir.clone() },
                e => io_err("move the finished image to", &self.dir)(e.into()),
            });
        }
        self.committed = true;
        nix::unistd::fsync(&self.parent).map_err(|e| io_err("sync", self.dir.parent().unwrap_or(&self.dir))(e.into()))
    }

    /// Creates `rel` (`data/NAME` or a top-level file) in the temporary directory (mode 0600, failing if it
    /// exists), lets `fill` write it while hashing and records its digest; a file that could not be
    /// completed is removed. Returns `rel`. [`ImageWriter::commit`] syncs every file at once.
    fn write_file(
        &mut self,
        rel: String,
        fill: impl FnOnce(&mut File, &mut Sha256, &Path) -> Result<(), ImageError>,
    ) -> Result<String, ImageError> {
        let path = self.tmp.join(&rel);
        let (at, name) = match rel.strip_prefix(DATA_DIR).and_then(|r| r.strip_prefix('/')) {
            Some(name) => (self.data_fd.as_fd(), name),
            None => (self.tmp_fd.as_fd(), rel.as_str()),
        };
        let mut hasher = Sha256::new();
        write_new(at, OsStr::new(name), &path, |file| fill(file, &mut hasher, &path))?;
        self.sums.insert(rel.clone(), hasher.finalize().into());
        Ok(rel)
    }
}

impl Drop for ImageWriter {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort, through the handles: a leftover `.NAME.partial-PID` is harmless, and never taken
            // for an image.
            use nix::unistd::{UnlinkatFlags, unlinkat};
            for dir in [&self.data_fd, &self.tmp_fd] {
                for (name, _) in entries(dir.as_fd(), &self.tmp).unwrap_or_default() {
                    let _ = unlinkat(dir, name.as_str(), UnlinkatFlags::NoRemoveDir);
                }
            }
            let _ = unlinkat(&self.tmp_fd, DATA_DIR, UnlinkatFlags::RemoveDir);
            let _ = unlinkat(&self.parent, self.tmp_name.as_os_str(), UnlinkatFlags::RemoveDir);
        }
    }
}

/// Makes the directory `name` in `at` (mode 0700) and opens it, not following a link. Where others may
/// rename entries of `at` (group- or other-writable, not sticky), what was opened must also be owned by this
/// process's user: the one just made, not one put in its place (a filesystem that keeps no owners, such as
/// vfat, is then refused: write the image elsewhere). Removed again if it cannot be used. `path` is for
/// messages.
fn make_private_dir(at: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<OwnedFd, ImageError> {
    nix::sys::stat::mkdirat(at, name, Mode::from_bits_truncate(0o700))
        .map_err(|e| io_err("create the temporary directory", path)(e.into()))?;
    let opened = || -> Result<OwnedFd, ImageError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(at, name, flags, Mode::empty()).map_err(|e| io_err("open", path)(e.into()))?;
        let parent = nix::sys::stat::fstat(at).map_err(|e| io_err("read", path)(e.into()))?;
        let others_may_swap = parent.st_mode & 0o022 != 0 && parent.st_mode & libc::S_ISVTX == 0;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| io_err("read", path)(e.into()))?;
        let me = nix::unistd::geteuid().as_raw();
        if others_may_swap && st.st_uid != me {
            let why = io::Error::other(format!(
                "it is owned by uid {}, not by uid {me} who made it: it was replaced as it was made, or the \
                 filesystem keeps no owners",
                st.st_uid
            ));
            return Err(io_err("create the temporary directory", path)(why));
        }
        Ok(fd)
    };
    opened().inspect_err(|_| {
        let _ = nix::unistd::unlinkat(at, name, nix::unistd::UnlinkatFlags::RemoveDir);
    })
}

/// Creates `name` in `at` (mode 0600, failing if it exists, not following a link) and lets `fill` write it;
/// removes it (best effort) when that fails, so that nothing half-written stays behind. `path` is for
/// messages.
fn write_new(
    at: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<(), ImageError>,
) -> Result<(), ImageError> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(at, name, flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| io_err("create", path)(e.into()))?;
    let mut file = File::from(fd);
    let done = fill(&mut file);
    if done.is_err() {
        let _ = nix::unistd::unlinkat(at, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    done
}

/// `data/NAME` for a valid data file name.
fn data_path(name: &str) -> Result<String, ImageError> {
    if valid_data_name(name) {
        Ok(format!("{DATA_DIR}/{name}"))
    } else {
        Err(ImageError::DataName { name: name.to_owned() })
    }
}

/// A plain file name: `[A-Za-z0-9._-]+`, but not `.` or `..`.
fn valid_data_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// True for `data/NAME` with a valid NAME: the only form a data file has in `SHA256SUMS` and the manifest.
fn is_data_path(path: &str) -> bool {
    path.strip_prefix(DATA_DIR).and_then(|rest| rest.strip_prefix('/')).is_some_and(valid_data_name)
}

/// Every data file name the manifest refers to.
fn data_names(manifest: &Manifest) -> impl Iterator<Item = &str> {
    manifest.fds.iter().filter_map(|fd| match &fd.restore {
        Restore::Contents { data, .. } => Some(data.as_str()),
        Restore::Pipe { data, .. }
        | Restore::Fifo { data, .. }
        | Restore::DeletedFifo { data, .. }
        | Restore::UnixPair { data, .. } => data.as_deref(),
        // Listed one by one so that a new variant carrying data cannot be forgotten here.
        Restore::Open { .. }
        | Restore::Inherit { .. }
        | Restore::Close
        | Restore::Dup { .. }
        | Restore::Plugin { .. }
        | Restore::Inet { .. }
        | Restore::UnixConnect { .. }
        | Restore::Eventfd { .. }
        | Restore::Timerfd { .. }
        | Restore::Signalfd { .. }
        | Restore::Epoll { .. }
        | Restore::Inotify { .. }
        | Restore::Socket { .. }
        | Restore::Netlink { .. }
        | Restore::Packet { .. }
        | Restore::DeletedDir { .. }
        | Restore::Pidfd { .. }
        | Restore::Fanotify { .. } => None,
    })
}

/// `SHA256SUMS` text: `HEX  PATH` lines in path order, as `sha256sum` writes them in text mode.
fn render_sums(sums: &BTreeMap<String, Sum>) -> String {
    let mut text = String::new();
    for (path, sum) in sums {
        for byte in sum {
            text.push_str(&format!("{byte:02x}"));
        }
        text.push_str("  ");
        text.push_str(path);
        text.push('\n');
    }
    text
}

/// Parses `SHA256SUMS` strictly: UTF-8, every line `HEX  PATH\n` with 64 lowercase hex digits, two spaces and
/// `manifest.json` or `data/NAME`, each path once.
fn parse_sums(bytes: &[u8]) -> Result<BTreeMap<String, Sum>, ImageError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ImageError::Sums {
        line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
        why: "it is not UTF-8 text".to_owned(),
    })?;
    let mut sums = BTreeMap::new();
    for (i, line) in text.split_terminator('\n').enumerate() {
        let bad = |why: String| ImageError::Sums { line: i + 1, why };
        let (hex, rest) = match line.split_at_checked(64) {
            Some((hex, rest)) if hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => (hex, rest),
            _ => return Err(bad("expected 64 lowercase hex digits, two spaces and a file name".to_owned())),
        };
        let Some(path) = rest.strip_prefix("  ") else {
            return Err(bad("expected two spaces between the checksum and the file name".to_owned()));
        };
        if path != MANIFEST && !is_data_path(path) {
            return Err(bad(format!("`{path}` is not a file of an image (`{MANIFEST}` or `{DATA_DIR}/NAME`)")));
        }
        let mut sum = [0u8; 32];
        for (byte, pair) in sum.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *byte = (hex_digit(pair[0]) << 4) | hex_digit(pair[1]);
        }
        if sums.insert(path.to_owned(), sum).is_some() {
            return Err(bad(format!("`{path}` is listed twice")));
        }
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(ImageError::Sums { line: text.lines().count(), why: "the last line has no newline".to_owned() });
    }
    Ok(sums)
}

/// The value of a lowercase hex digit (already checked).
fn hex_digit(b: u8) -> u8 {
    if b.is_ascii_digit() { b - b'0' } else { b - b'a' + 10 }
}

/// A manifest's verified bytes -> the manifest: its format and version first (so that a newer image says so
/// rather than failing to parse), then the whole; every data name it refers to must be a `data/NAME` that
/// `listed` (in `SHA256SUMS`).
pub(crate) fn read_manifest(bytes: &[u8], listed: impl Fn(&str) -> bool) -> Result<Manifest, ImageError> {
    #[derive(Deserialize)]
    struct Head {
        format: String,
        version: u32,
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|source| ImageError::Manifest { source })?;
    if head.format != FORMAT {
        return Err(ImageError::Format { found: head.format });
    }
    if !(1..=VERSION).contains(&head.version) {
        return Err(ImageError::Version { found: head.version, expected: VERSION });
    }
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|source| ImageError::Manifest { source })?;
    if let Some(name) = data_names(&manifest).find(|name| !is_data_path(name) || !listed(name)) {
        return Err(ImageError::Unlisted { file: name.to_owned() });
    }
    Ok(manifest)
}

/// A verified image: its manifest, and the checksums its data files are read against.
#[derive(Debug)]
pub struct Image {
    pub manifest: Manifest,
    dir: PathBuf,
    /// The image directory, opened once by [`Image::open`]: every file is read through it, so a directory
    /// or a symlink put at `dir` since (by someone who can write its parent) is never read.
    root: OwnedFd,
    sums: BTreeMap<String, Sum>,
}

impl Image {
    /// Opens and verifies an image.
    ///
    /// The directory is opened once, and every file is then read through that fd, never through `dir` again,
    /// and never through a symlink (`RESOLVE_NO_SYMLINKS`): what is verified is what is read. With `owner`
    /// set (crrules passes its euid when it runs as root), the image directory, `data/` and every file must
    /// be owned by that uid and not writable by group or others. Always: every entry must be a regular file
    /// or one of the two directories (a symlink is refused as [`ImageError::NotRegular`], even where
    /// `SHA256SUMS` does not list it, as is a symlink at `dir` itself when `owner` is set); `SHA256SUMS`
    /// parses strictly; every file present is listed and every file listed is present and matches; the
    /// manifest has this crate's format and version (read before the rest, so that a newer image says so
    /// rather than failing to parse) and parses; every data name it refers to is a `data/NAME` listed in
    /// `SHA256SUMS`.
    ///
    /// With `owner` set, the path to the image must hold no symbolic link, and every directory above the
    /// image, from `/` (or from the working directory's physical path, for a relative `dir`), must be
    /// owned by root or `owner` and be writable by no one else, unless it is sticky (as `/tmp` is: there
    /// only an entry's owner may move it); the image directory is then the last handle of that walk.
    pub fn open(dir: &Path, owner: Option<u32>) -> Result<Image, ImageError> {
        let trust = Trust { owner };
        // Without an owner to check, `dir` may be a symlink to the image (e.g. `latest`).
        let root = match owner {
            Some(owner) => open_chain(dir, owner, true)?,
            None => open_dir(dir)?,
        };
        if owner.is_some() {
            let st = nix::sys::stat::fstat(&root).map_err(|e| io_err("read", dir)(e.into()))?;
            trust.check(dir, st.st_uid, st.st_mode)?;
        }

        let sums_bytes = match trust.open(root.as_fd(), dir, SUMS) {
            Ok(mut file) => read_all(&mut file, &dir.join(SUMS))?,
            Err(ImageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::Missing { file: SUMS.to_owned() });
            }
            Err(e) => return Err(e),
        };
        let sums = parse_sums(&sums_bytes)?;

        // Cheap checks first: which files there are, then what they hold.
        let present = trust.list(root.as_fd(), dir)?;
        if let Some(file) = present.iter().find(|f| f.as_str() != SUMS && !sums.contains_key(*f)) {
            return Err(ImageError::Unlisted { file: file.clone() });
        }
        if let Some(file) = sums.keys().find(|f| !present.contains(*f)) {
            return Err(ImageError::Missing { file: file.clone() });
        }
        let mut manifest_bytes = Vec::new();
        for (file, sum) in &sums {
            let mut opened = trust.open(root.as_fd(), dir, file).map_err(|e| missing_if_gone(e, file))?;
            let keep = (file == MANIFEST).then_some(&mut manifest_bytes);
            if hash_file(&mut opened, &dir.join(file), keep)? != *sum {
                return Err(ImageError::Checksum { file: file.clone() });
            }
        }

        let manifest = read_manifest(&manifest_bytes, |name| sums.contains_key(name))?;
        Ok(Image { manifest, dir: dir.to_owned(), root, sums })
    }

    /// The bytes of a data file named by the manifest (`data/NAME`), verified again against its checksum.
    pub fn read_data(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let Some(sum) = self.sums.get(name).filter(|_| is_data_path(name)) else {
            return Err(ImageError::Unlisted { file: name.to_owned() });
        };
        // The owner was checked by `open`; the checksum is what guards the bytes now.
        let mut file =
            Trust { owner: None }.open(self.root.as_fd(), &self.dir, name).map_err(|e| missing_if_gone(e, name))?;
        let mut bytes = Vec::new();
        if hash_file(&mut file, &self.dir.join(name), Some(&mut bytes))? != *sum {
            return Err(ImageError::Checksum { file: name.to_owned() });
        }
        Ok(bytes)
    }

    /// The image directory, as given to [`Image::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Opens the image directory itself (close-on-exec), following a symlink at its place: the image as read
/// when no owner is checked.
fn open_dir(dir: &Path) -> Result<OwnedFd, ImageError> {
    match OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(dir) {
        Ok(file) => Ok(file.into()),
        Err(e) => Err(dir_refused(dir, e)),
    }
}

/// The error of opening the image directory `dir`: what is there instead of a directory, for `ELOOP` (a
/// symlink, not followed) and `ENOTDIR`.
fn dir_refused(dir: &Path, e: io::Error) -> ImageError {
    if !matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
        return io_err("read", dir)(e);
    }
    match fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => not_regular_or_dir(dir, meta.mode(), "read"),
        // A directory now, but not when it was opened.
        Ok(_) => io_err("read", dir)(io::Error::other("it was replaced while it was opened")),
        Err(_) => io_err("read", dir)(e),
    }
}

/// A directory on the way to the image, as [`open_chain`] holds it.
struct Step {
    /// An `O_PATH` handle (the first, `/`, is a plain one).
    fd: OwnedFd,
    /// Its physical path, for messages.
    path: PathBuf,
    st: FileStat,
}

/// Opens the image directory `dir` (with `is_image` false: the directory an image is to be written in, held
/// to the rule of the directories above an image and its failures said as theirs) for crrules running as
/// `owner` (root): from `/`, each component opened through the handle of the directory before it with `O_PATH | O_DIRECTORY` and `RESOLVE_NO_SYMLINKS`
/// (a link is `ELOOP`), `fstat`ed, and checked by [`trust::judge`] before anything is opened in it; the
/// image directory is then opened for reading through its own handle. A relative `dir` is walked from the
/// working directory's physical path, which `getcwd` gives. `..` goes back to the handle it came from
/// (what the kernel does on a path without links), so the directory it leaves never decides anything.
///
/// Symbolic links on the way are refused, not followed: the image directory itself may not be one (a
/// link that someone repoints is what the one-handle read guards against), a link is as good as the
/// directory it sits in and every directory its target passes through, and the path without links always
/// exists (`realpath` prints it; the refusal does too). Without links, this walk opens exactly what the
/// kernel would resolve, one component at a time, so nothing can be swapped between a check and an open.
///
/// A sticky directory that its group or others may write (`/tmp`, mode 1777) is accepted above the image:
/// in a sticky directory only the owner of an entry, the owner of the directory or a process with
/// `CAP_FOWNER` may rename or remove that entry (`rename(2)`, `unlink(2)`: `EPERM`), and the next directory
/// down is held to the owner rule here (the image directory to [`Trust::check`]), so nobody else can move
/// it away or put another in its place. Policy files are stricter about this (`crrules_rules::trust`
/// refuses `/tmp`) because a policy lookup may go to a name root has not made yet, which anyone could then
/// create as a link; this walk only opens directories that exist and refuses links, so no name is waiting
/// to be taken.
fn open_chain(dir: &Path, owner: u32, is_image: bool) -> Result<OwnedFd, ImageError> {
    let absolute = if dir.is_absolute() {
        dir.to_owned()
    } else {
        std::env::current_dir().map_err(io_err("find the working directory for", dir))?.join(dir)
    };
    let names: Vec<&[u8]> =
        absolute.as_os_str().as_bytes().split(|&b| b == b'/').filter(|n| !n.is_empty() && *n != b".").collect();
    let root = build::open_path(b"/", libc::O_RDONLY | libc::O_DIRECTORY).map_err(io_err("read", Path::new("/")))?;
    let mut chain = vec![step(root, PathBuf::from("/"), dir)?];
    for (i, name) in names.iter().enumerate() {
        if *name == b".." {
            if chain.len() > 1 {
                chain.pop();
            }
            continue;
        }
        let parent = chain.last().expect("`/` is never popped");
        check_above(parent, owner)?;
        let path = parent.path.join(OsStr::from_bytes(name));
        // Not `O_NOFOLLOW`: with `O_PATH` it would open a link itself (and fail as `ENOTDIR`), where
        // `RESOLVE_NO_SYMLINKS` refuses it as `ELOOP`.
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let fd = match build::open_beneath(parent.fd.as_fd(), name, flags) {
            Ok(fd) => fd,
            // The image directory itself: said as before, whatever is there instead.
            Err(e) if is_image && i + 1 == names.len() => return Err(dir_refused(dir, e)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(link_above(dir, path)),
            Err(e) => return Err(io_err("read", dir)(e)),
        };
        chain.push(step(fd, path, dir)?);
    }
    let image = chain.last().expect("`/` is never popped");
    if !is_image {
        // The directory an image goes in is above the image: the same rule, sticky accepted.
        check_above(image, owner)?;
    }
    build::open_beneath(image.fd.as_fd(), b".", libc::O_RDONLY | libc::O_DIRECTORY).map_err(io_err("read", dir))
}

/// A [`Step`] of `fd` at `path`, `fstat`ed (an error is said about the image path `dir`).
fn step(fd: OwnedFd, path: PathBuf, dir: &Path) -> Result<Step, ImageError> {
    let st = nix::sys::stat::fstat(&fd).map_err(|e| io_err("read", dir)(e.into()))?;
    Ok(Step { fd, path, st })
}

/// Holds a directory above the image to [`trust::judge`], the sticky bit excepted (see [`open_chain`]).
fn check_above(at: &Step, owner: u32) -> Result<(), ImageError> {
    let (uid, mode) = (at.st.st_uid, at.st.st_mode);
    match trust::judge(uid, mode, owner) {
        Ok(()) => Ok(()),
        Err(Untrusted::Writable) if mode & libc::S_ISVTX != 0 => Ok(()),
        Err(why) => Err(ImageError::Above { path: at.path.clone(), uid, gid: at.st.st_gid, mode, why, owner }),
    }
}

/// [`ImageError::LinkAbove`] for the link at `path` on the way to the image `dir`.
fn link_above(dir: &Path, path: PathBuf) -> ImageError {
    match fs::read_link(&path) {
        Ok(target) => ImageError::LinkAbove { target, real: fs::canonicalize(dir).ok(), path },
        // Gone or changed since: what the walk saw is all there is to say.
        Err(e) => io_err("read", dir)(e),
    }
}

/// What an image's files must satisfy beyond their checksums.
struct Trust {
    /// The uid that must own everything, when set.
    owner: Option<u32>,
}

impl Trust {
    /// The owner and mode checks on one entry of the image (its owner's uid and its `st_mode`).
    fn check(&self, path: &Path, uid: u32, mode: u32) -> Result<(), ImageError> {
        let Some(expected) = self.owner else { return Ok(()) };
        if uid != expected {
            return Err(ImageError::Owner { path: path.to_owned(), uid, expected });
        }
        if mode & 0o022 != 0 {
            return Err(ImageError::Writable { path: path.to_owned(), mode: mode & 0o7777 });
        }
        Ok(())
    }

    /// Opens the file `rel` of the image whose directory is `root` (shown as `dir`) for reading, without
    /// following a symlink anywhere on the way or blocking on a FIFO, and checks the file actually opened.
    fn open(&self, root: BorrowedFd<'_>, dir: &Path, rel: &str) -> Result<File, ImageError> {
        let path = dir.join(rel);
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let fd = build::open_beneath(root, rel.as_bytes(), flags).map_err(|e| beneath_err(e, &path, "read"))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(io_err("read", &path))?;
        if !meta.is_file() {
            return Err(not_regular_or_dir(&path, meta.mode(), "read"));
        }
        self.check(&path, meta.uid(), meta.mode())?;
        Ok(file)
    }

    /// Every file of the image whose directory is `root` (shown as `dir`), as `manifest.json`,
    /// `SHA256SUMS`, `data/NAME`..., after checking each entry's type and owner. An entry that vanishes
    /// meanwhile is simply not there.
    fn list(&self, root: BorrowedFd<'_>, dir: &Path) -> Result<BTreeSet<String>, ImageError> {
        let mut files = BTreeSet::new();
        for (name, st) in entries(root, dir)? {
            let path = dir.join(&name);
            if name == DATA_DIR && st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                self.check(&path, st.st_uid, st.st_mode)?;
                let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                let data =
                    build::open_beneath(root, DATA_DIR.as_bytes(), flags).map_err(|e| beneath_err(e, &path, "list"))?;
                for (data_name, data_st) in entries(data.as_fd(), &path)? {
                    self.file(&path.join(&data_name), &data_st)?;
                    files.insert(format!("{DATA_DIR}/{data_name}"));
                }
            } else {
                self.file(&path, &st)?;
                files.insert(name);
            }
        }
        Ok(files)
    }

    /// Checks an entry that must be a regular file.
    fn file(&self, path: &Path, st: &FileStat) -> Result<(), ImageError> {
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(ImageError::NotRegular { path: path.to_owned(), found: describe(st.st_mode) });
        }
        self.check(path, st.st_uid, st.st_mode)
    }
}

/// The error of [`build::open_beneath`] on `path` (`op`: what was being done): a symlink on the way is
/// [`ImageError::NotRegular`]; `EXDEV` and `EAGAIN` mean the kernel saw the file moved into or out of the
/// image while it resolved the path.
fn beneath_err(e: io::Error, path: &Path, op: &'static str) -> ImageError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => ImageError::NotRegular { path: path.to_owned(), found: "a symbolic link" },
        Some(libc::EXDEV | libc::EAGAIN) => io_err(op, path)(io::Error::other("it was moved while it was opened")),
        _ => io_err(op, path)(e),
    }
}

/// The entries of the directory `dir` (shown as `shown`), but `.` and `..`: name (lossy UTF-8: a name that
/// is not UTF-8 is listed nowhere anyway) and `fstatat` not following symlinks.
fn entries(dir: BorrowedFd<'_>, shown: &Path) -> Result<Vec<(String, FileStat)>, ImageError> {
    let list_err = |e: nix::errno::Errno| io_err("list", shown)(e.into());
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut listing = nix::dir::Dir::openat(dir, ".", flags, Mode::empty()).map_err(list_err)?;
    let mut out = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let shown_name = String::from_utf8_lossy(name.to_bytes()).into_owned();
        match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => out.push((shown_name, st)),
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(io_err("inspect", &shown.join(&shown_name))(e.into())),
        }
    }
    Ok(out)
}

/// The error for something at `path` that is neither a regular file nor a directory, or a directory where a
/// file was expected (`op` names the attempt, for the case of a regular file where the image dir should be).
fn not_regular_or_dir(path: &Path, mode: u32, op: &'static str) -> ImageError {
    if mode & libc::S_IFMT == libc::S_IFREG {
        io_err(op, path)(io::Error::from_raw_os_error(libc::ENOTDIR))
    } else {
        ImageError::NotRegular { path: path.to_owned(), found: describe(mode) }
    }
}

/// What a non-regular file is, for [`ImageError::NotRegular`], from its `st_mode`.
fn describe(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFREG => "a regular file",
        _ => "not a regular file",
    }
}

/// A file listed in `SHA256SUMS` that vanished between the listing and the read is missing.
fn missing_if_gone(e: ImageError, file: &str) -> ImageError {
    match e {
        ImageError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            ImageError::Missing { file: file.to_owned() }
        }
        e => e,
    }
}

/// Reads `file` to its end through a 64 KiB buffer, hashing; appends the bytes to `keep` when given.
fn hash_file(file: &mut File, path: &Path, mut keep: Option<&mut Vec<u8>>) -> Result<Sum, ImageError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finalize().into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", path)(e)),
        };
        hasher.update(&buf[..n]);
        if let Some(keep) = keep.as_deref_mut() {
            keep.extend_from_slice(&buf[..n]);
        }
    }
}

fn read_all(file: &mut File, path: &Path) -> Result<Vec<u8>, ImageError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::FdFacts;
    use crate::image::{Creds, ImageFd, ProcessRecord};
    use crate::plan::Decision;
    use crrules_rules::Action;
    use crrules_rules::vocab::Kind;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("crrules-image-test-{}-{n}", std::process::id()));
            fs::create_dir(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn euid() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn fd(fd: i32, restore: Restore) -> ImageFd {
        ImageFd {
            fd,
            facts: FdFacts::new(fd, Kind::File, format!("/tmp/f{fd}")),
            decision: Decision { action: Action::Close, rule: Some("t.rules:1".to_owned()), note: None },
            restore,
        }
    }

    /// A manifest naming the fixture's two data files.
    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.to_owned(),
            version: VERSION,
            crrules: "0.1.0".to_owned(),
            process: ProcessRecord {
                pid: 42,
                comm: "demo".into(),
                creds: Creds { uid: [0; 4], gid: [0; 4], groups: vec![] },
                frozen: None,
            },
            fds: vec![
                fd(
                    3,
                    Restore::Contents {
                        data: "data/3-file".to_owned(),
                        file: 3,
                        size: 6,
                        flags: 2,
                        pos: 0,
                        mode: 0o600,
                        memfd: false,
                        name: None,
                        seals: 0,
                    },
                ),
                fd(
                    4,
                    Restore::Pipe {
                        id: 7,
                        write: false,
                        flags: 0,
                        data: Some("data/4-pipe".to_owned()),
                        capacity: None,
                    },
                ),
                fd(5, Restore::Close),
            ],
        }
    }

    const FILE_BYTES: &[u8] = b"hello\n";

    /// More than two copy buffers, so that `copy_data` loops.
    fn pipe_bytes() -> Vec<u8> {
        (0..150_000u32).map(|i| (i % 251) as u8).collect()
    }

    /// A committed image at `TMP/img`.
    fn fixture() -> (TempDir, PathBuf) {
        fixture_at("img")
    }

    /// A committed image at `TMP/REL`, its parent directories made.
    fn fixture_at(rel: &str) -> (TempDir, PathBuf) {
        let tmp = TempDir::new();
        let dir = tmp.0.join(rel);
        fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let mut w = ImageWriter::create(&dir, None).unwrap();
        assert_eq!(w.write_data("3-file", FILE_BYTES).unwrap(), "data/3-file");
        let pipe = pipe_bytes();
        assert_eq!(w.copy_data("4-pipe", &mut &pipe[..]).unwrap(), ("data/4-pipe".to_owned(), pipe.len() as u64));
        w.commit(&manifest()).unwrap();
        (tmp, dir)
    }

    fn flip_byte(path: &Path, at: usize) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at] ^= 0x01;
        fs::write(path, bytes).unwrap();
    }

    /// Rewrites `SHA256SUMS` over the image's current files, as someone editing it consistently would.
    fn rewrite_sums(dir: &Path) {
        let mut sums = BTreeMap::new();
        let mut add = |rel: String| {
            sums.insert(rel.clone(), Sha256::digest(fs::read(dir.join(&rel)).unwrap()).into());
        };
        add(MANIFEST.to_owned());
        for entry in fs::read_dir(dir.join(DATA_DIR)).unwrap() {
            add(format!("{DATA_DIR}/{}", entry.unwrap().file_name().to_str().unwrap()));
        }
        fs::write(dir.join(SUMS), render_sums(&sums)).unwrap();
    }

    fn open_err(dir: &Path, owner: Option<u32>) -> ImageError {
        Image::open(dir, owner).expect_err("the image should be refused")
    }

    #[test]
    fn round_trip() {
        let (tmp, dir) = fixture();
        let image = Image::open(&dir, Some(euid())).unwrap();
        assert_eq!(image.manifest, manifest());
        assert_eq!(image.dir(), dir);
        assert_eq!(image.read_data("data/3-file").unwrap(), FILE_BYTES);
        assert_eq!(image.read_data("data/4-pipe").unwrap(), pipe_bytes());
        // The temporary directory is gone; only the image is left beside it.
        let names: Vec<_> = fs::read_dir(&tmp.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["img"]);
        let sums = fs::read_to_string(dir.join(SUMS)).unwrap();
        let paths: Vec<_> = sums.lines().map(|l| &l[66..]).collect();
        assert_eq!(paths, ["data/3-file", "data/4-pipe", "manifest.json"]);
    }

    #[test]
    fn commit_replaces_an_empty_directory() {
        let tmp = TempDir::new();
        let dir = tmp.0.join("img");
        fs::create_dir(&dir).unwrap();
        let mut w = ImageWriter::create(&dir, None).unwrap();
        w.write_data("3-file", FILE_BYTES).unwrap();
        w.write_data("4-pipe", b"").unwrap();
        w.commit(&manifest()).unwrap();
        assert_eq!(Image::open(&dir, None).unwrap().read_data("data/4-pipe").unwrap(), b"");
    }

    #[test]
    fn data_names_that_are_not_plain_names_are_refused() {
        let tmp = TempDir::new();
        let mut w = ImageWriter::create(&tmp.0.join("img"), None).unwrap();
        for name in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a b", "é"] {
            let err = w.write_data(name, b"x").unwrap_err();
            assert!(matches!(&err, ImageError::DataName { name: n } if n == name), "{name:?}: {err:?}");
            let err = w.copy_data(name, &mut &b"x"[..]).unwrap_err();
            assert!(matches!(err, ImageError::DataName { .. }), "{name:?}: {err:?}");
        }
        for name in ["3-file", ".hidden", "a.b_c-9", "..."] {
            assert_eq!(w.write_data(name, b"x").unwrap(), format!("data/{name}"));
        }
    }

    #[test]
    fn an_uncommitted_writer_leaves_nothing() {
        let tmp = TempDir::new();
        let dir = tmp.0.join("img");
        let mut w = ImageWriter::create(&dir, None).unwrap();
        w.write_data("3-file", FILE_BYTES).unwrap();
        assert!(tmp.0.join(format!(".img.partial-{}", std::process::id())).is_dir());
        drop(w);
        assert_eq!(fs::read_dir(&tmp.0).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_commit_leaves_nothing() {
        let tmp = TempDir::new();
        let dir = tmp.0.join("img");
        let mut w = ImageWriter::create(&dir, None).unwrap();
        w.write_data("3-file", FILE_BYTES).unwrap();
        // data/4-pipe, named by the manifest, was never written.
        let err = w.commit(&manifest()).unwrap_err();
        assert!(matches!(&err, ImageError::Unlisted { file } if file == "data/4-pipe"), "{err:?}");
        assert_eq!(fs::read_dir(&tmp.0).unwrap().count(), 0);
    }

    /// A reader that gives some bytes, then fails.
    struct Failing(usize);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("the source broke"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_failed_copy_leaves_no_partial_file() {
        let tmp = TempDir::new();
        let dir = tmp.0.join("img");
        let mut w = ImageWriter::create(&dir, None).unwrap();
        let err = w.copy_data("4-pipe", &mut Failing(100_000)).unwrap_err();
        assert!(matches!(&err, ImageError::Io { op: "read the contents to save as", .. }), "{err:?}");
        let pipe = pipe_bytes();
        w.copy_data("4-pipe", &mut &pipe[..]).unwrap();
        w.write_data("3-file", FILE_BYTES).unwrap();
        w.commit(&manifest()).unwrap();
        assert_eq!(Image::open(&dir, None).unwrap().read_data("data/4-pipe").unwrap(), pipe);
    }

    /// The temporary directory renamed away and a link to another directory put in its place while an
    /// image is written (what a user who may write the parent could do): every file still goes into the
    /// directory that was made, none through the link, and the commit refuses to move what is now at the
    /// temporary name.
    #[test]
    fn a_temporary_directory_swapped_for_a_link_receives_nothing() {
        let tmp = TempDir::new();
        let dir = tmp.0.join("img");
        let mut w = ImageWriter::create(&dir, None).unwrap();
        let partial = tmp.0.join(format!(".img.partial-{}", std::process::id()));
        let (moved, elsewhere) = (tmp.0.join("moved"), tmp.0.join("elsewhere"));
        fs::rename(&partial, &moved).unwrap();
        fs::create_dir_all(elsewhere.join("data")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &partial).unwrap();
        w.write_data("3-file", FILE_BYTES).unwrap();
        w.write_data("4-pipe", &pipe_bytes()).unwrap();
        assert_eq!(fs::read_dir(moved.join("data")).unwrap().count(), 2, "written where it was made");
        let err = w.commit(&manifest()).unwrap_err();
        assert!(err.to_string().contains("it was moved or replaced while the image was written"), "{err}");
        assert_eq!(fs::read_dir(elsewhere.join("data")).unwrap().count(), 0, "nothing written through the link");
        assert!(fs::symlink_metadata(&dir).is_err(), "no image at the final place");
        // The writer cleaned up what it made, where it is now.
        assert_eq!(fs::read_dir(&moved).map(|d| d.count()).unwrap_or(0), 0);
    }

    /// As root, the directory an image is written in is held to the rule the reader holds it to: one that
    /// others may write (not sticky) is refused before anything is made in it; a sticky one is fine.
    #[test]
    fn as_root_an_image_is_not_written_where_others_could_swap_it() {
        if euid() != 0 {
            eprintln!("skipped: the owner rule applies to root");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let base = PathBuf::from("/run").join(format!("crrules-image-writer-{}", std::process::id()));
        fs::create_dir_all(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let open = base.join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = ImageWriter::create(&open.join("img"), Some(0)).unwrap_err();
        assert!(matches!(&err, ImageError::Above { path, .. } if *path == open), "{err:?}");
        assert_eq!(fs::read_dir(&open).unwrap().count(), 0, "nothing made in it");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        let mut w = ImageWriter::create(&open.join("img"), Some(0)).unwrap();
        w.write_data("3-file", FILE_BYTES).unwrap();
        w.write_data("4-pipe", &pipe_bytes()).unwrap();
        w.commit(&manifest()).unwrap();
        assert!(Image::open(&open.join("img"), Some(0)).is_ok());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn create_refuses_a_non_empty_directory_or_a_file() {
        let tmp = TempDir::new();
        let dir = tmp.0.join("img");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("x"), b"").unwrap();
        let err = ImageWriter::create(&dir, None).unwrap_err();
        assert!(matches!(&err, ImageError::Exists { path } if *path == dir), "{err:?}");
        let file = tmp.0.join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(ImageWriter::create(&file, None).unwrap_err(), ImageError::Exists { .. }));
    }

    #[test]
    fn a_flipped_byte_in_a_data_file_is_a_checksum_error() {
        let (_tmp, dir) = fixture();
        flip_byte(&dir.join("data/4-pipe"), 70_000);
        let err = open_err(&dir, Some(euid()));
        assert!(matches!(&err, ImageError::Checksum { file } if file == "data/4-pipe"), "{err:?}");
        assert_eq!(err.to_string(), "image damaged: `data/4-pipe` does not match its checksum in SHA256SUMS");
    }

    /// Another image put at the opened image's path (by whoever can write its parent) is never read: the
    /// data files come from the directory that was opened and verified. (They were read by path, so the
    /// other image's file was read, and refused only because its bytes failed the first one's checksum.)
    #[test]
    fn an_image_swapped_in_after_open_is_not_read() {
        let (tmp, dir) = fixture();
        let image = Image::open(&dir, Some(euid())).unwrap();
        let other = tmp.0.join("other");
        let mut w = ImageWriter::create(&other, None).unwrap();
        w.write_data("3-file", b"other\n").unwrap();
        w.write_data("4-pipe", &pipe_bytes()).unwrap();
        w.commit(&manifest()).unwrap();
        fs::rename(&dir, tmp.0.join("moved")).unwrap();
        std::os::unix::fs::symlink(&other, &dir).unwrap();
        assert_eq!(image.read_data("data/3-file").unwrap(), FILE_BYTES);
        fs::remove_file(&dir).unwrap();
        fs::rename(&other, &dir).unwrap();
        assert_eq!(image.read_data("data/3-file").unwrap(), FILE_BYTES);
    }

    #[test]
    fn a_data_file_changed_after_open_is_refused_by_read_data() {
        let (_tmp, dir) = fixture();
        let image = Image::open(&dir, Some(euid())).unwrap();
        flip_byte(&dir.join("data/3-file"), 0);
        let err = image.read_data("data/3-file").unwrap_err();
        assert!(matches!(&err, ImageError::Checksum { file } if file == "data/3-file"), "{err:?}");
        let err = image.read_data("data/../manifest.json").unwrap_err();
        assert!(matches!(err, ImageError::Unlisted { .. }), "{err:?}");
    }

    #[test]
    fn a_flipped_byte_in_the_manifest_is_a_checksum_error() {
        let (_tmp, dir) = fixture();
        flip_byte(&dir.join(MANIFEST), 10);
        let err = open_err(&dir, None);
        assert!(matches!(&err, ImageError::Checksum { file } if file == MANIFEST), "{err:?}");
    }

    #[test]
    fn a_truncated_data_file_is_a_checksum_error() {
        let (_tmp, dir) = fixture();
        let path = dir.join("data/4-pipe");
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(1000).unwrap();
        let err = open_err(&dir, None);
        assert!(matches!(&err, ImageError::Checksum { file } if file == "data/4-pipe"), "{err:?}");
    }

    #[test]
    fn a_deleted_data_file_is_missing() {
        let (_tmp, dir) = fixture();
        fs::remove_file(dir.join("data/3-file")).unwrap();
        let err = open_err(&dir, None);
        assert!(matches!(&err, ImageError::Missing { file } if file == "data/3-file"), "{err:?}");
        fs::remove_file(dir.join(SUMS)).unwrap();
        let err = open_err(&dir, None);
        assert!(matches!(&err, ImageError::Missing { file } if file == SUMS), "{err:?}");
    }

    #[test]
    fn an_extra_file_is_unlisted() {
        let (_tmp, dir) = fixture();
        fs::write(dir.join("data/9-extra"), b"x").unwrap();
        let err = open_err(&dir, Some(euid()));
        assert!(matches!(&err, ImageError::Unlisted { file } if file == "data/9-extra"), "{err:?}");
        fs::remove_file(dir.join("data/9-extra")).unwrap();
        fs::write(dir.join("notes.txt"), b"x").unwrap();
        let err = open_err(&dir, None);
        assert!(matches!(&err, ImageError::Unlisted { file } if file == "notes.txt"), "{err:?}");
    }

    #[test]
    fn a_garbled_sums_file_is_a_sums_error() {
        let (_tmp, dir) = fixture();
        let sums = fs::read_to_string(dir.join(SUMS)).unwrap();
        fs::write(dir.join(SUMS), sums.replacen("  data/4-pipe", " *data/4-pipe", 1)).unwrap();
        let err = open_err(&dir, None);
        assert!(matches!(err, ImageError::Sums { line: 2, .. }), "{err:?}");
    }

    /// `SHA256SUMS` texts and the line `parse_sums` refuses (0: accepted), with a word of the reason.
    const SUMS_CASES: &[(&str, usize, &str)] = &[
        ("", 0, ""),
        ("0000000000000000000000000000000000000000000000000000000000000000  manifest.json\n", 0, ""),
        ("0000000000000000000000000000000000000000000000000000000000000000  data/3-x\n", 0, ""),
        ("0000000000000000000000000000000000000000000000000000000000000000  manifest.json", 1, "newline"),
        ("000000000000000000000000000000000000000000000000000000000000000  manifest.json\n", 1, "hex"),
        ("000000000000000000000000000000000000000000000000000000000000000A  manifest.json\n", 1, "hex"),
        ("0000000000000000000000000000000000000000000000000000000000000000 manifest.json\n", 1, "two spaces"),
        ("0000000000000000000000000000000000000000000000000000000000000000 *manifest.json\n", 1, "two spaces"),
        ("0000000000000000000000000000000000000000000000000000000000000000  SHA256SUMS\n", 1, "not a file"),
        ("0000000000000000000000000000000000000000000000000000000000000000  data/../x\n", 1, "not a file"),
        ("0000000000000000000000000000000000000000000000000000000000000000  data/a/b\n", 1, "not a file"),
        ("0000000000000000000000000000000000000000000000000000000000000000  /etc/passwd\n", 1, "not a file"),
        ("0000000000000000000000000000000000000000000000000000000000000000  manifest.json\r\n", 1, "not a file"),
        ("0000000000000000000000000000000000000000000000000000000000000000  manifest.json\n\n", 2, "hex"),
        (
            "0000000000000000000000000000000000000000000000000000000000000000  data/x\n\
             1111111111111111111111111111111111111111111111111111111111111111  data/x\n",
            2,
            "twice",
        ),
    ];

    #[test]
    fn sums_are_parsed_strictly() {
        for &(text, line, why) in SUMS_CASES {
            match parse_sums(text.as_bytes()) {
                Ok(_) => assert_eq!(line, 0, "{text:?} was accepted"),
                Err(ImageError::Sums { line: l, why: w }) => {
                    assert_eq!((l, w.contains(why)), (line, true), "{text:?}: line {l}: {w}")
                }
                Err(e) => panic!("{text:?}: {e:?}"),
            }
        }
        assert!(matches!(parse_sums(b"x\n\xff\n"), Err(ImageError::Sums { line: 2, .. })));
        let sums = parse_sums(render_sums(&BTreeMap::from([("data/a".to_owned(), [0xab; 32])])).as_bytes());
        assert_eq!(sums.unwrap()["data/a"], [0xab; 32]);
    }

    /// Rewrites the manifest as JSON, edited by `edit`, and `SHA256SUMS` to match.
    fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut json: serde_json::Value = serde_json::from_slice(&fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
        edit(&mut json);
        fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        rewrite_sums(dir);
    }

    /// Each version only added to the layout: an image of version 1 (before `dup` and `unix_connect`) is
    /// read; 0 and the next one are not.
    #[test]
    fn every_version_up_to_this_one_is_read() {
        let (_tmp, dir) = fixture();
        edit_manifest(&dir, |json| json["version"] = 1.into());
        assert_eq!(Image::open(&dir, Some(euid())).unwrap().manifest.version, 1);
        for version in [0, VERSION + 1] {
            edit_manifest(&dir, |json| json["version"] = version.into());
            let err = open_err(&dir, Some(euid()));
            assert!(matches!(err, ImageError::Version { found, .. } if found == version), "{err:?}");
        }
    }

    #[test]
    fn a_newer_version_is_a_version_error_even_with_another_layout() {
        let (_tmp, dir) = fixture();
        edit_manifest(&dir, |json| {
            json["version"] = 99.into();
            json["fds"] = "some future layout".into();
        });
        let err = open_err(&dir, Some(euid()));
        assert!(matches!(err, ImageError::Version { found: 99, expected: VERSION }), "{err:?}");
    }

    #[test]
    fn another_format_is_a_format_error() {
        let (_tmp, dir) = fixture();
        edit_manifest(&dir, |json| json["format"] = "something-else".into());
        let err = open_err(&dir, None);
        assert!(matches!(&err, ImageError::Format { found } if found == "something-else"), "{err:?}");
    }

    #[test]
    fn a_broken_manifest_is_a_manifest_error() {
        let (_tmp, dir) = fixture();
        edit_manifest(&dir, |json| json["fds"] = "not a list".into());
        let err = open_err(&dir, None);
        assert!(matches!(err, ImageError::Manifest { .. }), "{err:?}");
    }

    #[test]
    fn a_manifest_data_name_outside_data_or_not_listed_is_unlisted() {
        for name in ["data/../manifest.json", "manifest.json", "/etc/passwd", "data/9-absent"] {
            let (_tmp, dir) = fixture();
            edit_manifest(&dir, |json| json["fds"][1]["restore"]["data"] = name.into());
            let err = open_err(&dir, None);
            assert!(matches!(&err, ImageError::Unlisted { file } if file == name), "{name}: {err:?}");
        }
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused() {
        let (_tmp, dir) = fixture();
        let path = dir.join("data/3-file");
        if let Err(e) = std::os::unix::fs::chown(&path, Some(12345), None) {
            eprintln!("skipped: cannot chown as uid {}: {e}", euid());
            return;
        }
        let err = open_err(&dir, Some(euid()));
        assert!(
            matches!(&err, ImageError::Owner { path: p, uid: 12345, expected } if *p == path && *expected == euid()),
            "{err:?}"
        );
        // Without an owner to enforce, the image is read.
        assert!(Image::open(&dir, None).is_ok());
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        let (_tmp, dir) = fixture();
        let path = dir.join(MANIFEST);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = open_err(&dir, Some(euid()));
        assert!(matches!(&err, ImageError::Writable { path: p, mode: 0o666 } if *p == path), "{err:?}");
        assert!(err.to_string().contains("(mode 0o666)"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(dir.join(DATA_DIR), fs::Permissions::from_mode(0o770)).unwrap();
        let err = open_err(&dir, Some(euid()));
        assert!(matches!(err, ImageError::Writable { mode: 0o770, .. }), "{err:?}");
    }

    /// A symlink in `data/` is `NotRegular`, with or without an owner check: each entry's type is checked
    /// before whether `SHA256SUMS` lists it, and a listed one is opened with `O_NOFOLLOW`.
    #[test]
    fn a_symlink_in_the_image_is_not_regular() {
        let (_tmp, dir) = fixture();
        let link = dir.join("data/9-link");
        std::os::unix::fs::symlink("../manifest.json", &link).unwrap();
        for owner in [None, Some(euid())] {
            let err = open_err(&dir, owner);
            assert!(
                matches!(&err, ImageError::NotRegular { path, found: "a symbolic link" } if *path == link),
                "{err:?}"
            );
        }
        // A listed data file replaced by a symlink to an identical copy is refused all the same.
        fs::remove_file(&link).unwrap();
        let real = dir.join("data/3-file");
        fs::rename(&real, dir.join("3-file-copy")).unwrap();
        std::os::unix::fs::symlink("../3-file-copy", &real).unwrap();
        let err = open_err(&dir, None);
        assert!(matches!(err, ImageError::NotRegular { .. }), "{err:?}");
    }

    #[test]
    fn a_fifo_in_the_image_is_not_regular() {
        let (_tmp, dir) = fixture();
        let fifo = dir.join("data/9-fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
        let err = open_err(&dir, None);
        assert!(matches!(&err, ImageError::NotRegular { path, found: "a FIFO" } if *path == fifo), "{err:?}");
    }

    #[test]
    fn a_symlinked_image_dir_is_refused_only_when_the_owner_is_checked() {
        let (tmp, dir) = fixture();
        let link = tmp.0.join("latest");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(Image::open(&link, None).is_ok());
        let err = open_err(&link, Some(euid()));
        assert!(matches!(err, ImageError::NotRegular { found: "a symbolic link", .. }), "{err:?}");
    }

    /// With an owner to check, a link anywhere on the way to the image is refused, named with its target
    /// and the path without links; without one, the link is followed as the kernel follows it.
    #[test]
    fn a_symlink_above_the_image_is_refused_only_when_the_owner_is_checked() {
        let (tmp, _) = fixture_at("real/img");
        let link = tmp.0.join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        let through = link.join("img");
        assert!(Image::open(&through, None).is_ok());
        let err = open_err(&through, Some(euid()));
        let real = tmp.0.join("real/img");
        assert!(
            matches!(&err, ImageError::LinkAbove { path, target, real: Some(r) }
                if *path == link && target == Path::new("real") && *r == real),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "`{}`, on the way to the image, is a symbolic link (to `real`): as root, crrules reads an image \
                 only through a path without symbolic links, as it refuses one at the image itself; give the path \
                 it leads to, `{}`",
                link.display(),
                real.display()
            )
        );
        // `..` after the link would be the target's parent to the kernel: refused the same, not guessed at.
        assert!(matches!(open_err(&link.join("../real/img"), Some(euid())), ImageError::LinkAbove { .. }));
    }

    /// A relative path is walked from the working directory's physical path, and `..` goes back up the
    /// handles already checked; a file on the way is not a directory.
    #[test]
    fn relative_paths_and_dot_dots_reach_the_image_the_kernel_reaches() {
        let (tmp, dir) = fixture_at("a/img");
        let cwd = std::env::current_dir().unwrap();
        let up = cwd.components().skip(1).map(|_| "..").collect::<Vec<_>>().join("/");
        let relative = PathBuf::from(up).join(dir.strip_prefix("/").unwrap());
        assert!(relative.is_relative());
        for path in [relative, tmp.0.join("a/./img/../img"), tmp.0.join("a/img/data/..")] {
            let image = Image::open(&path, Some(euid())).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(image.read_data("data/3-file").unwrap(), FILE_BYTES);
        }
        let err = open_err(&tmp.0.join("a/img/manifest.json/../.."), Some(euid()));
        assert!(matches!(&err, ImageError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOTDIR)));
    }

    /// The directories above the image are held to the owner rule, the sticky bit excepted; the refusal
    /// names the directory, its owner and mode, and the `chmod` that fixes it.
    #[test]
    fn a_directory_above_the_image_others_can_change_is_refused_unless_sticky() {
        let (tmp, dir) = fixture_at("above/img");
        let above = tmp.0.join("above");
        let shown = above.display().to_string();
        let gid = nix::unistd::getegid().as_raw();
        for (mode, who, fix) in
            [(0o777, "group and others", "go-w"), (0o775, "its group", "g-w"), (0o757, "others", "o-w")]
        {
            fs::set_permissions(&above, fs::Permissions::from_mode(mode)).unwrap();
            let err = open_err(&dir, Some(euid()));
            assert!(
                matches!(&err, ImageError::Above { path, mode: m, why: Untrusted::Writable, .. }
                    if *path == above && *m & 0o7777 == mode),
                "{err:?}"
            );
            let said = err.to_string();
            let want = format!(
                "`{shown}`, above the image, is writable by {who} (uid {}, gid {gid}, mode {mode:#o}): they could \
                 swap the image for another directory; run `chmod {fix} {shown}`, or `chmod +t` it if others must \
                 make entries in it",
                euid()
            );
            assert_eq!(said, want);
        }
        for mode in [0o1777, 0o1770, 0o755] {
            fs::set_permissions(&above, fs::Permissions::from_mode(mode)).unwrap();
            assert!(Image::open(&dir, Some(euid())).is_ok(), "mode {mode:o}");
        }
        // The sticky bit does not excuse the image directory itself.
        fs::set_permissions(&above, fs::Permissions::from_mode(0o1777)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(matches!(open_err(&dir, Some(euid())), ImageError::Writable { mode: 0o1777, .. }));
    }

    #[test]
    fn sha256sum_verifies_an_image() {
        let (_tmp, dir) = fixture();
        match std::process::Command::new("sha256sum").args(["--check", "--strict", SUMS]).current_dir(&dir).output() {
            Ok(out) => assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => eprintln!("skipped: no sha256sum"),
            Err(e) => panic!("cannot run sha256sum: {e}"),
        }
    }
}
