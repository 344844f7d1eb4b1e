//! Rules that can never match: exact duplicates, rules whose own conditions exclude each other, and rules
//! covered by earlier rules, alone or together (decided in the box model of [`super::space`]: never a
//! false warning, but not every covered rule is found).
//!
//! Comparing every rule with every earlier one would be quadratic; instead a rule is compared only with
//! the earlier rules of its kind or `any` that may share an fd with it, found through the interval trees
//! of [`super::index`], and its check stops as soon as they cover it. Policies whose rules overlap each
//! other massively still cost more than that, so the work is counted in *comparisons* (an index entry
//! looked at, or one box subtracted from one piece of what is left of a rule): one rule gets at most
//! [`Budget::per_rule`] of them, the whole analysis [`Budget::total`] ([`BUDGET`] unless the caller says
//! otherwise). A rule that needs more than its share is left
//! unchecked; past the budget the rules that follow are left unchecked. Either way the analysis says so
//! in a `crrules::lint::incomplete` note, and what it did check stands.

use super::index::{Extent, Index, Plan, Prefixes, extent};
use super::space::{Cell, Oracle, rule_cells};
use crate::diag::{Diagnostic, Severity};
use crate::hash::{QuickHasher, QuickMap};
use crate::par;
use crate::rule::{Predicate, Rule, RuleSet};
use crate::source::Source;
use crate::vocab::Kind;
use std::hash::{Hash, Hasher};

/// How many comparisons the analysis may make: in all, and for one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The rules after the one whose check would pass this are not checked for being shadowed.
    pub total: u64,
    /// A rule whose check needs more than this is not checked for being shadowed.
    pub per_rule: u64,
}

/// What `crrules lint` allows: 2,000,000 comparisons in all (at most about 0.7 s of one core of the
/// development machine, a comparison costing 50 to 350 ns), 10,000 for one rule.
pub const BUDGET: Budget = Budget { total: 2_000_000, per_rule: 10_000 };
/// Index entries looked at that count as one comparison (looking one up costs a few nanoseconds, taking a
/// box away from another tens to hundreds).
const LOOKS_PER_COMPARISON: usize = 8;
const UNIT: u64 = LOOKS_PER_COMPARISON as u64;
/// The most pieces the uncovered part of a rule may break into before its check gives up.
const MAX_PIECES: usize = 256;

/// A rule's check ran out of comparisons (or its uncovered part broke into too many pieces).
struct Exhausted;

/// The comparisons one rule's check has made, in eighths ([`LOOKS_PER_COMPARISON`]), and its limit.
struct Work {
    spent: u64,
    limit: u64,
}

impl Work {
    /// Counts `n` boxes taken away from pieces.
    fn spend(&mut self, n: usize) -> Result<(), Exhausted> {
        self.look(n * LOOKS_PER_COMPARISON)
    }

    /// Counts `n` index entries looked at.
    fn look(&mut self, n: usize) -> Result<(), Exhausted> {
        self.spent += n as u64;
        if self.spent > self.limit { Err(Exhausted) } else { Ok(()) }
    }
}

/// A rule's fingerprint for duplicate detection: kind, action and predicates in any order.
fn fingerprint(rule: &Rule) -> u64 {
    let mut parts: Vec<u64> = rule
        .predicates
        .iter()
        .map(|p| {
            let mut h = QuickHasher::default();
            p.hash(&mut h);
            h.finish()
        })
        .collect();
    parts.sort_unstable();
    let mut h = QuickHasher::default();
    (rule.kind, &rule.action, parts).hash(&mut h);
    h.finish()
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    let count = |r: &Rule, p: &Predicate| r.predicates.iter().filter(|q| *q == p).count();
    a.kind == b.kind
        && a.action == b.action
        && a.predicates.len() == b.predicates.len()
        && a.predicates.iter().all(|p| count(a, p) == count(b, p))
}

