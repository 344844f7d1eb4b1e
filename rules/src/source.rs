//! A policy file's text, named as users see it, shared cheaply between the rule set and its diagnostics,
//! and the byte ranges that every stage uses to point into it.

use crate::diag::Diagnostic;
use std::sync::Arc;

/// A byte range in a source's text: where a syntax tree node, a rule or a diagnostic's label is.
pub type Span = std::ops::Range<usize>;

/// One policy file's text.
#[derive(Clone, Debug)]
pub struct Source {
    /// The name shown in diagnostics and in `FILE:LINE` (a path, or `<builtin>/NAME` for the compiled-in
    /// default policy).
    pub name: Arc<str>,
    pub text: Arc<str>,
}

impl Source {
    /// A source from text already known to be UTF-8.
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Source {
        Source { name: name.into(), text: text.into() }
    }

    /// A source from raw bytes; invalid UTF-8 is an error naming the byte offset and line.
    #[expect(clippy::result_large_err, reason = "rare, and the diagnostic goes straight into a list of them")]
    pub fn from_bytes(name: impl Into<Arc<str>>, bytes: Vec<u8>) -> Result<Source, Diagnostic> {
        let name = name.into();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Source { name, text: text.into() }),
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
}
