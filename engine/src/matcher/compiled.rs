//! The compiled matcher: a rule set indexed once so that deciding an fd costs about the same with 10,000
//! rules as with 10. It returns exactly what [`super::reference`] returns; a property test holds it to that.
//!
//! # How it finds the first matching rule
//! Every rule is filed under its kind (rules of kind `any` in a table consulted for every fd) and, within
//! that, under one *anchor*: the most selective positive top-level predicate an index can answer:
//! 1. an exact device number (`1:3`): a hash map from `major:minor`;
//! 2. a path, name or filesystem glob: all globs of a field compiled together into one `GlobSet`, whose
//!    matches name the rules anchored on each glob;
//! 3. device ranges and wildcards (`4:64-255`, `136:*`): intervals over `major << 32 | minor` in a
//!    stabbing index;
//! 4. socket family / type / state: a hash map from the triple, with absent parts as wildcards;
//! 5. fd numbers (`fd 0-2`): intervals in a stabbing index;
//! 6. otherwise the rule is tried for every fd of its kind (`always`).
//!
//! Deciding an fd prepares its key once (glob matches of its path, filesystem and name, in per-thread
//! scratch buffers), gathers the anchored candidates from the tables of its kind and of `any`, and tests
//! the remaining predicates of candidates in rule order; the first that holds is the best anchored
//! answer, and the `always` rules are then tried only up to it. An anchor only has to return a superset
//! of the rules whose anchor predicate holds: predicates an index answers exactly (exact devices, globs,
//! socket triples) are dropped from the residual checks, the others are checked again.

use super::Matcher;
use super::index::{IntMap, Stab};
use crate::facts::FdFacts;
use crrules_rules::rule::{CmpOp, Glob, NumSet, Predicate, RuleSet};
use crrules_rules::vocab::{Access, Kind, MINOR_LIMIT, SockFamily, SockState, SockType};
use globset::{GlobSet, GlobSetBuilder};
use std::cell::RefCell;
use std::collections::HashMap;

/// A rule set compiled for fast first-match decisions. Immutable, `Send + Sync`: share one across threads.
#[derive(Debug)]
pub struct Compiled {
    rules: Vec<CompiledRule>,
    /// One table per [`Kind`], indexed by `kind as usize`; `any` rules are in `tables[Kind::Any]`.
    tables: Vec<Table>,
    path: GlobIndex,
    fs: GlobIndex,
    name: GlobIndex,
}

/// A rule as the matcher tests it: its kind and the predicates its anchor does not answer exactly.
#[derive(Debug)]
struct CompiledRule {
    kind: Kind,
    residual: Box<[Check]>,
}

/// A predicate with its globs replaced by their number in the field's glob index.
#[derive(Debug)]
enum Check {
    Dev { major: NumSet, minor: NumSet },
    Path(usize),
    Fs(usize),
    Name(usize),
    Deleted,
    Flags(u32),
    Access(Access),
    Size(CmpOp, u64),
    Fd(NumSet),
    Family(SockFamily),
    SockType(SockType),
    State(SockState),
    Not(Box<Check>),
}

/// The anchored rules of one kind.
#[derive(Debug, Default)]
struct Table {
    /// `major << 32 | minor` -> rules, ascending.
    dev_exact: IntMap<Vec<u32>>,
    /// Device ranges over `major << 32 | minor`.
    dev_ranges: Stab,
    /// A packed socket triple (see [`socket_key`]) -> rules, ascending.
    sockets: IntMap<Vec<u32>>,
    /// Bit `p` set when some rule is filed under wildcard pattern `p` (bit 0 family, 1 type, 2 state).
    socket_patterns: u8,
    /// Fd number ranges.
    fds: Stab,
    /// Rules with no anchor, ascending.
    always: Vec<u32>,
}

/// The globs of one field (path, fs or name), each numbered, compiled together.
#[derive(Debug, Default)]
struct GlobIndex {
    /// Glob text -> its number.
    ids: HashMap<String, usize>,
    globs: Vec<Glob>,
    /// The rules anchored on each glob, ascending, of every kind.
    anchored: Vec<Vec<u32>>,
    set: Option<GlobSet>,
}

