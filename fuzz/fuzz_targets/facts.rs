//! Fuzz target: a facts file -> plans, decided by the default policy, written as JSON and read back
//! (`crrules_engine::fuzzing::facts`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::facts(data);
});
