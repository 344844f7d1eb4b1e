//! End-to-end: the kinds the fd-table backend recreates beyond tests/fdtable.rs's, through `crrules dump`
//! and `crrules restore`, against `fdholder --kinds` (each in a known state, none close-on-exec): inet
//! sockets that neither listen nor hold a TCP connection (unbound, bound, reset, connected UDP, UDP-Lite,
//! ping, raw), netlink sockets with their groups, packet sockets with their interface, FIFOs and
//! directories that have no name left, a pidfd on the process itself, and fanotify groups with their
//! marks. The restored command is `fdreport --out FILE` (behind a shell that first copies `/proc/net/raw`,
//! where a raw socket's peer shows: `getpeername` never says it); what it reports must be what the holder
//! had. Refused: a TCP connection (TCP repair is CRIU's) and a pidfd on another process, each by its fd and
//! reason, writing nothing.
//!
//! Each test writes its own policy (`--rules`, which replaces the whole policy): `recreate` for the kinds
//! under test, `close` for everything else. The holder is killed before each restore, as a checkpointed
//! process is, so its bound ports are free again. Raw and packet sockets need CAP_NET_RAW, fanotify
//! CAP_SYS_ADMIN, resolving marks to paths CAP_DAC_READ_SEARCH, and dumping another process's fds ptrace
//! rights over it: without root the tests say so and skip. Ping sockets need a group in
//! `net.ipv4.ping_group_range` (root's is not in it by default): without one they are left out, and said.

mod common;
mod fdtable_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{names_fd, path_str};
use scan_common::{Holder, example_path, holder_path};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// True when running as root; otherwise says why the test skips.
fn root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped {test}: raw and packet sockets, fanotify and dumping another process need root");
    }
    root
}

/// `fdholder --kinds`, its stderr in `tmp/holder.log`, holding no fd above 2 but its own; killed when
/// dropped, its temp dir removed.
struct Kinds {
    holder: Holder,
    dir: PathBuf,
}

