//! Entry points for fuzzing: each takes raw input (bytes as a file, a link or a socket gives them) and runs
//! it through the parser that reads it in crrules, and through what reads the result next, as the scanner
//! or the binary does. None may panic, whatever the input. The fuzz targets in `fuzz/` call them, and so
//! does `tests/fuzz_corpus.rs`, which replays every corpus file on stable.
//!
//! Each returns whether the input was *accepted*: what a well-formed input gives (the meaning is in each
//! function's documentation). The replay test holds the corpus files named `ok-*` (real captures, the
//! shipped policy) to it.
//!
//! Not an API: only with the `fuzzing` feature, hidden from the docs. The parsers stay private to their
//! modules; this is the one door to them.

use crate::backend::Backend;
use crate::facts::{FdFacts, FileHandle, FileType};
use crate::image;
use crate::matcher::{CompiledMatcher, Matcher, Reference};
use crate::pipeline;
use crate::plan::{Decider, ProcessPlan};
use crate::proc::fdinfo::FdInfo;
use crate::proc::link::{self, LinkShape};
use crate::proc::{mountinfo, sockdiag};
use crrules_rules::diag::Diagnostic;
use crrules_rules::policy::{BUILTIN, builtin_name};
use crrules_rules::vocab::Kind;
use crrules_rules::{Source, Span, Validated};
use miette::{GraphicalReportHandler, GraphicalTheme};
use std::convert::Infallible;
use std::path::Path;
use std::sync::OnceLock;

pub use sockdiag::{Dump, raw_replies as sock_diag_replies};

/// What a policy file compiled to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    pub rules: usize,
    pub errors: usize,
}

impl Compiled {
    /// Accepted: at least one rule, and no error.
    pub fn accepted(&self) -> bool {
        self.rules > 0 && self.errors == 0
    }
}

/// A policy file's bytes -> rule set, compiled as `crrules check` compiles it, every diagnostic rendered
/// through miette's graphical handler as the binary renders it, and the rules compiled into a matcher.
/// Bytes that are not UTF-8 are refused as `crrules` refuses them (that diagnostic rendered too), then
/// compiled as lossy text, so that the parser sees every input. Every label must point inside the text, on
/// character boundaries, and every diagnostic must render.
pub fn rules(bytes: &[u8]) -> Compiled {
    read_policy(bytes, crrules_rules::compile)
}

/// [`rules`] with the whole-policy analysis `crrules lint` adds (shadowed, duplicate and self-contradicting
/// rules), its warnings rendered too. A target of its own: the analysis costs far more than the parse.
pub fn lint(bytes: &[u8]) -> Compiled {
    read_policy(bytes, crrules_rules::lint)
}

fn read_policy(bytes: &[u8], compile: fn(&[Source]) -> Validated) -> Compiled {
    let source = match Source::from_bytes("fuzz.rules", bytes.to_vec()) {
        Ok(source) => source,
        Err(refused) => {
            render(&refused);
            Source::new("fuzz.rules", String::from_utf8_lossy(bytes).into_owned())
        }
    };
    let validated = compile(std::slice::from_ref(&source));
    for d in &validated.diagnostics {
        check_labels(d, &source);
        render(d);
    }
    let errors = validated.diagnostics.iter().filter(|d| d.is_error()).count();
    let rules = validated.rules.rules().len();
    if errors == 0 {
        let _ = Decider::new(validated.rules);
    }
    Compiled { rules, errors }
}

/// Every label of `d` and of its related diagnostics points inside `source`'s text, on character boundaries.
fn check_labels(d: &Diagnostic, source: &Source) {
    for label in &d.labels {
        let span: Span = label.offset()..label.offset() + label.len();
        assert!(
            source.text.get(span.clone()).is_some(),
            "{}: label {span:?} is not a range of characters of a {}-byte text",
            d.code,
            source.text.len()
        );
    }
    for related in &d.related {
        check_labels(related, related.source.as_ref().unwrap_or(source));
    }
}

fn render(d: &Diagnostic) {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode()).with_width(80);
    let mut out = String::new();
    if let Err(e) = handler.render_report(&mut out, &d.drawable()) {
        panic!("{}: the diagnostic does not render: {e}", d.code);
    }
}

/// A `/proc/PID/fdinfo/N` text -> its fields, read as the scanner reads it (lossy UTF-8), then checked
/// against every kind, moved into facts and printed as JSON; file handles decoded. Accepted: the text has
/// the lines every fd's has (`pos`, `flags`, `mnt_id`).
pub fn fdinfo(bytes: &[u8]) -> bool {
    let info = FdInfo::parse(&String::from_utf8_lossy(bytes));
    for kind in Kind::ALL {
        let _ = info.fits(*kind);
    }
    let accepted = info.pos.is_some() && info.flags.is_some() && info.mnt_id.is_some();
    for watch in &info.inotify {
        let _ = watch.fhandle.as_ref().map(FileHandle::decode);
    }
    for mark in info.fanotify.iter().flat_map(|f| &f.marks) {
        let _ = mark.dev();
        let _ = mark.fhandle.as_ref().map(FileHandle::decode);
    }
    // `apply` keeps epoll targets and inotify watches only for their own kinds.
    for (kind, link) in
        [(Kind::Epoll, "anon_inode:[eventpoll]"), (Kind::Inotify, "anon_inode:inotify"), (Kind::File, "/x")]
    {
        let mut facts = FdFacts::new(3, kind, link);
        info.clone().apply(&mut facts);
        serde_json::to_string(&facts).expect("facts always serialise");
    }
    accepted
}

