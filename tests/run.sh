#!/usr/bin/env bash
# The test command (README "Run the tests"): installs what the tests need, then checks
# formatting, lints and runs every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=(sip-tester tcpdump)
# SIPp and tcpdump for the real-SIP-peer transfer tests (tests/sipp.rs); later stages add
# PostgreSQL and Chromium here.
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "tests need: ${need_apt[*]} (run as root, or install them)" >&2
  fi
fi

cargo fmt --all -- --check
cargo clippy --all-targets --release -- -D warnings
# The summary line at the end counts every test of every binary.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --no-fail-fast -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) g += $(i-1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, g }' "$log"
exit "$status"
