//! Privilege (issue 12), through the real binary, beside what tests/fdtable.rs already holds (an image file
//! owned by another user; a manifest edited to reopen /etc/shadow for an image of `nobody`):
//! - `nobody` checks its own process (and `check --all` lists it), and is refused root's with a permission
//!   error naming the pid (exit 2), for `check`, `dump` and `handover` alike; a process that becomes
//!   `nobody` (and dumpable again) is refused to `nobody` before and checked after;
//! - images attacked: data file names in the manifest that leave the image (`../`, absolute) and a
//!   `SHA256SUMS` line naming a file outside it; a symlink swapped in for a data file, and for the image
//!   directory itself, over and over while restores run (the directory was read by its path at every step,
//!   so a swap between the owner check and the reads could restore another root-owned image: it is now
//!   opened once, refusing a symlink, and read through that fd); an image directory other users can write,
//!   or that another user owns; a directory above the image that another user owns or may write (0777,
//!   0775; uid 65534 even when sticky), which `nobody` is shown to rename the image out of, refused naming
//!   the directory and the fix, while a sticky 1777 one (out of which it cannot) is accepted, and a symbolic
//!   link on the way refused; a manifest edited to write a file the recorded user may only read, and to
//!   make a file in a directory that user cannot enter. Every refusal runs no command, and its exact message
//!   is printed (`figures:`).
//!
//! Everything here needs root (to run as `nobody`, to own the images); without it the tests say so and skip.

mod common;
mod fdtable_common;
mod harden_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{image_fd, is_root, manifest, names_fd, path_str, reseal};
use harden_common::{STABLE, assert_no_panic, assert_nothing_written, crrules_at, fd_of, processes, restore_marking};
use scan_common::{Holder, holder_path};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const NOBODY: u32 = 65534;

/// True when running as root; otherwise says why `test` skips.
fn root(test: &str) -> bool {
    if !is_root() {
        eprintln!("skipped {test}: needs root (to run as uid {NOBODY} and to own images)");
    }
    is_root()
}

/// A temp dir `nobody` can enter, with copies of crrules and fdholder it can run and an empty policy root
/// (the built-in policy).
struct Sandbox {
    tmp: TempDir,
    crrules: PathBuf,
    fdholder: PathBuf,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        let tmp = TempDir::new(tag);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let copy = |from: &Path, name: &str| {
            let to = tmp.path().join(name);
            std::fs::copy(from, &to).expect("copy a binary");
            to
        };
        let crrules = copy(Path::new(env!("CARGO_BIN_EXE_crrules")), "crrules");
        let fdholder = copy(&holder_path(), "fdholder");
        std::fs::create_dir(tmp.path().join("root")).expect("policy root");
        Sandbox { tmp, crrules, fdholder }
    }

    /// `fdholder ARGS`, as `user` when given; stderr discarded.
    fn holder(&self, args: &[&str], user: Option<u32>) -> Holder {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        Holder::spawn_with(&self.fdholder, &args, |c| {
            c.stderr(Stdio::null());
            if let Some(u) = user {
                c.uid(u).gid(u);
            }
        })
    }

    /// `crrules ARGS` as `nobody`, with `--root` of the empty policy root after the command word.
    fn as_nobody(&self, args: &[&str]) -> (i32, String, String) {
        let root = self.tmp.path().join("root");
        let mut all = vec![args[0], "--root", path_str(&root)];
        all.extend(&args[1..]);
        let (code, out, err) = crrules_at(&self.crrules, &all, |c| {
            c.uid(NOBODY).gid(NOBODY);
        });
        assert_no_panic(code, &err, &all.join(" "));
        (code, out, err)
    }
}

