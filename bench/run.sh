#!/usr/bin/env bash
# Sluice benchmark harness: bench/run.sh [--quick] [--build-dir DIR] [--results FILE] [--only 1 2 ...]
#
# Runs the workloads of bench/README.md against the binaries in the build
# directory (default: build/ next to this folder; it needs the targets
# sluice, clickstream, bench_baseline and state_bench), prints a table and
# writes the figures as JSON (default bench/results/latest.json; --quick:
# bench/results/quick.json). --quick uses small inputs and checks that every
# job's counts equal the baseline's; it does not judge speed. Exit status 1
# when a check fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Debian's python3 (standard library only).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$here/bench.py" "$@"
