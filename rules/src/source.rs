//! A policy file's text, named as users see it, shared cheaply between the rule set and its diagnostics,
//! and the byte ranges that every stage uses to point into it. Diagnostics render through it: it finds a
//! span's line in an index of line starts built once per file, so that showing thousands of diagnostics
//! into one large file does not count lines from the top for each; and where a line is too long to draw,
//! an excerpt cuts it down to the text around the labels.

use crate::diag::Diagnostic;
use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A byte range in a source's text: where a syntax tree node, a rule or a diagnostic's label is.
pub type Span = std::ops::Range<usize>;

/// One policy file's text.
#[derive(Clone, Debug)]
pub struct Source {
    /// The name shown in diagnostics and in `FILE:LINE` (a path, or `<builtin>/NAME` for the compiled-in
    /// default policy).
    pub name: Arc<str>,
    pub text: Arc<str>,
    /// Where each line starts, built when a diagnostic is first rendered; shared by the clones.
    lines: Arc<LineStarts>,
}

/// The byte offsets at which the lines of a text start, with miette's idea of a line break (`\n`, `\r\n`
/// or a lone `\r`).
#[derive(Default)]
struct LineStarts(OnceLock<Vec<usize>>);

impl fmt::Debug for LineStarts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LineStarts")
    }
}

impl LineStarts {
    fn of(&self, text: &str) -> &[usize] {
        self.0.get_or_init(|| {
            let bytes = text.as_bytes();
            let mut starts = vec![0];
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'\r' if bytes.get(i + 1) == Some(&b'\n') => i += 1,
                    b'\r' | b'\n' => {}
                    _ => {
                        i += 1;
                        continue;
                    }
                }
                i += 1;
                starts.push(i);
            }
            starts
        })
    }
}

impl Source {
    /// A source from text already known to be UTF-8.
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Source {
        Source { name: name.into(), text: text.into(), lines: Arc::default() }
    }

    /// A source from a file's bytes. A leading UTF-8 byte-order mark (what some Windows editors write) is
    /// skipped, so that line 1 starts where it looks like it starts. Invalid UTF-8 is an error in the file:
    /// it names the byte offset (counted in the file, mark included), and points at the first bad byte in
    /// the text decoded with replacement characters.
    #[expect(clippy::result_large_err, reason = "rare, and the diagnostic goes straight into a list of them")]
    pub fn from_bytes(name: impl Into<Arc<str>>, mut bytes: Vec<u8>) -> Result<Source, Diagnostic> {
        const BOM: &[u8] = b"\xef\xbb\xbf";
        let name = name.into();
        let skipped = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
        bytes.drain(..skipped);
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Source::new(name, text)),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let bytes = e.as_bytes();
                let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
                let message = format!(
                    "`{name}` is not valid UTF-8: byte offset {} (line {line}) is {:#04x}",
                    at + skipped,
                    bytes[at]
                );
                let shown: String = String::from_utf8_lossy(bytes).into_owned();
                // Everything before `at` is valid, so it sits at the same offset in the decoded text, where
                // the bad bytes became one U+FFFD.
                let source = Source::new(name, shown);
                Err(Diagnostic::error("crrules::source::invalid_utf8", message)
                    .with_source(&source)
                    .with_label(at..at + '\u{fffd}'.len_utf8(), "not UTF-8")
                    .with_help("rule files are UTF-8 text; check that this is the file you meant, or convert it (`iconv -t UTF-8`)"))
            }
        }
    }

    /// The name shown in diagnostics.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl SourceCode for Source {
    /// What miette reads for `str`, but from a few lines around the span found by binary search in the
    /// line index: the same lines, line numbers and columns, at a cost that does not grow with the file.
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text = self.text.as_bytes();
        let starts = self.lines.of(&self.text);
        let line_of = |offset: usize| starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let end = span.offset() + span.len().saturating_sub(1);
        // A line more on each side than miette looks at, so that it stops where it would in the whole text.
        let first = line_of(span.offset()).saturating_sub(before + 1);
        let last = line_of(end).saturating_add(after + 2);
        let (from, to) = (starts[first], starts.get(last + 1).copied().unwrap_or(text.len()));
        let inner = if span.offset() <= text.len() && end <= text.len() {
            let local = SourceSpan::new((span.offset() - from).into(), span.len());
            let inner = text[from..to].read_span(&local, before, after)?;
            let at = SourceSpan::new((inner.span().offset() + from).into(), inner.span().len());
            (inner.data(), at, inner.line() + first, inner.column(), inner.line_count() + first)
        } else {
            let inner = text.read_span(span, before, after)?;
            (inner.data(), *inner.span(), inner.line(), inner.column(), inner.line_count())
        };
        let (data, at, line, column, line_count) = inner;
        let contents = MietteSpanContents::new_named(self.name.to_string(), data, at, line, column, line_count);
        Ok(Box::new(contents.with_language("crrules")))
    }
}