impl GlobIndex {
    /// The number of `glob`, adding it when new.
    fn id(&mut self, glob: &Glob) -> usize {
        if let Some(&id) = self.ids.get(glob.as_str()) {
            return id;
        }
        let id = self.globs.len();
        self.ids.insert(glob.as_str().to_owned(), id);
        self.globs.push(glob.clone());
        self.anchored.push(Vec::new());
        id
    }

    /// Compiles the globs into one set. Should `globset` refuse the union (it never has for globs that
    /// compiled one by one), matching falls back to testing each glob: slower, same answers.
    fn build(&mut self) {
        let mut builder = GlobSetBuilder::new();
        for g in &self.globs {
            builder.add(g.glob().clone());
        }
        self.set = builder.build().ok();
    }

    /// Fills `into` with the numbers of the globs matching `text`, ascending.
    fn matches_into(&self, text: &str, into: &mut Vec<usize>) {
        into.clear();
        if self.globs.is_empty() {
            return;
        }
        match &self.set {
            Some(set) => set.matches_into(text, into),
            None => into.extend(self.globs.iter().enumerate().filter(|(_, g)| g.is_match(text)).map(|(i, _)| i)),
        }
    }
}

/// Where a rule is filed, best first (lower rank wins; see the module documentation).
enum Anchor<'r> {
    DevExact(u64),
    Glob(Field, &'r Glob),
    DevRanges(Vec<(u64, u64)>),
    Socket { family: Option<SockFamily>, sock_type: Option<SockType>, state: Option<SockState> },
    Fds(Vec<(u64, u64)>),
    Always,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Path,
    Fs,
    Name,
}

/// A device set as intervals over `major << 32 | minor`, and whether they hold no extra number.
/// Past `MAX_EXACT` intervals, each major range becomes one bounding interval (a superset; the `Dev`
/// predicate is always checked again).
fn dev_intervals(major: &NumSet, minor: &NumSet) -> (Vec<(u64, u64)>, bool) {
    const MAX_EXACT: u64 = 64;
    let key = |ma: u32, mi: u32| (u64::from(ma) << 32) | u64::from(mi);
    let minors = minor.ranges();
    let (Some(first), Some(last)) = (minors.first(), minors.last()) else { return (Vec::new(), true) };
    let full_minor = minors.len() == 1 && first.0 == 0 && first.1 >= MINOR_LIMIT - 1;
    let exact_count: u64 = major.ranges().iter().map(|&(a, b)| u64::from(b - a) + 1).sum::<u64>() * minors.len() as u64;
    if exact_count <= MAX_EXACT {
        let mut out = Vec::new();
        for &(a, b) in major.ranges() {
            for ma in a..=b {
                out.extend(minors.iter().map(|&(c, d)| (key(ma, c), key(ma, d))));
            }
        }
        (out, true)
    } else {
        // One interval per major range; tight when the minor set is `*` (only out-of-range minors extra).
        let out = major.ranges().iter().map(|&(a, b)| (key(a, first.0), key(b, last.1))).collect();
        (out, full_minor)
    }
}

/// Packs a socket triple, `0` standing for "any" in each part.
fn socket_key(family: Option<SockFamily>, sock_type: Option<SockType>, state: Option<SockState>) -> u64 {
    let family = family.map_or(0, |f| f as u64 + 1);
    let sock_type = sock_type.map_or(0, |t| t as u64 + 1);
    let state = state.map_or(0, |s| s as u64 + 1);
    family | sock_type << 8 | state << 16
}

