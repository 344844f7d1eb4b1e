//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/TARGET/{ok,err,seed}-*`) from the shipped policy
//! and from real captures: it runs `fdholder` in several modes and copies what the kernel gives for its fds
//! (fdinfo texts and link texts, one of each shape), its mountinfo, a few replies of every sock_diag dump,
//! `crrules facts --pid N` for each holder (whole, and one file per kind of fd) and the manifest of
//! `crrules dump --pid N --image DIR` (whole, and one file per fd). Seeds it wrote before are replaced;
//! what the fuzzer added is kept.
//!
//! Run from the repository root, after `cargo build --release --bins --examples`:
//! `cargo run --release --example fuzz_seeds`. Needs root for every kind of fd (fanotify, the packet
//! socket); without it, those are left out.

use crrules_engine::fuzzing::{Dump, sock_diag_replies};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The fdholder modes captured, each with a short name for the seed files.
const MODES: &[(&str, &[&str])] = &[
    ("default", &[]),
    ("kinds", &["--kinds"]),
    ("inotify", &["--inotify"]),
    ("restorable", &["--restorable"]),
    ("fifo", &["--fifo"]),
    ("socketpair", &["--socketpair"]),
    ("daemon", &["--daemon"]),
    ("pty", &["--pty"]),
    ("writer-exited", &["--writer-exited"]),
];

/// The most messages kept of one sock_diag reply: enough to show each family's attributes.
const MESSAGES_PER_REPLY: usize = 6;

/// A running holder, ended (stdin closed, then waited for) when dropped.
struct Holder {
    child: Child,
    map: Map<String, Value>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn start(fdholder: &Path, args: &[&str]) -> Option<Holder> {
    let mut child = Command::new(fdholder)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?).read_line(&mut line).ok()?;
    let map = serde_json::from_str(&line).ok();
    let holder = Holder { child, map: map.unwrap_or_default() };
    (!holder.map.is_empty()).then_some(holder)
}

/// Every fd of `pid` with its name in the holder's map (`fdN` when it has none).
fn fds_of(pid: u32, map: &Map<String, Value>) -> Vec<(String, u32)> {
    let names: BTreeMap<u64, &str> = map.iter().filter_map(|(k, v)| Some((v.as_u64()?, k.as_str()))).collect();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut fds: Vec<u32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    fds.sort_unstable();
    fds.into_iter().map(|fd| (names.get(&u64::from(fd)).map_or(format!("fd{fd}"), |n| n.to_string()), fd)).collect()
}

/// What the seeds of one target are written into, one file per distinct shape.
struct Seeds {
    dir: PathBuf,
    shapes: BTreeSet<Vec<u8>>,
    written: BTreeSet<PathBuf>,
    files: usize,
    bytes: usize,
}

impl Seeds {
    /// The target's corpus folder, emptied of the seeds written before.
    fn new(root: &Path, target: &str) -> Seeds {
        let dir = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir).expect("the corpus folder can be made");
        for entry in std::fs::read_dir(&dir).expect("the corpus folder can be read").flatten() {
            let name = entry.file_name();
            if [&b"ok-"[..], b"err-", b"seed-"].iter().any(|p| name.as_bytes().starts_with(p)) {
                std::fs::remove_file(entry.path()).expect("an old seed can be removed");
            }
        }
        Seeds { dir, shapes: BTreeSet::new(), written: BTreeSet::new(), files: 0, bytes: 0 }
    }

    /// Writes `bytes` as `name` unless a seed of the same shape was written already.
    fn add(&mut self, name: &str, shape: Vec<u8>, bytes: &[u8]) {
        if !self.shapes.insert(shape) {
            return;
        }
        let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
        // A second seed of another shape under the same name (two files of one mode) gets a number.
        let (stem, ext) = name.split_once('.').map_or((name.as_str(), String::new()), |(s, e)| (s, format!(".{e}")));
        let path = (1..)
            .map(|n| self.dir.join(if n == 1 { name.clone() } else { format!("{stem}-{n}{ext}") }))
            .find(|p| !self.written.contains(p))
            .expect("some number is free");
        std::fs::write(&path, bytes).expect("a seed can be written");
        self.written.insert(path);
        self.files += 1;
        self.bytes += bytes.len();
    }
}

