#!/usr/bin/env bash
# Stops what deploy/docker/up.sh started: the compose project's containers,
# its volumes (Postgres data, checkpoints, Prometheus data) and the
# sluice:<project> image of a --prebuilt run, then removes the state
# directory unless --keep is given. The base, runtime-base, Postgres and
# Prometheus images stay as a cache for the next run.
# Options:  --dir DIR   state directory (default $SLUICE_DOCKER_DIR or /tmp/sluice-docker)
#           --keep      keep the directory (compose file, env, logs)
set -uo pipefail
DIR=${SLUICE_DOCKER_DIR:-/tmp/sluice-docker}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "down.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
DOCKER=${DOCKER:-docker}
[ -f "$DIR/project" ] || { echo "down.sh: nothing in $DIR"; exit 0; }
source "$DIR/project"
rc=0
if [ -f "$DIR/compose.yml" ]; then
  docker-compose -p "$COMPOSE_PROJECT" -f "$DIR/compose.yml" down -v --remove-orphans --timeout 10 \
    >"$DIR/down.log" 2>&1 || { cat "$DIR/down.log" >&2; rc=1; }
fi
if $DOCKER image inspect "sluice:$COMPOSE_PROJECT" >/dev/null 2>&1; then
  $DOCKER image rm "sluice:$COMPOSE_PROJECT" >/dev/null || rc=1
fi
if [ "$KEEP" = 1 ]; then
  rm -f "$DIR/env"
  echo "compose project $COMPOSE_PROJECT stopped; state kept in $DIR"
else
  rm -rf "$DIR"
  echo "compose project $COMPOSE_PROJECT stopped"
fi
exit $rc
