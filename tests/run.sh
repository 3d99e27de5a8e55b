#!/usr/bin/env bash
# The test command (README "Run the tests"): installs what the tests need, then checks
# formatting, lints and runs every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=(sip-tester tcpdump kamailio rtpengine-daemon postgresql chromium)
# SIPp and tcpdump for the real-SIP-peer tests (tests/sipp.rs); Kamailio and rtpengine for the
# SBC tests (tests/sbc.rs: run by the tests, never as services); PostgreSQL for the catalogue
# tests (tests/catalogue.rs runs on SQLite and on PostgreSQL); Chromium for the web UI's
# browser test.
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    missing=()
    for p in "${need_apt[@]}"; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    # the SBC tests start their own Kamailio and rtpengine; a packaged service that started
    # on install would hold port 5060 on every address
    for svc in kamailio rtpengine-daemon; do
      if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
      fi
    done
  else
    echo "tests need: ${need_apt[*]} (run as root, or install them)" >&2
  fi
fi

# A PostgreSQL server for the catalogue tests: the distribution's cluster, started, with a
# role for the tests. Without it (not root, no package) those runs are skipped and say so.
if [ -z "${CALLVAULT_TEST_POSTGRES:-}" ] && [ "$(id -u)" = 0 ] && command -v pg_lsclusters >/dev/null; then
  if [ -z "$(pg_lsclusters -h)" ]; then
    pg_createcluster "$(ls /usr/lib/postgresql | sort -n | tail -1)" main >/dev/null
  fi
  read -r pg_ver pg_name pg_port _ < <(pg_lsclusters -h | head -1)
  pg_ctlcluster "$pg_ver" "$pg_name" start 2>/dev/null || true
  for _ in $(seq 50); do
    su postgres -c "psql -p $pg_port -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 0.2
  done
  su postgres -c "psql -p $pg_port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'callvault'\"" | grep -q 1 ||
    su postgres -c "psql -p $pg_port -qc \"CREATE ROLE callvault LOGIN SUPERUSER PASSWORD 'callvault'\""
  export CALLVAULT_TEST_POSTGRES="postgres://callvault:callvault@127.0.0.1:$pg_port/postgres"
fi

# An S3 server for the catalogue's bucket-storage test (tests/catalogue.rs): s3s-fs checks
# SigV4 signatures as AWS does. Built once into ~/.cargo/bin (about 7 minutes on 2 cores).
if ! command -v s3s-fs >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  cargo install --locked --quiet s3s-fs@0.14.1 --features binary ||
    echo "s3s-fs could not be installed: the S3 storage test will say SKIPPED" >&2
fi

# Playwright (playwright-core, no browser download: it drives Debian's chromium) for the web
# UI's browser test.
if command -v npm >/dev/null && { [ ! -d tests/ui/node_modules/playwright-core ] || [ ! -d tests/ui/node_modules/oidc-provider ]; }; then
  npm ci --prefix tests/ui --no-audit --no-fund --silent ||
    echo "playwright-core could not be installed: the browser test will say SKIPPED" >&2
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# The summary line at the end counts every test of every binary. A test whose real part is
# missing says SKIPPED and writes a line to $CALLVAULT_SKIP_LOG (tests/common/parts.rs); those
# count as skipped with libtest's ignored ones, never as passed. Under CI=true such a test
# fails instead (this script installs every part, so a skip there is a broken install).
log=$(mktemp)
skips=$(mktemp)
trap 'rm -f "$log" "$skips"' EXIT
export CALLVAULT_SKIP_LOG="$skips"
set +e
cargo test --workspace --release --no-fail-fast -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Every fuzz target for a short smoke run (fuzz/run.sh; README "Fuzzing"). It needs the nightly
# toolchain, which no package provides: without it the smoke run is one skipped test, under
# CI too. A finding fails the run.
fuzz_log=$(mktemp)
trap 'rm -f "$log" "$skips" "$fuzz_log"' EXIT
if rustup run nightly rustc --version >/dev/null 2>&1; then
  if ! fuzz/run.sh "${CALLVAULT_FUZZ_SECONDS:-20}" 2>&1 | tee "$fuzz_log"; then
    echo "fuzz smoke run: findings (see above)" >&2
    status=1
  fi
else
  echo "SKIPPED: fuzz smoke run: the nightly toolchain is not installed (rustup toolchain install nightly)" | tee -a "$skips"
fi
if [ -s "$skips" ]; then
  echo
  echo "Tests that did not run (their real part is missing):"
  sort "$skips"
fi
# each fuzz target that ran clean counts as a passed test, each finding as a failed one
awk -v skipped="$(sort -u "$skips" | wc -l)" \
    -v fuzz_ok="$(grep -c ' clean$' "$fuzz_log" || true)" -v fuzz_bad="$(grep -c ' FOUND ' "$fuzz_log" || true)" '
     /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) g += $(i-1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p - skipped + fuzz_ok, f + fuzz_bad, g + skipped }' "$log"
exit "$status"
