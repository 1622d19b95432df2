#!/usr/bin/env bash
# Soak: SOAK_MESSAGES (default 100000) messages through the sandbox to a real `jitnode run`
# on a private copy of the demo app (offline agent, AI cards, default store), with faults
# along the way (crates/test-kit/examples/soak.rs says which, and how to tune them):
# disconnects every 10 s, 1% of connections dropped, 5% of messages redelivered, 1% of
# frames malformed, bursts of 5xx from the card API.
# Last line: messages=.. answered_once=.. duplicates=.. lost=.. stuck_cards=..
# rss_start_kb=.. rss_end_kb=.. rss_warm_kb=.. rss_growth_pct=.. (the robot process's RSS:
# rss_start once it is connected, rss_warm after the warm-up, the first SOAK_WARMUP_PCT %
# of the messages, default 10; rss_growth_pct is rss_end over rss_warm). Targets: lost=0,
# duplicates=0, stuck_cards=0, rss_end within 10% of rss_warm; exits 1 when one is missed.
#
# Env: SOAK_MESSAGES, SOAK_WARMUP_PCT, SOAK_WINDOW (messages awaiting their answer, default
# 200), SOAK_SEED, SOAK_VERBOSE=1 (the robot's log on stderr), and the SOAK_* fault settings
# of the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# Two builds, not one: built together, the example's dev-dependency features (tokio's
# test-util) would be unified into jitnode's and rebuild its whole tree.
cargo build --quiet --release -p jitnode --bin jitnode
cargo build --quiet --release -p jitnode-test-kit --example soak

app=$(mktemp -d)
trap 'rm -rf "$app"' EXIT
cp -a elements .env "$app/"
# The native demo plugin builds from crates/ by relative path, as in a clone.
ln -s "$root/crates" "$app/crates"

cd "$app"
exec "$CARGO_TARGET_DIR/release/examples/soak" --window "${SOAK_WINDOW:-200}" -- \
    "$CARGO_TARGET_DIR/release/jitnode" run