/// Lines longer than this many bytes are cut around the labels when drawn. miette draws a label with
/// format widths, which Rust caps at 65,535 columns (a label further right panics inside miette); and no
/// one reads a line that long anyway.
const LONG_LINE: usize = 1024;
/// Bytes kept on each side of a label's start and end on a line that is cut.
const KEEP: usize = 48;
/// Lines kept around the labels (miette shows one).
const CONTEXT: usize = 2;
/// What stands in a cut line for the bytes left out.
const CUT: &str = "…";

/// The lines of a source around some labels, those too long to draw cut down to the text around the
/// labels, each cut shown as `…`. Offsets into it come from [`Excerpt::map`]; the line numbers and
/// columns it gives miette are the source's, so that a diagnostic still says where in the file it is.
#[derive(Debug)]
pub(crate) struct Excerpt {
    source: Source,
    text: String,
    /// The source's line at which `text` starts.
    first_line: usize,
    /// The source offset at which `text` starts.
    base: usize,
    /// The byte ranges of the source left out, in order; each stands as [`CUT`] in `text`.
    cuts: Vec<Span>,
}

impl Source {
    /// What to draw for labels at `spans`: `None` when every line around them is short enough to draw
    /// as it is, else an excerpt with the long lines cut.
    pub(crate) fn excerpt(&self, spans: &[Span]) -> Option<Excerpt> {
        let text = &*self.text;
        let starts = self.lines.of(text);
        let line_of = |offset: usize| starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let end_of = |line: usize| starts.get(line + 1).copied().unwrap_or(text.len());
        let clamp = |o: usize| o.min(text.len());
        let spans: Vec<Span> = spans.iter().map(|s| clamp(s.start)..clamp(s.end.max(s.start))).collect();
        let first = spans.iter().map(|s| line_of(s.start)).min()?.saturating_sub(CONTEXT);
        let last = (spans.iter().map(|s| line_of(s.end)).max()? + CONTEXT).min(starts.len() - 1);
        if (first..=last).all(|line| end_of(line) - starts[line] <= LONG_LINE) {
            return None;
        }
        let mut out = String::new();
        let mut cuts = Vec::new();
        for (line, &from) in starts.iter().enumerate().take(last + 1).skip(first) {
            let to = end_of(line);
            if to - from <= LONG_LINE {
                out.push_str(&text[from..to]);
                continue;
            }
            let body = from + text[from..to].trim_end_matches(['\r', '\n']).len();
            // Text around the line's start and around every label start and end on the line.
            let mut points = vec![from];
            points.extend(spans.iter().flat_map(|s| [s.start, s.end]).filter(|p| (from..=body).contains(p)));
            points.sort_unstable();
            let mut kept: Vec<Span> = Vec::new();
            for p in points {
                let start = floor(text, p.saturating_sub(KEEP).max(from));
                let end = ceil(text, (p + KEEP).min(body));
                match kept.last_mut() {
                    Some(k) if start <= k.end + CUT.len() => k.end = k.end.max(end),
                    _ => kept.push(start..end),
                }
            }
            let mut at = from;
            for k in kept {
                if k.start > at {
                    cuts.push(at..k.start);
                    out.push_str(CUT);
                }
                out.push_str(&text[k.clone()]);
                at = k.end;
            }
            if at < body {
                cuts.push(at..body);
                out.push_str(CUT);
            }
            out.push_str(&text[body..to]);
        }
        Some(Excerpt { source: self.clone(), text: out, first_line: first, base: starts[first], cuts })
    }
}

