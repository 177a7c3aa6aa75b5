#!/usr/bin/env bash
# Long fuzz campaigns (issue 13: "run each for an hour"), resumable, counted in CPU time.
# Each FUZZER runs at nice 19 from its corpus in DIR/<fuzzer>/corpus (plus the seeds) until it
# has used BUDGET seconds of CPU in all its campaigns together (DIR/<fuzzer>/cpu_used), two at
# once. Stopping it (kill, a reboot) loses nothing but the current minute: run it again.
# Crash, leak and timeout inputs are kept in DIR/<fuzzer>/; one line per finished campaign goes
# to DIR/summary. libFuzzer counts -timeout in wall time, so a starved input (nice 19 on a
# busy machine) can "time out": each timeout input is run again alone, and one that passes is
# moved to DIR/<fuzzer>/starved/ and the campaign goes on. Never SIGSTOP a fuzzer (the same).
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

# One run of NAME's fuzzer from its corpus until its CPU total reaches the budget (or it
# finds something). Prints its exit status.
run_once() {
  local name=$1 work=$dir/$1 used=0 ticks rc=0
  [ -f "$work/cpu_used" ] && used=$(cat "$work/cpu_used")
  ASAN_SYMBOLIZER_PATH="$symbolizer" UBSAN_OPTIONS=print_stacktrace=1 \
    nice -n 19 "build/fuzz/tests/fuzz/$name" "$work/corpus" "tests/fuzz/corpus/$name" \
    -max_total_time=1000000 -timeout=30 -rss_limit_mb=2560 -artifact_prefix="$work/" \
    -print_final_stats=1 >>"$work/log" 2>&1 &
  local pid=$!
  ticks=$(getconf CLK_TCK)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    local t now
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || break
    [ -n "$t" ] || break
    now=$((used + t / ticks))
    echo "$now" >"$work/cpu_used"
    if [ "$now" -ge "$budget" ]; then kill -INT "$pid" 2>/dev/null || true; fi
  done
  wait "$pid" || rc=$?
  echo "$rc"
}

campaign() {
  local name=$1 work=$dir/$1
  mkdir -p "$work/corpus" "$work/starved"
  local runs=0
  while [ "$(cat "$work/cpu_used" 2>/dev/null || echo 0)" -lt "$budget" ] && [ $runs -lt 50 ]; do
    runs=$((runs + 1))
    local rc
    rc=$(run_once "$name")
    # libFuzzer's -timeout is wall time: at nice 19 on a busy machine an input can wait long
    # enough to "time out". A timeout input that runs alone within the limit was starved,
    # not a hang: it is set aside and the campaign goes on.
    local input
    for input in "$work"/timeout-* "$work"/slow-unit-*; do
      [ -e "$input" ] || continue
      if timeout 60 "build/fuzz/tests/fuzz/$name" -timeout=30 -rss_limit_mb=2560 "$input" \
        >/dev/null 2>&1; then
        mv "$input" "$work/starved/"
      fi
    done
    # Stop at a finding, or when interrupted (72: the budget is spent, or someone stopped it).
    if [ -n "$(find "$work" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o \
      -name 'timeout-*' -o -name 'oom-*' \))" ] || [ "$rc" = 72 ]; then
      break
    fi
  done
  local found
  found=$(find "$work" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
  echo "$(date -u +%FT%TZ) $name: $(cat "$work/cpu_used") s of CPU in all," \
    "$(find "$work/corpus" -type f | wc -l) corpus inputs, $found findings," \
    "$(find "$work/starved" -type f | wc -l) starved inputs set aside" | tee -a "$dir/summary"
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
