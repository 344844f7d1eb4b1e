//! Diagnostics: one concrete type for every error, warning and note the language reports, drawn by
//! miette (through [`Diagnostic::drawable`]) with the file name, line, column, underlined text and a
//! help. Messages follow one style: lowercase single sentences, user input in backticks, the fix in `help`.

use crate::source::{Excerpt, Source, Span};
use miette::{LabeledSpan, SourceCode};
use std::fmt;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Information for the reader (a site rule that overrides a distribution decision).
    Advice,
    /// The policy works but likely not as meant (a shadowed rule, a duplicate).
    Warning,
    /// The rule or file cannot be used.
    Error,
}

/// One diagnostic about policy text (or about a policy file as a whole, with no span).
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable code, `crrules::<area>::<what>` (`crrules::parse::unknown_kind`).
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
    /// The file the labels point into; `None` for diagnostics about no particular text.
    pub source: Option<Source>,
    /// Underlined spans, the first one primary.
    pub labels: Vec<LabeledSpan>,
    /// Further diagnostics shown with this one (the rule that shadows a shadowed rule).
    pub related: Vec<Diagnostic>,
}

impl Diagnostic {
    /// A diagnostic with a message and nothing else.
    pub fn new(severity: Severity, code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            help: None,
            source: None,
            labels: Vec::new(),
            related: Vec::new(),
        }
    }

    /// An error.
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, message)
    }

    /// A warning.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, code, message)
    }

    /// Points into a file.
    pub fn with_source(mut self, source: &Source) -> Diagnostic {
        self.source = Some(source.clone());
        self
    }

    /// Adds an underlined span with a short label.
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.labels.push(LabeledSpan::new_with_span(Some(label.into()), span));
        self
    }

    /// Sets the help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a related diagnostic.
    pub fn with_related(mut self, related: Diagnostic) -> Diagnostic {
        self.related.push(related);
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The primary span, if any.
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.offset()..l.offset() + l.len())
    }

    /// The text under the primary span, if any (what a user sees underlined).
    pub fn underlined(&self) -> Option<&str> {
        let span = self.primary_span()?;
        self.source.as_ref()?.text.get(span)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// A diagnostic as miette draws it: the same code, message, help and labels, but read from an excerpt
/// of its file when a line they point into is too long to draw (miette panics on a label past column
/// 65,535), so that drawing any diagnostic is safe.
#[derive(Debug)]
pub struct Drawable<'a> {
    diagnostic: &'a Diagnostic,
    /// The file's lines around the labels, long ones cut; `None` when the file can be drawn as it is.
    excerpt: Option<Excerpt>,
    /// The labels, moved into the excerpt when there is one.
    labels: Vec<LabeledSpan>,
    related: Vec<Drawable<'a>>,
}

impl Diagnostic {
    /// What to hand miette to draw this diagnostic (and its related ones).
    pub fn drawable(&self) -> Drawable<'_> {
        let spans: Vec<Span> = self.labels.iter().map(|l| l.offset()..l.offset() + l.len()).collect();
        let excerpt = self.source.as_ref().and_then(|s| s.excerpt(&spans));
        let labels = match &excerpt {
            None => self.labels.clone(),
            Some(excerpt) => self
                .labels
                .iter()
                .map(|l| {
                    let (text, span) = (l.label().map(str::to_owned), excerpt.map(l.offset()..l.offset() + l.len()));
                    if l.primary() {
                        LabeledSpan::new_primary_with_span(text, span)
                    } else {
                        LabeledSpan::new_with_span(text, span)
                    }
                })
                .collect(),
        };
        Drawable { diagnostic: self, excerpt, labels, related: self.related.iter().map(Diagnostic::drawable).collect() }
    }
}

impl fmt::Display for Drawable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Drawable<'_> {}

impl miette::Diagnostic for Drawable<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Advice => miette::Severity::Advice,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        match &self.excerpt {
            Some(excerpt) => Some(excerpt),
            None => self.diagnostic.source.as_ref().map(|s| s as &dyn SourceCode),
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty())
            .then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        (!self.related.is_empty())
            .then(|| Box::new(self.related.iter().map(|d| d as &dyn miette::Diagnostic)) as Box<dyn Iterator<Item = _>>)
    }
}

/// Quotes user text for a message, shortened when long.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::from("`");
    if s.chars().count() > MAX {
        out.extend(s.chars().take(MAX));
        out.push('…');
    } else {
        out.push_str(s);
    }
    out.push('`');
    out
}

/// Items joined for a sentence: `a`, `a or b`, `a, b or c` (`conj` between the last two).
pub(crate) fn list<T: AsRef<str>>(items: &[T], conj: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} {conj} {}", init.join(", "), last.as_ref())
        }
    }
}

/// Words in backticks, joined by [`list`]: `` `a`, `b` and `c` ``.
pub(crate) fn quoted<'a>(words: impl IntoIterator<Item = &'a str>, conj: &str) -> String {
    let words: Vec<String> = words.into_iter().map(|w| format!("`{w}`")).collect();
    list(&words, conj)
}

/// The word among `candidates` that `word` was likely meant to be: the closest, when close enough to be a
/// typo (case ignored). Words longer than 64 bytes get none, so that a 10 MB line costs nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if word.len() > 64 {
        return None;
    }
    let limit = (word.chars().count() / 3).max(1);
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance with adjacent transpositions counted as one edit (`chrdev`/`chardev` is 1,
/// `O_APEND`/`O_APPEND` is 1, `fiel`/`file` is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typical_typos() {
        let kinds = crate::vocab::Kind::words();
        assert_eq!(did_you_mean("chrdev", kinds), Some("chardev"));
        let flags = crate::vocab::OPEN_FLAGS.iter().map(|(n, _)| *n);
        assert_eq!(did_you_mean("O_APEND", flags), Some("O_APPEND"));
        assert_eq!(did_you_mean("fiel", crate::vocab::Kind::words()), Some("file"));
        assert_eq!(did_you_mean("banana", crate::vocab::Kind::words()), None);
    }
}