/// The char boundary at or before `at`.
fn floor(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The char boundary at or after `at`.
fn ceil(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

impl Excerpt {
    /// Where the source's `span` is in the excerpt. Label starts and ends are never cut out; any other
    /// offset in a cut goes to the edge of its `…`.
    pub(crate) fn map(&self, span: Span) -> Span {
        self.to_excerpt(span.start, false)..self.to_excerpt(span.end.max(span.start), true)
    }

    fn to_excerpt(&self, offset: usize, end: bool) -> usize {
        let offset = offset.max(self.base);
        let (mut removed, mut added) = (0, 0);
        for cut in &self.cuts {
            if offset <= cut.start {
                break;
            }
            if offset < cut.end {
                let marker = cut.start - self.base - removed + added;
                return if end { marker + CUT.len() } else { marker };
            }
            removed += cut.len();
            added += CUT.len();
        }
        (offset - self.base - removed + added).min(self.text.len())
    }

    /// The source offset of an offset in the excerpt (the start of the cut for one inside a `…`).
    fn to_source(&self, at: usize) -> usize {
        let (mut removed, mut added) = (0, 0);
        for cut in &self.cuts {
            let marker = cut.start - self.base - removed + added;
            if at < marker {
                break;
            }
            if at < marker + CUT.len() {
                return cut.start;
            }
            removed += cut.len();
            added += CUT.len();
        }
        at + self.base + removed - added
    }
}

impl SourceCode for Excerpt {
    /// What miette reads from the excerpt's text, with the source's line numbers and, for a span read
    /// without context (the one whose `LINE:COLUMN` a diagnostic shows), the source's column.
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.as_bytes().read_span(span, before, after)?;
        let column = if before == 0 {
            let at = self.to_source(span.offset());
            let starts = self.source.lines.of(&self.source.text);
            at - starts[starts.partition_point(|&s| s <= at).saturating_sub(1)]
        } else {
            inner.column()
        };
        let contents = MietteSpanContents::new_named(
            self.source.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            inner.line_count() + self.first_line,
        );
        Ok(Box::new(contents.with_language("crrules")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (data, span, line, column, line count, name) as miette reads them.
    type Read = Result<(Vec<u8>, SourceSpan, usize, usize, usize, Option<String>), String>;

    fn read(code: &dyn SourceCode, span: SourceSpan, before: usize, after: usize) -> Read {
        code.read_span(&span, before, after)
            .map(|c| (c.data().to_vec(), *c.span(), c.line(), c.column(), c.line_count(), c.name().map(str::to_owned)))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn spans_read_as_miette_reads_them_from_the_whole_text() {
        let texts = [
            "",
            "a",
            "one\ntwo\nthree\n",
            "one\r\ntwo\r\n\r\nfour\rfive\n\n\nsix",
            "\n\n\nx\n\n",
            "chardev 1:3 => close\n# c\nfile => reopen path \\\n  # more\n\nsocket => close",
        ];
        let long: String = (0..40).map(|i| format!("rule {i}{}", ["\n", "\r\n", "\r", "\n\n"][i % 4])).collect();
        for text in texts.iter().copied().chain([long.as_str()]) {
            let source = Source::new("t.rules", text);
            for offset in 0..=text.len() {
                for len in 0..=(text.len() - offset).min(12) {
                    for (before, after) in [(0, 0), (1, 1), (2, 3), (3, 0), (0, 2)] {
                        let span = SourceSpan::new(offset.into(), len);
                        let ours = read(&source, span, before, after);
                        let named = miette::NamedSource::new("t.rules", text.to_owned()).with_language("crrules");
                        let theirs = read(&named, span, before, after);
                        assert_eq!(ours, theirs, "{text:?} at {offset}+{len}, {before} before, {after} after");
                    }
                }
            }
        }
    }
}
