//! `crrules lint` (diagnostics for policy files) and `crrules rules` (the effective policy, in order).

use crate::args::{LintArgs, PolicyArgs, RulesArgs, RulesFormat};
use crate::load;
use crate::render::{Style, Ui};
use crate::{Failure, Outcome};
use crrules_rules::policy::{Layer, Status};
use crrules_rules::{Diagnostic, Severity};
use serde::Serialize;
use std::io::Write;

pub fn lint(args: &PolicyArgs, lint: &LintArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let loaded = load::load(&load::lookup(args, &lint.paths), load::Depth::Lint, ui)?;
    // The distribution's files, when site or runtime files are in the policy too: site rules overriding
    // distribution rules is what site files are for, so it is reported as information, not as shadowing.
    let active = |layers: &[Layer]| -> Vec<String> {
        let files = loaded.policy.files.iter();
        files
            .filter(|f| f.status == Status::Active && layers.contains(&f.layer))
            .map(|f| f.path.display().to_string())
            .collect()
    };
    let distribution = active(&[Layer::Distribution, Layer::Builtin]);
    let layered = !active(&[Layer::Site, Layer::Runtime]).is_empty() && !distribution.is_empty();
    let is_distribution = |file: &str| distribution.iter().any(|d| d == file);
    let diagnostics: Vec<Diagnostic> = loaded
        .validated
        .diagnostics
        .iter()
        .filter(|d| !(layered && overridden_by_site(d, &is_distribution)))
        .cloned()
        .collect();
    ui.diagnostics(&diagnostics);
    let overrides = if layered {
        crrules_rules::analysis::conflicts(&loaded.validated.rules, &loaded.policy.sources, is_distribution)
    } else {
        Vec::new()
    };
    ui.diagnostics(&overrides);
    let count = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    if lint.coverage {
        let coverage = crrules_rules::analysis::coverage(&loaded.validated.rules).to_string();
        crate::output::print_all(coverage.as_bytes())?;
    }
    let failed = errors > 0 || (lint.deny_warnings && warnings > 0);
    let overrides = overrides.iter().filter(|d| d.code == "crrules::lint::overrides").count();
    let summary = format!(
        "{} file(s), {} rule(s): {errors} error(s), {warnings} warning(s){}{}",
        loaded.policy.files.iter().filter(|f| f.status == Status::Active).count(),
        loaded.validated.rules.len(),
        if overrides == 0 { String::new() } else { format!(", {overrides} site override(s)") },
        if lint.deny_warnings && warnings > 0 { " (warnings denied)" } else { "" }
    );
    eprintln!("{}", ui.err(if failed { Style::Bad } else { Style::Good }, &summary));
    Ok(if failed { Outcome::Finding } else { Outcome::Clean })
}

/// A warning that a distribution rule never matches because of rules that include a site rule.
fn overridden_by_site(d: &Diagnostic, is_distribution: &impl Fn(&str) -> bool) -> bool {
    let file = |d: &Diagnostic| d.source.as_ref().map(|s| s.name().to_owned());
    d.code == "crrules::lint::shadowed"
        && file(d).is_some_and(|f| is_distribution(&f))
        && d.related.iter().any(|r| file(r).is_some_and(|f| !is_distribution(&f)))
}

#[derive(Serialize)]
struct RulesJson<'a> {
    files: &'a [crrules_rules::policy::PolicyFile],
    rules: Vec<RuleJson<'a>>,
}

#[derive(Serialize)]
struct RuleJson<'a> {
    index: usize,
    rule: String,
    kind: crrules_rules::vocab::Kind,
    #[serde(flatten)]
    action: &'a crrules_rules::Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    because: Option<&'a str>,
    text: &'a str,
}

pub fn rules(args: &PolicyArgs, opts: &RulesArgs, ui: &Ui) -> Result<Outcome, Failure> {
    let loaded = load::load(&load::lookup(args, &[]), load::Depth::Errors, ui)?;
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) =
        loaded.validated.diagnostics.iter().cloned().partition(Diagnostic::is_error);
    ui.diagnostics(&warnings);
    if !errors.is_empty() {
        ui.diagnostics(&errors);
        ui.note(&format!("the policy has {} error(s); see `crrules lint`", errors.len()));
        return Err(Failure::Printed);
    }
    let rules = loaded.validated.rules.rules();
    let mut out = crate::output::stdout();
    match opts.format {
        RulesFormat::Json => {
            let json = RulesJson {
                files: &loaded.policy.files,
                rules: rules
                    .iter()
                    .enumerate()
                    .map(|(index, r)| RuleJson {
                        index,
                        rule: r.origin.to_string(),
                        kind: r.kind,
                        action: &r.action,
                        because: r.because.as_deref(),
                        text: &r.text,
                    })
                    .collect(),
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        RulesFormat::Text => {
            let width = rules.iter().map(|r| r.origin.to_string().len()).max().unwrap_or(0);
            let mut current: Option<&str> = None;
            for r in rules {
                if current != Some(&r.origin.file) {
                    let layer =
                        loaded.policy.files.iter().find(|f| f.path.as_os_str() == &*r.origin.file).map(|f| f.layer);
                    let from = layer.map(|l| format!(" ({})", layer_name(l))).unwrap_or_default();
                    writeln!(out, "{}", ui.out(Style::Bold, &format!("# {}{from}", r.origin.file)))?;
                    current = Some(&r.origin.file);
                }
                let origin = r.origin.to_string();
                writeln!(out, "{}  {}", ui.out(Style::Dim, &format!("{origin:width$}")), r.text)?;
            }
            for f in &loaded.policy.files {
                let line = match &f.status {
                    Status::Active | Status::Mask => continue,
                    Status::Overridden { by } => format!("# {} overridden by {}", f.path.display(), by.display()),
                    Status::Masked { by } => format!("# {} masked by {}", f.path.display(), by.display()),
                };
                writeln!(out, "{}", ui.out(Style::Warn, &line))?;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Clean)
}

/// Where a policy file came from, in the words of `crrules rules`.
fn layer_name(layer: Layer) -> &'static str {
    match layer {
        Layer::Builtin => "built in, standing in for /usr/lib/crrules/rules.d",
        Layer::Distribution => "distribution",
        Layer::Runtime => "runtime",
        Layer::Site => "site",
        Layer::Explicit => "--rules",
    }
}
