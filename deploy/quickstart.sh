#!/usr/bin/env bash
# Installs what is missing, builds Sluice, starts the local cluster
# (deploy/local/up.sh: dev-kafka, PostgreSQL, Prometheus, jobmanager, two
# taskmanagers, a click generator, a page-view generator and the funnel's
# push API), submits two jobs beside each other:
#   clickstream      Kafka -> clicks per page per one-minute window -> Postgres
#                    exactly-once, and live gauges on the taskmanagers' /metrics;
#   sessions_funnel  Kafka page views -> sessions -> Postgres (upsert, exactly-once),
#                    and the conversion funnel per minute -> the push API
#                    (`sluice dev-receiver`) and Prometheus counters,
# shows their progress, then prints the latest results and where to look.
# The cluster keeps running until deploy/local/down.sh.
#
# Environment: SLUICE_LOCAL_DIR (default /tmp/sluice-local), CLICK_RATE
# (events/s, default 200), PAGEVIEW_RATE (page views/s, default 100),
# QUICKSTART_WATCH (seconds of progress, default 75).
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target sluice clickstream sessions_funnel fraud sluice-scorer

export SLUICE_LOCAL_DIR=${SLUICE_LOCAL_DIR:-/tmp/sluice-local}
WATCH=${QUICKSTART_WATCH:-75}
if [ -f "$SLUICE_LOCAL_DIR/env" ]; then
  echo "== stopping the local cluster left in $SLUICE_LOCAL_DIR"
  deploy/local/down.sh
fi
echo
echo "== starting the local cluster in $SLUICE_LOCAL_DIR"
deploy/local/up.sh --rate "${CLICK_RATE:-200}" --pages 50 --pageview-rate "${PAGEVIEW_RATE:-100}" --gap 2m
# shellcheck disable=SC1091
source "$SLUICE_LOCAL_DIR/env"
echo
echo "== dashboard: $JOBMANAGER_HTTP/  (open it now: the job appears there once submitted)"

echo
echo "== submitting the clickstream job (parallelism 2, checkpoints every 5 s)"
JOB_ID=$(build/sluice submit build/jobs/clickstream/libclickstream.so --parallelism 2 --checkpoint-interval 5s \
  --arg source="kafka://$KAFKA_BOOTSTRAP/clicks?start=earliest" \
  --arg sink="postgres://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE?table=page_counts&mode=upsert&key=window_start,page_url&create_table=true" \
  --arg metrics="prometheus:clicks_per_page?labels=page_url&value=count&group=window_start" \
  --arg dlq="kafka://$KAFKA_BOOTSTRAP/clicks_dlq")
echo "job $JOB_ID"

echo
echo "== submitting the sessions_funnel job (sessions after 2 min of inactivity; funnel / -> /product/* -> /cart -> /checkout)"
SF_JOB_ID=$(build/sluice submit build/jobs/sessions_funnel/libsessions_funnel.so \
  --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" --parallelism 2 --checkpoint-interval 5s \
  --arg source="kafka://$KAFKA_BOOTSTRAP/pageviews?start=earliest" \
  --arg sessions="postgres://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE?table=sessions&mode=upsert&key=session_id&delete_when=retracted&create_table=true" \
  --arg funnel_sink="$FUNNEL_URL?auth_token=file:$FUNNEL_TOKEN_FILE" \
  --arg 'funnel=/,/product/*,/cart,/checkout' --arg gap="$SESSION_GAP" --arg allowed_lateness=30s --arg metrics=true \
  --arg dlq="kafka://$KAFKA_BOOTSTRAP/pageviews_dlq")
echo "job $SF_JOB_ID"

echo
echo "== submitting the fraud job (logins, API errors, payments -> rules, CEP, scorer -> alerts, audit trail)"
FR_JOB_ID=$(build/sluice submit build/jobs/fraud/libfraud.so --parallelism 2 --checkpoint-interval 5s \
  --arg logins="kafka://$KAFKA_BOOTSTRAP/logins?start=earliest" \
  --arg api_errors="kafka://$KAFKA_BOOTSTRAP/api_errors?start=earliest" \
  --arg transactions="kafka://$KAFKA_BOOTSTRAP/transactions?start=earliest" \
  --arg rules="kafka://$KAFKA_BOOTSTRAP/rules?start=earliest" \
  --arg alerts="kafka://$KAFKA_BOOTSTRAP/alerts?delivery=exactly-once&key=alert_id" \
  --arg siem="$FRAUD_SIEM_URL?auth_token=file:$FRAUD_SIEM_TOKEN_FILE&linger=100ms" \
  --arg audit="file://$SLUICE_LOCAL_DIR/lake/audit/?partition=dt:ts:date,hour:ts:hour" \
  --arg scorer="$FRAUD_SCORER" --arg scorer_token="file:$FRAUD_SCORER_TOKEN_FILE" \
  --arg dlq="kafka://$KAFKA_BOOTSTRAP/fraud_dlq")
