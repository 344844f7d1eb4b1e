//! Rule set -> decision for one fd: "the first rule in effective order whose selector holds".
//! [`reference`] walks the rules in order and is the specification; [`compiled`] indexes them and must
//! agree with it on every input (a property test holds it to that).

pub mod compiled;
mod globs;
mod index;
pub mod reference;

pub use compiled::CompiledMatcher;
pub use reference::{Outcome, Reference, Trial, explain};

use crate::facts::FdFacts;

/// Decides which rule of a rule set applies to an fd.
pub trait Matcher: Send + Sync {
    /// The index (in the rule set's effective order) of the first rule that matches, if any.
    fn first_match(&self, facts: &FdFacts) -> Option<usize>;
}
