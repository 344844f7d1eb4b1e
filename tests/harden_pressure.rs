//! Restore and dump under pressure (issue 12), through the real binary:
//! - an open-files limit below the highest fd of the image: the restore raises the soft limit as far as
//!   the hard one and refuses, all or nothing, when the highest fd is still not below it (the command never
//!   runs); at exactly one above the highest fd it restores;
//! - a file to reopen for writing on a filesystem that became read-only (a tmpfs remounted read-only, and a
//!   read-only bind mount): refused, naming the fd, its rule and the filesystem's answer;
//! - a full disk while an image is written (a 1 MiB tmpfs, a process holding a deleted 2 MiB file whose
//!   bytes the image must hold; a tmpfs with too few inodes): the dump fails saying why, and leaves nothing
//!   at the image's path and no `.NAME.partial-PID` beside it; the same dump to a tmpfs with room succeeds.
//!
//! The mounts are made under the test's temp dir and lazily unmounted when the test ends; without the right
//! to mount, those tests say so and skip.

mod common;
mod fdtable_common;
mod harden_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{names_fd, path_str};
use harden_common::{
    assert_no_panic, assert_nothing_written, fd_limit, has_sys_resource, restore_marking, with_fd_limit,
};
use scan_common::{Holder, holder_path};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `fdholder ARGS` with its stderr in `tmp/holder.log`.
fn holder(tmp: &TempDir, args: &[&str]) -> Holder {
    let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    Holder::spawn_with(&holder_path(), &args, |c| {
        c.stderr(log);
    })
}

