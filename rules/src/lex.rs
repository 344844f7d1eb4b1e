//! Text -> logical lines: the one pass over a file's bytes that the parser starts from.
//!
//! The language is line-oriented: a rule is one logical line, whose physical lines are joined by a `\` at
//! the end of each but the last. [`logical_lines`] walks a file once and yields each logical line that
//! holds more than blanks and comments, with everything the parser and its diagnostics need: the line's
//! byte range in the file, the line number of its first token, the text the grammar reads (offsets kept,
//! so a grammar offset plus the line's start is a file offset), the rule's text as users are shown it, and
//! a string literal left open at the end of its line.

use crate::source::Span;
use std::borrow::Cow;

/// One logical line of a file: the text of one rule, continuation lines included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalLine<'a> {
    /// From the logical line's first byte to the end of its last physical line (newline excluded).
    pub span: Span,
    /// The 1-based line of its first token.
    pub line: u32,
    /// A string literal that is still open at the end of its line (opening quote to line end, a carriage
    /// return excluded). It ends the logical line.
    pub unterminated: Option<Span>,
    /// The text of [`span`](Self::span) as the grammar reads it: outside strings, tabs, carriage returns,
    /// `\`-newline continuations and the trailing comment are blanked to spaces, byte for byte.
    pub grammar: Cow<'a, str>,
    /// From the first token to the last, each continuation (with the blanks around it) joined into one
    /// space: the rule's text as a user reads it.
    pub text: Cow<'a, str>,
}

/// The logical lines of `text` that hold something besides blanks and comments, in order.
///
/// A `\` followed only by blanks up to the end of its line joins the next line; `#` outside a string starts
/// a comment that ends the logical line (a `\` inside a comment does not continue it); a string ends at
/// the end of its physical line at the latest.
pub fn logical_lines(text: &str) -> LogicalLines<'_> {
    logical_lines_in(text, 0..text.len())
}

/// [`logical_lines`] that start in `range` (any byte offsets): consecutive ranges give consecutive lines,
/// so that parts of a large file can be read on several threads.
pub fn logical_lines_in(text: &str, range: Span) -> LogicalLines<'_> {
    let at = line_start_at(text, range.start);
    let line = 1 + text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
    LogicalLines::new(text, at..line_start_at(text, range.end), u32::try_from(line).unwrap_or(u32::MAX))
}

/// Where the first logical line at or after byte `at` starts (the text's end when none does).
fn line_start_at(text: &str, at: usize) -> usize {
    if at == 0 || at >= text.len() {
        return at.min(text.len());
    }
    // Physical lines start afresh (no string or comment runs past its line), so reading one logical line
    // from the start of the physical line holding byte `at - 1` ends at the first logical line start that
    // is not before `at`.
    let physical = text.as_bytes()[..at - 1].iter().rposition(|&b| b == b'\n').map_or(0, |nl| nl + 1);
    let mut lines = LogicalLines::new(text, physical..text.len(), 1);
    lines.read();
    lines.at
}

/// The bytes the lexer looks at: those that end a token, a line or a string, or start a string or a
/// comment (every other byte is part of a token).
const SPECIAL: [bool; 256] = {
    let bytes = b"\n #\"\\\t\r";
    let mut special = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        special[bytes[i] as usize] = true;
        i += 1;
    }
    special
};

/// The iterator of [`logical_lines`].
#[derive(Debug)]
pub struct LogicalLines<'a> {
    text: &'a str,
    /// Where the next logical line starts, and its 1-based line.
    at: usize,
    line: u32,
    /// Where the lines to read end (a logical line's start, or the text's end).
    end: usize,
    /// The line being read: the byte ranges the grammar reads as blanks (always whole characters), and
    /// its continuations (`\`, blanks, newline, blanks), each to be joined into one space.
    blanks: Vec<Span>,
    joins: Vec<Span>,
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = LogicalLine<'a>;

    fn next(&mut self) -> Option<LogicalLine<'a>> {
        while self.at < self.end {
            if let Some(line) = self.read() {
                return Some(line);
            }
        }
        None
    }
}

