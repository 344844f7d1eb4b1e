//! Fixture folders as the test suite: every `fixtures/ok/*.rules` compiles without errors, and every
//! `fixtures/err/NAME.rules` (read as a policy file is: a byte-order mark skipped, invalid UTF-8 an error
//! in the file) gives exactly the diagnostics written in `NAME.expected` (severity, code,
//! `line:col`, message, underlined text, help). `UPDATE_EXPECT=1 cargo test -p crrules-rules --test fixtures`
//! rewrites the expected files from what the compiler says now: read each diff by eye before committing.

use crrules_rules::{Diagnostic, Severity, Source, lint};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// A fixture's source, or the diagnostic that it is not UTF-8.
#[expect(clippy::result_large_err, reason = "one per fixture, straight into the list compared")]
fn read(path: &Path) -> Result<Source, Diagnostic> {
    let name = format!(
        "{}/{}",
        path.parent().unwrap().file_name().unwrap().to_str().unwrap(),
        path.file_name().unwrap().to_str().unwrap()
    );
    Source::from_bytes(name, std::fs::read(path).unwrap())
}

fn load(path: &Path) -> Source {
    read(path).unwrap_or_else(|d| panic!("{}: {}", path.display(), d.message))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

/// The expected-file format: one block per diagnostic, blocks separated by a blank line.
fn render(diags: &[Diagnostic], text: &str) -> String {
    let mut out = String::new();
    for d in diags {
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Advice => "advice",
        };
        let at = match d.primary_span() {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                format!("{l}:{c}")
            }
            None => "-".to_owned(),
        };
        let _ = writeln!(out, "{severity} {} at {at}", d.code);
        let _ = writeln!(out, "  message: {}", d.message);
        let _ = writeln!(out, "  underline: {}", d.underlined().map_or("(none)".to_owned(), |u| format!("{:?}", u)));
        let _ = writeln!(out, "  help: {}", d.help.as_deref().unwrap_or("(none)"));
        out.push('\n');
    }
    out
}

#[test]
fn ok_fixtures_compile_without_errors() {
    for path in fixtures("ok") {
        let source = load(&path);
        let compiled = lint(std::slice::from_ref(&source));
        let errors: Vec<_> = compiled.diagnostics.iter().filter(|d| d.is_error()).cloned().collect();
        assert!(errors.is_empty(), "{}:\n{}", path.display(), render(&errors, &source.text));
        assert!(!compiled.rules.is_empty(), "{} has no rules", path.display());
    }
}

#[test]
fn err_fixtures_give_the_expected_diagnostics() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in fixtures("err") {
        // A file that is not UTF-8 has that one error, pointing into its text as decoded.
        let (text, diagnostics) = match read(&path) {
            Ok(source) => (source.text.clone(), lint(std::slice::from_ref(&source)).diagnostics),
            Err(d) => (d.source.as_ref().unwrap().text.clone(), vec![d]),
        };
        assert!(diagnostics.iter().any(Diagnostic::is_error), "{} compiled without errors", path.display());
        let got = render(&diagnostics, &text);
        let expected_path = path.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_EXPECT=1 to create it)", expected_path.display()));
        if expected.replace("\r\n", "\n") != got {
            failures.push(format!("--- {}\n{expected}+++ got\n{got}", expected_path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn expected_files_have_their_rule_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/err");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "expected") {
            assert!(p.with_extension("rules").exists(), "{} has no .rules beside it", p.display());
        }
    }
}
