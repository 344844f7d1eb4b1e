//! The picture backend: the processes checked together as one Graphviz graph (`check --format dot`), and
//! Graphviz's `dot` program to draw it (`--format svg`). Plans -> a [`Process`] each (every fd a [`Row`])
//! -> a [`Graph`] (which rows are shown, the processes outside, the edges, all sorted) -> DOT text; the
//! same plans give the same text, byte for byte.
//!
//! Each process is a box titled `PID (COMM)` with a row per fd worth seeing (pipes, FIFOs, sockets,
//! terminals, fds linked to another or sharing its open file, rejected fds; the rest counted on one line):
//! the fd, what it points at and the action decided, coloured by the action. Edges join the two ends of a
//! pipe (from the writer to the reader), socket or terminal, and, dashed, the fds that share one open file;
//! an end held by a process outside the checked ones leads into a cluster "outside the checkpoint".

use crate::render::Ui;
use crate::report;
use crrules_engine::backend::Backend;
use crrules_engine::facts::{FdFacts, FdRef};
use crrules_engine::needs::{KindMask, ScanOptions};
use crrules_engine::plan::ProcessPlan;
use crrules_engine::scan::ScanError;
use crrules_rules::vocab::{Access, ActionWord, Kind, PeerPlace};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

/// The longest target a row shows; a longer one loses its start (a path's end says more).
const TARGET_WIDTH: usize = 40;

/// Collects every plan, then writes one graph when the run finishes.
pub struct Dot<'a, W: Write> {
    out: W,
    ui: &'a Ui,
    processes: Vec<Process>,
}

impl<'a, W: Write> Dot<'a, W> {
    pub fn new(out: W, ui: &'a Ui) -> Dot<'a, W> {
        Dot { out, ui, processes: Vec::new() }
    }
}

impl<W: Write> Backend for Dot<'_, W> {
    type Error = std::io::Error;

    /// The links between the fds, and what the rows show beyond the link text: which way a pipe's or
    /// FIFO's end faces (its access mode), a socket's family, type and state.
    fn needs(&self) -> ScanOptions {
        let ends = KindMask::NONE.with(Kind::Pipe).with(Kind::Fifo);
        ScanOptions { link: true, shared: true, sockets: true, flags: ends, ..ScanOptions::minimal() }
    }

    fn process(&mut self, plan: &ProcessPlan) -> std::io::Result<()> {
        self.processes.push(Process::new(plan));
        Ok(())
    }

    fn skipped(&mut self, error: &ScanError) -> std::io::Result<()> {
        report::note_skipped(self.ui, error);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let graph = Graph::new(std::mem::take(&mut self.processes));
        self.out.write_all(graph.to_dot().as_bytes())?;
        self.out.flush()
    }
}

/// One fd as the picture shows it.
#[derive(Debug)]
struct Row {
    fd: i32,
    /// What the fd points at, escaped as the table shows it and clipped (not yet made safe for a label).
    target: String,
    /// The decided action; `None` for facts that were not decided.
    word: Option<ActionWord>,
    /// A pipe's or FIFO's end: its access mode says which way data flows through it.
    end: Option<Access>,
    peer: Option<Peer>,
    shared_with: Vec<FdRef>,
    /// Worth a row of its own, whether or not another fd links to it.
    notable: bool,
}

/// Who holds the other end of an fd, as its facts say.
#[derive(Debug)]
struct Peer {
    /// Outside the processes checked together (otherwise one of them).
    outside: bool,
    pid: Option<i32>,
    fd: Option<i32>,
    comm: Option<String>,
}

impl Row {
    fn new(facts: &FdFacts, word: Option<ActionWord>) -> Row {
        let outside = match facts.peer {
            Some(PeerPlace::Inside) => Some(false),
            Some(PeerPlace::Outside) => Some(true),
            Some(PeerPlace::None) | None => None,
        };
        let peer = outside.map(|outside| Peer {
            outside,
            pid: facts.peer_pid,
            fd: facts.peer_fd,
            comm: facts.peer_comm.as_ref().map(|c| c.escaped().into_owned()),
        });
        let end = matches!(facts.kind, Kind::Pipe | Kind::Fifo).then(|| Access::from_flags(facts.flags.0));
        let notable = matches!(facts.kind, Kind::Pipe | Kind::Fifo | Kind::Socket)
            || is_terminal(facts)
            || peer.is_some()
            || !facts.shared_with.is_empty()
            || word == Some(ActionWord::Reject);
        Row {
            fd: facts.fd,
            target: report::clip_start(&report::target(facts), TARGET_WIDTH),
            word,
            end,
            peer,
            shared_with: facts.shared_with.clone(),
            notable,
        }
    }
}

/// A terminal: the tty and console devices (majors 4 and 5) and both sides of a pty pair (masters 128-135,
/// slaves 136-143), or whatever fdinfo gives a pty index.
fn is_terminal(facts: &FdFacts) -> bool {
    facts.kind == Kind::Chardev
        && (facts.tty_index.is_some() || facts.dev.is_some_and(|d| matches!(d.major, 4 | 5 | 128..=143)))
}

/// One process as the picture shows it.
#[derive(Debug)]
struct Process {
    pid: i32,
    /// The command name, escaped.
    comm: String,
    /// Some fd is rejected: the process cannot be checkpointed.
    rejected: bool,
    /// Every open fd, in fd order.
    rows: Vec<Row>,
    /// Fds closed while they were being read.
    vanished: usize,
}