/// The anchor of a rule and the indices of the predicates it answers exactly.
fn choose_anchor<'a>(predicates: &'a [Predicate]) -> (Anchor<'a>, Vec<usize>) {
    let mut best: (u8, Anchor<'a>, Vec<usize>) = (u8::MAX, Anchor::Always, Vec::new());
    let offer = |rank: u8, anchor: Anchor<'a>, consumed: Vec<usize>, best: &mut (u8, Anchor<'a>, Vec<usize>)| {
        if rank < best.0 {
            *best = (rank, anchor, consumed);
        }
    };
    let (mut family, mut sock_type, mut state) = (None, None, None);
    for (i, p) in predicates.iter().enumerate() {
        match p {
            Predicate::Dev { major, minor } => match (major.as_single(), minor.as_single()) {
                (Some(ma), Some(mi)) => {
                    offer(0, Anchor::DevExact((u64::from(ma) << 32) | u64::from(mi)), vec![i], &mut best)
                }
                _ => {
                    let (intervals, tight) = dev_intervals(major, minor);
                    offer(if tight { 4 } else { 7 }, Anchor::DevRanges(intervals), Vec::new(), &mut best)
                }
            },
            Predicate::Path(g) => {
                offer(if g.literal().is_some() { 1 } else { 3 }, Anchor::Glob(Field::Path, g), vec![i], &mut best)
            }
            Predicate::Name(g) => offer(2, Anchor::Glob(Field::Name, g), vec![i], &mut best),
            Predicate::Fs(g) => offer(6, Anchor::Glob(Field::Fs, g), vec![i], &mut best),
            Predicate::Family(x) if family.is_none() => family = Some((i, *x)),
            Predicate::SockType(x) if sock_type.is_none() => sock_type = Some((i, *x)),
            Predicate::State(x) if state.is_none() => state = Some((i, *x)),
            Predicate::Fd(set) if set.ranges().len() <= 16 => {
                let intervals = set.ranges().iter().map(|&(a, b)| (u64::from(a), u64::from(b))).collect();
                offer(8, Anchor::Fds(intervals), Vec::new(), &mut best)
            }
            _ => {}
        }
    }
    if family.is_some() || sock_type.is_some() || state.is_some() {
        let consumed =
            [family.map(|x| x.0), sock_type.map(|x| x.0), state.map(|x| x.0)].into_iter().flatten().collect();
        let anchor = Anchor::Socket {
            family: family.map(|x| x.1),
            sock_type: sock_type.map(|x| x.1),
            state: state.map(|x| x.1),
        };
        offer(5, anchor, consumed, &mut best);
    }
    (best.1, best.2)
}

/// Scratch buffers reused by every decision made on one thread.
#[derive(Debug, Default)]
struct Scratch {
    path: Vec<usize>,
    fs: Vec<usize>,
    name: Vec<usize>,
    candidates: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One fd's match key: its facts and the glob matches of its path, filesystem type and name.
struct Key<'a> {
    facts: &'a FdFacts,
    path: &'a [usize],
    fs: &'a [usize],
    name: &'a [usize],
}

impl Check {
    fn compile(p: &Predicate, path: &mut GlobIndex, fs: &mut GlobIndex, name: &mut GlobIndex) -> Check {
        match p {
            Predicate::Dev { major, minor } => Check::Dev { major: major.clone(), minor: minor.clone() },
            Predicate::Path(g) => Check::Path(path.id(g)),
            Predicate::Fs(g) => Check::Fs(fs.id(g)),
            Predicate::Name(g) => Check::Name(name.id(g)),
            Predicate::Deleted => Check::Deleted,
            Predicate::Flags(bits) => Check::Flags(*bits),
            Predicate::Access(a) => Check::Access(*a),
            Predicate::Size(op, n) => Check::Size(*op, *n),
            Predicate::Fd(set) => Check::Fd(set.clone()),
            Predicate::Family(x) => Check::Family(*x),
            Predicate::SockType(x) => Check::SockType(*x),
            Predicate::State(x) => Check::State(*x),
            Predicate::Not(inner) => Check::Not(Box::new(Check::compile(inner, path, fs, name))),
        }
    }

