//! End-to-end: unix sockets whose peer has closed, through `crrules check`, `dump` and `restore` with the
//! built-in default policy, against `fdholder --peer-closed` (a stream, a seqpacket and a datagram socket,
//! each with what its peer sent before closing still queued). The restored command is `fdreport --send`,
//! which reads every queued message, then tries a write; what it reports must be what the same command
//! reports when handed the live sockets (`crrules handover`): the same messages, then the end of the stream,
//! and the same write error. A socket whose peer is alive stays refused: one held by another process, and
//! a connection a listener has not accepted yet (its peer has no inode either, but the kernel has not shut
//! it down). A datagram socket whose peer is alive outside, bound to a name, is connected to that name again.

mod common;
mod fdtable_common;
mod scan_common;

use common::{TempDir, run};
use fdtable_common::{image_fd, manifest, names_fd, path_str, read_report};
use scan_common::{Holder, example_path, holder_path};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

/// One socket of `fdholder --peer-closed` and what reading it and writing on it gives: its name, type and
/// messages, whether a read reached the end of a stream, the write's error.
type Closed = (&'static str, &'static str, &'static [&'static str], Option<bool>, &'static str);

const CLOSED: &[Closed] = &[
    ("unix_closed", "stream", &["left for you"], Some(true), "EPIPE"),
    ("unix_closed_seqpacket", "seqpacket", &["m1", "m22"], Some(true), "EPIPE"),
    ("unix_closed_dgram", "dgram", &["d1", "d2"], None, "ECONNREFUSED"),
];

/// `fdholder ARGS`, its stderr in `tmp/holder.log`; killed when dropped.
fn holder(tmp: &TempDir, args: &[&str]) -> Holder {
    let log = std::fs::File::create(tmp.path().join("holder.log")).expect("holder.log");
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    Holder::spawn_with(&holder_path(), &args, |c| {
        c.stderr(log);
    })
}

/// `fdreport --out OUT --send FD...` for the `CLOSED` fds of `holder`, as the command of `crrules ARGS --`;
/// the report.
fn report_after(args: &[&str], holder: &Holder, out: &Path) -> BTreeMap<i32, Value> {
    let fdreport = example_path("fdreport");
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--".to_owned(), path_str(&fdreport).to_owned(), "--out".to_owned(), path_str(out).to_owned()]);
    for (name, ..) in CLOSED {
        all.extend(["--send".to_owned(), holder.fd(name).to_string()]);
    }
    let (code, stdout, stderr) = run(&all.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "crrules {args:?} failed:\n{stdout}\n{stderr}");
    read_report(out)
}

/// The fields of a socket's report that reading and writing it showed.
fn behaviour(report: &Value) -> Value {
    json!({
        "sock_type": report["sock_type"],
        "messages": report["messages"],
        "peer_closed": report["peer_closed"],
        "send": report["send"],
        "error": report["error"],
    })
}

