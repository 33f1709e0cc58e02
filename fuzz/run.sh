#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) and prints, per target,
# executions, coverage and whether it found anything. Needs the nightly toolchain and
# cargo-fuzz (installed when missing). Usage: fuzz/run.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(token_open forward_mapping body_policy sse_usage)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O >/dev/null
mkdir -p logs
status=0
printf '| target | seconds | executions | exec/s | coverage (edges) | features | result |\n|---|---|---|---|---|---|---|\n'
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="logs/$target.log"
  # -max_total_time bounds the run; the working corpus is corpus/<target>, seeds come
  # from the checked-in seeds/<target>. Crashes land in artifacts/<target>.
  if cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see fuzz/$log)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "$runs" "$rate" "$cov" "$ft" "$result"
done
exit $status
