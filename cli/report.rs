//! The report backends: plans as a table a person reads at a glance, or as JSON / RON objects (one per
//! process, one per line) in the engine's plan format, which the README documents and `check --facts` and
//! `crrules test` read back; and the `--all` summary, which wraps another report.

use crate::args::Format;
use crate::output;
use crate::render::{Style, Ui};
use crrules_engine::backend::Backend;
use crrules_engine::facts::FdFacts;
use crrules_engine::needs::ScanOptions;
use crrules_engine::plan::ProcessPlan;
use crrules_engine::scan::ScanError;
use crrules_rules::Action;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

/// Writes plans in the chosen format to standard output (see [`output::Stdout`]: buffered, and quiet when
/// the reader stops reading).
pub struct Report<'a> {
    format: Format,
    ui: &'a Ui,
    out: output::Stdout,
}

impl<'a> Report<'a> {
    pub fn new(format: Format, ui: &'a Ui) -> Report<'a> {
        Report { format, ui, out: output::stdout() }
    }
}

impl Backend for Report<'_> {
    type Error = std::io::Error;

    /// The table shows only what decided (plus what the link and, for paths, `stat` always give); JSON and
    /// RON print every fact.
    fn needs(&self) -> ScanOptions {
        match self.format {
            Format::Text => ScanOptions::minimal(),
            Format::Json | Format::Ron => ScanOptions::all(),
        }
    }

    fn process(&mut self, plan: &ProcessPlan) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, plan)?;
                writeln!(self.out)?;
            }
            Format::Ron => {
                // Optional fields as plain values (`path: "/dev/null"`), as in the JSON.
                let ron = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
                let text = ron.to_string(plan).map_err(|e| std::io::Error::other(e.to_string()))?;
                writeln!(self.out, "{text}")?;
            }
            Format::Text => {
                let text = table(plan, self.ui);
                self.out.write_all(text.as_bytes())?;
            }
        }
        // Each process reaches the reader whole and as soon as it is decided.
        self.out.flush()
    }

    /// A process that exited while a tree was checked (or that `--all` could not read): said on standard
    /// error, so the output stays clean.
    fn skipped(&mut self, error: &ScanError) -> std::io::Result<()> {
        note_skipped(self.ui, error);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Says on standard error that a process was skipped: it exited during the check, or could not be read.
pub fn note_skipped(ui: &Ui, error: &ScanError) {
    match error.pid() {
        Some(pid) if error.is_gone() => ui.note(&format!("process {pid} exited during the check")),
        _ => ui.note(&error.to_string()),
    }
}

/// `check --all`: passes every plan on to a report, draws a progress bar on a terminal, and ends with how
/// many processes are checkpointable and the most common reasons the others are not.
pub struct Summary<'a, B> {
    inner: B,
    ui: &'a Ui,
    progress: Progress,
    done: usize,
    good: usize,
    bad: usize,
    unreadable: usize,
    gone: usize,
    reasons: HashMap<String, usize>,
}

impl<'a, B> Summary<'a, B> {
    pub fn new(inner: B, ui: &'a Ui) -> Summary<'a, B> {
        Summary {
            inner,
            ui,
            progress: Progress { on: ui.err_tty, total: 0 },
            done: 0,
            good: 0,
            bad: 0,
            unreadable: 0,
            gone: 0,
            reasons: HashMap::new(),
        }
    }
}

/// How many unreadable processes are named one by one before the summary just counts them.
const NAMED_UNREADABLE: usize = 5;

impl<B: Backend<Error = std::io::Error>> Backend for Summary<'_, B> {
    type Error = std::io::Error;

    fn needs(&self) -> ScanOptions {
        self.inner.needs()
    }

    fn begin(&mut self, expected: Option<usize>) -> std::io::Result<()> {
        self.progress.total = expected.unwrap_or(0);
        self.inner.begin(expected)
    }

    fn process(&mut self, plan: &ProcessPlan) -> std::io::Result<()> {
        self.done += 1;
        if plan.checkpointable() {
            self.good += 1;
        } else {
            self.bad += 1;
            let mut seen: Vec<&str> = plan.rejections().map(|(_, r)| r).collect();
            seen.sort_unstable();
            seen.dedup();
            for reason in seen {
                *self.reasons.entry(reason.to_owned()).or_default() += 1;
            }
        }
        self.progress.clear();
        self.inner.process(plan)?;
        self.progress.tick(self.done);
        Ok(())
    }

