//! The compiled matcher picks the same rule as the reference interpreter: random policies (mixed kinds
//! with `any`, exact devices, ranges and wildcards, globs over a small alphabet of path pieces, socket
//! predicates, flags, sizes, fd sets, nested `not`) against random fd facts drawn from a universe that
//! overlaps the rules, so that most facts match something and the precedence between rules is exercised.

mod matcher_gen;

use crrules_engine::matcher::{CompiledMatcher, Matcher, Reference};
use crrules_rules::rule::RuleSet;
use matcher_gen::{facts, rule, run, show};
use proptest::prelude::*;
use std::cell::Cell;

#[test]
fn compiled_and_reference_pick_the_same_rule() {
    let cases: u32 = std::env::var("MATCHER_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let decided = Cell::new(0u64);
    let matched = Cell::new(0u64);
    let not_first = Cell::new(0u64);
    let strategy = (proptest::collection::vec(rule(), 1..24), proptest::collection::vec(facts(), 50));
    run(cases, &strategy, |(rules, facts)| {
        let rules = RuleSet { rules };
        let compiled = CompiledMatcher::new(&rules);
        let reference = Reference::new(&rules);
        for f in &facts {
            let want = reference.first_match(f);
            prop_assert_eq!(compiled.first_match(f), want, "facts: {:?}\nrules:\n{}", f, show(&rules.rules));
            decided.set(decided.get() + 1);
            matched.set(matched.get() + u64::from(want.is_some()));
            not_first.set(not_first.get() + u64::from(want.is_some_and(|i| i > 0)));
        }
        Ok(())
    });
    let (decided, matched, not_first) = (decided.get(), matched.get(), not_first.get());
    eprintln!("{decided} decisions, {matched} matched a rule, {not_first} a rule other than the first");
    assert!(decided >= u64::from(cases) * 50);
    assert!(matched * 2 >= decided, "only {matched} of {decided} facts matched a rule: the universes drifted apart");
    assert!(not_first * 5 >= decided, "only {not_first} of {decided} matched past the first rule");
}
