//! The facts that link the fds of processes checked together (`check --tree`, `--pid` alone, `--cgroup`),
//! on real process trees: where the other end of each pipe, unix socket and terminal is (`peer`: inside or
//! outside, and who holds it; or none), which fds share an open file (`shared_with`), and each process's
//! session. The trees are a shell pipeline writing to a logger, and `examples/fdholder`'s tree modes.

mod common;
mod scan_common;

use common::{TempDir, run};
use scan_common::Holder;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The processes `crrules check ARGS --format json` printed, by pid; panics with its stderr when the check
/// itself failed (exit 2).
fn check(args: &[&str]) -> HashMap<i32, Value> {
    let mut full = vec!["check"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--format", "json"]);
    let (code, out, err) = run(&full);
    assert!(code == 0 || code == 1, "crrules {full:?}: exit {code}\n{out}{err}");
    out.lines()
        .map(|line| {
            let process: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (process["pid"].as_i64().expect("pid") as i32, process)
        })
        .collect()
}

/// The facts of fd `fd` of `pid`.
fn fd_facts(procs: &HashMap<i32, Value>, pid: i32, fd: i32) -> &Value {
    let process = procs.get(&pid).unwrap_or_else(|| panic!("pid {pid} was not checked: {:?}", procs.keys()));
    process["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .find(|f| f["fd"] == fd)
        .unwrap_or_else(|| panic!("pid {pid} has no fd {fd}: {process}"))
}

/// `(peer, peer_pid, peer_fd, peer_comm)` of an fd, as the JSON says them.
type Peer = (Option<String>, Option<i64>, Option<i64>, Option<String>);

fn peer(procs: &HashMap<i32, Value>, pid: i32, fd: i32) -> Peer {
    let f = fd_facts(procs, pid, fd);
    let text = |key: &str| f[key].as_str().map(str::to_owned);
    (text("peer"), f["peer_pid"].as_i64(), f["peer_fd"].as_i64(), text("peer_comm"))
}

/// The other end held by fd `fd` of `pid`, named `comm`, `place` (inside or outside) the checked processes.
fn held(place: &str, pid: i32, fd: i32, comm: &str) -> Peer {
    (Some(place.to_owned()), Some(i64::from(pid)), Some(i64::from(fd)), Some(comm.to_owned()))
}

fn inside(pid: i32, fd: i32, comm: &str) -> Peer {
    held("inside", pid, fd, comm)
}

fn outside(pid: i32, fd: i32, comm: &str) -> Peer {
    held("outside", pid, fd, comm)
}

fn no_peer() -> Peer {
    (Some("none".to_owned()), None, None, None)
}

/// The default policy's decision for an fd: its action (with an `inherit`'s name) and the words its reason
/// starts with.
fn decision(procs: &HashMap<i32, Value>, pid: i32, fd: i32) -> (String, String) {
    let f = fd_facts(procs, pid, fd);
    let action = match f["inherit"].as_str() {
        Some(name) => format!("inherit {name}"),
        None => f["action"].as_str().expect("decided").to_owned(),
    };
    let reason: String = f["reason"].as_str().unwrap_or("").split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    (action, reason)
}

fn decided(action: &str, reason: &str) -> (String, String) {
    (action.to_owned(), reason.to_owned())
}

/// `shared_with` of an fd, as `(pid, fd)` pairs, sorted.
fn shared(procs: &HashMap<i32, Value>, pid: i32, fd: i32) -> Vec<(i64, i64)> {
    let f = fd_facts(procs, pid, fd);
    let mut with: Vec<(i64, i64)> = f["shared_with"]
        .as_array()
        .map(|a| a.iter().map(|r| (r["pid"].as_i64().unwrap(), r["fd"].as_i64().unwrap())).collect())
        .unwrap_or_default();
    with.sort_unstable();
    with
}

/// Polls `ready` (a read of /proc) every 10 ms until it gives a value; panics naming `what` after ten
/// seconds.
fn wait_until<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The links of a process's fds, by fd.
fn fd_links(pid: i32) -> HashMap<i32, String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return HashMap::new() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let fd = e.file_name().to_str()?.parse().ok()?;
        Some((fd, std::fs::read_link(e.path()).ok()?.to_string_lossy().into_owned()))
    })
    .collect()
}

