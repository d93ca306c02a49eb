#!/usr/bin/env bash
# Starts the Sluice demo topology as local processes — the same one
# deploy/docker-compose.yml runs in containers:
#   sluice dev-kafka (topics clicks and pageviews, 4 partitions each),
#   PostgreSQL (fresh initdb), Prometheus (scraping every Sluice process),
#   the jobmanager, two taskmanagers, the click generator, the page-view
#   generator and `sluice dev-receiver` (the push API that sessions_funnel's
#   funnel updates go to); for the fraud job: its scorer (sluice-scorer,
#   deploy/fraud/model.json), a SIEM stand-in (a second dev-receiver keeping
#   alerts by alert_id) and the fraud generator (topics logins, api_errors,
#   transactions; rules and alerts for the job).
# Every port is a free loopback port; the chosen addresses are written to
# $SLUICE_LOCAL_DIR/env (shell syntax, sourced by quickstart.sh and tests).
# Stop it with deploy/local/down.sh (same SLUICE_LOCAL_DIR).
#
# Options:  --dir DIR      state directory (default $SLUICE_LOCAL_DIR or /tmp/sluice-local)
#           --rate N       generator events per second (default 200); 0 = no generator
#           --pages N      distinct pages of the generator (default 50)
#           --pageview-rate N  page views per second (default 100); 0 = no page-view generator
#           --gap D        session gap the page-view generator browses with (default 2m; the
#                          sessions_funnel job must be submitted with the same --arg gap=)
#           --fraud-rate N fraud events per second (logins, API errors, payments; default 200); 0 = no
#                          fraud generator, scorer or SIEM stand-in
#           --build DIR    where the sluice binary is (default <repo>/build)
#           --slots N      slots per taskmanager (default 4)
#           --no-prometheus  do not start Prometheus
#           --random-ports   every port a free one; by default the jobmanager
#                          takes 127.0.0.1:6123 (gRPC) and :8081 (HTTP: the
#                          dashboard) when they are free, like a lone cluster
#           --influxdb     also start InfluxDB 1.x (influxd: auth on, user admin with a generated
#                          password in influxdb/password, database sluice); see deploy/README.md
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${SLUICE_LOCAL_DIR:-/tmp/sluice-local}
BUILD="$REPO/build"
RATE=200
PAGES=50
PV_RATE=100
FRAUD_RATE=200
GAP=2m
SLOTS=4
PROMETHEUS=1
RANDOM_PORTS=0
INFLUXDB=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --pages) PAGES=$2; shift 2 ;;
    --pageview-rate) PV_RATE=$2; shift 2 ;;
    --fraud-rate) FRAUD_RATE=$2; shift 2 ;;
    --gap) GAP=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --slots) SLOTS=$2; shift 2 ;;
    --no-prometheus) PROMETHEUS=0; shift ;;
    --random-ports) RANDOM_PORTS=1; shift ;;
    --influxdb) INFLUXDB=1; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
SLUICE="$BUILD/sluice"
[ -x "$SLUICE" ] || { echo "up.sh: $SLUICE not built (cmake --build build)" >&2; exit 1; }

