//! The command line, declared once: the parser, `--help`, the man page and the shell completions all come
//! from these definitions.

use clap::builder::RangedI64ValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// A pid: 1 or more (a negative number, which `kill` reads as a process group, is refused here, where
/// the arguments are read; it is accepted as a value so that the message says why).
fn pid() -> RangedI64ValueParser<i32> {
    clap::value_parser!(i32).range(1..)
}

/// An fd number: 0 or more.
fn fd() -> RangedI64ValueParser<i32> {
    clap::value_parser!(i32).range(0..)
}

/// `NAME=FD` of `restore --inherit`: a name (any text but empty; it may hold `=`) and an fd number.
fn inherited(given: &str) -> Result<(String, i32), String> {
    let (name, number) = given.rsplit_once('=').ok_or("expected NAME=FD")?;
    if name.is_empty() {
        return Err("the NAME before `=` is empty".to_owned());
    }
    let fd = number.parse::<i32>().ok().filter(|fd| *fd >= 0);
    let fd = fd.ok_or_else(|| format!("`{number}` is not an fd number (0 or more)"))?;
    Ok((name.to_owned(), fd))
}

/// Decide, with declarative rules, which open file descriptors of a Linux process can be checkpointed and
/// how each one comes back on restore.
#[derive(Debug, Parser)]
#[command(name = "crrules", version, max_term_width = 100)]
#[command(after_help = "Exit status: 0 success, 1 a finding (errors in a policy, an fd rejected), 2 could not run.")]
pub struct Cli {
    #[command(flatten)]
    pub policy: PolicyArgs,

    /// When to use colour.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the policy comes from; shared by every command.
#[derive(Debug, Args, Clone)]
pub struct PolicyArgs {
    /// Resolve the policy directories (/usr/lib, /run, /etc crrules/rules.d) under DIR.
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,

    /// Use exactly these rule files or directories, in order, instead of the policy directories.
    #[arg(long = "rules", value_name = "PATH", global = true)]
    pub rules: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every open fd of processes: what will be done with each, which rule decided, and why not.
    Check(CheckArgs),
    /// Show the facts gathered for one fd and every rule tried, up to the one that decided.
    Explain(ExplainArgs),
    /// Write the facts of processes' fds as JSON, to be decided later with `check --facts`.
    Facts(FactsArgs),
    /// Check policy files for errors and warnings (default: the effective policy).
    Lint(LintArgs),
    /// Print the effective policy in order, with the files overridden or masked.
    Rules(RulesArgs),
    /// Run policy tests: saved facts with the action each fd must get.
    Test(TestArgs),
    /// Save the fd table of a live process to an image (refused, writing nothing, when any fd is rejected).
    Dump(DumpArgs),
    /// Bring an image's fd table back at the same numbers, then run COMMAND with it (all or nothing).
    Restore(RestoreArgs),
    /// Hand the fds of a live process straight to COMMAND, at the same numbers (the process keeps running).
    Handover(HandoverArgs),
    /// Print the `criu dump` and `criu restore` options a checkpointable process needs (exit 1, with the
    /// reasons, when it is not).
    Criu(CriuArgs),
    /// CRIU's action script: at `pre-dump`, abort the dump of a tree holding a rejected fd, before CRIU
    /// freezes anything (`action-script` in CRIU's configuration; reads CRTOOLS_SCRIPT_ACTION and
    /// CRTOOLS_INIT_PID).
    CriuAction,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// Which processes to look at.
#[derive(Debug, Args, Clone)]
pub struct Targets {
    /// A process to check (repeatable).
    #[arg(long, value_name = "PID", value_parser = pid(), allow_negative_numbers = true)]
    pub pid: Vec<i32>,

    /// Also every descendant of each --pid.
    #[arg(long, requires = "pid")]
    pub tree: bool,

    /// Every process on the host.
    #[arg(long, conflicts_with_all = ["pid", "tree"])]
    pub all: bool,

    /// Every process of a cgroup and of the cgroups below it (a container, a service): a cgroup
    /// directory, or a path in the unified or a v1 hierarchy (`/system.slice/x.service`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["pid", "tree", "all"])]
    pub cgroup: Option<PathBuf>,