/// A mount made for a test, lazily unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// `mount ARGS... TARGET` (TARGET created first); `None`, said, when this process may not mount.
    fn new(target: &Path, args: &[&str]) -> Option<Mount> {
        std::fs::create_dir_all(target).expect("mount point");
        let out = Command::new("mount").args(args).arg(target).output().expect("run mount");
        if !out.status.success() {
            eprintln!("skipped: cannot mount ({}): {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(Mount(target.to_owned()))
    }

    /// `mount -o OPTIONS,remount TARGET`, which must succeed.
    fn remount(&self, options: &str) {
        let out = Command::new("mount").args(["-o", options]).arg(&self.0).output().expect("run mount");
        assert!(out.status.success(), "mount -o {options}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `crrules dump --pid PID --image IMAGE`: exit code and stderr, never a panic.
fn dump(pid: i32, image: &Path) -> (i32, String) {
    let (code, _, err) = run(&["dump", "--pid", &pid.to_string(), "--image", path_str(image)]);
    assert_no_panic(code, &err, "dump");
    (code, err)
}

#[test]
fn a_hard_fd_limit_below_the_highest_fd_refuses_the_restore_and_runs_nothing() {
    let (_, hard) = fd_limit();
    let tmp = TempDir::new("pressure-limit");
    let mut holder = holder(&tmp, &["--high", "100"]);
    let highest = holder.fd("limit") - 1;
    let image = tmp.path().join("image");
    let (code, err) = dump(holder.pid(), &image);
    assert_eq!(code, 0, "{err}");
    holder.kill();
    let marker = tmp.path().join("MARKER");

    // A hard limit at the highest fd itself, and one far below it: the soft limit goes up to the hard one,
    // which is still not enough. With CAP_SYS_RESOURCE the hard limit is raised and the restore goes ahead.
    for limit in [highest as u64, 1000] {
        let (code, err, ran) = restore_marking(&image, &marker, |c| with_fd_limit(c, 64, limit));
        assert_no_panic(code, &err, "restore");
        if has_sys_resource() {
            assert!(code == 0 && ran, "with CAP_SYS_RESOURCE the hard limit is raised:\n{err}");
            continue;
        }
        assert!(code == 2 && !ran, "exit {code}, command ran: {ran}:\n{err}");
        let said = format!(
            "cannot restore: the image has fd {highest}, but the open files limit is {limit}: fd numbers must be \
             below it (the hard limit, which only a process with CAP_SYS_RESOURCE can raise: `ulimit -Hn`, up to \
             fs.nr_open, "
        );
        assert!(err.split_whitespace().collect::<Vec<_>>().join(" ").contains(&said), "{err}");
        assert!(err.contains("the command was not run"), "{err}");
        eprintln!("figures: hard limit {limit}, fd {highest}: `{}`", err.trim());
    }
    // One above the highest fd is enough, from a soft limit of 64.
    let (code, err, ran) = restore_marking(&image, &marker, |c| with_fd_limit(c, 64, (highest + 1) as u64));
    assert!(code == 0 && ran, "exit {code}:\n{err}");
    assert!(hard > highest as u64, "the test's own hard limit is above the holder's fds");
}

/// Dumps `fdholder --open-rw FILE` (FILE on the mount at `mnt`), kills it, makes the mount read-only with
/// `make_ro`, and checks the restore is refused naming the fd; the same image restored before that.
fn refused_on_a_read_only_mount(tmp: &TempDir, mnt: &Path, make_ro: impl FnOnce()) {
    let file = mnt.join("data.txt");
    std::fs::write(&file, b"written before\n").expect("the file");
    let mut holder = holder(tmp, &["--open-rw", path_str(&file)]);
    let fd = holder.fd("open0");
    let image = tmp.path().join(format!("image-{}", mnt.file_name().and_then(|n| n.to_str()).unwrap_or("mnt")));
    let (code, err) = dump(holder.pid(), &image);
    assert_eq!(code, 0, "{err}");
    holder.kill();
    let marker = tmp.path().join("MARKER");
    let (code, err, ran) = restore_marking(&image, &marker, |_| {});
    assert!(code == 0 && ran, "the control restore failed:\n{err}");

    make_ro();
    let (code, err, ran) = restore_marking(&image, &marker, |_| {});
    assert_no_panic(code, &err, "restore");
    assert!(code == 2 && !ran, "exit {code}, command ran: {ran}:\n{err}");
    let said = format!("cannot restore: fd {fd} (file, rule <builtin>/20-files.rules:");
    assert!(err.contains(&said) && names_fd(&err, fd), "{err}");
    assert!(err.contains("Read-only file system (os error 30)"), "{err}");
    eprintln!("figures: read-only: `{}`", err.trim());
}

#[test]
fn a_file_to_reopen_for_writing_on_a_read_only_filesystem_is_refused() {
    let tmp = TempDir::new("pressure-ro");
    let Some(tmpfs) = Mount::new(&tmp.path().join("tmpfs"), &["-t", "tmpfs", "-o", "size=1m", "none"]) else {
        return;
    };
    refused_on_a_read_only_mount(&tmp, &tmpfs.0, || tmpfs.remount("remount,ro"));

    let source = tmp.path().join("source");
    std::fs::create_dir_all(&source).expect("source");
    let Some(bind) = Mount::new(&tmp.path().join("bind"), &["--bind", path_str(&source)]) else { return };
    refused_on_a_read_only_mount(&tmp, &bind.0, || bind.remount("remount,bind,ro"));
}

/// `fdholder --open FILE` with FILE (2 MiB, outside any small mount) then deleted: its bytes must be in the
/// image (`file deleted size <= 64MiB => contents`).
fn holder_of_a_deleted_file(tmp: &TempDir) -> Holder {
    let file = tmp.path().join("big.bin");
    std::fs::write(&file, vec![7u8; 2 << 20]).expect("the file");
    let holder = holder(tmp, &["--open", path_str(&file)]);
    std::fs::remove_file(&file).expect("delete the file");
    holder
}

#[test]
fn a_dump_to_a_full_disk_fails_and_leaves_nothing() {
    let tmp = TempDir::new("pressure-full");
    let holder = holder_of_a_deleted_file(&tmp);
    let Some(small) = Mount::new(&tmp.path().join("small"), &["-t", "tmpfs", "-o", "size=1m", "none"]) else {
        return;
    };
    let image = small.0.join("image");
    let (code, err) = dump(holder.pid(), &image);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("No space left on device (os error 28)"), "{err}");
    let said = format!(
        "cannot write the image of process {}: cannot write `{}/.image.partial-",
        holder.pid(),
        path_str(&small.0)
    );
    assert!(err.contains(&said), "the error names the process and the file: {err}");
    assert!(err.contains(&format!("nothing was written at {}", path_str(&image))), "{err}");
    assert_nothing_written(&image);
    assert_eq!(std::fs::read_dir(&small.0).expect("list").count(), 0, "the tmpfs is left empty");
    eprintln!("figures: full disk: `{}`", err.trim());

    // No inode left for the data directory.
    let Some(few) = Mount::new(&tmp.path().join("few"), &["-t", "tmpfs", "-o", "size=8m,nr_inodes=2", "none"]) else {
        return;
    };
    let image = few.0.join("image");
    let (code, err) = dump(holder.pid(), &image);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("No space left on device (os error 28)"), "{err}");
    assert_nothing_written(&image);
    eprintln!("figures: no inodes: `{}`", err.trim());

    // With room, the same dump is written whole.
    let Some(roomy) = Mount::new(&tmp.path().join("roomy"), &["-t", "tmpfs", "-o", "size=8m", "none"]) else {
        return;
    };
    let image = roomy.0.join("image");
    let (code, err) = dump(holder.pid(), &image);
    assert_eq!(code, 0, "{err}");
    assert!(image.join("SHA256SUMS").is_file() && image.join("manifest.json").is_file());
    let marker = tmp.path().join("MARKER");
    let (code, err, ran) = restore_marking(&image, &marker, |_| {});
    assert!(code == 0 && ran, "{err}");
}
