#!/usr/bin/env bash
# End-to-end test of deploy/: see tests/deploy/README.md. Needs root (or
# the postgres user's rights) for the local Postgres, and Debian's
# prometheus, postgresql and docker-compose packages (deploy/install-deps.sh).
set -euo pipefail
SRC=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE="$BUILD/sluice"
JOB="$BUILD/jobs/clickstream/libclickstream.so"
DIR=$(mktemp -d /tmp/sluice-deploy-test.XXXXXX)
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

step "docker-compose config -q"
command -v docker-compose >/dev/null || fail "docker-compose missing (deploy/install-deps.sh)"
# Secrets come from deploy/.env, which users create (an empty one here):
# without them compose refuses.
: > "$DIR/empty.env"
SECRETS=(SLUICE_TOKEN=t POSTGRES_PASSWORD=p GRAFANA_ADMIN_PASSWORD=g FUNNEL_TOKEN=f INFLUXDB_PASSWORD=i
         FRAUD_SCORER_TOKEN=s FRAUD_SIEM_TOKEN=r)
env "${SECRETS[@]}" docker-compose --env-file "$DIR/empty.env" -f "$SRC/deploy/docker-compose.yml" config -q \
  || fail "deploy/docker-compose.yml does not validate"
if out=$(env -u SLUICE_TOKEN -u POSTGRES_PASSWORD -u GRAFANA_ADMIN_PASSWORD -u FUNNEL_TOKEN -u INFLUXDB_PASSWORD \
    -u FRAUD_SCORER_TOKEN -u FRAUD_SIEM_TOKEN docker-compose --env-file "$DIR/empty.env" \
    -f "$SRC/deploy/docker-compose.yml" config -q 2>&1) || ! grep -q "deploy/secrets.sh" <<<"$out"; then
  fail "deploy/docker-compose.yml does not refuse to run without its secrets: $out"
fi
env "${SECRETS[@]}" docker-compose --env-file "$DIR/empty.env" -f "$SRC/deploy/docker-compose.yml" \
    -f "$SRC/deploy/docker/compose.test.yml" config -q || fail "deploy/docker/compose.test.yml does not validate"
python3 - "$SRC/deploy/grafana" <<'PY' || fail "dashboards are stale: run python3 deploy/grafana/make_dashboards.py"
import json, os, subprocess, sys, tempfile
d = sys.argv[1]
# The checked-in JSON must be what make_dashboards.py writes.
with tempfile.TemporaryDirectory() as t:
    src = open(os.path.join(d, "make_dashboards.py")).read().replace(
        'HERE = os.path.dirname(os.path.abspath(__file__))', 'HERE = %r' % t)
    exec(compile(src, "make_dashboards.py", "exec"), {"__name__": "__main__"})
    for n in os.listdir(os.path.join(t, "dashboards")):
        if open(os.path.join(t, "dashboards", n)).read() != open(os.path.join(d, "dashboards", n)).read():
            sys.exit(1)
PY

step "deploy/local/up.sh"
"$SRC/deploy/local/up.sh" --dir "$DIR/cluster" --build "$BUILD" --rate 300 --pages 30 --pageview-rate 200 --gap 10s --influxdb --random-ports >/dev/null
source "$DIR/cluster/env"
export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE INFLUXDB_URL INFLUXDB_DATABASE INFLUXDB_PASSWORD_FILE

