//! CRIU's options from decided plans: every option `criu dump` and `criu restore` need for what the policy
//! decided, each with the fds that asked for it. Pure data: the plans in, [`CriuOptions`] out; the binary
//! prints them. The option syntax is CRIU v4.2's (FACTS.md): `--external file[MNT:INO]` and
//! `--inherit-fd fd[N]:...` with both numbers in lowercase hex, `--shell-job`, `--tcp-established`,
//! `--file-locks`, `--ghost-limit`, `--link-remap`, `--ext-unix-sk`, `-L DIR`.

use crate::facts::{DevNum, FdFacts};
use crate::plan::{Decision, ProcessPlan};
use crrules_rules::Action;
use crrules_rules::vocab::{Kind, PeerPlace, SockFamily, SockState};
use serde::Serialize;
use std::collections::HashSet;

/// CRIU's default limit on a deleted file's saved size (`--ghost-limit`), in bytes.
pub const GHOST_LIMIT: u64 = 1 << 20;

/// Where the crrules plugin is installed, and where CRIU looks for plugins without `-L`.
pub const PLUGIN_DIR: &str = "/usr/lib/criu";

/// One option, with the fds that asked for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CriuOption {
    /// The option's words, as CRIU takes them (`["--ghost-limit", "2097152"]`).
    pub args: Vec<String>,
    /// Why: `pid P fd N (...): ...`, one per fd that asked.
    pub because: Vec<String>,
}

/// The options for `criu dump` and for `criu restore`, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CriuOptions {
    pub dump: Vec<CriuOption>,
    pub restore: Vec<CriuOption>,
}

impl CriuOptions {
    /// The dump options' words, in order.
    pub fn dump_args(&self) -> Vec<String> {
        self.dump.iter().flat_map(|o| o.args.iter().cloned()).collect()
    }

    /// The restore options' words, in order.
    pub fn restore_args(&self) -> Vec<String> {
        self.restore.iter().flat_map(|o| o.args.iter().cloned()).collect()
    }
}

/// The innermost session id of a live process, for [`refusals`] (read by the module that reads `/proc`).
pub use crate::proc::own_namespace_sid;

/// What CRIU v4.2 refuses to dump whatever options it is given, one sentence per process, so that
/// `crrules criu` and the pre-dump action say it before CRIU freezes anything. A process whose session id,
/// as its own pid namespace sees it (`own_sid`: `NSsid`'s last number, which may be 0 while the id read
/// from here is not), is 0 has its session's leader in an ancestor pid namespace (a job started inside a
/// container by a shell outside it): CRIU reads the id from inside and stops with "A session leader of N
/// is outside of its pid namespace", even with `--shell-job`. Without `own_sid`, the id read from here.
pub fn refusals(plans: &[ProcessPlan], own_sid: impl Fn(i32) -> Option<i32>) -> Vec<String> {
    plans
        .iter()
        .filter(|p| own_sid(p.pid).or(p.session.map(|s| s.sid)) == Some(0))
        .map(|p| {
            format!(
                "pid {} ({}): its session's leader is in an ancestor pid namespace (session id 0 inside its own), \
                 which CRIU refuses even with --shell-job; start it under `setsid` or check it from the namespace \
                 the leader is in",
                p.pid, p.comm
            )
        })
        .collect()
}

/// Which stage an option is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Dump,
    Restore,
    Both,
}

/// Collects options over the plans of one checkpoint (a process, or a tree).
#[derive(Debug, Default)]
pub struct OptionsBuilder {
    /// Option words and the reasons for them, in the order first asked for (fd order): an option asked for
    /// by many fds appears once.
    dump: Vec<(Vec<String>, Vec<String>)>,
    restore: Vec<(Vec<String>, Vec<String>)>,
    ghost: Option<(u64, Vec<String>)>,
    plugin_dir: String,
    /// Every inode held by an fd of the checkpoint, to tell a unix peer inside from one outside.
    inodes: HashSet<u64>,
}

impl OptionsBuilder {
    /// A builder whose `-L` names `plugin_dir`.
    pub fn new(plugin_dir: &str) -> OptionsBuilder {
        OptionsBuilder { plugin_dir: plugin_dir.to_owned(), ..OptionsBuilder::default() }
    }