impl Process {
    fn new(plan: &ProcessPlan) -> Process {
        let mut rows = Vec::with_capacity(plan.fds.len());
        let mut vanished = 0;
        for planned in &plan.fds {
            match planned.facts() {
                Some(facts) => rows.push(Row::new(facts, planned.decision().map(|d| d.action.word()))),
                None => vanished += 1,
            }
        }
        rows.sort_by_key(|row| row.fd);
        let rejected = plan.fds.iter().any(|fd| fd.is_reject());
        Process { pid: plan.pid, comm: plan.comm.escaped().into_owned(), rejected, rows, vanished }
    }
}

/// An end of an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// An fd of a process in the picture; `None` when the fd is not known (the edge meets the box).
    Pictured { pid: i32, fd: Option<i32> },
    /// An fd of a process not in the picture: outside the checkpoint, or checked but not read.
    Other { pid: i32, fd: Option<i32> },
    /// A process outside the checkpoint that was not found.
    Unknown,
}

/// How an edge is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Line {
    /// A pipe's or FIFO's two ends: an arrow from the writer to the reader.
    Flow,
    /// The two ends of a socket or terminal, or of a pipe whose direction is not known: no arrow.
    Ends,
    /// Two fds holding one open file: dashed, no arrow.
    Shared,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    tail: End,
    head: End,
    line: Line,
    /// The action of the end that says most about the link (see [`weight`]): the edge's colour.
    word: Option<ActionWord>,
}

/// A process not in the picture that holds an end.
#[derive(Debug, Default)]
struct Other {
    comm: Option<String>,
    /// Its fds that edges meet.
    fds: BTreeSet<i32>,
    /// Outside the processes checked together; otherwise it was checked but is not in the picture (it
    /// exited, or could not be read).
    outside: bool,
}

/// The whole picture, ready to be written.
#[derive(Debug)]
struct Graph {
    /// By pid, each pid once.
    processes: Vec<Process>,
    /// The fds that get a row: the notable ones and every one an edge meets.
    shown: BTreeSet<FdRef>,
    others: BTreeMap<i32, Other>,
    /// Some end is held outside by a process that was not found.
    unknown: bool,
    /// Sorted, each pair of ends once.
    edges: Vec<Edge>,
}

impl Graph {
    fn new(mut processes: Vec<Process>) -> Graph {
        // A stable sort: a pid given twice keeps its first plan.
        processes.sort_by_key(|p| p.pid);
        processes.dedup_by_key(|p| p.pid);
        let mut links = Links::new(&processes);
        for p in &processes {
            for row in &p.rows {
                links.peer(p.pid, row);
            }
        }
        links.shared(&processes);
        let Links { rows, others, unknown, edges, .. } = links;
        let mut shown: BTreeSet<FdRef> = rows.iter().filter(|(_, row)| row.notable).map(|(&at, _)| at).collect();
        for edge in edges.values() {
            for end in [edge.tail, edge.head] {
                if let End::Pictured { pid, fd: Some(fd) } = end {
                    let at = FdRef { pid, fd };
                    if rows.contains_key(&at) {
                        shown.insert(at);
                    }
                }
            }
        }
        let mut edges: Vec<Edge> = edges.into_values().collect();
        edges.sort();
        Graph { processes, shown, others, unknown, edges }
    }
}

/// The edges as they are found, each pair of ends once.
struct Links<'a> {
    rows: BTreeMap<FdRef, &'a Row>,
    pictured: BTreeSet<i32>,
    others: BTreeMap<i32, Other>,
    unknown: bool,
    /// By the pair of ends (in order) and whether the edge is for a shared open file.
    edges: BTreeMap<(End, End, bool), Edge>,
}

impl<'a> Links<'a> {
    fn new(processes: &'a [Process]) -> Links<'a> {
        let rows = processes
            .iter()
            .flat_map(|p| p.rows.iter().map(move |row| (FdRef { pid: p.pid, fd: row.fd }, row)))
            .collect();
        let pictured = processes.iter().map(|p| p.pid).collect();
        Links { rows, pictured, others: BTreeMap::new(), unknown: false, edges: BTreeMap::new() }
    }

    /// The end at an fd of a process: in the picture, or a process of its own beside it.
    fn end(&mut self, pid: i32, fd: Option<i32>, outside: bool, comm: Option<&String>) -> End {
        if self.pictured.contains(&pid) {
            return End::Pictured { pid, fd };
        }
        let other = self.others.entry(pid).or_default();
        other.fds.extend(fd);
        other.outside |= outside;
        if other.comm.is_none() {
            other.comm = comm.cloned();
        }
        End::Other { pid, fd }
    }

    fn action(&self, end: End) -> Option<ActionWord> {
        self.row(end).and_then(|row| row.word)
    }

    fn row(&self, end: End) -> Option<&'a Row> {
        match end {
            End::Pictured { pid, fd: Some(fd) } => self.rows.get(&FdRef { pid, fd }).copied(),
            _ => None,
        }
    }

    /// The edge from an fd to its other end, unless the pair is drawn already.
    fn peer(&mut self, pid: i32, row: &Row) {
        let Some(peer) = &row.peer else { return };
        let here = End::Pictured { pid, fd: Some(row.fd) };
        let there = match (peer.pid, peer.outside) {
            (Some(peer_pid), outside) => self.end(peer_pid, peer.fd, outside, peer.comm.as_ref()),
            (None, true) => {
                self.unknown = true;
                End::Unknown
            }
            // Inside, but no process named: nothing to draw to.
            (None, false) => return,
        };
        let key = (here.min(there), here.max(there), false);
        if self.edges.contains_key(&key) {
            return;
        }
        let there_end = self.row(there).and_then(|r| r.end);
        // Which way data flows, when the access modes say: a write-only end faces a read-only one (or one
        // not known).
        let (tail, head, line) = match (row.end, there_end) {
            (Some(Access::Wo), Some(Access::Ro) | None) => (here, there, Line::Flow),
            (Some(Access::Ro), Some(Access::Wo) | None) => (there, here, Line::Flow),
            _ => (key.0, key.1, Line::Ends),
        };
        let word = worse(row.word, self.action(there));
        self.edges.insert(key, Edge { tail, head, line, word });
    }

