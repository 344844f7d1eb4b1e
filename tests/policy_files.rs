//! End-to-end: policy files as the hostile input they may be. As root, a policy path that anyone else
//! could change or redirect is refused, naming the component, its owner or mode and the fix, and the same
//! layout is fine once root's and mode 755. As anyone, only regular files of at most 16 MiB are read: a
//! FIFO does not hang a command, `/dev/zero` does not eat the memory. A file that is not UTF-8 is an error
//! in that file; a byte-order mark is skipped; an error at column 70,009 is drawn, cut around it.

mod common;
use common::{TempDir, running_as_root};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Exit code, stdout and stderr of `crrules ARGS`, which must end within 20 seconds (it is killed, and the
/// test fails, if not).
fn run(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crrules"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crrules");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            pipe.read_to_end(&mut text).unwrap();
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`crrules {}` hung: killed after 20 seconds", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code().unwrap_or(-1), out.join().unwrap(), err.join().unwrap())
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Root's checks run only as root; the tests that need them say so when they skip.
fn needs_root() -> bool {
    if !running_as_root() {
        eprintln!("skipped: the ownership checks apply to root only");
    }
    running_as_root()
}

#[test]
fn root_refuses_a_rule_file_reached_through_a_link_into_a_directory_others_can_write() {
    if !needs_root() {
        return;
    }
    let root = TempDir::new("trust-link");
    let shared = root.path().join("shared");
    let target = root.write("shared/10-site.rules", "pipe => close\n");
    chmod(&shared, 0o777);
    let link = root.write("etc/crrules/rules.d/10-site.rules", &format!("->{}", shown(&target)));
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 2, "{err}");
    let (link, shared) = (shown(&link), shown(&shared));
    assert!(
        err.contains(&format!(
            "policy path `{link}` leads through the symbolic link `{link}` to `{shared}`, which is writable by group \
             and others (mode 777)"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("run `chmod go-w {shared}`")), "{err}");
    assert!(err.contains("crrules::policy::writable"), "{err}");
    // The same layout, once the directory is root's alone, is fine.
    chmod(root.path().join("shared").as_path(), 0o755);
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn root_refuses_a_rules_d_whose_parent_others_can_write() {
    if !needs_root() {
        return;
    }
    let root = TempDir::new("trust-parent");
    root.write("etc/crrules/rules.d/10-site.rules", "pipe => close\n");
    let parent = root.path().join("etc/crrules");
    chmod(&parent, 0o757);
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 2, "{err}");
    let rules_d = shown(&parent.join("rules.d"));
    assert!(
        err.contains(&format!(
            "policy path `{rules_d}` goes through `{}`, which is writable by others (mode 757)",
            shown(&parent)
        )),
        "{err}"
    );
    assert!(err.contains(&format!("run `chmod go-w {}`", shown(&parent))), "{err}");
    chmod(&parent, 0o755);
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn root_refuses_a_rule_file_owned_by_nobody() {
    if !needs_root() {
        return;
    }
    let root = TempDir::new("trust-owner");
    let file = root.write("etc/crrules/rules.d/10-site.rules", "pipe => close\n");
    chown(&file, Some(65534), Some(65534)).unwrap();
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 2, "{err}");
    let file_shown = shown(&file);
    assert!(err.contains(&format!("policy path `{file_shown}` is owned by uid 65534, not by root")), "{err}");
    assert!(err.contains(&format!("run `chown root {file_shown}` if you trust its owner")), "{err}");
    assert!(err.contains("crrules::policy::owner"), "{err}");
    chown(&file, Some(0), Some(0)).unwrap();
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 0, "{err}");
}

/// `/tmp` and its like: root's file in a sticky directory anyone can write is still refused, with no
/// advice to `chmod go-w` a shared directory.
#[test]
fn root_refuses_a_policy_path_through_a_sticky_shared_directory() {
    if !needs_root() {
        return;
    }
    let root = TempDir::new("trust-sticky");
    let file = root.write("shared/site.rules", "pipe => close\n");
    let shared = root.path().join("shared");
    chmod(&shared, 0o1777);
    let (code, _, err) = run(&["lint", "--rules", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "policy path `{}` goes through `{}`, which is writable by group and others (mode 1777)",
            shown(&file),
            shown(&shared)
        )),
        "{err}"
    );
    assert!(err.contains("is shared (sticky, and writable by others): anyone may create a name in it"), "{err}");
    assert!(!err.contains("chmod go-w"), "{err}");
}

