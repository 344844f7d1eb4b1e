//! A podman or docker container, by id, unique id prefix or name, resolved to its cgroup (`check
//! --container`): the container tool's CLI is asked (`podman container inspect`, then `docker container
//! inspect`, each found on PATH) for the container's state and main pid, and the main pid's cgroup is read
//! from `/proc/PID/cgroup` (through the `proc` module). The cgroup is the checkpoint's boundary: every
//! process in it and below it is checked, as with `--cgroup`.

use crate::error::ScanError;
use crate::proc::cgroup::{self, Membership};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The container tools asked, in order.
const TOOLS: [Tool; 2] = [Tool::Podman, Tool::Docker];

/// A container tool whose CLI can inspect containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Podman,
    Docker,
}

impl Tool {
    /// The command's name, looked up on PATH.
    pub fn command(self) -> &'static str {
        match self {
            Tool::Podman => "podman",
            Tool::Docker => "docker",
        }
    }

    /// The arguments that print the JSON of one container. `container inspect`, not `inspect`: an image or a
    /// volume of the same name is never taken for the container.
    fn inspect_args(self, id: &str) -> Vec<&str> {
        match self {
            Tool::Podman => vec!["container", "inspect", "--format", "json", id],
            Tool::Docker => vec!["container", "inspect", id],
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.command())
    }
}

/// What a tool's `container inspect` says of a container, in the parts needed here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    /// The full id.
    pub id: String,
    /// The name (docker's leading `/` taken off).
    pub name: String,
    /// `running`, `paused`, `exited`, `created`...
    pub status: String,
    /// The main process's pid on the host; none when no process runs.
    pub pid: Option<i32>,
    /// The cgroup path the tool reports (podman's `State.CgroupPath`; docker reports none).
    pub cgroup_path: Option<String>,
}

/// The fields of one element of the JSON array both tools print.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    id: String,
    #[serde(default)]
    name: String,
    state: RawState,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    #[serde(default)]
    status: String,
    #[serde(default)]
    running: bool,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    pid: i64,
    #[serde(default)]
    cgroup_path: Option<String>,
}

/// Parses what `container inspect` printed for one container: a JSON array holding one object. `None` for
/// an empty array (the tool knows no such container).
fn parse_inspect(json: &[u8]) -> Result<Option<Inspected>, serde_json::Error> {
    let all: Vec<RawContainer> = serde_json::from_slice(json)?;
    Ok(all.into_iter().next().map(|raw| {
        let state = raw.state;
        // Docker marks a paused container running and paused; podman, paused only. Either way its processes
        // are there (frozen), and their fds can be read.
        let alive = state.running || state.paused;
        let pid = i32::try_from(state.pid).ok().filter(|&p| p > 0 && alive);
        let status = if state.status.is_empty() {
            if alive { "running" } else { "not running" }.to_owned()
        } else {
            state.status
        };
        Inspected {
            id: raw.id,
            name: raw.name.trim_start_matches('/').to_owned(),
            status,
            pid,
            cgroup_path: state.cgroup_path.filter(|p| p.starts_with('/')),
        }
    }))
}

/// How one tool answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not found on PATH.
    Missing,
    /// It ran and did not find the container, or could not ask (no daemon): what it printed.
    Failed(String),
    /// The container.
    Found(Inspected),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Missing => f.write_str("not found on PATH"),
            Answer::Failed(text) => f.write_str(text),
            Answer::Found(c) => write!(f, "container `{}` ({})", c.name, c.status),
        }
    }
}

/// Asks `tool` about container `id`.
fn ask(tool: Tool, id: &str) -> Answer {
    let output = match Command::new(tool.command()).args(tool.inspect_args(id)).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Answer::Missing,
        Err(e) => return Answer::Failed(format!("could not be run: {e}")),
    };
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).split_whitespace().collect::<Vec<_>>().join(" ");
    if !output.status.success() {
        let err = said(&output.stderr);
        return Answer::Failed(if err.is_empty() { format!("failed ({})", output.status) } else { err });
    }
    match parse_inspect(&output.stdout) {
        Ok(Some(found)) => Answer::Found(found),
        Ok(None) => Answer::Failed(format!("no such container {id}")),
        Err(e) => Answer::Failed(format!("printed what is not a container's JSON ({e})")),
    }
}

/// A running container and its cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub tool: Tool,
    pub id: String,
    pub name: String,
    /// Its main process.
    pub pid: i32,
    /// Its cgroup's directory: every process in it or below it is the container's.
    pub cgroup: PathBuf,
}

