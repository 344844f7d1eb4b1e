//! Facts + rule set -> decisions, and the one plan format. A [`Decider`] holds a rule set with its compiled
//! matcher and turns a process's scan into a [`ProcessPlan`]: for each fd the action, the rule that chose it
//! (`FILE:LINE`) and the reason shown to the user. An fd no rule matches is rejected with the reason
//! [`NO_RULE`]. A plan serialises both ways in the form the README documents (one JSON object per process:
//! the facts of each fd, flattened with its decision), so a saved check, a facts file and a policy test
//! are all plans, read back by the same code.

use crate::facts::{ByteString, FdFacts, SessionFacts};
use crate::matcher::{CompiledMatcher, Matcher};
use crate::needs::ScanOptions;
use crate::scan::{FdEntry, ProcessHandle, ProcessScan};
use crrules_rules::action::ActionFields;
use crrules_rules::{Action, Rule, RuleSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// The reason given to an fd no rule matches.
pub const NO_RULE: &str = "no rule matches";

/// What is done with one fd, and why. Serialised as the action's JSON form plus `rule` and `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The deciding rule as `FILE:LINE`; `None` when no rule matches.
    pub rule: Option<String>,
    /// The deciding rule's `because` note (a rejection's reason is part of its action).
    pub note: Option<String>,
}

impl Decision {
    /// The decision a rule makes.
    pub fn of_rule(rule: &Rule) -> Decision {
        Decision { action: rule.action.clone(), rule: Some(rule.origin.to_string()), note: rule.because.clone() }
    }

    /// The decision when no rule matches: a rejection.
    pub fn no_rule() -> Decision {
        Decision { action: Action::Reject { reason: NO_RULE.to_owned() }, rule: None, note: None }
    }

    /// The reason shown with the decision: the reject reason or the rule's `because` note.
    pub fn reason(&self) -> Option<&str> {
        match &self.action {
            Action::Reject { reason } => Some(reason),
            _ => self.note.as_deref(),
        }
    }

    /// True when the fd stops the process from being checkpointed.
    pub fn is_reject(&self) -> bool {
        self.action.is_reject()
    }
}

/// The flat JSON form of a decision.
#[derive(Serialize, Deserialize, Default)]
struct DecisionRepr {
    #[serde(flatten)]
    fields: ActionFields,
    #[serde(default)]
    rule: Option<String>,
}

impl DecisionRepr {
    fn new(d: &Decision) -> DecisionRepr {
        let mut fields = ActionFields::from(&d.action);
        fields.reason = d.reason().map(str::to_owned);
        DecisionRepr { fields, rule: d.rule.clone() }
    }

    /// The decision, or `None` when the object holds none (a facts-only fd).
    fn into_decision(self) -> Result<Option<Decision>, String> {
        if self.fields == ActionFields::default() && self.rule.is_none() {
            return Ok(None);
        }
        let action = self.fields.to_action()?;
        let note = if action.is_reject() { None } else { self.fields.reason };
        Ok(Some(Decision { action, rule: self.rule, note }))
    }
}

impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DecisionRepr::new(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Decision {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Decision, D::Error> {
        DecisionRepr::deserialize(d)?
            .into_decision()
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom("missing field `action`"))
    }
}

/// One fd of a process: its facts (or the note that it was closed while being scanned) and, in a decided
/// plan, its decision. Decisions are shared: every fd a rule decides points at that rule's one decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFd {
    pub entry: FdEntry,
    pub decision: Option<Arc<Decision>>,
}

impl PlannedFd {
    /// The fd number.
    pub fn fd(&self) -> i32 {
        self.entry.fd()
    }

    /// The facts, unless the fd vanished.
    pub fn facts(&self) -> Option<&FdFacts> {
        self.entry.facts()
    }

    /// The decision, if the plan was decided and the fd is open.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_deref()
    }

    /// True when the fd is open and rejected.
    pub fn is_reject(&self) -> bool {
        self.decision().is_some_and(Decision::is_reject)
    }
}

#[derive(Serialize)]
struct PlannedFdOut<'a> {
    #[serde(flatten)]
    entry: &'a FdEntry,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    decision: Option<DecisionRepr>,
}

#[derive(Deserialize)]
struct PlannedFdIn {
    #[serde(flatten)]
    entry: FdEntry,
    #[serde(flatten)]
    decision: DecisionRepr,
}

impl Serialize for PlannedFd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PlannedFdOut { entry: &self.entry, decision: self.decision().map(DecisionRepr::new) }.serialize(s)
    }
}