/// Points a diagnostic at a rule in its source, when the source is among `sources`.
pub(super) fn at(d: Diagnostic, rule: &Rule, sources: &[Source], label: &str) -> Diagnostic {
    match sources.iter().find(|s| *s.name == *rule.origin.file) {
        Some(s) => d.with_source(s).with_label(rule.origin.span.clone(), label),
        None => d,
    }
}

/// What is left of a rule's boxes as earlier rules are taken away from it, and the rules that took
/// something.
struct Cover<'r> {
    remaining: Vec<Cell<'r>>,
    used: Vec<u32>,
    pieces: Vec<Cell<'r>>,
}

impl<'r> Cover<'r> {
    fn new(cells: &[Cell<'r>]) -> Cover<'r> {
        Cover { remaining: cells.to_vec(), used: Vec::new(), pieces: Vec::new() }
    }

    /// Takes the given rules away, in order, until nothing is left (then true).
    fn take(
        &mut self,
        candidates: &[u32],
        all: &[Option<Vec<Cell<'r>>>],
        oracle: &mut Oracle,
        work: &mut Work,
    ) -> Result<bool, Exhausted> {
        for &i in candidates {
            let Some(Some(theirs)) = all.get(i as usize) else { continue };
            let mut took_part = false;
            for a in theirs {
                work.spend(self.remaining.len())?;
                // Pieces the box misses stay; the others are replaced by what is left of them.
                let mut k = 0;
                while k < self.remaining.len() {
                    match self.remaining[k].minus(a, oracle) {
                        None => k += 1,
                        Some(left) => {
                            took_part = true;
                            self.pieces.extend(left);
                            self.remaining.swap_remove(k);
                        }
                    }
                }
                self.remaining.append(&mut self.pieces);
                if self.remaining.len() > MAX_PIECES {
                    return Err(Exhausted);
                }
            }
            if took_part {
                self.used.push(i);
            }
            if self.remaining.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Drops rules from a covering set while it still covers, so that each rule named is needed.
fn minimise<'r>(
    cells: &[Cell<'r>],
    mut used: Vec<u32>,
    all: &[Option<Vec<Cell<'r>>>],
    oracle: &mut Oracle,
    work: &mut Work,
) -> Result<Vec<u32>, Exhausted> {
    let mut i = 0;
    while i < used.len() && used.len() > 1 && i < 8 {
        let without: Vec<u32> = used.iter().enumerate().filter(|&(k, _)| k != i).map(|(_, &r)| r).collect();
        let mut cover = Cover::new(cells);
        if cover.take(&without, all, oracle, work)? {
            used = cover.used;
        } else {
            i += 1;
        }
    }
    Ok(used)
}

/// What the analysis found about one rule.
enum Finding {
    Duplicate(u32),
    Contradiction,
    Shadowed(Vec<u32>),
    /// Its check ran out of comparisons: it may be shadowed or not.
    Unchecked,
}

/// Below this many rules, a batch is checked on the calling thread only.
const RULES_PER_THREAD: usize = 16;
/// The fewest and the most rules checked in one batch (between batches the budget is summed up).
const BATCH: (u64, u64) = (32, 4096);

/// The rules and what is known of them, shared by every rule's check.
struct Analysis<'r, 'i> {
    budget: Budget,
    rules: &'r [Rule],
    cells: &'i [Option<Vec<Cell<'r>>>],
    extents: &'i [Option<Extent>],
    index: &'i Index<'i>,
}

impl Analysis<'_, '_> {
    /// Checks whether earlier rules cover rule `j`: what it found, and the comparisons it made. The
    /// earlier rules that may share an fd with it are taken away from it a block at a time, first to
    /// last, until nothing is left of it or no earlier rule is.
    fn check(&self, j: usize) -> (Option<Finding>, u64) {
        let (Some(mine), Some(extent)) = (self.cells[j].as_deref(), self.extents[j].as_ref()) else {
            return (None, 0);
        };
        let mut work = Work { spent: 0, limit: self.budget.per_rule * UNIT };
        let kind = self.rules[j].kind;
        let plans: Vec<Plan> = std::iter::once(kind)
            .chain((kind != Kind::Any).then_some(Kind::Any))
            .map(|k| self.index.plan(k, extent))
            .collect();
        let oracle = &mut Oracle;
        let mut cover = Cover::new(mine);
        let mut candidates = Vec::new();
        let mut found = Ok(false);
        for block in self.index.blocks_below(j as u32) {
            candidates.clear();
            let looked: usize =
                plans.iter().map(|&plan| self.index.meeting(plan, extent, block.clone(), &mut candidates)).sum();
            candidates.sort_unstable();
            found = work.look(looked).and_then(|()| cover.take(&candidates, self.cells, oracle, &mut work));
            if !matches!(found, Ok(false)) {
                break;
            }
        }
        let found = match found {
            Ok(true) => minimise(mine, cover.used, self.cells, oracle, &mut work).map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        let finding = match found {
            Ok(Some(used)) => Some(Finding::Shadowed(used)),
            Ok(None) => None,
            Err(Exhausted) => Some(Finding::Unchecked),
        };
        (finding, work.spent.min(work.limit))
    }
}

/// See [`super::shadowing`]: [`shadowing_within`] the default [`BUDGET`].
pub fn shadowing(rules: &RuleSet, sources: &[Source]) -> Vec<Diagnostic> {
    shadowing_within(rules, sources, BUDGET)
}

/// See [`super::shadowing_within`]. Each rule's boxes and extent are built in parallel, duplicates are found in
/// order, the index is built, then the rules are checked against the earlier ones in consecutive
/// batches, each in parallel; between batches the comparisons made are summed up in order, so where the
/// budget runs out does not depend on the number of threads.
pub fn shadowing_within(rules: &RuleSet, sources: &[Source], budget: Budget) -> Vec<Diagnostic> {
    let rules = &rules.rules()[..rules.len().min(u32::MAX as usize)];
    let mut cells: Vec<Option<Vec<Cell<'_>>>> =
        par::map(rules.len(), RULES_PER_THREAD * 128, |j| rule_cells(&rules[j], &mut Oracle));
    // Duplicates and contradictions, in order; they take no further part.
    let mut findings: Vec<Option<Finding>> = (0..rules.len()).map(|_| None).collect();
    let mut seen: QuickMap<u64, Vec<u32>> = QuickMap::default();
    for (j, rule) in rules.iter().enumerate() {
        let list = seen.entry(fingerprint(rule)).or_default();
        if let Some(&i) = list.iter().find(|&&i| same_rule(&rules[i as usize], rule)) {
            findings[j] = Some(Finding::Duplicate(i));
            cells[j] = None;
        } else {
            list.push(j as u32);
        }
        if cells[j].as_ref().is_some_and(Vec::is_empty) {
            findings[j] = Some(Finding::Contradiction);
            cells[j] = None;
        }
    }
    let prefixes = Prefixes::new(cells.iter().flatten().map(Vec::as_slice));
    let extents: Vec<Option<Extent>> =
        par::map(rules.len(), RULES_PER_THREAD * 128, |j| cells[j].as_deref().and_then(|c| extent(c, &prefixes)));
    let index = Index::new(&extents, |j| rules[j].kind);
    let analysis = Analysis { budget, rules, cells: &cells, extents: &extents, index: &index };
    let (mut spent, mut next, mut stopped) = (0u64, 0usize, None);
    while next < rules.len() && stopped.is_none() {
        let size =
            ((budget.total * UNIT).saturating_sub(spent) / (budget.per_rule * UNIT).max(1)).clamp(BATCH.0, BATCH.1);
        let size = size as usize;
        let size = size.min(rules.len() - next);
        let checked = par::map(size, RULES_PER_THREAD, |k| analysis.check(next + k));
        for (k, (finding, cost)) in checked.into_iter().enumerate() {
            if spent + cost > budget.total * UNIT {
                stopped = Some(next + k);
                break;
            }
            spent += cost;
            if finding.is_some() {
                findings[next + k] = finding;
            }
        }
        next += size;
    }
    let mut out = Vec::new();
    let mut unchecked: Vec<usize> = Vec::new();
    for (j, finding) in findings.into_iter().enumerate() {
        let rule = &rules[j];
        match finding {
            Some(Finding::Duplicate(i)) => {
                let first = &rules[i as usize];
                let d = Diagnostic::warning(
                    "crrules::lint::duplicate",
                    format!("this rule repeats the rule at `{}`, so it never decides anything", first.origin),
                )
                .with_help("remove one of the two");
                out.push(at(d, rule, sources, "a duplicate").with_related(at(
                    Diagnostic::new(Severity::Advice, "crrules::lint::duplicate", "the same rule, first written here"),
                    first,
                    sources,
                    "first written here",
                )));
            }
            Some(Finding::Contradiction) => {
                let d = Diagnostic::warning(
                    "crrules::lint::never_matches",
                    "this rule can never match: its conditions exclude each other",
                )
                .with_help(
                    "check the predicates: no fd can satisfy all of them (`family unix family inet`, `size < 0`)",
                );
                out.push(at(d, rule, sources, "matches no fd"));
            }
            Some(Finding::Shadowed(used)) => out.push(shadowed(rule, &used, rules, sources)),
            Some(Finding::Unchecked) => unchecked.push(j),
            None => {}
        }
    }
    if let Some(&first) = unchecked.first() {
        out.push(gave_up(&rules[first], unchecked.len(), budget.per_rule, sources));
    }
    if let Some(j) = stopped {
        out.push(stopped_at(&rules[j], rules.len() - j, spent / UNIT, sources));
    }
    out
}

/// The note for rules whose check needed more than `per_rule` comparisons.
fn gave_up(first: &Rule, count: usize, per_rule: u64, sources: &[Source]) -> Diagnostic {
    let message = match count {
        1 => format!(
            "this rule overlaps too many earlier rules to be checked for being shadowed within {per_rule} comparisons"
        ),
        n => format!(
            "{n} rules, the first here, overlap too many earlier rules to be checked for being shadowed within {per_rule} comparisons each"
        ),
    };
    let d = Diagnostic::new(Severity::Advice, "crrules::lint::incomplete", message)
        .with_help("they may never match without a warning; the other rules were checked");
    at(d, first, sources, "not checked")
}

/// The note for an analysis that spent its budget before rule `first`.
fn stopped_at(first: &Rule, left: usize, spent: u64, sources: &[Source]) -> Diagnostic {
    let d = Diagnostic::new(
        Severity::Advice,
        "crrules::lint::incomplete",
        format!(
            "the shadowing analysis stopped after {spent} comparisons: the {left} rule(s) from `{}` on were not checked for being shadowed",
            first.origin
        ),
    )
    .with_help(
        "the rules before it were checked, and duplicates and self-contradictory rules everywhere; to check the rest, lint them on their own or make the rules overlap less",
    );
    at(d, first, sources, "not checked from here on")
}

/// The warning for a rule covered by `used`.
fn shadowed(rule: &Rule, used: &[u32], rules: &[Rule], sources: &[Source]) -> Diagnostic {
    let names: Vec<String> = used.iter().map(|&i| format!("`{}`", rules[i as usize].origin)).collect();
    let (message, help) = match names.as_slice() {
        [one] => (
            format!("this rule can never match: the rule at {one} matches every fd it would"),
            format!("remove this rule, or move it above {one} if it should decide first"),
        ),
        _ => (
            format!("this rule can never match: the rules at {} together match every fd it would", names.join(", ")),
            "remove this rule, or move it above those rules if it should decide first".to_owned(),
        ),
    };
    let mut d =
        at(Diagnostic::warning("crrules::lint::shadowed", message).with_help(help), rule, sources, "never matches");
    for &i in used {
        let r = &rules[i as usize];
        d = d.with_related(at(
            Diagnostic::new(Severity::Advice, "crrules::lint::shadowed", format!("`{}` decides first", r.origin)),
            r,
            sources,
            "decides first",
        ));
    }
    d
}
