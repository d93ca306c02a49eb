#!/usr/bin/env bash
# The compose cluster in real containers: see tests/deploy/README.md.
# Needs root: it installs docker.io, docker-compose and debootstrap if
# missing and starts dockerd if none runs (stopping it at the end). Exits 77
# (ctest: skipped) where dockerd cannot start.
set -euo pipefail
SRC=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE="$BUILD/sluice"
source "$SRC/tests/deploy/lib.sh"
skip() { echo "SKIPPED: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (installs docker.io, starts dockerd); run as root to test the compose cluster"
[ -x "$SLUICE" ] || fail "$SLUICE not built"

need=()
for p in docker.io docker-compose debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } \
    || fail "cannot install ${need[*]}"
fi
# The client of the engine docker.io installs (another `docker` may come first in PATH).
export DOCKER=/usr/bin/docker

# One docker test at a time on a machine: a second one would share, and
# then lose, the dockerd the first one started.
exec 9>/run/lock/sluice-docker-test.lock
flock -w 420 9 || fail "another docker test still runs after 7 minutes"

DIR=$(mktemp -d /tmp/sluice-docker-test.XXXXXX)
DOCKERD_PID=""
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$DIR/cluster/compose.yml" ]; then
    source "$DIR/cluster/project"
    docker-compose -p "$COMPOSE_PROJECT" -f "$DIR/cluster/compose.yml" ps >&2 || true
    docker-compose -p "$COMPOSE_PROJECT" -f "$DIR/cluster/compose.yml" logs --no-color --tail 15 >&2 || true
  fi
  "$SRC/deploy/docker/down.sh" --dir "$DIR/cluster" >/dev/null 2>&1 || true
  if [ -n "$DOCKERD_PID" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    echo "stopped the dockerd this test started"
  fi
  rm -rf "$DIR"
  exit $rc
}
trap cleanup EXIT

if ! $DOCKER info >/dev/null 2>&1; then
  step "starting dockerd"
  # No bridge and no iptables rules: every container of the test uses the
  # host's network, so nothing on the host changes but a running daemon.
  setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$DIR/dockerd.log" 2>&1 < /dev/null 9>&- &
  DOCKERD_PID=$!
  for _ in $(seq 300); do
    $DOCKER info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! $DOCKER info >/dev/null 2>&1; then
    why=$(grep -iE "level=(fatal|error)|failed to start|permission|denied" "$DIR/dockerd.log" | tail -n 3)
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=""
    skip "dockerd cannot start on this machine, so the compose cluster was not tested: ${why:-see the log of dockerd}"
  fi
fi
$DOCKER info -f 'engine: Docker {{.ServerVersion}}, {{.Driver}}, cgroup {{.CgroupVersion}}'

