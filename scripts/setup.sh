#!/usr/bin/env bash
# Installs everything nodewarden needs to build, run and test on Debian 12, from Debian's apt only.
# Idempotent: packages already present are not downloaded again.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates
  clang libclang-rt-14-dev clang-16 libclang-rt-16-dev clang-format clang-tidy
  prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev libasio-dev libzstd-dev libsystemd-dev
  libxxhash-dev libre2-dev
  libcurl4-openssl-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsnappy-dev libprotobuf-dev protobuf-compiler
  libdeflate-dev  # the Loki JSON body's gzip (exporters/loki/loki_json_body)
  stress-ng prometheus procps systemd-journal-remote
  yamllint nodejs  # deploy/check.sh: YAML lint; the manifests' schema checks (npm packages)
  openssl libssl-dev  # HTTPS tests: the CLI makes a throwaway CA; FakeLoki terminates TLS
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm: Debian's nodejs package has no npm of its own; where node came with npm (NodeSource's
# nodejs), that one is used.
if ! command -v npm >/dev/null; then
  echo "setup: installing npm"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
# kubectl is not packaged in Debian 12: deploy/check.sh needs it on the PATH (kubectl kustomize).
command -v kubectl >/dev/null || echo "setup: WARNING: kubectl not found; deploy/check.sh needs it" >&2
echo "setup: all dependencies present"
