#!/usr/bin/env bash
# Agent benchmark: indexing time of the demo knowledge base (median of 20 loads) and of a
# generated ~10 MB bilingual corpus (in memory), retrieval latency p50/p99 over the fixed
# question set of crates/agent/tests/questions.json (demo KB; and on the 10 MB corpus), and
# the rank-1 hit rate of that set.
# Last line: index_ms=.. query_p50_ms=.. query_p99_ms=.. hit_rate=.. index_10mb_ms=..
# query_10mb_p50_ms=.. query_10mb_p99_ms=..
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p jitnode-agent --example agent_bench
exec "$CARGO_TARGET_DIR/release/examples/agent_bench"
