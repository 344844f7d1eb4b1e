#!/usr/bin/env bash
# Builds a Debian package: the binary, its man page and shell completions (generated from the same
# argument definitions as --help), the default policy in /usr/lib/crrules/rules.d, the CRIU plugin in
# /usr/lib/criu (where every `criu` run loads it) and the CRIU action script in /usr/lib/crrules.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release
cargo build --release -p crrules-criu-plugin
mkdir -p target/assets
strip --strip-debug -o target/assets/libcrrules_criu.so target/release/libcrrules_criu.so
target/release/crrules man > target/assets/crrules.1
target/release/crrules completions bash > target/assets/crrules.bash
target/release/crrules completions zsh > target/assets/_crrules
target/release/crrules completions fish > target/assets/crrules.fish
cargo deb --no-build "$@"
