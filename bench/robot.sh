#!/usr/bin/env bash
# Robot benchmark, through the sandbox on loopback (crates/robot/examples/robot_bench.rs):
# time from a message being pushed to the thinking-card request (p50/p99 over 200 questions
# started 10 ms apart, BENCH_INTERVAL_MS; the sandbox wakes the bench on each transcript
# entry, so measuring copies and polls nothing), card API calls for one long streamed answer (400 chunks over ~8 s, default
# throttle: 300 ms interval, at most 20 updates), and answers per second for 100 concurrent
# questions answered by an instant stand-in agent (20 chunks, no delay).
# Last line: thinking_card_p50_ms=.. thinking_card_p99_ms=.. card_calls_long_answer=.. answers_per_s=..
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p jitnode-robot --example robot_bench
exec "$CARGO_TARGET_DIR/release/examples/robot_bench"
