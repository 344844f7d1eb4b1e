//! The space of fds as the analysis sees it, and selectors as unions of boxes in it.
//!
//! Every fd maps to one point: a coordinate per numeric dimension (kind, device major and minor, fd
//! number, size, deleted, socket family, type and state, and the rest of [`Dim`], such as where the
//! other end is and whether the open file is shared), a pattern of open-flag bits, and, for each of
//! path, filesystem type and anon-inode name, whether it is known and which globs it matches. Each
//! predicate is exactly a set of points, written as a union of disjoint *boxes* (a set per dimension), so
//! rules can be intersected and subtracted exactly, with one abstraction: globs are *opaque atoms*.
//! Whether a path matches one glob is taken as independent of whether it matches another, except that
//! `**` matches every string and a glob without metacharacters matches exactly its own text (so
//! `/var/**` is known to hold for the literal `/var/log/x`). The abstraction admits more points than
//! exist, never fewer: "covered" in this model is covered in fact, while some rules that are covered
//! in fact go unnoticed. That is the direction a linter must err in.

use crate::ast::CmpOp;
use crate::rule::{Glob, NumSet, Predicate, Rule};
use crate::vocab::{Access, Clock, Kind, MarkTarget, PeerPlace, SockFamily, SockProto, SockState, SockType};
use std::borrow::Cow;

/// A numeric dimension of the space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// `kind as u128`.
    Kind,
    /// `0` for no device number, `major + 1` otherwise.
    Major,
    /// The minor (`0` for no device number).
    Minor,
    /// `fd + 2^31`.
    Fd,
    /// `0` for unknown, `size + 1` otherwise.
    Size,
    /// `0` or `1`.
    Deleted,
    /// `0` for unknown, the family's index in [`SockFamily::ALL`] `+ 1` otherwise.
    Family,
    /// Likewise for [`SockType::ALL`].
    SockType,
    /// Likewise for [`SockState::ALL`].
    State,
    /// Likewise for [`SockProto::ALL`].
    Protocol,
    /// `0` or `1`.
    Queued,
    /// `0` or `1`.
    Unlinked,
    /// `0` or `1`.
    Packet,
    /// Likewise for [`Clock::ALL`].
    Clock,
    /// `0` or `1`.
    Thread,
    /// The set of mark targets as a bit mask over [`MarkTarget::ALL`].
    Marks,
    /// `0` or `1`.
    Locked,
    /// `0` for an fd whose ends were not linked (no `peer` holds), the place's index in
    /// [`PeerPlace::ALL`] `+ 1` otherwise.
    Peer,
    /// `0` or `1`.
    Shared,
}

/// The number of numeric dimensions.
pub const DIMS: usize = 19;

impl Dim {
    pub const ALL: [Dim; DIMS] = [
        Dim::Kind,
        Dim::Major,
        Dim::Minor,
        Dim::Fd,
        Dim::Size,
        Dim::Deleted,
        Dim::Family,
        Dim::SockType,
        Dim::State,
        Dim::Protocol,
        Dim::Queued,
        Dim::Unlinked,
        Dim::Packet,
        Dim::Clock,
        Dim::Thread,
        Dim::Marks,
        Dim::Locked,
        Dim::Peer,
        Dim::Shared,
    ];

    /// The largest coordinate (the smallest is 0).
    pub fn max(self) -> u128 {
        match self {
            Dim::Kind => Kind::ALL.len() as u128 - 1,
            Dim::Major => u128::from(u32::MAX) + 1,
            Dim::Minor => u128::from(u32::MAX),
            Dim::Fd => u128::from(u32::MAX),
            Dim::Size => u128::from(u64::MAX) + 1,
            Dim::Deleted | Dim::Queued | Dim::Unlinked | Dim::Packet | Dim::Thread | Dim::Locked | Dim::Shared => 1,
            Dim::Family => SockFamily::ALL.len() as u128,
            Dim::SockType => SockType::ALL.len() as u128,
            Dim::State => SockState::ALL.len() as u128,
            Dim::Protocol => SockProto::ALL.len() as u128,
            Dim::Clock => Clock::ALL.len() as u128,
            Dim::Marks => (1 << MarkTarget::ALL.len()) - 1,
            Dim::Peer => PeerPlace::ALL.len() as u128,
        }
    }
}

/// A set of coordinates on one dimension: everything, or sorted, disjoint, non-adjacent inclusive
/// ranges (none, one kept inline, or more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranges {
    Full,
    Empty,
    One((u128, u128)),
    Many(Vec<(u128, u128)>),
}

