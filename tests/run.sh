#!/usr/bin/env bash
# The test command (README "Run the tests"): installs what the tests need, then checks
# formatting, lints and runs every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=(sip-tester tcpdump)
# (later stages add packages here: sip-tester for SIPp, postgresql, chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "tests need: ${need_apt[*]} (run as root, or install them)" >&2
  fi
fi

cargo fmt --all -- --check
cargo clippy --all-targets --release -- -D warnings
cargo test --release -- --test-threads=2
