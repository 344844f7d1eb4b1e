//! Fuzz target: a `/proc/PID/mountinfo` text -> mount ids to filesystem types, and every mount
//! (`crrules_engine::fuzzing::mountinfo`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::mountinfo(data);
});