#[test]
fn a_unix_socket_whose_peer_closed_comes_back_with_its_queue_then_the_end() {
    let tmp = TempDir::new("fdtable-peer-closed");
    let mut holder = holder(&tmp, &["--peer-closed"]);
    let pid = holder.pid().to_string();

    // The default policy recreates them; the facts say no peer, and a stream or seqpacket socket shut down
    // both ways by the kernel.
    let (code, out, err) = run(&["check", "--pid", &pid, "--format", "json"]);
    assert_eq!(code, 0, "check:\n{out}\n{err}");
    let checked: Value = serde_json::from_str(out.trim()).expect("check's JSON");
    let fds = checked["fds"].as_array().expect("fds");
    for (name, ty, ..) in CLOSED {
        let fd = holder.fd(name);
        let f = fds.iter().find(|f| f["fd"] == fd).unwrap_or_else(|| panic!("fd {fd} ({name}) in {out}"));
        assert_eq!((&f["action"], &f["peer"]), (&json!("recreate"), &json!("none")), "{name}: {f}");
        let socket = &f["socket"];
        assert_eq!((&socket["type"], &socket["state"]), (&json!(ty), &json!("established")), "{name}: {f}");
        assert!(socket.get("peer_ino").is_none(), "{name}: {f}");
        let shutdown = if *ty == "dgram" { Value::Null } else { json!(3) };
        assert_eq!(socket.get("shutdown").cloned().unwrap_or(Value::Null), shutdown, "{name}: {f}");
    }

    let image = tmp.path().join("image");
    let (code, out, err) = run(&["dump", "--pid", &pid, "--image", path_str(&image)]);
    assert_eq!(code, 0, "dump:\n{out}\n{err}");
    let m = manifest(&image);
    for (name, ty, ..) in CLOSED {
        let f = image_fd(&m, holder.fd(name));
        let r = &f["restore"];
        assert_eq!((&r["how"], &r["sock_type"], &r["peer_closed"]), (&json!("unix_pair"), &json!(ty), &json!(true)));
        assert_eq!(r["pair"], f["facts"]["ino"], "{name}: a closed peer's socket is its own pair: {r}");
        assert!(r["data"].is_string(), "{name}: its queue is saved: {r}");
    }

    // What the live sockets do, handed over to the same command (which reads their queues away); then what
    // the restored ones do.
    let live = report_after(&["handover", "--pid", &pid], &holder, &tmp.path().join("live.json"));
    holder.kill();
    let restored = report_after(&["restore", "--image", path_str(&image)], &holder, &tmp.path().join("restored.json"));
    for (name, ty, messages, end, send) in CLOSED {
        let fd = holder.fd(name);
        let want = json!({
            "sock_type": ty,
            "messages": messages,
            "peer_closed": end,
            "send": send,
            "error": null,
        });
        assert_eq!(behaviour(&live[&fd]), want, "{name} live: {}", live[&fd]);
        assert_eq!(behaviour(&restored[&fd]), want, "{name} restored: {}", restored[&fd]);
        assert_eq!(restored[&fd]["family"], "unix", "{name}: {}", restored[&fd]);
    }
}

/// `policy` in `tmp`, then `crrules --rules POLICY dump` of `pid`, which must be refused, naming fd `fd`
/// with `words`, and writing no image.
fn assert_dump_refused(tmp: &TempDir, policy: &str, pid: i32, fd: i32, words: &str) {
    let rules = tmp.write("policy.rules", policy);
    let image = tmp.path().join("image");
    let args = ["--rules", path_str(&rules), "dump", "--pid", &pid.to_string(), "--image", path_str(&image)];
    let (code, out, err) = run(&args);
    assert_ne!(code, 0, "the dump must be refused:\n{out}\n{err}");
    assert!(names_fd(&err, fd) && err.contains(words), "the refusal must name fd {fd} and say `{words}`:\n{err}");
    assert!(!image.exists(), "a refused dump wrote {}", image.display());
}

#[test]
fn a_unix_socket_whose_peer_lives_in_another_process_is_still_refused() {
    let tmp = TempDir::new("fdtable-peer-outside");
    let holder = holder(&tmp, &["--socketpair"]);
    let policy = "socket family unix => recreate\nany => close\n";
    let why = "its peer is not in this process: the fd-table backend recreates unix socket pairs inside the process \
               only (hand an outside peer in with `inherit`)";
    assert_dump_refused(&tmp, policy, holder.pid(), holder.fd("parent"), why);
}

#[test]
fn a_connection_not_yet_accepted_is_not_taken_for_a_closed_peer() {
    let tmp = TempDir::new("fdtable-unaccepted");
    let holder = holder(&tmp, &["--peer-closed", "--unaccepted"]);
    // Its peer has no inode until accepted: the link facts cannot tell it from a closed one.
    let (_, out, _) = run(&["check", "--pid", &holder.pid().to_string(), "--format", "json"]);
    let checked: Value = serde_json::from_str(out.trim()).expect("check's JSON");
    let fd = holder.fd("unix_unaccepted");
    let f = checked["fds"].as_array().expect("fds").iter().find(|f| f["fd"] == fd).expect("the client's fd");
    assert_eq!((&f["peer"], f["socket"].get("shutdown")), (&json!("none"), None), "{f}");
    let policy = "socket state listen => close\nsocket family unix => recreate\nany => close\n";
    assert_dump_refused(&tmp, policy, holder.pid(), fd, "not accepted yet");
}

