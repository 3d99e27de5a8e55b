#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, seeded from the repository's
# captures and configuration, and prints per target: executions, coverage, findings.
#
#   fuzz/run.sh 20                  # the test command's smoke run
#   fuzz/run.sh 1800                # a campaign: 30 minutes per target
#   fuzz/run.sh 600 net_stream sip_message
#
# Needs the nightly toolchain (libFuzzer instrumentation); installs cargo-fuzz if missing.
# A crash, a failed invariant, a leak, a timeout or running out of memory stops that target,
# leaves the input in fuzz/artifacts/<target>/ and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(net_frame net_stream sip_message hep rtp_sequence capture_file segment_open pipeline call_document agent_config id_token agent_health)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: the nightly toolchain is not installed (rustup toolchain install nightly)" >&2
  exit 3
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi

# Seeds: the capture corpus (whole files for the file targets; single frames, SIP messages
# and HEP packets cut out of them for the others), the example configurations, and call
# documents in the agents' upload format.
python3 seeds.py ../tests/corpus/pcaps ../config corpus

cargo +nightly fuzz build -O
failed=()
printf '%-14s %12s %8s %8s  %s\n' target executions cov features result
for t in "${targets[@]}"; do
  log=$(mktemp)
  max_len=4096
  case $t in net_stream | capture_file | pipeline) max_len=131072 ;; esac
  set +e
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  status_line=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$status_line" | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' <<<"$status_line" | grep -o '[0-9]*' || true)
  if [ $rc -eq 0 ]; then
    result=clean
  else
    result="FOUND (see fuzz/artifacts/$t/)"
    failed+=("$t")
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
  fi
  printf '%-14s %12s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
  rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz findings in: ${failed[*]}" >&2
  exit 1
fi
