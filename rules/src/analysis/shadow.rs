//! Rules that can never match: exact duplicates, rules whose own conditions exclude each other, and rules
//! covered by earlier rules, alone or together (decided in the box model of [`super::space`]: never a
//! false warning, but not every covered rule is found).
//!
//! Comparing every rule with every earlier one would be quadratic; instead earlier rules are indexed by
//! kind and by a key (a single device major, a path or name glob, a socket family), and a rule is compared
//! only with earlier rules of its kind or `any` that share its key or have none, at most
//! [`MAX_CANDIDATES`] of them.

use super::space::{Cell, DIMS, Oracle, is_catch_all, literal_text, rule_cells};
use crate::diag::{Diagnostic, Severity};
use crate::hash::{QuickHasher, QuickMap};
use crate::par;
use crate::rule::{Predicate, Rule, RuleSet};
use crate::source::Source;
use crate::vocab::{Kind, SockFamily};
use std::hash::{Hash, Hasher};

/// The most earlier rules a rule is compared with.
pub const MAX_CANDIDATES: usize = 32;
/// The most pieces the uncovered part of a rule may break into before the check gives up.
const MAX_PIECES: usize = 256;

/// What a rule is indexed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key<'r> {
    Major(u32),
    Path(&'r str),
    Name(&'r str),
    Family(SockFamily),
    None,
}

fn key(rule: &Rule) -> Key<'_> {
    let mut best = Key::None;
    let rank = |k: &Key| match k {
        Key::Major(_) => 0,
        Key::Path(_) => 1,
        Key::Name(_) => 2,
        Key::Family(_) => 3,
        Key::None => 4,
    };
    for p in &rule.predicates {
        let k = match p {
            Predicate::Dev { major, .. } => major.as_single().map_or(Key::None, Key::Major),
            Predicate::Path(g) if !is_catch_all(g) => Key::Path(g.as_str()),
            Predicate::Name(g) if !is_catch_all(g) => Key::Name(g.as_str()),
            Predicate::Family(f) => Key::Family(*f),
            _ => Key::None,
        };
        if rank(&k) < rank(&best) {
            best = k;
        }
    }
    best
}

/// The directory part of a glob's literal prefix (`/var/log/` for `/var/log/*.log`, empty for `*.log`),
/// for globs that are not literals themselves.
fn glob_dir(text: &str) -> Option<&str> {
    let special = text.find(['*', '?', '[', ']', '{', '}', ',', '\\'])?;
    Some(text[..special].rfind('/').map_or("", |end| &text[..=end]))
}

