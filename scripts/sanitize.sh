#!/usr/bin/env bash
# Builds a sanitizer preset (asan-ubsan or tsan) and runs the test suites under it; any report
# fails the test that made it (docs/testing.md). CI runs it after scripts/test.sh.
# Usage: scripts/sanitize.sh asan-ubsan|tsan [ctest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:?usage: scripts/sanitize.sh asan-ubsan|tsan [ctest arguments...]}"
shift
case "$preset" in
  asan-ubsan | tsan) ;;
  *) echo "sanitize: unknown preset '$preset' (asan-ubsan or tsan)" >&2; exit 2 ;;
esac
scripts/install-deps.sh
scripts/build.sh "$preset"

# Child processes (the strowger binary under cli_test and crash_test) inherit these.
supp="$PWD/tests/sanitizers"
export ASAN_OPTIONS="detect_leaks=1:strict_init_order=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1"
export TSAN_OPTIONS="suppressions=$supp/tsan.supp:second_deadlock_stack=1:print_suppressions=0"

ctest --test-dir "build/$preset" --output-on-failure -j "$(nproc)" "$@"