/// `sh -c 'exec 5>SHARED; sleep 300 | sleep 301'` in a process group of its own, its stdout the stdin of a
/// logger (`cat > LOG`) that the test spawned and holds no end of; every process is killed on drop.
struct Pipeline {
    sh: Child,
    logger: Child,
    /// `sleep 300`, writing the inner pipe, and `sleep 301`, reading it and writing to the logger.
    first: i32,
    second: i32,
    _dir: TempDir,
}

impl Pipeline {
    fn spawn() -> Pipeline {
        let dir = TempDir::new("tree");
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut logger = Command::new("cat").stdin(Stdio::piped()).stdout(log).spawn().expect("spawn cat");
        // The logger's stdin goes to the shell as its stdout: the test keeps no end of that pipe (the command
        // holding it is dropped with this statement).
        let to_logger = Stdio::from(logger.stdin.take().unwrap());
        let script = format!("exec 5>'{}'; sleep 300 | sleep 301", dir.path().join("shared").display());
        let sh = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(to_logger)
            .stderr(Stdio::null())
            .spawn();
        let sh = match sh {
            Ok(sh) => sh,
            Err(e) => {
                let _ = logger.kill();
                let _ = logger.wait();
                panic!("spawn sh: {e}");
            }
        };
        let mut pipeline = Pipeline { sh, logger, first: 0, second: 0, _dir: dir };
        let sh = pipeline.sh();
        // Until both children have exec'd `sleep` and the shell has closed both ends of the pipe between them.
        let (first, second) = wait_until("the shell runs `sleep 300 | sleep 301` and holds no end of its pipe", || {
            let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).ok()?;
            let mut first = None;
            let mut second = None;
            for pid in children.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                match std::fs::read(format!("/proc/{pid}/cmdline")).ok()?.as_slice() {
                    b"sleep\x00300\x00" => first = Some(pid),
                    b"sleep\x00301\x00" => second = Some(pid),
                    _ => {}
                }
            }
            let (first, second) = (first?, second?);
            let inner = fd_links(second).remove(&0)?;
            let closed = inner.starts_with("pipe:") && !fd_links(sh).values().any(|l| *l == inner);
            closed.then_some((first, second))
        });
        pipeline.first = first;
        pipeline.second = second;
        pipeline
    }

    fn sh(&self) -> i32 {
        self.sh.id() as i32
    }

    fn logger(&self) -> i32 {
        self.logger.id() as i32
    }

    /// What linking must say of the pipeline, whether it is checked as a tree or as a cgroup.
    fn assert_linked(&self, procs: &HashMap<i32, Value>) {
        let (sh, first, second, logger) = (self.sh(), self.first, self.second, self.logger());
        let mut pids: Vec<i32> = procs.keys().copied().collect();
        pids.sort_unstable();
        let mut want = vec![sh, first, second];
        want.sort_unstable();
        assert_eq!(pids, want, "the shell and its two sleeps, not the logger");
        assert_eq!(peer(procs, first, 1), inside(second, 0, "sleep"));
        assert_eq!(peer(procs, second, 0), inside(first, 1, "sleep"));
        assert_eq!(peer(procs, second, 1), outside(logger, 0, "cat"));
        // The shell holds the same write end (the sleep inherited it): the same open file, the same peer.
        assert_eq!(peer(procs, sh, 1), outside(logger, 0, "cat"));
        assert_eq!(shared(procs, sh, 1), [(i64::from(second), 1)]);
        assert_eq!(shared(procs, second, 1), [(i64::from(sh), 1)]);
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // The shell and both sleeps are the shell's process group.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.sh()), nix::sys::signal::Signal::SIGKILL);
        let _ = self.sh.wait();
        let _ = self.logger.kill();
        let _ = self.logger.wait();
    }
}

fn sorted(mut pairs: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    pairs.sort_unstable();
    pairs
}

