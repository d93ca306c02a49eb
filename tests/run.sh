#!/usr/bin/env bash
# Installs what is missing, builds into build/ and runs the test suite.
#   tests/run.sh            everything but tests labelled `slow`
#   tests/run.sh --all      everything
#   tests/run.sh -L unit    only one label (any ctest arguments are passed on)
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh

JOBS=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"

ctest_args=(--output-on-failure --test-dir build -j "$JOBS")
if [ "${1:-}" = "--all" ]; then
  shift
elif [ $# -eq 0 ]; then
  ctest_args+=(-LE slow)
fi
ctest "${ctest_args[@]}" "$@"
