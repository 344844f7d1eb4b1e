//! The report backend: decisions for processes as a table a person reads at a glance, or as JSON / RON
//! objects (one per process, one per line) whose shape the README documents. The JSON shape is also what
//! `check --facts` reads back, so a saved check can be decided again offline.

use crate::args::Format;
use crate::render::{Style, Ui};
use crrules_engine::backend::Backend;
use crrules_engine::facts::{ByteString, FdFacts};
use crrules_engine::plan::{Decision, PlannedFd, ProcessPlan};
use crrules_engine::scan::{FdEntry, ProcessScan};
use crrules_rules::Action;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// One process as JSON: the facts of each fd and, when decided, its decision.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProcessJson {
    pub pid: i32,
    #[serde(default, skip_serializing_if = "ByteString::is_empty")]
    pub comm: ByteString,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checkpointable: Option<bool>,
    pub fds: Vec<FdJson>,
}

/// One fd as JSON: the scanner's entry (the facts object, or `{"fd": N, "state": "vanished"}`), then its
/// decision when there is one.
#[derive(Debug, Serialize, Deserialize)]
pub struct FdJson {
    #[serde(flatten)]
    pub entry: FdEntry,
    #[serde(flatten, skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<DecisionJson>,
}

/// A decision as JSON: `action` is the keyword; an action's argument gets a key of its own.
#[derive(Debug, Serialize, Deserialize)]
pub struct DecisionJson {
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub substitute: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inherit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub limit: Option<u64>,
    pub rule: Option<String>,
    pub reason: Option<String>,
}

impl ProcessJson {
    /// The facts of a scan, without decisions (`crrules facts`).
    pub fn facts_only(scan: ProcessScan) -> ProcessJson {
        let fds = scan.fds.into_iter().map(|entry| FdJson { entry, decision: None }).collect();
        ProcessJson { pid: scan.pid, comm: scan.comm, checkpointable: None, fds }
    }

    /// The JSON form of a plan, each decision naming its rule in `rules`.
    pub fn new(plan: &ProcessPlan<'_>) -> ProcessJson {
        let fds = plan
            .fds
            .iter()
            .map(|fd| match fd {
                PlannedFd::Vanished { fd } => FdJson { entry: FdEntry::Vanished { fd: *fd }, decision: None },
                PlannedFd::Open { facts, decision } => {
                    FdJson { entry: FdEntry::Open(facts.clone()), decision: Some(DecisionJson::new(decision)) }
                }
            })
            .collect();
        ProcessJson { pid: plan.pid, comm: plan.comm.clone(), checkpointable: Some(plan.checkpointable()), fds }
    }

    /// The scan these facts came from (decisions dropped), to be decided again.
    pub fn into_scan(self) -> ProcessScan {
        ProcessScan { pid: self.pid, comm: self.comm, fds: self.fds.into_iter().map(|fd| fd.entry).collect() }
    }
}

impl DecisionJson {
    fn new(decision: &Decision<'_>) -> DecisionJson {
        let mut d = DecisionJson {
            action: decision.action().keyword().to_owned(),
            substitute: None,
            inherit: None,
            plugin: None,
            limit: None,
            rule: decision.rule.map(|r| r.origin.to_string()),
            reason: decision.reason().map(str::to_owned),
        };
        match decision.action() {
            Action::ReopenSubst { path } => d.substitute = Some(path.clone()),
            Action::Inherit { name } => d.inherit = Some(name.clone()),
            Action::Plugin { name } => d.plugin = Some(name.clone()),
            Action::Contents { limit } => d.limit = *limit,
            Action::ReopenPath | Action::Recreate | Action::Close | Action::Reject { .. } => {}
        }
        d
    }
}

/// Writes decisions in the chosen format to standard output.
pub struct Report<'a> {
    pub format: Format,
    pub ui: &'a Ui,
    out: std::io::StdoutLock<'static>,
}

impl<'a> Report<'a> {
    pub fn new(format: Format, ui: &'a Ui) -> Report<'a> {
        Report { format, ui, out: std::io::stdout().lock() }
    }
}

impl Backend for Report<'_> {
    type Error = std::io::Error;

    fn process(&mut self, plan: &ProcessPlan<'_>) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, &ProcessJson::new(plan))?;
                writeln!(self.out)
            }
            Format::Ron => {
                // Optional fields as plain values (`path: "/dev/null"`), as in the JSON.
                let ron = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
                let text = ron.to_string(&ProcessJson::new(plan)).map_err(|e| std::io::Error::other(e.to_string()))?;
                writeln!(self.out, "{text}")
            }
            Format::Text => {
                let text = table(plan, self.ui);
                self.out.write_all(text.as_bytes())
            }
        }
    }
}

