//! From command-line policy options to a compiled policy, printing its diagnostics on the way.

use crate::args::PolicyArgs;
use crate::render::Ui;
use crate::{Failure, builtin};
use crrules_rules::policy::{self, Lookup, Policy};
use crrules_rules::{Diagnostic, Validated};
use std::path::PathBuf;

/// A policy found and compiled.
pub struct Loaded {
    pub policy: Policy,
    pub compiled: Validated,
}

/// The lookup the options ask for; `explicit` overrides `--rules` (lint's own paths).
pub fn lookup(args: &PolicyArgs, explicit: &[PathBuf]) -> Lookup {
    let euid = crrules_engine::proc::effective_uid();
    Lookup {
        root: args.root.clone(),
        explicit: if explicit.is_empty() { args.rules.clone() } else { explicit.to_vec() },
        require_owner: (euid == 0).then_some(0),
    }
}

/// How much to say about a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Errors only: what a check needs.
    Errors,
    /// Errors and the warnings of the whole-policy analysis: what `lint` shows.
    Lint,
}

/// Finds and compiles the policy. Files that cannot be read are printed and make this fail.
pub fn load(lookup: &Lookup, depth: Depth, ui: &Ui) -> Result<Loaded, Failure> {
    let policy = policy::load(lookup, builtin::POLICY).map_err(|errors| {
        ui.diagnostics(&errors);
        Failure::Printed
    })?;
    let compiled = match depth {
        Depth::Errors => crrules_rules::compile(&policy.sources),
        Depth::Lint => crrules_rules::lint(&policy.sources),
    };
    Ok(Loaded { policy, compiled })
}

/// Finds and compiles the policy for a command that needs a usable one: any error is printed and makes
/// this fail; warnings are left to `crrules lint`.
pub fn usable(args: &PolicyArgs, ui: &Ui) -> Result<Loaded, Failure> {
    let loaded = load(&lookup(args, &[]), Depth::Errors, ui)?;
    if loaded.compiled.has_errors() {
        let errors: Vec<Diagnostic> = loaded.compiled.diagnostics.iter().filter(|d| d.is_error()).cloned().collect();
        ui.diagnostics(&errors);
        ui.note(&format!(
            "the policy has {} error(s); fix them (see `crrules lint`) before checking processes",
            errors.len()
        ));
        return Err(Failure::Printed);
    }
    Ok(loaded)
}
