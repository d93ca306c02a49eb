#!/usr/bin/env bash
# Installs, with apt, whatever Sluice needs to build, test and run locally
# that is not installed yet. Idempotent: with everything present it only
# checks. Debian 12 (bookworm) packages only.
#   deploy/install-deps.sh           everything: build, test and run locally
#   deploy/install-deps.sh --build   only what building Sluice needs (the
#                                    build stage of deploy/Dockerfile)
set -euo pipefail

BUILD_PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config git
  # libraries
  librdkafka-dev librocksdb-dev libzstd-dev libgrpc++-dev libprotobuf-dev protobuf-compiler
  protobuf-compiler-grpc prometheus-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libsimdjson-dev libpq-dev libpqxx-dev libcli11-dev libabsl-dev libyaml-cpp-dev libssl-dev
  libcpp-httplib-dev libcurl4-openssl-dev zlib1g-dev libtomlplusplus-dev
)
TOOL_PACKAGES=(
  # test servers of the async I/O tests and benchmark (built with the test suite only)
  libevent-dev
  # fuzzing (tests/fuzz): clang with libFuzzer and the sanitizers
  clang libclang-rt-14-dev
  # servers and clients used by tests and the local cluster
  postgresql prometheus kcat python3 python3-confluent-kafka curl openssl
  # InfluxDB 1.x server and its `influx` shell (InfluxDB sink tests, deploy/local --influxdb)
  influxdb influxdb-client
  # the web dashboard's browser test (tests/dashboard: headless Chromium driven
  # by playwright-core from npm; Node.js and npm below); Jinja2 renders the
  # Airflow DAG's commands as Airflow would (tests/deploy/backfill_test.sh)
  chromium python3-jinja2
  # checks and runs the compose files (tests/deploy/docker_test.sh installs
  # the Docker engine, docker.io, and debootstrap itself)
  docker-compose
)
case "${1:-}" in
  "") PACKAGES=("${BUILD_PACKAGES[@]}" "${TOOL_PACKAGES[@]}") ;;
  --build) PACKAGES=("${BUILD_PACKAGES[@]}") ;;
  *) echo "install-deps: unknown option $1 (none, or --build)" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js with npm for the browser test: the machine's own if it has one
# (e.g. a newer Node.js from elsewhere, whose npm Debian's would clash with),
# else Debian's.
if [ -z "${1:-}" ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps the install small (and out of docs/X11).
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian postgresql, prometheus and influxdb packages start system
# services; tests run their own instances on loopback ports instead.
for svc in postgresql prometheus influxdb; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
echo "install-deps: done"
