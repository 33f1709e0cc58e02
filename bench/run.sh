#!/usr/bin/env bash
# relayapi benchmark: builds release binaries, starts a mock upstream and the relay (with
# governance on: every call's token opened, checked, counted and its usage recorded),
# drives load with oha, and prints one markdown table (also written to bench/results/),
# then system calls, context switches and futex wake-ups per request (bench/syscalls.py).
# When ../shared/bench exists (and PEERS is not 0) its nginx reverse proxy, LiteLLM and
# Portkey's gateway (JSON scenarios only: its streams fail on this Node) run in the same
# run, against the same upstream, and the ratios are printed.
#
#   bench/run.sh                 # everything (PEERS=auto)
#   PEERS=0 bench/run.sh         # relayapi alone, against its own mock
#   QUICK=1 bench/run.sh         # shorter runs, for a smoke test
#
# All traffic stays on 127.0.0.1; every load step is bounded by a count or a duration and
# by `timeout`. Servers run on SERVER_CPUS (default 1), oha on LOADGEN_CPUS (default 0).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

cargo build --release --bin relayapi --example mock_upstream --example bench_seed
if ! command -v oha >/dev/null; then
    cargo install oha --version 1.16.0 --locked
fi
python3 "$ROOT/bench/bench.py" "$@"
# System calls, context switches and futex wake-ups per request, beside nginx (perf trace
# needs root; PORTKEY=1 adds Portkey's gateway).
if [[ $EUID -eq 0 ]] && command -v perf >/dev/null; then
    N="${SYSCALL_REQUESTS:-20000}" PORTKEY="${PORTKEY:-1}" python3 "$ROOT/bench/syscalls.py"
else
    echo "bench/syscalls.py skipped: it needs root and perf (Debian's linux-perf)"
fi
