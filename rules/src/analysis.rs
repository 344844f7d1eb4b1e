//! Static analysis of a validated rule set: rules that can never match (shadowed by earlier ones, alone or
//! together), exact duplicates, and coverage (what falls through to "no rule matches").

use crate::diag::Diagnostic;
use crate::rule::RuleSet;
use crate::source::Source;

/// Warnings about rules that can never match and exact duplicates, pointing into `sources`.
pub fn shadowing(_rules: &RuleSet, _sources: &[Source]) -> Vec<Diagnostic> {
    Vec::new()
}

/// What falls through to "no rule matches", per kind (being written; see issue 4).
#[derive(Clone, Debug, Default)]
pub struct Coverage {}

/// What falls through to "no rule matches" under `rules`.
pub fn coverage(_rules: &RuleSet) -> Coverage {
    Coverage {}
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}