/// A text's shape for deduplication: digits are all `0`.
fn digits_as_zero(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|&b| if b.is_ascii_digit() { b'0' } else { b }).collect()
}

/// An fdinfo text's shape: the key of each line (what comes before the first `:`), digits as `0`.
fn fdinfo_shape(text: &[u8]) -> Vec<u8> {
    let keys = text.split(|&b| b == b'\n').map(|line| line.split(|&b| b == b':').next().unwrap_or_default());
    digits_as_zero(&keys.collect::<Vec<_>>().join(&b'\n'))
}

/// A JSON object's shape: its keys, and for the `kind` or `how` it names, that name.
fn json_shape(v: &Value) -> Vec<u8> {
    let mut shape = Vec::new();
    if let Value::Object(map) = v {
        for (k, v) in map {
            shape.extend_from_slice(k.as_bytes());
            shape.push(b' ');
            if matches!(k.as_str(), "kind" | "how" | "action" | "state") {
                shape.extend_from_slice(v.to_string().as_bytes());
            }
            shape.extend(json_shape(v));
            shape.push(b',');
        }
    }
    shape
}

/// The first `n` messages of a netlink reply (whole, aligned as the kernel aligns them).
fn first_messages(reply: &[u8], n: usize) -> &[u8] {
    let mut at = 0;
    for _ in 0..n {
        let Some(len) = reply.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_ne_bytes) else {
            break;
        };
        let next = at + (len as usize).next_multiple_of(4);
        if len < 16 || next > reply.len() {
            break;
        }
        at = next;
    }
    &reply[..at]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = std::env::current_exe().expect("this example's path").parent().expect("its folder").to_owned();
    let fdholder = examples.join("fdholder");
    let crrules = examples.parent().expect("the profile's folder").join("crrules");
    for needed in [&fdholder, &crrules] {
        assert!(needed.exists(), "{} is not built: cargo build --release --bins --examples", needed.display());
    }

    let mut rules = Seeds::new(root, "rules");
    let mut lint = Seeds::new(root, "lint");
    let policies = [("ok-policy-", root.join("policy")), ("ok-", root.join("rules/tests/fixtures/ok"))];
    for (prefix, dir) in policies.iter().chain([("err-", root.join("rules/tests/fixtures/err"))].iter()) {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir).expect("a policy folder").flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "rules")) {
            let bytes = std::fs::read(path).expect("a policy file");
            let name = format!("{prefix}{}", path.file_name().expect("a file name").to_string_lossy());
            rules.add(&name, bytes.clone(), &bytes);
            lint.add(&name, bytes.clone(), &bytes);
        }
    }

    let mut fdinfo = Seeds::new(root, "fdinfo");
    let mut links = Seeds::new(root, "link");
    let mut mountinfo = Seeds::new(root, "mountinfo");
    let mut facts = Seeds::new(root, "facts");
    let mut manifests = Seeds::new(root, "image_manifest");
    let mut sock_diag = Seeds::new(root, "sock_diag");

    // The default policy's own test: saved facts with their decisions.
    let tests = std::fs::read(root.join("policy/tests/default.test.jsonl")).expect("the default policy's test");
    facts.add("ok-default-policy-test.jsonl", Vec::new(), &tests);

    let mut holders = Vec::new();
    for (mode, args) in MODES {
        let Some(holder) = start(&fdholder, args) else {
            eprintln!("fuzz_seeds: fdholder {} did not start; left out", args.join(" "));
            continue;
        };
        let mut pids = vec![(holder.child.id(), String::new())];
        if let Some(child) = holder.map.get("child_pid").and_then(Value::as_u64) {
            pids.push((child as u32, "child-".to_owned()));
        }
        for (pid, who) in &pids {
            for (name, fd) in fds_of(*pid, &holder.map) {
                if let Ok(text) = std::fs::read(format!("/proc/{pid}/fdinfo/{fd}")) {
                    fdinfo.add(&format!("ok-{mode}-{who}{name}"), fdinfo_shape(&text), &text);
                }
                if let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) {
                    let text = target.as_os_str().as_bytes();
                    links.add(&format!("ok-{mode}-{who}{name}"), digits_as_zero(text), text);
                }
            }
            if let Ok(text) = std::fs::read(format!("/proc/{pid}/mountinfo")) {
                mountinfo.add(&format!("ok-{mode}"), digits_as_zero(&text), &text);
            }
            let out = Command::new(&crrules).args(["facts", "--pid", &pid.to_string()]).output();
            let Some(out) = out.ok().filter(|o| o.status.success()) else {
                eprintln!("fuzz_seeds: crrules facts --pid {pid} ({who}{mode}) failed; left out");
                continue;
            };
            facts.add(&format!("ok-{mode}-{who}whole.jsonl"), out.stdout.clone(), &out.stdout);
            // One process object per kind of fd, each holding that fd alone.
            let Ok(Value::Object(process)) = serde_json::from_slice::<Value>(&out.stdout) else { continue };
            for fd in process.get("fds").and_then(Value::as_array).into_iter().flatten() {
                let mut one = process.clone();
                one.insert("fds".into(), Value::Array(vec![fd.clone()]));
                let kind = fd.get("kind").and_then(Value::as_str).unwrap_or("vanished");
                let line = format!("{}\n", Value::Object(one));
                facts.add(&format!("ok-{mode}-{who}{kind}.jsonl"), json_shape(fd), line.as_bytes());
            }
        }
        // The image of what the default policy lets crrules' backend dump.
        let image = std::env::temp_dir().join(format!("crrules-fuzz-seeds-{}", holder.child.id()));
        let pid = holder.child.id().to_string();
        let dumped = Command::new(&crrules)
            .args(["dump", "--pid", &pid, "--image"])
            .arg(&image)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if dumped.is_ok_and(|s| s.success())
            && let Ok(bytes) = std::fs::read(image.join("manifest.json"))
            && let Ok(Value::Object(manifest)) = serde_json::from_slice::<Value>(&bytes)
        {
            manifests.add(&format!("ok-{mode}-whole.json"), bytes.clone(), &bytes);
            for fd in manifest.get("fds").and_then(Value::as_array).into_iter().flatten() {
                let mut one = manifest.clone();
                one.insert("fds".into(), Value::Array(vec![fd.clone()]));
                let how = fd.pointer("/restore/how").and_then(Value::as_str).unwrap_or("none");
                let json = serde_json::to_vec(&Value::Object(one)).expect("JSON");
                manifests.add(&format!("ok-{mode}-{how}.json"), json_shape(fd), &json);
            }
        }
        let _ = std::fs::remove_dir_all(&image);
        holders.push(holder);
    }

    // Every dump while the holders hold their sockets: the first messages of each reply, and the end.
    for (i, dump) in Dump::ALL.into_iter().enumerate() {
        let name = format!("{dump:?}").to_lowercase();
        match sock_diag_replies(dump, i as u32 + 1) {
            Ok(replies) => {
                for (n, reply) in replies.iter().enumerate() {
                    let kept = if n + 1 == replies.len() { reply } else { first_messages(reply, MESSAGES_PER_REPLY) };
                    let prefix = if n + 1 == replies.len() { "seed-end" } else { "ok" };
                    sock_diag.add(&format!("{prefix}-{name}-{n}"), kept.to_vec(), kept);
                }
            }
            Err(e) => eprintln!("fuzz_seeds: the {name} dump failed: {e}"),
        }
    }
    drop(holders);

    let mut out = std::io::stdout().lock();
    for seeds in [&rules, &lint, &fdinfo, &links, &mountinfo, &sock_diag, &facts, &manifests] {
        let _ = writeln!(out, "{}: {} files, {} bytes", seeds.dir.display(), seeds.files, seeds.bytes);
    }
}