impl Ranges {
    /// The set of the given ranges, normalised; ranges with `lo > hi` are dropped.
    pub fn of(mut ranges: Vec<(u128, u128)>) -> Ranges {
        ranges.retain(|(lo, hi)| lo <= hi);
        ranges.sort_unstable();
        let mut out = Ranges::Empty;
        for r in ranges {
            out.push(r);
        }
        out
    }

    pub fn single(n: u128) -> Ranges {
        Ranges::One((n, n))
    }

    /// A number set moved up by `offset`.
    pub fn shifted(set: &NumSet, offset: u128) -> Ranges {
        let mut out = Ranges::Empty;
        for &(lo, hi) in set.ranges() {
            out.push((u128::from(lo) + offset, u128::from(hi) + offset));
        }
        out
    }

    /// Appends a range that starts after every range already held, merging it when adjacent.
    fn push(&mut self, (lo, hi): (u128, u128)) {
        match self {
            Ranges::Full => {}
            Ranges::Empty => *self = Ranges::One((lo, hi)),
            Ranges::One(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            Ranges::One(first) => *self = Ranges::Many(vec![*first, (lo, hi)]),
            Ranges::Many(v) => match v.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => v.push((lo, hi)),
            },
        }
    }

    /// The ranges, with `Full` spelled out up to `max`.
    fn spans(&self, max: u128) -> Spans<'_> {
        match self {
            Ranges::Full => Spans::Owned([(0, max)]),
            Ranges::Empty => Spans::Borrowed(&[]),
            Ranges::One(r) => Spans::Borrowed(std::slice::from_ref(r)),
            Ranges::Many(v) => Spans::Borrowed(v),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Ranges::Empty)
    }

    pub fn intersect(&self, other: &Ranges) -> Ranges {
        match (self, other) {
            (Ranges::Full, x) | (x, Ranges::Full) => x.clone(),
            (a, b) => {
                let (a, b) = (a.spans(0), b.spans(0));
                let (a, b) = (a.as_slice(), b.as_slice());
                let (mut i, mut j, mut out) = (0, 0, Ranges::Empty);
                while i < a.len() && j < b.len() {
                    let lo = a[i].0.max(b[j].0);
                    let hi = a[i].1.min(b[j].1);
                    if lo <= hi {
                        out.push((lo, hi));
                    }
                    if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
                }
                out
            }
        }
    }

    /// The coordinates of `self` not in `other`.
    pub fn minus(&self, other: &Ranges, max: u128) -> Ranges {
        if matches!(other, Ranges::Full) {
            return Ranges::Empty;
        }
        let mut out = Ranges::Empty;
        let other = other.spans(max);
        for &(lo, hi) in self.spans(max).as_slice() {
            let mut at = lo;
            let mut done = false;
            for &(olo, ohi) in other.as_slice() {
                if ohi < at {
                    continue;
                }
                if olo > hi {
                    break;
                }
                if olo > at {
                    out.push((at, olo - 1));
                }
                if ohi >= hi {
                    done = true;
                    break;
                }
                at = ohi + 1;
            }
            if !done {
                out.push((at, hi));
            }
        }
        out
    }

    /// True when every coordinate of `other` is in `self`.
    pub fn contains(&self, other: &Ranges, max: u128) -> bool {
        match self {
            Ranges::Full => true,
            _ => other.minus(self, max).is_empty(),
        }
    }

    /// True when the set and `other` share a coordinate.
    pub fn meets(&self, other: &Ranges) -> bool {
        match (self, other) {
            (Ranges::Full, x) | (x, Ranges::Full) => !x.is_empty(),
            (a, b) => {
                let (a, b) = (a.spans(0), b.spans(0));
                let (a, b) = (a.as_slice(), b.as_slice());
                let (mut i, mut j) = (0, 0);
                while i < a.len() && j < b.len() {
                    if a[i].0.max(b[j].0) <= a[i].1.min(b[j].1) {
                        return true;
                    }
                    if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
                }
                false
            }
        }
    }

    /// The smallest and largest coordinates (`None` when empty).
    pub fn hull(&self, max: u128) -> Option<(u128, u128)> {
        let spans = self.spans(max);
        Some((spans.as_slice().first()?.0, spans.as_slice().last()?.1))
    }
}

/// A set's ranges, borrowed, or made up for `Full`.
enum Spans<'a> {
    Borrowed(&'a [(u128, u128)]),
    Owned([(u128, u128); 1]),
}

impl Spans<'_> {
    fn as_slice(&self) -> &[(u128, u128)] {
        match self {
            Spans::Borrowed(s) => s,
            Spans::Owned(a) => a,
        }
    }
}

/// Open flags as a cube: bits that must be set and bits that must be clear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cube {
    pub set: u32,
    pub clear: u32,
}

