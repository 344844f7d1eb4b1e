//! Fuzz target: a `/proc/PID/fd/N` link text -> its shape, and what the scanner asks of it
//! (`crrules_engine::fuzzing::link`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::link(data);
});
