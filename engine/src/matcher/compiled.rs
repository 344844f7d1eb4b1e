//! The compiled matcher: a rule set indexed once so that deciding an fd costs about the same with 10,000
//! rules as with 10. It returns exactly what [`super::reference`] returns; a property test holds it to that.
//!
//! # How it finds the first matching rule
//! Every rule is filed under its kind (rules of kind `any` in a table consulted for every fd) and, within
//! that, under one *anchor*: the most selective positive top-level predicate an index can answer:
//! 1. an exact device number (`1:3`): a hash map by major, then the minors filed under it;
//! 2. a path, name or filesystem glob: the globs of each field and kind indexed together
//!    ([`super::globs`]), whose matches name the rules anchored on each glob (so a device's path is
//!    never tested against the globs of file rules);
//! 3. device ranges and wildcards (`4:64-255`, `136:*`): minor ranges in the same map by major, and
//!    ranges across majors as intervals over `major << 32 | minor` in a stabbing index;
//! 4. socket family / type / state: a hash map from the triple, with absent parts as wildcards; rules
//!    that also name a few fd numbers are filed under the triple by those numbers, in a stabbing index;
//! 5. fd numbers (`fd 0-2`): intervals in a stabbing index;
//! 6. otherwise the rule is tried for every fd of its kind (`always`).
//!
//! Deciding an fd gathers the anchored candidates from the tables of its kind and of `any` (per-thread
//! scratch buffers), and tests the remaining predicates of candidates in rule order (a glob left to
//! test is matched against the index of such globs on first need, once per fd); a candidate whose anchor
//! answered all its predicates is taken without reading anything else. The first that holds is the best anchored
//! answer, and the `always` rules are then tried only up to it. An anchor only has to return a superset
//! of the rules whose anchor predicate holds: predicates an index answers exactly (exact devices, device
//! sets it holds number by number, globs, socket triples) are dropped from the residual checks, the
//! others are checked again.

use super::Matcher;
use super::globs::{GlobIndex, GlobScratch};
use super::index::{IntMap, KeyedLists, Stab};
use crate::facts::{ByteString, FdFacts};
use crrules_rules::rule::{CmpOp, Glob, NumSet, Predicate, RuleSet};
use crrules_rules::vocab::{Access, Kind, MAJOR_LIMIT, MINOR_LIMIT, SockFamily, SockState, SockType};
use std::cell::RefCell;
use std::collections::HashMap;

/// A rule set compiled for fast first-match decisions. Immutable, `Send + Sync`: share one across threads.
#[derive(Debug)]
pub struct CompiledMatcher {
    rules: Vec<CompiledRule>,
    /// Every rule's residual checks, rule after rule.
    checks: Vec<Check>,
    /// One table per [`Kind`], indexed by `kind as usize`; `any` rules are in `tables[Kind::Any]`.
    tables: Vec<Table>,
    /// The globs of residual checks (path, filesystem, name), matched only when a check asks.
    residual: [GlobIndex; 3],
}

/// A rule as the matcher tests it: where its residual checks are in [`CompiledMatcher::checks`].
///
/// The indexes file a rule as a *tag*, `rule << 1 | 1` when it has residual checks and `rule << 1`
/// when its anchor answers it whole: tags sort as their rules do, and a rule with nothing left to check
/// is decided without reading its checks.
#[derive(Clone, Copy, Debug)]
struct CompiledRule {
    start: u32,
    len: u32,
}

/// A predicate with its globs replaced by their number in the field's residual glob index, its number
/// sets held inline when they are one range, and its negations folded into [`Check::negated`]: testing
/// one reads no memory beyond the check and the fd's facts.
#[derive(Debug)]
struct Check {
    negated: bool,
    test: Test,
}

#[derive(Debug)]
enum Test {
    Dev {
        major: Nums,
        minor: Nums,
    },
    Path(usize),
    Fs(usize),
    Name(usize),
    Deleted,
    Flags(u32),
    Access(Access),
    Size(CmpOp, u64),
    Fd(Nums),
    Family(SockFamily),
    SockType(SockType),
    State(SockState),
    /// A predicate no index serves and that needs no preparation: tested as the reference does.
    Plain(Predicate),
}

/// A number set, inline when it is one range.
#[derive(Debug)]
enum Nums {
    Range(u32, u32),
    Set(NumSet),
}

impl Nums {
    fn new(set: &NumSet) -> Nums {
        match set.ranges() {
            &[(lo, hi)] => Nums::Range(lo, hi),
            _ => Nums::Set(set.clone()),
        }
    }