impl<'a> LogicalLines<'a> {
    /// The logical lines of `text` in `range`, which starts a logical line on the 1-based line `line` and
    /// ends at a logical line's start or the text's end.
    fn new(text: &'a str, range: Span, line: u32) -> LogicalLines<'a> {
        LogicalLines { text, at: range.start, end: range.end, line, blanks: Vec::new(), joins: Vec::new() }
    }

    /// Reads the logical line at `self.at`; `None` when it holds only blanks and comments.
    fn read(&mut self) -> Option<LogicalLine<'a>> {
        let b = self.text.as_bytes();
        let n = b.len();
        let start = self.at;
        let mut i = start;
        // The first token's offset and line, and the end of the last token.
        let mut first: Option<(usize, u32)> = None;
        let mut last = start;
        let mut unterminated = None;
        self.blanks.clear();
        self.joins.clear();
        let end = loop {
            if i >= n {
                break n;
            }
            match b[i] {
                b'\n' => {
                    let end = i;
                    i += 1;
                    self.line = self.line.saturating_add(1);
                    break end;
                }
                b'#' => {
                    let comment = i;
                    i = b[i..].iter().position(|&c| c == b'\n').map_or(n, |len| i + len);
                    self.blanks.push(comment..i);
                }
                b'"' => {
                    first.get_or_insert((i, self.line));
                    let quote = i;
                    i += 1;
                    loop {
                        i += b[i..].iter().take_while(|&&c| !matches!(c, b'"' | b'\\' | b'\n')).count();
                        if i >= n || b[i] == b'\n' {
                            let mut e = i;
                            if e > quote + 1 && b[e - 1] == b'\r' {
                                e -= 1;
                            }
                            unterminated.get_or_insert(quote..e);
                            break;
                        }
                        match b[i] {
                            b'"' => {
                                i += 1;
                                break;
                            }
                            b'\\' if i + 1 < n && b[i + 1] != b'\n' => i += 2,
                            _ => i += 1,
                        }
                    }
                    last = i;
                }
                b'\\' => {
                    let blanks =
                        |from: usize| from + b[from..].iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r')).count();
                    let newline = blanks(i + 1);
                    if newline < n && b[newline] == b'\n' {
                        // A continuation: blanked for the grammar, one space in the rule's text.
                        self.line = self.line.saturating_add(1);
                        let next = blanks(newline + 1);
                        self.blanks.push(i..next);
                        self.joins.push(i..next);
                        i = next;
                    } else {
                        // Followed by more than blanks, it is a token (the grammar rejects it); followed
                        // by blanks to the end of the file, it is kept for the grammar to reject, but does
                        // not make the line one worth reporting.
                        if newline < n {
                            first.get_or_insert((i, self.line));
                            last = i + 1;
                        }
                        i += 1;
                    }
                }
                b'\t' | b'\r' => {
                    self.blanks.push(i..i + 1);
                    i += 1;
                }
                b' ' => i += 1,
                _ => {
                    first.get_or_insert((i, self.line));
                    // The rest of the token at once: words, numbers, punctuation.
                    i += 1 + b[i + 1..].iter().take_while(|&&c| !SPECIAL[usize::from(c)]).count();
                    last = i;
                }
            }
        };
        self.at = i;
        let (first, line) = first?;
        Some(LogicalLine {
            span: start..end,
            line,
            unterminated,
            grammar: self.splice(start..end, &self.blanks, |out, blank| {
                out.extend(std::iter::repeat_n(' ', blank.len()));
            }),
            text: self.splice(first..last, &self.joins, |out, _| {
                // The blanks before the `\` go too (a carriage return stays, as written).
                out.truncate(out.trim_end_matches([' ', '\t']).len());
                out.push(' ');
            }),
        })
    }