if [ -f "$DIR/env" ] && [ -d "$DIR/pids" ] && ls "$DIR"/pids/*.pid >/dev/null 2>&1; then
  echo "up.sh: a local cluster seems to run in $DIR already; stop it with deploy/local/down.sh --dir $DIR" >&2
  exit 1
fi
rm -rf "$DIR"
mkdir -p "$DIR/pids" "$DIR/logs"
chmod 755 "$DIR"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# preferred_port PORT: PORT if it is free (and --random-ports was not given), else a free one.
preferred_port() {
  if [ "$RANDOM_PORTS" = 0 ] && python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$1))" 2>/dev/null; then
    echo "$1"
  else
    free_port
  fi
}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PG_BIN" ] || { echo "up.sh: PostgreSQL server not installed (deploy/install-deps.sh)" >&2; exit 1; }

# start NAME CMD...: runs CMD in its own session (so down.sh can stop the
# whole process group), output in logs/NAME.log, pid in pids/NAME.pid.
start() {
  local name=$1; shift
  setsid "$@" >"$DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/$name.pid"
}
# wait_for WHAT SECONDS CMD...: retries CMD every 0.1 s.
wait_for() {
  local what=$1 secs=$2; shift 2
  local n=$((secs * 10))
  while ! "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    if [ $n -le 0 ]; then echo "up.sh: $what did not come up; see $DIR/logs" >&2; exit 1; fi
    sleep 0.1
  done
}
on_error() { echo "up.sh: failed; stopping what started" >&2; "$REPO/deploy/local/down.sh" --dir "$DIR" --keep >/dev/null 2>&1 || true; }
trap on_error ERR

# --- Kafka (librdkafka mock cluster behind `sluice dev-kafka`)
start kafka "$SLUICE" dev-kafka --topic clicks:4 --topic clicks_dlq:1 --topic pageviews:4 --topic pageviews_dlq:1 \
  --topic logins:4 --topic api_errors:2 --topic transactions:4 --topic rules:1 --topic alerts:2 --topic fraud_dlq:1 \
  --bootstrap-file "$DIR/kafka.bootstrap"
wait_for "dev-kafka" 20 test -s "$DIR/kafka.bootstrap"
KAFKA=$(cat "$DIR/kafka.bootstrap")

# --- PostgreSQL: a fresh cluster owned by the postgres user, password auth
# (a random password, in the private env file) on loopback
PGPORT=$(free_port)
PGPASSWORD=$(openssl rand -hex 16)
export PGPASSWORD
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$DIR/pg" "$DIR/pg-socket"
if [ "$(id -u)" -eq 0 ]; then
  chown postgres:postgres "$DIR/pg" "$DIR/pg-socket"
  runuser -u postgres -- test -w "$DIR/pg" || {
    echo "up.sh: the postgres user cannot reach $DIR (a parent directory is not world-searchable)" >&2; exit 1; }
fi
(umask 077; printf '%s\n' "$PGPASSWORD" > "$DIR/pg/pwfile")
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR/pg/pwfile"
as_pg "$PG_BIN/initdb" -D "$DIR/pg/data" -U postgres -A scram-sha-256 --pwfile "$DIR/pg/pwfile" -E UTF8 --no-locale \
  >"$DIR/logs/initdb.log" 2>&1
rm -f "$DIR/pg/pwfile"
as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $DIR/pg-socket -c max_prepared_transactions=64 -c fsync=off" \
  start >"$DIR/logs/pg_ctl.log" 2>&1
echo "$PG_BIN" > "$DIR/pg/bin"
psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qAt -c "CREATE DATABASE sluice" >/dev/null

# --- jobmanager and two taskmanagers
JM_PORT=$(preferred_port 6123); JM_HTTP=$(preferred_port 8081); JM_METRICS=$(preferred_port 9249)
start jobmanager "$SLUICE" jobmanager --bind "127.0.0.1:$JM_PORT" --http-bind "127.0.0.1:$JM_HTTP" \
  --metrics-bind "127.0.0.1:$JM_METRICS" --data-dir "$DIR/jobmanager" --checkpoint-interval 5s
wait_for "jobmanager" 30 test -s "$DIR/jobmanager/token"
TM_METRICS=()
for i in 1 2; do
  port=$(free_port)
  TM_METRICS+=("$port")
  start "taskmanager-$i" "$SLUICE" taskmanager --jobmanager "127.0.0.1:$JM_PORT" --slots "$SLOTS" --id "tm-$i" \
    --work-dir "$DIR/taskmanager-$i" --metrics-bind "127.0.0.1:$port" --token-file "$DIR/jobmanager/token"
done
for p in "${TM_METRICS[@]}"; do wait_for "taskmanager metrics :$p" 30 curl -sf "http://127.0.0.1:$p/metrics"; done
wait_for "two registered taskmanagers" 30 \
  bash -c "curl -sf http://127.0.0.1:$JM_HTTP/taskmanagers | python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin)) < 2)'"

# --- Prometheus scraping all of them (same jobs and labels as deploy/prometheus.yml)
PROM_PORT=""
if [ "$PROMETHEUS" = 1 ]; then
  PROM_PORT=$(free_port)
  cat > "$DIR/prometheus.yml" <<YML
# Generated by deploy/local/up.sh; deploy/prometheus.yml is the compose twin.
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: sluice-jobmanager
    honor_labels: true   # keep Sluice's own job="<job name>" label
    static_configs:
      - targets: ["127.0.0.1:$JM_METRICS"]
        labels: {role: jobmanager}
  - job_name: sluice-taskmanager
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:${TM_METRICS[0]}", "127.0.0.1:${TM_METRICS[1]}"]
        labels: {role: taskmanager}
YML
  start prometheus prometheus --config.file "$DIR/prometheus.yml" --storage.tsdb.path "$DIR/prometheus-data" \
    --web.listen-address "127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time 1d
  wait_for "prometheus" 30 curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"
fi

# --- InfluxDB (--influxdb): its own config on two free ports (HTTP and the
# RPC bind address), authentication on; the first user is created without it.
INFLUX_PORT=""
if [ "$INFLUXDB" = 1 ]; then
  command -v influxd >/dev/null || { echo "up.sh: influxd not installed (deploy/install-deps.sh)" >&2; exit 1; }
  INFLUX_PORT=$(free_port); INFLUX_RPC=$(free_port)
  mkdir -p "$DIR/influxdb"
  ( umask 077
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$DIR/influxdb/password"
    printf 'machine 127.0.0.1 login admin password %s\n' "$(cat "$DIR/influxdb/password")" > "$DIR/influxdb/netrc"
    printf "CREATE USER admin WITH PASSWORD '%s' WITH ALL PRIVILEGES" "$(cat "$DIR/influxdb/password")" \
      > "$DIR/influxdb/create-user.influxql" )
  cat > "$DIR/influxdb/influxdb.conf" <<CONF
# Generated by deploy/local/up.sh.
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC"
[meta]
  dir = "$DIR/influxdb/meta"
[data]
  dir = "$DIR/influxdb/data"
  wal-dir = "$DIR/influxdb/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = true
  log-enabled = false
[logging]
  level = "warn"
CONF
  start influxdb influxd -config "$DIR/influxdb/influxdb.conf"
  wait_for "influxdb" 30 curl -sf "http://127.0.0.1:$INFLUX_PORT/ping"
  curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q@$DIR/influxdb/create-user.influxql" >/dev/null
  rm -f "$DIR/influxdb/create-user.influxql"
  curl -sf --netrc-file "$DIR/influxdb/netrc" -XPOST "http://127.0.0.1:$INFLUX_PORT/query" \
    --data-urlencode "q=CREATE DATABASE sluice" >/dev/null
fi

# --- the click generator (event time = now)
if [ "$RATE" != 0 ]; then
  start generator "$SLUICE" gen --kafka "$KAFKA" --topic clicks --rate "$RATE" --unbounded --pages "$PAGES" \
    --out-of-order 0.05 --max-delay 2s --late 0.001 --malformed 0.001
fi

# --- the push API of sessions_funnel's funnel updates: applies each batch
# once per idempotency key, keeps the latest update per (minute, step)
(umask 077; openssl rand -hex 16 > "$DIR/funnel-token")
start receiver "$SLUICE" dev-receiver --bind 127.0.0.1:0 --key minute,step --token-file "$DIR/funnel-token" \
  --address-file "$DIR/receiver.address"
wait_for "dev-receiver" 20 test -s "$DIR/receiver.address"
RECEIVER=$(cat "$DIR/receiver.address")

# --- the page-view generator (event time = now): users browsing in sessions
if [ "$PV_RATE" != 0 ]; then
  # Think time and pause scale with the gap (a tenth of it, at most 5 s; pauses of half a gap).
  read -r THINK PAUSE < <(python3 -c '
import re, sys
m = re.fullmatch(r"(\d+)(ms|s|m|h)", sys.argv[1])
if not m: sys.exit("up.sh: --gap must be a duration such as 30s or 2m")
ms = int(m[1]) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m[2]]
print("%dms %dms" % (max(1000, min(5000, ms // 10)), ms // 2))' "$GAP")
  start pageview-generator "$SLUICE" gen --kind pageviews --kafka "$KAFKA" --topic pageviews --rate "$PV_RATE" \
    --unbounded --gap "$GAP" --pause "$PAUSE" --think-time "$THINK" --allowed-lateness 5s --max-delay 2s
fi

# --- the fraud example: the scorer, a SIEM stand-in, the three streams
SCORER_GRPC="" SCORER_HTTP="" SIEM=""
if [ "$FRAUD_RATE" != 0 ]; then
  SCORER="$BUILD/jobs/fraud/scorer/sluice-scorer"
  [ -x "$SCORER" ] || { echo "up.sh: $SCORER not built (cmake --build build --target sluice-scorer fraud), or --fraud-rate 0" >&2; false; }
  (umask 077; openssl rand -hex 16 > "$DIR/scorer-token"; openssl rand -hex 16 > "$DIR/siem-token")
  start scorer "$SCORER" --model "$REPO/deploy/fraud/model.json" --token-file "$DIR/scorer-token" \
    --grpc-bind 127.0.0.1:0 --http-bind 127.0.0.1:0 --ready-file "$DIR/scorer.json"
  wait_for "sluice-scorer" 20 test -s "$DIR/scorer.json"
  read -r SCORER_GRPC SCORER_HTTP < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["grpc"], d["http"])' "$DIR/scorer.json")
  start siem "$SLUICE" dev-receiver --bind 127.0.0.1:0 --key alert_id --token-file "$DIR/siem-token" \
    --address-file "$DIR/siem.address"
  wait_for "SIEM stand-in" 20 test -s "$DIR/siem.address"
  SIEM=$(cat "$DIR/siem.address")
  # 70 minutes of live traffic (event time = now) with a dozen scenarios of each kind.
  start fraud-generator "$SLUICE" gen --kind fraud --kafka "$KAFKA" --rate "$FRAUD_RATE" \
    --count $((FRAUD_RATE * 4200)) --users 2000 --scenarios 12 --truth "$DIR/fraud-truth.ndjson"
fi

# The env file holds the Postgres password: private to this user.
(umask 077; : > "$DIR/env")
cat > "$DIR/env" <<ENV
# Written by deploy/local/up.sh: the local cluster's addresses and secrets (0600).
# \`. $DIR/env\` in a shell: the sluice CLI then finds the jobmanager
# (SLUICE_JOBMANAGER) and the token (SLUICE_TOKEN_FILE), psql the database.
export SLUICE_LOCAL_DIR=$DIR
export SLUICE_BIN=$SLUICE
export KAFKA_BOOTSTRAP=$KAFKA
export PGHOST=127.0.0.1
export PGPORT=$PGPORT
export PGUSER=postgres
export PGPASSWORD=$PGPASSWORD
export PGDATABASE=sluice
export SLUICE_JOBMANAGER=127.0.0.1:$JM_PORT
export SLUICE_TOKEN_FILE=$DIR/jobmanager/token
export JOBMANAGER_HTTP=http://127.0.0.1:$JM_HTTP
export JOBMANAGER_METRICS=http://127.0.0.1:$JM_METRICS/metrics
export TASKMANAGER_METRICS="http://127.0.0.1:${TM_METRICS[0]}/metrics http://127.0.0.1:${TM_METRICS[1]}/metrics"
export PROMETHEUS_URL=${PROM_PORT:+http://127.0.0.1:$PROM_PORT}
export FUNNEL_RECEIVER=http://$RECEIVER
export FUNNEL_URL=http://$RECEIVER/funnel
export FUNNEL_TOKEN_FILE=$DIR/funnel-token
export SESSION_GAP=$GAP
export FRAUD_SCORER=${SCORER_GRPC:+grpc://$SCORER_GRPC}
export FRAUD_SCORER_HTTP=${SCORER_HTTP:+http://$SCORER_HTTP}
export FRAUD_SCORER_TOKEN_FILE=$DIR/scorer-token
export FRAUD_SIEM_RECEIVER=${SIEM:+http://$SIEM}
export FRAUD_SIEM_URL=${SIEM:+http://$SIEM/alerts}
export FRAUD_SIEM_TOKEN_FILE=$DIR/siem-token
export FRAUD_TRUTH=$DIR/fraud-truth.ndjson
ENV
if [ -n "$INFLUX_PORT" ]; then
  cat >> "$DIR/env" <<ENV
export INFLUXDB_URL=http://127.0.0.1:$INFLUX_PORT
export INFLUXDB_USER=admin
export INFLUXDB_PASSWORD_FILE=$DIR/influxdb/password
export INFLUXDB_NETRC=$DIR/influxdb/netrc
export INFLUXDB_DATABASE=sluice
export INFLUXDB_SINK='influxdb://admin@127.0.0.1:$INFLUX_PORT/sluice?measurement=page_counts&tags=page_url&fields=window_end,count&time=window_start&password_file=$DIR/influxdb/password'
ENV
fi
trap - ERR
echo "local cluster up in $DIR (addresses in $DIR/env, logs in $DIR/logs)"