    fn contains(&self, n: u32) -> bool {
        match self {
            Nums::Range(lo, hi) => (*lo..=*hi).contains(&n),
            Nums::Set(set) => set.contains(n),
        }
    }
}

/// The anchored rules of one kind.
#[derive(Debug, Default)]
struct Table {
    /// Exact devices and device ranges within one major.
    dev_minors: Minors,
    /// Device ranges across majors, over `major << 32 | minor`.
    dev_ranges: Stab,
    /// A packed socket triple (see [`socket_key`]) -> rules.
    sockets: KeyedLists,
    /// A packed socket triple -> the fd numbers of rules that also name a few fds.
    socket_fds: IntMap<Stab>,
    /// Bit `p` set when some rule is filed under wildcard pattern `p` (bit 0 family, 1 type, 2 state).
    socket_patterns: u8,
    /// Fd number ranges.
    fds: Stab,
    /// Rules of this kind anchored on a path, filesystem or name glob.
    globs: [GlobIndex; 3],
    /// Rules with no anchor, ascending (rule numbers, not tags).
    always: Vec<u32>,
}

/// Exact devices and minor ranges, by major: all in one sorted array, so finding those holding a
/// device costs one hash lookup and a short scan.
#[derive(Debug, Default)]
struct Minors {
    /// Major -> its run in `ranges`, for majors the kernel allows: one array read.
    direct: Vec<(u32, u32)>,
    /// The same for larger majors.
    runs: IntMap<(u32, u32)>,
    /// (first minor, last minor, rule), sorted within each major's run.
    ranges: Vec<(u32, u32, u32)>,
    /// Majors with more ranges than [`Minors::FEW`], in a stabbing index each.
    many: IntMap<Stab>,
}

impl Minors {
    /// Past this many ranges under one major, a stabbing index finds those holding a minor.
    const FEW: usize = 16;

    fn new(by_major: HashMap<u64, Vec<(u32, u32, u32)>>) -> Minors {
        let mut minors = Minors::default();
        for (major, mut ranges) in by_major {
            if ranges.len() > Minors::FEW {
                let stab = Stab::new(ranges.into_iter().map(|(lo, hi, r)| (u64::from(lo), u64::from(hi), r)).collect());
                minors.many.insert(major, stab);
            } else {
                ranges.sort_unstable();
                let run = (minors.ranges.len() as u32, ranges.len() as u32);
                if major < u64::from(MAJOR_LIMIT) {
                    if minors.direct.len() <= major as usize {
                        minors.direct.resize(major as usize + 1, (0, 0));
                    }
                    minors.direct[major as usize] = run;
                } else {
                    minors.runs.insert(major, run);
                }
                minors.ranges.extend(ranges);
            }
        }
        minors
    }

    /// Appends the rules filed under a range holding `major:minor`.
    fn stab(&self, major: u32, minor: u32, out: &mut Vec<u32>) {
        let run = match self.direct.get(major as usize) {
            Some(&run) => Some(run),
            None if self.runs.is_empty() => None,
            None => self.runs.get(&u64::from(major)).copied(),
        };
        if let Some((start, len)) = run {
            for &(lo, hi, r) in self.ranges.get(start as usize..(start + len) as usize).unwrap_or(&[]) {
                if lo > minor {
                    break;
                }
                if minor <= hi {
                    out.push(r);
                }
            }
        }
        if !self.many.is_empty()
            && let Some(stab) = self.many.get(&u64::from(major))
        {
            stab.stab(u64::from(minor), out);
        }
    }
}

/// A table while rules are filed into it.
#[derive(Default)]
struct TableBuilder {
    dev_minors: HashMap<u64, Vec<(u32, u32, u32)>>,
    dev_ranges: Vec<(u64, u64, u32)>,
    sockets: HashMap<u64, Vec<u32>>,
    socket_fds: HashMap<u64, Vec<(u64, u64, u32)>>,
    fds: Vec<(u64, u64, u32)>,
    table: Table,
}

/// Where a rule is filed (see the module documentation).
enum Anchor<'r> {
    DevExact(u64),
    Glob(Field, &'r Glob),
    /// Intervals over `major << 32 | minor`.
    DevRanges(Vec<(u64, u64)>),
    Socket {
        family: Option<SockFamily>,
        sock_type: Option<SockType>,
        state: Option<SockState>,
        /// The rule's fd numbers, when it names a few: filed by them under the triple.
        fds: Option<Vec<(u64, u64)>>,
    },
    Fds(Vec<(u64, u64)>),
    Always,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Field {
    Path,
    Fs,
    Name,
}

/// How closely a device set's intervals follow it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// The intervals hold exactly the set's numbers.
    Exact,
    /// They also hold minors beyond the kernel's range (a `*` minor across a range of majors).
    Tight,
    /// They hold much more: one bounding interval per major range.
    Loose,
}

