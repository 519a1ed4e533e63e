#!/usr/bin/env bash
# Runs every fuzz target in turn (one at a time: the machines have 2 cores).
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# Needs cargo-fuzz and a nightly toolchain (or RUSTC_BOOTSTRAP=1 on stable).
# Set XMPP_FUZZ_SKIP_KNOWN (see fuzz_targets/common.rs) to step over bugs
# already reported. Logs go to fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(xml_parse stream_split stanza_roundtrip jid etf)
toolchain=+nightly
rustup run nightly rustc --version >/dev/null 2>&1 || { toolchain=; export RUSTC_BOOTSTRAP=1; }
mkdir -p fuzz/logs
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "== $t (${secs}s)"
  if cargo $toolchain fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$secs" -dict=fuzz/xmpp.dict -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1; then
    grep -E '^Done|stat::(number_of_executed_units|average_exec_per_sec)' "fuzz/logs/$t.log" || true
  else
    status=1
    grep -E 'panicked' -A3 "fuzz/logs/$t.log" | head -8 || true
    grep -E 'Test unit written' "fuzz/logs/$t.log" || true
  fi
done
exit $status