impl Kinds {
    fn spawn(tmp: &TempDir) -> Kinds {
        let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
        let holder = Holder::spawn_with(&holder_path(), &[OsStr::new("--kinds")], |c| {
            c.stderr(log);
            #[allow(unsafe_code, reason = "close_range in the child between fork and exec")]
            // SAFETY: close_range only sets FD_CLOEXEC on the child's fds from 3 up (its stdio is in place
            // by now); it allocates nothing and is async-signal-safe.
            unsafe {
                c.pre_exec(|| {
                    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
                    match libc::syscall(
                        libc::SYS_close_range,
                        3 as libc::c_uint,
                        libc::c_uint::MAX,
                        CLOSE_RANGE_CLOEXEC,
                    ) {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                });
            }
        });
        let dir = std::env::temp_dir().join(format!("crrules-fdholder-{}", holder.pid()));
        Kinds { holder, dir }
    }

    fn pid(&self) -> i32 {
        self.holder.pid()
    }

    fn fd(&self, name: &str) -> i32 {
        self.holder.fd(name)
    }

    fn has(&self, name: &str) -> bool {
        self.holder.fds.contains_key(name)
    }

    /// The holder's `/proc/PID/fdinfo/FD` text for its fd `name`.
    fn fdinfo(&self, name: &str) -> String {
        let path = format!("/proc/{}/fdinfo/{}", self.pid(), self.fd(name));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The open flags of fd `name` as `F_GETFL` gives them (fdinfo's octal `flags:` without O_CLOEXEC).
    fn flags(&self, name: &str) -> i64 {
        let info = self.fdinfo(name);
        let octal = info.lines().find_map(|l| l.strip_prefix("flags:")).expect("flags:").trim();
        i64::from_str_radix(octal, 8).expect("octal flags") & !i64::from(libc::O_CLOEXEC)
    }
}

impl Drop for Kinds {
    fn drop(&mut self) {
        self.holder.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A policy file `name` in `tmp`: `rules`, then `any => close`.
fn policy(tmp: &TempDir, name: &str, rules: &str) -> PathBuf {
    tmp.write(name, &format!("{rules}any => close\n"))
}

/// `crrules --rules POLICY dump --pid PID --image IMAGE`: exit code, stdout, stderr.
fn dump(policy: &Path, pid: i32, image: &Path) -> (i32, String, String) {
    run(&["--rules", path_str(policy), "dump", "--pid", &pid.to_string(), "--image", path_str(image)])
}

/// [`dump`], which must succeed; the manifest.
fn dumped(policy: &Path, pid: i32, image: &Path) -> Value {
    let (code, out, err) = dump(policy, pid, image);
    assert_eq!(code, 0, "dump of {pid} failed:\n{out}\n{err}");
    let text = std::fs::read_to_string(image.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

/// The manifest's restore entry for fd `fd`.
fn restore_of(manifest: &Value, fd: i32) -> &Value {
    let fds = manifest["fds"].as_array().expect("manifest fds");
    &fds.iter().find(|f| f["fd"] == fd).unwrap_or_else(|| panic!("no fd {fd} in the manifest"))["restore"]
}

/// What a restore gave its command: fdreport's report by fd, and `/proc/net/raw` as the command saw it.
struct Restored {
    report: BTreeMap<i32, Value>,
    raw_table: String,
}

impl Restored {
    fn at(&self, fd: i32) -> &Value {
        self.report.get(&fd).unwrap_or_else(|| panic!("fd {fd} was not restored: {:?}", self.report.keys()))
    }
}

/// `crrules restore --image IMAGE -- sh -c '...' ` with `env` set, which must succeed: the shell copies
/// `/proc/net/raw`, then becomes `fdreport --out OUT` (the same process, with the same fds).
fn restore(tmp: &TempDir, image: &Path, env: &[(&str, &Path)]) -> Restored {
    let (out, raw) = (tmp.path().join("report.json"), tmp.path().join("raw.txt"));
    let _ = std::fs::remove_file(&out);
    let fdreport = example_path("fdreport");
    let script = "cat /proc/net/raw > \"$1\" && exec \"$2\" --out \"$3\"";
    let mut command = Command::new(env!("CARGO_BIN_EXE_crrules"));
    command
        .args(["restore", "--image", path_str(image), "--", "sh", "-c", script, "sh"])
        .args([path_str(&raw), path_str(&fdreport), path_str(&out)])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let done = command.output().expect("run crrules restore");
    let said = format!("{}{}", String::from_utf8_lossy(&done.stdout), String::from_utf8_lossy(&done.stderr));
    assert!(done.status.success(), "restore of {} failed:\n{said}", image.display());
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("no report at {}: {e}\n{said}", out.display()));
    let by_name: BTreeMap<String, Value> = serde_json::from_str(&text).expect("fdreport's JSON");
    let report = by_name.into_iter().map(|(fd, v)| (fd.parse().expect("an fd number"), v)).collect();
    Restored { report, raw_table: std::fs::read_to_string(&raw).unwrap_or_default() }
}

/// The sockets' facts of process `pid`, by fd (from `crrules facts`).
fn socket_facts(pid: i32) -> BTreeMap<i64, Value> {
    let (code, out, err) = run(&["facts", "--pid", &pid.to_string()]);
    assert_eq!(code, 0, "facts of {pid}:\n{err}");
    let facts: Value = serde_json::from_str(&out).expect("facts JSON");
    let fds = facts["fds"].as_array().expect("fds");
    fds.iter()
        .filter(|f| f.get("socket").is_some())
        .map(|f| (f["fd"].as_i64().expect("fd"), f["socket"].clone()))
        .collect()
}

/// The remote address of the raw socket with inode `ino` in a `/proc/net/raw` text: its in-memory word in
/// hex, as the kernel prints it.
fn raw_peer(table: &str, ino: u64) -> Option<[u8; 4]> {
    table.lines().skip(1).find_map(|line| {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        if words.get(9)?.parse::<u64>().ok()? != ino {
            return None;
        }
        let (ip, _) = words.get(2)?.split_once(':')?;
        Some(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes())
    })
}

#[test]
fn sockets_come_back_made_again_bound_and_connected() {
    if !root("sockets_come_back_made_again_bound_and_connected") {
        return;
    }
    let tmp = TempDir::new("fdtable-kinds-sockets");
    let kinds = Kinds::spawn(&tmp);
    let facts = socket_facts(kinds.pid());
    let local = |name: &str| facts[&i64::from(kinds.fd(name))]["local"].as_str().map(str::to_owned);
    let image = tmp.path().join("image");
    let rules = policy(&tmp, "sockets.rules", "socket protocol tcp state established => close\nsocket => recreate\n");
    let m = dumped(&rules, kinds.pid(), &image);

    // What the dump made of each: a socket made again (bound, connected), a bound UDP socket as before.
    let planned = |name: &str| restore_of(&m, kinds.fd(name)).clone();
    let socket = |protocol: i32, bound: Option<String>, peer: Option<&str>| {
        let mut r = json!({"how": "socket", "family": "inet", "protocol": protocol, "flags": libc::O_RDWR});
        if let Some(b) = bound {
            r["bound"] = json!(b);
        }
        if let Some(p) = peer {
            r["peer"] = json!(p);
        }
        r
    };
    let without_type = |name: &str| {
        let mut r = planned(name);
        r.as_object_mut().expect("an object").remove("sock_type");
        r
    };
    assert_eq!(without_type("tcp_unbound"), socket(6, None, None));
    assert_eq!(without_type("tcp_bound"), socket(6, local("tcp_bound"), None));
    assert_eq!(without_type("tcp_reset"), socket(6, None, None), "a reset socket's stale name is not bound again");
    assert_eq!(without_type("udp_unbound"), socket(17, None, None));
    assert_eq!(planned("udp_bound")["how"], "inet");
    let udp_server = local("udp_bound");
    assert_eq!(without_type("udp_connected"), socket(17, local("udp_connected"), udp_server.as_deref()));
    assert_eq!(without_type("udplite"), socket(136, local("udplite"), None));
    let raw_names = ["raw_icmp", "raw_bound", "raw_connected"];
    for name in raw_names.iter().filter(|n| kinds.has(n)) {
        assert_eq!(planned(name)["sock_type"], "raw", "{name}");
    }
    if kinds.has("raw_icmp") {
        assert_eq!(without_type("raw_icmp"), socket(1, None, None), "a raw socket's port is its protocol, not a bind");
        assert_eq!(without_type("raw_bound"), socket(1, Some("127.0.0.1:1".into()), None));
        assert_eq!(planned("raw_connected")["peer"], "127.0.0.2:0");
    } else {
        eprintln!("not checked: raw sockets (the holder could not make them)");
    }
    let netlink = |ty: &str, protocol: i32, bound: bool| json!({"how": "netlink", "sock_type": ty, "protocol": protocol, "bound": bound, "flags": libc::O_RDWR});
    let mut groups = netlink("raw", 0, true);
    groups["groups"] = json!([1, 5, 33, 36]);
    assert_eq!(planned("netlink_groups"), groups);
    assert_eq!(planned("netlink_unbound"), netlink("raw", 0, false));
    assert_eq!(planned("netlink_uevent"), netlink("dgram", libc::NETLINK_KOBJECT_UEVENT, true));
    // Connecting bound it (the kernel binds an unbound netlink socket it connects).
    let mut connected = netlink("raw", 0, true);
    connected["peer"] = json!(4242);
    assert_eq!(planned("netlink_connected"), connected);
    let lo = nix::net::if_::if_nametoindex("lo").expect("lo");
    if kinds.has("packet_lo") {
        let want = json!({"how": "packet", "sock_type": "raw", "protocol": libc::ETH_P_ALL, "ifindex": lo, "flags": libc::O_RDWR});
        assert_eq!(planned("packet_lo"), want);
        let want = json!({"how": "packet", "sock_type": "dgram", "protocol": libc::ETH_P_IP, "flags": libc::O_RDWR});
        assert_eq!(planned("packet_dgram"), want);
    }
    if !kinds.has("ping") {
        eprintln!("not checked: ping sockets (the holder could not make one: net.ipv4.ping_group_range)");
    }

    // Restored after the holder is gone: each is what it was, and inherited (not close-on-exec).
    let mut wants: Vec<(String, i32, i64)> = (kinds.holder.fds.keys())
        .filter(|n| {
            facts.contains_key(&i64::from(kinds.fd(n))) && !["tcp_established", "tcp_accepted"].contains(&n.as_str())
        })
        .map(|n| (n.clone(), kinds.fd(n), kinds.flags(n)))
        .collect();
    wants.sort();
    drop(kinds);
    let restored = restore(&tmp, &image, &[]);
    for (name, fd, flags) in &wants {
        let r = restored.at(*fd);
        assert_eq!(r["kind"], "socket", "{name}: {r}");
        assert!(r.get("error").is_none(), "{name}: a probe failed: {r}");
        assert_eq!((r["cloexec"].as_bool(), r["flags"].as_i64()), (Some(false), Some(*flags)), "{name}: {r}");
        let f = &facts[&i64::from(*fd)];
        // An unbound netlink socket, which sock_diag does not list, has no type in the facts.
        let ty = f["type"].as_str().unwrap_or("raw");
        assert_eq!(r["sock_type"], ty, "{name}: {r}");
        match f["family"].as_str() {
            Some("inet") => {
                assert_eq!(r["family"], "inet", "{name}: {r}");
                // The same name as before (an unbound socket has none, a raw one its protocol as port), and
                // the same peer where `getpeername` says it.
                assert_eq!(r["local"], f["local"].as_str().unwrap_or("0.0.0.0:0"), "{name}: {r}");
                if ty != "raw" {
                    assert_eq!(r.get("peer").and_then(Value::as_str), f["peer"].as_str(), "{name}: {r}");
                }
                let protocol = match f["protocol"].as_str() {
                    Some("tcp") => 6,
                    Some("udp") => 17,
                    Some("udplite") => 136,
                    _ => f["protocol_number"].as_i64().expect("a raw socket's number"),
                };
                assert_eq!(r["protocol"], protocol, "{name}: {r}");
            }
            Some("netlink") => {
                assert_eq!(r["family"], libc::AF_NETLINK, "{name}: {r}");
                if let Some(number) = f.get("protocol_number") {
                    assert_eq!(&r["protocol"], number, "{name}: {r}");
                }
            }
            Some("packet") => {
                assert_eq!(r["family"], libc::AF_PACKET, "{name}: {r}");
                assert_eq!(r["packet_protocol"], f["protocol_number"], "{name}: {r}");
                assert_eq!(r["ifindex"], f.get("ifindex").cloned().unwrap_or(json!(0)), "{name}: {r}");
            }
            other => panic!("{name}: a socket of family {other:?}"),
        }
    }
    let at = |name: &str| restored.at(wants.iter().find(|w| w.0 == name).expect(name).1);
    let groups = at("netlink_groups");
    assert_eq!(groups["netlink_groups"], json!([1, 5, 33, 36]), "{groups}");
    assert_ne!(groups["netlink_port"], 0, "bound again, with a port id the kernel chose: {groups}");
    assert_eq!(at("netlink_unbound")["netlink_port"], 0);
    assert_ne!(at("netlink_uevent")["netlink_port"], 0);
    assert_eq!(at("netlink_connected")["netlink_peer"], 4242);
    if let Some(raw) = wants.iter().find(|w| w.0 == "raw_connected") {
        let ino = restored.at(raw.1)["ino"].as_u64().expect("ino");
        assert_eq!(raw_peer(&restored.raw_table, ino), Some([127, 0, 0, 2]), "{}", restored.raw_table);
    }
}

#[test]
fn a_tcp_connection_is_refused_for_tcp_repair() {
    if !root("a_tcp_connection_is_refused_for_tcp_repair") {
        return;
    }
    let tmp = TempDir::new("fdtable-kinds-tcp");
    let kinds = Kinds::spawn(&tmp);
    let parent = tmp.path().join("images");
    std::fs::create_dir(&parent).expect("images dir");
    let rules = policy(&tmp, "tcp.rules", "socket protocol tcp => recreate\n");
    let (code, out, err) = dump(&rules, kinds.pid(), &parent.join("image"));
    assert_ne!(code, 0, "a TCP connection cannot be dumped:\n{out}\n{err}");
    assert!(names_fd(&err, kinds.fd("tcp_established")), "the refusal must name the connection's fd:\n{err}");
    assert!(err.contains("(established) needs TCP repair"), "{err}");
    assert!(err.contains("use CRIU with --tcp-established"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&parent).expect("images dir").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.is_empty(), "the refused dump left {left:?}");
}

#[test]
fn deleted_fifos_and_directories_come_back_with_no_name() {
    if !root("deleted_fifos_and_directories_come_back_with_no_name") {
        return;
    }
    let tmp = TempDir::new("fdtable-kinds-ghosts");
    let mut kinds = Kinds::spawn(&tmp);
    let ghosts = kinds.dir.join("ghosts");
    let names = ["fifo_deleted", "fifo_deleted_read", "dir_deleted"];
    let wants: Vec<(i32, i64)> = names.iter().map(|n| (kinds.fd(n), kinds.flags(n))).collect();
    let image = tmp.path().join("image");
    let rules = policy(&tmp, "ghosts.rules", "fifo deleted => recreate\ndir deleted => recreate\n");
    let m = dumped(&rules, kinds.pid(), &image);
    let (fifo, read, dir) = (wants[0].0, wants[1].0, wants[2].0);
    assert_eq!(restore_of(&m, fifo)["how"], "deleted_fifo");
    assert_eq!(restore_of(&m, fifo)["data"], format!("data/{fifo}-fifo"), "its bytes are saved once");
    assert!(restore_of(&m, read).get("data").is_none(), "{}", restore_of(&m, read));
    assert_eq!(restore_of(&m, dir)["how"], "deleted_dir");
    // The holder dies; its temp dir, where they were, stays: they are made beside where they were.
    kinds.holder.kill();

    let check = |restored: &Restored, beside: &Path| {
        let prefix = format!("{}/.crrules-ghost-", beside.display());
        let (f, r, d) = (restored.at(fifo), restored.at(read), restored.at(dir));
        for (x, (_, flags)) in [f, r, d].iter().zip(&wants) {
            assert!(x.get("error").is_none(), "a probe failed: {x}");
            assert_eq!((x["cloexec"].as_bool(), x["flags"].as_i64()), (Some(false), Some(*flags)), "{x}");
            assert_eq!(x["nlink"], 0, "no name is left: {x}");
            let link = x["link"].as_str().expect("link");
            assert!(link.starts_with(&prefix) && link.ends_with(" (deleted)"), "made in {}: {x}", beside.display());
        }
        assert_eq!((&f["kind"], &r["kind"], &d["kind"]), (&json!("fifo"), &json!("fifo"), &json!("dir")));
        assert_eq!(f["ino"], r["ino"], "the two fds of one FIFO share the new one");
        assert_eq!((&f["data"], &r["data_len"]), (&json!("fifo data"), &json!(0)), "the bytes, read once: {f} {r}");
        let left: Vec<_> = std::fs::read_dir(beside)
            .expect("the dir it was made in")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".crrules-ghost-"))
            .collect();
        assert!(left.is_empty(), "the restore left {left:?} in {}", beside.display());
    };
    check(&restore(&tmp, &image, &[]), &ghosts);

    // Where they were is gone: they are made in $TMPDIR.
    std::fs::remove_dir_all(&ghosts).expect("remove ghosts/");
    let tmpdir = tmp.path().join("tmpdir");
    std::fs::create_dir(&tmpdir).expect("tmpdir");
    check(&restore(&tmp, &image, &[("TMPDIR", &tmpdir)]), &tmpdir);
}

#[test]
fn a_pidfd_on_the_process_itself_names_the_restored_process() {
    if !root("a_pidfd_on_the_process_itself_names_the_restored_process") {
        return;
    }
    let tmp = TempDir::new("fdtable-kinds-pidfd");
    let kinds = Kinds::spawn(&tmp);
    let (fd, flags) = (kinds.fd("pidfd_self"), kinds.flags("pidfd_self"));
    let rules = format!("any fd {} => close\npidfd => recreate\n", kinds.fd("pidfd_child"));
    let image = tmp.path().join("image");
    let m = dumped(&policy(&tmp, "pidfd.rules", &rules), kinds.pid(), &image);
    assert_eq!(restore_of(&m, fd), &json!({"how": "pidfd", "flags": flags}));
    drop(kinds);
    let restored = restore(&tmp, &image, &[]);
    let r = restored.at(fd);
    assert_eq!(r["link"], "anon_inode:[pidfd]", "{r}");
    assert_eq!(r["pidfd_is_self"], true, "it names the restored process: {r}");
    assert_eq!((r["cloexec"].as_bool(), r["flags"].as_i64()), (Some(false), Some(flags)), "PIDFD_NONBLOCK kept: {r}");
    assert_eq!(flags & i64::from(libc::O_NONBLOCK), i64::from(libc::O_NONBLOCK));
}

#[test]
fn a_pidfd_on_another_process_is_refused() {
    if !root("a_pidfd_on_another_process_is_refused") {
        return;
    }
    let tmp = TempDir::new("fdtable-kinds-pidfd-other");
    let kinds = Kinds::spawn(&tmp);
    let fd = kinds.fd("pidfd_child");
    let info = kinds.fdinfo("pidfd_child");
    let child = info.lines().find_map(|l| l.strip_prefix("Pid:")).expect("Pid:").trim().to_owned();
    let parent = tmp.path().join("images");
    std::fs::create_dir(&parent).expect("images dir");
    let (code, out, err) =
        dump(&policy(&tmp, "pidfd.rules", "pidfd => recreate\n"), kinds.pid(), &parent.join("image"));
    assert_ne!(code, 0, "a pidfd on another process cannot be dumped:\n{out}\n{err}");
    assert!(names_fd(&err, fd), "the refusal must name fd {fd}:\n{err}");
    assert!(err.contains(&format!("the pidfd's process {child} is not in the checkpoint")), "{err}");
    assert!(std::fs::read_dir(&parent).expect("images dir").next().is_none(), "the refused dump wrote something");
}

/// A fanotify group as its fdinfo shows it.
struct Group {
    /// Its marks, as fdreport reports them (numbers), sorted.
    marks: Vec<Value>,
    flags: u64,
    event_flags: u64,
}

/// The group a fanotify fdinfo text shows.
fn fanotify_group(info: &str) -> Group {
    let hex = |v: &str| u64::from_str_radix(v, 16).unwrap_or_else(|_| panic!("`{v}` in {info}"));
    let (mut flags, mut event_flags) = (0, 0);
    let mut marks = Vec::new();
    for line in info.lines().filter_map(|l| l.strip_prefix("fanotify ")) {
        let pairs: Vec<(&str, &str)> = line.split_ascii_whitespace().filter_map(|w| w.split_once(':')).collect();
        let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| hex(v));
        if let Some(f) = get("flags") {
            (flags, event_flags) = (f, get("event-flags").expect("event-flags"));
            continue;
        }
        let (target, keys): (&str, &[&str]) = match pairs[0].0 {
            "ino" => ("inode", &["ino", "sdev"]),
            "mnt_id" => ("mount", &["mnt_id"]),
            _ => ("filesystem", &["sdev"]),
        };
        let mut mark = serde_json::Map::new();
        mark.insert("target".into(), json!(target));
        for key in keys.iter().chain(&["mflags", "mask", "ignored_mask"]) {
            mark.insert((*key).into(), json!(get(key).expect(key)));
        }
        marks.push(Value::Object(mark));
    }
    marks.sort_by_key(Value::to_string);
    Group { marks, flags, event_flags }
}

#[test]
fn fanotify_marks_come_back_on_the_same_inodes_mounts_and_filesystems() {
    if !root("fanotify_marks_come_back_on_the_same_inodes_mounts_and_filesystems") {
        return;
    }
    let tmp = TempDir::new("fdtable-kinds-fanotify");
    let mut kinds = Kinds::spawn(&tmp);
    let groups = ["fanotify", "fanotify_fs"];
    let wants: Vec<(i32, i64, Group)> =
        groups.iter().map(|g| (kinds.fd(g), kinds.flags(g), fanotify_group(&kinds.fdinfo(g)))).collect();
    let targets: Vec<Vec<&str>> = (wants.iter())
        .map(|w| {
            let mut targets: Vec<&str> = w.2.marks.iter().map(|m| m["target"].as_str().expect("target")).collect();
            targets.sort_unstable();
            targets
        })
        .collect();
    assert_eq!(targets, [vec!["inode", "inode", "mount"], vec!["filesystem", "inode"]], "the holder's marks");
    let image = tmp.path().join("image");
    let m = dumped(&policy(&tmp, "fanotify.rules", "fanotify => recreate\n"), kinds.pid(), &image);
    let paths: Vec<(&str, String)> = restore_of(&m, wants[0].0)["marks"]
        .as_array()
        .expect("marks")
        .iter()
        .map(|m| (m["target"].as_str().expect("target"), m["path"].as_str().expect("path").to_owned()))
        .collect();
    let watched = kinds.dir.join("watched");
    assert!(paths.contains(&("inode", path_str(&watched).to_owned())), "{paths:?}");
    assert!(paths.contains(&("inode", path_str(&watched.join("file")).to_owned())), "{paths:?}");
    // The holder dies, its files stay: the marks come back on them, and on the same mount and filesystem.
    kinds.holder.kill();
    let restored = restore(&tmp, &image, &[]);
    for (fd, flags, group) in &wants {
        let r = restored.at(*fd);
        assert!(r.get("error").is_none(), "a probe failed: {r}");
        assert_eq!((r["cloexec"].as_bool(), r["flags"].as_i64()), (Some(false), Some(*flags)), "{r}");
        // The group is made close-on-exec, as every object a restore makes, and the fd then inherited.
        let made = r["fanotify_flags"].as_u64().expect("fanotify_flags") & !u64::from(libc::FAN_CLOEXEC);
        assert_eq!((made, r["fanotify_event_flags"].as_u64()), (group.flags & !1, Some(group.event_flags)), "{r}");
        let mut got = r["fanotify_marks"].as_array().expect("fanotify_marks").clone();
        got.sort_by_key(Value::to_string);
        assert_eq!(got, group.marks, "the marks of fd {fd}");
    }
}
