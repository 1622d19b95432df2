#!/usr/bin/env bash
# Fuzzing: runs every cargo-fuzz target of fuzz/ for N seconds each (first argument, else
# FUZZ_SECONDS, else 10), starting from the committed seeds in fuzz/corpus/<target>/ (new
# inputs go to fuzz/target/corpus/<target>/, so the seeds stay as committed). Prints per
# target its execs and crashes; a crash's input is kept in fuzz/artifacts/<target>/.
# Installs cargo-fuzz if missing. The sanitizer flags need nightly; RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them.
# Last line: targets=.. seconds_each=.. total_execs=.. crashes=..; exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-${FUZZ_SECONDS:-10}}"
case "$seconds" in
'' | *[!0-9]*)
  echo "fuzz.sh: seconds must be a whole number, not '$seconds'" >&2
  exit 2
  ;;
esac
export RUSTC_BOOTSTRAP=1
# The fuzz build has its own target dir (fuzz/target); a shared one would mix
# sanitizer-instrumented artifacts into normal builds.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
cargo fuzz build 2>&1 | tail -n 3

targets=$(cargo fuzz list)
total_targets=0 total_execs=0 total_crashes=0
log_dir=target/fuzz-logs
mkdir -p "$log_dir"
printf '%-16s %12s %8s\n' target execs crashes
for t in $targets; do
  work="target/corpus/$t"
  mkdir -p "$work" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  status=0
  # The first corpus dir receives new inputs; the committed seeds are only read.
  cargo fuzz run "$t" "$work" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    >"$log_dir/$t.log" 2>&1 || status=$?
  after=$(find "artifacts/$t" -type f | wc -l)
  crashes=$((after - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    # Failed without an artifact (a build or start-up failure): still a failure.
    crashes=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_dir/$t.log" | tail -n 1)
  execs=${execs:-0}
  printf '%-16s %12s %8s\n' "$t" "$execs" "$crashes"
  if [ "$crashes" -ne 0 ]; then
    echo "  $t failed (exit $status); log: fuzz/$log_dir/$t.log" >&2
    grep -m 5 -E 'panicked|ERROR|SUMMARY|Test unit written' "$log_dir/$t.log" | sed 's/^/  /' >&2 || true
  fi
  total_targets=$((total_targets + 1))
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + crashes))
done
echo "targets=$total_targets seconds_each=$seconds total_execs=$total_execs crashes=$total_crashes"
[ "$total_crashes" -eq 0 ]