    /// The fds sharing one open file, chained in order by dashed edges (a chain, not every pair: ten
    /// processes holding one terminal get nine edges, not forty-five).
    fn shared(&mut self, processes: &[Process]) {
        let mut union = Union::default();
        for p in processes {
            for row in &p.rows {
                for &other in &row.shared_with {
                    union.join(FdRef { pid: p.pid, fd: row.fd }, other);
                }
            }
        }
        for group in union.groups() {
            for pair in group.windows(2) {
                let [a, b] = [pair[0], pair[1]].map(|at| self.end(at.pid, Some(at.fd), false, None));
                let word = worse(self.action(a), self.action(b));
                self.edges.entry((a, b, true)).or_insert(Edge { tail: a, head: b, line: Line::Shared, word });
            }
        }
    }
}

/// Sets of fds joined by pairs (union-find; each set's root is its smallest fd).
#[derive(Default)]
struct Union {
    parent: BTreeMap<FdRef, FdRef>,
}

impl Union {
    fn root(&self, mut at: FdRef) -> FdRef {
        while let Some(&up) = self.parent.get(&at).filter(|&&up| up != at) {
            at = up;
        }
        at
    }

    fn join(&mut self, a: FdRef, b: FdRef) {
        let (ra, rb) = (self.root(a), self.root(b));
        self.parent.entry(a).or_insert(a);
        self.parent.entry(b).or_insert(b);
        let (low, high) = (ra.min(rb), ra.max(rb));
        self.parent.insert(high, low);
    }

    /// Each set of two or more fds, sorted.
    fn groups(&self) -> Vec<Vec<FdRef>> {
        let mut groups: BTreeMap<FdRef, Vec<FdRef>> = BTreeMap::new();
        for &at in self.parent.keys() {
            groups.entry(self.root(at)).or_default().push(at);
        }
        groups.into_values().filter(|g| g.len() > 1).collect()
    }
}

/// The action that says more about a link: see [`weight`].
fn worse(a: Option<ActionWord>, b: Option<ActionWord>) -> Option<ActionWord> {
    if weight(b) > weight(a) { b } else { a }
}

/// How much an end's action says about its link: a rejected end stops the checkpoint; one the restorer
/// must hand in needs a hand; a closed one is lost; a plugin's is up to the plugin; the rest come back.
fn weight(word: Option<ActionWord>) -> u8 {
    match word {
        Some(ActionWord::Reject) => 5,
        Some(ActionWord::Inherit) => 4,
        Some(ActionWord::Close) => 3,
        Some(ActionWord::Plugin) => 2,
        Some(ActionWord::Reopen | ActionWord::Contents | ActionWord::Recreate) => 1,
        None => 0,
    }
}

/// An action's colours: for lines and words, and for a row's background.
fn colours(word: Option<ActionWord>) -> (&'static str, &'static str) {
    match word {
        Some(ActionWord::Reject) => ("#c62828", "#f9d6d5"),
        Some(ActionWord::Inherit) => ("#e65100", "#fde2c4"),
        Some(ActionWord::Close) => ("#757575", "#e4e4e4"),
        Some(ActionWord::Plugin) => ("#1565c0", "#d5e3f6"),
        Some(ActionWord::Reopen | ActionWord::Contents | ActionWord::Recreate) => ("#2e7d32", "#d7f0d4"),
        None => ("#000000", "#ffffff"),
    }
}

const TABLE: &str = r#"<table border="0" cellborder="1" cellspacing="0" cellpadding="3">"#;
const TITLE_FILL: &str = "#e8e8e8";

impl Graph {
    fn to_dot(&self) -> String {
        let mut out = String::with_capacity(1024 + 256 * (self.shown.len() + self.edges.len()));
        out.push_str("digraph crrules {\n  rankdir=LR;\n");
        out.push_str("  node [shape=plaintext, fontname=\"Helvetica,Arial,sans-serif\", fontsize=10];\n");
        out.push_str("  edge [penwidth=1.5];\n");
        legend(&mut out);
        for p in &self.processes {
            self.process(&mut out, p);
        }
        if self.unknown || self.others.values().any(|o| o.outside) {
            out.push_str("  subgraph cluster_outside {\n");
            out.push_str("    label=\"outside the checkpoint\"; style=dashed; color=\"#757575\";\n");
            out.push_str("    fontname=\"Helvetica,Arial,sans-serif\"; fontsize=10;\n");
            for (&pid, other) in self.others.iter().filter(|(_, o)| o.outside) {
                other_process(&mut out, "    ", pid, other);
            }
            if self.unknown {
                let _ = writeln!(
                    out,
                    "    \"outside\" [label=<{TABLE}<tr><td>outside (unknown process)</td></tr></table>>];"
                );
            }
            out.push_str("  }\n");
        }
        for (&pid, other) in self.others.iter().filter(|(_, o)| !o.outside) {
            other_process(&mut out, "  ", pid, other);
        }
        for edge in &self.edges {
            self.edge(&mut out, edge);
        }
        out.push_str("}\n");
        out
    }