#[test]
fn a_shell_pipeline_writing_to_a_logger_outside() {
    let p = Pipeline::spawn();
    let (sh, first, second) = (p.sh(), p.first, p.second);
    let procs = check(&["--pid", &sh.to_string(), "--tree"]);
    p.assert_linked(&procs);
    // `exec 5>FILE` before the forks: one open file in all three.
    let fd5 = |pid: i32| (i64::from(pid), 5);
    assert_eq!(shared(&procs, sh, 5), sorted(vec![fd5(first), fd5(second)]));
    assert_eq!(shared(&procs, first, 5), sorted(vec![fd5(sh), fd5(second)]));
    assert_eq!(shared(&procs, second, 5), sorted(vec![fd5(sh), fd5(first)]));
    assert_eq!(fd_facts(&procs, first, 5)["kind"], "file");
    assert_eq!(fd_facts(&procs, first, 5).get("peer"), None, "a regular file has no other end");

    // The default policy: the inner pipe is rebuilt, the one to the logger handed in as the job's stdout.
    let rebuilt = decided("recreate", "buffered data is copied; both ends");
    assert_eq!(decision(&procs, first, 1), rebuilt);
    assert_eq!(decision(&procs, second, 0), rebuilt);
    let handed_in = decided("inherit stdout", "the other end is held outside");
    assert_eq!(decision(&procs, second, 1), handed_in);
    assert_eq!(decision(&procs, sh, 1), handed_in);

    // The second sleep alone: the first is outside now, and what it reads is handed in.
    let alone = check(&["--pid", &second.to_string()]);
    assert_eq!(alone.len(), 1);
    assert_eq!(peer(&alone, second, 0), outside(first, 1, "sleep"));
    assert_eq!(peer(&alone, second, 1), outside(p.logger(), 0, "cat"));
    assert_eq!(shared(&alone, second, 5), [], "nothing else is checked");
    assert_eq!(decision(&alone, second, 0), decided("inherit stdin", "the other end is held outside"));
}

/// The picture of the pipeline: the inner pipe drawn from the writer to the reader in the colour of a
/// rebuilt fd, the logger's pipe drawn out to the logger's node in the cluster outside, in the colour of an
/// inherited fd, the shared file as dashed lines; Graphviz (where installed) makes an SVG of it.
#[test]
fn the_picture_of_a_pipeline() {
    let p = Pipeline::spawn();
    let (sh, first, second, logger) = (p.sh(), p.first, p.second, p.logger());
    let (code, dot, err) = run(&["check", "--pid", &sh.to_string(), "--tree", "--format", "dot"]);
    assert_eq!(code, 0, "{dot}{err}");
    assert!(dot.starts_with("digraph crrules {") && dot.trim_end().ends_with('}'), "{dot}");
    let edges: Vec<&str> = dot.lines().map(str::trim).filter(|l| l.contains(" -> ")).collect();
    let edge = |from: &str, to: &str| {
        edges
            .iter()
            .find(|e| e.starts_with(&format!("{from} -> {to} ")))
            .unwrap_or_else(|| panic!("no edge {from} -> {to} in:\n{}", edges.join("\n")))
            .to_string()
    };
    let green = "#2e7d32";
    let orange = "#e65100";
    let inner = edge(&format!("\"p{first}\":\"o1\":e"), &format!("\"p{second}\":\"i0\":w"));
    assert!(inner.contains(green) && !inner.contains("dir=none"), "writer -> reader, rebuilt: {inner}");
    let out = edge(&format!("\"p{second}\":\"o1\":e"), &format!("\"o{logger}\":\"f0\":w"));
    assert!(out.contains(orange), "to the logger outside, handed in: {out}");
    let shared = edge(&format!("\"p{first}\":\"o5\":e"), &format!("\"p{second}\":\"i5\":w"));
    assert!(shared.contains("style=dashed"), "{shared}");
    assert!(dot.contains("subgraph cluster_outside") && dot.contains(&format!("{logger} (cat)")), "{dot}");

    if Command::new("dot").arg("-V").stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
        let (code, svg, err) = run(&["check", "--pid", &sh.to_string(), "--tree", "--format", "svg"]);
        assert_eq!(code, 0, "{err}");
        assert!(svg.contains("<svg") && svg.contains("(cat)"), "{svg}");
    } else {
        eprintln!("skipped the SVG: Graphviz's `dot` is not installed");
    }
}

