#!/usr/bin/env bash
# Makes a Debian 12 (bookworm) base image without any image registry:
# debootstrap --variant=minbase from this machine's own apt sources, then
# `docker import`. For machines that cannot pull debian:bookworm-slim; the
# Sluice images build on it with --build-arg BASE=sluice-base:bookworm.
# Idempotent: an existing image of that name is reused (--force rebuilds).
#
#   deploy/docker/base.sh [--name NAME] [--mirror URL] [--force]
#
#   --name NAME   image to make (default sluice-base:bookworm)
#   --mirror URL  Debian mirror for debootstrap (default: the first bookworm
#                 entry of /etc/apt/sources.list{,.d/*.list,.d/*.sources})
#   --force       rebuild even if NAME exists
#
# Needs root (debootstrap), a running Docker engine and debootstrap (installed
# with apt if missing). Takes about 40 s and makes a ~120 MB image whose apt
# uses the same Debian sources as this machine.
set -euo pipefail

NAME=sluice-base:bookworm
MIRROR=""
FORCE=0
SUITE=bookworm
while [ $# -gt 0 ]; do
  case "$1" in
    --name) NAME=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "base.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
DOCKER=${DOCKER:-docker}

die() { echo "base.sh: $*" >&2; exit 1; }
$DOCKER info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})"
if [ "$FORCE" = 0 ] && $DOCKER image inspect "$NAME" >/dev/null 2>&1; then
  echo "base.sh: reusing image $NAME ($($DOCKER image inspect -f '{{.Created}}' "$NAME" | cut -c1-19))"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
if ! command -v debootstrap >/dev/null; then
  echo "base.sh: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } \
    || die "cannot install debootstrap"
fi

# The machine's Debian sources for $SUITE (main suite, -updates, -security) as
# deb822 stanzas, from one-line .list files and deb822 .sources files alike.
# Third-party repositories (other components, other suites) are left out.
debian_sources() {
  local files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v suite="$SUITE" '
    function debian_suite(s) { return s == suite || s == suite "-updates" || s == suite "-security" || s == suite "/updates" }
    function debian_comps(c,   n, a, i) {
      n = split(c, a, " ")
      for (i = 1; i <= n; i++) if (a[i] !~ /^(main|contrib|non-free|non-free-firmware)$/) return 0
      return n > 0
    }
    function emit(uri, s, c) {
      if (!debian_suite(s) || !debian_comps(c)) return
      sub(/\/+$/, "", uri)
      if (!seen[uri " " s]++) printf "%s\t%s\t%s\n", uri, s, c
    }
    function flush(   nu, ns, u, ss, i, j) {
      if (types ~ /(^| )deb( |$)/ && enabled != "no") {
        nu = split(uris, u, " "); ns = split(suites, ss, " ")
        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) emit(u[i], ss[j], comps)
      }
      types = uris = suites = comps = enabled = ""
    }
    FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
    /^[ \t]*#/ { next }
    deb822 {
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
      if (key == "types") types = val; else if (key == "uris") uris = val
      else if (key == "suites") suites = val; else if (key == "components") comps = val
      else if (key == "enabled") enabled = tolower(val)
      next
    }
    $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      c = ""; for (j = i + 2; j <= NF; j++) c = c (c == "" ? "" : " ") $j
      emit($i, $(i + 1), c)
    }
    END { flush() }
  ' "${files[@]}"
}

SOURCES=$(debian_sources)
if [ -z "$MIRROR" ]; then
  MIRROR=$(awk -F'\t' -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$SOURCES")
  [ -n "$MIRROR" ] || die "no Debian '$SUITE' entry in this machine's apt sources; pass --mirror URL"
fi
if ! awk -F'\t' -v s="$SUITE" '$2 == s { f = 1 } END { exit !f }' <<<"$SOURCES"; then
  SOURCES=$(printf '%s\t%s\t%s\n%s' "$MIRROR" "$SUITE" main "$SOURCES")
fi

T0=$(date +%s)
ROOT=$(mktemp -d /var/tmp/sluice-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "base.sh: debootstrap --variant=minbase $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --components=main "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1; then
  tail -n 20 "$ROOT.log" >&2; rm -f "$ROOT.log"
  die "debootstrap failed"
fi
rm -f "$ROOT.log"

# apt inside the image: the same Debian sources as this machine.
rm -f "$ROOT/etc/apt/sources.list"
awk -F'\t' '{ printf "Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n", $1, $2, $3 }' \
  <<<"$SOURCES" > "$ROOT/etc/apt/sources.list.d/debian.sources"
# What debian:*-slim does: no docs, man pages or translations, no package
# lists or caches left in layers.
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/sluice-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
cat > "$ROOT/etc/apt/apt.conf.d/sluice-slim" <<'CFG'
APT::Install-Recommends "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
CFG
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* \
  "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/tmp/*
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# Services must not start inside image builds.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
: > "$ROOT/etc/machine-id"

echo "base.sh: importing as $NAME"
tar --numeric-owner --xattrs -C "$ROOT" -c . | $DOCKER import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase from $MIRROR (deploy/docker/base.sh)\"" \
  - "$NAME" >/dev/null
echo "base.sh: made $NAME in $(( $(date +%s) - T0 ))s ($($DOCKER image inspect -f '{{.Size}}' "$NAME" | awk '{printf "%d MB", $1 / 1e6}'))"
