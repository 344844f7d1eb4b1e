//! Fuzz target: policy bytes -> rule set and the whole-policy analysis of `crrules lint`, every diagnostic
//! rendered with miette (`crrules_engine::fuzzing::lint`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::lint(data);
});