impl Cube {
    /// The complement of a cube as disjoint cubes: the first fixed bit wrong, or it right and the
    /// second wrong, and so on.
    fn complement(self) -> Vec<Cube> {
        let mut out = Vec::new();
        let mut prefix = Cube::default();
        for bit in (0..32).map(|b| 1u32 << b) {
            if self.set & bit != 0 {
                out.push(Cube { set: prefix.set, clear: prefix.clear | bit });
                prefix.set |= bit;
            } else if self.clear & bit != 0 {
                out.push(Cube { set: prefix.set | bit, clear: prefix.clear });
                prefix.clear |= bit;
            }
        }
        out
    }
}

/// The globs a string field (path, fs, name) is known to match and not to match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Atoms<'g> {
    /// `Some(true)`: the fd has the field; `Some(false)`: it has not. Whenever `pos` or `neg` holds a
    /// glob, this is `Some(true)`.
    pub present: Option<bool>,
    pub pos: Vec<&'g Glob>,
    pub neg: Vec<&'g Glob>,
}

/// Which string field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Path,
    Fs,
    Name,
}

/// How two globs relate, as far as the analysis knows (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relation {
    /// Every string matching the first matches the second.
    Within,
    /// No string matches both.
    Apart,
    Unknown,
}

/// Decides how globs relate, for the analysis. It never runs a glob's regex (compiling one costs tens of
/// microseconds, and the analysis runs on every compile): a literal is tested against the common glob
/// shapes (`DIR/**`, `PREFIX*SUFFIX` within one component) by string comparison, and anything else is
/// "unknown", which is never wrong, only less precise.
#[derive(Debug, Default)]
pub struct Oracle;

impl Oracle {
    /// How `a` relates to `b`.
    fn relation(&mut self, a: &Glob, b: &Glob) -> Relation {
        if a.as_str() == b.as_str() || is_catch_all(b) {
            return Relation::Within;
        }
        let Some(text) = literal(a) else { return Relation::Unknown };
        if let Some(other) = literal(b) {
            return if text == other { Relation::Within } else { Relation::Apart };
        }
        match shape_match(b.as_str(), &text) {
            Some(true) => Relation::Within,
            Some(false) => Relation::Apart,
            None => Relation::Unknown,
        }
    }
}

/// Whether the glob `glob` matches the string `text`, for globs of the shapes `PREFIX**` (`PREFIX` empty
/// or ending with `/`) and `PREFIX*SUFFIX` (the star within one component); `None` for other globs.
fn shape_match(glob: &str, text: &str) -> Option<bool> {
    let star = glob.find('*')?;
    let (prefix, rest) = (literal_text(&glob[..star])?, &glob[star..]);
    if let Some(after) = rest.strip_prefix("**") {
        if !after.is_empty() || !(prefix.is_empty() || prefix.ends_with('/')) {
            return None;
        }
        return Some(text.starts_with(prefix.as_ref()));
    }
    let suffix = literal_text(&rest[1..])?;
    let middle = text
        .strip_prefix(prefix.as_ref())
        .and_then(|t| t.strip_suffix(suffix.as_ref()))
        .filter(|_| text.len() >= prefix.len() + suffix.len());
    Some(middle.is_some_and(|m| !m.contains('/')))
}

/// The text a glob matches exactly, escapes resolved, when it has no unescaped character that is
/// special anywhere in the dialect.
pub fn literal(glob: &Glob) -> Option<Cow<'_, str>> {
    literal_text(glob.as_str())
}