    /// The same meaning as [`super::reference::holds`], on a prepared key.
    fn holds(&self, key: &Key<'_>) -> bool {
        let f = key.facts;
        match self {
            Check::Dev { major, minor } => f.dev.is_some_and(|d| major.contains(d.major) && minor.contains(d.minor)),
            Check::Path(id) => key.path.binary_search(id).is_ok(),
            Check::Fs(id) => key.fs.binary_search(id).is_ok(),
            Check::Name(id) => key.name.binary_search(id).is_ok(),
            Check::Deleted => f.deleted,
            Check::Flags(bits) => f.flags.contains(*bits),
            Check::Access(a) => Access::from_flags(f.flags.0) == *a,
            Check::Size(op, n) => f.size.is_some_and(|s| op.holds(s, *n)),
            Check::Fd(set) => u32::try_from(f.fd).is_ok_and(|fd| set.contains(fd)),
            Check::Family(x) => f.socket.as_ref().is_some_and(|s| s.family == Some(*x)),
            Check::SockType(x) => f.socket.as_ref().is_some_and(|s| s.sock_type == Some(*x)),
            Check::State(x) => f.socket.as_ref().is_some_and(|s| s.state == Some(*x)),
            Check::Not(inner) => !inner.holds(key),
        }
    }
}

impl Table {
    /// Appends the anchored rules of this table that may match `facts` (unsorted, maybe repeated).
    fn candidates(&self, facts: &FdFacts, out: &mut Vec<u32>) {
        if let Some(d) = facts.dev {
            let key = (u64::from(d.major) << 32) | u64::from(d.minor);
            if let Some(rules) = self.dev_exact.get(&key) {
                out.extend_from_slice(rules);
            }
            if !self.dev_ranges.is_empty() {
                self.dev_ranges.stab(key, out);
            }
        }
        if self.socket_patterns != 0
            && let Some(s) = &facts.socket
        {
            for pattern in 1..8u8 {
                if self.socket_patterns & (1 << pattern) == 0 {
                    continue;
                }
                let family = if pattern & 1 != 0 { s.family } else { None };
                let sock_type = if pattern & 2 != 0 { s.sock_type } else { None };
                let state = if pattern & 4 != 0 { s.state } else { None };
                // A fact that lacks a part the pattern names cannot match its rules.
                if (pattern & 1 != 0 && family.is_none())
                    || (pattern & 2 != 0 && sock_type.is_none())
                    || (pattern & 4 != 0 && state.is_none())
                {
                    continue;
                }
                if let Some(rules) = self.sockets.get(&socket_key(family, sock_type, state)) {
                    out.extend_from_slice(rules);
                }
            }
        }
        if !self.fds.is_empty()
            && let Ok(fd) = u64::try_from(facts.fd)
        {
            self.fds.stab(fd, out);
        }
    }
}

