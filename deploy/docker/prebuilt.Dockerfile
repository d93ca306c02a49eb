# The Sluice runtime image from binaries compiled outside Docker, on the
# same Debian 12 as the runtime stage (tests/deploy/docker_test.sh uses it,
# so the test does not compile Sluice a second time). The build context is a
# directory holding opt/sluice, e.g. `cmake --install build --prefix CTX/opt/sluice`:
#
#   docker build -f deploy/Dockerfile --target runtime-base -t sluice-runtime-base .
#   docker build -f deploy/docker/prebuilt.Dockerfile --build-arg RUNTIME=sluice-runtime-base -t sluice CTX
ARG RUNTIME=sluice-runtime-base
FROM ${RUNTIME}
COPY opt/sluice /opt/sluice
# Every system library the binary and the jobs need is in the runtime stage
# (a job finds the engine's own libsluice_* in the process that loads it).
RUN { ldd /opt/sluice/bin/sluice; ldd /opt/sluice/lib/sluice/jobs/*.so | grep -v 'libsluice_'; } \
      | grep 'not found' && exit 1; sluice --help >/dev/null
