//! What falls through to "no rule matches", per kind, for `crrules lint --coverage`.
//!
//! Whether a kind is covered at all is decided in the box model (every fd of the kind matches some
//! rule). What falls through is then shown where it can be listed compactly: device numbers for
//! `chardev` and `blockdev`, socket families (with the types left open) for `socket`, and for the other
//! kinds the conditions under which some rule decides. Device numbers and families count as decided
//! only by rules that decide *every* fd with that number or family: a rule with any other condition
//! (`path`, `flags`, `not 1:3`...) may leave some of them undecided, so it does not remove them from the
//! list; the rules with such conditions are counted beside it.

use super::space::{Cell, Oracle, kind_cell, rule_cells};
use crate::rule::{NumSet, Predicate, Rule, RuleSet};
use crate::vocab::{Kind, MAJOR_LIMIT, MINOR_LIMIT, SockFamily, SockState, SockType};
use std::collections::HashMap;
use std::fmt;

/// How much of a kind the rules decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every fd of the kind matches some rule.
    Covered,
    /// Some do, some may not.
    Partial,
    /// No rule can match an fd of the kind.
    Uncovered,
}

/// Device numbers: majors with the minors left undecided under each of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceGap {
    pub majors: NumSet,
    pub minors: NumSet,
}

/// A socket family (`None`: sockets whose family is unknown) with the types some of whose sockets no
/// rule decides (empty: all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyGap {
    pub family: Option<SockFamily>,
    /// `None` in the list: sockets whose type is unknown.
    pub types: Vec<Option<SockType>>,
}

/// The coverage of one kind.
#[derive(Clone, Debug)]
pub struct KindCoverage {
    pub kind: Kind,
    pub status: Status,
    /// `chardev` and `blockdev`: device numbers that no rule decides for every fd.
    pub devices: Vec<DeviceGap>,
    /// `socket`: families some of whose sockets no rule decides for every fd.
    pub families: Vec<FamilyGap>,
    /// The rules of the kind (or `any`) that decide only some fds, by the conditions they test: the
    /// predicates of each, as written.
    pub conditions: Vec<String>,
}

/// What falls through to "no rule matches", per kind (every kind but `any`, in vocabulary order).
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub kinds: Vec<KindCoverage>,
}

/// The most pieces the uncovered part of a kind may break into before the status is left at partial.
const MAX_PIECES: usize = 256;