    fn skipped(&mut self, error: &ScanError) -> std::io::Result<()> {
        self.done += 1;
        if error.is_gone() {
            self.gone += 1;
        } else {
            self.unreadable += 1;
            if self.unreadable <= NAMED_UNREADABLE {
                self.progress.clear();
                self.ui.note(&error.to_string());
            }
        }
        self.progress.tick(self.done);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.progress.clear();
        self.inner.finish()?;
        let mut common: Vec<(&String, &usize)> = self.reasons.iter().collect();
        common.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let mut out = std::io::stderr().lock();
        let (good, bad, unreadable, gone) = (self.good, self.bad, self.unreadable, self.gone);
        let line = format!(
            "{} processes: {good} checkpointable, {bad} not, {unreadable} could not be read, {gone} exited during the check",
            self.done
        );
        writeln!(out, "{}", self.ui.err(Style::Bold, &line))?;
        if !common.is_empty() {
            writeln!(out, "most common reasons:")?;
            for (reason, n) in common.iter().take(8) {
                writeln!(out, "  {n:>5}  {reason}")?;
            }
        }
        Ok(())
    }
}

/// A one-line progress bar on standard error, redrawn at most every 1%.
struct Progress {
    on: bool,
    total: usize,
}

impl Progress {
    fn tick(&self, done: usize) {
        if !self.on || self.total == 0 {
            return;
        }
        let step = (self.total / 100).max(1);
        if done % step != 0 && done != self.total {
            return;
        }
        let width = 40;
        let filled = done.min(self.total) * width / self.total;
        eprint!("\r[{}{}] {done}/{} processes", "=".repeat(filled), " ".repeat(width - filled), self.total);
    }

    fn clear(&self) {
        if self.on && self.total > 0 {
            eprint!("\r{}\r", " ".repeat(70));
        }
    }
}

/// One cell of the table and its width in characters.
type Cell<'a> = (Cow<'a, str>, usize);

fn cell(text: impl Into<Cow<'static, str>>) -> Cell<'static> {
    let text = text.into();
    let width = text.chars().count();
    (text, width)
}

fn cell_of<'a>(text: Cow<'a, str>) -> Cell<'a> {
    let width = text.chars().count();
    (text, width)
}