/// A device set as intervals over `major << 32 | minor`, and how closely they follow it.
fn dev_intervals(major: &NumSet, minor: &NumSet) -> (Vec<(u64, u64)>, Fit) {
    const MAX_EXACT: u64 = 64;
    let key = |ma: u32, mi: u32| (u64::from(ma) << 32) | u64::from(mi);
    let minors = minor.ranges();
    let (Some(first), Some(last)) = (minors.first(), minors.last()) else { return (Vec::new(), Fit::Exact) };
    let majors: u64 = major.ranges().iter().map(|&(a, b)| u64::from(b - a) + 1).sum();
    if majors.saturating_mul(minors.len() as u64) <= MAX_EXACT {
        let mut out = Vec::new();
        for &(a, b) in major.ranges() {
            for ma in a..=b {
                out.extend(minors.iter().map(|&(c, d)| (key(ma, c), key(ma, d))));
            }
        }
        (out, Fit::Exact)
    } else {
        let full_minor = minors.len() == 1 && first.0 == 0 && first.1 >= MINOR_LIMIT - 1;
        let out = major.ranges().iter().map(|&(a, b)| (key(a, first.0), key(b, last.1))).collect();
        (out, if full_minor { Fit::Tight } else { Fit::Loose })
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
    let (mut family, mut sock_type, mut state, mut fds) = (None, None, None, None);
    for (i, p) in predicates.iter().enumerate() {
        match p {
            Predicate::Dev { major, minor } => match (major.as_single(), minor.as_single()) {
                (Some(ma), Some(mi)) => {
                    offer(0, Anchor::DevExact((u64::from(ma) << 32) | u64::from(mi)), vec![i], &mut best)
                }
                _ => match dev_intervals(major, minor) {
                    (intervals, Fit::Exact) => offer(4, Anchor::DevRanges(intervals), vec![i], &mut best),
                    (intervals, Fit::Tight) => offer(4, Anchor::DevRanges(intervals), Vec::new(), &mut best),
                    (intervals, Fit::Loose) => offer(7, Anchor::DevRanges(intervals), Vec::new(), &mut best),
                },
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
                let intervals: Vec<(u64, u64)> =
                    set.ranges().iter().map(|&(a, b)| (u64::from(a), u64::from(b))).collect();
                if fds.is_none() {
                    fds = Some((i, intervals.clone()));
                }
                offer(8, Anchor::Fds(intervals), Vec::new(), &mut best)
            }
            _ => {}
        }
    }
    if family.is_some() || sock_type.is_some() || state.is_some() {
        // The fd intervals are the set's own ranges: filed under them, the rule needs no fd check.
        let consumed = [family.map(|x| x.0), sock_type.map(|x| x.0), state.map(|x| x.0), fds.as_ref().map(|x| x.0)]
            .into_iter()
            .flatten()
            .collect();
        let anchor = Anchor::Socket {
            family: family.map(|x| x.1),
            sock_type: sock_type.map(|x| x.1),
            state: state.map(|x| x.1),
            fds: fds.map(|x| x.1),
        };
        offer(5, anchor, consumed, &mut best);
    }
    (best.1, best.2)
}

/// Scratch buffers reused by every decision made on one thread.
#[derive(Debug, Default)]
struct Scratch {
    /// Glob matches of each field against the residual globs, once asked for.
    residual: [Vec<usize>; 3],
    candidates: Vec<u32>,
    globs: GlobScratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One fd's match key: its facts and, filled on first use, the residual glob matches of its path,
/// filesystem type and name.
struct Key<'a> {
    facts: &'a FdFacts,
    residual: &'a [GlobIndex; 3],
    matches: &'a mut [Vec<usize>; 3],
    /// Bit `field` set once `matches[field]` is filled.
    filled: u8,
    globs: &'a mut GlobScratch,
}

impl Key<'_> {
    /// Whether residual glob `id` of `field` matches the fd.
    fn glob_holds(&mut self, field: Field, id: usize) -> bool {
        let f = field as usize;
        if self.filled & (1 << f) == 0 {
            self.filled |= 1 << f;
            let text = match field {
                Field::Path => self.facts.path.as_ref().map(ByteString::as_bytes),
                Field::Fs => self.facts.fs.as_deref().map(str::as_bytes),
                Field::Name => self.facts.name.as_ref().map(ByteString::as_bytes),
            };
            match text {
                Some(t) => self.residual[f].matches_into(t, &mut self.matches[f], self.globs),
                None => self.matches[f].clear(),
            }
        }
        self.matches[f].binary_search(&id).is_ok()
    }
}

