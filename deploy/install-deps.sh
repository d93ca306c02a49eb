#!/usr/bin/env bash
# Installs, with apt, whatever Sluice needs to build, test and run locally
# that is not installed yet. Idempotent: with everything present it only
# checks. Debian 12 (bookworm) packages only.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config git
  # libraries
  librdkafka-dev librocksdb-dev libgrpc++-dev libprotobuf-dev protobuf-compiler
  protobuf-compiler-grpc prometheus-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libsimdjson-dev libpq-dev libpqxx-dev libcli11-dev libabsl-dev libyaml-cpp-dev libssl-dev
  libcurl4-openssl-dev
  # test servers of the async I/O tests and benchmark
  libevent-dev
  # servers and clients used by tests and the local cluster
  postgresql prometheus kcat python3 python3-confluent-kafka curl
  # checks deploy/docker-compose.yml (config -q); no Docker engine needed
  docker-compose
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

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
# The Debian postgresql and prometheus packages start system services; tests
# run their own instances on loopback ports instead.
for svc in postgresql prometheus; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
echo "install-deps: done"
