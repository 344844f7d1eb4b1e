//! From command-line policy options to a policy, through the rules library's one call, printing its
//! diagnostics on the way.

use crate::Failure;
use crate::args::PolicyArgs;
use crate::render::Ui;
use crrules_engine::plan::Decider;
use crrules_rules::Validated;
use crrules_rules::policy::{self, Lookup, Policy};
use std::path::PathBuf;

/// A policy found and compiled, errors and all (what `lint` and `rules` show).
pub struct Loaded {
    pub policy: Policy,
    pub validated: Validated,
}

/// The lookup the options ask for; `explicit` overrides `--rules` (lint's own paths).
pub fn lookup(args: &PolicyArgs, explicit: &[PathBuf]) -> Lookup {
    let explicit = if explicit.is_empty() { args.rules.clone() } else { explicit.to_vec() };
    Lookup::system(args.root.clone(), explicit)
}

/// How much to say about a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Errors only.
    Errors,
    /// Errors and the warnings of the whole-policy analysis: what `lint` shows.
    Lint,
}

/// Finds and compiles the policy, keeping its diagnostics for the caller. Files that cannot be read are
/// printed and make this fail; a file that is not UTF-8 is an error among the compiler's; a policy without
/// a rule is a warning here.
pub fn load(lookup: &Lookup, depth: Depth, ui: &Ui) -> Result<Loaded, Failure> {
    let policy = policy::load(lookup, policy::BUILTIN).map_err(|errors| {
        ui.diagnostics(&errors);
        Failure::Printed
    })?;
    let mut validated = match depth {
        Depth::Errors => crrules_rules::compile(&policy.sources),
        Depth::Lint => crrules_rules::lint(&policy.sources),
    };
    // Files that could not be compiled (not UTF-8) are errors in those files, like the compiler's.
    validated.diagnostics.splice(0..0, policy.diagnostics.iter().cloned());
    if policy.sources.is_empty() && policy.diagnostics.is_empty() {
        let mut warning = policy::empty(lookup);
        warning.severity = crrules_rules::Severity::Warning;
        validated.diagnostics.push(warning);
    }
    Ok(Loaded { policy, validated })
}

/// The effective policy ready to decide, for a command that needs a usable one: any error (unreadable
/// files, rule errors, no rule at all) is printed and makes this fail; warnings are left to `lint`.
pub fn decider(args: &PolicyArgs, ui: &Ui) -> Result<Decider, Failure> {
    let (_, rules) = policy::usable(&lookup(args, &[])).map_err(|errors| {
        ui.diagnostics(&errors);
        if errors.iter().any(|d| d.code != "crrules::policy::empty" && d.source.is_some()) {
            ui.note(&format!(
                "the policy has {} error(s); fix them (see `crrules lint`) before checking processes",
                errors.len()
            ));
        }
        Failure::Printed
    })?;
    Ok(Decider::new(rules))
}
