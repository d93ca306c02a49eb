# Prometheus from Debian's package (2.42, the version deploy/docker-compose.yml
# pulls as prom/prometheus:v2.42.0), for machines that cannot pull the
# official image (the compose test, deploy/docker/compose.test.yml). Same
# layout as the official image: config /etc/prometheus/prometheus.yml, data
# /prometheus, runs as a non-root user. Context: deploy/docker.
#   docker build -f deploy/docker/prometheus.Dockerfile --build-arg BASE=sluice-base:bookworm -t sluice-prometheus deploy/docker
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# The UI loads moment-timezone-with-data.min.js; the package's 210 MB of
# per-zone data files are not needed.
RUN echo 'path-exclude /usr/share/javascript/moment-timezone/data/*' > /etc/dpkg/dpkg.cfg.d/no-tz-data \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
