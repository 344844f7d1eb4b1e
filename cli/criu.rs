//! `crrules criu` and `crrules criu-action`: the policy in front of CRIU. `criu` checks a process (or tree)
//! and, when it is checkpointable, prints the `criu dump` and `criu restore` options its decisions need
//! (refusing with `check`'s table otherwise); `criu-action` is CRIU's action script: at `pre-dump`, before
//! CRIU freezes anything, it checks the tree CRIU is about to dump and aborts the dump with the policy's
//! reasons when an fd is rejected.

use crate::args::{CriuArgs, CriuFormat, Format, PolicyArgs};
use crate::load;
use crate::output;
use crate::render::Ui;
use crate::report::Report;
use crate::{Failure, Outcome};
use crrules_engine::backend::Backend;
use crrules_engine::criu::{CriuOption, OptionsBuilder};
use crrules_engine::pipeline::{self, RunError};
use crrules_engine::plan::ProcessPlan;
use crrules_engine::source::Live;
use std::io::Write;

/// Keeps every plan, and prints the rejected ones as `check` does.
struct Collect<'a> {
    plans: Vec<ProcessPlan>,
    report: Report<'a>,
}

impl Backend for Collect<'_> {
    type Error = std::io::Error;

    /// Mount ids (for `--external file[...]`), locks (`--file-locks`), sockets' peers and states: every fact.
    fn needs(&self) -> crrules_engine::scan::ScanOptions {
        crrules_engine::scan::ScanOptions::all()
    }

    fn process(&mut self, plan: &ProcessPlan) -> Result<(), Self::Error> {
        if !plan.checkpointable() {
            self.report.process(plan)?;
        }
        self.plans.push(plan.clone());
        Ok(())
    }
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::Report(miette::Report::msg(e.to_string()))
}

/// Checks `pid` (and its descendants with `tree`); the plans, or `None` when some fd is rejected.
fn plans(policy: &PolicyArgs, pid: i32, tree: bool, ui: &Ui) -> Result<Option<Vec<ProcessPlan>>, Failure> {
    let decider = load::decider(policy, ui)?;
    let mut source = Live::pids(&[pid], tree).map_err(fail)?;
    let mut collect = Collect { plans: Vec::new(), report: Report::new(Format::Text, ui) };
    let outcome = pipeline::run(Some(&decider), &mut source, &mut collect).map_err(|e| match e {
        RunError::Source(e) => fail(e),
        RunError::Backend(e) => Failure::from(e),
    })?;
    Ok((!outcome.any_rejected()).then_some(collect.plans))
}