# Job A: a bounded, reproducible batch in its own topic -> Postgres (upsert,
# exactly-once), compared with counts computed here from the same events.
NOW=$(date +%s%3N)
step "sluice gen -> Kafka topic clicks_ref"
gen_batch "$SLUICE" 7 $((NOW - 90000)) "$DIR/reference.ndjson" "$KAFKA_BOOTSTRAP" clicks_ref
SINK="postgres://postgres@$PGHOST:$PGPORT/$PGDATABASE?table=page_counts&mode=upsert&key=window_start,page_url&create_table=true"
submit() { "$SLUICE" submit "$JOB" --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" "$@"; }
# The same counts also go to up.sh --influxdb's InfluxDB (the job's second sink).
JOB_A=$(submit -p 2 --checkpoint-interval 1s --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks_ref?start=earliest&stop=latest" \
  --arg "sink=$SINK" --arg window=10s --arg "dlq=file://$DIR/dlq-a.ndjson" --arg "metrics=$INFLUXDB_SINK")
# Job B: the unbounded live stream of up.sh's generator -> Prometheus gauges
# (and a file), what the dashboards' PromQL reads.
JOB_B=$(submit -p 2 --checkpoint-interval 2s --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks?start=earliest" \
  --arg "sink=file://$DIR/live.ndjson" --arg window=5s --arg "dlq=kafka://$KAFKA_BOOTSTRAP/clicks_dlq" \
  --arg "metrics=prometheus:clicks_per_page?labels=page_url&value=count&group=window_start")

# Job D: sessions_funnel on up.sh's live page views (sessions end after
# 10 s) -> Postgres sessions, the funnel to the push API (dev-receiver)
# and Prometheus counters, what the sessions-funnel dashboard reads.
SF_JOB="$BUILD/jobs/sessions_funnel/libsessions_funnel.so"
JOB_D=$("$SLUICE" submit "$SF_JOB" --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" -p 2 \
  --checkpoint-interval 2s --arg "source=kafka://$KAFKA_BOOTSTRAP/pageviews?start=earliest" \
  --arg "sessions=postgres://postgres@$PGHOST:$PGPORT/$PGDATABASE?table=sessions&mode=upsert&key=session_id&delete_when=retracted&create_table=true" \
  --arg "funnel_sink=$FUNNEL_URL?auth_token=file:$FUNNEL_TOKEN_FILE&linger=100ms" --arg "gap=$SESSION_GAP" \
  --arg allowed_lateness=5s --arg out_of_orderness=1s --arg metrics=true --arg funnel_update_interval=500ms \
  --arg "dlq=kafka://$KAFKA_BOOTSTRAP/pageviews_dlq")

# Job E: the fraud job over a generated batch (topics ref_logins, ...), with
# up.sh's scorer and SIEM stand-in: what the fraud dashboard reads.
"$SLUICE" gen --kind fraud --kafka "$KAFKA_BOOTSTRAP" --topic ref_ --count 20000 --scenarios 3 --seed 5 \
  --truth "$DIR/fraud-truth.ndjson" 2>/dev/null || fail "sluice gen --kind fraud --kafka failed"
FRAUD_IN=()
for t in logins api_errors transactions; do FRAUD_IN+=(--arg "$t=kafka://$KAFKA_BOOTSTRAP/ref_$t?start=earliest&stop=latest"); done
JOB_E=$("$SLUICE" submit "$BUILD/jobs/fraud/libfraud.so" --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" \
  -p 2 --checkpoint-interval 1s "${FRAUD_IN[@]}" --arg "alerts=kafka://$KAFKA_BOOTSTRAP/alerts?delivery=exactly-once&key=alert_id" \
  --arg "siem=$FRAUD_SIEM_URL?auth_token=file:$FRAUD_SIEM_TOKEN_FILE&linger=100ms" \
  --arg "audit=file://$DIR/lake/audit/?partition=dt:ts:date" --arg "scorer=$FRAUD_SCORER" \
  --arg "scorer_token=file:$FRAUD_SCORER_TOKEN_FILE" --arg "dlq=kafka://$KAFKA_BOOTSTRAP/fraud_dlq")

step "waiting for job A ($JOB_A) to finish"
state=$(wait_job_end "$JOBMANAGER_HTTP" "$JOB_A" 60)
[ "$state" = FINISHED ] || fail "job A ended $state"
PSQL_ROWS=(psql -qAtX -F $'\t' -c)
"$SRC/tests/deploy/check_page_counts.py" "$DIR/reference.ndjson" --window-ms 10000 -- \
  "${PSQL_ROWS[@]}" "SELECT window_start, window_end, page_url, count FROM page_counts" \
  || fail "Postgres page_counts differs from the reference counts"
# InfluxDB got the same counts (the job's second sink), and every InfluxQL
# query of the dashboards returns rows from them.
"$SRC/tests/deploy/check_page_counts.py" "$DIR/reference.ndjson" --window-ms 10000 -- \
  "$SRC/tests/deploy/influx_rows.py" 'SELECT "window_end", "page_url", "count" FROM page_counts' \
  || fail "InfluxDB page_counts differs from the reference counts"
"$SRC/tests/deploy/influx_rows.py" --dashboards "$SRC/deploy/grafana/dashboards" \
  || fail "a dashboard InfluxQL query failed"

step "job D ($JOB_D): sessions in Postgres and funnel updates at the push API"
for _ in $(seq 120); do
  [ "$(psql -qAtX -c 'SELECT count(*) FROM sessions' 2>/dev/null || echo 0)" -gt 0 ] && break
  sleep 0.5
done
[ "$(psql -qAtX -c 'SELECT count(*) FROM sessions' 2>/dev/null || echo 0)" -gt 0 ] || fail "job D wrote no session"
AUTH=(-H "Authorization: Bearer $(cat "$FUNNEL_TOKEN_FILE")")
curl -sf "${AUTH[@]}" "$FUNNEL_RECEIVER/records" | python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert rows, "no funnel update at the push API"
assert all({"minute", "step", "step_name", "entered", "dropped"} <= set(r) for r in rows), rows[:3]
assert {r["step_name"] for r in rows} >= {"/", "/product/*"}, rows[:5]' || fail "the push API holds no funnel updates"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$FUNNEL_RECEIVER/records")" = 401 ] \
  || fail "the push API answers without its token"

step "job E ($JOB_E): the fraud alerts at the SIEM stand-in, each once"
state=$(wait_job_end "$JOBMANAGER_HTTP" "$JOB_E" 120)
[ "$state" = FINISHED ] || fail "job E ended $state"
curl -sf -H "Authorization: Bearer $(cat "$FRAUD_SIEM_TOKEN_FILE")" "$FRAUD_SIEM_RECEIVER/records" | \
  python3 -c '
import json, sys
want = {(t["rule"], t["user"], t["trigger"]) for t in map(json.loads, open(sys.argv[1])) if t["alert"]}
got = [(r["rule"], r["user"], r["trigger_id"]) for r in json.load(sys.stdin)]
assert want and set(got) == want and len(got) == len(want), (sorted(want), sorted(got))' "$DIR/fraud-truth.ndjson" \
  || fail "the SIEM stand-in does not hold exactly the ground truth alerts"

step "every SQL query of the dashboards on Postgres"
python3 - "$SRC/deploy/grafana/dashboards" <<'PY' || fail "a dashboard SQL query failed"
import glob, json, os, subprocess, sys, time
now = int(time.time())
n = 0
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    for p in json.load(open(f))["panels"]:
        for t in p.get("targets", []):
            if "rawSql" not in t:
                continue
            q = t["rawSql"].replace("$__unixEpochFrom()", str(now - 3600)).replace("$__unixEpochTo()", str(now + 60))
            r = subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q], capture_output=True, text=True)
            rows = [l for l in r.stdout.splitlines() if l]
            if r.returncode != 0 or not rows:
                print("%s / %s: %s%s" % (os.path.basename(f), p["title"], r.stderr.strip(), "" if rows else " (no rows)"),
                      file=sys.stderr)
                sys.exit(1)
            n += 1
