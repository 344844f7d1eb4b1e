//! A policy file's text, named as users see it, shared cheaply between the rule set and its diagnostics,
//! and the byte ranges that every stage uses to point into it. Diagnostics render through it: it finds a
//! span's line in an index of line starts built once per file, so that showing thousands of diagnostics
//! into one large file does not count lines from the top for each.

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

    /// A source from raw bytes; invalid UTF-8 is an error naming the byte offset and line.
    #[expect(clippy::result_large_err, reason = "rare, and the diagnostic goes straight into a list of them")]
    pub fn from_bytes(name: impl Into<Arc<str>>, bytes: Vec<u8>) -> Result<Source, Diagnostic> {
        let name = name.into();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Source::new(name, text)),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let bytes = e.as_bytes();
                let line = 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
                Err(Diagnostic::error(
                    "crrules::source::invalid_utf8",
                    format!(
                        "`{name}` is not valid UTF-8: byte offset {offset} (line {line}) is {:#04x}",
                        bytes[offset]
                    ),
                )
                .with_help("rule files are UTF-8 text; check that this is the file you meant"))
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