    /// A process's box: its title, a row per shown fd, and a count of the others by action.
    fn process(&self, out: &mut String, p: &Process) {
        let title_fill = if p.rejected { colours(Some(ActionWord::Reject)).1 } else { TITLE_FILL };
        let _ = writeln!(out, "  \"p{}\" [label=<{TABLE}", p.pid);
        let _ = writeln!(
            out,
            "    <tr><td colspan=\"3\" bgcolor=\"{title_fill}\"><b>{} ({})</b></td></tr>",
            p.pid,
            html(&p.comm)
        );
        let mut hidden: BTreeMap<Option<ActionWord>, usize> = BTreeMap::new();
        for row in &p.rows {
            if !self.shown.contains(&FdRef { pid: p.pid, fd: row.fd }) {
                *hidden.entry(row.word).or_default() += 1;
                continue;
            }
            let (ink, fill) = colours(row.word);
            let (fd, target, word) = (row.fd, html(&row.target), row.word.map_or("-", ActionWord::name));
            let _ = writeln!(
                out,
                "    <tr><td port=\"i{fd}\" bgcolor=\"{fill}\" align=\"right\">{fd}</td>\
                 <td bgcolor=\"{fill}\" align=\"left\">{target}</td>\
                 <td port=\"o{fd}\" bgcolor=\"{fill}\"><font color=\"{ink}\">{word}</font></td></tr>"
            );
        }
        let count: usize = hidden.values().sum::<usize>() + p.vanished;
        if count > 0 {
            let mut parts: Vec<String> =
                hidden.iter().filter_map(|(word, n)| Some(format!("{n} {}", word.as_ref()?.name()))).collect();
            if p.vanished > 0 {
                parts.push(format!("{} closed during the scan", p.vanished));
            }
            let noun = if count == 1 { "fd" } else { "fds" };
            let breakdown = if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) };
            let _ = writeln!(
                out,
                "    <tr><td colspan=\"3\" align=\"left\"><font color=\"#555555\">{count} other {noun}{breakdown}</font></td></tr>"
            );
        }
        out.push_str("  </table>>];\n");
    }

    fn edge(&self, out: &mut String, edge: &Edge) {
        // Both ends in one box: the edge leaves and comes back on its right.
        let same =
            matches!((edge.tail, edge.head), (End::Pictured { pid: a, .. }, End::Pictured { pid: b, .. }) if a == b);
        let tail = self.point(edge.tail, true);
        let head = self.point(edge.head, same);
        let ink = colours(edge.word).0;
        let style = match edge.line {
            Line::Flow => "",
            Line::Ends => ", dir=none",
            Line::Shared => ", dir=none, style=dashed",
        };
        let _ = writeln!(out, "  {tail} -> {head} [color=\"{ink}\"{style}];");
    }

    /// Where an edge meets an end: a row's right side (`leaving`) or left side, or a box.
    fn point(&self, end: End, leaving: bool) -> String {
        let (port, side) = if leaving { ('o', 'e') } else { ('i', 'w') };
        match end {
            End::Pictured { pid, fd: Some(fd) } if self.shown.contains(&FdRef { pid, fd }) => {
                format!("\"p{pid}\":\"{port}{fd}\":{side}")
            }
            End::Pictured { pid, .. } => format!("\"p{pid}\""),
            End::Other { pid, fd: Some(fd) } => format!("\"o{pid}\":\"f{fd}\":{side}"),
            End::Other { pid, fd: None } => format!("\"o{pid}\""),
            End::Unknown => "\"outside\"".to_owned(),
        }
    }
}

/// A process not in the picture: its title and a row per fd an edge meets.
fn other_process(out: &mut String, indent: &str, pid: i32, other: &Other) {
    let title = match &other.comm {
        Some(comm) => format!("{pid} ({})", html(comm)),
        None => pid.to_string(),
    };
    let style = if other.outside { "" } else { ", style=dashed" };
    let _ = write!(out, "{indent}\"o{pid}\" [label=<{TABLE}<tr><td bgcolor=\"{TITLE_FILL}\"><b>{title}</b></td></tr>");
    if !other.outside {
        out.push_str("<tr><td><i>checked, but not read</i></td></tr>");
    }
    for fd in &other.fds {
        let _ = write!(out, "<tr><td port=\"f{fd}\">fd {fd}</td></tr>");
    }
    let _ = writeln!(out, "</table>>{style}];");
}

/// What the colours and lines mean.
fn legend(out: &mut String) {
    let _ = writeln!(out, "  \"legend\" [label=<{TABLE}");
    out.push_str("    <tr><td colspan=\"2\"><b>legend</b></td></tr>\n");
    let actions: [(ActionWord, &str, &str); 5] = [
        (ActionWord::Reject, "reject", "stops the checkpoint"),
        (ActionWord::Inherit, "inherit", "handed in by the restorer"),
        (ActionWord::Recreate, "recreate, reopen, contents", "saved and brought back"),
        (ActionWord::Plugin, "plugin", "saved by a plugin"),
        (ActionWord::Close, "close", "not brought back"),
    ];
    for (word, name, meaning) in actions {
        let (ink, fill) = colours(Some(word));
        let _ = writeln!(
            out,
            "    <tr><td bgcolor=\"{fill}\"><font color=\"{ink}\">{name}</font></td><td align=\"left\">{meaning}</td></tr>"
        );
    }
    for (line, meaning) in [
        ("&#8212;&#8212;&#9654;", "a pipe, from the writer to the reader"),
        ("&#8212;&#8212;&#8212;", "the two ends of a socket or terminal"),
        ("- - - -", "fds sharing one open file"),
    ] {
        let _ = writeln!(out, "    <tr><td>{line}</td><td align=\"left\">{meaning}</td></tr>");
    }
    out.push_str(
        "    <tr><td colspan=\"2\" align=\"left\">a line takes the colour of its end that matters most</td></tr>\n",
    );
    out.push_str("  </table>>];\n");
}

