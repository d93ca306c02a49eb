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
T0=$(date +%s)
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }
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
# No fixed secrets: without them compose refuses; with them it validates.
: > "$DIR/empty.env"
if env -u SLUICE_TOKEN -u POSTGRES_PASSWORD -u GRAFANA_ADMIN_PASSWORD \
    docker-compose -f "$SRC/deploy/docker-compose.yml" --env-file "$DIR/empty.env" config -q >/dev/null 2>&1; then
  fail "deploy/docker-compose.yml starts without secrets (it must require SLUICE_TOKEN, POSTGRES_PASSWORD, GRAFANA_ADMIN_PASSWORD)"
fi
SLUICE_TOKEN=t POSTGRES_PASSWORD=p GRAFANA_ADMIN_PASSWORD=g \
  docker-compose -f "$SRC/deploy/docker-compose.yml" --env-file "$DIR/empty.env" config -q || fail "deploy/docker-compose.yml does not validate"
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
"$SRC/deploy/local/up.sh" --dir "$DIR/cluster" --build "$BUILD" --rate 300 --pages 30 >/dev/null
source "$DIR/cluster/env"
export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE

# Job A: a bounded, reproducible batch in its own topic -> Postgres (upsert,
# exactly-once), compared with counts computed here from the same events.
NOW=$(date +%s%3N)
GEN=(--count 6000 --seed 7 --pages 20 --start-ts $((NOW - 90000)) --events-per-second 100
     --out-of-order 0.1 --max-delay 1s --late 0 --malformed 0.01)
step "sluice gen -> Kafka topic clicks_ref"
"$SLUICE" gen "${GEN[@]}" --output "$DIR/reference.ndjson" 2>/dev/null
"$SLUICE" gen "${GEN[@]}" --kafka "$KAFKA_BOOTSTRAP" --topic clicks_ref 2>&1 | grep -q "produced 6000" \
  || fail "gen --kafka did not produce 6000 messages"