/// [`literal`] of a glob's text.
pub fn literal_text(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains(['*', '?', '[', ']', '{', '}', ',', '\\']) {
        return Some(Cow::Borrowed(text));
    }
    if !text.contains('\\') {
        return None;
    }
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '*' | '?' | '[' | ']' | '{' | '}' | ',' => return None,
            c => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

/// `**` matches every string.
pub fn is_catch_all(glob: &Glob) -> bool {
    glob.as_str() == "**"
}

/// A box: a set per numeric dimension, a flag cube and the glob atoms of each string field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell<'g> {
    pub nums: [Ranges; DIMS],
    pub flags: Cube,
    pub atoms: [Atoms<'g>; 3],
}

impl<'g> Cell<'g> {
    /// Every point.
    pub fn full() -> Cell<'g> {
        Cell {
            nums: std::array::from_fn(|_| Ranges::Full),
            flags: Cube::default(),
            atoms: std::array::from_fn(|_| Atoms::default()),
        }
    }

    /// Every point with one dimension restricted.
    pub fn with(dim: Dim, ranges: Ranges) -> Cell<'g> {
        let mut c = Cell::full();
        c.nums[dim as usize] = ranges;
        c
    }

    fn with_flags(flags: Cube) -> Cell<'g> {
        Cell { flags, ..Cell::full() }
    }

    fn with_atoms(field: Field, atoms: Atoms<'g>) -> Cell<'g> {
        let mut c = Cell::full();
        c.atoms[field as usize] = atoms;
        c
    }

    /// False when the boxes surely share no point (a quick test, without the glob oracle).
    pub fn meets(&self, other: &Cell<'_>) -> bool {
        self.nums.iter().zip(&other.nums).all(|(a, b)| a.meets(b))
            && (self.flags.set & other.flags.clear) == 0
            && (self.flags.clear & other.flags.set) == 0
            && self.atoms.iter().zip(&other.atoms).all(|(a, b)| {
                !matches!((a.present, b.present), (Some(x), Some(y)) if x != y)
                    && !a.pos.iter().any(|g| b.neg.iter().any(|n| n.as_str() == g.as_str()))
                    && !a.neg.iter().any(|g| b.pos.iter().any(|p| p.as_str() == g.as_str()))
            })
    }

    /// True when the boxes share a point, as far as the model can tell: [`Cell::intersect`] is `Some`.
    pub fn shares(&self, other: &Cell<'_>, oracle: &mut Oracle) -> bool {
        self.nums.iter().zip(&other.nums).all(|(a, b)| a.meets(b))
            && (self.flags.set & other.flags.clear) == 0
            && (self.flags.clear & other.flags.set) == 0
            && self.atoms.iter().zip(&other.atoms).all(|(a, b)| atoms_share(a, b, oracle))
    }

    /// The hull of the box on each numeric dimension.
    pub fn hull(&self) -> [(u128, u128); DIMS] {
        std::array::from_fn(|d| self.nums[d].hull(Dim::ALL[d].max()).unwrap_or((1, 0)))
    }

    /// Narrows the box to its intersection with `other`; false when that is empty (the box is then
    /// left partly narrowed, to be dropped).
    pub fn narrow(&mut self, other: &Cell<'g>, oracle: &mut Oracle) -> bool {
        for d in 0..DIMS {
            if !matches!(other.nums[d], Ranges::Full) {
                self.nums[d] = self.nums[d].intersect(&other.nums[d]);
                if self.nums[d].is_empty() {
                    return false;
                }
            }
        }
        self.flags.set |= other.flags.set;
        self.flags.clear |= other.flags.clear;
        if self.flags.set & self.flags.clear != 0 {
            return false;
        }
        for f in 0..3 {
            let theirs = &other.atoms[f];
            if theirs.present.is_none() {
                continue;
            }
            match intersect_atoms(&self.atoms[f], theirs, oracle) {
                Some(atoms) => self.atoms[f] = atoms,
                None => return false,
            }
        }
        true
    }

    /// The intersection of two boxes, `None` when empty (as far as the model can tell).
    pub fn intersect(&self, other: &Cell<'g>, oracle: &mut Oracle) -> Option<Cell<'g>> {
        let mut both = self.clone();
        both.narrow(other, oracle).then_some(both)
    }

    /// `self` minus `other`, as disjoint boxes; `None` when the boxes do not meet at all (then the
    /// difference is `self`, unchanged).
    pub fn minus(&self, other: &Cell<'g>, oracle: &mut Oracle) -> Option<Vec<Cell<'g>>> {
        if !self.shares(other, oracle) {
            return None;
        }
        let mut out = Vec::new();
        let mut cur = self.clone();
        for (d, dim) in Dim::ALL.iter().enumerate() {
            if other.nums[d].contains(&cur.nums[d], dim.max()) {
                continue;
            }
            let outside = cur.nums[d].minus(&other.nums[d], dim.max());
            if !outside.is_empty() {
                let mut piece = cur.clone();
                piece.nums[d] = outside;
                out.push(piece);
            }
            cur.nums[d] = cur.nums[d].intersect(&other.nums[d]);
        }
        for bit in (0..32).map(|b| 1u32 << b) {
            if other.flags.set & bit != 0 && cur.flags.set & bit == 0 {
                let mut piece = cur.clone();
                piece.flags.clear |= bit;
                out.push(piece);
                cur.flags.set |= bit;
            }
            if other.flags.clear & bit != 0 && cur.flags.clear & bit == 0 {
                let mut piece = cur.clone();
                piece.flags.set |= bit;
                out.push(piece);
                cur.flags.clear |= bit;
            }
        }
        for f in 0..3 {
            let theirs = &other.atoms[f];
            if let Some(v) = theirs.present
                && cur.atoms[f].present.is_none()
            {
                let mut piece = cur.clone();
                piece.atoms[f].present = Some(!v);
                out.push(piece);
                cur.atoms[f].present = Some(v);
            }
            for &g in &theirs.pos {
                let mine = &cur.atoms[f];
                if mine.pos.iter().any(|p| oracle.relation(p, g) == Relation::Within) {
                    continue;
                }
                let mut piece = cur.clone();
                piece.atoms[f].neg.push(g);
                out.push(piece);
                cur.atoms[f].pos.push(g);
            }
            for &g in &theirs.neg {
                let mine = &cur.atoms[f];
                if mine.neg.iter().any(|n| n.as_str() == g.as_str())
                    || mine.pos.iter().any(|p| oracle.relation(p, g) == Relation::Apart)
                {
                    continue;
                }
                let mut piece = cur.clone();
                piece.atoms[f].pos.push(g);
                out.push(piece);
                cur.atoms[f].neg.push(g);
            }
        }
        // Pieces that the model can tell are empty (a glob both required and excluded) are dropped.
        out.retain(|piece| piece.atoms.iter().all(|a| consistent(a, oracle)));
        Some(out)
    }
}

/// False when the atoms cannot all hold (as far as the model can tell).
fn consistent(a: &Atoms<'_>, oracle: &mut Oracle) -> bool {
    if a.present == Some(false) && !(a.pos.is_empty() && a.neg.is_empty()) {
        return false;
    }
    for p in &a.pos {
        for q in &a.pos {
            if oracle.relation(p, q) == Relation::Apart {
                return false;
            }
        }
        for n in &a.neg {
            if oracle.relation(p, n) == Relation::Within {
                return false;
            }
        }
    }
    true
}

/// True when two fields' atoms can hold together: [`intersect_atoms`] is `Some`.
fn atoms_share(a: &Atoms<'_>, b: &Atoms<'_>, oracle: &mut Oracle) -> bool {
    let present = match (a.present, b.present) {
        (Some(x), Some(y)) if x != y => return false,
        (x, y) => x.or(y),
    };
    if b.pos.is_empty() && b.neg.is_empty() && present == a.present {
        return true;
    }
    if a.pos.is_empty() && a.neg.is_empty() && present == b.present {
        return true;
    }
    if present == Some(false) && !(a.pos.is_empty() && a.neg.is_empty() && b.pos.is_empty() && b.neg.is_empty()) {
        return false;
    }
    let pos = || a.pos.iter().chain(&b.pos);
    let neg = || a.neg.iter().chain(&b.neg);
    for p in pos() {
        if pos().any(|q| oracle.relation(p, q) == Relation::Apart)
            || neg().any(|n| oracle.relation(p, n) == Relation::Within)
        {
            return false;
        }
    }
    true
}

fn intersect_atoms<'g>(a: &Atoms<'g>, b: &Atoms<'g>, oracle: &mut Oracle) -> Option<Atoms<'g>> {
    let present = match (a.present, b.present) {
        (Some(x), Some(y)) if x != y => return None,
        (x, y) => x.or(y),
    };
    let mut out = Atoms { present, pos: a.pos.clone(), neg: a.neg.clone() };
    for &g in &b.pos {
        if !out.pos.iter().any(|p| p.as_str() == g.as_str()) {
            out.pos.push(g);
        }
    }
    for &g in &b.neg {
        if !out.neg.iter().any(|p| p.as_str() == g.as_str()) {
            out.neg.push(g);
        }
    }
    consistent(&out, oracle).then_some(out)
}

/// The most boxes one rule may expand to; rules past it are left out of the analysis.
pub const MAX_CELLS: usize = 64;

/// The flag cube of an access mode.
fn access_cube(a: Access) -> Cube {
    match a {
        Access::Ro => Cube { set: 0, clear: 0o3 },
        Access::Wo => Cube { set: 0o1, clear: 0o2 },
        Access::Rw => Cube { set: 0o2, clear: 0 },
    }
}

/// The size coordinates where `size OP n` holds (coordinates are `size + 1`).
fn size_ranges(op: CmpOp, n: u64) -> Ranges {
    let n = u128::from(n);
    let max = Dim::Size.max();
    Ranges::of(match op {
        CmpOp::Lt if n == 0 => vec![],
        CmpOp::Lt => vec![(1, n)],
        CmpOp::Le => vec![(1, n + 1)],
        CmpOp::Gt => vec![(n + 2, max)],
        CmpOp::Ge => vec![(n + 1, max)],
        CmpOp::Eq => vec![(n + 1, n + 1)],
    })
}

fn complement(dim: Dim, r: Ranges) -> Ranges {
    Ranges::Full.minus(&r, dim.max())
}

/// One enum value as a coordinate (`index + 1`).
fn word<T: PartialEq>(all: &[T], x: &T) -> Ranges {
    Ranges::single(all.iter().position(|v| v == x).map_or(0, |i| i as u128 + 1))
}

/// The mark masks that include `target`'s bit.
fn mark_masks(target: MarkTarget) -> Ranges {
    let bit = MarkTarget::ALL.iter().position(|t| *t == target).map_or(0, |i| 1u128 << i);
    Ranges::of((0..=Dim::Marks.max()).filter(|m| m & bit != 0).map(|m| (m, m)).collect())
}

/// The boxes where a predicate holds (`negated`: where it does not), disjoint.
pub fn predicate_cells(p: &Predicate, negated: bool) -> Vec<Cell<'_>> {
    let on = |dim: Dim, r: Ranges| {
        let r = if negated { complement(dim, r) } else { r };
        if r.is_empty() { vec![] } else { vec![Cell::with(dim, r)] }
    };
    let glob = |field: Field, g| -> Vec<Cell<'_>> {
        let catch_all = is_catch_all(g);
        let present = |v| Atoms { present: Some(v), ..Atoms::default() };
        match (negated, catch_all) {
            (false, true) => vec![Cell::with_atoms(field, present(true))],
            (false, false) => vec![Cell::with_atoms(field, Atoms { pos: vec![g], ..present(true) })],
            (true, true) => vec![Cell::with_atoms(field, present(false))],
            (true, false) => vec![
                Cell::with_atoms(field, present(false)),
                Cell::with_atoms(field, Atoms { neg: vec![g], ..present(true) }),
            ],
        }
    };
    let cube = |c: Cube| -> Vec<Cell<'_>> {
        if negated { c.complement().into_iter().map(Cell::with_flags).collect() } else { vec![Cell::with_flags(c)] }
    };
    match p {
        Predicate::Dev { major, minor } => {
            let majors = Ranges::shifted(major, 1);
            let minors = Ranges::shifted(minor, 0);
            if !negated {
                let mut c = Cell::with(Dim::Major, majors);
                c.nums[Dim::Minor as usize] = minors;
                return if c.nums.iter().any(Ranges::is_empty) { vec![] } else { vec![c] };
            }
            let mut out = Vec::new();
            let other_majors = complement(Dim::Major, majors.clone());
            if !other_majors.is_empty() {
                out.push(Cell::with(Dim::Major, other_majors));
            }
            let other_minors = complement(Dim::Minor, minors);
            if !majors.is_empty() && !other_minors.is_empty() {
                let mut c = Cell::with(Dim::Major, majors);
                c.nums[Dim::Minor as usize] = other_minors;
                out.push(c);
            }
            out
        }
        Predicate::Path(g) => glob(Field::Path, g),
        Predicate::Fs(g) => glob(Field::Fs, g),
        Predicate::Name(g) => glob(Field::Name, g),
        Predicate::Deleted => on(Dim::Deleted, Ranges::single(1)),
        Predicate::Flags(0) => {
            if negated {
                vec![]
            } else {
                vec![Cell::full()]
            }
        }
        Predicate::Flags(bits) => cube(Cube { set: *bits, clear: 0 }),
        Predicate::Access(a) => cube(access_cube(*a)),
        Predicate::Size(op, n) => on(Dim::Size, size_ranges(*op, *n)),
        Predicate::Fd(set) => on(Dim::Fd, Ranges::shifted(set, 1 << 31)),
        Predicate::Family(x) => on(Dim::Family, word(SockFamily::ALL, x)),
        Predicate::SockType(x) => on(Dim::SockType, word(SockType::ALL, x)),
        Predicate::State(x) => on(Dim::State, word(SockState::ALL, x)),
        Predicate::Protocol(x) => on(Dim::Protocol, word(SockProto::ALL, x)),
        Predicate::Queued => on(Dim::Queued, Ranges::single(1)),
        Predicate::Unlinked => on(Dim::Unlinked, Ranges::single(1)),
        Predicate::Packet => on(Dim::Packet, Ranges::single(1)),
        Predicate::Clock(x) => on(Dim::Clock, word(Clock::ALL, x)),
        Predicate::Thread => on(Dim::Thread, Ranges::single(1)),
        Predicate::Marks(x) => on(Dim::Marks, mark_masks(*x)),
        Predicate::Locked => on(Dim::Locked, Ranges::single(1)),
        Predicate::Peer(x) => on(Dim::Peer, word(PeerPlace::ALL, x)),
        Predicate::Shared => on(Dim::Shared, Ranges::single(1)),
        Predicate::Not(inner) => predicate_cells(inner, !negated),
    }
}