/// Text made safe inside an HTML-like label: markup characters as entities, a backslash (with which
/// escaped text shows bytes, `\xff`) as `&#92;`, and the two characters that escaped text keeps but XML
/// forbids (U+FFFE, U+FFFF) spelled out as escaped text spells others.
fn html(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\\', '\u{fffe}', '\u{ffff}']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\\' => out.push_str("&#92;"),
            '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "&#92;u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Graphviz's `dot` program, found on PATH.
#[derive(Debug)]
pub struct Graphviz {
    program: PathBuf,
}

impl Graphviz {
    /// The first executable `dot` in a directory of PATH.
    pub fn find() -> Option<Graphviz> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join("dot"))
            .find(|program| is_executable(program))
            .map(|program| Graphviz { program })
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Starts `dot -Tsvg`, which reads a graph from the drawing's input and writes SVG to standard output.
    pub fn draw_svg(&self) -> std::io::Result<Drawing> {
        let child = Command::new(&self.program).arg("-Tsvg").stdin(Stdio::piped()).spawn()?;
        Ok(Drawing { child })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running `dot`.
#[derive(Debug)]
pub struct Drawing {
    child: Child,
}

impl Drawing {
    /// Where the graph goes; given once (`dot` draws when it is dropped).
    pub fn input(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits for `dot` to finish drawing.
    pub fn wait(mut self) -> std::io::Result<ExitStatus> {
        drop(self.child.stdin.take());
        self.child.wait()
    }
}

#[cfg(test)]
mod tests {
    //! Pictures of hand-made plans (JSON, as `check --format json` writes them: each fd given only what
    //! the case is about), read back through the edges and rows of the DOT text.

    use super::*;
    use serde_json::Value;

    /// Plans from JSON objects, one per process (spread over lines here to be read); every fd gets
    /// `deleted`, `flags` and `cloexec` unless it says otherwise.
    fn plans(text: &str) -> Vec<ProcessPlan> {
        let mut plans = Vec::new();
        for plan in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            let mut plan = plan.unwrap_or_else(|e| panic!("{text}: {e}"));
            for fd in plan["fds"].as_array_mut().expect("fds") {
                let fd = fd.as_object_mut().expect("an fd object");
                for (key, value) in
                    [("deleted", Value::Bool(false)), ("flags", Value::Array(vec![])), ("cloexec", Value::Bool(false))]
                {
                    fd.entry(key).or_insert(value);
                }
            }
            plans.push(serde_json::from_value(plan.clone()).unwrap_or_else(|e| panic!("{plan}: {e}")));
        }
        plans
    }

    fn picture(plans: &[ProcessPlan]) -> String {
        Graph::new(plans.iter().map(Process::new).collect()).to_dot()
    }

    /// The name a test gives each colour of a line.
    fn colour_name(hex: &str) -> &'static str {
        let words = [
            (ActionWord::Reject, "red"),
            (ActionWord::Inherit, "orange"),
            (ActionWord::Recreate, "green"),
            (ActionWord::Close, "grey"),
            (ActionWord::Plugin, "blue"),
        ];
        words.iter().find(|(w, _)| colours(Some(*w)).0 == hex).map_or("black", |(_, name)| name)
    }

    /// An edge's end as `node:fd` (a row's port without its side), or the node alone.
    fn end(text: &str) -> String {
        let quoted: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
        match quoted[..] {
            [node] => node.to_owned(),
            [node, port] => format!("{node}:{}", &port[1..]),
            _ => panic!("not an edge's end: {text}"),
        }
    }

    /// Every edge of a DOT text as `TAIL -> HEAD LINE COLOUR`: LINE is `arrow`, `line` (no arrow) or
    /// `dashed` (no arrow); sorted.
    fn edges(dot: &str) -> Vec<String> {
        let mut edges = Vec::new();
        for line in dot.lines().filter(|l| l.contains(" -> ")) {
            let (ends, attrs) = line.trim().split_once(" [").expect("attributes");
            let (tail, head) = ends.split_once(" -> ").expect("an edge");
            let attrs: BTreeMap<&str, &str> = attrs
                .trim_end_matches("];")
                .split(", ")
                .map(|kv| kv.split_once('=').expect("key=value"))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            let drawn = match (attrs.get("dir"), attrs.get("style")) {
                (None, None) => "arrow",
                (Some(&"none"), None) => "line",
                (Some(&"none"), Some(&"dashed")) => "dashed",
                other => panic!("unexpected line {other:?}: {line}"),
            };
            edges.push(format!("{} -> {} {drawn} {}", end(tail), end(head), colour_name(attrs["color"])));
        }
        edges.sort();
        edges
    }

    /// A node's statement, from its id to its closing `];`.
    fn node<'a>(dot: &'a str, id: &str) -> &'a str {
        let start = dot.find(&format!("\"{id}\" [label=")).unwrap_or_else(|| panic!("no node {id} in\n{dot}"));
        let len = dot[start..].find("];").expect("the node's end");
        &dot[start..start + len + 2]
    }

    /// A process's row for an fd.
    fn row(dot: &str, pid: i32, fd: i32) -> Option<&str> {
        node(dot, &format!("p{pid}")).lines().find(|l| l.contains(&format!("<td port=\"i{fd}\"")))
    }

    /// The background of a row: which action's fill it is.
    fn fill_name(row: &str) -> &'static str {
        let words = [
            (ActionWord::Reject, "red"),
            (ActionWord::Inherit, "orange"),
            (ActionWord::Recreate, "green"),
            (ActionWord::Close, "grey"),
            (ActionWord::Plugin, "blue"),
        ];
        words
            .iter()
            .find(|(w, _)| row.contains(&format!("bgcolor=\"{}\"", colours(Some(*w)).1)))
            .map_or("none", |x| x.1)
    }

    /// `producer | filter | sink`, sink's output read by a logger outside; the three share the terminal
    /// (one open file, as a shell's children do), and sink holds a socket to some process not found.
    const PIPELINE: &str = r#"
{"pid": 12, "comm": "sink", "fds": [
  {"fd": 0, "kind": "pipe", "link": "pipe:[101]", "flags": ["O_RDONLY"], "peer": "inside", "peer_pid": 11, "peer_fd": 1, "peer_comm": "filter", "action": "recreate"},
  {"fd": 1, "kind": "pipe", "link": "pipe:[102]", "flags": ["O_WRONLY"], "peer": "outside", "peer_pid": 20, "peer_fd": 0, "peer_comm": "logger", "action": "recreate"},
  {"fd": 2, "kind": "chardev", "link": "/dev/pts/3", "path": "/dev/pts/3", "dev": "136:3", "shared_with": [{"pid": 10, "fd": 0}, {"pid": 11, "fd": 2}], "action": "inherit", "inherit": "pts"},
  {"fd": 4, "kind": "socket", "link": "socket:[300]", "socket": {"family": "unix", "type": "stream", "state": "established"}, "peer": "outside", "action": "recreate"}]}
{"pid": 10, "comm": "producer", "fds": [
  {"fd": 0, "kind": "chardev", "link": "/dev/pts/3", "path": "/dev/pts/3", "dev": "136:3", "shared_with": [{"pid": 11, "fd": 2}, {"pid": 12, "fd": 2}], "action": "inherit", "inherit": "pts"},
  {"fd": 1, "kind": "pipe", "link": "pipe:[100]", "flags": ["O_WRONLY"], "peer": "inside", "peer_pid": 11, "peer_fd": 0, "peer_comm": "filter", "action": "recreate"},
  {"fd": 3, "kind": "file", "link": "/etc/passwd", "path": "/etc/passwd", "action": "reopen"},
  {"fd": 4, "state": "vanished"}]}
{"pid": 11, "comm": "filter", "fds": [
  {"fd": 0, "kind": "pipe", "link": "pipe:[100]", "peer": "inside", "peer_pid": 10, "peer_fd": 1, "peer_comm": "producer", "action": "recreate"},
  {"fd": 1, "kind": "pipe", "link": "pipe:[101]", "flags": ["O_WRONLY"], "peer": "inside", "peer_pid": 12, "peer_fd": 0, "peer_comm": "sink", "action": "recreate"},
  {"fd": 2, "kind": "chardev", "link": "/dev/pts/3", "path": "/dev/pts/3", "dev": "136:3", "shared_with": [{"pid": 10, "fd": 0}, {"pid": 12, "fd": 2}], "action": "inherit", "inherit": "pts"}]}
