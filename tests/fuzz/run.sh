#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (into build/fuzz
# unless --build-dir) and runs each for --seconds (default 30) over its
# corpus: the committed seeds and regression inputs in tests/fuzz/corpus/<target>
# (read only) plus a scratch corpus in the build dir that keeps what the
# runs found. Exits non-zero on the first crash, leak or timeout; the input
# that caused it is in <build-dir>/crashes/. Fix the bug, then commit that
# input to tests/fuzz/corpus/<target>/ so it is replayed on every run.
#   tests/fuzz/run.sh [--seconds N] [--build-dir DIR] [TARGET...]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SECONDS_EACH=30
BUILD="$REPO/build/fuzz"
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_json_record fuzz_frames fuzz_checkpoint_metadata fuzz_config)
command -v clang++ >/dev/null || { echo "run.sh: clang++ missing (deploy/install-deps.sh installs clang)" >&2; exit 1; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$HERE" -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug "${launcher[@]}" >/dev/null
nice cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]}"

mkdir -p "$BUILD/crashes"
status=0
for t in "${TARGETS[@]}"; do
  seeds="$HERE/corpus/$t"
  work="$BUILD/corpus/$t"
  mkdir -p "$work" "$seeds"
  dict=()
  [ -f "$HERE/$t.dict" ] && dict=(-dict="$HERE/$t.dict")
  echo "fuzz: $t for ${SECONDS_EACH}s ($(ls "$seeds" | wc -l) seeds and regressions)"
  # Seeds first (read only, never minimized away), new finds go to $work.
  if ! nice "$BUILD/$t" "$work" "$seeds" "${dict[@]}" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
      -max_len=65536 -timeout=10 -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$t-" \
      >"$BUILD/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; the input is in $BUILD/crashes/, the log in $BUILD/$t.log" >&2
    tail -40 "$BUILD/$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$BUILD/$t.log" | tail -2 | sed "s/^/fuzz: $t: /"
  fi
done
exit $status
