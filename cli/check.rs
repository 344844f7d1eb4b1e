//! `crrules check`, `crrules explain` and `crrules facts`: pick a source of facts (live processes, a tree,
//! every process, a cgroup, a container, a saved facts file) and a backend (a report, or the picture), run
//! the engine's pipeline, and map its outcome to the exit status.

use crate::args::{CheckArgs, CheckFormat, ExplainArgs, FactsArgs, Format, PolicyArgs, Targets};
use crate::dot::{Dot, Graphviz};
use crate::load;
use crate::output;
use crate::render::{Style, Ui};
use crate::report::{Report, Summary};
use crate::{Failure, Outcome};
use crrules_engine::backend::Backend;
use crrules_engine::container::ContainerError;
use crrules_engine::facts::ByteString;
use crrules_engine::matcher;
use crrules_engine::pipeline::{self, RunError};
use crrules_engine::plan::Decider;
use crrules_engine::scan::{self, FdEntry, ScanOptions};
use crrules_engine::source::{FactsFile, Live, Source, SourceError};
use std::io::Write;

pub fn check(args: &PolicyArgs, check: &CheckArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let decider = load::decider(args, ui)?;
    // Without Graphviz there is nothing to draw with: said before any process is read.
    let graphviz = match check.format {
        CheckFormat::Svg => Some(Graphviz::find().ok_or_else(|| {
            miette::miette!(
                help = "install Graphviz (`apt install graphviz`), or use `--format dot`, which needs no Graphviz, and draw the graph elsewhere",
                "`--format svg` needs Graphviz's `dot` program, and there is none on PATH"
            )
        })?),
        _ => None,
    };
    let mut source = source(&check.targets, check.facts.as_deref())?;
    let outcome = match (check.format.report(), graphviz) {
        (Some(format), _) => decide(&decider, &mut *source, Report::new(format, ui), check.targets.all, ui)?,
        // `--format dot`.
        (None, None) => decide(&decider, &mut *source, Dot::new(output::stdout(), ui), check.targets.all, ui)?,
        // `--format svg`.
        (None, Some(graphviz)) => svg(&graphviz, &decider, &mut *source, check.targets.all, ui)?,
    };
    read_some(&outcome)?;
    Ok(if outcome.any_rejected() { Outcome::Finding } else { Outcome::Clean })
}

/// A run that could read none of the processes it was asked about (`--all`, or a cgroup, as a user who may
/// read none of them) checked nothing: that is an error, not a clean result.
fn read_some(outcome: &pipeline::Outcome) -> Result<(), Failure> {
    if outcome.read() > 0 || outcome.unreadable == 0 {
        return Ok(());
    }
    Err(Failure::Report(miette::miette!(
        help = "a user may read the fds of its own processes only; root may read every process's",
        "could read none of the {} processes asked about ({} unreadable, {} exited during the check): nothing was checked",
        outcome.skipped,
        outcome.unreadable,
        outcome.skipped - outcome.unreadable
    )))
}

/// Decides every process of `source` into `backend`, through the summary for `--all`.
fn decide<B: Backend<Error = std::io::Error>>(
    decider: &Decider,
    source: &mut dyn Source,
    backend: B,
    all: bool,
    ui: &Ui,
) -> Result<pipeline::Outcome, Failure> {
    if all { run(Some(decider), source, Summary::new(backend, ui)) } else { run(Some(decider), source, backend) }
}

/// The signal a write to a closed pipe raises (Linux's number): what ends a `dot` whose reader left.
const SIGPIPE: i32 = 13;

/// The picture, drawn by Graphviz's `dot` as SVG on standard output. When `dot` fails, that is the error
/// (a run that could not write to it failed because of it).
fn svg(
    graphviz: &Graphviz,
    decider: &Decider,
    source: &mut dyn Source,
    all: bool,
    ui: &Ui,
) -> Result<pipeline::Outcome, Failure> {
    let program = graphviz.program().display();
    let cannot_run = |e: std::io::Error| Failure::Report(miette::miette!("cannot run Graphviz's `{program}`: {e}"));
    let mut drawing = graphviz.draw_svg().map_err(cannot_run)?;
    let input = drawing.input().ok_or_else(|| cannot_run(std::io::Error::other("no input to write to")))?;
    // The backend, and with it `dot`'s input, is dropped when the run ends: then `dot` draws. When `dot`
    // ends early, what is left of the graph is dropped, and its exit status says why.
    let input = std::io::BufWriter::new(output::Closable::new(input));
    let outcome = decide(decider, source, Dot::new(input, ui), all, ui);
    let status = drawing.wait().map_err(cannot_run)?;
    // Killed by SIGPIPE: the reader of the SVG stopped reading, which is no failure of the drawing.
    let reader_gone = std::os::unix::process::ExitStatusExt::signal(&status) == Some(SIGPIPE);
    if !status.success() && !reader_gone {
        return Err(Failure::Report(miette::miette!(
            help = "`--format dot` prints the graph it was given",
            "Graphviz's `{program}` could not draw the graph ({status})"
        )));
    }
    outcome
}

/// `crrules facts`: the facts only, one JSON object per process per line, for `check --facts` later.
pub fn facts(args: &FactsArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let mut source = source(&args.targets, None)?;
    let outcome = run(None, &mut *source, Report::new(Format::Json, ui))?;
    read_some(&outcome)?;
    Ok(Outcome::Clean)
}

