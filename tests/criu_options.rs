//! `crrules criu` prints exactly the CRIU options a checkpoint's decisions need, for real processes holding
//! each relevant kind; it refuses (exit 1, with `check`'s table) a process with a rejected fd; and
//! `crrules criu-action`, run as CRIU runs an action script, aborts a `pre-dump` of a tree holding a
//! rejected fd and lets every other dump and action through.

mod common;
mod scan_common;

use common::TempDir;
use scan_common::{Holder, holder_path};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// A holder of `args` leading a session of its own, as a service does, and whose stderr is /dev/null (a job
/// started from a shell, or a terminal there, would ask for `--shell-job`).
fn holder(args: &[&str]) -> Holder {
    let args: Vec<&OsStr> = ["--setsid"].iter().chain(args).map(OsStr::new).collect();
    Holder::spawn_with(&holder_path(), &args, |c| {
        c.stderr(Stdio::null());
    })
}

fn crrules(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crrules"))
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .expect("run crrules");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A policy tree under a temp root: the built-in policy plus one site file.
fn site(text: &str) -> TempDir {
    let root = TempDir::new("criu-site");
    root.write("etc/crrules/rules.d/05-site.rules", text);
    root
}

#[test]
fn one_site_line_makes_a_device_criu_refuses_go_through_the_plugin() {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("skipped: no /dev/kvm here");
        return;
    }
    let h = holder(&["--open", "/dev/kvm", "--open", "/dev/null"]);
    let pid = h.pid().to_string();
    // The default policy refuses /dev/kvm: exit 1, the reason, no options.
    let (code, out, err) = crrules(&["criu", "--pid", &pid], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("/dev/kvm (10:232)") && out.contains("reject"), "{out}");
    assert!(err.contains("no CRIU options"), "{err}");
    // One line of site policy: the plugin, from the plugin directory given.
    let root = site("chardev 10:232 => reopen path because \"this job holds /dev/kvm but runs no VM\"\n");
    let args =
        ["--root", root.str(), "criu", "--pid", &pid, "--plugin-dir", "/opt/crrules/criu", "--image-dir", "/tmp/ck"];
    let (code, out, err) = crrules(&args, &[]);
    assert_eq!(code, 0, "{out}{err}");
    // The holder's stdin is a pipe from this test, outside the checkpoint: the restore hands it in. (Its
    // stdout was read once and closed here: no one holds the other end, and it is rebuilt.)
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    let stdin = stdin.to_str().unwrap();
    assert_eq!(
        out,
        format!(
            "criu dump -t {pid} -D /tmp/ck -L /opt/crrules/criu\ncriu restore -D /tmp/ck --inherit-fd 'fd[0]:{stdin}' \
             -L /opt/crrules/criu\n"
        )
    );
    let (_, json, _) = crrules(&["--root", root.str(), "criu", "--pid", &pid, "--format", "json"], &[]);
    let want =
        format!(r#"{{"dump":["-L","/usr/lib/criu"],"restore":["--inherit-fd","fd[0]:{stdin}","-L","/usr/lib/criu"]}}"#);
    assert_eq!(json.trim(), want);
    let (_, explained, _) = crrules(&["--root", root.str(), "criu", "--pid", &pid, "--explain"], &[]);
    let kvm = h.fd("open0");
    assert!(
        explained.contains(&format!(
            "#   pid {pid} fd {kvm} (/dev/kvm 10:232): a device CRIU refuses, reopened by the crrules plugin"
        )),
        "{explained}"
    );
}

/// A process in a session another process leads is a job to CRIU: `--shell-job`, said why; the leader
/// itself, or a tree from it, needs nothing. The session is the test's own (a holder that called setsid and
/// forked the job), so the answer does not depend on where the tests run.
#[test]
fn a_job_outside_its_session_leader_is_a_shell_job() {
    let rules = TempDir::new("criu-job");
    let rules = rules.write("p.rules", "any => close\n");
    let rules = rules.to_str().unwrap();
    let leader = holder(&["--socketpair"]);
    let (sid, job) = (leader.pid(), leader.fd("child_pid").to_string());
    let (code, out, err) = crrules(&["--rules", rules, "criu", "--pid", &job, "--explain"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("--shell-job\n--shell-job\n"), "{out}");
    assert!(
        out.contains(&format!(
            "#   pid {job} is not the leader of its session: session {sid} is led by pid {sid}, outside the checkpoint"
        )),
        "{out}"
    );
    for target in [&["--pid", &sid.to_string()][..], &["--pid", &sid.to_string(), "--tree"]] {
        let args: Vec<&str> = ["--rules", rules, "criu"].iter().chain(target).copied().collect();
        let (code, out, err) = crrules(&args, &[]);
        assert_eq!((code, out.as_str()), (0, "\n\n"), "{target:?}: {err}");
    }
}

/// A process whose session's leader is in an ancestor pid namespace (session id 0 inside its own: a job a
/// shell outside started in a new pid namespace) is one CRIU refuses whatever its options ("A session
/// leader of N is outside of its pid namespace"): `crrules criu` says so and prints no options, and the
/// pre-dump action aborts the dump before CRIU freezes it.
#[test]
fn a_job_led_from_an_ancestor_pid_namespace_is_refused() {
    if !common::running_as_root() {
        eprintln!("skipped: a new pid namespace needs root");
        return;
    }
    let rules = TempDir::new("criu-pidns");
    let rules = rules.write("p.rules", "any => close\n");
    let script = r#"sleep 1000 </dev/null >/dev/null 2>&1 &
job=$!
echo "sid $(cut -d' ' -f6 /proc/$job/stat)"
"$0" --rules "$1" criu --pid $job; echo "criu $?"
CRTOOLS_SCRIPT_ACTION=pre-dump CRTOOLS_INIT_PID=$job "$0" --rules "$1" criu-action; echo "action $?"
kill $job"#;
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", script, env!("CARGO_BIN_EXE_crrules")])
        .arg(&rules)
        .env("NO_COLOR", "1")
        .output()
        .expect("run unshare");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "sid 0\ncriu 1\naction 1\n", "{stderr}");
    let refusal = "(sleep): its session's leader is in an ancestor pid namespace (session id 0 inside its own), \
                   which CRIU refuses even with --shell-job";
    assert_eq!(stderr.matches(refusal).count(), 2, "{stderr}");
    assert!(stderr.contains("no CRIU options"), "{stderr}");
    assert!(stderr.contains("aborted before CRIU freezes it: CRIU would refuse it"), "{stderr}");

    // The same job seen from here, the ancestor namespace, its session led by `unshare` (made a session
    // leader by `setsid`, which execs it): the id in `stat` is unshare's pid, not 0; inside its own
    // namespace it is 0, which is what CRIU reads. Refused all the same.
    let mut job = Command::new("setsid")
        .args(["unshare", "--pid", "--fork", "--kill-child", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("run unshare");
    let children = format!("/proc/{}/task/{}/children", job.id(), job.id());
    let sleep = (0..200)
        .find_map(|_| {
            let pid = std::fs::read_to_string(&children).ok()?.split_whitespace().next().map(str::to_owned);
            if pid.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            pid
        })
        .expect("the job in its own pid namespace");
    let stat = std::fs::read_to_string(format!("/proc/{sleep}/stat")).expect("stat");
    let sid = stat.rsplit_once(')').expect("stat").1.split_whitespace().nth(3).expect("sid").to_owned();
    let (code, out, err) = crrules(&["--rules", rules.to_str().unwrap(), "criu", "--pid", &sleep], &[]);
    let _ = job.kill();
    let _ = job.wait();
    assert_eq!(sid, job.id().to_string(), "seen from here, unshare leads the session");
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains(refusal), "{err}");
}

#[test]
fn locks_tcp_deleted_and_relinked_files_ask_for_their_options() {
    // fdholder's default shapes: a half-closed TCP connection, fcntl and flock locks, a 2 MiB deleted file, a
    // file unlinked by one name and linked by another.
    let h = holder(&[]);
    let policy = TempDir::new("criu-policy");
    let rules = policy.write(
        "p.rules",
        "socket protocol tcp state close_wait => recreate\nfile deleted => contents\nfile unlinked => contents\n\
         file => reopen path\nany => close\n",
    );
    let pid = h.pid().to_string();
    let (code, out, err) = crrules(&["--rules", rules.to_str().unwrap(), "criu", "--pid", &pid], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out, "--tcp-established --file-locks --link-remap --ghost-limit 2097152\n--tcp-established --file-locks\n",
        "holder fds {:?}",
        h.fds
    );
}

#[test]
fn inherited_files_and_pipes_are_named_as_criu_reads_them() {
    let h = holder(&["--open", "/dev/null"]);
    let pid = h.pid();
    let null = h.fd("open0");
    let policy = TempDir::new("criu-inherit");
    let rules = policy.write("p.rules", "chardev 1:3 => inherit \"null\"\npipe => inherit \"stdio\"\nany => close\n");
    // What CRIU keys an external file by: the mount id and inode in lowercase hex.
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{null}")).unwrap();
    let mnt: u64 = info.lines().find_map(|l| l.strip_prefix("mnt_id:")).unwrap().trim().parse().unwrap();
    let ino = std::fs::metadata("/dev/null").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let pipe_ino = |fd: i32| {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        link.to_string_lossy().trim_start_matches("pipe:[").trim_end_matches(']').to_owned()
    };
    let (code, out, err) = crrules(&["--rules", rules.to_str().unwrap(), "criu", "--pid", &pid.to_string()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let mut lines = out.lines();
    let dump = lines.next().unwrap();
    let restore = lines.next().unwrap();
    let key = format!("file[{mnt:x}:{ino:x}]");
    assert_eq!(dump, format!("--external '{key}'"));
    // Every fd the holder has, in fd order, from its /proc: its stdin and stdout (pipes to this test), its
    // stderr and the opened /dev/null, and any fd its environment left open.
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    fds.sort_unstable();
    // One option per object, at the first fd holding it: /dev/null is one file to CRIU however many fds
    // hold it.
    let mut seen = std::collections::HashSet::new();
    let expected: Vec<String> = fds
        .iter()
        .filter_map(|&fd| {
            let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            let object = match link.to_str() {
                Some("/dev/null") => key.clone(),
                Some(l) if l.starts_with("pipe:") => format!("pipe:[{}]", pipe_ino(fd)),
                _ => return None,
            };
            seen.insert(object.clone()).then(|| format!("--inherit-fd 'fd[{fd}]:{object}'"))
        })
        .collect();
    let first_null =
        fds.iter().find(|&&fd| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap() == Path::new("/dev/null"));
    assert!(first_null.is_some_and(|&fd| fd <= null));
    assert_eq!(restore, expected.join(" "));
}

#[test]
fn the_action_script_aborts_a_pre_dump_of_a_rejected_tree_only() {
    let rejected = holder(&[]);
    let clean = holder(&["--open", "/dev/null"]);
    let mqueue = rejected.fd("mqueue");
    let pre_dump = |pid: i32| {
        let pid = pid.to_string();
        crrules(&["criu-action"], &[("CRTOOLS_SCRIPT_ACTION", "pre-dump"), ("CRTOOLS_INIT_PID", &pid)])
    };
    let (code, _, err) = pre_dump(rejected.pid());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("fd {mqueue} ")) && err.contains("POSIX message queues cannot be checkpointed"),
        "{err}"
    );
    assert!(err.contains("aborted before CRIU freezes it"), "{err}");
    let (code, _, err) = pre_dump(clean.pid());
    assert_eq!(code, 0, "{err}");
    // Every other stage passes at once, without reading any process.
    for action in ["post-dump", "pre-restore", "post-restore", "network-lock"] {
        let (code, _, err) =
            crrules(&["criu-action"], &[("CRTOOLS_SCRIPT_ACTION", action), ("CRTOOLS_INIT_PID", "999999999")]);
        assert_eq!(code, 0, "{action}: {err}");
    }
}
