# PostgreSQL 15 from Debian's packages, for machines that cannot pull the
# official postgres image (the compose test, deploy/docker/compose.test.yml).
# Same interface as the official image for what deploy/docker-compose.yml
# uses: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA, a
# `postgres -c ...` command, data in /var/lib/postgresql/data. Context: deploy/docker.
#   docker build -f deploy/docker/postgres.Dockerfile --build-arg BASE=sluice-base:bookworm -t sluice-postgres deploy/docker
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# No cluster at install: the entrypoint makes one in PGDATA on first start.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENTRYPOINT ["postgres-entrypoint"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