/// What a person reads: a heading per process, a row per fd, a summary line. Cells borrow from the plan
/// where they can (kinds, rules, reasons, most targets), and rows are written straight into the text.
pub fn table(plan: &ProcessPlan, ui: &Ui) -> String {
    let header = ["FD", "KIND", "TARGET", "ACTION", "RULE", "REASON"].map(cell);
    let mut rows: Vec<([Cell<'_>; 6], Style)> = Vec::with_capacity(plan.fds.len());
    for planned in &plan.fds {
        let fd = cell(planned.fd().to_string());
        let Some(facts) = planned.facts() else {
            let cells = [fd, cell("-"), cell("(closed during the scan)"), cell("-"), cell("-"), cell("")];
            rows.push((cells, Style::Dim));
            continue;
        };
        let (action, rule, reason, style) = match planned.decision() {
            Some(decision) => {
                let action: Cow<'_, str> = match &decision.action {
                    Action::ReopenPath { exact: false } => "reopen".into(),
                    Action::ReopenPath { exact: true } => "reopen exact".into(),
                    Action::ReopenSubst { path } => format!("reopen {path}").into(),
                    Action::Contents { .. } => "contents".into(),
                    Action::Inherit { name } => format!("inherit {name}").into(),
                    Action::Plugin { name } => format!("plugin {name}").into(),
                    other => other.keyword().into(),
                };
                let style = match &decision.action {
                    Action::Reject { .. } => Style::Bad,
                    Action::Close => Style::Warn,
                    _ => Style::Good,
                };
                let rule = decision.rule.as_deref().unwrap_or("-");
                (action, rule.into(), decision.reason().unwrap_or_default().into(), style)
            }
            None => ("-".into(), "-".into(), "".into(), Style::Dim),
        };
        let cells = [
            fd,
            cell(facts.kind.name()),
            cell_of(target_and_peer(facts)),
            cell_of(action),
            cell_of(rule),
            cell_of(reason),
        ];
        rows.push((cells, style));
    }
    let mut widths = header.each_ref().map(|c| c.1);
    for (row, _) in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.1);
        }
    }
    // The target and rule columns can be long; keep them readable but bounded.
    widths[2] = widths[2].min(48);
    let line_width: usize = widths.iter().sum::<usize>() + 2 * widths.len() + 12;
    let mut out = String::with_capacity((rows.len() + 3) * line_width);
    let verdict = if plan.checkpointable() {
        ui.out(Style::Good, "checkpointable")
    } else {
        ui.out(Style::Bad, "NOT checkpointable")
    };
    // The comm is shown escaped (`Display`): a process names itself, a newline or an escape sequence included.
    let _ = writeln!(out, "{} {}: {verdict}", ui.out(Style::Bold, &format!("pid {}", plan.pid)), plan.comm);
    push_row(&mut out, &header, &widths, ui.out_codes(Style::Bold));
    for (row, style) in &rows {
        let codes = if *style == Style::Good { ("", "") } else { ui.out_codes(*style) };
        push_row(&mut out, row, &widths, codes);
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// Writes one row, cells padded to their column's width, between a style's codes, and a newline.
fn push_row(out: &mut String, cells: &[Cell<'_>; 6], widths: &[usize; 6], (open, close): (&str, &str)) {
    out.push_str(open);
    let start = out.len();
    for (i, ((text, width), w)) in cells.iter().zip(widths).enumerate() {
        let (text, width) = match i {
            5 => {
                out.push_str(text);
                break;
            }
            // A path's end says more than its start.
            2 if *width > *w => (Cow::Owned(clip_start(text, *w)), *w),
            _ => (Cow::Borrowed(&**text), *width),
        };
        out.push_str(&text);
        out.extend(std::iter::repeat_n(' ', w - width + 2));
    }
    let end = start + out[start..].trim_end().len();
    out.truncate(end);
    out.push_str(close);
    out.push('\n');
}

/// `7 fds: 5 reopen, 1 recreate, 1 reject`.
fn summary(plan: &ProcessPlan) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut vanished = 0;
    for planned in &plan.fds {
        match (planned.facts(), planned.decision()) {
            (None, _) => vanished += 1,
            (Some(_), Some(decision)) => {
                let k = decision.action.keyword();
                match counts.iter_mut().find(|(name, _)| *name == k) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((k, 1)),
                }
            }
            (Some(_), None) => {}
        }
    }
    let mut parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if vanished > 0 {
        parts.push(format!("{vanished} closed during the scan"));
    }
    format!("{} fds: {}", plan.fds.len(), parts.join(", "))
}

/// What an fd points at, for the table and the picture: the path, the device, or the link text, escaped
/// (borrowed from the facts when nothing is added and nothing needs escaping).
pub fn target(facts: &FdFacts) -> Cow<'_, str> {
    let base = facts.path.as_ref().unwrap_or(&facts.link).escaped();
    if facts.dev.is_none() && facts.socket.is_none() && !facts.deleted {
        return base;
    }
    let mut s = match (&facts.dev, &facts.socket) {
        (Some(dev), _) => format!("{base} ({dev})"),
        (None, Some(sock)) => {
            let mut s = sock.family.map_or("socket".to_owned(), |f| f.to_string());
            if let Some(t) = sock.sock_type {
                let _ = write!(s, " {t}");
            }
            if let Some(st) = sock.state {
                let _ = write!(s, " {st}");
            }
            if let Some(local) = sock.local.as_ref().filter(|l| !l.is_empty()) {
                let _ = write!(s, " {local}");
            }
            s
        }
        _ => base.into_owned(),
    };
    if facts.deleted {
        s.push_str(" (deleted)");
    }
    s.into()
}

/// [`target`] and, for the table, ` → outside 50 (logger)`: where the other end is, when the fds were
/// linked (the picture draws it instead).
fn target_and_peer(facts: &FdFacts) -> Cow<'_, str> {
    let Some(place) = facts.peer else { return target(facts) };
    let mut s = target(facts).into_owned();
    let _ = write!(s, " → {place}");
    if let Some(pid) = facts.peer_pid {
        let _ = write!(s, " {pid}");
        if let Some(comm) = &facts.peer_comm {
            let _ = write!(s, " ({comm})");
        }
    }
    s.into()
}

/// `s` cut to `width` characters by dropping its start.
pub fn clip_start(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if len <= width {
        s.to_owned()
    } else {
        let tail: String = s.chars().skip(len - width.saturating_sub(1)).collect();
        format!("…{tail}")
    }
}
