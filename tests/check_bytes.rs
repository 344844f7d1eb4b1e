//! Issue 7, paths and names are bytes: a real process holding device nodes whose names are not UTF-8 or
//! hold control characters, and processes whose command names do. The table shows them escaped, the JSON
//! carries them byte for byte (`{"hex": ...}` when not UTF-8), `check --facts` reads them back, and a
//! device behind such a name is decided by its numbers like any other.

mod common;
mod scan_common;

use common::{TempDir, run};
use crrules_engine::facts::{ByteString, DevNum};
use crrules_engine::scan::{ScanOptions, scan_process};
use scan_common::Holder;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Names of `/dev/kvm` nodes (10:232) in a temp dir, and how the table shows each. Before the fix a name
/// that is not UTF-8 made the fd look closed in the table, and the process checkpointable (exit 0).
const DEVICE_NAMES: &[(&[u8], &str)] = &[
    (b"\xffkvm", r"\xffkvm"),
    (b"kvm\xc3", r"kvm\xc3"),
    (b"kvm\nPWNED", r"kvm\nPWNED"),
    (b"\x1b[31mkvm", r"\x1b[31mkvm"),
    (br"k\xffvm", r"k\\xffvm"),
];

/// Command names (at most 15 bytes, the kernel's limit), how the table's heading shows each, and the JSON
/// `comm`.
fn comms() -> Vec<(&'static [u8], &'static str, Value)> {
    vec![
        (b"ok\nPWNED", r"ok\nPWNED", json!("ok\nPWNED")),
        (b"\xff\xfe", r"\xff\xfe", json!({"hex": "fffe"})),
        (br"a\b", r"a\\b", json!(r"a\b")),
        (b"\x1b]0;hi\x07", r"\x1b]0;hi\x07", json!("\u{1b}]0;hi\u{7}")),
    ]
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the JSON carries these bytes: a string when they are UTF-8, else the hex form.
fn json_bytes(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({"hex": hex(bytes)}),
    }
}

fn fd_object(json: &Value, fd: i32) -> &Value {
    json["fds"].as_array().unwrap().iter().find(|f| f["fd"] == fd).unwrap_or_else(|| panic!("no fd {fd} in {json}"))
}