impl Check {
    fn compile(p: &Predicate, globs: &mut [GlobIndex; 3]) -> Check {
        let [path, fs, name] = globs;
        let test = match p {
            Predicate::Dev { major, minor } => Test::Dev { major: Nums::new(major), minor: Nums::new(minor) },
            Predicate::Path(g) => Test::Path(path.id(g)),
            Predicate::Fs(g) => Test::Fs(fs.id(g)),
            Predicate::Name(g) => Test::Name(name.id(g)),
            Predicate::Deleted => Test::Deleted,
            Predicate::Flags(bits) => Test::Flags(*bits),
            Predicate::Access(a) => Test::Access(*a),
            Predicate::Size(op, n) => Test::Size(*op, *n),
            Predicate::Fd(set) => Test::Fd(Nums::new(set)),
            Predicate::Family(x) => Test::Family(*x),
            Predicate::SockType(x) => Test::SockType(*x),
            Predicate::State(x) => Test::State(*x),
            Predicate::Protocol(_)
            | Predicate::Queued
            | Predicate::Unlinked
            | Predicate::Packet
            | Predicate::Clock(_)
            | Predicate::Thread
            | Predicate::Marks(_)
            | Predicate::Locked
            | Predicate::Peer(_)
            | Predicate::Shared => Test::Plain(p.clone()),
            Predicate::Not(inner) => {
                let Check { negated, test } = Check::compile(inner, globs);
                return Check { negated: !negated, test };
            }
        };
        Check { negated: false, test }
    }

    /// The same meaning as [`super::reference::holds`], on a prepared key.
    fn holds(&self, key: &mut Key<'_>) -> bool {
        let f = key.facts;
        let holds = match &self.test {
            Test::Dev { major, minor } => f.dev.is_some_and(|d| major.contains(d.major) && minor.contains(d.minor)),
            Test::Path(id) => key.glob_holds(Field::Path, *id),
            Test::Fs(id) => key.glob_holds(Field::Fs, *id),
            Test::Name(id) => key.glob_holds(Field::Name, *id),
            Test::Deleted => f.deleted,
            Test::Flags(bits) => f.flags.contains(*bits),
            Test::Access(a) => Access::from_flags(f.flags.0) == *a,
            Test::Size(op, n) => f.size.is_some_and(|s| op.holds(s, *n)),
            Test::Fd(set) => u32::try_from(f.fd).is_ok_and(|fd| set.contains(fd)),
            Test::Family(x) => f.socket.as_ref().is_some_and(|s| s.family == Some(*x)),
            Test::SockType(x) => f.socket.as_ref().is_some_and(|s| s.sock_type == Some(*x)),
            Test::State(x) => f.socket.as_ref().is_some_and(|s| s.state == Some(*x)),
            Test::Plain(p) => super::reference::holds(p, f),
        };
        holds != self.negated
    }
}

impl TableBuilder {
    /// Files tag `r` (see [`CompiledRule`]) under `anchor`; `always` gets the rule number.
    fn file(&mut self, anchor: Anchor<'_>, r: u32) {
        match anchor {
            Anchor::DevExact(key) => self.dev_minors.entry(key >> 32).or_default().push((key as u32, key as u32, r)),
            Anchor::Glob(field, glob) => {
                let index = &mut self.table.globs[field as usize];
                let id = index.id(glob);
                index.anchor(id, r);
            }
            Anchor::DevRanges(intervals) => {
                for (lo, hi) in intervals {
                    if lo >> 32 == hi >> 32 {
                        self.dev_minors.entry(lo >> 32).or_default().push((lo as u32, hi as u32, r));
                    } else {
                        self.dev_ranges.push((lo, hi, r));
                    }
                }
            }
            Anchor::Socket { family, sock_type, state, fds } => {
                let pattern =
                    u8::from(family.is_some()) | u8::from(sock_type.is_some()) << 1 | u8::from(state.is_some()) << 2;
                self.table.socket_patterns |= 1 << pattern;
                let key = socket_key(family, sock_type, state);
                match fds {
                    Some(intervals) => self
                        .socket_fds
                        .entry(key)
                        .or_default()
                        .extend(intervals.into_iter().map(|(lo, hi)| (lo, hi, r))),
                    None => self.sockets.entry(key).or_default().push(r),
                }
            }
            Anchor::Fds(intervals) => self.fds.extend(intervals.into_iter().map(|(lo, hi)| (lo, hi, r))),
            Anchor::Always => self.table.always.push(r >> 1),
        }
    }