/// A datagram socket connected to a daemon outside the process (a syslog client's `/dev/log`, here the
/// `fdholder --daemon` child's `client_dgram`, connected to the holder's bound `dgram`): dumped by its peer's
/// name and restored connected to it again; what the restored command sends reaches the daemon.
#[test]
fn a_datagram_socket_connected_to_a_daemon_outside_is_connected_again_by_name() {
    let tmp = TempDir::new("fdtable-dgram-outside");
    let daemon = holder(&tmp, &["--daemon"]);
    let (client, fd, dgram) = (daemon.fd("child_pid"), daemon.fd("client_dgram"), daemon.fd("dgram"));
    let rules = tmp.write("policy.rules", "socket family unix type dgram peer outside => recreate\nany => close\n");
    let image = tmp.path().join("image");
    let args = ["--rules", path_str(&rules), "dump", "--pid", &client.to_string(), "--image", path_str(&image)];
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "dump:\n{out}\n{err}");
    let m = manifest(&image);
    let r = &image_fd(&m, fd)["restore"];
    let bound = r["peer"].as_str().expect("the peer's name").to_owned();
    assert!(bound.ends_with("/dgram.sock") && bound.starts_with('/'), "{r}");
    assert_eq!(r["how"], "unix_connect", "{r}");

    // The daemon's socket has nothing queued; the restored client's one byte arrives there.
    let queued = |what: &str| {
        let (_, out, _) = run(&["check", "--pid", &daemon.pid().to_string(), "--format", "json"]);
        let checked: Value = serde_json::from_str(out.trim()).expect("check's JSON");
        let f = checked["fds"].as_array().expect("fds").iter().find(|f| f["fd"] == dgram).cloned().expect(what);
        f["socket"]["rqueue"].as_u64().unwrap_or(0)
    };
    assert_eq!(queued("before"), 0);
    let report = tmp.path().join("restored.json");
    let fdreport = example_path("fdreport");
    let (code, out, err) = run(&[
        "restore",
        "--image",
        path_str(&image),
        "--",
        path_str(&fdreport),
        "--out",
        path_str(&report),
        "--send",
        &fd.to_string(),
    ]);
    assert_eq!(code, 0, "restore:\n{out}\n{err}");
    let all = read_report(&report);
    let restored = all.get(&fd).unwrap_or_else(|| panic!("fd {fd} in {all:?}\n{err}"));
    assert_eq!(
        (&restored["sock_type"], &restored["peer"], &restored["send"]),
        (&json!("dgram"), &json!(bound), &json!("ok"))
    );
    assert_eq!(queued("after"), 1, "the daemon holds the one-byte datagram the restored client sent");

    assert_eq!(r["owner"], json!(nix::unistd::geteuid().as_raw()), "the socket file's owner at dump: {r}");

    // With the daemon gone, the restore fails whole.
    drop(daemon);
    let (code, _, err) = run(&["restore", "--image", path_str(&image), "--", "true"]);
    assert_ne!(code, 0);
    let cannot = format!("cannot connect a datagram socket to `{bound}` again");
    assert!(names_fd(&err, fd) && err.contains(&cannot), "{err}");

    // Another user's socket bound at that name since is not connected to.
    if nix::unistd::geteuid().is_root() {
        let path = Path::new(&bound);
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("the daemon's directory again");
        let _ = std::fs::remove_file(path);
        let squatter = std::os::unix::net::UnixDatagram::bind(path).expect("bind");
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).expect("chown");
        let (code, _, err) = run(&["restore", "--image", path_str(&image), "--", "true"]);
        assert_ne!(code, 0);
        let said = "its socket file is owned by uid 65534, not by root, uid 0 (the image's process) or uid 0";
        assert!(names_fd(&err, fd) && err.contains(said), "{err}");
        drop(squatter);
        let _ = std::fs::remove_dir_all(path.parent().expect("a directory"));
    }
}
