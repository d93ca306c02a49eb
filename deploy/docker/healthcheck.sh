#!/usr/bin/env bash
# HEALTHCHECK of the Sluice image (installed as /opt/sluice/bin/sluice-healthcheck).
# Finds the `sluice` process of this container and probes what it serves:
#   jobmanager   GET /jobs on its --http-bind (SLUICE_HTTP_BIND, default
#                127.0.0.1:8081), else /metrics on its --metrics-bind
#   taskmanager  GET /metrics on its --metrics-bind (SLUICE_METRICS_BIND;
#                port 0 = the address in <work-dir>/metrics.address)
#   anything else (gen, submit, dev-kafka): healthy while the process runs.
# SLUICE_HEALTH_URL, if set, is probed instead. A wildcard bind address
# (0.0.0.0, [::], empty host) is probed on loopback. Exit 0 = healthy.
set -uo pipefail

probe() { curl -fsS --max-time 4 -o /dev/null "$1" 2>&1 || { echo "unhealthy: $1"; exit 1; }; exit 0; }
[ -n "${SLUICE_HEALTH_URL:-}" ] && probe "$SLUICE_HEALTH_URL"

# The sluice process: PID 1 unless an init or shell runs it.
ARGS=()
for f in /proc/1/cmdline /proc/[0-9]*/cmdline; do
  mapfile -d '' -t a < "$f" 2>/dev/null || continue
  if [ ${#a[@]} -gt 1 ] && [ "${a[0]##*/}" = sluice ]; then ARGS=("${a[@]}"); break; fi
done
[ ${#ARGS[@]} -gt 0 ] || { echo "unhealthy: no sluice process"; exit 1; }

# flag NAME: the value of --NAME (either `--NAME V` or `--NAME=V`); status 1 if absent.
flag() {
  local i
  for ((i = 1; i < ${#ARGS[@]}; i++)); do
    case "${ARGS[i]}" in
      "--$1") [ $((i + 1)) -lt ${#ARGS[@]} ] && { printf '%s' "${ARGS[i + 1]}"; return 0; } ;;
      "--$1="*) printf '%s' "${ARGS[i]#*=}"; return 0 ;;
    esac
  done
  return 1
}
# url HOST:PORT PATH
url() {
  local host=${1%:*} port=${1##*:}
  case "$host" in ""|0.0.0.0|"*") host=127.0.0.1 ;; "[::]") host="[::1]" ;; esac
  printf 'http://%s:%s%s' "$host" "$port" "$2"
}

case "${ARGS[1]}" in
  jobmanager)
    http=$(flag http-bind) || http=${SLUICE_HTTP_BIND-127.0.0.1:8081}
    if [ -n "$http" ]; then probe "$(url "$http" /jobs)"; fi
    metrics=$(flag metrics-bind) || metrics=${SLUICE_METRICS_BIND-127.0.0.1:9249}
    [ -n "$metrics" ] && [ "${metrics##*:}" != 0 ] && probe "$(url "$metrics" /metrics)"
    ;;
  taskmanager)
    metrics=$(flag metrics-bind) || metrics=${SLUICE_METRICS_BIND-127.0.0.1:0}
    if [ -n "$metrics" ] && [ "${metrics##*:}" = 0 ]; then
      work=$(flag work-dir) || work=""
      [ -z "$work" ] && id=$(flag id) && work=/tmp/sluice-taskmanager-$id
      metrics=$(cat "$work/metrics.address" 2>/dev/null) || metrics=""
    fi
    [ -n "$metrics" ] && probe "$(url "$metrics" /metrics)"
    ;;
esac
exit 0