#[test]
fn a_fifo_in_a_rules_directory_is_refused_without_hanging() {
    let root = TempDir::new("fifo");
    root.write("etc/crrules/rules.d/10-site.rules", "pipe => close\n");
    let fifo = root.path().join("etc/crrules/rules.d/05-fifo.rules");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for command in ["lint", "rules"] {
        let (code, _, err) = run(&[command, "--root", root.str()]);
        assert_eq!(code, 2, "{command}: {err}");
        assert!(
            err.contains(&format!("policy file `{}` is not a regular file: it is a named pipe (FIFO)", shown(&fifo))),
            "{command}: {err}"
        );
        assert!(err.contains("crrules::policy::not_regular"), "{err}");
    }
}

#[test]
fn dev_zero_is_not_read() {
    let (code, _, err) = run(&["lint", "--rules", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("policy file `/dev/zero` is not a regular file: it is a character device"), "{err}");
    assert!(!err.contains("chmod"), "no advice to change /dev/zero: {err}");
}

#[test]
fn a_directory_named_as_a_rule_file_is_refused() {
    let root = TempDir::new("dir-file");
    root.write("etc/crrules/rules.d/10-site.rules", "pipe => close\n");
    let dir = root.path().join("etc/crrules/rules.d/20-dir.rules");
    fs::create_dir(&dir).unwrap();
    let (code, _, err) = run(&["lint", "--root", root.str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("policy file `{}` is not a regular file: it is a directory", shown(&dir))), "{err}");
}

#[test]
fn a_file_over_16_mib_is_refused_unread() {
    let dir = TempDir::new("large");
    let file = dir.write("large.rules", "");
    // Sparse: the size is all that is looked at.
    fs::File::options().write(true).open(&file).unwrap().set_len((16 << 20) + 1).unwrap();
    let (code, _, err) = run(&["lint", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("policy file `{}` is larger than 16 MiB (16777217 bytes)", shown(&file))), "{err}");
    assert!(err.contains("crrules::policy::too_large"), "{err}");
}

#[test]
fn a_file_not_utf8_is_an_error_in_that_file() {
    let dir = TempDir::new("latin1");
    let file = dir.path().join("latin1.rules");
    fs::write(&file, b"pipe => close\n# caf\xe9\nfile => close\n").unwrap();
    let (code, _, err) = run(&["lint", file.to_str().unwrap()]);
    assert_eq!(code, 1, "a finding, not a failure to run: {err}");
    let name = shown(&file);
    assert!(err.contains(&format!("`{name}` is not valid UTF-8: byte offset 19 (line 2) is 0xe9")), "{err}");
    assert!(err.contains(&format!("[{name}:2:6]")), "{err}");
    assert!(err.contains("not UTF-8") && err.contains("1 error(s)"), "{err}");
    // A command that needs the policy refuses it, as it refuses any error in it.
    let (code, _, err) = run(&["rules", "--rules", &name]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not valid UTF-8"), "{err}");
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let dir = TempDir::new("bom");
    let clean = dir.path().join("clean.rules");
    fs::write(&clean, "\u{feff}pipe => close\n").unwrap();
    let (code, _, err) = run(&["lint", clean.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 rule(s): 0 error(s)"), "{err}");
    // An error on the first line is at column 1, the mark not counted.
    let bad = dir.path().join("bad.rules");
    fs::write(&bad, "\u{feff}chrdev 1:3 => close\n").unwrap();
    let (code, _, err) = run(&["lint", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("[{}:1:1]", shown(&bad))) && err.contains("unknown kind `chrdev`"), "{err}");
    assert!(!err.contains('\u{feff}'), "{err}");
}

/// miette cannot draw a label past column 65,535 (it panicked, exit 101): the line is cut around it.
#[test]
fn an_error_at_column_70009_is_drawn_cut_around_it() {
    let dir = TempDir::new("long-line");
    let file = dir.write("long.rules", &format!("pipe {}=> frobnicate\n", " ".repeat(70_000)));
    let (code, _, err) = run(&["lint", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("[{}:1:70009]", shown(&file))), "{err}");
    assert!(err.contains("unknown action `frobnicate`"), "{err}");
    let line = err.lines().find(|l| l.contains("frobnicate") && l.contains('│')).expect("the line drawn");
    assert!(line.starts_with(" 1 │ pipe  ") && line.contains("…") && line.ends_with("=> frobnicate"), "{line}");
    assert!(err.len() < 2000, "{} bytes drawn", err.len());
}
