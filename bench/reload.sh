#!/usr/bin/env bash
# Hot reload benchmark: save-to-running latency of a config.json edit under the real file
# watcher (default options), with 10 and with 1,000 running builtin:echo instances. Measured
# from just before the write until the edited instance's runtime is loaded with the new
# config (includes the 150 ms debounce). Target: p50 under 250 ms.
# Last line: reload_p50_ms=.. reload_p99_ms=.. reload_1000_p50_ms=..
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p jitnode-host --example reload_bench
out=$("$CARGO_TARGET_DIR/release/examples/reload_bench" 10 100 1000 30)
echo "$out"
small=$(grep '^n=10 ' <<<"$out")
large=$(grep '^n=1000 ' <<<"$out")
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
echo "reload_p50_ms=$(field p50_ms "$small") reload_p99_ms=$(field p99_ms "$small") reload_1000_p50_ms=$(field p50_ms "$large")"
