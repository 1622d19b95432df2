#!/usr/bin/env bash
# Stream echo benchmark: messages/s and ACK latency through sandbox -> robot -> ACK +
# session-webhook reply over loopback, for jitnode-stream's client and for the official
# Python SDK (dingtalk-stream from PyPI, installed here into a venv), against the same
# in-process sandbox, with each robot process's peak RSS (VmHWM).
# Last line: rust_msgs_per_s=.. python_msgs_per_s=.. throughput_ratio=.. rss_ratio=.. ack_p99_ms=..
# (ratios are ours divided by the SDK's; ack_p99_ms is ours). Figures are printed, not asserted.
#
# Env: MESSAGES (default 20000 for Rust), PY_MESSAGES (default 3000), WINDOW (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$root/bench/.work
mkdir -p "$work"

messages=${MESSAGES:-20000}
py_messages=${PY_MESSAGES:-3000}
window=${WINDOW:-100}

venv=$work/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import dingtalk_stream" >/dev/null 2>&1; then
    "$venv/bin/pip" install --quiet dingtalk-stream
fi
sdk_version=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('dingtalk-stream'))")

cargo build --quiet --release -p jitnode-sandbox --example bench_driver --example echo_stream
target=${CARGO_TARGET_DIR:-$root/target}/release/examples

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "jitnode-stream echo robot: $messages messages, window $window"
rust=$("$target/bench_driver" --messages "$messages" --window "$window" -- "$target/echo_stream")
echo "  $rust"
echo "dingtalk-stream $sdk_version (Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')) echo robot: $py_messages messages, window $window"
py=$("$target/bench_driver" --messages "$py_messages" --window "$window" -- "$venv/bin/python" tests/python_sdk_echo.py)
echo "  $py"

r_tp=$(field msgs_per_s "$rust"); p_tp=$(field msgs_per_s "$py")
r_rss=$(field peak_rss_kb "$rust"); p_rss=$(field peak_rss_kb "$py")
r_p50=$(field ack_p50_ms "$rust"); p_p50=$(field ack_p50_ms "$py")
r_p99=$(field ack_p99_ms "$rust"); p_p99=$(field ack_p99_ms "$py")

printf '\n%-22s %14s %14s\n' "" "jitnode-stream" "python SDK"
printf '%-22s %14s %14s\n' "messages/s" "$r_tp" "$p_tp"
printf '%-22s %14s %14s\n' "ACK latency p50 (ms)" "$r_p50" "$p_p50"
printf '%-22s %14s %14s\n' "ACK latency p99 (ms)" "$r_p99" "$p_p99"
printf '%-22s %14s %14s\n' "peak RSS (KiB)" "$r_rss" "$p_rss"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
echo "rust_msgs_per_s=$r_tp python_msgs_per_s=$p_tp throughput_ratio=$(ratio "$r_tp" "$p_tp") rss_ratio=$(ratio "$r_rss" "$p_rss") ack_p99_ms=$r_p99"
