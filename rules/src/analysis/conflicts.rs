//! Site rules that change what the distribution decided: for an admin about to ship a site file, each rule
//! of theirs that takes over fds a distribution rule would have decided differently, with both locations.
//! Information, not a warning: overriding the distribution is what site files are for.

use super::shadow::at;
use super::space::{Cell, Oracle, rule_cells};
use crate::diag::{Diagnostic, Severity};
use crate::rule::{Action, Rule, RuleSet};
use crate::source::Source;
use crate::vocab::ActionWord;

/// The most distribution rules one site rule is compared with.
const MAX_COMPARED: usize = 4096;
/// The most pieces a site rule's remaining region may break into before the walk stops.
const MAX_PIECES: usize = 256;
/// The most comparisons (a piece of a site rule's region against a box of a distribution rule) of the
/// whole check, as in [`super::shadow::BUDGET`]; the site rules after it are not compared, and a
/// `crrules::lint::incomplete` note says so.
const BUDGET: u64 = 2_000_000;

/// For each rule from a site file (`is_distribution` false for its file) that decides, before a
/// distribution rule, fds that distribution rule would have decided with another action: an advice naming
/// both rules and both actions. The distribution rules are walked in order and the fds each one takes are
/// set aside, so a distribution rule that could never have decided those fds is not named. Past [`BUDGET`]
/// comparisons the remaining site rules are not compared, and a note says from which one on.
pub fn conflicts(rules: &RuleSet, sources: &[Source], is_distribution: impl Fn(&str) -> bool) -> Vec<Diagnostic> {
    let mut oracle = Oracle;
    let rules = rules.rules();
    let distribution: Vec<(usize, Vec<Cell<'_>>)> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| is_distribution(&r.origin.file))
        .filter_map(|(i, r)| Some((i, rule_cells(r, &mut oracle)?)))
        .collect();
    let mut out = Vec::new();
    let mut spent = 0u64;
    for (i, site) in rules.iter().enumerate().filter(|(_, r)| !is_distribution(&r.origin.file)) {
        if spent > BUDGET {
            out.push(stopped_at(site, spent, sources));
            break;
        }
        let Some(mut region) = rule_cells(site, &mut oracle) else { continue };
        let after = distribution.partition_point(|(j, _)| *j <= i);
        for (j, theirs) in distribution[after..].iter().take(MAX_COMPARED) {
            if region.is_empty() || region.len() > MAX_PIECES {
                break;
            }
            if spent > BUDGET {
                // This site rule was compared only in part: the note starts with it.
                out.push(stopped_at(site, spent, sources));
                return out;
            }
            spent += (region.len() * theirs.len()) as u64;
            let dist = &rules[*j];
            let overlaps = region.iter().any(|c| theirs.iter().any(|t| c.shares(t, &mut oracle)));
            if !overlaps {
                continue;
            }
            if dist.action != site.action {
                out.push(advice(site, dist, sources));
            }
            // The fds this distribution rule would have decided are accounted for.
            region = subtract(region, theirs, &mut oracle);
        }
    }
    out
}

/// The note for a check that spent its budget before site rule `first`.
fn stopped_at(first: &Rule, spent: u64, sources: &[Source]) -> Diagnostic {
    let d = Diagnostic::new(
        Severity::Advice,
        "crrules::lint::incomplete",
        format!(
            "the check for site rules that override distribution rules stopped after {spent} comparisons: the site rules from `{}` on were not compared in full",
            first.origin
        ),
    )
    .with_help("the site rules before it were compared; to compare the rest, make the rules overlap less");
    at(d, first, sources, "not compared from here on")
}

fn subtract<'g>(region: Vec<Cell<'g>>, taken: &[Cell<'g>], oracle: &mut Oracle) -> Vec<Cell<'g>> {
    let mut left = region;
    for t in taken {
        left = left
            .into_iter()
            .flat_map(|c| match c.minus(t, oracle) {
                Some(pieces) => pieces,
                None => vec![c],
            })
            .collect();
    }
    left
}

/// An action as a message quotes it: a reject without its (long) reason.
fn short(action: &Action) -> String {
    match action {
        Action::Reject { .. } => ActionWord::Reject.to_string(),
        other => other.to_string(),
    }
}

fn advice(site: &Rule, dist: &Rule, sources: &[Source]) -> Diagnostic {
    let d = Diagnostic::new(
        Severity::Advice,
        "crrules::lint::overrides",
        format!(
            "this rule changes what the distribution rule at `{}` decides for the fds both match: `{}` instead of `{}`",
            dist.origin,
            short(&site.action),
            short(&dist.action)
        ),
    )
    .with_help(
        "intended when a site overrides its distribution; check that the new action is right for every fd it takes",
    );
    let d = at(d, site, sources, "decides first");
    d.with_related(at(
        Diagnostic::new(Severity::Advice, "crrules::lint::overrides", format!("`{}` would have decided", dist.origin)),
        dist,
        sources,
        "the distribution's decision",
    ))
}
