//! Shared by the fd-table tests: reading fdreport's report, naming fds in messages, and editing an image
//! as someone who can write it would (recomputing its checksums).
#![allow(dead_code, reason = "each test binary uses a different subset")]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// fdreport's JSON: fd number -> its report.
pub fn read_report(path: &Path) -> BTreeMap<i32, Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the command wrote no report at {}: {e}", path.display()));
    let by_name: BTreeMap<String, Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fdreport wrote {text:?}: {e}"));
    by_name.into_iter().map(|(fd, v)| (fd.parse().unwrap_or_else(|_| panic!("key {fd:?} in {text}")), v)).collect()
}

/// `text` names fd `fd` as `fd N`, N not followed by another digit.
pub fn names_fd(text: &str, fd: i32) -> bool {
    let needle = format!("fd {fd}");
    text.match_indices(&needle).any(|(at, _)| !text[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Recomputes `SHA256SUMS` over the files it lists, as someone who edited the image would.
pub fn reseal(image: &Path) {
    let script = "cd \"$1\" && sha256sum $(sed -E 's/^[0-9a-f]+ [ *]//' SHA256SUMS) > SHA256SUMS.new \
                  && mv SHA256SUMS.new SHA256SUMS";
    let status = Command::new("sh").args(["-c", script, "sh", path_str(image)]).status().expect("sh");
    assert!(status.success(), "cannot recompute SHA256SUMS in {}", image.display());
}

/// An image's manifest, as JSON.
pub fn manifest(image: &Path) -> Value {
    let text = std::fs::read_to_string(image.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifest.json: {e}\n{text}"))
}

/// The manifest's entry for fd `fd`.
pub fn image_fd(manifest: &Value, fd: i32) -> &Value {
    let fds = manifest["fds"].as_array().expect("manifest fds");
    fds.iter().find(|f| f["fd"] == fd).unwrap_or_else(|| panic!("no fd {fd} in the manifest"))
}