#[test]
fn nobody_checks_its_own_process_and_is_refused_roots() {
    if !root("nobody_checks_its_own_process_and_is_refused_roots") {
        return;
    }
    let sandbox = Sandbox::new("privilege-nobody");
    let own = sandbox.holder(&["--open-rw", "/dev/null"], Some(NOBODY));
    let roots = sandbox.holder(&["--open", "/dev/null"], None);
    let (own_pid, root_pid) = (own.pid().to_string(), roots.pid().to_string());

    let (code, out, err) = sandbox.as_nobody(&["check", "--pid", &own_pid, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let checked = processes(&out).remove(0);
    let null = fd_of(&checked, own.fd("open0")).expect("its /dev/null");
    assert_eq!((null["kind"].as_str(), null["action"].as_str()), (Some("chardev"), Some("reopen")), "{null}");

    let denied =
        format!("may not inspect the fds of process {root_pid}: permission denied (run as its owner or as root)");
    let (code, _, err) = sandbox.as_nobody(&["check", "--pid", &root_pid]);
    assert!(code == 2 && err.contains(&denied), "check: exit {code}:\n{err}");
    eprintln!("figures: nobody checks root's process: `{}`", err.trim());

    let image = sandbox.tmp.path().join("nobody-image");
    std::fs::set_permissions(sandbox.tmp.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, _, err) = sandbox.as_nobody(&["dump", "--pid", &root_pid, "--image", path_str(&image)]);
    assert!(code == 2 && err.contains(&denied), "dump: exit {code}:\n{err}");
    assert_nothing_written(&image);
    let marker = sandbox.tmp.path().join("MARKER");
    let (code, _, err) =
        sandbox.as_nobody(&["handover", "--pid", &root_pid, "--", "sh", "-c", "touch \"$1\"", "sh", path_str(&marker)]);
    assert!(code == 2 && err.contains(&denied) && !marker.exists(), "handover: exit {code}:\n{err}");
    std::fs::set_permissions(sandbox.tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // Every process on the host: its own is checked, root's are counted as unreadable.
    let (code, out, err) = sandbox.as_nobody(&["check", "--all", "--format", "json"]);
    assert!(code == 0 || code == 1, "check --all: exit {code}:\n{err}");
    let listed = processes(&out);
    assert!(listed.iter().any(|p| p["pid"] == own.pid()), "its own process is listed");
    assert!(!listed.iter().any(|p| p["pid"] == roots.pid()), "root's process is not");
    let summary = err.lines().find(|l| l.contains(" processes: ")).unwrap_or_else(|| panic!("no summary: {err}"));
    assert!(summary.contains("could not be read"), "{summary}");
    eprintln!("figures: nobody's check --all: {summary}");
}

#[test]
fn a_process_that_becomes_nobody_is_refused_before_and_checked_after() {
    if !root("a_process_that_becomes_nobody_is_refused_before_and_checked_after") {
        return;
    }
    let sandbox = Sandbox::new("privilege-setuid");
    let mut holder = sandbox.holder(&["--setuid"], None);
    let pid = holder.pid();
    let (code, _, err) = sandbox.as_nobody(&["check", "--pid", &pid.to_string()]);
    assert!(code == 2 && err.contains(&format!("may not inspect the fds of process {pid}")), "exit {code}:\n{err}");

    holder.send(b"drop\n");
    // The holder says nothing more (its stdout is gone): its status shows when it has changed.
    let uid_line = format!("Uid:\t{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}");
    let dropped = (0..1000).any(|_| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status.contains(&uid_line) || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            false
        }
    });
    assert!(dropped, "the holder never became uid {NOBODY}");
    // Dumpable again after its own prctl: the status may show the new uid a moment before that.
    let (code, out, err) = (0..100)
        .map(|_| sandbox.as_nobody(&["check", "--pid", &pid.to_string(), "--format", "json"]))
        .find(|(code, _, _)| *code != 2)
        .unwrap_or_else(|| panic!("nobody was never let in"));
    assert_eq!(code, 0, "{err}");
    let checked = processes(&out).remove(0);
    for (name, kind) in STABLE {
        assert_eq!(fd_of(&checked, holder.fd(name)).map(|f| f["kind"].clone()), Some(json!(kind)), "{name}");
    }
    let (code, _, err) = run(&["check", "--pid", &pid.to_string()]);
    assert_eq!(code, 0, "root checks it too:\n{err}");
}

// ---- Images attacked ----

/// A root-owned image of `fdholder --restorable` (a pipe with bytes saved in a data file) in `tmp/image`,
/// and the holder's fd numbers by name. The holder is gone (its listening port is free for the restores)
/// and its files are left where the image's fds name them, in `tmp/holder`.
fn restorable_image(tmp: &TempDir) -> (std::collections::HashMap<String, i32>, PathBuf) {
    let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
    let own_tmp = tmp.path().join("holder");
    std::fs::create_dir(&own_tmp).expect("holder tmp");
    let mut holder = Holder::spawn_with(&holder_path(), &[OsStr::new("--restorable")], |c| {
        c.stderr(log).env("TMPDIR", &own_tmp);
    });
    let image = tmp.path().join("image");
    let (code, _, err) = run(&["dump", "--pid", &holder.pid().to_string(), "--image", path_str(&image)]);
    assert_eq!(code, 0, "{err}");
    holder.kill();
    (holder.fds.clone(), image)
}

/// `cp -a FROM TO`.
fn copy_image(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(status.success());
}

/// Writes the manifest back after `edit`, and `SHA256SUMS` to match.
fn edit_manifest(image: &Path, edit: impl FnOnce(&mut Value)) {
    let mut m = manifest(image);
    edit(&mut m);
    std::fs::write(image.join("manifest.json"), serde_json::to_string(&m).expect("json")).expect("write");
    reseal(image);
}

/// The restore of `image` is refused, runs nothing, and says `said` (whitespace as miette wraps it aside).
fn assert_refused(image: &Path, said: &str) -> String {
    let marker = image.with_extension("marker");
    let (code, err, ran) = restore_marking(image, &marker, |_| {});
    assert_no_panic(code, &err, "restore");
    assert!(code == 2 && !ran, "exit {code}, command ran: {ran}:\n{err}");
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(said), "the refusal must say `{said}`:\n{err}");
    flat
}