#[test]
fn r7_devices_behind_names_that_are_not_text_are_decided_and_shown_escaped() {
    if !running_as_root() {
        eprintln!("skipped: making device nodes needs root");
        return;
    }
    let root = TempDir::new("bytes");
    let dir = root.path().join("dev");
    std::fs::create_dir(&dir).unwrap();
    let kvm = nix::sys::stat::makedev(10, 232);
    let paths: Vec<PathBuf> = DEVICE_NAMES
        .iter()
        .map(|(name, _)| {
            let path = dir.join(OsStr::from_bytes(name));
            nix::sys::stat::mknod(
                &path,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                kvm,
            )
            .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
            path
        })
        .collect();
    let mut args: Vec<&OsStr> = Vec::new();
    for path in &paths {
        args.extend([OsStr::new("--open"), path.as_os_str()]);
    }
    let holder = Holder::spawn_os(&args);
    let pid = holder.pid().to_string();
    let fds: Vec<i32> = (0..paths.len()).map(|i| holder.fd(&format!("open{i}"))).collect();

    // The scanner keeps each path exactly as `readlink` gives it, with every fact read and with the fewest.
    for opts in [ScanOptions::all(), ScanOptions::minimal()] {
        let scan = scan_process(holder.pid(), &opts).unwrap();
        for (&fd, path) in fds.iter().zip(&paths) {
            let f =
                scan.fds.iter().find_map(|e| e.facts().filter(|f| f.fd == fd)).unwrap_or_else(|| panic!("{scan:?}"));
            let bytes = path.as_os_str().as_bytes();
            assert_eq!(
                (f.path.as_ref().map(ByteString::as_bytes), f.link.as_bytes()),
                (Some(bytes), bytes),
                "{opts:?}"
            );
            assert_eq!(f.dev, Some(DevNum { major: 10, minor: 232 }), "{f:?}");
        }
    }

    // The table: every node rejected as /dev/kvm, its name escaped on one line.
    let (code, table, err) = run(&["check", "--root", root.str(), "--pid", &pid]);
    assert_eq!(code, 1, "{table}{err}");
    assert!(table.starts_with(&format!("pid {pid} fdholder: NOT checkpointable\n")), "{table}");
    assert!(!table.contains("closed during the scan"), "{table}");
    assert!(!table.contains(|c: char| c.is_control() && c != '\n'), "raw control characters: {table:?}");
    for (&fd, (_, shown)) in fds.iter().zip(DEVICE_NAMES) {
        let row = table.lines().find(|l| l.starts_with(&format!("{fd} "))).unwrap_or_else(|| panic!("{table}"));
        assert!(row.contains(&format!("{shown} (10:232)")) && row.contains(" reject "), "{row}");
        assert!(row.contains("/dev/kvm: a virtual machine"), "{row}");
    }

    // JSON: rejected too, the path and link byte for byte.
    let (code, live, err) = run(&["check", "--root", root.str(), "--pid", &pid, "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let json: Value = serde_json::from_str(live.trim()).unwrap_or_else(|e| panic!("{e}: {live}"));
    for (&fd, path) in fds.iter().zip(&paths) {
        let f = fd_object(&json, fd);
        let want = json_bytes(path.as_os_str().as_bytes());
        assert_eq!((&f["path"], &f["link"]), (&want, &want), "{f}");
        assert_eq!((f["dev"].as_str(), f["action"].as_str()), (Some("10:232"), Some("reject")), "{f}");
    }
    assert_eq!(fd_object(&json, fds[0])["path"], json!({"hex": hex(paths[0].as_os_str().as_bytes())}));

    // Saved and decided again offline: the same bytes, the same decisions, the same output.
    let saved = root.write("saved.jsonl", &live);
    let (code, offline, err) =
        run(&["check", "--root", root.str(), "--facts", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(offline, live);

    // RON (as the binary writes it, read with `implicit_some`) carries the same bytes.
    let (code, ron_text, err) = run(&["check", "--root", root.str(), "--pid", &pid, "--format", "ron"]);
    assert_eq!(code, 1, "{err}");
    let opts = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let from_ron: Value = opts.from_str(ron_text.trim()).unwrap_or_else(|e| panic!("{e}: {ron_text}"));
    assert_eq!(fd_object(&from_ron, fds[0])["path"], fd_object(&json, fds[0])["path"]);
}

#[test]
fn r7_command_names_are_bytes_shown_escaped() {
    for (comm, shown, in_json) in comms() {
        let holder = Holder::spawn_os(&[OsStr::new("--comm"), OsStr::from_bytes(comm)]);
        let pid = holder.pid().to_string();
        let stat = std::fs::read(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(stat, [comm, b"\n"].concat(), "the kernel took the name as given");
        let root = TempDir::new("comm");

        let (code, table, err) = run(&["check", "--root", root.str(), "--pid", &pid]);
        assert!(code == 0 || code == 1, "{err}");
        let mut lines = table.lines();
        let heading = lines.next().unwrap();
        assert!(heading.starts_with(&format!("pid {pid} {shown}: ")), "{heading:?}");
        assert_eq!(lines.next().unwrap().split_whitespace().next(), Some("FD"), "{table}");
        assert!(!table.contains(|c: char| c.is_control() && c != '\n'), "raw control characters: {table:?}");

        let (_, live, err) = run(&["check", "--root", root.str(), "--pid", &pid, "--format", "json"]);
        let json: Value = serde_json::from_str(live.trim()).unwrap_or_else(|e| panic!("{e}: {live}{err}"));
        assert_eq!(json["comm"], in_json);
        let saved = root.write("saved.jsonl", &live);
        let (_, offline, err) = run(&["check", "--root", root.str(), "--facts", saved.to_str().unwrap()]);
        assert!(offline.starts_with(&format!("pid {pid} {shown}: ")), "{offline}{err}");
    }
}