echo "job $FR_JOB_ID"

echo
echo "== progress for ${WATCH}s (windows are one minute: the first rows appear once a minute has closed)"
progress() {
  curl -sf "$JOBMANAGER_HTTP/jobs/$JOB_ID" | python3 -c '
import json, sys
j = json.load(sys.stdin)
srcs = {v["id"] for v in j["vertices"] if v["name"].startswith("clicks")}
src = sum(t["records_out"] for t in j["subtasks"] if t["vertex"] in srcs)
print("state %-9s restarts %d  clicks read %7d  checkpoints %d" % (
    j["state"], j["restarts"], src, j["checkpoints"]["completed"]), end="")'
  printf "  rows in page_counts %s\n" "$(psql -qAtX -c 'SELECT count(*) FROM page_counts' 2>/dev/null || echo 0)"
  printf "  sessions in Postgres %s  funnel push API: %s\n" \
    "$(psql -qAtX -c 'SELECT count(*) FROM sessions' 2>/dev/null || echo 0)" \
    "$(curl -sf -H "Authorization: Bearer $(cat "$FUNNEL_TOKEN_FILE")" "$FUNNEL_RECEIVER/stats" || echo '-')"
  printf "  fraud alerts at the SIEM stand-in: %s\n" \
    "$(curl -sf -H "Authorization: Bearer $(cat "$FRAUD_SIEM_TOKEN_FILE")" "$FRAUD_SIEM_RECEIVER/stats" || echo '-')"
}
for _ in $(seq $((WATCH / 5))); do
  progress
  sleep 5
done
progress

echo
echo "== latest complete one-minute window in Postgres (busiest pages)"
if [ "$(psql -qAtX -c 'SELECT count(*) FROM page_counts' 2>/dev/null || echo 0)" -gt 0 ]; then
  psql -qX -c "SELECT to_timestamp(window_start / 1000) AS window_start, page_url, count
               FROM page_counts WHERE window_start = (SELECT max(window_start) FROM page_counts)
               ORDER BY count DESC, page_url LIMIT 10"
else
  echo "(no window has been committed yet; run the results query below in a minute)"
fi

echo
echo "== the funnel of the last 10 minutes (push API, latest counts per minute and step)"
curl -sf -H "Authorization: Bearer $(cat "$FUNNEL_TOKEN_FILE")" "$FUNNEL_RECEIVER/records" | python3 -c '
import json, sys, time
rows = json.load(sys.stdin)
since = (time.time() - 600) * 1000
steps = {}
for r in rows:
    if r["minute"] >= since:
        s = steps.setdefault((r["step"], r["step_name"]), [0, 0])
        s[0] += r["entered"]; s[1] += r["dropped"]
for (step, name), (entered, dropped) in sorted(steps.items()):
    print("  step %d %-12s entered %6d  dropped off %6d" % (step, name, entered, dropped))
if not steps: print("  (no updates yet)")'

cat <<MSG

The cluster keeps running:
  dashboard           $JOBMANAGER_HTTP/#/jobs/$JOB_ID   (graph with live rates, backpressure,
                                          checkpoints, restarts; actions ask for the token below)
  JSON status         $JOBMANAGER_HTTP/jobs/$JOB_ID
  Prometheus          $PROMETHEUS_URL   (try: clicks_per_page, sluice_kafka_consumer_lag_records,
                                          rate(sluice_task_records_out_total[1m]))
  metrics             $JOBMANAGER_METRICS  $TASKMANAGER_METRICS
  results             (. $SLUICE_LOCAL_DIR/env; psql -c 'SELECT * FROM page_counts ORDER BY window_start DESC, count DESC LIMIT 20')
  sessions            (. $SLUICE_LOCAL_DIR/env; psql -c 'SELECT session_id, to_timestamp(session_start / 1000), duration_ms, events, furthest_step_name, converted FROM sessions ORDER BY session_start DESC LIMIT 20')
  funnel push API     curl -H "Authorization: Bearer \$(cat $FUNNEL_TOKEN_FILE)" $FUNNEL_RECEIVER/records
  funnel metrics      Prometheus: sluice_funnel_users_total, sluice_funnel_users_withdrawn_total, sluice_funnel_minute_entered
  CLI                 . $SLUICE_LOCAL_DIR/env   # once per shell: sets SLUICE_JOBMANAGER and SLUICE_TOKEN_FILE
                      build/sluice list; build/sluice status $JOB_ID (and $SF_JOB_ID); build/sluice logs $JOB_ID
  token               $SLUICE_TOKEN_FILE   (the cluster secret: the CLI's actions and the dashboard's)
  logs                $SLUICE_LOCAL_DIR/logs
Grafana dashboards for the same data: deploy/grafana (used by deploy/docker-compose.yml).
Stop everything:      deploy/local/down.sh
MSG
