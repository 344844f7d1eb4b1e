//! Static analysis of a validated rule set: rules that can never match (shadowed by earlier ones, alone or
//! together), exact duplicates, and coverage (what falls through to "no rule matches"). Both work in the
//! model of [`space`]: selectors as unions of boxes over the facts a rule can test.

mod conflicts;
pub mod coverage;
mod shadow;
pub mod space;

pub use conflicts::conflicts;
pub use coverage::Coverage;

use crate::diag::Diagnostic;
use crate::rule::RuleSet;
use crate::source::Source;

/// Warnings about rules that can never match, pointing into `sources` (found by `origin.file`):
/// `crrules::lint::duplicate` (the same kind, predicates in any order and action as an earlier rule),
/// `crrules::lint::shadowed` (earlier rules, one or several together, match every fd this one would;
/// each is named, most needed first, in `related`), `crrules::lint::never_matches` (the rule's own
/// predicates exclude each other). Sound: a rule warned about can really never match. Not complete: a
/// rule is compared only with up to 32 earlier rules of its kind (or `any`) that share its index key.
pub fn shadowing(rules: &RuleSet, sources: &[Source]) -> Vec<Diagnostic> {
    shadow::shadowing(rules, sources)
}

/// What falls through to "no rule matches" under `rules`, per kind; see [`coverage::Coverage`] (its
/// `Display` is what `crrules lint --coverage` prints).
pub fn coverage(rules: &RuleSet) -> Coverage {
    coverage::coverage(rules)
}