    /// Every process of a running podman or docker container (its cgroup): a full id, a unique prefix of
    /// one, or a name, as `podman container inspect` or `docker container inspect` (found on PATH) know it.
    #[arg(long, value_name = "ID", conflicts_with_all = ["pid", "tree", "all", "cgroup"])]
    pub container: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub targets: Targets,

    /// Decide saved facts (from `crrules facts` or `check --format json`) instead of live processes.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pid", "tree", "all", "cgroup", "container"])]
    pub facts: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The process.
    #[arg(long, value_name = "PID", value_parser = pid(), allow_negative_numbers = true)]
    pub pid: i32,

    /// The fd.
    #[arg(long, value_name = "FD", value_parser = fd(), allow_negative_numbers = true)]
    pub fd: i32,
}

#[derive(Debug, Args)]
pub struct FactsArgs {
    #[command(flatten)]
    pub targets: Targets,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Rule files or directories to lint, in order (default: the effective policy).
    pub paths: Vec<PathBuf>,

    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,

    /// Also show, for each kind, what falls through to "no rule matches".
    #[arg(long)]
    pub coverage: bool,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = RulesFormat::Text)]
    pub format: RulesFormat,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Policy test files (`*.test.jsonl`) or directories holding them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// What a report prints for each process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Ron,
}

/// `check`'s output: a report per process, or one picture of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// A table per process.
    Text,
    /// One JSON object per process, one per line.
    Json,
    /// One RON value per process, one per line.
    Ron,
    /// One Graphviz graph of the processes, how their fds link, and each fd's decision.
    Dot,
    /// That graph drawn as SVG by Graphviz's `dot` (needs Graphviz).
    Svg,
}

impl CheckFormat {
    /// The report format, unless the output is a picture.
    pub fn report(self) -> Option<Format> {
        match self {
            CheckFormat::Text => Some(Format::Text),
            CheckFormat::Json => Some(Format::Json),
            CheckFormat::Ron => Some(Format::Ron),
            CheckFormat::Dot | CheckFormat::Svg => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RulesFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The process to dump.
    #[arg(long, value_name = "PID", value_parser = pid(), allow_negative_numbers = true)]
    pub pid: i32,

    /// The image directory to write (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub image: PathBuf,

    /// Stop the process for a consistent cut (cgroup v2 freezer, or SIGSTOP) and say for how long.
    #[arg(long)]
    pub freeze: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The image directory `crrules dump` wrote.
    #[arg(long, value_name = "DIR")]
    pub image: PathBuf,

    /// An fd this process was given, for the `inherit "NAME"` rules of the image (repeatable).
    #[arg(long, value_name = "NAME=FD", value_parser = inherited, allow_negative_numbers = true)]
    pub inherit: Vec<(String, i32)>,

    /// The command to run with the restored fds.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct HandoverArgs {
    /// The running process whose fds are handed over.
    #[arg(long, value_name = "PID", value_parser = pid(), allow_negative_numbers = true)]
    pub pid: i32,

    /// Pass only the listening sockets, from fd 3, as systemd's socket activation does (LISTEN_FDS,
    /// LISTEN_PID, LISTEN_FDNAMES).
    #[arg(long)]
    pub listen_fds: bool,

    /// The command to run with the fds.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct CriuArgs {
    /// The process to checkpoint.
    #[arg(long, value_name = "PID", value_parser = pid(), allow_negative_numbers = true)]
    pub pid: i32,

    /// The whole tree under PID (what `criu dump -t PID` dumps).
    #[arg(long)]
    pub tree: bool,

    /// Print whole commands with `-t PID -D DIR` (otherwise the options alone).
    #[arg(long, value_name = "DIR")]
    pub image_dir: Option<PathBuf>,

    /// Where the crrules CRIU plugin is, for `-L` when an fd needs it.
    #[arg(long, value_name = "DIR", default_value = crrules_engine::criu::PLUGIN_DIR)]
    pub plugin_dir: PathBuf,

    /// `args` (two shell-quoted lines: dump, then restore) or `json` (`{"dump": [...], "restore": [...]}`).
    #[arg(long, value_enum, default_value_t = CriuFormat::Args)]
    pub format: CriuFormat,

    /// Say which fds asked for each option.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CriuFormat {
    Args,
    Json,
}
