//! Facts + rule set -> decisions: for each fd the action, the rule that chose it and the reason shown to
//! the user; for each process whether it can be checkpointed. Unmatched fds are rejected with the reason
//! "no rule matches".

use crate::facts::{ByteString, FdFacts};
use crate::matcher::Matcher;
use crate::scan::{FdEntry, ProcessScan};
use crrules_rules::{Action, Rule, RuleSet};
use std::sync::LazyLock;

/// The reason given to an fd no rule matches.
pub const NO_RULE: &str = "no rule matches";

/// What no rule matching means: a rejection.
static NO_RULE_ACTION: LazyLock<Action> = LazyLock::new(|| Action::Reject { reason: NO_RULE.to_owned() });

/// What is done with one fd, and why: the deciding rule, from which the action and reason are read (no
/// copy per fd), or none, which rejects the fd with [`NO_RULE`].
#[derive(Clone, Copy, Debug)]
pub struct Decision<'r> {
    /// The deciding rule; `None` when no rule matches.
    pub rule: Option<&'r Rule>,
}

impl<'r> Decision<'r> {
    /// The decision for `facts`: the first matching rule, or a rejection.
    pub fn new(rules: &'r RuleSet, matcher: &(impl Matcher + ?Sized), facts: &FdFacts) -> Decision<'r> {
        Decision { rule: matcher.first_match(facts).map(|index| &rules.rules()[index]) }
    }

    /// The action: the rule's, or a rejection when no rule matches.
    pub fn action(&self) -> &'r Action {
        match self.rule {
            Some(rule) => &rule.action,
            None => &NO_RULE_ACTION,
        }
    }

    /// The reason shown with the decision: the reject reason or the rule's `because` note.
    pub fn reason(&self) -> Option<&'r str> {
        match self.rule {
            Some(rule) => rule.reason(),
            None => Some(NO_RULE),
        }
    }

    /// True when the fd stops the process from being checkpointed.
    pub fn is_reject(&self) -> bool {
        self.action().is_reject()
    }
}

/// One fd of a process with its decision, or the note that it was closed while being scanned.
#[derive(Clone, Debug)]
#[expect(clippy::large_enum_variant, reason = "nearly every fd is open; boxing would cost an allocation per fd")]
pub enum PlannedFd<'r> {
    Open { facts: FdFacts, decision: Decision<'r> },
    Vanished { fd: i32 },
}

impl PlannedFd<'_> {
    /// The fd number.
    pub fn fd(&self) -> i32 {
        match self {
            PlannedFd::Open { facts, .. } => facts.fd,
            PlannedFd::Vanished { fd } => *fd,
        }
    }
}

/// The decisions for every fd of one process, in fd order.
#[derive(Clone, Debug)]
pub struct ProcessPlan<'r> {
    pub pid: i32,
    pub comm: ByteString,
    pub fds: Vec<PlannedFd<'r>>,
}

impl<'r> ProcessPlan<'r> {
    /// Decides every fd of a scan.
    pub fn new(scan: ProcessScan, rules: &'r RuleSet, matcher: &(impl Matcher + ?Sized)) -> ProcessPlan<'r> {
        let fds = scan
            .fds
            .into_iter()
            .map(|entry| match entry {
                FdEntry::Open(facts) => {
                    let decision = Decision::new(rules, matcher, &facts);
                    PlannedFd::Open { facts, decision }
                }
                FdEntry::Vanished { fd } => PlannedFd::Vanished { fd },
            })
            .collect();
        ProcessPlan { pid: scan.pid, comm: scan.comm, fds }
    }

    /// True when no fd is rejected (vanished fds are gone and need nothing).
    pub fn checkpointable(&self) -> bool {
        self.fds.iter().all(|fd| !matches!(fd, PlannedFd::Open { decision, .. } if decision.is_reject()))
    }

    /// The rejected fds' reasons.
    pub fn rejections(&self) -> impl Iterator<Item = (&FdFacts, &'r str)> {
        self.fds.iter().filter_map(|fd| match fd {
            PlannedFd::Open { facts, decision } if decision.is_reject() => {
                Some((facts, decision.reason().unwrap_or(NO_RULE)))
            }
            _ => None,
        })
    }
}