impl PlannedFdIn {
    fn into_planned(self) -> Result<PlannedFd, String> {
        let decision = self.decision.into_decision()?;
        if decision.is_some() && self.entry.facts().is_none() {
            return Err("an fd that vanished takes no decision (`action`, `rule`, `reason`)".to_owned());
        }
        Ok(PlannedFd { entry: self.entry, decision: decision.map(Arc::new) })
    }
}

/// Read as an object first: a mistake is reported with the fd's number and the field it is in (`fd 4:
/// unknown kind `xyz``, `fd 7: `deleted`: invalid type: string "no", expected a boolean`).
impl<'de> Deserialize<'de> for PlannedFd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PlannedFd, D::Error> {
        let object = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let read = PlannedFdIn::deserialize(serde_json::Value::Object(object.clone()))
            .map_err(|e| {
                let message = e.to_string();
                match crate::facts::field_at_fault::<PlannedFdIn>(&object, &message) {
                    Some(field) => crate::facts::about_field(&field, message),
                    None => message,
                }
            })
            .and_then(PlannedFdIn::into_planned);
        read.map_err(|message| {
            let fd = object.get("fd").and_then(serde_json::Value::as_i64).filter(|fd| *fd >= 0);
            serde::de::Error::custom(match fd {
                Some(fd) => format!("fd {fd}: {message}"),
                None => message,
            })
        })
    }
}

/// Every fd of one process, in fd order, decided or not.
#[derive(Clone, Debug)]
pub struct ProcessPlan {
    pub pid: i32,
    pub comm: ByteString,
    /// Parent, process group, session and controlling terminal, when read.
    pub session: Option<SessionFacts>,
    pub fds: Vec<PlannedFd>,
    /// True when the fds were decided (a check); false for facts alone.
    pub decided: bool,
    /// The live process the facts were read from, held since its scan began (see [`ProcessScan`]).
    pub process: Option<Arc<ProcessHandle>>,
}

impl PartialEq for ProcessPlan {
    fn eq(&self, other: &ProcessPlan) -> bool {
        (self.pid, &self.comm, &self.session, &self.fds, self.decided)
            == (other.pid, &other.comm, &other.session, &other.fds, other.decided)
    }
}
impl Eq for ProcessPlan {}

impl ProcessPlan {
    /// The facts of a scan without decisions (what `crrules facts` writes).
    pub fn undecided(scan: ProcessScan) -> ProcessPlan {
        let fds = scan.fds.into_iter().map(|entry| PlannedFd { entry, decision: None }).collect();
        ProcessPlan {
            pid: scan.pid,
            comm: scan.comm,
            session: scan.session,
            fds,
            decided: false,
            process: scan.process,
        }
    }

    /// A plan from one line of JSON (a facts file's, a policy test's). The error names the fd and the field a
    /// mistake is in; a line that is not JSON, the column.
    pub fn from_json(text: &str) -> Result<ProcessPlan, String> {
        serde_json::from_str(text).map_err(|e| {
            let position = format!(" at line {} column {}", e.line(), e.column());
            let message = e.to_string();
            let message = message.strip_suffix(&position).unwrap_or(&message).to_owned();
            if !e.is_data() {
                return format!("{message} at column {}", e.column());
            }
            let Ok(object) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) else {
                return "expected a process object, `{\"pid\": N, \"fds\": [...]}`".to_owned();
            };
            // An fd's mistake is named by the fd already.
            match crate::facts::field_at_fault::<ProcessPlan>(&object, &message) {
                Some(field) if field != "fds" => crate::facts::about_field(&field, message),
                _ => message,
            }
        })
    }

    /// The scan these facts came from, decisions dropped, to be decided again.
    pub fn into_scan(self) -> ProcessScan {
        let fds = self.fds.into_iter().map(|fd| fd.entry).collect();
        ProcessScan {
            pid: self.pid,
            comm: self.comm,
            session: self.session,
            fds,
            duplicated: Vec::new(),
            process: self.process,
        }
    }

    /// True when the plan was decided and no fd is rejected (vanished fds are gone and need nothing).
    pub fn checkpointable(&self) -> bool {
        self.decided && !self.fds.iter().any(PlannedFd::is_reject)
    }

    /// The rejected fds with their reasons.
    pub fn rejections(&self) -> impl Iterator<Item = (&FdFacts, &str)> {
        self.fds.iter().filter_map(|fd| match (fd.facts(), fd.decision()) {
            (Some(facts), Some(d)) if d.is_reject() => Some((facts, d.reason().unwrap_or(NO_RULE))),
            _ => None,
        })
    }
}