/// A `/proc/PID/mountinfo` text -> mount ids to filesystem types (read as lossy UTF-8, as the scanner reads
/// it), and every mount with its device, root and mount point (read as bytes, as file handles are resolved).
/// Accepted: every line that is not empty is a mount.
pub fn mountinfo(bytes: &[u8]) -> bool {
    let types = mountinfo::fs_types(&String::from_utf8_lossy(bytes));
    let mounts = mountinfo::mounts(bytes);
    let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    lines > 0 && mounts.len() == lines && types.len() == lines
}

/// A `/proc/PID/fd/N` link's text -> its shape, and everything the scanner then asks of that shape for
/// each file type `stat` may give. Accepted: an absolute path or one of the special forms (`pipe:[INO]`,
/// `socket:[INO]`, `anon_inode:NAME`, `TYPE:[INO]`).
pub fn link(bytes: &[u8]) -> bool {
    let shape = link::classify(bytes);
    let _ = link::link_ino(&shape);
    for file_type in [
        FileType::Regular,
        FileType::Directory,
        FileType::Char,
        FileType::Block,
        FileType::Fifo,
        FileType::Socket,
        FileType::Symlink,
        FileType::None,
    ] {
        let _ = link::type_fits(&shape, file_type);
        let _ = link::path_kind(file_type);
    }
    match shape {
        LinkShape::Path(path) => {
            assert_eq!(path, bytes, "a path is the link's own bytes");
            let _ = (link::is_root_entry(path), link::is_memfd_path(path), link::pseudo_path_anon(path));
            path.starts_with(b"/")
        }
        LinkShape::Anon(name) => {
            let _ = (link::anon_kind(name), link::bracketed(name));
            true
        }
        LinkShape::Pipe(_) | LinkShape::Socket(_) | LinkShape::Ns { .. } => true,
    }
}

/// The bytes of one `recv` from NETLINK_SOCK_DIAG -> sockets by inode, as a dump reads them: the batch
/// parsed for the request whose sequence number the first message carries, sockets without an inode
/// dropped, unix peers named; then the bytes read as one diag message too. Accepted: the batch held at
/// least one socket and no error.
pub fn sock_diag(bytes: &[u8]) -> bool {
    let seq = bytes.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(1, u32::from_ne_bytes);
    let mut table = sockdiag::SockTable::default();
    let batch = sockdiag::parse_batch(bytes, seq, &mut table);
    table.by_ino.remove(&0);
    sockdiag::name_unix_peers(&mut table);
    for facts in table.by_ino.values() {
        let _ = sockdiag::dump_for(facts);
        serde_json::to_string(facts).expect("socket facts always serialise");
    }
    let _ = sockdiag::parse_diag(bytes);
    !matches!(batch, sockdiag::Batch::Failed(_)) && !table.by_ino.is_empty()
}

/// The default policy (the shipped `policy/*.rules`), compiled once: the decider `crrules check` would
/// use, and a second compiled matcher to hold against the reference interpreter.
struct DefaultPolicy {
    decider: Decider,
    compiled: CompiledMatcher,
}

fn default_policy() -> &'static DefaultPolicy {
    static POLICY: OnceLock<DefaultPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let sources: Vec<Source> = BUILTIN.iter().map(|(name, text)| Source::new(builtin_name(name), *text)).collect();
        let validated = crrules_rules::compile(&sources);
        assert!(!validated.has_errors(), "the default policy compiles: {:?}", validated.diagnostics);
        let compiled = CompiledMatcher::new(&validated.rules);
        DefaultPolicy { decider: Decider::new(validated.rules), compiled }
    })
}

/// What `check --facts FILE --format json` does with each plan: the compiled matcher must pick the rule
/// the reference interpreter picks, and the JSON written must read back as the same plan.
struct CheckJson {
    policy: &'static DefaultPolicy,
    processes: usize,
}

impl Backend for CheckJson {
    type Error = Infallible;

    fn process(&mut self, plan: &ProcessPlan) -> Result<(), Infallible> {
        let reference = Reference::new(self.policy.decider.rules());
        for facts in plan.fds.iter().filter_map(|fd| fd.facts()) {
            assert_eq!(self.policy.compiled.first_match(facts), reference.first_match(facts), "{facts:?}");
        }
        let json = serde_json::to_string(plan).expect("a plan always serialises");
        let back: ProcessPlan =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}\ndoes not read back: {e}"));
        assert_eq!(back, *plan, "{json}");
        self.processes += 1;
        Ok(())
    }
}

/// A facts file (`crrules facts` output: one process object per line) -> plans, read by the reader
/// `check --facts` uses, decided by the default policy and written as JSON. Accepted: at least one process,
/// and every line read.
pub fn facts(bytes: &[u8]) -> bool {
    let policy = default_policy();
    let reader = std::io::Cursor::new(bytes.to_vec());
    let mut source = crate::source::FactsFile::from_reader(Path::new("fuzz.jsonl"), Box::new(reader));
    let mut check = CheckJson { policy, processes: 0 };
    let read = pipeline::run(Some(&policy.decider), &mut source, &mut check);
    read.is_ok() && check.processes > 0
}

/// An image's `manifest.json` -> the manifest, read as `crrules restore` reads a verified image (every data
/// file it names taken as listed in `SHA256SUMS`), then written as `crrules dump` writes it, which must
/// read back the same. Accepted: the manifest was read.
pub fn image_manifest(bytes: &[u8]) -> bool {
    let Ok(manifest) = image::read_manifest(bytes, |_| true) else { return false };
    let json = serde_json::to_vec(&manifest).expect("a manifest always serialises");
    let back = image::read_manifest(&json, |_| true).expect("a written manifest reads back");
    assert_eq!(back, manifest);
    true
}
