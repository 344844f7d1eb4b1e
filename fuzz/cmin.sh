#!/usr/bin/env bash
# Minimizes a fuzz target's corpus as `cargo fuzz cmin` does, but keeps the named files (`ok-*`, `err-*`,
# `seed-*`, `crash-*`) under their names: they go in first, then the smallest set of the fuzzer's files that
# covers every further code edge the whole corpus covered (libFuzzer's `-set_cover_merge`, hit counts
# ignored: `-use_counters=0`), among those of at most 4 KiB, so that the committed corpus stays small.
# Built without a sanitizer, as the long runs are (see README.md). Usage: fuzz/cmin.sh TARGET
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz/cmin.sh TARGET}
corpus=fuzz/corpus/$target
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
cargo +nightly fuzz build -s none "$target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/min" "$work/found"
find "$corpus" -maxdepth 1 -type f -regex '.*/\(ok\|err\|seed\|crash\)-[^/]*' -exec cp {} "$work/min/" \;
find "$corpus" -maxdepth 1 -type f -size -4097c -exec cp -n {} "$work/found/" \;
"fuzz/target/$host/release/$target" -set_cover_merge=1 -use_counters=0 "$work/min" "$work/found"
rm -r "$corpus"
mv "$work/min" "$corpus"
echo "$corpus: $(find "$corpus" -type f | wc -l) files, $(cat "$corpus"/* | wc -c) bytes"
