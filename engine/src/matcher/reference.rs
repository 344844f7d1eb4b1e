//! The reference interpreter: walks the rules in effective order and tests each predicate against the
//! facts as written. It is the specification of what a rule means; [`super::compiled`] must agree with it.
//!
//! # Predicate semantics
//! A rule matches an fd when its kind covers the fd's kind ([`Kind::covers`]: `any` covers every kind)
//! and every predicate holds. A predicate holds as follows; a fact the scanner did not learn (`None`)
//! makes every positive test on it false, so `not` of such a test is true:
//!
//! | predicate | holds when |
//! |---|---|
//! | `Dev { major, minor }` | `facts.dev` is `Some(d)`, `major` contains `d.major` and `minor` contains `d.minor` |
//! | `Path(g)` | `facts.path` is `Some(p)` and `g` matches `p`'s bytes (which need not be UTF-8) |
//! | `Fs(g)` | `facts.fs` is `Some(t)` and `g` matches `t` |
//! | `Deleted` | `facts.deleted` |
//! | `Flags(bits)` | every bit of `bits` is set in `facts.flags` |
//! | `Access(a)` | [`Access::from_flags`] of `facts.flags` is `a` |
//! | `Size(op, n)` | `facts.size` is `Some(s)` and `s op n` |
//! | `Fd(set)` | `facts.fd >= 0` and `set` contains it |
//! | `Family(x)`, `SockType(x)`, `State(x)` | `facts.socket` is `Some` and its field is `Some(x)` |
//! | `Name(g)` | `facts.name` is `Some(n)` and `g` matches `n`'s bytes |
//! | `Protocol(x)` | `facts.socket` is `Some` and its `protocol` is `Some(x)` |
//! | `Queued` | `facts.socket` is `Some` and its `rqueue` is `Some(n)` with `n > 0` |
//! | `Unlinked` | `facts.unlinked` |
//! | `Packet` | `facts.packet` |
//! | `Clock(c)` | `facts.timerfd` is `Some(t)` and [`Clock::from_id`] of `t.clockid` is `c` |
//! | `Thread` | `facts.kind` is `pidfd` and `O_EXCL` (`PIDFD_THREAD`) is set in `facts.flags` |
//! | `Marks(m)` | `facts.fanotify` is `Some(g)` and one of `g.marks` has the target `m` |
//! | `Locked` | `facts.locks` is not empty |
//! | `Peer(x)` | `facts.peer` is `Some(x)` (facts whose ends were not linked have `None`) |
//! | `Shared` | `facts.shared_with` is not empty |
//! | `Not(p)` | `p` does not hold |
//!
//! [`Kind::covers`]: crrules_rules::vocab::Kind::covers
//! [`Access::from_flags`]: crrules_rules::vocab::Access::from_flags
//! [`Clock::from_id`]: crrules_rules::vocab::Clock::from_id

use super::Matcher;
use crate::facts::FdFacts;
use crrules_rules::rule::{Predicate, Rule, RuleSet};
use crrules_rules::vocab::{Access, Clock, Kind};

/// `PIDFD_THREAD`, which is `O_EXCL`.
const PIDFD_THREAD: u32 = 0o200;