#[derive(Serialize)]
struct ProcessPlanOut<'a> {
    pid: i32,
    #[serde(skip_serializing_if = "ByteString::is_empty")]
    comm: &'a ByteString,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpointable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<SessionFacts>,
    fds: &'a [PlannedFd],
}

#[derive(Deserialize)]
struct ProcessPlanIn {
    pid: i32,
    #[serde(default)]
    comm: ByteString,
    #[serde(default)]
    checkpointable: Option<bool>,
    #[serde(default)]
    session: Option<SessionFacts>,
    fds: Vec<PlannedFd>,
}

impl Serialize for ProcessPlan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let checkpointable = self.decided.then(|| self.checkpointable());
        ProcessPlanOut { pid: self.pid, comm: &self.comm, checkpointable, session: self.session, fds: &self.fds }
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ProcessPlan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ProcessPlan, D::Error> {
        let raw = ProcessPlanIn::deserialize(d)?;
        if raw.pid <= 0 {
            return Err(serde::de::Error::custom(format!("`pid` {} is not a process id (1 or more)", raw.pid)));
        }
        let decided = raw.checkpointable.is_some() || raw.fds.iter().any(|fd| fd.decision.is_some());
        Ok(ProcessPlan { pid: raw.pid, comm: raw.comm, session: raw.session, fds: raw.fds, decided, process: None })
    }
}

/// A rule set ready to decide: the rules in effective order, their compiled matcher, and each rule's
/// decision made once.
#[derive(Debug)]
pub struct Decider {
    rules: RuleSet,
    matcher: CompiledMatcher,
    decisions: Vec<Arc<Decision>>,
    no_rule: Arc<Decision>,
}

impl Decider {
    /// Compiles a rule set's matcher.
    pub fn new(rules: RuleSet) -> Decider {
        let matcher = CompiledMatcher::new(&rules);
        let decisions = rules.rules().iter().map(|r| Arc::new(Decision::of_rule(r))).collect();
        Decider { rules, matcher, decisions, no_rule: Arc::new(Decision::no_rule()) }
    }

    /// The rule set, in effective order.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The facts the rules test: a scan for this decider reads no more (see [`ScanOptions::for_policy`]).
    pub fn needs(&self) -> ScanOptions {
        ScanOptions::for_policy(&self.rules)
    }

    /// The decision for one fd: the first matching rule's, or a rejection.
    pub fn decide(&self, facts: &FdFacts) -> Arc<Decision> {
        match self.matcher.first_match(facts) {
            Some(index) => Arc::clone(&self.decisions[index]),
            None => Arc::clone(&self.no_rule),
        }
    }

    /// Decides every fd of a scan.
    pub fn plan(&self, scan: ProcessScan) -> ProcessPlan {
        let fds = scan
            .fds
            .into_iter()
            .map(|entry| {
                let decision = entry.facts().map(|facts| self.decide(facts));
                PlannedFd { entry, decision }
            })
            .collect();
        ProcessPlan { pid: scan.pid, comm: scan.comm, session: scan.session, fds, decided: true, process: scan.process }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crrules_rules::Source;
    use crrules_rules::vocab::Kind;
    use serde_json::json;

    fn decider(text: &str) -> Decider {
        let v = crrules_rules::compile(&[Source::new("t.rules", text)]);
        assert!(!v.has_errors(), "{:?}", v.diagnostics);
        Decider::new(v.rules)
    }

    fn scan() -> ProcessScan {
        let mut null = FdFacts::new(0, Kind::Chardev, "/dev/null");
        null.path = Some("/dev/null".into());
        ProcessScan::saved(
            7,
            "sleep",
            vec![
                FdEntry::Open(Box::new(null)),
                FdEntry::Vanished { fd: 1 },
                FdEntry::Open(Box::new(FdFacts::new(2, Kind::Pipe, "pipe:[9]"))),
            ],
        )
    }

    #[test]
    fn decisions_name_rule_and_reason_and_round_trip() {
        let d = decider("chardev => reopen path because \"stateless\"\n");
        let plan = d.plan(scan());
        assert!(!plan.checkpointable());
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["checkpointable"], false);
        assert_eq!(json["fds"][0]["action"], "reopen");
        assert_eq!(json["fds"][0]["rule"], "t.rules:1");
        assert_eq!(json["fds"][0]["reason"], "stateless");
        assert_eq!(json["fds"][1], json!({"fd": 1, "state": "vanished"}));
        assert_eq!(json["fds"][2]["action"], "reject");
        assert_eq!(json["fds"][2]["rule"], serde_json::Value::Null);
        assert_eq!(json["fds"][2]["reason"], NO_RULE);
        let back: ProcessPlan = serde_json::from_value(json).unwrap();
        assert_eq!(back, plan);
        assert_eq!(plan.rejections().map(|(f, r)| (f.fd, r)).collect::<Vec<_>>(), [(2, NO_RULE)]);
    }