"#;

    #[test]
    fn a_pipeline_flows_from_writer_to_reader_and_out_to_its_logger() {
        let dot = picture(&plans(PIPELINE));
        assert_eq!(
            edges(&dot),
            [
                // Each pair once, though both ends name each other.
                "p10:0 -> p11:2 dashed orange",
                "p10:1 -> p11:0 arrow green",
                "p11:1 -> p12:0 arrow green",
                "p11:2 -> p12:2 dashed orange",
                "p12:1 -> o20:0 arrow green",
                "p12:4 -> outside line green",
            ],
            "{dot}"
        );
        assert!(dot.starts_with("digraph crrules {\n  rankdir=LR;\n"), "{dot}");
        assert!(node(&dot, "p10").contains("<b>10 (producer)</b>"));
        // The outside: the logger with the fd the edge meets, and one node for the process not found.
        let cluster = &dot[dot.find("subgraph cluster_outside {").expect("the outside cluster")..];
        assert!(cluster.contains("label=\"outside the checkpoint\""), "{dot}");
        assert!(node(cluster, "o20").contains("<b>20 (logger)</b></td></tr><tr><td port=\"f0\">fd 0</td></tr>"));
        assert!(node(cluster, "outside").contains("outside (unknown process)"));
        // Rows: the pipe, terminal and socket ends; the file and the vanished fd are counted.
        assert_eq!(fill_name(row(&dot, 10, 0).unwrap()), "orange");
        assert_eq!(fill_name(row(&dot, 10, 1).unwrap()), "green");
        assert!(row(&dot, 10, 1).unwrap().contains(">pipe:[100]</td>"));
        assert!(row(&dot, 10, 1).unwrap().contains(">recreate</font>"));
        assert!(row(&dot, 12, 4).unwrap().contains(">unix stream established</td>"));
        assert_eq!(row(&dot, 10, 3), None);
        assert!(node(&dot, "p10").contains(">2 other fds: 1 reopen, 1 closed during the scan</font>"), "{dot}");
        assert!(!node(&dot, "p11").contains("other fd"));
        assert!(node(&dot, "legend").contains("stops the checkpoint"));
    }

    #[test]
    fn the_same_plans_in_any_order_give_the_same_text() {
        let mut plans = plans(PIPELINE);
        let first = picture(&plans);
        plans.reverse();
        assert_eq!(picture(&plans), first);
        plans.swap(0, 1);
        assert_eq!(picture(&plans), first);
        // Boxes by pid, then the outside, then the edges.
        let at = |text: &str| first.find(text).unwrap_or_else(|| panic!("{text}"));
        assert!(at("\"p10\" [") < at("\"p11\" [") && at("\"p11\" [") < at("\"p12\" ["));
        assert!(at("\"p12\" [") < at("subgraph cluster_outside") && at("subgraph cluster_outside") < at(" -> "));
    }

    /// A server forks a worker: a socketpair, one end each; the log file they share since the fork; the
    /// worker's own pipe to itself; a file only the server holds.
    const FORK: &str = r#"
{"pid": 30, "comm": "server", "fds": [
  {"fd": 3, "kind": "socket", "link": "socket:[500]", "socket": {"family": "unix", "type": "stream"}, "peer": "inside", "peer_pid": 31, "peer_fd": 4, "peer_comm": "worker", "action": "recreate"},
  {"fd": 5, "kind": "file", "link": "/var/log/app.log", "path": "/var/log/app.log", "flags": ["O_WRONLY", "O_APPEND"], "shared_with": [{"pid": 31, "fd": 5}], "action": "reopen"},
  {"fd": 6, "kind": "file", "link": "/srv/data", "path": "/srv/data", "action": "reopen"}]}
{"pid": 31, "comm": "worker", "fds": [
  {"fd": 4, "kind": "socket", "link": "socket:[501]", "socket": {"family": "unix", "type": "stream"}, "peer": "inside", "peer_pid": 30, "peer_fd": 3, "peer_comm": "server", "action": "recreate"},
  {"fd": 5, "kind": "file", "link": "/var/log/app.log", "path": "/var/log/app.log", "flags": ["O_WRONLY", "O_APPEND"], "shared_with": [{"pid": 30, "fd": 5}], "action": "reopen"},
  {"fd": 7, "kind": "pipe", "link": "pipe:[502]", "flags": ["O_RDONLY"], "peer": "inside", "peer_pid": 31, "peer_fd": 8, "action": "recreate"},
  {"fd": 8, "kind": "pipe", "link": "pipe:[502]", "flags": ["O_WRONLY"], "peer": "inside", "peer_pid": 31, "peer_fd": 7, "action": "recreate"}]}
