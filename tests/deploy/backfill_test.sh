#!/usr/bin/env bash
# The backfill recipe end to end, driven by the Airflow DAG of deploy/airflow
# (without Airflow: tests/deploy/airflow_dag_check.py renders and runs its
# commands as Airflow would) against deploy/local's cluster:
#   1. the DAG compiles, uses only BashOperator, and is backfill >> check_rows;
#   2. a day of seeded clicks (and 10 minutes of each neighbouring day) is in
#      Kafka with event-time timestamps;
#   3. the DAG's run for that day reads Kafka (by offsets here: the dev
#      broker cannot look up offsets by time), keeps the day (--arg from/to),
#      upserts into Postgres and checks the row count; page_counts equals
#      counts computed here from the same events;
#   4. a second run of the same day changes nothing: no double count.
set -euo pipefail
SRC=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE="$BUILD/sluice"
DIR=$(mktemp -d /tmp/sluice-backfill-test.XXXXXX)
chmod 755 "$DIR"  # the postgres user must reach the cluster directory
source "$SRC/tests/deploy/lib.sh"
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -d "$DIR/cluster/logs" ]; then
    for f in "$DIR"/cluster/logs/*.log; do echo "--- $f"; tail -n 15 "$f"; done
  fi
  "$SRC/deploy/local/down.sh" --dir "$DIR/cluster" >/dev/null 2>&1 || true
  rm -rf "$DIR"
  exit $rc
}
trap cleanup EXIT
DAG="$SRC/deploy/airflow/clickstream_backfill.py"
CHECK=(/usr/bin/python3 "$SRC/tests/deploy/airflow_dag_check.py" "$DAG")

step "the DAG: syntax, only BashOperator, backfill >> check_rows"
"${CHECK[@]}" || fail "the DAG does not pass the static check"

step "deploy/local/up.sh (no generator, no Prometheus)"
"$SRC/deploy/local/up.sh" --dir "$DIR/cluster" --build "$BUILD" --rate 0 --no-prometheus --random-ports >/dev/null
source "$DIR/cluster/env"
export SLUICE_BIN="$SLUICE" CLICKSTREAM_JOB="$BUILD/jobs/clickstream/libclickstream.so"
# The dev broker (librdkafka's mock cluster) answers every offsets-for-times
# lookup with -1 (connectors/kafka/README.md), so start=ts:/stop=ts: cannot
# select history on it: the DAG reads the whole topic here and the job's
# --arg from/to keeps the day, which gives the same rows as a Kafka broker
# reading the day +- 5 minutes by time.
export BACKFILL_KAFKA_BOUNDS="start=earliest&stop=latest"

DAY=2026-12-01
DAY_MS=$(( $(date -u -d "$DAY" +%s) * 1000 ))
NEXT_MS=$(( DAY_MS + 86400000 ))
step "a day of clicks ($DAY) and 10 minutes on each side into Kafka, Kafka timestamps = event time"
# 0.5 clicks per second of event time from 10 minutes before the day to 10
# minutes after it; 10 % out of order by up to 2 s; 0.5 % malformed.
GEN=(--count 44400 --seed 11 --pages 30 --start-ts $(( DAY_MS - 600000 )) --events-per-second 0.5
     --out-of-order 0.1 --max-delay 2s --late 0 --malformed 0.005)
"$SLUICE" gen "${GEN[@]}" --output "$DIR/history.ndjson" 2>/dev/null || fail "gen --output failed"
"$SLUICE" gen "${GEN[@]}" --kafka "$KAFKA_BOOTSTRAP" --topic clicks --kafka-timestamp event 2>"$DIR/gen.log" \
  || { cat "$DIR/gen.log"; fail "gen --kafka failed"; }

rows() { psql -qAtX -F $'\t' -c 'SELECT window_start, window_end, page_url, count FROM page_counts'; }
for run in 1 2; do
  step "DAG run $run for $DAY: backfill, check_rows"
  "${CHECK[@]}" --run "$DAY" > "$DIR/dag-$run.log" 2>&1 || { cat "$DIR/dag-$run.log"; fail "DAG run $run failed"; }
  grep -E "^$DAY: job " "$DIR/dag-$run.log" || fail "check_rows said nothing"
  step "page_counts equals the day's clicks counted here (run $run)"
  "$SRC/tests/deploy/check_page_counts.py" "$DIR/history.ndjson" --window-ms 60000 --from "$DAY_MS" --to "$NEXT_MS" \
    -- bash -c "$(declare -f rows); rows" || fail "page_counts after run $run is not the reference"
done
JOBS=$("$SLUICE" list -o json | python3 -c 'import json, sys; print(" ".join(j["state"] for j in json.load(sys.stdin)))')
[ "$JOBS" = "FINISHED FINISHED" ] || fail "the two backfill jobs are not both FINISHED: $JOBS"
step "passed"
