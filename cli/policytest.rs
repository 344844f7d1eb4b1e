//! `crrules test`: policy tests kept beside the rules. A test file holds saved facts with the decision each
//! fd must get, one process object per line, in the shape `crrules check --format json` prints (so a test
//! starts as a saved check, edited to say what should happen). Each fd is decided again with the current
//! policy; any change of action is printed as a diff and fails the run.

use crate::args::{PolicyArgs, TestArgs};
use crate::load;
use crate::output::{DecisionJson, FdJson, ProcessJson};
use crate::render::{Style, Ui};
use crate::{Failure, Outcome};
use crrules_engine::matcher::CompiledMatcher;
use crrules_engine::plan::Decision;
use crrules_engine::scan::FdEntry;
use crrules_rules::Action;
use std::path::{Path, PathBuf};

/// The suffix of policy test files found in directories.
const SUFFIX: &str = ".test.jsonl";

pub fn run(args: &PolicyArgs, test: &TestArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let loaded = load::usable(args, ui)?;
    let rules = &loaded.compiled.rules;
    let matcher = CompiledMatcher::new(rules);
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in test_files(&test.paths)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| miette::miette!("cannot read policy test `{}`: {e}", file.display()))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let process: ProcessJson =
                serde_json::from_str(line).map_err(|e| miette::miette!("`{}` line {}: {e}", file.display(), n + 1))?;
            for fd in process.fds {
                let FdJson { entry: FdEntry::Open(facts), decision } = fd else { continue };
                let Some(expected) = &decision else {
                    return Err(Failure::Report(miette::miette!(
                        help = "each fd of a policy test needs an `action` (and its argument) to expect",
                        "`{}` line {}: fd {} has no expected action",
                        file.display(),
                        n + 1,
                        facts.fd
                    )));
                };
                let got = Decision::new(rules, &matcher, &facts);
                if same_action(expected, got.action()) {
                    passed += 1;
                    continue;
                }
                failed += 1;
                let rule = got.rule.map_or_else(|| "no rule".to_owned(), |r| r.origin.to_string());
                let what = facts.path.as_ref().unwrap_or(&facts.link);
                println!(
                    "{} {}:{}: pid {} fd {} ({} {what})",
                    ui.out(Style::Bad, "FAIL"),
                    file.display(),
                    n + 1,
                    process.pid,
                    facts.fd,
                    facts.kind
                );
                println!("  {} {}", ui.out(Style::Good, "- expected:"), describe(expected));
                println!("  {} {} (rule {rule})", ui.out(Style::Bad, "+ got:     "), got.action());
            }
        }
    }
    let summary = format!("{passed} decision(s) as expected, {failed} changed");
    println!("{}", ui.out(if failed > 0 { Style::Bad } else { Style::Good }, &summary));
    Ok(if failed > 0 { Outcome::Finding } else { Outcome::Clean })
}

/// True when a decision saved in a test asks for the same action as `got`.
fn same_action(expected: &DecisionJson, got: &Action) -> bool {
    if expected.action != got.keyword() {
        return false;
    }
    match got {
        Action::ReopenPath => expected.substitute.is_none(),
        Action::ReopenSubst { path } => expected.substitute.as_deref() == Some(path),
        Action::Inherit { name } => expected.inherit.as_deref() == Some(name),
        Action::Plugin { name } => expected.plugin.as_deref() == Some(name),
        Action::Contents { limit } => expected.limit == *limit,
        Action::Recreate | Action::Close | Action::Reject { .. } => true,
    }
}

fn describe(d: &DecisionJson) -> String {
    let arg = [
        d.substitute.as_ref().map(|s| format!("{s:?}")),
        d.inherit.as_ref().map(|s| format!("{s:?}")),
        d.plugin.as_ref().map(|s| format!("{s:?}")),
        d.limit.map(|l| format!("limit {l}")),
    ]
    .into_iter()
    .flatten()
    .next();
    match arg {
        Some(arg) => format!("{} {arg}", d.action),
        None => d.action.clone(),
    }
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
            files.extend(found);
        } else {
            files.push(Path::new(path).to_path_buf());
        }
    }
    Ok(files)
}
