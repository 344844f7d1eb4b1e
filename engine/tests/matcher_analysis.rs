//! The static analysis never warns falsely: for random policies, every rule reported as shadowed,
//! duplicate or never matching is, by the reference interpreter, never the first match of any fd drawn
//! from the universe the rules are written over. (The analysis lives in the rules crate; the
//! interpreter that defines what a rule matches lives here.)

mod matcher_gen;

use crrules_engine::matcher::reference;
use crrules_rules::analysis::shadowing;
use crrules_rules::rule::{Origin, RuleSet};
use crrules_rules::{Severity, Source};
use matcher_gen::{facts, predicate, rule, run, show};
use proptest::prelude::*;
use std::cell::Cell;

#[test]
fn rules_reported_as_never_matching_never_decide() {
    let cases: u32 = std::env::var("ANALYSIS_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let warned = Cell::new(0u64);
    let hit = Cell::new(0u64);
    // Half the rules are variants of earlier ones (a predicate added or replaced), so that many rules are
    // covered, or nearly: the boundaries the analysis must get exactly right.
    let variants = proptest::collection::vec((any::<usize>(), any::<usize>(), predicate(), any::<bool>()), 0..10);
    let policy = (proptest::collection::vec(rule(), 1..10), variants).prop_map(|(mut rules, variants)| {
        for (k, at, p, replace) in variants {
            let mut r = rules[k % rules.len()].clone();
            if replace && !r.predicates.is_empty() {
                let at = at % r.predicates.len();
                r.predicates[at] = p;
            } else {
                r.predicates.push(p);
            }
            rules.push(r);
        }
        rules
    });
    let strategy = (policy, proptest::collection::vec(facts(), 300));
    run(cases, &strategy, |(mut rules, facts)| {
        // One source per rule, so each warning's file names its rule.
        let sources: Vec<Source> = (0..rules.len()).map(|i| Source::new(format!("r{i}"), "x")).collect();
        for (i, r) in rules.iter_mut().enumerate() {
            r.origin = Origin { file: sources[i].name.clone(), line: 1, span: 0..1 };
        }
        let rules = RuleSet { rules };
        for d in shadowing(&rules, &sources) {
            // Past its budget the analysis says where it stopped; that note claims nothing of any rule.
            if d.code == "crrules::lint::incomplete" {
                continue;
            }
            prop_assert_eq!(d.severity, Severity::Warning);
            let name = d.source.as_ref().map(|s| s.name().to_owned()).unwrap_or_default();
            let j: usize = name.trim_start_matches('r').parse().unwrap_or(usize::MAX);
            prop_assert!(j < rules.len(), "warning about no rule: {:?}", d);
            warned.set(warned.get() + 1);
            let r = &rules.rules[j];
            for f in &facts {
                if reference::matches(r, f) {
                    hit.set(hit.get() + 1);
                    let earlier = rules.rules[..j].iter().position(|e| reference::matches(e, f));
                    prop_assert!(
                        earlier.is_some(),
                        "{} about rule {} ({:?}), yet it decides {:?}\nrules:\n{}",
                        d.code,
                        j,
                        d.message,
                        f,
                        show(&rules.rules)
                    );
                }
            }
        }
        Ok(())
    });
    let (warned, hit) = (warned.get(), hit.get());
    eprintln!("{warned} warnings checked against {hit} facts their rule matches");
    assert!(warned >= u64::from(cases) / 4, "only {warned} warnings: the generator rarely makes covered rules");
    assert!(hit >= warned * 10, "warned rules were rarely matched by the facts ({hit})");
}
