#!/usr/bin/env bash
# Replicas: 3 real `jitnode run` hosts of one sandbox app on a private copy of the demo app
# (offline agent, AI cards) share one throwaway PostgreSQL cluster (started here with
# fsync off, as the tests run it; as root it runs as the `postgres` user). 2,000 questions
# pushed on the app's connections at random, 5% redelivered (half on another host's
# connection), a connection dropped every 1.5 s, host 0 killed with SIGKILL and restarted
# twice. Then one host alone, offline agent without its typing pause, on SQLite and on
# PostgreSQL.
# crates/test-kit/examples/replicas.rs says how each figure is measured.
# Last line: questions=.. answered_once=.. duplicates=.. lost=.. stuck_cards=..
# answers_per_s=.. claim_p99_ms=.. sqlite_answers_per_s=.. pg_answers_per_s=..
# Targets: duplicates=0, lost=0, stuck_cards=0, claim_p99_ms < 2, sqlite_answers_per_s
# >= 500, pg_answers_per_s >= 300; exits 1 when one is missed.
#
# Env: REPLICAS_QUESTIONS (2000), REPLICAS_SOLO (2000 per single-host run),
# REPLICAS_WINDOW (100), REPLICAS_REDELIVER_PCT (5), REPLICAS_DROP_MS (1500),
# REPLICAS_LEASE_SECS (3), REPLICAS_PG_FSYNC (off; on adds the disk's WAL flush to each
# claim), REPLICAS_SEED, REPLICAS_VERBOSE=1 (the hosts' logs on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# Two builds, as in soak.sh: together, the example's dev-dependency features would be
# unified into jitnode's and rebuild its tree.
cargo build --quiet --release -p jitnode --bin jitnode
cargo build --quiet --release -p jitnode-test-kit --example replicas

app=$(mktemp -d)
solo_app=$(mktemp -d)
trap 'rm -rf "$app" "$solo_app"' EXIT
for d in "$app" "$solo_app"; do
    cp -a elements .env "$d/"
    # The native demo plugin builds from crates/ by relative path, as in a clone; its build
    # is kept between runs.
    ln -s "$root/crates" "$d/crates"
done
# The single-host runs measure the host, not the offline agent's typing pause (40 ms
# between chunks, about 0.6 s an answer, which would cap a host at its 64 handler slots
# over that pause): their copy streams without it.
agent_config="$solo_app/elements/aiagents/customerService/config.json"
sed -i 's/"chunkDelayMs": *[0-9]*/"chunkDelayMs": 0/' "$agent_config"
grep -q '"chunkDelayMs": 0' "$agent_config" ||
    { echo "replicas.sh: could not turn off the typing pause in $agent_config" >&2; exit 2; }
export JITNODE_NATIVE_TARGET_DIR="${JITNODE_NATIVE_TARGET_DIR:-$CARGO_TARGET_DIR/bench-native}"

exec "$CARGO_TARGET_DIR/release/examples/replicas" --app "$app" --solo-app "$solo_app" -- \
    "$CARGO_TARGET_DIR/release/jitnode" run