/// True when `predicate` holds for `facts` (see the module documentation for each predicate).
pub fn holds(predicate: &Predicate, facts: &FdFacts) -> bool {
    match predicate {
        Predicate::Dev { major, minor } => {
            facts.dev.is_some_and(|d| major.contains(d.major) && minor.contains(d.minor))
        }
        Predicate::Path(g) => facts.path.as_ref().is_some_and(|p| g.is_match(p)),
        Predicate::Fs(g) => facts.fs.as_deref().is_some_and(|t| g.is_match(t)),
        Predicate::Deleted => facts.deleted,
        Predicate::Flags(bits) => facts.flags.contains(*bits),
        Predicate::Access(a) => Access::from_flags(facts.flags.0) == *a,
        Predicate::Size(op, n) => facts.size.is_some_and(|s| op.holds(s, *n)),
        Predicate::Fd(set) => u32::try_from(facts.fd).is_ok_and(|fd| set.contains(fd)),
        Predicate::Family(x) => facts.socket.as_ref().is_some_and(|s| s.family == Some(*x)),
        Predicate::SockType(x) => facts.socket.as_ref().is_some_and(|s| s.sock_type == Some(*x)),
        Predicate::State(x) => facts.socket.as_ref().is_some_and(|s| s.state == Some(*x)),
        Predicate::Name(g) => facts.name.as_ref().is_some_and(|n| g.is_match(n)),
        Predicate::Protocol(x) => facts.socket.as_ref().is_some_and(|s| s.protocol == Some(*x)),
        Predicate::Queued => facts.socket.as_ref().is_some_and(|s| s.rqueue.is_some_and(|n| n > 0)),
        Predicate::Unlinked => facts.unlinked,
        Predicate::Packet => facts.packet,
        Predicate::Clock(c) => facts.timerfd.as_ref().is_some_and(|t| Clock::from_id(t.clockid) == *c),
        Predicate::Thread => facts.kind == Kind::Pidfd && facts.flags.contains(PIDFD_THREAD),
        Predicate::Marks(m) => {
            facts.fanotify.as_ref().is_some_and(|g| g.marks.iter().any(|mark| mark.target == m.name()))
        }
        Predicate::Locked => !facts.locks.is_empty(),
        Predicate::Peer(x) => facts.peer == Some(*x),
        Predicate::Shared => !facts.shared_with.is_empty(),
        Predicate::Not(p) => !holds(p, facts),
    }
}

/// How one rule fared against an fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The rule's kind and every predicate held: this rule decided.
    Matched,
    /// The rule is for another kind of fd.
    Kind,
    /// The predicate at this index of [`Rule::predicates`] was the first that did not hold.
    Predicate(usize),
}

/// One rule tried by [`explain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trial {
    /// The rule's index in the rule set (its precedence).
    pub rule: usize,
    pub outcome: Outcome,
}

/// How `rule` fares against `facts`: matched, or the first thing that failed (the kind first, then the
/// predicates in the order written).
pub fn try_rule(rule: &Rule, facts: &FdFacts) -> Outcome {
    if !rule.kind.covers(facts.kind) {
        return Outcome::Kind;
    }
    match rule.predicates.iter().position(|p| !holds(p, facts)) {
        Some(i) => Outcome::Predicate(i),
        None => Outcome::Matched,
    }
}

/// True when `rule` matches `facts`.
pub fn matches(rule: &Rule, facts: &FdFacts) -> bool {
    try_rule(rule, facts) == Outcome::Matched
}

/// Every rule tried for `facts`, in effective order, up to and including the one that decided (the last
/// trial is then [`Outcome::Matched`]); when no rule matches, one trial per rule. Rules of other kinds
/// are included as [`Outcome::Kind`] so the trial list and the rule set line up; callers showing the
/// list to people will usually skip those.
pub fn explain(rules: &RuleSet, facts: &FdFacts) -> Vec<Trial> {
    let mut trials = Vec::new();
    for (rule, r) in rules.rules().iter().enumerate() {
        let outcome = try_rule(r, facts);
        trials.push(Trial { rule, outcome });
        if outcome == Outcome::Matched {
            break;
        }
    }
    trials
}

/// The reference matcher: the first rule, in order, that [`matches`].
#[derive(Clone, Copy, Debug)]
pub struct Reference<'a> {
    rules: &'a RuleSet,
}

impl<'a> Reference<'a> {
    /// A matcher over `rules`.
    pub fn new(rules: &'a RuleSet) -> Reference<'a> {
        Reference { rules }
    }
}

impl Matcher for Reference<'_> {
    fn first_match(&self, facts: &FdFacts) -> Option<usize> {
        self.rules.rules().iter().position(|r| matches(r, facts))
    }
}