pub fn criu(policy: &PolicyArgs, args: &CriuArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let Some(plans) = plans(policy, args.pid, args.tree, ui)? else {
        eprintln!("crrules criu: process {} cannot be checkpointed: no CRIU options", args.pid);
        return Ok(Outcome::Finding);
    };
    let refused = crrules_engine::criu::refusals(&plans, crrules_engine::criu::own_namespace_sid);
    if !refused.is_empty() {
        for r in &refused {
            eprintln!("crrules criu: {r}");
        }
        eprintln!("crrules criu: CRIU cannot checkpoint process {}: no CRIU options", args.pid);
        return Ok(Outcome::Finding);
    }
    let mut builder = OptionsBuilder::new(&args.plugin_dir.to_string_lossy());
    builder.add_all(&plans);
    let options = builder.finish();
    let mut out = output::stdout();
    match args.format {
        CriuFormat::Json => {
            #[derive(serde::Serialize)]
            struct Json<'a> {
                dump: Vec<String>,
                restore: Vec<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                explain: Option<&'a crrules_engine::criu::CriuOptions>,
            }
            let mut dump = Vec::new();
            let mut restore = Vec::new();
            if let Some(dir) = &args.image_dir {
                let dir = dir.to_string_lossy().into_owned();
                dump.extend(["-t".to_owned(), args.pid.to_string(), "-D".to_owned(), dir.clone()]);
                restore.extend(["-D".to_owned(), dir]);
            }
            dump.extend(options.dump_args());
            restore.extend(options.restore_args());
            let json = Json { dump, restore, explain: args.explain.then_some(&options) };
            serde_json::to_writer(&mut out, &json)?;
            writeln!(out)?;
        }
        CriuFormat::Args => {
            let (mut dump, mut restore) = (Vec::new(), Vec::new());
            if let Some(dir) = &args.image_dir {
                let dir = dir.to_string_lossy().into_owned();
                dump.extend(["criu".to_owned(), "dump".to_owned(), "-t".to_owned(), args.pid.to_string()]);
                dump.extend(["-D".to_owned(), dir.clone()]);
                restore.extend(["criu".to_owned(), "restore".to_owned(), "-D".to_owned(), dir]);
            }
            dump.extend(options.dump_args());
            restore.extend(options.restore_args());
            writeln!(out, "{}", shell_words(&dump))?;
            writeln!(out, "{}", shell_words(&restore))?;
            if args.explain {
                explain(&mut out, "dump", &options.dump)?;
                explain(&mut out, "restore", &options.restore)?;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Clean)
}

fn explain(out: &mut dyn Write, stage: &str, options: &[CriuOption]) -> std::io::Result<()> {
    if options.is_empty() {
        return writeln!(out, "# {stage}: no option needed");
    }
    for o in options {
        writeln!(out, "# {stage} {}:", shell_words(&o.args))?;
        for why in &o.because {
            writeln!(out, "#   {why}")?;
        }
    }
    Ok(())
}

/// Words joined for a POSIX shell: plain when made of safe characters, single-quoted otherwise.
pub fn shell_words(words: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    words
        .iter()
        .map(
            |w| {
                if !w.is_empty() && w.chars().all(safe) { w.clone() } else { format!("'{}'", w.replace('\'', r"'\''")) }
            },
        )
        .collect::<Vec<_>>()
        .join(" ")
}

/// `crrules criu-action`: CRIU's action script. At `pre-dump` it checks the tree rooted at
/// `CRTOOLS_INIT_PID`; a rejected fd aborts the dump (exit 1) with one line per reason on stderr, which CRIU
/// writes to its log. Every other action returns at once.
pub fn action(policy: &PolicyArgs, ui: &Ui) -> Result<Outcome, Failure> {
    if std::env::var("CRTOOLS_SCRIPT_ACTION").as_deref() != Ok("pre-dump") {
        return Ok(Outcome::Clean);
    }
    let given =
        std::env::var("CRTOOLS_INIT_PID").map_err(|_| fail("pre-dump without a CRTOOLS_INIT_PID: nothing to check"))?;
    let pid = given
        .parse::<i32>()
        .ok()
        .filter(|&pid| pid > 0)
        .ok_or_else(|| fail(format!("pre-dump with CRTOOLS_INIT_PID=`{given}`, which is not a pid")))?;
    let decider = load::decider(policy, ui)?;
    let mut source = Live::pids(&[pid], true).map_err(fail)?;
    /// One line per reason, and how many of them are rejected fds.
    struct Reasons(Vec<String>, usize);
    impl Backend for Reasons {
        type Error = std::convert::Infallible;
        fn process(&mut self, plan: &ProcessPlan) -> Result<(), Self::Error> {
            let refused =
                crrules_engine::criu::refusals(std::slice::from_ref(plan), crrules_engine::criu::own_namespace_sid);
            self.0.extend(refused.into_iter().map(|r| format!("crrules: {r}")));
            for fd in &plan.fds {
                if let (Some(f), Some(d)) = (fd.facts(), fd.decision())
                    && d.is_reject()
                {
                    let rule = d.rule.as_deref().unwrap_or(crrules_engine::plan::NO_RULE);
                    self.1 += 1;
                    self.0.push(format!(
                        "crrules: pid {} ({}) fd {} ({}): {} [{rule}]",
                        plan.pid,
                        plan.comm,
                        f.fd,
                        f.link,
                        d.reason().unwrap_or("rejected")
                    ));
                }
            }
            Ok(())
        }
    }
    let mut reasons = Reasons(Vec::new(), 0);
    pipeline::run(Some(&decider), &mut source, &mut reasons).map_err(|e| match e {
        RunError::Source(e) => fail(e),
        RunError::Backend(never) => match never {},
    })?;
    if reasons.0.is_empty() {
        return Ok(Outcome::Clean);
    }
    for r in &reasons.0 {
        eprintln!("{r}");
    }
    let why = match reasons.1 {
        0 => "CRIU would refuse it".to_owned(),
        n => format!("{n} fd(s) rejected"),
    };
    eprintln!("crrules: the dump of process {pid} is aborted before CRIU freezes it: {why}");
    Ok(Outcome::Finding)
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn shell_quoting() {
        let w = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(shell_words(&w(&["--ghost-limit", "2097152"])), "--ghost-limit 2097152");
        assert_eq!(shell_words(&w(&["--inherit-fd", "fd[0]:pipe:[12]"])), "--inherit-fd 'fd[0]:pipe:[12]'");
        assert_eq!(shell_words(&w(&["-D", "/tmp/a b", "it's"])), r"-D '/tmp/a b' 'it'\''s'");
        assert_eq!(shell_words(&w(&[""])), "''");
    }
}
