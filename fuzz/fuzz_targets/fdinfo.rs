//! Fuzz target: a `/proc/PID/fdinfo/N` text -> its fields, checked against every kind, moved into facts
//! (`crrules_engine::fuzzing::fdinfo`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::fdinfo(data);
});
