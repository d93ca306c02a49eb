#!/usr/bin/env bash
# Runs deploy/docker-compose.yml with the override deploy/docker/compose.test.yml
# on this machine's Docker engine, without any image registry: what
# tests/deploy/docker_test.sh runs. Builds (or reuses) the images:
#   sluice-base:bookworm        deploy/docker/base.sh (debootstrap + docker import)
#   sluice image                --prebuilt BUILD: runtime stage of deploy/Dockerfile
#                               + the binaries of a cmake build tree
#                               (deploy/docker/prebuilt.Dockerfile), tagged
#                               sluice:<project>; --image NAME: that image (e.g.
#                               the one `docker compose build` made); else the
#                               whole multi-stage deploy/Dockerfile (compiles
#                               Sluice, minutes), sluice:latest
#   sluice-postgres:bookworm, sluice-prometheus:bookworm   Debian's packages
# then starts dev-kafka, PostgreSQL, Prometheus, the jobmanager, two
# taskmanagers, the click and page-view generators, the funnel's push API
# and the one-shot submitters of the clickstream and sessions_funnel jobs,
# every one on its own free loopback port (host network). Secrets are
# generated. The addresses go to DIR/env (the names deploy/local/up.sh
# writes, plus COMPOSE_* and SLUICE_TOKEN); stop it with deploy/docker/down.sh.
#
# Options:  --dir DIR        state directory (default $SLUICE_DOCKER_DIR or /tmp/sluice-docker)
#           --prebuilt BUILD use the binaries of this cmake build tree
#           --image NAME     use this Sluice image as it is
#           --rate N         generator events per second (default 200); 0 = no generator
#           --pageview-rate N  page views per second (default 100); 0 = no page-view generator
#           --gap D          session gap of the page views and sessions_funnel (default 2m)
#           --no-submit      do not submit the clickstream and sessions_funnel jobs
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${SLUICE_DOCKER_DIR:-/tmp/sluice-docker}
PREBUILT=""
IMAGE=""
RATE=200
PV_RATE=100
GAP=2m
SUBMIT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --prebuilt) PREBUILT=$(cd "$2" && pwd); shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --pageview-rate) PV_RATE=$2; shift 2 ;;
    --gap) GAP=$2; shift 2 ;;
    --no-submit) SUBMIT=0; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
DOCKER=${DOCKER:-docker}
die() { echo "up.sh: $*" >&2; exit 1; }
command -v docker-compose >/dev/null || die "docker-compose missing (apt-get install docker-compose)"
$DOCKER info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd)"
[ ! -f "$DIR/env" ] || die "a cluster seems to run from $DIR already; stop it with deploy/docker/down.sh --dir $DIR"
rm -rf "$DIR"
mkdir -p "$DIR"
chmod 700 "$DIR"   # compose.env and compose.yml hold the secrets
# Compose project names: lower-case letters, digits, '-' and '_'.
PROJECT=sluice-$(printf '%s' "$DIR" | md5sum | cut -c1-10)
echo "COMPOSE_PROJECT=$PROJECT" > "$DIR/project"   # what down.sh removes

