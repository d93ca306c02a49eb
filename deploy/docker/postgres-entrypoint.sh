#!/usr/bin/env bash
# Entrypoint of deploy/docker/postgres.Dockerfile, after the official image's:
# on the first start (empty $PGDATA) it runs initdb with superuser
# $POSTGRES_USER (default postgres) and password $POSTGRES_PASSWORD
# (required), scram-sha-256 for TCP connections and trust on the local
# socket, and creates database $POSTGRES_DB (default $POSTGRES_USER); then it
# runs the command (`postgres -c ...`) as the postgres user. Other commands
# run as given.
set -euo pipefail

if [ "${1:-}" != postgres ]; then exec "$@"; fi
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

USER_=${POSTGRES_USER:-postgres}
DB=${POSTGRES_DB:-$USER_}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD is not set; the database would accept any connection" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$USER_" --pwfile="$pwfile" -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  if [ "$DB" != postgres ]; then
    echo "CREATE DATABASE \"$DB\"" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "postgres-entrypoint: initialised $PGDATA (user $USER_, database $DB)"
fi
exec "$@"
