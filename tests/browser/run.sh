#!/usr/bin/env bash
# The browser suite: headless Debian Chromium and the official JS SDKs (pinned in
# package-lock.json) against the relay over HTTPS. Installs what is missing first: Chromium
# from Debian (no browser download) and the npm packages from the lockfile.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/browser: Chromium is missing; install it with: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get update -q && apt-get install -y -q chromium
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
export RELAYAPI_BIN="${RELAYAPI_BIN:-$PWD/../../target/debug/relayapi}"
if [ ! -x "$RELAYAPI_BIN" ]; then
  (cd ../.. && cargo build --bin relayapi)
fi
exec node run.mjs
