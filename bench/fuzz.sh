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

log_dir=target/fuzz-logs
mkdir -p "$log_dir"

# fuzz/Cargo.lock is a lock of its own (the fuzz workspace is excluded from the root one).
# Left behind, it builds other versions of the shared crates than the ones tested, or
# fails to resolve offline. Every crate both locks have must be at a version the root pins.
lock_fix="fix: from the repository root, cp Cargo.lock fuzz/Cargo.lock && (cd fuzz && cargo metadata --format-version 1 >/dev/null), then commit fuzz/Cargo.lock"
lock_pairs() {
  awk '/^name = /{n=$3} /^version = /{v=$3; gsub(/"/, "", n); gsub(/"/, "", v); print n, v}' "$1" |
    sort -u
}
if ! cargo metadata --locked --format-version 1 >/dev/null 2>"$log_dir/lock.log"; then
  echo "fuzz.sh: fuzz/Cargo.lock does not match fuzz/Cargo.toml and the crates it uses:" >&2
  sed 's/^/  /' "$log_dir/lock.log" >&2
  echo "  $lock_fix" >&2
  exit 2
fi
drift=$(comm -23 <(lock_pairs Cargo.lock) <(lock_pairs ../Cargo.lock) |
  awk 'NR == FNR { root[$1]; next } $1 in root' <(lock_pairs ../Cargo.lock) -)
if [ -n "$drift" ]; then
  echo "fuzz.sh: fuzz/Cargo.lock pins versions the workspace's Cargo.lock does not:" >&2
  printf '  %s\n' "$drift" >&2
  echo "  $lock_fix" >&2
  exit 2
fi

# The whole build log is kept; on failure its errors and its end are shown, since the
# first error is often far from the last lines.
echo "fuzz.sh: building the targets (log: fuzz/$log_dir/build.log)" >&2
if ! cargo fuzz build >"$log_dir/build.log" 2>&1; then
  echo "fuzz.sh: cargo fuzz build failed; its errors:" >&2
  grep -n -E -A 12 '^(error|warning: build failed)|panicked|could not compile' \
    "$log_dir/build.log" | head -n 120 | sed 's/^/  /' >&2 || true
  echo "  ... last lines of fuzz/$log_dir/build.log:" >&2
  tail -n 25 "$log_dir/build.log" | sed 's/^/  /' >&2
  exit 2
fi

targets=$(cargo fuzz list)
total_targets=0 total_execs=0 total_crashes=0
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