/// The earlier rules of one kind, by key.
#[derive(Default)]
struct Group<'r> {
    keyed: QuickMap<Key<'r>, Vec<u32>>,
    /// Every keyed rule, by the kind of its key: major, path, name, family.
    by_type: [Vec<u32>; 4],
    /// Path- and name-keyed rules with a non-literal glob, by field and directory prefix.
    by_dir: QuickMap<(bool, &'r str), Vec<u32>>,
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

/// Tries to cover `cells` with the given earlier rules, in order; the rules that took part when it
/// succeeds.
fn cover<'r>(
    cells: &[Cell<'r>],
    candidates: &[u32],
    all: &[Option<Vec<Cell<'r>>>],
    oracle: &mut Oracle,
) -> Option<Vec<u32>> {
    let mut remaining = cells.to_vec();
    let mut used = Vec::new();
    for &i in candidates {
        let Some(Some(theirs)) = all.get(i as usize) else { continue };
        let mut took_part = false;
        for a in theirs {
            let mut next = Vec::with_capacity(remaining.len());
            for r in remaining {
                match r.minus(a, oracle) {
                    None => next.push(r),
                    Some(pieces) => {
                        took_part = true;
                        next.extend(pieces);
                    }
                }
            }
            remaining = next;
            if remaining.len() > MAX_PIECES {
                return None;
            }
        }
        if took_part {
            used.push(i);
        }
        if remaining.is_empty() {
            return Some(used);
        }
    }
    None
}

/// Drops rules from a covering set while it still covers, so that each rule named is needed.
fn minimise<'r>(
    cells: &[Cell<'r>],
    mut used: Vec<u32>,
    all: &[Option<Vec<Cell<'r>>>],
    oracle: &mut Oracle,
) -> Vec<u32> {
    let mut i = 0;
    while i < used.len() && used.len() > 1 && i < 8 {
        let without: Vec<u32> = used.iter().enumerate().filter(|&(k, _)| k != i).map(|(_, &r)| r).collect();
        match cover(cells, &without, all, oracle) {
            Some(smaller) => used = smaller,
            None => i += 1,
        }
    }
    used
}

/// What the analysis found about one rule.
enum Finding {
    Duplicate(u32),
    Contradiction,
    Shadowed(Vec<u32>),
}

/// Below this many rules, the analysis runs on the calling thread only.
const RULES_PER_THREAD: usize = 2048;

/// See [`super::shadowing`]. Each rule's boxes are built, then each rule is checked against the earlier
/// ones, both in parallel; the index of earlier rules is built in between, in order.
pub fn shadowing(rules: &RuleSet, sources: &[Source]) -> Vec<Diagnostic> {
    let rules = &rules.rules()[..rules.len().min(u32::MAX as usize)];
    let mut cells: Vec<Option<Vec<Cell<'_>>>> =
        par::map(rules.len(), RULES_PER_THREAD, |j| rule_cells(&rules[j], &mut Oracle));
    // Duplicates, in order; they take no further part.
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
    }
    let hulls: Vec<Option<Hull>> = cells.iter().map(|c| c.as_deref().map(hull)).collect();
    let mut groups: Vec<Group<'_>> = Kind::ALL.iter().map(|_| Group::default()).collect();
    for (j, rule) in rules.iter().enumerate() {
        if cells[j].is_none() {
            continue;
        }
        let j = j as u32;
        let k = key(rule);
        let group = &mut groups[rule.kind as usize];
        if let Key::Path(text) | Key::Name(text) = &k
            && let Some(dir) = glob_dir(text)
        {
            group.by_dir.entry((matches!(k, Key::Path(_)), dir)).or_default().push(j);
        }
        match k {
            Key::Major(_) => group.by_type[0].push(j),
            Key::Path(_) => group.by_type[1].push(j),
            Key::Name(_) => group.by_type[2].push(j),
            Key::Family(_) => group.by_type[3].push(j),
            Key::None => {}
        }
        group.keyed.entry(k).or_default().push(j);
    }
    let (cells, groups) = (&cells, &groups);
    let covered = par::map(rules.len(), RULES_PER_THREAD, |j| {
        let mine = cells[j].as_deref()?;
        if mine.is_empty() {
            return Some(Finding::Contradiction);
        }
        let oracle = &mut Oracle;
        let candidates = candidates(&rules[j], j as u32, groups, mine, cells, &hulls);
        let used = cover(mine, &candidates, cells, oracle)?;
        Some(Finding::Shadowed(minimise(mine, used, cells, oracle)))
    });
    let mut out = Vec::new();
    for (j, finding) in findings.into_iter().zip(covered).enumerate() {
        let rule = &rules[j];
        match finding.0.or(finding.1) {
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
            None => {}
        }
    }
    out
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

/// The rules of a group filed under a key.
fn keyed<'a, 'k>(group: &'a Group<'k>, k: &Key<'k>) -> &'a [u32] {
    group.keyed.get(k).map_or(&[][..], Vec::as_slice)
}

/// Adds the first and the latest rules before `before` of an ascending list (all of a short one), [`SCAN`]
/// at most.
fn out_ends(out: &mut Vec<u32>, list: &[u32], before: u32) {
    let list = &list[..list.partition_point(|&i| i < before)];
    if list.len() <= SCAN {
        out.extend_from_slice(list);
    } else {
        out.extend_from_slice(&list[..SCAN / 4]);
        out.extend_from_slice(&list[list.len() - (SCAN - SCAN / 4)..]);
    }
}

/// The most candidates tested for sharing an fd with the rule.
const SCAN: usize = 2 * MAX_CANDIDATES;

/// The hull of a rule's boxes on each numeric dimension: a quick test that two rules share no fd.
type Hull = [(u128, u128); DIMS];

fn hull(cells: &[Cell<'_>]) -> Hull {
    let mut out = [(1, 0); DIMS];
    for c in cells {
        for (o, h) in out.iter_mut().zip(c.hull()) {
            *o = if o.0 > o.1 { h } else { (o.0.min(h.0), o.1.max(h.1)) };
        }
    }
    out
}

fn hulls_meet(a: &Hull, b: &Hull) -> bool {
    a.iter().zip(b).all(|(x, y)| x.0.max(y.0) <= x.1.min(y.1))
}

/// The earlier rules `rule` is compared with, ascending: those of its kind or `any` that share its key,
/// have none, or are keyed on something `rule` does not constrain; past [`MAX_CANDIDATES`], the first
/// and the latest of those that may share an fd with it.
fn candidates(
    rule: &Rule,
    before: u32,
    groups: &[Group<'_>],
    mine: &[Cell<'_>],
    cells: &[Option<Vec<Cell<'_>>>],
    hulls: &[Option<Hull>],
) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let own = &groups[rule.kind as usize];
    let any = (rule.kind != Kind::Any).then(|| &groups[Kind::Any as usize]);
    let k = key(rule);
    let mut majors: Option<Vec<u32>> = None;
    let (mut dev, mut path, mut name, mut family) = (false, false, false, false);
    for p in &rule.predicates {
        let (mut p, mut negated) = (p, false);
        while let Predicate::Not(inner) = p {
            (p, negated) = (inner, !negated);
        }
        match p {
            Predicate::Dev { major, .. } => {
                let count: u64 = major.ranges().iter().map(|&(a, b)| u64::from(b - a) + 1).sum();
                majors = match (dev, negated) {
                    (false, false) if count <= 16 => Some(major.ranges().iter().flat_map(|&(a, b)| a..=b).collect()),
                    _ => None,
                };
                dev = true;
            }
            Predicate::Path(_) => path = true,
            Predicate::Name(_) => name = true,
            Predicate::Family(_) => family = true,
            _ => {}
        }
    }
    for group in std::iter::once(own).chain(any) {
        out_ends(&mut out, keyed(group, &Key::None), before);
        match &k {
            Key::None => {}
            k => out_ends(&mut out, keyed(group, k), before),
        }
        if let Key::Path(text) | Key::Name(text) = &k
            && let Some(literal) = literal_text(text)
        {
            let is_path = matches!(k, Key::Path(_));
            let dirs = std::iter::once(0).chain(literal.match_indices('/').map(|(end, _)| end + 1));
            for end in dirs {
                out_ends(
                    &mut out,
                    group.by_dir.get(&(is_path, &literal[..end])).map_or(&[][..], Vec::as_slice),
                    before,
                );
            }
        }
        match (&k, dev, &majors) {
            (Key::Major(_), _, _) => {}
            (_, true, Some(majors)) => {
                for m in majors {
                    out_ends(&mut out, keyed(group, &Key::Major(*m)), before);
                }
            }
            _ => out_ends(&mut out, &group.by_type[0], before),
        }
        for (constrained, t) in [(path, 1), (name, 2), (family, 3)] {
            if !constrained {
                out_ends(&mut out, &group.by_type[t], before);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.len() > SCAN {
        let tail = out.split_off(out.len() - (SCAN - SCAN / 4));
        out.truncate(SCAN / 4);
        out.extend(tail);
    }
    let Some(Some(mine_hull)) = hulls.get(before as usize) else { return Vec::new() };
    out.retain(|&i| hulls.get(i as usize).is_some_and(|h| h.as_ref().is_some_and(|h| hulls_meet(h, mine_hull))));
    if out.len() > MAX_CANDIDATES {
        // Keep those that may share some fd with the rule, then the first and the latest of them.
        out.retain(|&i| {
            let Some(Some(theirs)) = cells.get(i as usize) else { return false };
            theirs.iter().any(|a| mine.iter().any(|b| a.meets(b)))
        });
        if out.len() > MAX_CANDIDATES {
            let tail = out.split_off(out.len() - (MAX_CANDIDATES - MAX_CANDIDATES / 4));
            out.truncate(MAX_CANDIDATES / 4);
            out.extend(tail);
        }
    }
    out
}