    fn build(mut self) -> Table {
        for index in &mut self.table.globs {
            index.build();
        }
        Table {
            dev_minors: Minors::new(self.dev_minors),
            dev_ranges: Stab::new(self.dev_ranges),
            sockets: KeyedLists::new(self.sockets),
            socket_fds: self.socket_fds.into_iter().map(|(key, fds)| (key, Stab::new(fds))).collect(),
            fds: Stab::new(self.fds),
            ..self.table
        }
    }
}

impl Table {
    /// Appends the anchored rules of this table that may match `facts` (unsorted, maybe repeated).
    fn candidates(&self, facts: &FdFacts, out: &mut Vec<u32>) {
        if let Some(d) = facts.dev {
            let key = (u64::from(d.major) << 32) | u64::from(d.minor);
            self.dev_minors.stab(d.major, d.minor, out);
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
                let key = socket_key(family, sock_type, state);
                out.extend_from_slice(self.sockets.get(key));
                if !self.socket_fds.is_empty()
                    && let Ok(fd) = u64::try_from(facts.fd)
                    && let Some(stab) = self.socket_fds.get(&key)
                {
                    stab.stab(fd, out);
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

impl CompiledMatcher {
    /// Compiles `rules`. Never fails: every validated rule set has a compiled form.
    pub fn new(rules: &RuleSet) -> CompiledMatcher {
        let mut residual: [GlobIndex; 3] = Default::default();
        let mut builders: Vec<TableBuilder> = Kind::ALL.iter().map(|_| TableBuilder::default()).collect();
        let mut compiled = Vec::with_capacity(rules.len());
        let mut checks = Vec::new();
        // Rules are filed as tags, `rule << 1 | bit`; a policy of two billion rules is not a policy.
        for (index, rule) in rules.rules().iter().enumerate().take((u32::MAX >> 1) as usize) {
            let r = index as u32;
            let (anchor, consumed) = choose_anchor(&rule.predicates);
            let start = checks.len() as u32;
            checks.extend(
                rule.predicates
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !consumed.contains(i))
                    .map(|(_, p)| Check::compile(p, &mut residual)),
            );
            let len = checks.len() as u32 - start;
            builders[rule.kind as usize].file(anchor, r << 1 | u32::from(len > 0));
            compiled.push(CompiledRule { start, len });
        }
        for index in &mut residual {
            index.build();
        }
        let tables = builders.into_iter().map(TableBuilder::build).collect();
        CompiledMatcher { rules: compiled, checks, tables, residual }
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
        let Scratch { residual, candidates, globs } = s;
        let own = &self.tables[facts.kind as usize];
        let any = (facts.kind != Kind::Any).then(|| &self.tables[Kind::Any as usize]);
        candidates.clear();
        for table in std::iter::once(own).chain(any) {
            table.candidates(facts, candidates);
            let texts = [
                facts.path.as_ref().map(ByteString::as_bytes),
                facts.fs.as_deref().map(str::as_bytes),
                facts.name.as_ref().map(ByteString::as_bytes),
            ];
            for (index, text) in table.globs.iter().zip(texts) {
                if let Some(text) = text {
                    index.rules_into(text, candidates, globs);
                }
            }
        }
        if candidates.len() > 1 {
            candidates.sort_unstable();
            candidates.dedup();
        }
        let mut key = Key { facts, residual: &self.residual, matches: residual, filled: 0, globs };
        let best = candidates
            .iter()
            .find(|&&tag| tag & 1 == 0 || self.residual_holds(tag >> 1, &mut key))
            .map(|&tag| tag >> 1);

        // The unanchored rules, in order, only up to the best anchored answer.
        let limit = best.unwrap_or(u32::MAX);
        let (mut a, mut b) = (own.always.as_slice(), any.map_or(&[][..], |t| t.always.as_slice()));
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
            if self.residual_holds(next, &mut key) {
                return Some(next as usize);
            }
        }
        best.map(|r| r as usize)
    }

    fn residual_holds(&self, rule: u32, key: &mut Key<'_>) -> bool {
        let CompiledRule { start, len } = self.rules[rule as usize];
        self.checks[start as usize..(start + len) as usize].iter().all(|c| c.holds(key))
    }
}

impl Matcher for CompiledMatcher {
    fn first_match(&self, facts: &FdFacts) -> Option<usize> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.decide(facts, &mut scratch),
            // Only reachable if a decision were made from inside another on the same thread.
            Err(_) => self.decide(facts, &mut Scratch::default()),
        })
    }
}