#[test]
fn a_socketpair_across_a_fork() {
    let h = Holder::spawn(&["--socketpair"]);
    let (parent, child) = (h.pid(), h.fd("child_pid"));
    let (parent_end, child_end) = (h.fd("parent"), h.fd("child"));
    let tree = check(&["--pid", &parent.to_string(), "--tree"]);
    assert_eq!(tree.len(), 2, "{:?}", tree.keys());
    assert_eq!(peer(&tree, parent, parent_end), inside(child, child_end, "fdholder-child"));
    assert_eq!(peer(&tree, child, child_end), inside(parent, parent_end, "fdholder"));
    assert_eq!(shared(&tree, parent, parent_end), [], "two sockets, not one open file");

    assert_eq!(decision(&tree, child, child_end), decided("recreate", "queued messages are saved; it comes"));

    let alone = check(&["--pid", &child.to_string()]);
    assert_eq!(peer(&alone, child, child_end), outside(parent, parent_end, "fdholder"));
    assert_eq!(decision(&alone, child, child_end), decided("inherit unix", "a connection to a process outside"));
}

#[test]
fn a_client_connected_to_a_daemon() {
    let h = Holder::spawn(&["--daemon"]);
    let (daemon, client) = (h.pid(), h.fd("child_pid"));
    let (stream, dgram) = (h.fd("client_stream"), h.fd("client_dgram"));

    let procs = check(&["--pid", &client.to_string()]);
    assert_eq!(peer(&procs, client, stream), outside(daemon, h.fd("accepted"), "fdholder"));
    assert_eq!(peer(&procs, client, dgram), outside(daemon, h.fd("dgram"), "fdholder"));
    // A connection is handed in; a datagram socket is connected again to its peer's address.
    assert_eq!(decision(&procs, client, stream), decided("inherit unix", "a connection to a process outside"));
    assert_eq!(decision(&procs, client, dgram), decided("recreate", "the datagram socket is connected again"));

    let procs = check(&["--pid", &daemon.to_string()]);
    assert_eq!(peer(&procs, daemon, h.fd("accepted")), outside(client, stream, "fdholder-child"));
    assert_eq!(peer(&procs, daemon, h.fd("listener")), no_peer(), "a listener has no peer");
    assert_eq!(peer(&procs, daemon, h.fd("dgram")), no_peer(), "a bound datagram socket is connected to none");

    // Both checked together: the connection is inside.
    let tree = check(&["--pid", &daemon.to_string(), "--tree"]);
    assert_eq!(peer(&tree, daemon, h.fd("accepted")), inside(client, stream, "fdholder-child"));
    assert_eq!(peer(&tree, client, stream), inside(daemon, h.fd("accepted"), "fdholder"));
    assert_eq!(peer(&tree, client, dgram), inside(daemon, h.fd("dgram"), "fdholder"));
}

#[test]
fn a_session_on_a_pty() {
    let h = Holder::spawn(&["--pty"]);
    let (parent, child) = (h.pid(), h.fd("child_pid"));
    let (master, tty, index) = (h.fd("master"), h.fd("child_tty"), h.fd("index"));
    let slave_fds = [0, 1, 2, tty];

    let alone = check(&["--pid", &child.to_string()]);
    for fd in slave_fds {
        assert_eq!(peer(&alone, child, fd), outside(parent, master, "fdholder"), "fd {fd}");
    }
    assert_eq!(fd_facts(&alone, child, tty)["path"], "/dev/tty");
    assert_eq!(decision(&alone, child, 0), decided("inherit pts", "the pty slave is handed in"));
    assert_eq!(decision(&alone, child, tty), decided("inherit tty", "the controlling terminal is handed in"));
    let device = format!("{}:{}", 136 + index / 256, index % 256);
    let session = json!({"ppid": parent, "pgrp": child, "sid": child, "tty": device, "leader": "inside"});
    assert_eq!(alone[&child]["session"], session);

    let tree = check(&["--pid", &parent.to_string(), "--tree"]);
    assert_eq!(fd_facts(&tree, parent, master)["path"], "/dev/ptmx");
    assert_eq!(peer(&tree, parent, master), inside(child, 0, "fdholder-child"), "the slave's first fd");
    for fd in slave_fds {
        assert_eq!(peer(&tree, child, fd), inside(parent, master, "fdholder"), "fd {fd}");
    }
    assert_eq!(tree[&child]["session"], session);
}

