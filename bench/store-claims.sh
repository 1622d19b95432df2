#!/usr/bin/env bash
# Store claims across replicas: 3 hosts on one throwaway PostgreSQL cluster race for 2,000
# questions (5% delivered twice, to a random host); then one host alone on SQLite and on
# PostgreSQL. Store level only (no Stream, no cards, no faults); bench/replicas.sh runs the
# real hosts.
# Last line: questions=.. answered_once=.. duplicates=.. lost=.. answers_per_s=.. claim_p99_ms=..
# Env: CLAIMS_PG_FSYNC=on (default off, as the tests run the cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt-get install -y postgresql
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p jitnode-store --example claims_bench
exec "$CARGO_TARGET_DIR/release/examples/claims_bench"
