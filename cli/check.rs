//! `crrules check`, `crrules explain` and `crrules facts`: scan processes (or read saved facts), decide
//! every fd with the compiled matcher, hand the plans to the report backend.

use crate::args::{CheckArgs, ExplainArgs, FactsArgs, Format, PolicyArgs, Targets};
use crate::load;
use crate::output::{ProcessJson, Report};
use crate::render::{Style, Ui};
use crate::{Failure, Outcome};
use crrules_engine::backend::Backend;
use crrules_engine::facts::ByteString;
use crrules_engine::matcher::{self, CompiledMatcher};
use crrules_engine::needs;
use crrules_engine::plan::ProcessPlan;
use crrules_engine::scan::{self, FdEntry, ScanError, ScanOptions};
use crrules_rules::RuleSet;
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::{BufRead, Write};

pub fn check(args: &PolicyArgs, check: &CheckArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let loaded = load::usable(args, ui)?;
    let rules = &loaded.compiled.rules;
    let matcher = CompiledMatcher::new(rules);
    let mut report = Report::new(check.format, ui);
    if let Some(path) = &check.facts {
        return check_saved(path, rules, &matcher, &mut report);
    }
    if check.targets.all {
        return check_all(rules, &matcher, scan_options(check.format, rules), &mut report, ui);
    }
    let pids = resolve(&check.targets)?;
    let opts = scan_options(check.format, rules);
    let mut outcome = Outcome::Clean;
    for pid in pids {
        let scan = match scan::scan_process(pid, &opts) {
            Ok(scan) => scan,
            // A descendant that exits while the tree is checked has no fds left to decide.
            Err(ScanError::NoSuchProcess { .. } | ScanError::Exited { .. }) if !check.targets.pid.contains(&pid) => {
                ui.note(&format!("process {pid} (a descendant) exited during the check"));
                continue;
            }
            Err(e) => return Err(scan_failure(e)),
        };
        let plan = ProcessPlan::new(scan, rules, &matcher);
        if !plan.checkpointable() {
            outcome = Outcome::Finding;
        }
        report.process(&plan)?;
    }
    report.finish()?;
    Ok(outcome)
}

/// What to read of each fd: the table shows only what the policy needs to decide (plus what the link and,
/// for paths, `stat` always give); JSON and RON print every fact.
fn scan_options(format: Format, rules: &RuleSet) -> ScanOptions {
    match format {
        Format::Text => needs::scan_options(rules),
        Format::Json | Format::Ron => ScanOptions::all(),
    }
}

/// The pids `--pid`/`--tree` name, each once, in the order given (descendants after their ancestor).
fn resolve(targets: &Targets) -> Result<Vec<i32>, Failure> {
    if targets.pid.is_empty() {
        return Err(Failure::Report(miette::miette!(
            help = "give `--pid N` (repeatable, with `--tree` for descendants) or `--all`",
            "no process to check"
        )));
    }
    let mut pids = Vec::new();
    for &pid in &targets.pid {
        if !pids.contains(&pid) {
            pids.push(pid);
        }
        if targets.tree {
            for child in scan::descendants(pid).map_err(scan_failure)? {
                if !pids.contains(&child) {
                    pids.push(child);
                }
            }
        }
    }
    Ok(pids)
}

fn scan_failure(e: ScanError) -> Failure {
    Failure::Report(miette::Report::msg(e.to_string()))
}

/// `check --facts FILE`: decide saved facts, one process object per line, exactly as a live check would.
fn check_saved(
    path: &std::path::Path,
    rules: &RuleSet,
    matcher: &CompiledMatcher,
    report: &mut Report<'_>,
) -> Result<Outcome, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Report(miette::miette!("cannot read facts file `{}`: {e}", path.display())))?;
    let mut outcome = Outcome::Clean;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| miette::miette!("cannot read facts file `{}`: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let saved: ProcessJson = serde_json::from_str(&line).map_err(|e| {
            miette::miette!(
                help = "facts files hold one JSON object per line, as `crrules facts` or `crrules check --format json` write them",
                "`{}` line {}: {e}",
                path.display(),
                n + 1
            )
        })?;
        let plan = ProcessPlan::new(saved.into_scan(), rules, matcher);
        if !plan.checkpointable() {
            outcome = Outcome::Finding;
        }
        report.process(&plan)?;
    }
    report.finish()?;
    Ok(outcome)
}