#[test]
fn data_names_that_leave_the_image_are_refused() {
    if !root("data_names_that_leave_the_image_are_refused") {
        return;
    }
    let tmp = TempDir::new("privilege-traversal");
    let (fds, image) = restorable_image(&tmp);
    let pipe_r = fds["pipe_r"];
    let data = image_fd(&manifest(&image), pipe_r)["restore"]["data"].as_str().expect("a data file").to_owned();
    for (i, name) in ["data/../manifest.json", "../../../etc/passwd", "/etc/passwd", "data/../../image/SHA256SUMS"]
        .into_iter()
        .enumerate()
    {
        let edited = tmp.path().join(format!("traversal-{i}"));
        copy_image(&image, &edited);
        edit_manifest(&edited, |m| {
            let fds = m["fds"].as_array_mut().expect("fds");
            let entry = fds.iter_mut().find(|f| f["fd"] == pipe_r).expect("pipe_r");
            entry["restore"]["data"] = json!(name);
        });
        let said = assert_refused(&edited, &format!("image damaged: `{name}` is not covered by SHA256SUMS"));
        eprintln!("figures: data `{name}`: `{said}`");
    }
    // A SHA256SUMS line naming a file outside the image, with its right checksum.
    let edited = tmp.path().join("traversal-sums");
    copy_image(&image, &edited);
    std::fs::write(tmp.path().join("outside"), data.as_bytes()).expect("outside");
    let sums = std::fs::read_to_string(edited.join("SHA256SUMS")).expect("sums");
    let line = sums.lines().next().expect("a line");
    let extra = format!("{}  ../outside\n", &line[..64]);
    std::fs::write(edited.join("SHA256SUMS"), format!("{sums}{extra}")).expect("write sums");
    let lines = sums.lines().count() + 1;
    let said = assert_refused(
        &edited,
        &format!(
            "image damaged: line {lines} of SHA256SUMS is malformed: `../outside` is not a file of an image \
             (`manifest.json` or `data/NAME`)"
        ),
    );
    eprintln!("figures: SHA256SUMS `../outside`: `{said}`");
}