/// Why a container cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No tool knows the container, or none could be asked.
    #[error("no container `{id}` found: {}", answers.iter().map(|(t, a)| format!("`{t} container inspect`: {a}")).collect::<Vec<_>>().join("; "))]
    NotFound { id: String, answers: Vec<(Tool, Answer)> },
    /// It exists but runs no process.
    #[error("container `{name}` ({tool}, id {}) is not running: its state is `{status}`", short(id))]
    NotRunning { tool: Tool, id: String, name: String, status: String },
    /// Its main process could not be read.
    #[error("container `{name}` ({tool}): {source}")]
    Process {
        tool: Tool,
        name: String,
        #[source]
        source: ScanError,
    },
    /// Its main process is in no cgroup of its own (only the root's, or crrules' own).
    #[error(
        "container `{name}` ({tool}): its main process {pid} is in no cgroup of its own (/proc/{pid}/cgroup: {})",
        listed.iter().map(|m| format!("{}:{}", m.controllers.join(","), m.path)).collect::<Vec<_>>().join(" ")
    )]
    NoCgroup { tool: Tool, name: String, pid: i32, listed: Vec<Membership> },
}

/// The first 12 characters of an id, as both tools show them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Resolves `id` (a full id, a unique prefix of one, or a name) to a running container and its cgroup:
/// podman is asked first, then docker.
pub fn resolve(id: &str) -> Result<Container, ContainerError> {
    let mut answers = Vec::new();
    for tool in TOOLS {
        match ask(tool, id) {
            Answer::Found(found) => return locate(tool, found),
            answer => answers.push((tool, answer)),
        }
    }
    Err(ContainerError::NotFound { id: id.to_owned(), answers })
}

/// The cgroup of a container `tool` found.
fn locate(tool: Tool, found: Inspected) -> Result<Container, ContainerError> {
    let Some(pid) = found.pid else {
        return Err(ContainerError::NotRunning { tool, id: found.id, name: found.name, status: found.status });
    };
    let process = |source| ContainerError::Process { tool, name: found.name.clone(), source };
    let theirs = cgroup::of_process(pid).map_err(process)?;
    let ours = cgroup::of_process(std::process::id() as i32).map_err(process)?;
    let dir = candidates(&theirs, &ours, found.cgroup_path.as_deref())
        .into_iter()
        .find_map(|path| cgroup::resolve_holding(Path::new(&path), pid));
    match dir {
        Some(cgroup) => Ok(Container { tool, id: found.id, name: found.name, pid, cgroup }),
        None => Err(ContainerError::NoCgroup { tool, name: found.name, pid, listed: theirs }),
    }
}

