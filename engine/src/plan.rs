//! Facts + rule set -> decisions: for each fd the action, the rule that chose it and the reason shown to
//! the user; for each process whether it can be checkpointed. Unmatched fds are rejected with the reason
//! "no rule matches".

use crate::facts::FdFacts;
use crate::matcher::Matcher;
use crate::scan::{FdEntry, ProcessScan};
use crrules_rules::{Action, Rule, RuleSet};

/// The reason given to an fd no rule matches.
pub const NO_RULE: &str = "no rule matches";

/// What is done with one fd, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The index of the deciding rule in the rule set; `None` when no rule matches.
    pub rule: Option<usize>,
    pub action: Action,
    /// The reject reason or the rule's `because` note.
    pub reason: Option<String>,
}

impl Decision {
    /// The decision for `facts`: the first matching rule's action, or a rejection.
    pub fn new(rules: &RuleSet, matcher: &(impl Matcher + ?Sized), facts: &FdFacts) -> Decision {
        match matcher.first_match(facts) {
            Some(index) => Decision::from_rule(index, &rules.rules()[index]),
            None => Decision {
                rule: None,
                action: Action::Reject { reason: NO_RULE.to_owned() },
                reason: Some(NO_RULE.to_owned()),
            },
        }
    }

    fn from_rule(index: usize, rule: &Rule) -> Decision {
        Decision { rule: Some(index), action: rule.action.clone(), reason: rule.reason().map(str::to_owned) }
    }

    /// True when the fd stops the process from being checkpointed.
    pub fn is_reject(&self) -> bool {
        self.action.is_reject()
    }
}

/// One fd of a process with its decision, or the note that it was closed while being scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(clippy::large_enum_variant, reason = "nearly every fd is open; boxing would cost an allocation per fd")]
pub enum PlannedFd {
    Open { facts: FdFacts, decision: Decision },
    Vanished { fd: i32 },
}

impl PlannedFd {
    /// The fd number.
    pub fn fd(&self) -> i32 {
        match self {
            PlannedFd::Open { facts, .. } => facts.fd,
            PlannedFd::Vanished { fd } => *fd,
        }
    }
}

/// The decisions for every fd of one process, in fd order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessPlan {
    pub pid: i32,
    pub comm: String,
    pub fds: Vec<PlannedFd>,
}

impl ProcessPlan {
    /// Decides every fd of a scan.
    pub fn new(scan: ProcessScan, rules: &RuleSet, matcher: &(impl Matcher + ?Sized)) -> ProcessPlan {
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
    pub fn rejections(&self) -> impl Iterator<Item = (&FdFacts, &str)> {
        self.fds.iter().filter_map(|fd| match fd {
            PlannedFd::Open { facts, decision } if decision.is_reject() => {
                Some((facts, decision.reason.as_deref().unwrap_or(NO_RULE)))
            }
            _ => None,
        })
    }
}