/// See [`super::coverage()`].
pub fn coverage(rules: &RuleSet) -> Coverage {
    let mut oracle = Oracle;
    let cells: Vec<Option<Vec<Cell<'_>>>> = rules.rules().iter().map(|r| rule_cells(r, &mut oracle)).collect();
    let kinds = Kind::ALL
        .iter()
        .copied()
        .filter(|&k| k != Kind::Any)
        .map(|kind| {
            let rules: Vec<(&Rule, Option<&Vec<Cell<'_>>>)> = rules
                .rules()
                .iter()
                .zip(&cells)
                .filter(|(r, _)| r.kind.covers(kind))
                .map(|(r, c)| (r, c.as_ref()))
                .collect();
            kind_coverage(kind, &rules, &mut oracle)
        })
        .collect();
    Coverage { kinds }
}

fn kind_coverage(kind: Kind, rules: &[(&Rule, Option<&Vec<Cell<'_>>>)], oracle: &mut Oracle) -> KindCoverage {
    let status = status(kind, rules, oracle);
    let mut coverage = KindCoverage { kind, status, devices: Vec::new(), families: Vec::new(), conditions: Vec::new() };
    if status == Status::Covered {
        return coverage;
    }
    let relevant = |r: &Rule| match kind {
        Kind::Chardev | Kind::Blockdev => !r.predicates.iter().all(|p| matches!(p, Predicate::Dev { .. })),
        Kind::Socket => !r.predicates.iter().all(socket_only),
        _ => true,
    };
    coverage.conditions = rules
        .iter()
        .filter(|(r, _)| !r.predicates.is_empty() && relevant(r))
        .map(|(r, _)| r.predicates.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    match kind {
        Kind::Chardev | Kind::Blockdev => coverage.devices = device_gaps(rules),
        Kind::Socket => coverage.families = family_gaps(rules),
        _ => {}
    }
    coverage
}

/// Decides the status by subtracting every rule of the kind from the kind's whole box.
fn status(kind: Kind, rules: &[(&Rule, Option<&Vec<Cell<'_>>>)], oracle: &mut Oracle) -> Status {
    if rules.is_empty() || rules.iter().all(|(_, c)| c.is_some_and(|c| c.is_empty())) {
        return Status::Uncovered;
    }
    if rules.iter().any(|(r, _)| r.predicates.is_empty()) {
        // Rules before an unconditional one do not change that the kind is covered.
        return Status::Covered;
    }
    let mut remaining = vec![kind_cell(kind)];
    for (_, cells) in rules {
        let Some(cells) = cells else { continue };
        for a in cells.iter() {
            let mut next = Vec::with_capacity(remaining.len());
            for r in remaining {
                match r.minus(a, oracle) {
                    None => next.push(r),
                    Some(pieces) => next.extend(pieces),
                }
            }
            remaining = next;
            if remaining.is_empty() {
                return Status::Covered;
            }
            if remaining.len() > MAX_PIECES {
                return Status::Partial;
            }
        }
    }
    Status::Partial
}

/// Inclusive ranges of device numbers.
type Ranges32 = Vec<(u32, u32)>;

/// Device numbers that no rule with only device predicates decides.
fn device_gaps(rules: &[(&Rule, Option<&Vec<Cell<'_>>>)]) -> Vec<DeviceGap> {
    // The boxes (major range, minors) that unconditional device rules decide, exact majors apart.
    let mut by_major: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
    // (first major, last major, minors) of the boxes spanning several majors.
    let mut wide: Vec<(u32, u32, Ranges32)> = Vec::new();
    for (r, _) in rules {
        if !r.predicates.iter().all(|p| matches!(p, Predicate::Dev { .. })) {
            continue;
        }
        // Several device predicates must all hold: intersect them.
        let mut majors = vec![(0, MAJOR_LIMIT - 1)];
        let mut minors = vec![(0, MINOR_LIMIT - 1)];
        for p in &r.predicates {
            if let Predicate::Dev { major, minor } = p {
                majors = intersect(&majors, major.ranges());
                minors = intersect(&minors, minor.ranges());
            }
        }
        for (a, b) in majors {
            if a == b {
                by_major.entry(a).or_default().extend(minors.iter().copied());
            } else {
                wide.push((a, b, minors.clone()));
            }
        }
    }
    let mut gaps: Vec<DeviceGap> = Vec::new();
    for major in 0..MAJOR_LIMIT {
        let mut decided: Vec<(u32, u32)> = by_major.get(&major).cloned().unwrap_or_default();
        for (a, b, minors) in &wide {
            if *a <= major && major <= *b {
                decided.extend(minors.iter().copied());
            }
        }
        let open = complement(NumSet::from_ranges(decided).ranges(), MINOR_LIMIT - 1);
        if open.is_empty() {
            continue;
        }
        let open = NumSet::from_ranges(open);
        match gaps.last_mut() {
            Some(last) if last.minors == open && last.majors.ranges().last().is_some_and(|r| r.1 + 1 == major) => {
                let mut ranges = last.majors.ranges().to_vec();
                if let Some(r) = ranges.last_mut() {
                    r.1 = major;
                }
                last.majors = NumSet::from_ranges(ranges);
            }
            _ => gaps.push(DeviceGap { majors: NumSet::single(major), minors: open }),
        }
    }
    gaps
}

fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(x, y) in a {
        for &(u, v) in b {
            if x.max(u) <= y.min(v) {
                out.push((x.max(u), y.min(v)));
            }
        }
    }
    out
}

/// The numbers up to `max` not in the sorted, disjoint `ranges`.
fn complement(ranges: &[(u32, u32)], max: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for &(lo, hi) in ranges {
        if u64::from(lo) > at {
            out.push((at as u32, lo - 1));
        }
        at = at.max(u64::from(hi) + 1);
    }
    if at <= u64::from(max) {
        out.push((at as u32, max));
    }
    out
}

/// A predicate on socket family, type and state only.
fn socket_only(p: &Predicate) -> bool {
    match p {
        Predicate::Family(_) | Predicate::SockType(_) | Predicate::State(_) => true,
        Predicate::Not(inner) => socket_only(inner),
        _ => false,
    }
}

fn socket_holds(p: &Predicate, family: Option<SockFamily>, ty: Option<SockType>, state: Option<SockState>) -> bool {
    match p {
        Predicate::Family(x) => family == Some(*x),
        Predicate::SockType(x) => ty == Some(*x),
        Predicate::State(x) => state == Some(*x),
        Predicate::Not(inner) => !socket_holds(inner, family, ty, state),
        _ => false,
    }
}

/// Families (and unknown) with sockets that no rule testing only family, type and state decides.
fn family_gaps(rules: &[(&Rule, Option<&Vec<Cell<'_>>>)]) -> Vec<FamilyGap> {
    let deciding: Vec<&Rule> = rules.iter().map(|(r, _)| *r).filter(|r| r.predicates.iter().all(socket_only)).collect();
    let families = std::iter::once(None).chain(SockFamily::ALL.iter().copied().map(Some));
    let mut gaps = Vec::new();
    for family in families {
        let types: Vec<Option<SockType>> = std::iter::once(None)
            .chain(SockType::ALL.iter().copied().map(Some))
            .filter(|&ty| {
                std::iter::once(None).chain(SockState::ALL.iter().copied().map(Some)).any(|state| {
                    !deciding.iter().any(|r| r.predicates.iter().all(|p| socket_holds(p, family, ty, state)))
                })
            })
            .collect();
        if types.is_empty() {
            continue;
        }
        let all = types.len() == SockType::ALL.len() + 1;
        gaps.push(FamilyGap { family, types: if all { Vec::new() } else { types } });
    }
    gaps
}

/// The most device ranges, families or conditions shown on one line.
const SHOWN: usize = 16;

fn side(set: &NumSet, limit: u32) -> String {
    if set.is_all(limit) { "*".to_owned() } else { set.to_string() }
}

/// Writes `items` separated by commas, at most [`SHOWN`] of them, then how many more there are.
fn list(f: &mut fmt::Formatter<'_>, items: impl ExactSizeIterator<Item = String>) -> fmt::Result {
    let total = items.len();
    for (i, item) in items.take(SHOWN).enumerate() {
        f.write_str(if i == 0 { "" } else { ", " })?;
        f.write_str(&item)?;
    }
    if total > SHOWN {
        write!(f, " and {} more", total - SHOWN)?;
    }
    Ok(())
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "coverage (fds no rule decides are rejected with \"no rule matches\"):")?;
        let covered: Vec<&str> =
            self.kinds.iter().filter(|k| k.status == Status::Covered).map(|k| k.kind.name()).collect();
        if !covered.is_empty() {
            writeln!(f, "  every fd decided: {}", covered.join(", "))?;
        }
        let uncovered: Vec<&str> =
            self.kinds.iter().filter(|k| k.status == Status::Uncovered).map(|k| k.kind.name()).collect();
        if !uncovered.is_empty() {
            writeln!(f, "  no rule at all: {}", uncovered.join(", "))?;
        }
        for k in self.kinds.iter().filter(|k| k.status == Status::Partial) {
            write!(f, "  {}:", k.kind)?;
            let mut said = false;
            if !k.devices.is_empty() {
                f.write_str(" no rule for device numbers ")?;
                let shown = k
                    .devices
                    .iter()
                    .map(|g| format!("{}:{}", side(&g.majors, MAJOR_LIMIT), side(&g.minors, MINOR_LIMIT)));
                list(f, shown)?;
                said = true;
            }
            if !k.families.is_empty() {
                f.write_str(" no rule for family ")?;
                let shown = k.families.iter().map(|g| {
                    let family = g.family.map_or("(unknown)", SockFamily::name);
                    if g.types.is_empty() {
                        family.to_owned()
                    } else {
                        let types: Vec<&str> = g.types.iter().map(|t| t.map_or("(unknown)", SockType::name)).collect();
                        format!("{family} (type {})", types.join(", "))
                    }
                });
                list(f, shown)?;
                said = true;
            }
            if !k.conditions.is_empty() {
                f.write_str(if said { "; other rules decide only when " } else { " decided only when " })?;
                list(f, k.conditions.iter().map(|c| format!("`{c}`")))?;
            } else if !said {
                f.write_str(" only some fds are decided")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