    /// Adds every plan of the checkpoint first (so peers are known), then call [`OptionsBuilder::finish`].
    pub fn add_all(&mut self, plans: &[ProcessPlan]) {
        self.inodes.extend(plans.iter().flat_map(|p| p.fds.iter().filter_map(|f| f.facts()?.ino)));
        // CRIU dumps a tree whose root leads its session, or, with `--shell-job`, one whose session (and
        // terminal) is inherited from outside: a job started from a shell.
        if let Some(root) = plans.first()
            && let Some(session) = root.session.filter(|s| s.sid != root.pid)
        {
            let leader = match session.leader {
                Some(PeerPlace::Inside) => "inside the checkpoint",
                Some(PeerPlace::None) => "which has exited",
                _ => "outside the checkpoint",
            };
            let why = match session.sid {
                0 => format!("pid {} is not the leader of its session, led from an ancestor pid namespace", root.pid),
                sid => format!(
                    "pid {} is not the leader of its session: session {sid} is led by pid {sid}, {leader}",
                    root.pid
                ),
            };
            self.add(Stage::Both, &["--shell-job"], &why);
        }
        for plan in plans {
            for fd in &plan.fds {
                if let (Some(facts), Some(decision)) = (fd.facts(), fd.decision()) {
                    self.fd(plan.pid, facts, decision);
                }
            }
        }
    }

    fn add(&mut self, stage: Stage, args: &[&str], why: &str) {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        if matches!(stage, Stage::Dump | Stage::Both) {
            push(&mut self.dump, &args, why);
        }
        if matches!(stage, Stage::Restore | Stage::Both) {
            push(&mut self.restore, &args, why);
        }
    }

    fn fd(&mut self, pid: i32, f: &FdFacts, d: &Decision) {
        let who = format!("pid {pid} fd {} ({})", f.fd, target(f));
        let because = |what: &str| format!("{who}: {what}");
        match &d.action {
            Action::Reject { .. } => {}
            Action::Inherit { name } => self.inherit(f, name, &because),
            Action::Plugin { name } => {
                let dir = self.plugin_dir.clone();
                self.add(Stage::Both, &["-L", &dir], &because(&format!("`plugin \"{name}\"`")));
            }
            Action::ReopenPath { .. } | Action::ReopenSubst { .. }
                if f.kind == Kind::Chardev && f.dev.is_some_and(|d| !criu_knows(d)) =>
            {
                let dir = self.plugin_dir.clone();
                self.add(Stage::Both, &["-L", &dir], &because("a device CRIU refuses, reopened by the crrules plugin"));
            }
            // CRIU saves a deleted file up to its ghost limit: the rule's `contents limit` (what the policy
            // allows, growth included), or the file's size when the rule sets none.
            Action::Contents { limit } if f.deleted && limit.or(f.size).is_some_and(|n| n > GHOST_LIMIT) => {
                let need = limit.or(f.size).unwrap_or(0);
                let ghost = self.ghost.get_or_insert((0, Vec::new()));
                ghost.0 = ghost.0.max(need);
                let what = match limit {
                    Some(l) => format!("`contents limit {l}` on a deleted file, over CRIU's 1 MiB default"),
                    None => format!("a deleted file of {need} bytes, over CRIU's 1 MiB default"),
                };
                ghost.1.push(because(&what));
            }
            _ => {}
        }
        if f.unlinked && !d.is_reject() {
            self.add(Stage::Dump, &["--link-remap"], &because("its name is gone but the file is linked elsewhere"));
        }
        if !f.locks.is_empty() && !d.is_reject() {
            self.add(Stage::Both, &["--file-locks"], &because("it holds a file lock"));
        }
        if let (Some(s), Action::Recreate) = (&f.socket, &d.action) {
            let connected_tcp = s.protocol == Some(crrules_rules::vocab::SockProto::Tcp)
                && s.state.is_some_and(|st| !matches!(st, SockState::Listen | SockState::Close));
            if connected_tcp {
                self.add(Stage::Both, &["--tcp-established"], &because("a TCP connection, restored with TCP repair"));
            }
            // Linked facts say where the peer is; otherwise, a peer no fd of the checkpoint holds is outside.
            let outside = s.family == Some(SockFamily::Unix)
                && match f.peer {
                    Some(place) => place == PeerPlace::Outside,
                    None => s.peer_ino.is_some_and(|p| !self.inodes.contains(&p)),
                };
            if outside {
                self.add(
                    Stage::Both,
                    &["--ext-unix-sk"],
                    &because("a unix socket whose peer is outside the checkpoint"),
                );
            }
        }
    }