# SLUICE_DOCKER_IMAGE=NAME tests that image (e.g. sluice:latest from the
# multi-stage deploy/Dockerfile) instead of this build tree's binaries.
if [ -n "${SLUICE_DOCKER_IMAGE:-}" ]; then IMAGE_ARGS=(--image "$SLUICE_DOCKER_IMAGE"); else IMAGE_ARGS=(--prebuilt "$BUILD"); fi
step "deploy/docker/up.sh ${IMAGE_ARGS[*]} (images, compose up)"
"$SRC/deploy/docker/up.sh" --dir "$DIR/cluster" "${IMAGE_ARGS[@]}" --rate 200 --pageview-rate 200 --gap 20s
source "$DIR/cluster/env"
DC=(docker-compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE")
cid() { "${DC[@]}" ps -q "$1"; }

step "the user-facing services: health, users, the submitted job, Prometheus"
for _ in $(seq 60); do
  unhealthy=""
  for s in kafka postgres jobmanager taskmanager-1 taskmanager-2; do
    h=$($DOCKER inspect -f '{{.State.Health.Status}}' "$(cid $s)")
    [ "$h" = healthy ] || unhealthy+=" $s:$h"
  done
  [ -z "$unhealthy" ] && break
  sleep 0.5
done
[ -z "$unhealthy" ] || fail "not healthy:$unhealthy"
for s in jobmanager taskmanager-1 taskmanager-2; do
  uid=$("${DC[@]}" exec -T "$s" id -u)
  [ "$uid" = 10001 ] || fail "$s runs as uid $uid, not the image's sluice user"
done
running() { curl -sf "$JOBMANAGER_HTTP/jobs" | python3 -c 'import json,sys; print(" ".join(j["id"] for j in json.load(sys.stdin) if j["state"] == "RUNNING" and j["id"].startswith(sys.argv[1] + "-")))' "$1"; }
LIVE=$(running clickstream)
[ -n "$LIVE" ] && [ "${LIVE// /}" = "$LIVE" ] || fail "expected the submitter's one running clickstream job, got '$LIVE'"
SESSIONS_JOB=$(running sessions_funnel)
[ -n "$SESSIONS_JOB" ] && [ "${SESSIONS_JOB// /}" = "$SESSIONS_JOB" ] \
  || fail "expected the second submitter's one running sessions_funnel job, got '$SESSIONS_JOB'"
# The live job reads the generator's clicks and checkpoints into the shared
# volume, where every container sees the same checkpoint.
for _ in $(seq 60); do
  [ "$(job_field "$JOBMANAGER_HTTP" "$LIVE" 'j["checkpoints"]["completed"]')" -ge 1 ] && break
  sleep 0.5
done
CHK=$(job_field "$JOBMANAGER_HTTP" "$LIVE" 'j["checkpoints"]["last_path"]')
[ -n "$CHK" ] || fail "the live job completed no checkpoint"
"${DC[@]}" exec -T taskmanager-2 test -d "$CHK" || fail "taskmanager-2 does not see checkpoint $CHK"
IN=$(job_field "$JOBMANAGER_HTTP" "$LIVE" 'sum(s["records_in"] for s in j["subtasks"])')
[ "$IN" -gt 0 ] || fail "the live job read nothing from the generator"
python3 - "$PROMETHEUS_URL" <<'PY' || fail "Prometheus does not scrape the three Sluice processes"
import json, sys, time, urllib.parse, urllib.request
q = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job=~"sluice-.*"} == 1'})
deadline = time.time() + 30
while True:
    n = len(json.load(urllib.request.urlopen(q, timeout=5))["data"]["result"])
    if n == 3 or time.time() > deadline:
        break
    time.sleep(1)
print("Prometheus: %d of 3 Sluice targets up" % n)
sys.exit(n != 3)
PY

step "sessions_funnel beside clickstream: sessions in Postgres, funnel updates at the push API (funnel-api)"
sessions() { "${DC[@]}" exec -T postgres psql -U sluice -d sluice -qAtX -c 'SELECT count(*) FROM sessions' 2>/dev/null || echo 0; }
for _ in $(seq 180); do
  [ "$(sessions)" -gt 0 ] && break
  sleep 0.5
done
[ "$(sessions)" -gt 0 ] || fail "no session in Postgres"
curl -sf -H "Authorization: Bearer $FUNNEL_TOKEN" "$FUNNEL_RECEIVER/stats" \
  | python3 -c 'import json,sys; s=json.load(sys.stdin); print("funnel-api:", s); sys.exit(s["batches"] == 0)' \
  || fail "the push API got no funnel update"

# submit ARGS...: `sluice submit` of the image's clickstream job, in a container.
submit() {
  "${DC[@]}" run --rm --no-deps -T --entrypoint sluice submit submit /opt/sluice/lib/sluice/jobs/libclickstream.so \
    --jobmanager "$SLUICE_JOBMANAGER" "$@" 2>"$DIR/submit.log" || { cat "$DIR/submit.log" >&2; fail "submit failed"; }
}
pg_sink() { echo "postgres://sluice@$PGHOST:$PGPORT/sluice?table=$1&mode=upsert&key=window_start,page_url&create_table=true"; }
# psql in the Postgres container, rows as check_page_counts.py reads them.
PSQL_ROWS=("${DC[@]}" exec -T postgres psql -U sluice -d sluice -qAtX -F $'\t' -c)

