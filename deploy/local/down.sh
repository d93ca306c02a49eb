#!/usr/bin/env bash
# Stops what deploy/local/up.sh started (in reverse order) and, unless
# --keep is given, removes its state directory.
# Options:  --dir DIR   state directory (default $SLUICE_LOCAL_DIR or /tmp/sluice-local)
#           --keep      keep the directory (logs, Postgres data, checkpoints)
set -uo pipefail
DIR=${SLUICE_LOCAL_DIR:-/tmp/sluice-local}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "down.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$DIR" ] || { echo "down.sh: nothing in $DIR"; exit 0; }

# stop NAME: SIGTERM to the process group up.sh started, SIGKILL after 10 s.
stop() {
  local f="$DIR/pids/$1.pid"
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
for name in generator pageview-generator fraud-generator taskmanager-1 taskmanager-2 jobmanager receiver siem scorer prometheus influxdb kafka; do stop "$name"; done
if [ -f "$DIR/pg/data/postmaster.pid" ]; then
  PG_BIN=$(cat "$DIR/pg/bin" 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null 2>&1
  else
    "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null 2>&1
  fi
fi
if [ "$KEEP" = 1 ]; then
  rm -f "$DIR/env"
  echo "local cluster stopped; state kept in $DIR"
else
  rm -rf "$DIR"
  echo "local cluster stopped"
fi