print("%d SQL queries ran and returned rows" % n)
PY

step "every PromQL query of the dashboards on Prometheus ($PROMETHEUS_URL)"
python3 - "$SRC/deploy/grafana/dashboards" "$PROMETHEUS_URL" <<'PY' || fail "a dashboard PromQL query returned no data"
import glob, json, os, sys, time, urllib.parse, urllib.request
queries = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    for p in json.load(open(f))["panels"]:
        for t in p.get("targets", []):
            if "expr" in t:
                # Grafana's range variable: the last hour, as a dashboard shows it.
                queries.append((os.path.basename(f) + " / " + p["title"], t["expr"].replace("$__range", "1h")))
def run(expr):
    url = sys.argv[2] + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(body.get("error", "query failed"))
    return body["data"]["result"]
pending = dict(queries)
deadline = time.time() + 75
while pending and time.time() < deadline:
    for name, expr in list(pending.items()):
        try:
            if run(expr):
                del pending[name]
        except Exception as e:  # a malformed query never gets better
            print("%s: %s: %s" % (name, expr, e), file=sys.stderr)
            sys.exit(1)
    if pending:
        time.sleep(2)
for name, expr in pending.items():
    print("no data: %s: %s" % (name, expr), file=sys.stderr)
if pending:
    sys.exit(1)
