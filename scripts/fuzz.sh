#!/usr/bin/env bash
# Run every fuzz target of fuzz/ for a while (not part of CI).
#
#   scripts/fuzz.sh [seconds-per-target]      (default 60)
#
# wire_decode, the fastest, runs twice as long. The toolchain is stable:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags. Set
# FUZZ_SANITIZER=none to build without AddressSanitizer (faster, still
# coverage-guided). Inputs that crash land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

command -v cargo-fuzz >/dev/null || nice -n 19 cargo install cargo-fuzz --locked
nice -n 19 cargo fuzz build -O -s "$sanitizer"

status=0
for target in wire_decode change_validation change_mutate serve_request; do
  t="$secs"
  [ "$target" = wire_decode ] && t=$((secs * 2))
  log="target/fuzz-$target.log"
  mkdir -p "corpus/$target"
  start=$(date +%s)
  if nice -n 19 cargo fuzz run -O -s "$sanitizer" "$target" "corpus/$target" -- \
      -max_total_time="$t" -timeout=20 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and artifacts/$target/)"
    status=1
  fi
  wall=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  contained=$(grep -c 'inside the store' "$log" || true)
  findings=$(grep -o 'finding #[0-9]*' "$log" | tail -1 || true)
  printf '%-18s %12s inputs %6ss %8s exec/s  %s  (contained panics printed: %s; %s)\n' \
    "$target" "$runs" "$wall" "$rate" "$result" "$contained" "${findings:-no reload findings}"
done
exit "$status"
