//! The `crrules` binary.
fn main() {}