/// The boxes of the kinds a selector of kind `kind` covers.
pub fn kind_cell<'g>(kind: Kind) -> Cell<'g> {
    if kind == Kind::Any { Cell::full() } else { Cell::with(Dim::Kind, Ranges::single(kind as u128)) }
}

/// A rule's selector as disjoint boxes (empty: it can never match); `None` when it expands to more
/// than [`MAX_CELLS`] boxes.
pub fn rule_cells<'g>(rule: &'g Rule, oracle: &mut Oracle) -> Option<Vec<Cell<'g>>> {
    let mut cells = vec![kind_cell(rule.kind)];
    for p in &rule.predicates {
        let parts = predicate_cells(p, false);
        if let ([part], [cell]) = (parts.as_slice(), cells.as_mut_slice()) {
            // The common case, one box and a predicate of one box: narrow it in place.
            if !cell.narrow(part, oracle) {
                cells.clear();
            }
            continue;
        }
        let mut next = Vec::new();
        for c in &cells {
            for part in &parts {
                if let Some(both) = c.intersect(part, oracle) {
                    next.push(both);
                }
            }
            if next.len() > MAX_CELLS {
                return None;
            }
        }
        cells = next;
    }
    Some(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(r: &Ranges, x: u128) -> bool {
        r.spans(u128::MAX).as_slice().iter().any(|&(lo, hi)| lo <= x && x <= hi)
    }

    #[test]
    fn sizes_hold_exactly_where_the_comparison_does() {
        let values = [0, 1, 2, 99, 100, 101, u64::MAX - 1, u64::MAX];
        for op in [CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge, CmpOp::Eq] {
            for n in values {
                let r = size_ranges(op, n);
                for s in values {
                    assert_eq!(has(&r, u128::from(s) + 1), op.holds(s, n), "size {s} {} {n}", op.as_str());
                }
                assert!(!has(&r, 0), "an unknown size never compares");
                let not = complement(Dim::Size, r.clone());
                assert!(has(&not, 0));
                for s in values {
                    assert_eq!(has(&not, u128::from(s) + 1), !op.holds(s, n));
                }
            }
        }
    }

    #[test]
    fn access_modes_and_their_complements_are_exact() {
        for flags in [0u32, 1, 2, 3, 0o2000, 0o2001, 0o2002, 0o2003, 0o10000000] {
            for a in Access::ALL {
                let c = access_cube(*a);
                let inside = flags & c.set == c.set && flags & c.clear == 0;
                assert_eq!(inside, Access::from_flags(flags) == *a, "{flags:o} {a}");
                let outside = c.complement().iter().filter(|c| flags & c.set == c.set && flags & c.clear == 0).count();
                assert_eq!(outside, usize::from(!inside), "complement of {a} at {flags:o}");
            }
        }
    }

    /// True when some box of `cells` holds coordinate `x` on `dim` (and is open on every other dimension).
    fn holds_at(cells: &[Cell<'_>], dim: Dim, x: u128) -> bool {
        cells.iter().any(|c| {
            has(&c.nums[dim as usize], x)
                && Dim::ALL.iter().filter(|d| **d != dim).all(|d| c.nums[*d as usize] == Ranges::Full)
        })
    }

    #[test]
    fn peer_places_and_their_complements_are_exact() {
        // Coordinate 0 is an fd whose ends were not linked: no `peer` holds there, every `not peer` does.
        let places = [None, Some(PeerPlace::Inside), Some(PeerPlace::Outside), Some(PeerPlace::None)];
        assert_eq!(Dim::Peer.max(), places.len() as u128 - 1);
        for want in PeerPlace::ALL {
            let p = Predicate::Peer(*want);
            let (yes, no) = (predicate_cells(&p, false), predicate_cells(&p, true));
            for (x, place) in places.iter().enumerate() {
                let x = x as u128;
                assert_eq!(holds_at(&yes, Dim::Peer, x), *place == Some(*want), "peer {want} at {place:?}");
                assert_eq!(holds_at(&no, Dim::Peer, x), *place != Some(*want), "not peer {want} at {place:?}");
            }
        }
        let (yes, no) = (predicate_cells(&Predicate::Shared, false), predicate_cells(&Predicate::Shared, true));
        assert!(holds_at(&yes, Dim::Shared, 1) && !holds_at(&yes, Dim::Shared, 0));
        assert!(holds_at(&no, Dim::Shared, 0) && !holds_at(&no, Dim::Shared, 1));
    }

    #[test]
    fn range_operations_agree_with_brute_force() {
        let sets = [
            Ranges::Full,
            Ranges::of(vec![]),
            Ranges::of(vec![(0, 0)]),
            Ranges::of(vec![(2, 5), (7, 7)]),
            Ranges::of(vec![(0, 3), (5, 9)]),
            Ranges::of(vec![(4, 4), (6, 9)]),
        ];
        let max = 9;
        for a in &sets {
            for b in &sets {
                let (i, m) = (a.intersect(b), a.minus(b, max));
                for x in 0..=max {
                    assert_eq!(has(&i, x), has(a, x) && has(b, x), "{a:?} & {b:?} at {x}");
                    assert_eq!(has(&m, x), has(a, x) && !has(b, x), "{a:?} - {b:?} at {x}");
                }
                let contains = (0..=max).all(|x| !has(b, x) || has(a, x));
                assert_eq!(a.contains(b, max), contains, "{a:?} >= {b:?}");
                assert_eq!(a.meets(b), (0..=max).any(|x| has(a, x) && has(b, x)), "{a:?} meets {b:?}");
            }
        }
    }

    #[test]
    fn subtraction_leaves_disjoint_pieces_covering_the_difference() {
        let mut oracle = Oracle;
        let a = Cell::with(Dim::Major, Ranges::of(vec![(1, 5)]));
        let mut b = Cell::with(Dim::Minor, Ranges::of(vec![(3, 3)]));
        b.flags.set = 0o2000;
        let pieces = a.minus(&b, &mut oracle).unwrap();
        // Major 1-5 minus (minor 3 with O_APPEND): other minors, or minor 3 without O_APPEND.
        assert_eq!(pieces.len(), 2);
        assert!(!pieces[0].nums[Dim::Minor as usize].meets(&Ranges::single(3)));
        assert_eq!(pieces[1].nums[Dim::Minor as usize], Ranges::single(3));
        assert_eq!(pieces[1].flags.clear, 0o2000);
        assert!(a.minus(&Cell::with(Dim::Major, Ranges::single(9)), &mut oracle).is_none());
        assert_eq!(a.minus(&Cell::full(), &mut oracle), Some(vec![]));
    }

    #[test]
    fn literal_globs_are_known_to_lie_within_wider_globs() {
        let mut oracle = Oracle;
        let g = |t: &str| Glob::new(t).unwrap();
        assert_eq!(oracle.relation(&g("/var/log/x"), &g("/var/**")), Relation::Within);
        assert_eq!(oracle.relation(&g("/var/log/x"), &g("/var/*")), Relation::Apart);
        assert_eq!(oracle.relation(&g("/var/log/x"), &g("/va*")), Relation::Apart);
        assert_eq!(oracle.relation(&g(r"\[kvm-vm\]"), &g(r"\[kvm-*\]")), Relation::Within);
        assert_eq!(oracle.relation(&g("/a"), &g("/b")), Relation::Apart);
        assert_eq!(oracle.relation(&g("/a/*"), &g("/a/**")), Relation::Unknown);
        assert_eq!(oracle.relation(&g("/a/*"), &g("**")), Relation::Within);
        assert_eq!(oracle.relation(&g("/var/log/x"), &g("/var/lo*/x")), Relation::Within);
        assert_eq!(oracle.relation(&g("/var/log/x"), &g("/var/?og/x")), Relation::Unknown);
        assert_eq!(oracle.relation(&g("/a/b.log"), &g("/a/*.log")), Relation::Within);
        assert_eq!(oracle.relation(&g("/a/b/c.log"), &g("/a/*.log")), Relation::Apart);
        assert_eq!(oracle.relation(&g("/a/x.log"), &g("/a/x*.log")), Relation::Within);
        assert_eq!(oracle.relation(&g("/a/.log"), &g("/a/.lo*g")), Relation::Within);
        assert_eq!(oracle.relation(&g("/a/.log"), &g("/a/.lo*og")), Relation::Apart);
        assert_eq!(oracle.relation(&g("/a/b"), &g("/a/b**")), Relation::Unknown);
    }

    #[test]
    fn glob_shapes_match_as_globset_does() {
        let globs = [
            "/a/**",
            "**",
            "/a/*",
            "/a/*.log",
            "/a/x*",
            "*.so",
            r"\[kvm-*\]",
            "/a/b*c",
            "/a/*/c",
            "/a/**/c",
            "/a/b*bc",
            "/a/*b",
        ];
        let texts = [
            "/a", "/a/", "/a/b", "/a/b/c", "/a/b.log", "/a/xb", "/x.so", "l.so", "[kvm-vm]", "/a/bc", "/a/bxc",
            "/a/bbc",
        ];
        for g in globs {
            for t in texts {
                if let Some(m) = shape_match(g, t) {
                    assert_eq!(m, Glob::new(g).unwrap().is_match(t), "{g} on {t}");
                }
            }
        }
        assert_eq!(shape_match("/a/*/c", "/a/b/c"), Some(true));
        assert_eq!(shape_match("/a/*/*", "/a/b/c"), None);
    }
}