/// `check --all`: every process on the host, with a progress bar on a terminal and a summary of how many
/// are checkpointable and the most common reasons they are not.
fn check_all(
    rules: &RuleSet,
    matcher: &CompiledMatcher,
    opts: ScanOptions,
    report: &mut Report<'_>,
    ui: &Ui,
) -> Result<Outcome, Failure> {
    let me = std::process::id() as i32;
    let pids: Vec<i32> = scan::all_pids().map_err(scan_failure)?.into_iter().filter(|&p| p != me).collect();
    let total = pids.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = Progress::new(ui.err_tty, total);
    let results: Vec<Result<ProcessPlan, ScanError>> = pids
        .par_iter()
        .map(|&pid| {
            let result = scan::scan_process(pid, &opts).map(|s| ProcessPlan::new(s, rules, matcher));
            progress.tick(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            result
        })
        .collect();
    progress.clear();

    let (mut good, mut bad, mut unreadable, mut gone) = (0usize, 0usize, 0usize, 0usize);
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for result in results {
        match result {
            Ok(plan) => {
                if plan.checkpointable() {
                    good += 1;
                } else {
                    bad += 1;
                    let mut seen: Vec<&str> = plan.rejections().map(|(_, r)| r).collect();
                    seen.sort_unstable();
                    seen.dedup();
                    for reason in seen {
                        *reasons.entry(reason.to_owned()).or_default() += 1;
                    }
                }
                report.process(&plan)?;
            }
            Err(ScanError::NoSuchProcess { .. } | ScanError::Exited { .. }) => gone += 1,
            Err(e) => {
                unreadable += 1;
                if unreadable <= 5 {
                    ui.note(&e.to_string());
                }
            }
        }
    }
    report.finish()?;
    let mut common: Vec<(String, usize)> = reasons.into_iter().collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = std::io::stderr().lock();
    writeln!(
        out,
        "{}",
        ui.err(
            Style::Bold,
            &format!(
                "{total} processes: {good} checkpointable, {bad} not, {unreadable} could not be read, {gone} exited during the check"
            )
        )
    )?;
    if !common.is_empty() {
        writeln!(out, "most common reasons:")?;
        for (reason, n) in common.iter().take(8) {
            writeln!(out, "  {n:>5}  {reason}")?;
        }
    }
    Ok(if bad > 0 { Outcome::Finding } else { Outcome::Clean })
}

/// A one-line progress bar on standard error, redrawn at most every 1%.
struct Progress {
    on: bool,
    total: usize,
}

impl Progress {
    fn new(on: bool, total: usize) -> Progress {
        Progress { on, total }
    }

    fn tick(&self, done: usize) {
        if !self.on || self.total == 0 {
            return;
        }
        let step = (self.total / 100).max(1);
        if done % step != 0 && done != self.total {
            return;
        }
        let width = 40;
        let filled = done * width / self.total;
        eprint!("\r[{}{}] {done}/{} processes", "=".repeat(filled), " ".repeat(width - filled), self.total);
    }

    fn clear(&self) {
        if self.on {
            eprint!("\r{}\r", " ".repeat(70));
        }
    }
}

/// `crrules explain --pid N --fd M`.
pub fn explain(args: &PolicyArgs, explain: &ExplainArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let loaded = load::usable(args, ui)?;
    let rules = &loaded.compiled.rules;
    let scan = scan::scan_process(explain.pid, &ScanOptions::default()).map_err(scan_failure)?;
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

    let mut out = std::io::stdout().lock();
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
    let rejected = !decided || trials.last().is_some_and(|t| rules.rules()[t.rule].action.is_reject());
    Ok(if rejected { Outcome::Finding } else { Outcome::Clean })
}

/// `crrules facts`: the facts only, one JSON object per process per line, for `check --facts` later.
pub fn facts(args: &FactsArgs, _ui: &Ui) -> Result<Outcome, Failure> {
    let pids = if args.targets.all { scan::all_pids().map_err(scan_failure)? } else { resolve(&args.targets)? };
    let opts = ScanOptions::default();
    let mut out = std::io::stdout().lock();
    for pid in pids {
        let scan = match scan::scan_process(pid, &opts) {
            Ok(scan) => scan,
            Err(ScanError::NoSuchProcess { .. } | ScanError::Exited { .. }) if !args.targets.pid.contains(&pid) => {
                continue;
            }
            Err(e) => return Err(scan_failure(e)),
        };
        serde_json::to_writer(&mut out, &ProcessJson::facts_only(scan))?;
        writeln!(out)?;
    }
    Ok(Outcome::Clean)
}
