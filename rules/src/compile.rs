//! The compile pipeline: policy files -> logical lines -> syntax trees ([`crate::parse`]) -> validated rules
//! ([`crate::validate`]), every diagnostic of every file collected; [`lint`] adds the whole-policy analysis.

use crate::diag::Diagnostic;
use crate::lex::{self, LogicalLine};
use crate::parse;
use crate::rule::{Rule, RuleSet};
use crate::source::Source;
use crate::{analysis, par, validate};

/// The most diagnostics reported for one file; past it, one more error says how many were left out.
pub const MAX_DIAGNOSTICS_PER_FILE: usize = 100;

/// Below this many bytes per thread (some 2000 rules), a file is compiled on the calling thread.
const BYTES_PER_THREAD: usize = 128 << 10;

/// A compiled policy: the rules that validated, in effective order, and every diagnostic found.
#[derive(Debug, Default)]
pub struct Validated {
    pub rules: RuleSet,
    pub diagnostics: Vec<Diagnostic>,
}

impl Validated {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and validates policy files given in effective order (lowest index wins), collecting every
/// error of every file. This is all a check needs; [`lint`] adds the warnings about the policy as a whole.
pub fn compile(sources: &[Source]) -> Validated {
    let mut rules = Vec::new();
    let mut diagnostics = Vec::new();
    for source in sources {
        let (mut file_rules, mut diags) = compile_source(source);
        if rules.is_empty() {
            rules = file_rules;
        } else {
            rules.append(&mut file_rules);
        }
        // Syntax errors and semantic errors of one file, in the order of the text they point at.
        diags.sort_by_key(|d| d.primary_span().map_or(0, |s| s.start));
        if diags.len() > MAX_DIAGNOSTICS_PER_FILE {
            let left_out = diags.len() - MAX_DIAGNOSTICS_PER_FILE;
            let at = diags[MAX_DIAGNOSTICS_PER_FILE].primary_span();
            diags.truncate(MAX_DIAGNOSTICS_PER_FILE);
            let mut more = Diagnostic::error(
                "crrules::parse::too_many_errors",
                format!("{left_out} more problems in this file are not shown"),
            )
            .with_source(source)
            .with_help("fix the problems above first; is this really a rule file?");
            if let Some(at) = at {
                more = more.with_label(at, "the first problem not shown");
            }
            diags.push(more);
        }
        diagnostics.append(&mut diags);
    }
    Validated { rules: RuleSet { rules }, diagnostics }
}

/// [`compile`], then the static analysis `crrules lint` reports: rules that can never match (shadowed,
/// duplicated, self-contradicting), as warnings after the errors.
pub fn lint(sources: &[Source]) -> Validated {
    let mut compiled = compile(sources);
    let warnings = analysis::shadowing(&compiled.rules, sources);
    compiled.diagnostics.extend(warnings);
    compiled
}

/// Parses and validates one file. Lines are independent, so a large file is cut into consecutive parts
/// read on several threads and put back together in order.
fn compile_source(source: &Source) -> (Vec<Rule>, Vec<Diagnostic>) {
    let text = &source.text;
    let mut parts =
        par::chunked(text.len(), BYTES_PER_THREAD, |range| compile_lines(source, lex::logical_lines_in(text, range)))
            .into_iter();
    let (mut rules, mut diags) = parts.next().unwrap_or_default();
    for (mut r, mut d) in parts {
        rules.append(&mut r);
        diags.append(&mut d);
    }
    (rules, diags)
}

/// Parses and validates consecutive logical lines of one file.
fn compile_lines<'a>(source: &'a Source, lines: impl Iterator<Item = LogicalLine<'a>>) -> (Vec<Rule>, Vec<Diagnostic>) {
    let mut rules = Vec::new();
    let mut diags = Vec::new();
    for line in lines {
        if let Some(ast) = parse::parse_line(source, line, &mut diags)
            && let Some(rule) = validate::validate_rule(source, &ast, &mut diags)
        {
            rules.push(rule);
        }
    }
    (rules, diags)
}