/// What a person reads: a heading per process, a row per fd, a summary line.
pub fn table(plan: &ProcessPlan<'_>, ui: &Ui) -> String {
    let header = ["FD", "KIND", "TARGET", "ACTION", "RULE", "REASON"];
    let mut rows: Vec<[String; 6]> = Vec::with_capacity(plan.fds.len());
    let mut styles: Vec<Style> = Vec::with_capacity(plan.fds.len());
    for fd in &plan.fds {
        match fd {
            PlannedFd::Vanished { fd } => {
                rows.push([
                    fd.to_string(),
                    "-".into(),
                    "(closed during the scan)".into(),
                    "-".into(),
                    "-".into(),
                    String::new(),
                ]);
                styles.push(Style::Dim);
            }
            PlannedFd::Open { facts, decision } => {
                let action = match decision.action() {
                    Action::ReopenPath => "reopen".to_owned(),
                    Action::ReopenSubst { path } => format!("reopen {path}"),
                    Action::Contents { .. } => "contents".to_owned(),
                    Action::Inherit { name } => format!("inherit {name}"),
                    Action::Plugin { name } => format!("plugin {name}"),
                    other => other.keyword().to_owned(),
                };
                let rule = decision.rule.map_or_else(|| "-".to_owned(), |r| r.origin.to_string());
                styles.push(match decision.action() {
                    Action::Reject { .. } => Style::Bad,
                    Action::Close => Style::Warn,
                    _ => Style::Good,
                });
                rows.push([
                    facts.fd.to_string(),
                    facts.kind.name().to_owned(),
                    target(facts),
                    action,
                    rule,
                    decision.reason().unwrap_or_default().to_owned(),
                ]);
            }
        }
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // The target and rule columns can be long; keep them readable but bounded.
    widths[2] = widths[2].min(48);
    let mut out = String::new();
    let verdict = if plan.checkpointable() {
        ui.out(Style::Good, "checkpointable")
    } else {
        ui.out(Style::Bad, "NOT checkpointable")
    };
    // The comm is shown escaped (`Display`): a process names itself, a newline or an escape sequence included.
    out.push_str(&format!("{} {}: {verdict}\n", ui.out(Style::Bold, &format!("pid {}", plan.pid)), plan.comm));
    let line = |cells: &[String; 6]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            match i {
                5 => s.push_str(cell),
                // A path's end says more than its start.
                2 => s.push_str(&format!("{:w$}  ", clip_start(cell, w))),
                _ => s.push_str(&format!("{cell:w$}  ")),
            }
        }
        s.trim_end().to_owned()
    };
    out.push_str(&ui.out(Style::Bold, &line(&header.map(str::to_owned))));
    out.push('\n');
    for (row, style) in rows.iter().zip(styles) {
        let text = line(row);
        out.push_str(&if style == Style::Good { text } else { ui.out(style, &text) });
        out.push('\n');
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// `7 fds: 5 reopen, 1 recreate, 1 reject`.
fn summary(plan: &ProcessPlan<'_>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut vanished = 0;
    for fd in &plan.fds {
        match fd {
            PlannedFd::Vanished { .. } => vanished += 1,
            PlannedFd::Open { decision, .. } => {
                let k = decision.action().keyword();
                match counts.iter_mut().find(|(name, _)| *name == k) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((k, 1)),
                }
            }
        }
    }
    let mut parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if vanished > 0 {
        parts.push(format!("{vanished} closed during the scan"));
    }
    format!("{} fds: {}", plan.fds.len(), parts.join(", "))
}

/// What an fd points at, for the table: the path, the device, or the link text, escaped.
fn target(facts: &FdFacts) -> String {
    let base = facts.path.as_ref().unwrap_or(&facts.link).to_string();
    let mut s = match (&facts.dev, &facts.socket) {
        (Some(dev), _) => format!("{base} ({dev})"),
        (None, Some(sock)) => {
            let mut s = sock.family.map_or("socket".to_owned(), |f| f.to_string());
            if let Some(t) = sock.sock_type {
                s.push_str(&format!(" {t}"));
            }
            if let Some(st) = sock.state {
                s.push_str(&format!(" {st}"));
            }
            if let Some(local) = sock.local.as_ref().filter(|l| !l.is_empty()) {
                s.push_str(&format!(" {local}"));
            }
            s
        }
        _ => base,
    };
    if facts.deleted {
        s.push_str(" (deleted)");
    }
    s
}

/// `s` cut to `width` characters by dropping its start.
fn clip_start(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if len <= width {
        s.to_owned()
    } else {
        let tail: String = s.chars().skip(len - width.saturating_sub(1)).collect();
        format!("…{tail}")
    }
}