# Job A: a bounded, reproducible batch -> Postgres (upsert, exactly-once),
# equal to the counts computed here from the same events.
NOW=$(date +%s%3N)
step "job A: 6000 clicks in topic clicks_ref -> page_counts_ref"
gen_batch "$SLUICE" 7 $((NOW - 90000)) "$DIR/reference-a.ndjson" "$KAFKA_BOOTSTRAP" clicks_ref
JOB_A=$(submit -p 2 --checkpoint-interval 1s --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks_ref?start=earliest&stop=latest" \
  --arg "sink=$(pg_sink page_counts_ref)" --arg window=10s --arg dlq=file:///var/lib/sluice/dlq-a.ndjson)
state=$(wait_job_end "$JOBMANAGER_HTTP" "$JOB_A" 60)
[ "$state" = FINISHED ] || fail "job A ended $state"
"$SRC/tests/deploy/check_page_counts.py" "$DIR/reference-a.ndjson" --window-ms 10000 -- \
  "${PSQL_ROWS[@]}" "SELECT window_start, window_end, page_url, count FROM page_counts_ref" \
  || fail "page_counts_ref differs from the reference counts"

# Job C: exactly-once into Postgres while a taskmanager container is killed.
step "job C: a taskmanager container killed mid-run"
START_C=$(( (NOW / 10000) * 10000 - 200000 ))
gen_batch "$SLUICE" 11 $START_C "$DIR/reference-c.ndjson"
feed_paced "$KAFKA_BOOTSTRAP" clicks_chaos "$DIR/reference-c.ndjson" "$DIR/feed-c.log"
JOB_C=$(submit -p 2 --checkpoint-interval 500ms --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks_chaos?start=earliest" \
  --arg "sink=$(pg_sink page_counts_chaos)" --arg window=10s --arg dlq=file:///var/lib/sluice/dlq-c.ndjson)
sleep 3
VICTIM=$(job_field "$JOBMANAGER_HTTP" "$JOB_C" 'j["subtasks"][0]["taskmanager"]')
[ -n "$VICTIM" ] || fail "job C has no subtasks"
$DOCKER kill "$(cid "taskmanager-${VICTIM#tm-}")" >/dev/null
step "killed the container of $VICTIM"
for _ in $(seq 300); do
  [ "$(job_field "$JOBMANAGER_HTTP" "$JOB_C" 'j["restarts"]')" -ge 1 ] && break
  sleep 0.1
done
[ "$(job_field "$JOBMANAGER_HTTP" "$JOB_C" 'j["restarts"]')" -ge 1 ] || fail "job C did not restart after the kill"
# `docker kill` is a manual stop for the restart policy: start it again as an operator would.
"${DC[@]}" start "taskmanager-${VICTIM#tm-}" >/dev/null 2>&1 || fail "cannot start taskmanager-${VICTIM#tm-} again"
wait "$FEED_PID" || fail "feeding job C failed: $(cat "$DIR/feed-c.log")"
flush_event_time "$SLUICE" "$KAFKA_BOOTSTRAP" clicks_chaos $((START_C + 400000)) "$DIR/flush-c.ndjson"
"$SRC/tests/deploy/check_page_counts.py" "$DIR/reference-c.ndjson" --window-ms 10000 --below $((START_C + 400000)) \
  --wait 90 -- "${PSQL_ROWS[@]}" "SELECT window_start, window_end, page_url, count FROM page_counts_chaos" \
  || fail "page_counts_chaos differs from the reference counts"
curl -sf "$JOBMANAGER_HTTP/taskmanagers" | python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin)) != 2)' \
  || fail "$VICTIM did not register again after its restart"
[ "$(job_field "$JOBMANAGER_HTTP" "$LIVE" 'j["state"]')" = RUNNING ] || fail "the live job did not recover"

step "deploy/docker/down.sh"
"$SRC/deploy/docker/down.sh" --dir "$DIR/cluster" >/dev/null || fail "down.sh failed"
LABEL="label=com.docker.compose.project=$COMPOSE_PROJECT"
left="$($DOCKER ps -aq --filter "$LABEL")$($DOCKER volume ls -q --filter "$LABEL")$($DOCKER network ls -q --filter "$LABEL")"
[ -z "$left" ] || fail "containers, volumes or networks of $COMPOSE_PROJECT are left: $left"
[ -n "${SLUICE_DOCKER_IMAGE:-}" ] || ! $DOCKER image inspect "$SLUICE_IMAGE" >/dev/null 2>&1 \
  || fail "image $SLUICE_IMAGE is left"
step "ok"