# build TAG DOCKERFILE CONTEXT [ARGS...]: docker build on the host's network
# (apt inside the build reaches the same mirrors as this machine, and no
# Docker bridge is needed); the image the tag named before is removed if
# nothing uses it any more. Log in DIR/build-<name>.log.
build() {
  local tag=$1 file=$2 ctx=$3; shift 3
  local log=$DIR/build-${tag%%:*}.log t0; t0=$(date +%s)
  local old; old=$($DOCKER image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  $DOCKER build --network host -f "$file" -t "$tag" "$@" "$ctx" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; die "docker build of $tag failed (log: $log)"; }
  local new; new=$($DOCKER image inspect -f '{{.Id}}' "$tag")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then $DOCKER image rm "$old" >/dev/null 2>&1 || true; fi
  if [ "$old" = "$new" ]; then echo "up.sh: $tag up to date"; else echo "up.sh: built $tag in $(( $(date +%s) - t0 ))s"; fi
}
PIDS=()
on_exit() {
  local rc=$? p
  if [ $rc -ne 0 ]; then
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    echo "up.sh: failed; stopping what started (logs kept in $DIR)" >&2
    "$REPO/deploy/docker/down.sh" --dir "$DIR" --keep >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT

"$REPO/deploy/docker/base.sh" --name sluice-base:bookworm
BASE=(--build-arg BASE=sluice-base:bookworm)
# The three images build side by side (mostly downloads and dpkg).
build sluice-postgres:bookworm "$REPO/deploy/docker/postgres.Dockerfile" "$REPO/deploy/docker" "${BASE[@]}" &
PIDS+=($!)
build sluice-prometheus:bookworm "$REPO/deploy/docker/prometheus.Dockerfile" "$REPO/deploy/docker" "${BASE[@]}" &
PIDS+=($!)
if [ -n "$IMAGE" ]; then
  $DOCKER image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE"
elif [ -n "$PREBUILT" ]; then
  [ -x "$PREBUILT/sluice" ] || die "$PREBUILT/sluice not built"
  IMAGE=sluice:$PROJECT
  build sluice-runtime-base:bookworm "$REPO/deploy/Dockerfile" "$REPO" --target runtime-base "${BASE[@]}"
  mkdir -p "$DIR/context"
  cmake --install "$PREBUILT" --prefix "$DIR/context/opt/sluice" >/dev/null
  build "$IMAGE" "$REPO/deploy/docker/prebuilt.Dockerfile" "$DIR/context" --build-arg RUNTIME=sluice-runtime-base:bookworm
  rm -rf "$DIR/context"
else
  IMAGE=sluice:latest
  echo "up.sh: building $IMAGE from deploy/Dockerfile (compiles Sluice)"
  build "$IMAGE" "$REPO/deploy/Dockerfile" "$REPO" "${BASE[@]}"
fi
for p in "${PIDS[@]}"; do wait "$p" || die "an image did not build"; done
rm -f "$DIR"/build-*.log

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secret() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }
PORT_NAMES=(JM JM_HTTP JM_METRICS TM1 TM1_DATA TM1_METRICS TM2 TM2_DATA TM2_METRICS PG PROMETHEUS FUNNEL)
# Think time and pause of the page views scale with the gap.
read -r THINK PAUSE < <(python3 -c '
import re, sys
m = re.fullmatch(r"(\d+)(ms|s|m|h)", sys.argv[1])
if not m: sys.exit("up.sh: --gap must be a duration such as 30s or 2m")
ms = int(m[1]) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m[2]]
print("%dms %dms" % (max(1000, min(5000, ms // 10)), ms // 2))' "$GAP")
declare -A PORT
{
  echo "# Written by deploy/docker/up.sh: secrets, images and ports of this run."
  echo "SLUICE_TOKEN=$(secret)"
  echo "POSTGRES_PASSWORD=$(secret)"
  echo "GRAFANA_ADMIN_PASSWORD=$(secret)"
  echo "FUNNEL_TOKEN=$(secret)"
  echo "INFLUXDB_PASSWORD=$(secret)"
  echo "FRAUD_SCORER_TOKEN=$(secret)"
  echo "FRAUD_SIEM_TOKEN=$(secret)"
  echo "SLUICE_IMAGE=$IMAGE"
  echo "SLUICE_POSTGRES_IMAGE=sluice-postgres:bookworm"
  echo "SLUICE_PROMETHEUS_IMAGE=sluice-prometheus:bookworm"
  echo "CLICK_RATE=$RATE"
  echo "PAGEVIEW_RATE=$PV_RATE"
  echo "SESSION_GAP=$GAP"
  echo "SESSION_THINK=$THINK"
  echo "SESSION_PAUSE=$PAUSE"
  for n in "${PORT_NAMES[@]}"; do PORT[$n]=$(free_port); echo "SLUICE_${n}_PORT=${PORT[$n]}"; done
} > "$DIR/compose.env"
# Debian's docker-compose (v1) refuses published ports next to
# network_mode: host (Compose v2 drops them with a warning), and an override
# cannot remove the user-facing file's `ports:`: run the merged
# configuration without them.
docker-compose --env-file "$DIR/compose.env" -f "$REPO/deploy/docker-compose.yml" \
  -f "$REPO/deploy/docker/compose.test.yml" config > "$DIR/compose.merged.yml"
python3 - "$DIR/compose.merged.yml" "$DIR/compose.yml" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for s in d["services"].values():
    if s.get("network_mode") == "host":
        s.pop("ports", None)
yaml.safe_dump(d, open(sys.argv[2], "w"), sort_keys=False)
PY
rm -f "$DIR/compose.merged.yml"
DC=(docker-compose -p "$PROJECT" -f "$DIR/compose.yml")

SERVICES=(kafka postgres prometheus jobmanager taskmanager-1 taskmanager-2 funnel-api)
[ "$RATE" != 0 ] && SERVICES+=(generator)
[ "$PV_RATE" != 0 ] && SERVICES+=(pageview-generator)
[ "$SUBMIT" = 1 ] && SERVICES+=(submit submit-sessions)
"${DC[@]}" up -d --no-build "${SERVICES[@]}" >"$DIR/up.log" 2>&1 || { cat "$DIR/up.log" >&2; die "compose up failed"; }

JM_HTTP=http://127.0.0.1:${PORT[JM_HTTP]}
wait_for() {
  local what=$1 secs=$2; shift 2
  local n=$((secs * 10))
  while ! "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    if [ $n -le 0 ]; then "${DC[@]}" ps >&2; die "$what did not come up (${DC[*]} logs)"; fi
    sleep 0.1
  done
}
wait_for "two registered taskmanagers" 60 \
  bash -c "curl -sf $JM_HTTP/taskmanagers | python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin)) < 2)'"
wait_for "prometheus" 60 curl -sf "http://127.0.0.1:${PORT[PROMETHEUS]}/-/ready"
KAFKA=$("${DC[@]}" exec -T kafka cat /var/lib/sluice/kafka.bootstrap)
if [ "$SUBMIT" = 1 ]; then
  code=$(timeout 60 $DOCKER wait "$("${DC[@]}" ps -q submit)" || echo "no exit within 60 s")
  [ "$code" = 0 ] || { "${DC[@]}" logs submit >&2; die "submitting the clickstream job failed ($code)"; }
  code=$(timeout 60 $DOCKER wait "$("${DC[@]}" ps -q submit-sessions)" || echo "no exit within 60 s")
  [ "$code" = 0 ] || { "${DC[@]}" logs submit-sessions >&2; die "submitting the sessions_funnel job failed ($code)"; }
fi

source "$DIR/compose.env"
cat > "$DIR/env" <<ENV
# Written by deploy/docker/up.sh: the compose cluster's addresses.
COMPOSE_PROJECT=$PROJECT
COMPOSE_FILE=$DIR/compose.yml
SLUICE_IMAGE=$IMAGE
export SLUICE_TOKEN=$SLUICE_TOKEN
export KAFKA_BOOTSTRAP=$KAFKA
export PGHOST=127.0.0.1
export PGPORT=${PORT[PG]}
export PGUSER=sluice
export PGDATABASE=sluice
export SLUICE_JOBMANAGER=127.0.0.1:${PORT[JM]}
export JOBMANAGER_HTTP=$JM_HTTP
export JOBMANAGER_METRICS=http://127.0.0.1:${PORT[JM_METRICS]}/metrics
export TASKMANAGER_METRICS="http://127.0.0.1:${PORT[TM1_METRICS]}/metrics http://127.0.0.1:${PORT[TM2_METRICS]}/metrics"
export PROMETHEUS_URL=http://127.0.0.1:${PORT[PROMETHEUS]}
export FUNNEL_RECEIVER=http://127.0.0.1:${PORT[FUNNEL]}
export FUNNEL_TOKEN=$FUNNEL_TOKEN
ENV
echo "up.sh: compose project $PROJECT up (addresses in $DIR/env; docker-compose -p $PROJECT -f $DIR/compose.yml ps|logs)"
