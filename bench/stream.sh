#!/usr/bin/env bash
# Stream echo benchmark: messages/s and ACK latency through sandbox -> robot -> ACK +
# session-webhook reply over loopback, for jitnode-stream's client and for the official
# SDKs (Python dingtalk-stream installed here into a venv; Node dingtalk-stream installed
# here with npm under target/), each against its own in-process sandbox, with the same
# message count, and each robot process's peak RSS (VmHWM).
# The SDKs ACK a robot message after their handler (the reply) returns; jitnode-stream ACKs
# before its handler runs, so the ACK latency columns measure different things.
# Last line: rust_msgs_per_s=.. python_msgs_per_s=.. throughput_ratio=.. rss_ratio=.. ack_p99_ms=..
# node_msgs_per_s=.. node_ratio=.. (ratios are ours divided by the SDK's; ack_p99_ms is
# ours). Figures are printed, not asserted.
#
# Env: MESSAGES (default 30000, for every client), WINDOW (default 100). The default is
# long enough for Node's JIT to warm up: at 3000 the Node SDK ran at about half its
# steady rate, which doubled our ratio against it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$root/bench/.work
mkdir -p "$work"

messages=${MESSAGES:-30000}
window=${WINDOW:-100}

venv=$work/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import dingtalk_stream" >/dev/null 2>&1; then
    "$venv/bin/pip" install --quiet dingtalk-stream
fi
sdk_version=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('dingtalk-stream'))")

command -v npm >/dev/null || { echo "npm is needed for the Node SDK peer (Debian: apt-get install -y npm)" >&2; exit 1; }
node_dir=${CARGO_TARGET_DIR:-$root/target}/node-sdk
if [ ! -d "$node_dir/node_modules/dingtalk-stream" ]; then
    mkdir -p "$node_dir"
    npm install --silent --no-audit --no-fund --prefix "$node_dir" dingtalk-stream@2 axios
fi
node_version=$(node -p "require('$node_dir/node_modules/dingtalk-stream/package.json').version")

# The dist profile (fat LTO, one codegen unit) is how a robot binary is shipped; the driver
# is built the same way so that it is not the slower side.
cargo build --quiet --profile dist -p jitnode-sandbox --example bench_driver --example echo_stream
target=${CARGO_TARGET_DIR:-$root/target}/dist/examples

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "jitnode-stream echo robot: $messages messages, window $window"
rust=$("$target/bench_driver" --messages "$messages" --window "$window" -- "$target/echo_stream")
echo "  $rust"
echo "dingtalk-stream $sdk_version (Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')) echo robot: $messages messages, window $window"
py=$("$target/bench_driver" --messages "$messages" --window "$window" -- "$venv/bin/python" tests/python_sdk_echo.py)
echo "  $py"
echo "dingtalk-stream $node_version (Node $(node --version)) echo robot: $messages messages, window $window"
node=$(NODE_PATH="$node_dir/node_modules" "$target/bench_driver" --messages "$messages" --window "$window" -- node tests/node_sdk_echo.js)
echo "  $node"

r_tp=$(field msgs_per_s "$rust"); p_tp=$(field msgs_per_s "$py")
r_rss=$(field peak_rss_kb "$rust"); p_rss=$(field peak_rss_kb "$py")
r_p50=$(field ack_p50_ms "$rust"); p_p50=$(field ack_p50_ms "$py")
r_p99=$(field ack_p99_ms "$rust"); p_p99=$(field ack_p99_ms "$py")
n_tp=$(field msgs_per_s "$node"); n_rss=$(field peak_rss_kb "$node")
n_p50=$(field ack_p50_ms "$node"); n_p99=$(field ack_p99_ms "$node")

printf '\n%-34s %14s %14s %14s\n' "" "jitnode-stream" "python SDK" "node SDK"
printf '%-34s %14s %14s %14s\n' "messages/s" "$r_tp" "$p_tp" "$n_tp"
printf '%-34s %14s %14s %14s\n' "ACK latency p50 (ms)" "$r_p50" "$p_p50" "$n_p50"
printf '%-34s %14s %14s %14s\n' "ACK latency p99 (ms)" "$r_p99" "$p_p99" "$n_p99"
printf '%-34s %14s %14s %14s\n' "  ACK sent" "before handler" "after handler" "after handler"
printf '%-34s %14s %14s %14s\n' "peak RSS (KiB)" "$r_rss" "$p_rss" "$n_rss"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
echo "rust_msgs_per_s=$r_tp python_msgs_per_s=$p_tp throughput_ratio=$(ratio "$r_tp" "$p_tp") rss_ratio=$(ratio "$r_rss" "$p_rss") ack_p99_ms=$r_p99 node_msgs_per_s=$n_tp node_ratio=$(ratio "$r_tp" "$n_tp")"