    /// `--inherit-fd fd[N]:KEY`: CRIU uses the restorer's own fd N for the object KEY names, wherever the
    /// checkpoint held it: one option per object (its first fd's number, which is where a restorer passes
    /// it: a job's stdout is `fd[1]`), however many fds hold it.
    fn inherit_fd(&mut self, fd: i32, key: &str, why: &str) {
        let seen = self.restore.iter().position(|(args, _)| {
            args.len() == 2 && args[0] == "--inherit-fd" && args[1].split_once(':').is_some_and(|(_, k)| k == key)
        });
        match seen {
            Some(i) => self.restore[i].1.push(why.to_owned()),
            None => self.add(Stage::Restore, &["--inherit-fd", &format!("fd[{fd}]:{key}")], why),
        }
    }

    fn inherit(&mut self, f: &FdFacts, name: &str, because: &dyn Fn(&str) -> String) {
        let why = because(&format!("`inherit \"{name}\"`"));
        match f.kind {
            Kind::Chardev if f.dev.is_some_and(is_tty) => self.add(Stage::Both, &["--shell-job"], &why),
            Kind::Pipe => self.inherit_fd(f.fd, &format!("pipe:[{}]", f.ino.unwrap_or(0)), &why),
            // CRIU 4.2 dumps one half of a unix stream connection only as an exception named by the socket's
            // own inode (`--ext-unix-sk` covers datagram sockets alone: "Can't dump half of stream unix
            // connection"), and takes the new connection from the restorer.
            Kind::Socket => {
                let ino = f.ino.unwrap_or(0);
                self.add(Stage::Dump, &["--external", &format!("unix[{ino}]")], &why);
                self.inherit_fd(f.fd, &format!("socket:[{ino}]"), &why);
            }
            Kind::Memfd => {
                let name = f.path.as_ref().map(|p| p.escaped().into_owned()).unwrap_or_default();
                self.inherit_fd(f.fd, &name, &why);
            }
            _ => {
                let key = format!("file[{:x}:{:x}]", f.mnt_id.unwrap_or(0), f.ino.unwrap_or(0));
                self.add(Stage::Dump, &["--external", &key], &why);
                self.inherit_fd(f.fd, &key, &why);
            }
        }
    }

    /// The options, dump's and restore's, each in a stable order.
    pub fn finish(mut self) -> CriuOptions {
        if let Some((size, why)) = self.ghost.take() {
            for w in why {
                push(&mut self.dump, &["--ghost-limit".to_owned(), size.to_string()], &w);
            }
        }
        // Grouped by option (a stable sort keeps fd order within each), in CRIU's usual order.
        let list = |m: Vec<(Vec<String>, Vec<String>)>| {
            let mut v: Vec<CriuOption> = m.into_iter().map(|(args, because)| CriuOption { args, because }).collect();
            v.sort_by_key(|o| order(&o.args[0]));
            v
        };
        CriuOptions { dump: list(self.dump), restore: list(self.restore) }
    }
}

fn push(list: &mut Vec<(Vec<String>, Vec<String>)>, args: &[String], why: &str) {
    match list.iter_mut().find(|(a, _)| a == args) {
        Some((_, because)) => because.push(why.to_owned()),
        None => list.push((args.to_vec(), vec![why.to_owned()])),
    }
}

/// The order options are printed in: the job's shape first, then files, then sockets, then plugins.
fn order(word: &str) -> u8 {
    match word {
        "--shell-job" => 0,
        "--external" => 1,
        "--inherit-fd" => 2,
        "--ext-unix-sk" => 3,
        "--tcp-established" => 4,
        "--file-locks" => 5,
        "--link-remap" => 6,
        "--ghost-limit" => 7,
        "-L" => 8,
        _ => 9,
    }
}

/// A character device CRIU v4.2 dumps and restores itself: memory devices (1:*), terminals (`/dev/tty`,
/// console, ptmx, virtual consoles 4:1-63, pty masters 128-135 and slaves 136-143, serial 188:* and 204:*),
/// and the misc devices tun (10:200) and autofs (10:235).
pub fn criu_knows(dev: DevNum) -> bool {
    match dev.major {
        1 => true,
        4 => (1..64).contains(&dev.minor),
        5 => dev.minor <= 2,
        128..=143 | 188 | 204 => true,
        10 => matches!(dev.minor, 200 | 235),
        _ => false,
    }
}

/// A terminal: virtual consoles, `/dev/tty`, console, ptys, serial lines.
fn is_tty(dev: DevNum) -> bool {
    matches!(dev.major, 4 | 5 | 128..=143 | 188 | 204)
}