/// A pty whose slave a process outside holds only as `/dev/tty`, its controlling terminal: the search for the
/// master's other end found no slave there (the link's device is 5:0, not the pty's), and said `none`.
#[test]
fn a_slave_held_outside_only_as_dev_tty_is_the_masters_peer() {
    let h = Holder::spawn(&["--pty", "--tty-only"]);
    let (parent, child) = (h.pid(), h.fd("child_pid"));
    let (master, tty) = (h.fd("master"), h.fd("child_tty"));
    let procs = check(&["--pid", &parent.to_string()]);
    assert_eq!(peer(&procs, parent, master), outside(child, tty, "fdholder-child"));
    let procs = check(&["--pid", &child.to_string()]);
    assert_eq!(fd_facts(&procs, child, 0)["path"], "/dev/null");
    assert_eq!(peer(&procs, child, tty), outside(parent, master, "fdholder"));
}

/// A cgroup made under a hierarchy's root for one test; its processes are moved back to the root, and it
/// is removed, on drop.
struct Cgroup {
    root: PathBuf,
    dir: PathBuf,
}

impl Cgroup {
    /// The unified hierarchy's root, else the v1 `pids` controller's.
    fn root() -> Option<PathBuf> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mut roots: Vec<(bool, PathBuf)> = text
            .lines()
            .filter_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let point = PathBuf::from(left.split_whitespace().nth(4)?);
                let mut fs = right.split_whitespace();
                match fs.next()? {
                    "cgroup2" => Some((false, point)),
                    "cgroup" if fs.nth(1)?.split(',').any(|o| o == "pids") => Some((true, point)),
                    _ => None,
                }
            })
            .collect();
        roots.sort();
        roots.into_iter().next().map(|(_, root)| root)
    }

    fn make(root: &Path, tag: &str) -> std::io::Result<Cgroup> {
        let dir = root.join(format!("crrules-test-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Cgroup { root: root.to_owned(), dir })
    }

    fn add(&self, pid: i32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
        }
        // A process just moved or killed may keep the cgroup busy for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_pipeline_in_a_cgroup_of_its_own() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: making a cgroup needs root");
        return;
    }
    let Some(root) = Cgroup::root() else {
        eprintln!("skipped: no cgroup2 or cgroup v1 `pids` hierarchy is mounted");
        return;
    };
    let p = Pipeline::spawn();
    let cg = match Cgroup::make(&root, "tree") {
        Ok(cg) => cg,
        Err(e) => {
            eprintln!("skipped: cannot make a cgroup under {}: {e}", root.display());
            return;
        }
    };
    for pid in [p.sh(), p.first, p.second] {
        if let Err(e) = cg.add(pid) {
            eprintln!("skipped: cannot move pid {pid} into {}: {e}", cg.dir.display());
            return;
        }
    }
    let procs = check(&["--cgroup", cg.dir.to_str().unwrap()]);
    p.assert_linked(&procs);
}

#[test]
fn a_pipe_whose_writer_exited_has_no_peer() {
    let h = Holder::spawn(&["--writer-exited"]);
    assert!(!Path::new(&format!("/proc/{}", h.fd("child_pid"))).exists(), "the writer is reaped");
    let procs = check(&["--pid", &h.pid().to_string(), "--tree"]);
    assert_eq!(procs.len(), 1);
    let read = h.fd("pipe_read");
    assert_eq!(fd_facts(&procs, h.pid(), read)["kind"], "pipe");
    assert_eq!(peer(&procs, h.pid(), read), no_peer());
    assert_eq!(decision(&procs, h.pid(), read), decided("recreate", "buffered data is copied; both ends"));
}

/// The peer an fd links to, held by no fd that could be seen, but alive (`outside` without a process).
fn outside_unseen() -> Peer {
    (Some("outside".to_owned()), None, None, None)
}

