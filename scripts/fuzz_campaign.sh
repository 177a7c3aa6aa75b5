#!/usr/bin/env bash
# Long fuzz campaigns (issue 13: "run each for an hour"), resumable, counted in CPU time.
# Each FUZZER runs at nice 19 from its corpus in DIR/<fuzzer>/corpus (plus the seeds) until it
# has used BUDGET seconds of CPU in all its campaigns together (DIR/<fuzzer>/cpu_used), two at
# once. Stopping it (kill, a reboot) loses nothing but the current minute: run it again.
# Crash, leak and timeout inputs are kept in DIR/<fuzzer>/; one line per finished campaign goes
# to DIR/summary. Never SIGSTOP a fuzzer: libFuzzer counts wall time against -timeout and
# reports the paused input as a timeout.
#
# Usage: scripts/fuzz_campaign.sh DIR [FUZZER...]     (default: every fuzzer; BUDGET=3600)
#        scripts/fuzz_campaign.sh --merge DIR [FUZZER...]
#   --merge adds to tests/fuzz/corpus/<fuzzer> only the inputs of DIR's corpus that add
#   coverage (libFuzzer -merge=1), so that what a campaign found survives a fresh machine.
# docs/testing.md, "Fuzz campaigns".
set -euo pipefail
cd "$(dirname "$0")/.."
merge=0
if [ "${1:-}" = "--merge" ]; then
  merge=1
  shift
fi
dir=$(realpath -m "${1:?usage: fuzz_campaign.sh [--merge] DIR [FUZZER...]}")
shift
budget=${BUDGET:-3600}
if [ $# -gt 0 ]; then
  fuzzers=("$@")
else
  fuzzers=()
  for seeds in tests/fuzz/corpus/*/; do fuzzers+=("$(basename "$seeds")"); done
fi
scripts/build.sh fuzz fuzzers >/dev/null
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)

if [ $merge = 1 ]; then
  for name in "${fuzzers[@]}"; do
    [ -d "$dir/$name/corpus" ] || continue
    before=$(find "tests/fuzz/corpus/$name" -type f | wc -l)
    "build/fuzz/tests/fuzz/$name" -merge=1 -rss_limit_mb=2560 -timeout=30 \
      "tests/fuzz/corpus/$name" "$dir/$name/corpus" >"$dir/$name/merge.log" 2>&1
    echo "$name: $(($(find "tests/fuzz/corpus/$name" -type f | wc -l) - before)) inputs added"
  done
  exit 0
fi

campaign() {
  local name=$1 work=$dir/$1 used=0 ticks
  mkdir -p "$work/corpus"
  [ -f "$work/cpu_used" ] && used=$(cat "$work/cpu_used")
  if [ "$used" -ge "$budget" ]; then
    echo "$name: done ($used s of CPU)"
    return 0
  fi
  ASAN_SYMBOLIZER_PATH="$symbolizer" UBSAN_OPTIONS=print_stacktrace=1 \
    nice -n 19 "build/fuzz/tests/fuzz/$name" "$work/corpus" "tests/fuzz/corpus/$name" \
    -max_total_time=1000000 -timeout=30 -rss_limit_mb=2560 -artifact_prefix="$work/" \
    -print_final_stats=1 >>"$work/log" 2>&1 &
  local pid=$! now=$used rc=0
  ticks=$(getconf CLK_TCK)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    local t
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || break
    now=$((used + t / ticks))
    echo "$now" >"$work/cpu_used"
    if [ "$now" -ge "$budget" ]; then kill -INT "$pid" 2>/dev/null || true; fi
  done
  wait "$pid" || rc=$?
  local found
  found=$(find "$work" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | wc -l)
  echo "$(date -u +%FT%TZ) $name: exit $rc, $(cat "$work/cpu_used") s of CPU in all," \
    "$(find "$work/corpus" -type f | wc -l) corpus inputs, $found findings" | tee -a "$dir/summary"
}

pids=()
for name in "${fuzzers[@]}"; do
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
  campaign "$name" &
  pids+=($!)
done
wait
