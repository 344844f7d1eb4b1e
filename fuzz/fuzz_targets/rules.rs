//! Fuzz target: policy bytes, as UTF-8 and as lossy text -> rule set, its diagnostics rendered with miette,
//! its matcher compiled (`crrules_engine::fuzzing::rules`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::rules(data);
});
