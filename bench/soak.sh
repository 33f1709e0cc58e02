#!/usr/bin/env bash
# Soak run: builds release binaries, then drives JSON and streamed calls with periodic
# revocations through one relay for SOAK_SECONDS (default 600), sampling RSS and open
# descriptors, and checks that counts equal the calls made. Exit status 1 on any unexpected
# error. All traffic on 127.0.0.1, bounded by the duration and by `timeout`.
#
#   bench/soak.sh                    # 10 minutes
#   SOAK_SECONDS=60 bench/soak.sh    # a short one
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
cargo build --release --bin relayapi --example mock_upstream
if ! command -v oha >/dev/null; then
    cargo install oha --version 1.16.0 --locked
fi
exec python3 "$ROOT/bench/soak.py" "$@"