    #[test]
    fn facts_alone_have_no_verdict() {
        let plan = ProcessPlan::undecided(scan());
        let json = serde_json::to_value(&plan).unwrap();
        assert!(json.get("checkpointable").is_none());
        assert!(json["fds"][0].get("action").is_none());
        let back: ProcessPlan = serde_json::from_value(json).unwrap();
        assert_eq!(back, plan);
        assert!(!back.decided);
    }

    #[test]
    fn a_mistake_in_a_line_of_facts_is_named_by_its_fd_and_field() {
        // Every fd is `FD` below, with its facts complete but for the field changed.
        const FD: &str =
            r#""fd": 4, "kind": "pipe", "link": "pipe:[1]", "deleted": false, "flags": [], "cloexec": false"#;
        let cases: &[(String, &str)] = &[
            (
                format!(
                    r#"{{"pid": 1, "fds": [{{{FD}}}, {{"fd": 5, "kind": "xyz", "link": "x", "deleted": false, "flags": [], "cloexec": false}}]}}"#
                ),
                "fd 5: unknown kind `xyz`",
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{}}}]}}"#, FD.replace(r#""deleted": false"#, r#""deleted": "no""#)),
                r#"fd 4: `deleted`: invalid type: string "no", expected a boolean"#,
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{}}}]}}"#, FD.replace(r#", "deleted": false"#, "")),
                "fd 4: missing field `deleted`",
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{FD}, "size": -1}}]}}"#),
                "fd 4: `size`: invalid value: integer `-1`, expected u64",
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{FD}, "socket": {{"family": "unx"}}}}]}}"#),
                "fd 4: unknown socket family `unx`",
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{FD}, "flags": ["O_BOGUS"]}}]}}"#),
                "fd 4: `flags`: unknown open flag `O_BOGUS`",
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{FD}, "action": "frobnicate"}}]}}"#),
                "fd 4: unknown action `frobnicate`, expected one of reopen, contents, recreate, inherit, close, reject, plugin",
            ),
            (
                r#"{"pid": 1, "fds": [{"fd": 3, "state": "gone"}]}"#.to_owned(),
                r#"fd 3: unknown fd state "gone" (an fd closed while it was read is written `"state": "vanished"`)"#,
            ),
            (
                r#"{"pid": 1, "fds": [{"fd": 3, "state": "vanished", "action": "close"}]}"#.to_owned(),
                "fd 3: an fd that vanished takes no decision (`action`, `rule`, `reason`)",
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{}}}]}}"#, FD.replace(r#""fd": 4"#, r#""fd": -4"#)),
                "`fd` -4 is not an fd number (0 or more)",
            ),
            (
                format!(r#"{{"pid": 1, "fds": [{{{}}}]}}"#, FD.replace(r#""fd": 4"#, r#""fd": "four""#)),
                r#"`fd`: invalid type: string "four", expected i32"#,
            ),
            (r#"{"pid": "x", "fds": []}"#.to_owned(), r#"`pid`: invalid type: string "x", expected i32"#),
            (r#"{"pid": 0, "fds": []}"#.to_owned(), "`pid` 0 is not a process id (1 or more)"),
            (r#"{"pid": 3}"#.to_owned(), "missing field `fds`"),
            ("[1, 2]".to_owned(), r#"expected a process object, `{"pid": N, "fds": [...]}`"#),
            ("not json".to_owned(), "expected ident at column 2"),
            (r#"{"pid": 3, "fds": ["#.to_owned(), "EOF while parsing a list at column 19"),
        ];
        for (line, message) in cases {
            assert_eq!(ProcessPlan::from_json(line).unwrap_err(), *message, "{line}");
        }
        assert!(ProcessPlan::from_json(&format!(r#"{{"pid": 1, "fds": [{{{FD}}}]}}"#)).is_ok());
    }

    #[test]
    fn a_decision_without_an_action_is_an_error() {
        let bad = json!({"pid": 1, "fds": [{"fd": 0, "kind": "pipe", "link": "pipe:[1]", "deleted": false,
            "flags": [], "cloexec": false, "rule": "x.rules:1"}]});
        let err = serde_json::from_value::<ProcessPlan>(bad).unwrap_err().to_string();
        assert!(err.contains("missing field `action`"), "{err}");
    }
}
