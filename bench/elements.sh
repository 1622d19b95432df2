#!/usr/bin/env bash
# Element tree benchmark: generates apps of 1,000 and 10,000 elements under bench/.work and
# times cold `build` (no dist), warm start (`ensure` on an unchanged dist) and `check`, each
# also as a ratio to the I/O floor (reading every source file once, in-process), and a plain
# copy of the same tree in the same run, the real floor of a build that writes dist/.
# Last line: cold_10k_ms=.. copy_10k_ms=.. warm_10k_ms=.. check_10k_ms=.. floor_ratio=..
# copy_ratio=..  (ratios are cold build / I/O floor and cold build / plain copy, at 10k).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p jitnode-dist --example elements_bench
exec "$CARGO_TARGET_DIR/release/examples/elements_bench" bench/.work
