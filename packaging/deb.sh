#!/usr/bin/env bash
# Builds a Debian package: the binary, its man page and shell completions (generated from the same
# argument definitions as --help), and the default policy in /usr/lib/crrules/rules.d.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release
mkdir -p target/assets
target/release/crrules man > target/assets/crrules.1
target/release/crrules completions bash > target/assets/crrules.bash
target/release/crrules completions zsh > target/assets/_crrules
target/release/crrules completions fish > target/assets/crrules.fish
cargo deb --no-build "$@"
