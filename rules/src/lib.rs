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
pub use source::Source;

/// A compiled policy: the rules that validated, in effective order, and every diagnostic found.
#[derive(Debug, Default)]
pub struct Compiled {
    pub rules: RuleSet,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and validates policy files given in effective order (lowest index wins), collecting every
/// diagnostic of every file: syntax and semantic errors, then shadowing and duplicate warnings across the
/// whole policy.
pub fn compile(sources: &[Source]) -> Compiled {
    validate::compile(sources)
}