    /// The text of `range` with each of `cuts` inside it replaced by what `paste` writes; borrowed when
    /// there is none.
    fn splice(&self, range: Span, cuts: &[Span], paste: impl Fn(&mut String, &Span)) -> Cow<'a, str> {
        let text: &'a str = self.text;
        let mut cuts = cuts.iter().filter(|c| range.start <= c.start && c.end <= range.end).peekable();
        if cuts.peek().is_none() {
            return Cow::Borrowed(&text[range]);
        }
        let mut out = String::with_capacity(range.len());
        let mut at = range.start;
        for cut in cuts {
            out.push_str(&text[at..cut.start]);
            paste(&mut out, cut);
            at = cut.end;
        }
        out.push_str(&text[at..range.end]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(&str, u32)> {
        logical_lines(text).map(|l| (&text[l.span], l.line)).collect()
    }

    #[test]
    fn logical_lines_join_continuations_and_skip_comments() {
        let text = "# head\n\nfile => close # tail \\\npipe \\\n  => recreate\r\n  \n\"open\n  \\\n  dir => close";
        assert_eq!(
            lines(text),
            vec![
                ("file => close # tail \\", 3),
                ("pipe \\\n  => recreate\r", 4),
                ("\"open", 7),
                // A line of its own that only continues: the rule's line is that of its first token.
                ("  \\\n  dir => close", 9)
            ]
        );
        let l: Vec<LogicalLine> = logical_lines(text).collect();
        assert_eq!(l[2].unterminated, Some(l[2].span.clone()));
        assert_eq!(l[0].unterminated, None);
    }

    #[test]
    fn hash_and_backslash_inside_strings_are_text() {
        let text = "file path \"/a#b\\\"c\" => close\nx";
        assert_eq!(lines(text), vec![("file path \"/a#b\\\"c\" => close", 1), ("x", 2)]);
        let l = logical_lines(text).next().unwrap();
        assert!(matches!(l.grammar, Cow::Borrowed(_)) && matches!(l.text, Cow::Borrowed(_)));
    }

    #[test]
    fn the_grammar_reads_blanks_at_the_same_offsets() {
        let text = "\tfile \\ \r\n path \"a\\t#\" => close # note é\r\n";
        let l = logical_lines(text).next().unwrap();
        assert_eq!(l.grammar, " file      path \"a\\t#\" => close           ");
        assert_eq!(l.grammar.len(), l.span.len());
    }

    #[test]
    fn the_rule_text_has_single_spaces_and_keeps_strings() {
        let l = logical_lines("  file \\\n   path \"a\\\\\" \\  \r\n => close  # x").next().unwrap();
        assert_eq!(l.text, "file path \"a\\\\\" => close");
        // A `\` ends a line's text only as a continuation; at the end of the file it stays for the grammar.
        let l = logical_lines("file => close \\").next().unwrap();
        assert_eq!((l.grammar.as_ref(), l.text.as_ref()), ("file => close \\", "file => close"));
        assert_eq!(logical_lines("\\  \n\\").count(), 0);
    }

    #[test]
    fn consecutive_ranges_read_consecutive_lines() {
        let texts = [
            "file => close\npipe \\\n => recreate # x \\\n\n\n\"open\r\n# only \\\nfifo => close",
            "  \\  \n \\\r\n\\\nfile \"a \\\" # \\\" \\\n=> close\n\n\t\n\"x\\\n\"\n",
            "a\\\nb\\\nc\\\n\\",
        ];
        for text in texts {
            let whole: Vec<LogicalLine> = logical_lines(text).collect();
            for cut in 0..=text.len() {
                let mut parts: Vec<LogicalLine> = logical_lines_in(text, 0..cut).collect();
                parts.extend(logical_lines_in(text, cut..text.len()));
                assert_eq!(parts, whole, "{text:?} cut at {cut}");
            }
        }
    }
}