print("%d PromQL queries returned data" % len(queries))
PY

step "jobs B and D are still running and writing"
curl -sf "$JOBMANAGER_HTTP/jobs/$JOB_B" | grep -q '"state":"RUNNING"' || fail "job B is not running"
curl -sf "$JOBMANAGER_HTTP/jobs/$JOB_D" | grep -q '"state":"RUNNING"' || fail "job D is not running"
[ -s "$DIR/live.ndjson" ] || fail "job B wrote nothing"

# Job C: exactly-once into Postgres while a taskmanager is killed (-9) and
# Postgres is restarted mid-run; the table must still equal the reference.
step "job C: taskmanager killed and Postgres restarted mid-run"
"$SLUICE" cancel "$JOB_B" --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" >/dev/null
"$SLUICE" cancel "$JOB_D" --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" >/dev/null
START_C=$(( (NOW / 10000) * 10000 - 200000 ))
gen_batch "$SLUICE" 11 $START_C "$DIR/reference-c.ndjson"
# The same lines go to Kafka paced, so the job is still reading when the
# failures come.
feed_paced "$KAFKA_BOOTSTRAP" clicks_chaos "$DIR/reference-c.ndjson" "$DIR/gen-c.log"
SINK_C="postgres://postgres@$PGHOST:$PGPORT/$PGDATABASE?table=page_counts_chaos&mode=upsert&key=window_start,page_url&create_table=true"
JOB_C=$(submit -p 2 --checkpoint-interval 500ms --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks_chaos?start=earliest" \
  --arg "sink=$SINK_C" --arg window=10s --arg "dlq=file://$DIR/dlq-c.ndjson")
sleep 3
VICTIM=$(job_field "$JOBMANAGER_HTTP" "$JOB_C" 'j["subtasks"][0]["taskmanager"]')
[ -n "$VICTIM" ] || fail "job C has no subtasks"
kill -9 "$(cat "$SLUICE_LOCAL_DIR/pids/taskmanager-${VICTIM#tm-}.pid")"
step "killed $VICTIM"
sleep 2
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ "$(id -u)" -eq 0 ]; then AS_PG=(runuser -u postgres --); else AS_PG=(); fi
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$SLUICE_LOCAL_DIR/pg/data" -m fast -w -t 30 restart >/dev/null 2>&1 \
  || fail "could not restart Postgres"
step "restarted Postgres"
wait "$FEED_PID" || fail "feeding job C failed: $(cat "$DIR/gen-c.log")"
# Events far past the reference's windows move event time beyond them.
flush_event_time "$SLUICE" "$KAFKA_BOOTSTRAP" clicks_chaos $((START_C + 400000)) "$DIR/flush-c.ndjson"
"$SRC/tests/deploy/check_page_counts.py" "$DIR/reference-c.ndjson" --window-ms 10000 --below $((START_C + 400000)) \
  --wait 90 -- "${PSQL_ROWS[@]}" "SELECT window_start, window_end, page_url, count FROM page_counts_chaos" \
  || fail "page_counts_chaos differs from the reference counts"
RESTARTS=$(job_field "$JOBMANAGER_HTTP" "$JOB_C" 'j["restarts"]')
[ "$RESTARTS" -ge 1 ] || fail "job C did not restart after the kill"
step "ok"