/// The source the options name: a facts file, every process, or the given pids (and their trees).
fn source(targets: &Targets, facts: Option<&std::path::Path>) -> Result<Box<dyn Source>, Failure> {
    let source: Box<dyn Source> = match facts {
        Some(path) => Box::new(FactsFile::open(path).map_err(source_failure)?),
        None if targets.all => Box::new(Live::all().map_err(source_failure)?),
        None if targets.cgroup.is_some() => Box::new(
            Live::cgroup(targets.cgroup.as_deref().unwrap_or(std::path::Path::new("/"))).map_err(source_failure)?,
        ),
        None if targets.container.is_some() => {
            Box::new(Live::container(targets.container.as_deref().unwrap_or_default()).map_err(source_failure)?)
        }
        None if targets.pid.is_empty() => {
            return Err(Failure::Report(miette::miette!(
                help = "give `--pid N` (repeatable, with `--tree` for descendants), `--cgroup PATH`, `--container ID` or `--all`",
                "no process to check"
            )));
        }
        None => Box::new(Live::pids(&targets.pid, targets.tree).map_err(source_failure)?),
    };
    Ok(source)
}

fn run<B: Backend<Error = std::io::Error>>(
    decider: Option<&Decider>,
    source: &mut dyn Source,
    backend: B,
) -> Result<pipeline::Outcome, Failure> {
    pipeline::run(decider, source, backend).map_err(|e| match e {
        RunError::Source(e) => source_failure(e),
        RunError::Backend(e) => Failure::from(e),
    })
}

fn source_failure(e: SourceError) -> Failure {
    match e {
        SourceError::Facts { .. } => Failure::Report(miette::miette!(
            help = "facts files hold one JSON object per line, as `crrules facts` or `crrules check --format json` write them",
            "{e}"
        )),
        SourceError::Container(ContainerError::NotFound { .. }) => Failure::Report(miette::miette!(
            help = "both tools are asked as the user crrules runs as (a rootless podman container is found only by \
                    its own user); or give the container's cgroup with `--cgroup PATH`",
            "{e}"
        )),
        e => Failure::Report(miette::Report::msg(e.to_string())),
    }
}

/// `crrules explain --pid N --fd M`.
pub fn explain(args: &PolicyArgs, explain: &ExplainArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let decider = load::decider(args, ui)?;
    let rules = decider.rules();
    let scan = scan::scan_process(explain.pid, &ScanOptions::default())
        .map_err(|e| Failure::Report(miette::Report::msg(e.to_string())))?;
    let facts = scan
        .fds
        .into_iter()
        .find_map(|entry| match entry {
            FdEntry::Open(f) if f.fd == explain.fd => Some(Ok(f)),
            FdEntry::Vanished { fd } if fd == explain.fd => Some(Err(())),
            _ => None,
        })
        .ok_or_else(|| miette::miette!("process {} has no fd {}", explain.pid, explain.fd))?
        .map_err(|()| {
            miette::miette!("fd {} of process {} was closed while it was being read", explain.fd, explain.pid)
        })?;

    let mut out = output::stdout();
    writeln!(out, "{}", ui.out(Style::Bold, &format!("fd {} of pid {} ({})", facts.fd, scan.pid, scan.comm)))?;
    let json = serde_json::to_value(&facts)?;
    if let serde_json::Value::Object(map) = json {
        for (key, value) in map {
            let shown = match value {
                // Escaped as in the table: a path may hold a newline or a terminal escape sequence.
                serde_json::Value::String(s) => ByteString::from(s).to_string(),
                other => other.to_string(),
            };
            writeln!(out, "  {key:>10}: {shown}")?;
        }
    }
    writeln!(out, "{}", ui.out(Style::Bold, "rules tried, in effective order:"))?;
    let trials = matcher::explain(rules, &facts);
    let mut other_kinds = 0;
    for trial in &trials {
        let rule = &rules.rules()[trial.rule];
        let origin = rule.origin.to_string();
        match trial.outcome {
            matcher::reference::Outcome::Kind => other_kinds += 1,
            matcher::reference::Outcome::Predicate(i) => writeln!(
                out,
                "  {}  {}\n  {:width$}  {}",
                ui.out(Style::Dim, &origin),
                rule.text,
                "",
                ui.out(Style::Warn, &format!("passed over: `{}` does not hold", rule.predicates[i])),
                width = origin.len()
            )?,
            matcher::reference::Outcome::Matched => writeln!(
                out,
                "  {}  {}\n  {:width$}  {}",
                ui.out(Style::Dim, &origin),
                rule.text,
                "",
                ui.out(if rule.action.is_reject() { Style::Bad } else { Style::Good }, "decides"),
                width = origin.len()
            )?,
        }
    }
    if other_kinds > 0 {
        writeln!(out, "  {}", ui.out(Style::Dim, &format!("({other_kinds} rules for other kinds skipped)")))?;
    }
    let decided = trials.last().is_some_and(|t| t.outcome == matcher::reference::Outcome::Matched);
    if !decided {
        writeln!(out, "  {}", ui.out(Style::Bad, "no rule matches: the fd is rejected"))?;
    }
    out.flush()?;
    let rejected = !decided || trials.last().is_some_and(|t| rules.rules()[t.rule].action.is_reject());
    Ok(if rejected { Outcome::Finding } else { Outcome::Clean })
}
