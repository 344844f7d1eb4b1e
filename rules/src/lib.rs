//! The crrules rule language: policy text -> syntax tree ([`ast`], by [`parse`]) -> validated rule set
//! ([`rule`], by [`validate`]), with every problem reported as a [`diag::Diagnostic`] carrying its span.
//! [`policy`] finds and orders policy files the way udev and systemd users expect. No OS code beyond
//! reading those files.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod ast;
pub mod diag;
pub mod hash;
pub mod parse;
pub mod policy;
pub mod rule;
pub mod source;
pub mod validate;
pub mod vocab;

pub use diag::{Diagnostic, Severity};
pub use rule::{Action, Rule, RuleSet};
pub use source::{Source, Span};

/// A compiled policy: the rules that validated, in effective order, and every diagnostic found.
#[derive(Debug, Default)]
pub struct Validated {
    pub rules: RuleSet,
    pub diagnostics: Vec<Diagnostic>,
}

impl Validated {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and validates policy files given in effective order (lowest index wins), collecting every
/// error of every file. This is all a check needs; [`lint`] adds the warnings about the policy as a whole.
pub fn compile(sources: &[Source]) -> Validated {
    validate::compile(sources)
}

/// [`compile`], then the static analysis `crrules lint` reports: rules that can never match (shadowed,
/// duplicated, self-contradicting), as warnings after the errors.
pub fn lint(sources: &[Source]) -> Validated {
    let mut compiled = compile(sources);
    let warnings = analysis::shadowing(&compiled.rules, sources);
    compiled.diagnostics.extend(warnings);
    compiled
}
