#!/usr/bin/env bash
# Creates deploy/.env (mode 0600) with fresh random secrets for
# deploy/docker-compose.yml, which refuses to start without them:
#   SLUICE_TOKEN            the cluster secret (jobmanager, taskmanagers, submit)
#   POSTGRES_PASSWORD       the sluice database user's password
#   GRAFANA_ADMIN_PASSWORD  Grafana's admin password
#   FUNNEL_TOKEN            bearer token of the funnel's push API (sessions_funnel -> funnel-api)
#   FRAUD_SCORER_TOKEN      bearer token of the fraud job's scorer (sluice-scorer)
#   FRAUD_SIEM_TOKEN        bearer token of the SIEM stand-in the fraud alerts are pushed to
#   INFLUXDB_PASSWORD       InfluxDB's admin password (the InfluxDB sink and Grafana use it)
# An existing file is kept (pass --force to replace it). docker compose
# reads deploy/.env by itself; keep it out of version control.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$HERE/.env"
if [ -e "$OUT" ] && [ "${1:-}" != "--force" ]; then
  echo "secrets.sh: $OUT exists; keeping it (--force writes new secrets)" >&2
  exit 0
fi
rand() { openssl rand -hex "$1"; }
umask 077
tmp=$(mktemp "$HERE/.env.XXXXXX")
cat > "$tmp" <<ENV
# Written by deploy/secrets.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Private (0600); not in git.
SLUICE_TOKEN=$(rand 24)
POSTGRES_PASSWORD=$(rand 16)
GRAFANA_ADMIN_PASSWORD=$(rand 12)
FUNNEL_TOKEN=$(rand 16)
INFLUXDB_PASSWORD=$(rand 16)
FRAUD_SCORER_TOKEN=$(rand 16)
FRAUD_SIEM_TOKEN=$(rand 16)
ENV
chmod 600 "$tmp"
mv "$tmp" "$OUT"
echo "secrets.sh: wrote $OUT (Grafana: admin / \$GRAFANA_ADMIN_PASSWORD from that file)"
