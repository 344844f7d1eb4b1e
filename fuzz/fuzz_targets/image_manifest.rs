//! Fuzz target: an image's `manifest.json` -> the manifest, written and read back
//! (`crrules_engine::fuzzing::image_manifest`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::image_manifest(data);
});