SINK="postgres://postgres@$PGHOST:$PGPORT/$PGDATABASE?table=page_counts&mode=upsert&key=window_start,page_url&create_table=true"
submit() { "$SLUICE" submit "$JOB" --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" "$@"; }
JOB_A=$(submit -p 2 --checkpoint-interval 1s --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks_ref?start=earliest&stop=latest" \
  --arg "sink=$SINK" --arg window=10s --arg "dlq=file://$DIR/dlq-a.ndjson")
# Job B: the unbounded live stream of up.sh's generator -> Prometheus gauges
# (and a file), what the dashboards' PromQL reads.
JOB_B=$(submit -p 2 --checkpoint-interval 2s --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks?start=earliest" \
  --arg "sink=file://$DIR/live.ndjson" --arg window=5s --arg "dlq=kafka://$KAFKA_BOOTSTRAP/clicks_dlq" \
  --arg "metrics=prometheus:clicks_per_page?labels=page_url&value=count&group=window_start")

step "waiting for job A ($JOB_A) to finish"
state=""
for _ in $(seq 600); do
  state=$(curl -sf "$JOBMANAGER_HTTP/jobs/$JOB_A" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' || true)
  case "$state" in FINISHED|FAILED|CANCELED) break ;; esac
  sleep 0.1
done
[ "$state" = FINISHED ] || fail "job A ended $state"
python3 - "$DIR/reference.ndjson" <<'PY' || fail "Postgres page_counts differs from the reference counts"
import collections, json, subprocess, sys
want = collections.Counter()
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if not isinstance(e, dict) or not isinstance(e.get("page_url"), str) or not e["page_url"]:
        continue
    ts = e.get("ts")
    if not isinstance(ts, int) or ts <= 0 or not isinstance(e.get("user_id", ""), str) \
            or not isinstance(e.get("event_type", ""), str):
        continue
    want[(ts - ts % 10000, e["page_url"])] += 1
out = subprocess.run(["psql", "-qAtX", "-F", "\t", "-c",
                      "SELECT window_start, window_end, page_url, count FROM page_counts"],
                     check=True, capture_output=True, text=True).stdout
got = {}
for row in out.splitlines():
    ws, we, page, n = row.split("\t")
    assert int(we) - int(ws) == 10000, row
    assert (int(ws), page) not in got, "duplicate row " + row
    got[(int(ws), page)] = int(n)
if got != dict(want):
    missing = {k: v for k, v in want.items() if got.get(k) != v}
    extra = {k: v for k, v in got.items() if k not in want}
    print("rows: got %d want %d; differing %s; extra %s" % (len(got), len(want),
          list(missing.items())[:5], list(extra.items())[:5]), file=sys.stderr)
    sys.exit(1)
print("page_counts: %d rows, %d clicks, equal to the reference" % (len(got), sum(got.values())))
PY

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
                queries.append((os.path.basename(f) + " / " + p["title"], t["expr"]))
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

step "job B is still running and writing"
curl -sf "$JOBMANAGER_HTTP/jobs/$JOB_B" | grep -q '"state":"RUNNING"' || fail "job B is not running"
[ -s "$DIR/live.ndjson" ] || fail "job B wrote nothing"

# Job C: exactly-once into Postgres while a taskmanager is killed (-9) and
# Postgres is restarted mid-run; the table must still equal the reference.
step "job C: taskmanager killed and Postgres restarted mid-run"
"$SLUICE" cancel "$JOB_B" --jobmanager "$SLUICE_JOBMANAGER" --token-file "$SLUICE_TOKEN_FILE" >/dev/null
START_C=$(( (NOW / 10000) * 10000 - 200000 ))
GEN_C=(--count 6000 --seed 11 --pages 20 --start-ts $START_C --events-per-second 100
       --out-of-order 0.1 --max-delay 1s --late 0 --malformed 0.01)
"$SLUICE" gen "${GEN_C[@]}" --output "$DIR/reference-c.ndjson" 2>/dev/null
# The same lines go to Kafka paced (kcat, a client Sluice did not write), so
# the job is still reading when the failures come.
split -n l/12 -d "$DIR/reference-c.ndjson" "$DIR/chunk-c."
( for f in "$DIR"/chunk-c.*; do kcat -P -b "$KAFKA_BOOTSTRAP" -t clicks_chaos < "$f" || exit 1; sleep 0.7; done ) \
  >"$DIR/gen-c.log" 2>&1 &
GEN_PID=$!
SINK_C="postgres://postgres@$PGHOST:$PGPORT/$PGDATABASE?table=page_counts_chaos&mode=upsert&key=window_start,page_url&create_table=true"
JOB_C=$(submit -p 2 --checkpoint-interval 500ms --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks_chaos?start=earliest" \
  --arg "sink=$SINK_C" --arg window=10s --arg "dlq=file://$DIR/dlq-c.ndjson")
sleep 3
VICTIM=$(curl -sf "$JOBMANAGER_HTTP/jobs/$JOB_C" | python3 -c 'import json,sys; print(json.load(sys.stdin)["subtasks"][0]["taskmanager"])')
[ -n "$VICTIM" ] || fail "job C has no subtasks"
kill -9 "$(cat "$SLUICE_LOCAL_DIR/pids/taskmanager-${VICTIM#tm-}.pid")"
step "killed $VICTIM"
sleep 2
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ "$(id -u)" -eq 0 ]; then AS_PG=(runuser -u postgres --); else AS_PG=(); fi
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$SLUICE_LOCAL_DIR/pg/data" -m fast -w -t 30 restart >/dev/null 2>&1 \
  || fail "could not restart Postgres"
step "restarted Postgres"
wait "$GEN_PID" || fail "feeding job C failed: $(cat "$DIR/gen-c.log")"
# Events far past the reference's windows move event time beyond them, in
# every partition (the watermark is the minimum over partitions, and a
# producer's sticky partitioner may put a small burst in one).
"$SLUICE" gen --count 100 --seed 3 --pages 20 --start-ts $((START_C + 400000)) --events-per-second 100 \
  --out-of-order 0 --late 0 --malformed 0 --output "$DIR/flush-c.ndjson" 2>/dev/null
PARTS=$(kcat -L -b "$KAFKA_BOOTSTRAP" -t clicks_chaos 2>/dev/null | grep -c "partition ")
[ "$PARTS" -ge 1 ] || fail "cannot read the partitions of clicks_chaos"
for p in $(seq 0 $((PARTS - 1))); do
  kcat -P -b "$KAFKA_BOOTSTRAP" -t clicks_chaos -p "$p" < "$DIR/flush-c.ndjson" || fail "flush to partition $p failed"
done
python3 - "$DIR/reference-c.ndjson" "$START_C" <<'PY' || fail "page_counts_chaos differs from the reference counts"
import collections, json, subprocess, sys, time
want = collections.Counter()
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if not isinstance(e, dict) or not isinstance(e.get("page_url"), str) or not e["page_url"] \
            or not isinstance(e.get("ts"), int) or not isinstance(e.get("user_id", ""), str) \
            or not isinstance(e.get("event_type", ""), str):
        continue
    want[(e["ts"] - e["ts"] % 10000, e["page_url"])] += 1
limit = int(sys.argv[2]) + 400000
got = {}
deadline = time.time() + 90
while time.time() < deadline:
    out = subprocess.run(["psql", "-qAtX", "-F", "\t", "-c",
                          "SELECT window_start, page_url, count FROM page_counts_chaos WHERE window_start < %d" % limit],
                         capture_output=True, text=True).stdout
    got = {}
    for row in out.splitlines():
        ws, page, n = row.split("\t")
        got[(int(ws), page)] = int(n)
    if got == dict(want):
        print("page_counts_chaos: %d rows, %d clicks, equal to the reference" % (len(got), sum(got.values())))
        sys.exit(0)
    time.sleep(1)
print("rows: got %d (%d clicks) want %d (%d clicks)" % (len(got), sum(got.values()), len(want), sum(want.values())),
      file=sys.stderr)
bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
print("windows differing (start offset s: rows): %s" % sorted(collections.Counter(
    (k[0] - int(sys.argv[2])) // 1000 for k in bad).items()), file=sys.stderr)
sys.exit(1)
PY
RESTARTS=$(curl -sf "$JOBMANAGER_HTTP/jobs/$JOB_C" | python3 -c 'import json,sys; print(json.load(sys.stdin)["restarts"])')
[ "$RESTARTS" -ge 1 ] || fail "job C did not restart after the kill"
step "ok"
