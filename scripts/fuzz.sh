#!/usr/bin/env bash
# Builds the libFuzzer targets (the fuzz preset: clang, ASan, UBSan; tests/fuzz/) and runs each
# from its seed corpus for SECONDS (default 60), as many at once as there are cores. A crash, a
# leak, a sanitizer report or an input slower than 30 s fails; its input is kept in
# build/fuzz/runs/<fuzzer>/ (replay: build/fuzz/tests/fuzz/<fuzzer> <that file>).
# New inputs the fuzzers find go to build/fuzz/runs/<fuzzer>/corpus, not into the repository.
# Usage: scripts/fuzz.sh [SECONDS [FUZZER...]]        (docs/testing.md)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
scripts/install-deps.sh fuzz
scripts/build.sh fuzz fuzzers >/dev/null

if [ $# -gt 0 ]; then
  fuzzers=("$@")
else
  fuzzers=()
  for dir in tests/fuzz/corpus/*/; do fuzzers+=("$(basename "$dir")"); done
fi
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)

run_one() {
  local name=$1 runs=build/fuzz/runs/$1
  rm -rf "$runs" && mkdir -p "$runs/corpus"
  if ASAN_SYMBOLIZER_PATH="$symbolizer" UBSAN_OPTIONS=print_stacktrace=1 \
     "build/fuzz/tests/fuzz/$name" "$runs/corpus" "tests/fuzz/corpus/$name" \
       -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 \
       -artifact_prefix="$runs/" -print_final_stats=1 >"$runs/log" 2>&1; then
    echo "fuzz: $name: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$runs/log" |
      grep -o '[0-9]*$') runs in ${seconds}s)"
  else
    echo "fuzz: $name: FAILED; the end of $runs/log:" >&2
    tail -n 60 "$runs/log" >&2
    return 1
  fi
}

failed=0
pids=()
for name in "${fuzzers[@]}"; do
  if [ ${#pids[@]} -ge "$(nproc)" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
  run_one "$name" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit $failed
