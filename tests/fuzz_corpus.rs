//! The fuzz corpora, replayed on stable: every file of `fuzz/corpus/TARGET/` goes through the entry point its
//! fuzz target calls (`crrules_engine::fuzzing`), which must not panic. Files named `ok-*` (real captures,
//! the shipped policy) must be accepted, `err-*` policies must be refused. Then the inputs the fuzzer found
//! crashes with, each kept as data here and in the corpus.

use crrules_engine::fuzzing;
use std::path::{Path, PathBuf};

/// Every file of a target's corpus, in name order.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(files.iter().any(|f| name(f).starts_with("ok-")), "{}: no seed from a real capture", dir.display());
    files
}

fn name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Replays a target's corpus through `run`: no panic, and every `ok-*` file accepted.
fn replay(target: &str, run: fn(&[u8]) -> bool) {
    for path in corpus(target) {
        let bytes = std::fs::read(&path).expect("a corpus file");
        let accepted = std::panic::catch_unwind(|| run(&bytes))
            .unwrap_or_else(|_| panic!("{target}: {} panics (message above)", path.display()));
        assert!(accepted || !name(&path).starts_with("ok-"), "{target}: {} is not accepted", path.display());
    }
}

/// Replays a policy target's corpus: no panic, `ok-*` files accepted, `err-*` files refused.
fn replay_policies(target: &str, run: fn(&[u8]) -> fuzzing::Compiled) {
    for path in corpus(target) {
        let bytes = std::fs::read(&path).expect("a corpus file");
        let compiled = std::panic::catch_unwind(|| run(&bytes))
            .unwrap_or_else(|_| panic!("{target}: {} panics (message above)", path.display()));
        let name = name(&path);
        assert!(
            compiled.accepted() || !name.starts_with("ok-"),
            "{target}: {} is refused: {compiled:?}",
            path.display()
        );
        assert!(compiled.errors > 0 || !name.starts_with("err-"), "{target}: {} is accepted", path.display());
    }
}

#[test]
fn rules_corpus() {
    replay_policies("rules", fuzzing::rules);
}

#[test]
fn lint_corpus() {
    replay_policies("lint", fuzzing::lint);
}

/// The policy corpora hold the shipped policy as it is now.
#[test]
fn policy_corpora_hold_the_shipped_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(root.join("policy")).expect("policy/").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "rules") {
            let now = std::fs::read(&path).expect("a policy file");
            for target in ["rules", "lint"] {
                let seed = root.join("fuzz/corpus").join(target).join(format!("ok-policy-{}", name(&path)));
                let seeded = std::fs::read(&seed).unwrap_or_default();
                assert!(now == seeded, "{} is not {}: cargo run --example fuzz_seeds", seed.display(), path.display());
            }
        }
    }
}

#[test]
fn fdinfo_corpus() {
    replay("fdinfo", fuzzing::fdinfo);
}

#[test]
fn mountinfo_corpus() {
    replay("mountinfo", fuzzing::mountinfo);
}

#[test]
fn link_corpus() {
    replay("link", fuzzing::link);
}

#[test]
fn sock_diag_corpus() {
    replay("sock_diag", fuzzing::sock_diag);
}

#[test]
fn facts_corpus() {
    replay("facts", fuzzing::facts);
}

#[test]
fn image_manifest_corpus() {
    replay("image_manifest", fuzzing::image_manifest);
}
