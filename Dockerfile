# nodewarden's container image: the agent binary on debian:12-slim with only the shared
# libraries it links. Build and push (README "Container image"):
#   docker build -t REGISTRY/nodewarden:VERSION .
#   docker push REGISTRY/nodewarden:VERSION
# deploy/check-image-deps.sh (run by CI) checks that every runtime package below exists in
# Debian 12 and that they provide every library the built binary links.

# ---- build: the release preset, the agent only (no tests, no benchmarks) ----------------------
FROM debian:12 AS build
# The build dependencies of scripts/setup.sh that the agent needs (the test-only ones, gtest,
# stress-ng, prometheus, clang, ..., are left out).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev libasio-dev libzstd-dev libsystemd-dev \
      libxxhash-dev libre2-dev libcurl4-openssl-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev zlib1g-dev \
      libsnappy-dev libssl-dev libprotobuf-dev protobuf-compiler libdeflate-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt CMakePresets.json ./
COPY agent agent
COPY collectors collectors
COPY exporters exporters
COPY pipeline pipeline
RUN cmake --preset release -DNODEWARDEN_TESTS=OFF -DNODEWARDEN_BENCH=OFF \
 && cmake --build --preset release --target nodewarden \
 && strip --strip-unneeded -o /nodewarden build/release/agent/nodewarden \
 && /nodewarden version

# ---- runtime: the binary and its shared libraries ---------------------------------------------
FROM debian:12-slim
# One package per library the binary links directly (their own dependencies come with them);
# ca-certificates for Loki behind a public CA. Keep this list in step with the binary's links:
# deploy/check-image-deps.sh fails when a linked library is not provided by it.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libc6 \
      libcurl4 \
      libdeflate0 \
      libfmt9 \
      libgcc-s1 \
      libprometheus-cpp-core1.0 \
      libprotobuf-lite32 \
      libre2-9 \
      libsnappy1v5 \
      libspdlog1.10 \
      libssl3 \
      libstdc++6 \
      libsystemd0 \
      libxxhash0 \
      libyaml-cpp0.7 \
      libzstd1 \
      zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /nodewarden /usr/bin/nodewarden
# USER: none, so uid 0. The DaemonSet (deploy/kubernetes/base/daemonset.yaml) runs it as root
# with every capability dropped but DAC_READ_SEARCH, not privileged, no privilege escalation,
# a read-only root filesystem and read-only host mounts: Kubernetes cannot give a non-root
# process effective capabilities (no ambient capabilities; file capabilities are ignored
# under no_new_privs), and the agent reads host files that only their owners may read.
EXPOSE 9465
ENTRYPOINT ["/usr/bin/nodewarden"]
CMD ["run"]