impl Compiled {
    /// Compiles `rules`. Never fails: every validated rule set has a compiled form.
    pub fn new(rules: &RuleSet) -> Compiled {
        let mut path = GlobIndex::default();
        let mut fs = GlobIndex::default();
        let mut name = GlobIndex::default();
        let mut tables: Vec<Table> = Kind::ALL.iter().map(|_| Table::default()).collect();
        let mut dev_ranges: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new(); Kind::ALL.len()];
        let mut fd_ranges: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new(); Kind::ALL.len()];
        let mut compiled = Vec::with_capacity(rules.len());
        // Rule numbers are u32 in the indexes; a policy of four billion rules is not a policy.
        for (index, rule) in rules.rules().iter().enumerate().take(u32::MAX as usize) {
            let r = index as u32;
            let (anchor, consumed) = choose_anchor(&rule.predicates);
            let table = &mut tables[rule.kind as usize];
            match anchor {
                Anchor::DevExact(key) => table.dev_exact.entry(key).or_default().push(r),
                Anchor::Glob(field, glob) => {
                    let index = match field {
                        Field::Path => &mut path,
                        Field::Fs => &mut fs,
                        Field::Name => &mut name,
                    };
                    let id = index.id(glob);
                    index.anchored[id].push(r);
                }
                Anchor::DevRanges(intervals) => {
                    dev_ranges[rule.kind as usize].extend(intervals.into_iter().map(|(lo, hi)| (lo, hi, r)))
                }
                Anchor::Socket { family, sock_type, state } => {
                    let pattern = u8::from(family.is_some())
                        | u8::from(sock_type.is_some()) << 1
                        | u8::from(state.is_some()) << 2;
                    table.socket_patterns |= 1 << pattern;
                    table.sockets.entry(socket_key(family, sock_type, state)).or_default().push(r);
                }
                Anchor::Fds(intervals) => {
                    fd_ranges[rule.kind as usize].extend(intervals.into_iter().map(|(lo, hi)| (lo, hi, r)))
                }
                Anchor::Always => table.always.push(r),
            }
            let residual = rule
                .predicates
                .iter()
                .enumerate()
                .filter(|(i, _)| !consumed.contains(i))
                .map(|(_, p)| Check::compile(p, &mut path, &mut fs, &mut name))
                .collect();
            compiled.push(CompiledRule { kind: rule.kind, residual });
        }
        for (table, (devs, fds)) in tables.iter_mut().zip(dev_ranges.into_iter().zip(fd_ranges)) {
            table.dev_ranges = Stab::new(devs);
            table.fds = Stab::new(fds);
        }
        for index in [&mut path, &mut fs, &mut name] {
            index.build();
        }
        Compiled { rules: compiled, tables, path, fs, name }
    }

    /// The number of rules compiled.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn decide(&self, facts: &FdFacts, s: &mut Scratch) -> Option<usize> {
        let Scratch { path, fs, name, candidates } = s;
        match &facts.path {
            Some(p) => self.path.matches_into(p, path),
            None => path.clear(),
        }
        match &facts.fs {
            Some(t) => self.fs.matches_into(t, fs),
            None => fs.clear(),
        }
        match &facts.name {
            Some(n) => self.name.matches_into(n, name),
            None => name.clear(),
        }
        let key = Key { facts, path, fs, name };

        let own = &self.tables[facts.kind as usize];
        let any = (facts.kind != Kind::Any).then(|| &self.tables[Kind::Any as usize]);
        candidates.clear();
        own.candidates(facts, candidates);
        if let Some(any) = any {
            any.candidates(facts, candidates);
        }
        for (index, hits) in [(&self.path, key.path), (&self.fs, key.fs), (&self.name, key.name)] {
            for &id in hits {
                for &r in &index.anchored[id] {
                    if self.rules[r as usize].kind.covers(facts.kind) {
                        candidates.push(r);
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let best = candidates.iter().copied().find(|&r| self.residual_holds(r, &key));

        // The unanchored rules, in order, only up to the best anchored answer.
        let limit = best.unwrap_or(u32::MAX);
        let empty: &[u32] = &[];
        let (mut a, mut b) = (own.always.as_slice(), any.map_or(empty, |t| t.always.as_slice()));
        loop {
            let next = match (a.first(), b.first()) {
                (Some(&x), Some(&y)) if x <= y => {
                    a = &a[1..];
                    x
                }
                (_, Some(&y)) => {
                    b = &b[1..];
                    y
                }
                (Some(&x), None) => {
                    a = &a[1..];
                    x
                }
                (None, None) => break,
            };
            if next >= limit {
                break;
            }
            if self.residual_holds(next, &key) {
                return Some(next as usize);
            }
        }
        best.map(|r| r as usize)
    }

    fn residual_holds(&self, rule: u32, key: &Key<'_>) -> bool {
        self.rules[rule as usize].residual.iter().all(|c| c.holds(key))
    }
}

impl Matcher for Compiled {
    fn first_match(&self, facts: &FdFacts) -> Option<usize> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.decide(facts, &mut scratch),
            // Only reachable if a decision were made from inside another on the same thread.
            Err(_) => self.decide(facts, &mut Scratch::default()),
        })
    }
}