/// Exchanges the names `a` and `b` (`renameat2` with `RENAME_EXCHANGE`) over and over until `stop`.
fn keep_swapping(a: PathBuf, b: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let (a, b) = (path_c(&a), path_c(&b));
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            #[allow(unsafe_code, reason = "renameat2 has no wrapper in std or nix")]
            // SAFETY: both paths are NUL-terminated and live across the call; the other arguments are integers.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            assert_eq!(r, 0, "renameat2: {}", std::io::Error::last_os_error());
            swaps += 1;
        }
        swaps
    })
}

fn path_c(path: &Path) -> std::ffi::CString {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL")
}

/// Runs `runs` restores of `image` while `a` and `b` are exchanged over and over; the outcomes, as the
/// restores' first line of stderr (flattened) with how many times each came.
fn restores_while_swapping(image: &Path, a: PathBuf, b: PathBuf, runs: usize) -> Vec<(String, usize)> {
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = keep_swapping(a, b, stop.clone());
    let marker = image.with_extension("marker");
    let mut outcomes: Vec<(String, usize)> = Vec::new();
    for _ in 0..runs {
        let (code, err, ran) = restore_marking(image, &marker, |_| {});
        assert_no_panic(code, &err, "restore");
        assert_eq!(code == 0, ran, "the command runs exactly when the restore succeeds:\n{err}");
        // The first line, without how long the restore took.
        let first = err.split("help:").next().unwrap_or_default().split(" prepared in ").next().unwrap_or_default();
        let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
        match outcomes.iter_mut().find(|(o, _)| *o == first) {
            Some((_, n)) => *n += 1,
            None => outcomes.push((first, 1)),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("the swapper");
    assert!(swaps > runs, "the names were exchanged only {swaps} times");
    outcomes
}

#[test]
fn a_symlink_swapped_in_for_a_data_file_is_never_followed() {
    if !root("a_symlink_swapped_in_for_a_data_file_is_never_followed") {
        return;
    }
    let tmp = TempDir::new("privilege-swap-data");
    let (fds, image) = restorable_image(&tmp);
    let data = image_fd(&manifest(&image), fds["pipe_r"])["restore"]["data"].as_str().expect("data").to_owned();
    let real = image.join(&data);
    // The symlink's target holds other bytes: read through the symlink, they would fail their checksum.
    let decoy = tmp.path().join("decoy");
    std::fs::write(&decoy, b"other bytes").expect("decoy");
    let swap = tmp.path().join("swap");
    std::os::unix::fs::symlink(&decoy, &swap).expect("symlink");
    let outcomes = restores_while_swapping(&image, real, swap, 100);
    eprintln!("figures: 100 restores with a symlink swapped for {data}: {outcomes:?}");
    for (said, _) in &outcomes {
        let allowed = said.starts_with("crrules: ")
            || said.contains("is a symbolic link: an image holds only regular files")
            || said.contains("image incomplete:")
            || said.ends_with("9-pipe`: it was moved while it was opened");
        assert!(allowed, "a restore with a data file swapped for a symlink: `{said}`");
    }
}

#[test]
fn a_symlink_swapped_in_for_the_image_directory_never_restores_another_image() {
    if !root("a_symlink_swapped_in_for_the_image_directory_never_restores_another_image") {
        return;
    }
    const RUNS: usize = 200;
    let tmp = TempDir::new("privilege-swap-dir");
    // The image asked for holds /dev/null once; the decoy, another valid root-owned image, twice.
    let log = |name: &str| std::fs::File::create(tmp.path().join(name)).expect("log");
    let one = Holder::spawn_with(&holder_path(), &[OsStr::new("--open"), OsStr::new("/dev/null")], |c| {
        c.stderr(log("one.log"));
    });
    let args = ["--open", "/dev/null", "--open", "/dev/null"].map(OsStr::new);
    let two = Holder::spawn_with(&holder_path(), &args, |c| {
        c.stderr(log("two.log"));
    });
    let image = tmp.path().join("image");
    let decoy = tmp.path().join("decoy");
    for (h, dir) in [(&one, &image), (&two, &decoy)] {
        let (code, _, err) = run(&["dump", "--pid", &h.pid().to_string(), "--image", path_str(dir)]);
        assert_eq!(code, 0, "{err}");
    }
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&decoy, &link).expect("symlink");
    let outcomes = restores_while_swapping(&image, image.clone(), link, RUNS);
    eprintln!("figures: {RUNS} restores with a symlink swapped for the image directory: {outcomes:?}");
    let genuine = format!("crrules: 4 fds from {}", path_str(&image));
    for (said, _) in &outcomes {
        assert!(!said.contains(": 5 fds from"), "the decoy image was restored: `{said}`");
        let allowed = *said == genuine
            || said.contains("is a symbolic link: an image holds only regular files")
            || said.ends_with("image`: it was replaced while it was opened");
        assert!(allowed, "a restore with its directory swapped for a symlink: `{said}`");
    }
}

#[test]
fn an_image_directory_others_can_write_or_own_is_refused() {
    if !root("an_image_directory_others_can_write_or_own_is_refused") {
        return;
    }
    let tmp = TempDir::new("privilege-dir-mode");
    let (_, image) = restorable_image(&tmp);
    let marker = tmp.path().join("MARKER");
    let (code, err, ran) = restore_marking(&image, &marker, |_| {});
    assert!(code == 0 && ran, "the control restore:\n{err}");
    let shown = path_str(&image).to_owned();
    let data = image.join("data");
    let cases: [(&Path, u32, Option<u32>, String); 4] = [
        (&image, 0o777, None, format!("`{shown}` is writable by group or others (mode 0o777)")),
        (&image, 0o770, None, format!("`{shown}` is writable by group or others (mode 0o770)")),
        (&data, 0o733, None, format!("`{shown}/data` is writable by group or others (mode 0o733)")),
        (&image, 0o700, Some(NOBODY), format!("`{shown}` is owned by uid {NOBODY}, not by uid 0 who runs crrules")),
    ];
    for (dir, mode, owner, said) in cases {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::chown(dir, owner, None).expect("chown");
        let flat = assert_refused(&image, &said);
        eprintln!("figures: {} mode {mode:o} owner {owner:?}: `{flat}`", dir.display());
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(dir, Some(0), None).expect("chown");
    }
}

/// `mv FROM TO` as `nobody`: whether it could rename the entry.
fn nobody_renames(from: &Path, to: &Path) -> bool {
    let out = std::process::Command::new("mv").arg("-T").arg(from).arg(to).uid(NOBODY).gid(NOBODY).output();
    out.expect("run mv").status.success()
}

#[test]
fn a_directory_above_the_image_others_can_change_is_refused_unless_sticky() {
    if !root("a_directory_above_the_image_others_can_change_is_refused_unless_sticky") {
        return;
    }
    let tmp = TempDir::new("above");
    let (_, dumped) = restorable_image(&tmp);
    let above = tmp.path().join("above");
    std::fs::create_dir(&above).expect("above");
    let image = above.join("image");
    std::fs::rename(&dumped, &image).expect("move the image under `above`");
    let marker = tmp.path().join("MARKER");
    let (code, err, ran) = restore_marking(&image, &marker, |_| {});
    assert!(code == 0 && ran, "the control restore, under a directory of root's (0755):\n{err}");

    let shown = path_str(&above).to_owned();
    let gid = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&above).expect("stat"));
    let moved = |who: &str, fix: &str, mode: u32| {
        format!(
            "`{shown}`, above the image, is writable by {who} (uid 0, gid {gid}, mode {mode:#o}): they could swap the \
             image for another directory; run `chmod {fix} {shown}`, or `chmod +t` it if others must make entries \
             in it"
        )
    };
    let owned = |mode: u32| {
        format!(
            "`{shown}`, above the image, is owned by uid {NOBODY}, not by root (gid {gid}, mode {mode:#o}): its owner \
             could swap the image for another directory; run `chown root {shown}` if you trust uid {NOBODY}"
        )
    };
    let cases: [(u32, Option<u32>, String); 4] = [
        (0o777, None, moved("group and others", "go-w", 0o777)),
        (0o775, None, moved("its group", "g-w", 0o775)),
        (0o755, Some(NOBODY), owned(0o755)),
        // The sticky bit keeps others from moving root's entries, not the directory's owner.
        (0o1777, Some(NOBODY), owned(0o1777)),
    ];
    for (mode, owner, said) in cases {
        std::fs::set_permissions(&above, std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::chown(&above, owner, None).expect("chown");
        let flat = assert_refused(&image, &said);
        eprintln!("figures: a directory above the image, mode {mode:o} owner {owner:?}: `{flat}`");
        std::os::unix::fs::chown(&above, Some(0), None).expect("chown");
    }

    // What the refusal guards against: in a directory others may write, another user moves root's image.
    std::fs::set_permissions(&above, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let aside = above.join("aside");
    assert!(nobody_renames(&image, &aside), "uid {NOBODY} could not move an image in a 0777 directory");
    std::fs::rename(&aside, &image).expect("put the image back");

    // Sticky and writable by all, as /tmp is: nobody else can move root's image, and the restore runs.
    std::fs::set_permissions(&above, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    assert!(!nobody_renames(&image, &aside), "uid {NOBODY} moved root's image out of a sticky directory");
    let (code, err, ran) = restore_marking(&image, &marker, |_| {});
    assert!(code == 0 && ran, "the restore under a sticky 1777 directory:\n{err}");

    // A symbolic link on the way is refused, and the path without it named.
    std::fs::set_permissions(&above, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink("above", &link).expect("symlink");
    let flat = assert_refused(
        &link.join("image"),
        &format!(
            "`{}`, on the way to the image, is a symbolic link (to `above`): as root, crrules reads an image only \
             through a path without symbolic links, as it refuses one at the image itself; give the path it leads \
             to, `{}`",
            path_str(&link),
            path_str(&image)
        ),
    );
    eprintln!("figures: a symbolic link above the image: `{flat}`");
}

/// The dump, as root, holds the directory it writes in to the rule the restore holds it to: where others
/// may swap what is written (0777, not sticky) or through a link, it writes nothing and says why; in a
/// sticky directory it writes.
#[test]
fn a_dump_is_not_written_where_others_could_swap_it() {
    if !root("a_dump_is_not_written_where_others_could_swap_it") {
        return;
    }
    let tmp = TempDir::new("dump-above");
    let above = tmp.path().join("above");
    std::fs::create_dir(&above).expect("above");
    let holder = Holder::spawn_with(&holder_path(), &[OsStr::new("--open"), OsStr::new("/dev/null")], |c| {
        c.stderr(Stdio::null());
    });
    let pid = holder.pid().to_string();
    let image = above.join("image");
    std::fs::set_permissions(&above, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, _, err) = run(&["dump", "--pid", &pid, "--image", path_str(&image)]);
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(code, 2, "{err}");
    let said = format!("`{}`, above the image, is writable by group and others", path_str(&above));
    assert!(flat.contains(&said), "{err}");
    assert_nothing_written(&image);
    eprintln!("figures: a dump under a 0777 directory: `{flat}`");

    let link = tmp.path().join("link");
    std::os::unix::fs::symlink("above", &link).expect("symlink");
    std::fs::set_permissions(&above, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (code, _, err) = run(&["dump", "--pid", &pid, "--image", path_str(&link.join("image"))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("on the way to the image, is a symbolic link"), "{err}");
    assert_nothing_written(&image);

    std::fs::set_permissions(&above, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let (code, _, err) = run(&["dump", "--pid", &pid, "--image", path_str(&image)]);
    assert_eq!(code, 0, "the dump into a sticky 1777 directory: {err}");
    assert!(image.join("manifest.json").is_file());
}

#[test]
fn a_manifest_naming_what_the_recorded_user_cannot_open_is_refused() {
    if !root("a_manifest_naming_what_the_recorded_user_cannot_open_is_refused") {
        return;
    }
    let sandbox = Sandbox::new("privilege-creds");
    // nobody's own file, deleted while held: its bytes are saved, and come back as an unnamed file made in
    // the directory it had.
    let own_dir = sandbox.tmp.path().join("own");
    std::fs::create_dir(&own_dir).expect("own dir");
    std::os::unix::fs::chown(&own_dir, Some(NOBODY), Some(NOBODY)).expect("chown");
    let file = own_dir.join("notes.txt");
    std::fs::write(&file, b"nobody's notes\n").expect("file");
    std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).expect("chown");
    let holder = sandbox.holder(&["--open-rw", "/dev/null", "--open", path_str(&file)], Some(NOBODY));
    std::fs::remove_file(&file).expect("delete");
    let (null, deleted) = (holder.fd("open0"), holder.fd("open1"));
    let image = sandbox.tmp.path().join("image");
    let (code, _, err) = run(&["dump", "--pid", &holder.pid().to_string(), "--image", path_str(&image)]);
    assert_eq!(code, 0, "{err}");
    let m = manifest(&image);
    assert_eq!(m["process"]["creds"]["uid"], json!([NOBODY, NOBODY, NOBODY, NOBODY]));
    assert_eq!(image_fd(&m, deleted)["restore"]["how"], "contents", "{}", image_fd(&m, deleted));
    let marker = sandbox.tmp.path().join("MARKER");
    let (code, err, ran) = restore_marking(&image, &marker, |_| {});
    assert!(code == 0 && ran, "the control restore:\n{err}");

    // /dev/null read-write now says /etc/passwd, which nobody may read but not write.
    let passwd = sandbox.tmp.path().join("passwd");
    copy_image(&image, &passwd);
    edit_manifest(&passwd, |m| {
        let entry = m["fds"].as_array_mut().expect("fds").iter_mut().find(|f| f["fd"] == null).expect("null");
        entry["restore"]["path"] = json!("/etc/passwd");
        entry["restore"]["expect"] = json!({"file_type": "regular"});
        for (key, value) in
            [("kind", "file"), ("link", "/etc/passwd"), ("path", "/etc/passwd"), ("file_type", "regular")]
        {
            entry["facts"][key] = json!(value);
        }
    });
    let said = format!("cannot open /etc/passwd: permission denied to uid {NOBODY} (the image's process)");
    let flat = assert_refused(&passwd, &said);
    assert!(names_fd(&flat, null), "{flat}");
    eprintln!("figures: /etc/passwd for writing: `{flat}`");

    // The deleted file's bytes now to be made in /root, which nobody cannot enter.
    if std::fs::metadata("/root").map(|m| m.permissions().mode() & 0o005 == 0).unwrap_or(false) {
        let in_root = sandbox.tmp.path().join("in-root");
        copy_image(&image, &in_root);
        edit_manifest(&in_root, |m| {
            let entry = m["fds"].as_array_mut().expect("fds").iter_mut().find(|f| f["fd"] == deleted).expect("file");
            entry["restore"]["name"] = json!("/root/notes.txt");
        });
        let flat = assert_refused(&in_root, "cannot make an unnamed file in /root: Permission denied (os error 13)");
        assert!(names_fd(&flat, deleted), "{flat}");
        eprintln!("figures: an unnamed file in /root: `{flat}`");
    } else {
        eprintln!("/root is open to others here: its case is left out");
    }
}