/// The cgroup paths that may be the container's, best first: the path the tool reported, when the main
/// process is in it or below it; then the process's own cgroup in the unified hierarchy, then in the v1
/// `pids`, `memory` and `name=systemd` hierarchies, then in any other. A root cgroup, or one that holds
/// crrules itself (a hierarchy the container tool left alone, on a host that uses the other one), is
/// never the container's.
fn candidates(theirs: &[Membership], ours: &[Membership], reported: Option<&str>) -> Vec<String> {
    let within = |path: &str, cg: &str| path == cg || path.starts_with(&format!("{}/", cg.trim_end_matches('/')));
    let holds_us = |m: &Membership| ours.iter().any(|o| o.controllers == m.controllers && within(&o.path, &m.path));
    let rank = |m: &Membership| {
        if m.unified() {
            0
        } else {
            ["pids", "memory", "name=systemd"]
                .iter()
                .position(|c| m.controllers.iter().any(|have| have == c))
                .map_or(4, |i| i + 1)
        }
    };
    let mut own: Vec<&Membership> = theirs.iter().filter(|m| m.path != "/" && !holds_us(m)).collect();
    own.sort_by_key(|m| rank(m));
    let mut out: Vec<String> = Vec::new();
    if let Some(reported) = reported.filter(|r| *r != "/" && own.iter().any(|m| within(&m.path, r))) {
        out.push(reported.to_owned());
    }
    for m in own {
        if !out.contains(&m.path) {
            out.push(m.path.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `podman container inspect --format json` (podman 4.3.1, Debian 12, cgroupfs on a
    /// hybrid host, runtime runc) for a running container and for the same container stopped.
    const PODMAN_RUNNING: &str = include_str!("../tests/inspect/podman-4.3.1-running.json");
    const PODMAN_EXITED: &str = include_str!("../tests/inspect/podman-4.3.1-exited.json");
    /// Written by hand after Docker's documented `docker container inspect` format (the Engine API's
    /// ContainerInspectResponse, printed as a one-element array), not captured: no Docker daemon runs here.
    const DOCKER_RUNNING: &str = include_str!("../tests/inspect/docker-running.json");
    const DOCKER_PAUSED: &str = include_str!("../tests/inspect/docker-paused.json");

    fn line(controllers: &str, path: &str) -> Membership {
        cgroup::memberships(&format!("1:{controllers}:{path}")).remove(0)
    }

    #[test]
    fn podman_running_gives_its_pid_and_cgroup_path() {
        let got = parse_inspect(PODMAN_RUNNING.as_bytes()).unwrap().unwrap();
        assert_eq!(got.id, "d7845397f9634ef0a69b25d60fe364e197773cd2550eada4c7b855a20db36052");
        assert_eq!(got.name, "crtest1");
        assert_eq!(got.status, "running");
        assert_eq!(got.pid, Some(32602));
        assert_eq!(
            got.cgroup_path.as_deref(),
            Some("/libpod_parent/libpod-d7845397f9634ef0a69b25d60fe364e197773cd2550eada4c7b855a20db36052")
        );
    }

    #[test]
    fn podman_exited_has_no_pid() {
        let got = parse_inspect(PODMAN_EXITED.as_bytes()).unwrap().unwrap();
        assert_eq!((got.status.as_str(), got.pid, got.cgroup_path), ("exited", None, None));
    }

    #[test]
    fn docker_gives_its_pid_its_name_without_the_slash_and_no_cgroup_path() {
        let got = parse_inspect(DOCKER_RUNNING.as_bytes()).unwrap().unwrap();
        assert_eq!(got.id, "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2");
        assert_eq!((got.name.as_str(), got.status.as_str(), got.pid), ("web", "running", Some(2417)));
        assert_eq!(got.cgroup_path, None);
        // Paused: docker says running and paused; the processes are there, frozen.
        let paused = parse_inspect(DOCKER_PAUSED.as_bytes()).unwrap().unwrap();
        assert_eq!((paused.status.as_str(), paused.pid), ("paused", Some(2417)));
    }

    #[test]
    fn an_empty_array_is_no_container_and_other_text_an_error() {
        assert_eq!(parse_inspect(b"[]\n").unwrap(), None);
        assert!(parse_inspect(b"Error: no such container x").is_err());
        assert!(parse_inspect(br#"[{"Id": "x"}]"#).is_err(), "an element without State is no container");
    }

    #[test]
    fn the_reported_path_comes_first_when_the_process_is_in_it() {
        let ours = [line("", "/"), line("memory", "/session")];
        let theirs = [line("pids", "/libpod_parent/libpod-ab"), line("", "/libpod_parent/libpod-ab/init")];
        let got = candidates(&theirs, &ours, Some("/libpod_parent/libpod-ab"));
        assert_eq!(got, ["/libpod_parent/libpod-ab", "/libpod_parent/libpod-ab/init"]);
        // A reported path the process is not in is not taken.
        let got = candidates(&theirs, &ours, Some("/elsewhere"));
        assert_eq!(got, ["/libpod_parent/libpod-ab/init", "/libpod_parent/libpod-ab"]);
    }

    #[test]
    fn roots_and_cgroups_holding_crrules_are_never_the_container() {
        // A hybrid host whose unified hierarchy the tool left alone: the container's v2 line is its caller's.
        let ours = [line("", "/user.slice/session-1.scope"), line("pids", "/")];
        let theirs = [
            line("", "/user.slice/session-1.scope"),
            line("cpu,cpuacct", "/docker/4fa6"),
            line("memory", "/docker/4fa6"),
            line("blkio", "/"),
        ];
        assert_eq!(candidates(&theirs, &ours, None), ["/docker/4fa6"]);
        assert!(candidates(&[line("", "/")], &ours, None).is_empty());
    }

    #[test]
    fn errors_name_the_container_and_each_answer() {
        let e = ContainerError::NotFound {
            id: "web".into(),
            answers: vec![
                (Tool::Podman, Answer::Missing),
                (Tool::Docker, Answer::Failed("Cannot connect to the Docker daemon".into())),
            ],
        };
        assert_eq!(
            e.to_string(),
            "no container `web` found: `podman container inspect`: not found on PATH; \
             `docker container inspect`: Cannot connect to the Docker daemon"
        );
        let e = ContainerError::NotRunning {
            tool: Tool::Podman,
            id: "d7845397f9634ef0a69b".into(),
            name: "web".into(),
            status: "exited".into(),
        };
        assert_eq!(e.to_string(), "container `web` (podman, id d7845397f963) is not running: its state is `exited`");
    }
}
