#!/usr/bin/env bash
# Agent benchmark: indexing time of the demo knowledge base (median of 20 loads) and of a
# generated ~10 MB bilingual corpus (in memory), retrieval latency p50/p99 over the fixed
# question sets of crates/agent/tests/eval/ (demo KB; and on the 10 MB corpus), and
# the rank-1 hit rate and off-topic refusal of the tune half and the held-out half (scored,
# never listed). AGENT_BENCH_100MB=1 adds a 100 MB corpus.
# Last line ends: tune_top1=.. heldout_top1=.. offtopic_refused=.. query_p99_ms=..
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p jitnode-agent --example agent_bench
exec "$CARGO_TARGET_DIR/release/examples/agent_bench"