"#;

    #[test]
    fn a_socketpair_across_a_fork_is_one_line_and_the_shared_log_one_dashed_line() {
        let dot = picture(&plans(FORK));
        assert_eq!(
            edges(&dot),
            ["p30:3 -> p31:4 line green", "p30:5 -> p31:5 dashed green", "p31:8 -> p31:7 arrow green"],
            "{dot}"
        );
        // Within one box the line leaves and comes back on the right: both ends are `o` ports.
        assert!(dot.contains("\"p31\":\"o8\":e -> \"p31\":\"o7\":e"), "{dot}");
        assert!(dot.contains("\"p30\":\"o3\":e -> \"p31\":\"i4\":w"), "{dot}");
        // A shared file gets a row; one held alone is counted.
        assert!(row(&dot, 30, 5).unwrap().contains(">/var/log/app.log</td>"));
        assert_eq!(row(&dot, 30, 6), None);
        assert!(node(&dot, "p30").contains(">1 other fd: 1 reopen</font>"));
        assert!(!dot.contains("cluster_outside"), "nothing is outside: {dot}");
    }

    #[test]
    fn fds_sharing_an_open_file_are_chained_once_however_they_list_each_other() {
        // fd 1 and 2 of one process (a `dup`) and fd 1 of its child; only some of them list the others.
        let dot = picture(&plans(
            r#"
{"pid": 71, "comm": "child", "fds": [{"fd": 1, "kind": "file", "link": "/tmp/out", "path": "/tmp/out", "action": "close"}]}
{"pid": 70, "comm": "parent", "fds": [
  {"fd": 1, "kind": "file", "link": "/tmp/out", "path": "/tmp/out", "shared_with": [{"pid": 70, "fd": 2}], "action": "reopen"},
  {"fd": 2, "kind": "file", "link": "/tmp/out", "path": "/tmp/out", "shared_with": [{"pid": 71, "fd": 1}], "action": "reopen"}]}
"#,
        ));
        assert_eq!(edges(&dot), ["p70:1 -> p70:2 dashed green", "p70:2 -> p71:1 dashed grey"], "{dot}");
        // The child's fd lists nothing itself, but an edge meets it: it gets a row.
        assert_eq!(fill_name(row(&dot, 71, 1).unwrap()), "grey");
        assert!(row(&dot, 71, 1).unwrap().contains(">close</font>"));
    }

    #[test]
    fn a_rejected_fd_is_red_and_so_is_every_line_it_ends() {
        let dot = picture(&plans(
            r#"
{"pid": 40, "comm": "profiler", "fds": [
  {"fd": 3, "kind": "perf_event", "link": "anon_inode:[perf_event]", "name": "[perf_event]", "action": "reject", "reason": "perf events cannot be checkpointed"},
  {"fd": 4, "kind": "socket", "link": "socket:[600]", "socket": {"family": "netlink"}, "peer": "inside", "peer_pid": 41, "peer_fd": 3, "action": "reject", "reason": "no rule matches"},
  {"fd": 5, "kind": "file", "link": "/dev/null", "path": "/dev/null", "action": "reopen"}]}
{"pid": 41, "comm": "agent", "fds": [
  {"fd": 3, "kind": "socket", "link": "socket:[601]", "socket": {"family": "unix"}, "peer": "inside", "peer_pid": 40, "peer_fd": 4, "action": "recreate"},
  {"fd": 6, "kind": "chardev", "link": "/dev/pts/1", "path": "/dev/pts/1", "dev": "136:1", "peer": "outside", "peer_pid": 1, "peer_fd": 9, "action": "inherit", "inherit": "pts"},
  {"fd": 7, "kind": "fifo", "link": "/run/ctl", "path": "/run/ctl", "flags": ["O_RDWR"], "shared_with": [{"pid": 41, "fd": 6}], "action": "close"}]}
"#,
        ));
        assert_eq!(
            edges(&dot),
            [
                // The rejected end outweighs the recreated one; inherit outweighs close.
                "p40:4 -> p41:3 line red",
                "p41:6 -> o1:9 line orange",
                "p41:6 -> p41:7 dashed orange",
            ],
            "{dot}"
        );
        let rejected = row(&dot, 40, 3).expect("a rejected fd is always shown");
        assert_eq!(fill_name(rejected), "red");
        assert!(rejected.contains(&format!("<font color=\"{}\">reject</font>", colours(Some(ActionWord::Reject)).0)));
        // The process that cannot be checkpointed has a red title; the other a plain one.
        let red_title =
            format!("<td colspan=\"3\" bgcolor=\"{}\"><b>40 (profiler)</b>", colours(Some(ActionWord::Reject)).1);
        assert!(node(&dot, "p40").contains(&red_title), "{dot}");
        assert!(node(&dot, "p41").contains(&format!("<td colspan=\"3\" bgcolor=\"{TITLE_FILL}\"><b>41 (agent)</b>")));
        // A FIFO opened read-write has no direction: no arrow.
        assert_eq!(fill_name(row(&dot, 41, 7).unwrap()), "grey");
    }

    #[test]
    fn names_that_are_not_text_are_escaped_for_people_and_then_for_graphviz() {
        // comm `a<b>"&\xff`; a FIFO at `/tmp/q"<&>\` + byte 0xff + U+FFFF; its other end held outside by a
        // process named `lo\ng` + byte 0xfe.
        let comm = hex(b"a<b>\"&\xff");
        let path = hex(&[b"/tmp/q\"<&>\\\xff".as_slice(), "\u{ffff}".as_bytes()].concat());
        let peer = hex(b"lo\ng\xfe");
        let dot = picture(&plans(&format!(
            r#"{{"pid": 50, "comm": {{"hex": "{comm}"}}, "fds": [{{"fd": 3, "kind": "fifo", "link": {{"hex": "{path}"}}, "path": {{"hex": "{path}"}}, "flags": ["O_WRONLY"], "peer": "outside", "peer_pid": 60, "peer_fd": 1, "peer_comm": {{"hex": "{peer}"}}, "action": "recreate"}}]}}"#
        )));
        assert!(node(&dot, "p50").contains("<b>50 (a&lt;b&gt;&quot;&amp;&#92;xff)</b>"), "{dot}");
        let fifo = row(&dot, 50, 3).unwrap();
        assert!(fifo.contains(">/tmp/q&quot;&lt;&amp;&gt;&#92;&#92;&#92;xff&#92;u{ffff}</td>"), "{fifo}");
        assert!(node(&dot, "o60").contains("<b>60 (lo&#92;ng&#92;xfe)</b>"), "{dot}");
        assert_eq!(edges(&dot), ["p50:3 -> o60:1 arrow green"]);
        // Nothing but the markup itself opens a tag or an entity.
        for line in dot.lines().filter(|l| l.contains("50 (") || l.contains("/tmp/q")) {
            let text: String = line.split('>').filter_map(|part| part.split('<').next()).collect();
            assert!(!text.contains('"') && !text.contains('\\'), "{line}");
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn html_escaping() {
        assert!(matches!(html("/dev/pts/3 (136:3)"), Cow::Borrowed(_)));
        assert_eq!(html(r#"a&b<c>"d"\e"#), "a&amp;b&lt;c&gt;&quot;d&quot;&#92;e");
        assert_eq!(html("\u{fffe}x\u{ffff}"), "&#92;u{fffe}x&#92;u{ffff}");
        assert_eq!(html("caf\u{e9} \u{1f600}"), "caf\u{e9} \u{1f600}");
    }

    #[test]
    fn an_inside_end_not_in_the_picture_is_drawn_apart() {
        // Process 81 was checked with 80 but exited before it was read.
        let dot = picture(&plans(
            r#"{"pid": 80, "comm": "parent", "fds": [{"fd": 3, "kind": "pipe", "link": "pipe:[9]", "flags": ["O_RDONLY"], "peer": "inside", "peer_pid": 81, "peer_fd": 1, "peer_comm": "gone", "action": "recreate"}]}"#,
        ));
        assert_eq!(edges(&dot), ["o81:1 -> p80:3 arrow green"]);
        assert!(!dot.contains("cluster_outside"), "{dot}");
        let other = node(&dot, "o81");
        assert!(
            other.contains("<b>81 (gone)</b>")
                && other.contains("checked, but not read")
                && other.ends_with(", style=dashed];")
        );
    }

    #[test]
    fn every_picture_is_read_by_graphviz_without_a_warning() {
        let Some(graphviz) = Graphviz::find() else {
            eprintln!("no Graphviz `dot` on PATH: the pictures are not drawn");
            return;
        };
        for (name, text) in [("pipeline", PIPELINE), ("fork", FORK)] {
            let dot = picture(&plans(text));
            let mut child = Command::new(graphviz.program())
                .arg("-Tsvg")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && err.is_empty(), "{name}: {err}\n{dot}");
            assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"), "{name}");
        }
    }
}
