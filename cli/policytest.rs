//! `crrules test`: policy tests kept beside the rules. A test file is a saved plan: facts with the decision
//! each fd must get, one process object per line, in the shape `crrules check --format json` prints (so a
//! test starts as a saved check, edited to say what should happen). Each fd is decided again with the
//! current policy and the decision compared whole: action and argument, deciding rule (`FILE:LINE`) and
//! reason. Any change is printed as a diff and fails the run.

use crate::args::{PolicyArgs, TestArgs};
use crate::load;
use crate::output;
use crate::render::{Style, Ui};
use crate::{Failure, Outcome};
use crrules_engine::plan::Decision;
use crrules_engine::source::FactsFile;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The suffix of policy test files found in directories.
const SUFFIX: &str = ".test.jsonl";

pub fn run(args: &PolicyArgs, test: &TestArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let decider = load::decider(args, ui)?;
    let mut out = output::stdout();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in test_files(&test.paths)? {
        let mut saved = FactsFile::open(&file).map_err(|e| miette::miette!("{e}"))?;
        let mut decisions_in_file = 0;
        while let Some(next) = saved.next_plan() {
            let (line, expected) = next.map_err(|e| miette::miette!("{e}"))?;
            let got = decider.plan(expected.clone().into_scan());
            for (want, got) in expected.fds.iter().zip(&got.fds) {
                let Some(facts) = want.facts() else { continue };
                let Some(want) = want.decision() else {
                    return Err(Failure::Report(miette::miette!(
                        help = "each open fd of a policy test needs the decision to expect: `action` (and its argument), `rule` and `reason`",
                        "`{}` line {line}: fd {} has no expected decision",
                        file.display(),
                        facts.fd
                    )));
                };
                decisions_in_file += 1;
                let got = got.decision().expect("a decided plan decides every open fd");
                if want == got {
                    passed += 1;
                    continue;
                }
                failed += 1;
                let what = facts.path.as_ref().unwrap_or(&facts.link);
                writeln!(
                    out,
                    "{} {}:{line}: pid {} fd {} ({} {what})",
                    ui.out(Style::Bad, "FAIL"),
                    file.display(),
                    expected.pid,
                    facts.fd,
                    facts.kind
                )?;
                writeln!(out, "  {} {}", ui.out(Style::Good, "- expected:"), describe(want))?;
                writeln!(out, "  {} {}", ui.out(Style::Bad, "+ got:     "), describe(got))?;
            }
        }
        if decisions_in_file == 0 {
            return Err(Failure::Report(miette::miette!(
                help = "a policy test holds saved plans with decisions, as `crrules check --format json` writes them",
                "`{}` holds no decision to test",
                file.display()
            )));
        }
    }
    let summary = format!("{passed} decision(s) as expected, {failed} changed");
    writeln!(out, "{}", ui.out(if failed > 0 { Style::Bad } else { Style::Good }, &summary))?;
    out.flush()?;
    Ok(if failed > 0 { Outcome::Finding } else { Outcome::Clean })
}

/// `reopen path (rule F:L)`, `inherit "pts" (rule F:L): the pty slave is handed in`.
fn describe(d: &Decision) -> String {
    let mut s = match &d.action {
        crrules_rules::Action::Reject { .. } => "reject".to_owned(),
        action => action.to_string(),
    };
    s.push_str(&format!(" (rule {})", d.rule.as_deref().unwrap_or("none")));
    if let Some(reason) = d.reason() {
        s.push_str(&format!(": {reason}"));
    }
    s
}

fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| miette::miette!("cannot read `{}`: {e}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(SUFFIX)))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(Failure::Report(miette::miette!(
                    "`{}` holds no policy test (`*{SUFFIX}`)",
                    path.display()
                )));
            }
            files.extend(found);
        } else {
            files.push(Path::new(path).to_path_buf());
        }
    }
    Ok(files)
}
