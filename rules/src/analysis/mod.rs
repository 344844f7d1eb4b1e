//! Static analysis of a validated rule set: rules that can never match (shadowed by earlier ones, alone or
//! together), exact duplicates, and coverage (what falls through to "no rule matches"). Both work in the
//! model of [`space`]: selectors as unions of boxes over the facts a rule can test.

mod conflicts;
pub mod coverage;
mod index;
mod shadow;
pub mod space;

pub use conflicts::conflicts;
pub use coverage::Coverage;
pub use shadow::{BUDGET, Budget};

use crate::diag::Diagnostic;
use crate::rule::RuleSet;
use crate::source::Source;

/// Warnings about rules that can never match, pointing into `sources` (found by `origin.file`):
/// `crrules::lint::duplicate` (the same kind, predicates in any order and action as an earlier rule),
/// `crrules::lint::shadowed` (earlier rules, one or several together, match every fd this one would;
/// each is named, most needed first, in `related`), `crrules::lint::never_matches` (the rule's own
/// predicates exclude each other). Sound: a rule warned about can really never match. Not complete: a
/// rule is compared with the earlier rules of its kind or `any` that may share an fd with it, within
/// [`BUDGET`]; a rule whose check needs more than its share, and every rule after the one where the
/// whole budget runs out, is left unchecked and named in a `crrules::lint::incomplete` note (advice).
pub fn shadowing(rules: &RuleSet, sources: &[Source]) -> Vec<Diagnostic> {
    shadow::shadowing(rules, sources)
}

/// [`shadowing`] within another budget.
pub fn shadowing_within(rules: &RuleSet, sources: &[Source], budget: Budget) -> Vec<Diagnostic> {
    shadow::shadowing_within(rules, sources, budget)
}

/// What falls through to "no rule matches" under `rules`, per kind; see [`coverage::Coverage`] (its
/// `Display` is what `crrules lint --coverage` prints).
pub fn coverage(rules: &RuleSet) -> Coverage {
    coverage::coverage(rules)
}
