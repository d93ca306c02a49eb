#!/usr/bin/env bash
# The web dashboard's browser test: a jobmanager and two taskmanagers on
# free loopback ports, the clickstream job reading a file at a steady rate,
# then tests/dashboard/dashboard_test.mjs in Debian's headless Chromium via
# playwright-core (installed here with `npm ci` from package-lock.json).
# The screenshot of the job graph is kept: $SLUICE_BUILD_DIR/test-artifacts/dashboard.png.
# Skipped (77) where chromium or node is missing.
set -euo pipefail
SRC=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE="$BUILD/sluice"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "SKIP: $CHROMIUM missing (deploy/install-deps.sh installs chromium)"; exit 77; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: node/npm missing"; exit 77; }
T0=$(date +%s)
step() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }
DIR=$(mktemp -d /tmp/sluice-dashboard-test.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then for f in "$DIR"/*.log; do echo "--- $f"; tail -n 20 "$f"; done; fi
  rm -rf "$DIR"
  exit $rc
}
trap cleanup EXIT

step "npm ci (playwright-core, pinned by package-lock.json)"
WORK="$BUILD/dashboard-test"
mkdir -p "$WORK" "$BUILD/test-artifacts"
cp "$SRC/tests/dashboard/package.json" "$SRC/tests/dashboard/package-lock.json" "$SRC/tests/dashboard/dashboard_test.mjs" "$WORK/"
(cd "$WORK" && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci failed"; exit 1; }

step "a jobmanager, two taskmanagers, the clickstream job at 3000 clicks/s"
"$SLUICE" gen --count 400000 --seed 9 --pages 40 --output "$DIR/clicks.ndjson" 2>/dev/null
"$SLUICE" jobmanager --bind 127.0.0.1:0 --http-bind 127.0.0.1:0 --metrics-bind "" --data-dir "$DIR/jm" \
  --checkpoint-interval 500ms > "$DIR/jobmanager.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$DIR/jm/http.address" ] && [ -s "$DIR/jm/jobmanager.address" ] && break; sleep 0.1; done
JM=$(cat "$DIR/jm/jobmanager.address"); HTTP="http://$(cat "$DIR/jm/http.address")"
for i in 1 2; do
  "$SLUICE" taskmanager --jobmanager "$JM" --slots 2 --id "tm-$i" --work-dir "$DIR/tm-$i" \
    --token-file "$DIR/jm/token" --metrics-bind "" > "$DIR/tm-$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 200); do
  n=$(curl -sf "$HTTP/taskmanagers" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [ "$n" = 2 ] && break
  sleep 0.1
done
JOB=$("$SLUICE" submit "$BUILD/jobs/clickstream/libclickstream.so" --jobmanager "$JM" --token-file "$DIR/jm/token" \
  --parallelism 2 --arg "source=file://$DIR/clicks.ndjson?rate=3000" --arg "sink=file://$DIR/counts.ndjson" \
  --arg "dlq=file://$DIR/dlq.ndjson" --arg window=10s)

step "dashboard_test.mjs against $HTTP (job $JOB)"
CHROMIUM="$CHROMIUM" node "$WORK/dashboard_test.mjs" "$HTTP" "$JOB" "$DIR/jm/token" "$BUILD/test-artifacts/dashboard.png"
step "screenshot: $BUILD/test-artifacts/dashboard.png"
