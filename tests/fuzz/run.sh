#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 60), one after another, on its corpus in
# tests/fuzz/corpus/<target>/ (new inputs are added there; minimise with -merge=1, see
# docs/fuzzing.md). Exits non-zero on the first crash, timeout, leak or out-of-memory report.
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
build="${2:-build-fuzz}"
shift $(( $# > 2 ? 2 : $# )) || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp | sed 's/^fuzz_//')"); done
fi
if [ ! -d "$build" ]; then
  CC=clang-14 CXX=clang++-14 cmake -B "$build" -DMOE_FUZZ=ON -DMOE_BUILD_TESTS=OFF -DMOE_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" -j"$(nproc)"
mkdir -p "$build/fuzz-artifacts"
for t in "${targets[@]}"; do
  corpus="tests/fuzz/corpus/$t"
  mkdir -p "$corpus"
  echo "== fuzz_$t: ${secs}s"
  # One job; the budget is the target's own (Jinja) or the limits below. Leaks count as crashes.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build/tests/fuzz/fuzz_$t" "$corpus" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/${t}-" 2>&1 |
    grep -E "^(#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|Done )" || true
  if [ "${PIPESTATUS[0]}" -ne 0 ]; then
    echo "fuzz_$t failed: see $build/fuzz-artifacts/" >&2
    exit 1
  fi
done
