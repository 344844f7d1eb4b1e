//! An index of rules by where their boxes lie, so that the analysis compares a rule only with the rules
//! that may share an fd with it, instead of with every other rule.
//!
//! Each rule gets an *extent*: on each axis, the smallest range holding all its boxes, or "anywhere". The
//! axes are the numeric dimensions of [`super::space`] but the kind (rules are grouped by kind instead),
//! and the three string fields, where a glob's literal prefix stands for the strings starting with it:
//! ranked among all the prefixes in sorted order, the strings starting with `/var/` are a block of
//! consecutive ranks that holds the block of `/var/log/`, and two prefixes' blocks meet exactly when one
//! prefix starts with the other. Two rules whose extents miss each other on any axis share no fd.
//!
//! Per kind and axis, the rules that are somewhere on the axis sit in an interval tree (sorted by the
//! start of their range, each subtree knowing its largest end), the others in a list. A query picks the
//! axis where the fewest rules can meet the rule (counted in the sorted ends, without walking) and walks
//! only that, so its cost follows the number of rules that overlap, not the size of the policy.

use super::space::{Cell, DIMS, Dim, Ranges};
use crate::vocab::Kind;
use std::borrow::Cow;
use std::ops::Range;

/// The numeric dimensions but the kind, then path, fs and name.
pub const AXES: usize = DIMS - 1 + 3;

/// Where a rule lies on each axis: an inclusive range, or `None` for anywhere.
pub type Extent = [Option<(u128, u128)>; AXES];

/// The literal text a glob's matches all start with: its text up to the first character that is special
/// anywhere in the dialect, escapes resolved.
fn prefix(glob: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ',');
    let Some(stop) = glob.find(|c| special(c) || c == '\\') else { return Cow::Borrowed(glob) };
    if glob.as_bytes()[stop] != b'\\' {
        return Cow::Borrowed(&glob[..stop]);
    }
    let mut out = String::from(&glob[..stop]);
    let mut chars = glob[stop..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => out.push(escaped),
                None => break,
            },
            c if special(c) => break,
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The longest literal prefix of the globs a box requires on a string field (`None`: it requires none).
fn cell_prefix<'g>(cell: &Cell<'g>, field: usize) -> Option<Cow<'g, str>> {
    cell.atoms[field].pos.iter().map(|g| prefix(g.as_str())).max_by_key(|p| p.len())
}

/// Every literal prefix of the rules' globs, sorted, so that the strings starting with a prefix are a
/// range of ranks.
pub struct Prefixes<'g> {
    sorted: Vec<Cow<'g, str>>,
}