fn target(f: &FdFacts) -> String {
    match (&f.path, f.dev) {
        (Some(p), Some(d)) => format!("{} {d}", p.escaped()),
        (Some(p), None) => p.escaped().into_owned(),
        _ => f.link.escaped().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{ByteString, Lock, SocketFacts};
    use crate::scan::{FdEntry, ProcessScan};
    use crrules_rules::vocab::{SockProto, SockType};
    use std::sync::Arc;

    fn decided(fds: Vec<(FdFacts, Action)>) -> ProcessPlan {
        let scan = ProcessScan::saved(7, "job", fds.iter().map(|(f, _)| FdEntry::Open(Box::new(f.clone()))).collect());
        let mut plan = ProcessPlan::undecided(scan);
        plan.decided = true;
        for (p, (_, action)) in plan.fds.iter_mut().zip(fds) {
            p.decision = Some(Arc::new(Decision { action, rule: Some("site.rules:1".into()), note: None }));
        }
        plan
    }

    fn chardev(fd: i32, path: &str, major: u32, minor: u32) -> FdFacts {
        let mut f = FdFacts::new(fd, Kind::Chardev, ByteString::from(path));
        f.path = Some(ByteString::from(path));
        f.dev = Some(DevNum { major, minor });
        f
    }

    fn options(fds: Vec<(FdFacts, Action)>) -> (Vec<String>, Vec<String>) {
        let mut b = OptionsBuilder::new("/opt/crrules/criu");
        b.add_all(&[decided(fds)]);
        let o = b.finish();
        (o.dump_args(), o.restore_args())
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn each_decision_asks_for_its_options() {
        let mut pipe = FdFacts::new(0, Kind::Pipe, ByteString::from("pipe:[1234]"));
        pipe.ino = Some(1234);
        let mut log = FdFacts::new(17, Kind::File, ByteString::from("/var/log/x"));
        log.path = Some(ByteString::from("/var/log/x"));
        log.mnt_id = Some(300);
        log.ino = Some(0xabc);
        let mut big = FdFacts::new(5, Kind::File, ByteString::from("/tmp/big (deleted)"));
        big.deleted = true;
        big.size = Some(3 << 20);
        let mut locked = FdFacts::new(6, Kind::File, ByteString::from("/tmp/lock"));
        locked.locks.push(Lock {
            class: "POSIX".into(),
            mode: "ADVISORY".into(),
            access: "WRITE".into(),
            pid: 7,
            start: 0,
            end: None,
        });
        let mut tcp = FdFacts::new(8, Kind::Socket, ByteString::from("socket:[99]"));
        tcp.socket = Some(SocketFacts {
            family: Some(SockFamily::Inet),
            sock_type: Some(SockType::Stream),
            protocol: Some(SockProto::Tcp),
            state: Some(SockState::Established),
            ..SocketFacts::default()
        });
        let mut unix = FdFacts::new(9, Kind::Socket, ByteString::from("socket:[100]"));
        unix.ino = Some(100);
        unix.socket =
            Some(SocketFacts { family: Some(SockFamily::Unix), peer_ino: Some(555), ..SocketFacts::default() });
        let mut elsewhere = FdFacts::new(10, Kind::File, ByteString::from("/tmp/a (deleted)"));
        elsewhere.unlinked = true;
        let (dump, restore) = options(vec![
            (chardev(1, "/dev/pts/3", 136, 3), Action::Inherit { name: "pts".into() }),
            (pipe, Action::Inherit { name: "in".into() }),
            (chardev(3, "/dev/kvm", 10, 232), Action::ReopenPath { exact: false }),
            (chardev(4, "/dev/null", 1, 3), Action::ReopenPath { exact: false }),
            (big, Action::Contents { limit: None }),
            (locked, Action::ReopenPath { exact: false }),
            (tcp, Action::Recreate),
            (unix, Action::Recreate),
            (elsewhere, Action::Contents { limit: None }),
            (log, Action::Inherit { name: "log".into() }),
        ]);
        assert_eq!(
            dump,
            words(
                "--shell-job --external file[12c:abc] --ext-unix-sk --tcp-established --file-locks --link-remap \
                 --ghost-limit 3145728 -L /opt/crrules/criu"
            )
        );
        assert_eq!(
            restore,
            words(
                "--shell-job --inherit-fd fd[0]:pipe:[1234] --inherit-fd fd[17]:file[12c:abc] --ext-unix-sk \
                 --tcp-established --file-locks -L /opt/crrules/criu"
            )
        );
    }

    #[test]
    fn the_ghost_limit_is_the_rules_limit_or_the_files_size() {
        let deleted = |fd: i32, size: u64| {
            let mut f = FdFacts::new(fd, Kind::File, ByteString::from("/tmp/x (deleted)"));
            f.deleted = true;
            f.size = Some(size);
            f
        };
        let (dump, _) = options(vec![(deleted(3, 100), Action::Contents { limit: Some(16 << 20) })]);
        assert_eq!(dump, words("--ghost-limit 16777216"));
        let (dump, _) = options(vec![(deleted(3, 100), Action::Contents { limit: Some(1000) })]);
        assert!(dump.is_empty(), "{dump:?}");
        let (dump, _) = options(vec![(deleted(3, 5 << 20), Action::Contents { limit: None })]);
        assert_eq!(dump, words("--ghost-limit 5242880"));
    }

    #[test]
    fn nothing_special_asks_for_nothing() {
        let (dump, restore) = options(vec![
            (chardev(0, "/dev/null", 1, 3), Action::ReopenPath { exact: false }),
            (chardev(1, "/dev/tty1", 4, 1), Action::ReopenPath { exact: false }),
            (chardev(2, "/dev/ttyUSB0", 188, 0), Action::ReopenPath { exact: false }),
        ]);
        assert!(dump.is_empty() && restore.is_empty(), "{dump:?} {restore:?}");
    }

    #[test]
    fn devices_criu_knows() {
        for (major, minor, known) in [
            (1, 3, true),
            (4, 0, false),
            (4, 1, true),
            (4, 64, false),
            (5, 0, true),
            (136, 9, true),
            (10, 232, false),
            (10, 229, false),
            (10, 200, true),
            (226, 0, false),
            (195, 0, false),
            (188, 1, true),
        ] {
            assert_eq!(criu_knows(DevNum { major, minor }), known, "{major}:{minor}");
        }
    }

    #[test]
    fn a_unix_peer_inside_the_checkpoint_needs_no_option() {
        let mut a = FdFacts::new(3, Kind::Socket, ByteString::from("socket:[1]"));
        a.ino = Some(1);
        a.socket = Some(SocketFacts { family: Some(SockFamily::Unix), peer_ino: Some(2), ..SocketFacts::default() });
        let mut b = FdFacts::new(4, Kind::Socket, ByteString::from("socket:[2]"));
        b.ino = Some(2);
        b.socket = Some(SocketFacts { family: Some(SockFamily::Unix), peer_ino: Some(1), ..SocketFacts::default() });
        let (dump, restore) = options(vec![(a, Action::Recreate), (b, Action::Recreate)]);
        assert!(dump.is_empty() && restore.is_empty(), "{dump:?}");
    }

    /// A root that does not lead its session (a job started from a shell) needs `--shell-job`, whatever its
    /// fds; one that does, or facts without a session, need nothing.
    #[test]
    fn a_root_outside_its_session_leader_needs_the_shell_job_option() {
        use crate::facts::SessionFacts;
        let plan = |sid: i32, leader: Option<PeerPlace>| {
            let mut p = decided(vec![(chardev(0, "/dev/null", 1, 3), Action::ReopenPath { exact: false })]);
            p.session = Some(SessionFacts { ppid: 1, pgrp: 7, sid, tty: None, leader });
            p
        };
        let opts = |plans: &[ProcessPlan]| {
            let mut b = OptionsBuilder::new("/x");
            b.add_all(plans);
            b.finish()
        };
        let o = opts(&[plan(3, Some(PeerPlace::Outside))]);
        assert_eq!((o.dump_args(), o.restore_args()), (words("--shell-job"), words("--shell-job")));
        assert_eq!(
            o.dump[0].because,
            ["pid 7 is not the leader of its session: session 3 is led by pid 3, outside the checkpoint"]
        );
        assert!(opts(&[plan(7, Some(PeerPlace::Inside))]).dump.is_empty());
        let mut unknown = plan(7, None);
        unknown.session = None;
        assert!(opts(&[unknown.clone()]).dump.is_empty());
        let seen_here = |_| None;
        assert!(
            refusals(&[plan(3, Some(PeerPlace::Outside)), plan(7, Some(PeerPlace::Inside)), unknown], seen_here)
                .is_empty()
        );
        // Session 3 from here, 0 inside the process's own pid namespace: refused.
        assert_eq!(refusals(&[plan(3, Some(PeerPlace::Outside))], |_| Some(0)).len(), 1);
    }

    /// Session 0 (its leader in an ancestor pid namespace) is a refusal CRIU makes whatever the options, named
    /// before any option is printed.
    #[test]
    fn a_session_led_from_an_ancestor_pid_namespace_is_refused() {
        use crate::facts::SessionFacts;
        let mut p = decided(vec![(chardev(0, "/dev/null", 1, 3), Action::ReopenPath { exact: false })]);
        p.session = Some(SessionFacts { ppid: 1, pgrp: 0, sid: 0, tty: None, leader: Some(PeerPlace::Outside) });
        let refused = refusals(std::slice::from_ref(&p), |_| None);
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].starts_with("pid 7 (job): its session's leader is in an ancestor pid namespace"),
            "{refused:?}"
        );
        let mut b = OptionsBuilder::new("/x");
        b.add_all(&[p]);
        assert_eq!(
            b.finish().dump[0].because,
            ["pid 7 is not the leader of its session, led from an ancestor pid namespace"]
        );
    }

    /// Linked facts decide whether a unix peer is outside, even when its inode is held inside by an fd that
    /// is not the peer's (the same socket shared by two processes of the checkpoint).
    #[test]
    fn a_linked_unix_peer_outside_asks_for_ext_unix_sk() {
        let sock = |fd: i32, ino: u64, peer: u64, place: PeerPlace| {
            let mut f = FdFacts::new(fd, Kind::Socket, ByteString::from(format!("socket:[{ino}]")));
            f.ino = Some(ino);
            f.peer = Some(place);
            f.socket =
                Some(SocketFacts { family: Some(SockFamily::Unix), peer_ino: Some(peer), ..SocketFacts::default() });
            f
        };
        let (dump, _) = options(vec![
            (sock(3, 1, 2, PeerPlace::Outside), Action::Recreate),
            (sock(4, 2, 9, PeerPlace::Inside), Action::Recreate),
        ]);
        assert_eq!(dump, words("--ext-unix-sk"));
        let (dump, _) = options(vec![(sock(3, 1, 2, PeerPlace::Inside), Action::Recreate)]);
        assert!(dump.is_empty(), "{dump:?}");
    }

    /// One object held at several fds (a job's stdout and stderr on one pipe) is handed in once, at its first
    /// fd's number, every fd's reason kept.
    #[test]
    fn an_object_held_twice_is_inherited_once() {
        let pipe = |fd: i32, ino: u64| {
            let mut f = FdFacts::new(fd, Kind::Pipe, ByteString::from(format!("pipe:[{ino}]")));
            f.ino = Some(ino);
            f
        };
        let inherit = |name: &str| Action::Inherit { name: name.into() };
        let mut b = OptionsBuilder::new("/x");
        b.add_all(&[decided(vec![
            (pipe(0, 5), inherit("stdin")),
            (pipe(1, 6), inherit("stdout")),
            (pipe(2, 6), inherit("stderr")),
            (pipe(7, 6), inherit("pipe")),
        ])]);
        let o = b.finish();
        assert_eq!(o.restore_args(), words("--inherit-fd fd[0]:pipe:[5] --inherit-fd fd[1]:pipe:[6]"));
        assert_eq!(o.restore[1].because.len(), 3, "{:?}", o.restore[1]);
    }

    /// A unix connection handed in: CRIU 4.2 dumps one half of a stream connection only when the socket's
    /// own inode is named with `--external unix[INO]` (it refuses it under `--ext-unix-sk`), and takes the
    /// new connection from the restorer's fd.
    #[test]
    fn an_inherited_unix_connection_is_an_external_socket() {
        let mut sock = FdFacts::new(3, Kind::Socket, ByteString::from("socket:[44291031]"));
        sock.ino = Some(44291031);
        sock.peer = Some(PeerPlace::Outside);
        sock.socket = Some(SocketFacts {
            family: Some(SockFamily::Unix),
            sock_type: Some(SockType::Stream),
            peer_ino: Some(44291030),
            ..SocketFacts::default()
        });
        let (dump, restore) = options(vec![(sock, Action::Inherit { name: "unix".into() })]);
        assert_eq!(dump, words("--external unix[44291031]"));
        assert_eq!(restore, words("--inherit-fd fd[3]:socket:[44291031]"));
    }
}