/// TCP over loopback (`fdholder --tcp-pair`, in the host's network namespace or, with `--netns`, in one of
/// its own, where the pairs are found in that namespace's sockets): the holder's accepted connections and
/// the child's clients are each other's peers when checked together (also an IPv4 client accepted by a
/// dual-stack IPv6 listener, whose addresses are IPv4-mapped), and outside when one is checked alone; a
/// connection not accepted yet is alive, its peer held by no fd; listeners have none.
fn tcp_pair(args: &[&str]) {
    let h = Holder::spawn(args);
    let (holder, child) = (h.pid(), h.fd("child_pid"));
    let (accepted, accepted_mapped) = (h.fd("accepted"), h.fd("accepted_mapped"));
    let (client, client_mapped) = (h.fd("client"), h.fd("client_mapped"));
    let tree = check(&["--pid", &holder.to_string(), "--tree"]);
    assert_eq!(tree.len(), 2, "{:?}", tree.keys());
    assert_eq!(peer(&tree, holder, accepted), inside(child, client, "fdholder-child"));
    assert_eq!(peer(&tree, child, client), inside(holder, accepted, "fdholder"));
    assert_eq!(peer(&tree, holder, accepted_mapped), inside(child, client_mapped, "fdholder-child"));
    assert_eq!(peer(&tree, child, client_mapped), inside(holder, accepted_mapped, "fdholder"));
    for listener in ["listener", "listener6", "backlog", "server"] {
        assert_eq!(peer(&tree, holder, h.fd(listener)), no_peer(), "{listener}");
    }
    assert_eq!(peer(&tree, child, h.fd("unaccepted")), outside_unseen(), "waiting in the backlog's queue");
    // The facts name the peer socket, as a unix socket's do.
    let ino = |procs: &HashMap<i32, Value>, pid, fd| fd_facts(procs, pid, fd)["ino"].as_u64();
    assert_eq!(fd_facts(&tree, child, client)["socket"]["peer_ino"].as_u64(), ino(&tree, holder, accepted));
    for (pid, fd) in [(holder, accepted), (child, client_mapped)] {
        assert_eq!(decision(&tree, pid, fd), decided("recreate", "both ends are checkpointed: each comes"));
    }

    let alone = check(&["--pid", &child.to_string()]);
    assert_eq!(peer(&alone, child, client), outside(holder, accepted, "fdholder"));
    assert_eq!(peer(&alone, child, client_mapped), outside(holder, accepted_mapped, "fdholder"));
    assert_eq!(decision(&alone, child, client), decided("recreate", "the other end is a process"));
    let alone = check(&["--pid", &holder.to_string()]);
    assert_eq!(peer(&alone, holder, accepted), outside(child, client, "fdholder-child"));
}

#[test]
fn tcp_connections_over_loopback() {
    tcp_pair(&["--tcp-pair"]);
}

#[test]
fn tcp_connections_over_loopback_in_a_network_namespace_of_their_own() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: a new network namespace needs root");
        return;
    }
    tcp_pair(&["--tcp-pair", "--netns"]);
}

/// A connection to a listener of a separate process (not a child): each is the other's peer, outside.
#[test]
fn a_tcp_connection_to_a_server_outside() {
    let server = Holder::spawn(&["--tcp-pair"]);
    let client = Holder::spawn(&["--tcp-connect", &server.fd("server_port").to_string()]);
    let (s, c) = (server.pid(), client.pid());
    // The server's thread accepts in its own time: until then the peer is alive, held by no fd.
    let (procs, found) = wait_until("the server accepted the connection", || {
        let procs = check(&["--pid", &c.to_string()]);
        let found = peer(&procs, c, client.fd("client"));
        found.1.is_some().then_some((procs, found))
    });
    let accepted = found.2.expect("the server's fd") as i32;
    assert_eq!(found, outside(s, accepted, "fdholder"));
    assert_eq!(decision(&procs, c, client.fd("client")), decided("recreate", "the other end is a process"));
    let procs = check(&["--pid", &s.to_string()]);
    assert_eq!(peer(&procs, s, accepted), outside(c, client.fd("client"), "fdholder"));
}