impl<'g> Prefixes<'g> {
    pub fn new<'a>(rules: impl Iterator<Item = &'a [Cell<'g>]>) -> Prefixes<'g>
    where
        'g: 'a,
    {
        let mut sorted: Vec<Cow<'g, str>> =
            rules.flatten().flat_map(|c| (0..3).filter_map(move |f| cell_prefix(c, f))).collect();
        sorted.sort_unstable();
        sorted.dedup();
        Prefixes { sorted }
    }

    /// The ranks of the prefixes that start with `p` (itself among them).
    fn block(&self, p: &str) -> (u128, u128) {
        let lo = self.sorted.partition_point(|q| q.as_ref() < p);
        let hi = self.sorted.partition_point(|q| q.as_ref() < p || q.starts_with(p));
        (lo as u128, hi.max(lo + 1) as u128 - 1)
    }
}

/// A rule's extent (`None` when it has no box).
pub fn extent(cells: &[Cell<'_>], prefixes: &Prefixes<'_>) -> Option<Extent> {
    let (first, rest) = cells.split_first()?;
    let on = |c: &Cell<'_>, axis: usize| -> Option<(u128, u128)> {
        if axis < DIMS - 1 {
            let d = axis + 1;
            match &c.nums[d] {
                Ranges::Full => None,
                r => r.hull(Dim::ALL[d].max()),
            }
        } else {
            cell_prefix(c, axis - (DIMS - 1)).map(|p| prefixes.block(&p))
        }
    };
    let mut out: Extent = std::array::from_fn(|axis| on(first, axis));
    for c in rest {
        for (axis, span) in out.iter_mut().enumerate() {
            *span = match (*span, on(c, axis)) {
                (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
                _ => None,
            };
        }
    }
    Some(out)
}

/// True when the extents meet on every axis.
pub fn meet(a: &Extent, b: &Extent) -> bool {
    a.iter().zip(b).all(|(x, y)| match (x, y) {
        (Some(x), Some(y)) => x.0.max(y.0) <= x.1.min(y.1),
        _ => true,
    })
}

/// The rules of one kind in one block on one axis.
#[derive(Default)]
struct Axis {
    /// (start, end, rule) of the rules somewhere on the axis, by start, as an implicit search tree: the
    /// middle of each slice is the root of the slice's subtree.
    spans: Vec<(u128, u128, u32)>,
    /// For each node, the largest end in its subtree.
    top: Vec<u128>,
    /// The rules that are anywhere on the axis, ascending.
    wild: Vec<u32>,
}

impl Axis {
    fn build(&mut self) {
        self.spans.sort_unstable();
        self.top = vec![0; self.spans.len()];
        fn fill(spans: &[(u128, u128, u32)], top: &mut [u128]) -> u128 {
            if spans.is_empty() {
                return 0;
            }
            let mid = spans.len() / 2;
            let (left, right) = (fill(&spans[..mid], &mut top[..mid]), fill(&spans[mid + 1..], &mut top[mid + 1..]));
            top[mid] = spans[mid].1.max(left).max(right);
            top[mid]
        }
        fill(&self.spans, &mut self.top);
    }

    /// Calls `f` with each rule in `ids` that can meet `lo..=hi` on this axis; returns how many entries
    /// were looked at.
    fn walk(&self, (lo, hi): (u128, u128), ids: &Range<u32>, f: &mut impl FnMut(u32)) -> usize {
        fn go(
            spans: &[(u128, u128, u32)],
            top: &[u128],
            (lo, hi): (u128, u128),
            ids: &Range<u32>,
            f: &mut impl FnMut(u32),
        ) -> usize {
            if spans.is_empty() {
                return 0;
            }
            let mid = spans.len() / 2;
            if top[mid] < lo {
                return 1;
            }
            let mut seen = 1 + go(&spans[..mid], &top[..mid], (lo, hi), ids, f);
            let (start, end, rule) = spans[mid];
            if start > hi {
                return seen;
            }
            if end >= lo && ids.contains(&rule) {
                f(rule);
            }
            seen += go(&spans[mid + 1..], &top[mid + 1..], (lo, hi), ids, f);
            seen
        }
        let wild = &self.wild[self.wild.partition_point(|&i| i < ids.start)..];
        let wild = &wild[..wild.partition_point(|&i| i < ids.end)];
        wild.iter().for_each(|&i| f(i));
        wild.len() + go(&self.spans, &self.top, (lo, hi), ids, f)
    }
}

/// The rules of one kind in one block.
#[derive(Default)]
struct Group {
    /// Ascending.
    members: Vec<u32>,
    axes: Vec<Axis>,
}

/// Where the rules of one kind lie on one axis, in the whole policy: for choosing the axis to walk.
#[derive(Default)]
struct Counts {
    starts: Vec<u128>,
    ends: Vec<u128>,
    wild: usize,
}

impl Counts {
    /// How many rules can meet `lo..=hi` on this axis.
    fn count(&self, (lo, hi): (u128, u128)) -> usize {
        self.starts.partition_point(|&s| s <= hi) - self.ends.partition_point(|&e| e < lo) + self.wild
    }
}

/// Rules in consecutive blocks of [`BLOCK`], so that the earlier rules can be visited a block at a time,
/// first to last, and a search stop as soon as it has what it needs; in each block, by kind, each kind
/// with its interval trees.
pub struct Index<'e> {
    /// By block, then kind.
    blocks: Vec<Vec<Group>>,
    /// By kind, then axis.
    counts: Vec<Vec<Counts>>,
    /// By kind.
    sizes: Vec<usize>,
    extents: &'e [Option<Extent>],
}

/// The rules in one block of the index.
pub const BLOCK: usize = 512;

/// How to look for the rules of one kind that meet an extent: on which axis, if any beats reading them all.
#[derive(Clone, Copy)]
pub struct Plan {
    kind: Kind,
    axis: Option<usize>,
}

impl<'e> Index<'e> {
    /// Indexes the rules that have an extent, by `kind`.
    pub fn new(extents: &'e [Option<Extent>], kind: impl Fn(usize) -> Kind) -> Index<'e> {
        let kinds = Kind::ALL.len();
        let mut blocks: Vec<Vec<Group>> =
            (0..extents.len().div_ceil(BLOCK)).map(|_| (0..kinds).map(|_| Group::default()).collect()).collect();
        let mut counts: Vec<Vec<Counts>> = (0..kinds).map(|_| (0..AXES).map(|_| Counts::default()).collect()).collect();
        let mut sizes = vec![0; kinds];
        for (i, e) in extents.iter().enumerate() {
            let Some(e) = e else { continue };
            let k = kind(i) as usize;
            let group = &mut blocks[i / BLOCK][k];
            if group.axes.is_empty() {
                group.axes = (0..AXES).map(|_| Axis::default()).collect();
            }
            let i = i as u32;
            group.members.push(i);
            sizes[k] += 1;
            for ((axis, counts), span) in group.axes.iter_mut().zip(&mut counts[k]).zip(e) {
                match span {
                    Some((lo, hi)) => {
                        axis.spans.push((*lo, *hi, i));
                        counts.starts.push(*lo);
                        counts.ends.push(*hi);
                    }
                    None => {
                        axis.wild.push(i);
                        counts.wild += 1;
                    }
                }
            }
        }
        for axis in blocks.iter_mut().flatten().flat_map(|g| &mut g.axes) {
            axis.build();
        }
        for c in counts.iter_mut().flatten() {
            c.starts.sort_unstable();
            c.ends.sort_unstable();
        }
        Index { blocks, counts, sizes, extents }
    }

    /// The consecutive ranges of rule indexes below `end`, one per block, first to last.
    pub fn blocks_below(&self, end: u32) -> impl Iterator<Item = Range<u32>> {
        let block = BLOCK as u32;
        (0..end.div_ceil(block)).map(move |b| b * block..((b + 1) * block).min(end))
    }

    /// How to look for the rules of kind `kind` (exactly) that meet `extent`: on the axis where the
    /// fewest rules can, counted without walking.
    pub fn plan(&self, kind: Kind, extent: &Extent) -> Plan {
        let counts = &self.counts[kind as usize];
        let best = extent
            .iter()
            .zip(counts)
            .enumerate()
            .filter_map(|(axis, (span, c))| span.map(|span| (c.count(span), axis)))
            .min();
        Plan { kind, axis: best.filter(|&(count, _)| count < self.sizes[kind as usize]).map(|(_, axis)| axis) }
    }

    /// Appends to `out` the rules of the plan's kind among `ids` (within one block) whose extent meets
    /// `extent`, in no particular order; returns how many entries were looked at.
    pub fn meeting(&self, plan: Plan, extent: &Extent, ids: Range<u32>, out: &mut Vec<u32>) -> usize {
        let Some(block) = self.blocks.get(ids.start as usize / BLOCK) else { return 0 };
        let group = &block[plan.kind as usize];
        if group.members.is_empty() {
            return 0;
        }
        let mut take = |i: u32| {
            if self.extents[i as usize].as_ref().is_some_and(|e| meet(e, extent)) {
                out.push(i);
            }
        };
        match plan.axis.and_then(|axis| Some((axis, extent[axis]?))) {
            Some((axis, span)) => group.axes[axis].walk(span, &ids, &mut take),
            None => {
                let from = group.members.partition_point(|&i| i < ids.start);
                let to = group.members.partition_point(|&i| i < ids.end);
                group.members[from..to].iter().for_each(|&i| take(i));
                to - from
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_stop_at_the_first_special_character() {
        assert_eq!(prefix("/var/log/*.log"), "/var/log/");
        assert_eq!(prefix("/a/b"), "/a/b");
        assert_eq!(prefix("**"), "");
        assert_eq!(prefix("/a/{b,c}"), "/a/");
        assert_eq!(prefix(r"\[kvm-*\]"), "[kvm-");
        assert_eq!(prefix(r"/a\*b/c?"), "/a*b/c");
    }

    #[test]
    fn prefix_blocks_meet_exactly_when_one_prefix_starts_the_other() {
        let words = ["", "/a", "/a/", "/a/b", "/ab", "/b", "/b/c", "[kvm-"];
        let prefixes = Prefixes { sorted: words.iter().map(|w| Cow::Borrowed(*w)).collect() };
        for p in words {
            for q in words {
                let (a, b) = (prefixes.block(p), prefixes.block(q));
                let meet = a.0.max(b.0) <= a.1.min(b.1);
                assert_eq!(meet, p.starts_with(q) || q.starts_with(p), "{p:?} {q:?}");
            }
        }
    }

    #[test]
    fn the_tree_finds_exactly_the_overlapping_ranges_in_the_ids() {
        let mut g = 7u64;
        let mut next = |n: u64| {
            g = g.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (g >> 33) % n
        };
        let mut axis = Axis::default();
        let mut ranges = Vec::new();
        for i in 0..300u32 {
            let lo = u128::from(next(1000));
            let hi = lo + u128::from(next(60));
            if i % 7 == 0 {
                axis.wild.push(i);
            } else {
                axis.spans.push((lo, hi, i));
            }
            ranges.push((lo, hi));
        }
        axis.build();
        for _ in 0..200 {
            let lo = u128::from(next(1100));
            let q = (lo, lo + u128::from(next(100)));
            let ids = next(300) as u32..300;
            let mut found = Vec::new();
            axis.walk(q, &ids, &mut |i| found.push(i));
            found.sort_unstable();
            let expected: Vec<u32> = ids
                .clone()
                .filter(|&i| i % 7 == 0 || (ranges[i as usize].0 <= q.1 && q.0 <= ranges[i as usize].1))
                .collect();
            assert_eq!(found, expected, "{q:?} in {ids:?}");
        }
    }
}
