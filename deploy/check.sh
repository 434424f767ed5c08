#!/usr/bin/env bash
# CI checks of deploy/ (scripts/test.sh runs this after building the ci preset):
#   1. deploy/config/nodewarden.yaml and its copy deploy/kubernetes/base/nodewarden.yaml (kustomize
#      reads only files under base/) are what `nodewarden config --deploy` generates from the
#      config schema (one run of the built agent, a few milliseconds);
#   2. yamllint over deploy/;
#   3. kubectl kustomize renders the default, every overlay and the optional admission policy;
#      every object validates against the Kubernetes and Prometheus Operator schemas, the
#      DaemonSet and the rest against nodewarden's policy (deploy/validate/validate.mjs), whose
#      self-test breaks each assertion once: among them, that no variant serves plain HTTP off
#      the pod's loopback (the agent on 127.0.0.1 behind kube-rbac-proxy, or TLS), that every
#      monitor scrapes https with a token the proxy accepts, that the base ClusterRole has no
#      kubelet access (nodes/proxy only in overlays/kubelet-nodes-proxy) and that each pod
#      metadata source a variant's config turns on has its RBAC; each variant's config passes
#      `nodewarden check-config`;
#   4. the committed PrometheusRule is what deploy/prometheus/make-prometheusrule.sh makes;
#   5. the Prometheus rule files: deploy/prometheus/check.sh when it exists, else promtool check
#      and unit tests of each *-rules.yaml here;
#   6. every metric name in the rule files and dashboards is one the running agent exposes
#      (deploy/check-metric-names.sh: a demo node and the real agent);
#   7. the Dockerfile's runtime packages exist and provide the built agent's libraries.
# Needs promtool, yamllint, node + npm (the npm registry for `npm ci`), kubectl for 3 (it is
# not in Debian 12's archive: without it step 3 is skipped with a warning, or fails when
# NODEWARDEN_REQUIRE_KUBECTL=1), and for 3, 6 and 7 the ci build (NODEWARDEN_BUILD, default
# build/ci); 6 runs as root (real cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${NODEWARDEN_BUILD:-build/ci}
for tool in promtool yamllint node npm; do
  command -v "$tool" >/dev/null || { echo "deploy/check.sh: $tool not found (scripts/setup.sh installs it)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "-- deploy: the config files are generated from the schema"
if [ -x "$build/agent/nodewarden" ]; then
  "$build/agent/nodewarden" config --deploy >"$tmp/nodewarden.yaml"
  for f in deploy/config/nodewarden.yaml deploy/kubernetes/base/nodewarden.yaml; do
    diff -u "$f" "$tmp/nodewarden.yaml" || {
      echo "deploy/check.sh: $f is stale; run: $build/agent/nodewarden config --deploy > $f" >&2
      exit 1
    }
  done
else
  echo "deploy/check.sh: $build/agent/nodewarden not built" >&2
  exit 2
fi

echo "-- deploy: yamllint"
yamllint -s deploy

echo "-- deploy: render and validate every variant"
(cd deploy/validate && npm ci --silent --no-audit --no-fund)
if command -v kubectl >/dev/null; then
  node deploy/validate/validate.mjs --configs "$tmp/configs"
  node deploy/validate/validate.mjs --self-test | tail -1
  if [ -x "$build/agent/nodewarden" ]; then
    for f in "$tmp"/configs/*.yaml; do "$build/agent/nodewarden" check-config "$f" >/dev/null; done
    echo "nodewarden check-config: $(ls "$tmp"/configs | tr '\n' ' ')ok"
  fi
elif [ "${NODEWARDEN_REQUIRE_KUBECTL:-0}" = 1 ]; then
  echo "deploy/check.sh: kubectl not found (NODEWARDEN_REQUIRE_KUBECTL=1)" >&2
  exit 2
else
  echo "deploy/check.sh: WARNING: kubectl not found: the manifests were NOT rendered or validated" >&2
fi

echo "-- deploy: the PrometheusRule is generated from deploy/prometheus/*-rules.yaml"
bash deploy/prometheus/make-prometheusrule.sh - >"$tmp/prometheusrule.yaml"
diff -u deploy/kubernetes/components/prometheusrule/prometheusrule.yaml "$tmp/prometheusrule.yaml" || {
  echo "deploy/check.sh: the PrometheusRule is stale; run: bash deploy/prometheus/make-prometheusrule.sh" >&2
  exit 1
}

echo "-- deploy: Prometheus rule files"
if [ -f deploy/prometheus/check.sh ]; then
  bash deploy/prometheus/check.sh
else
  for f in deploy/prometheus/*-rules.yaml; do
    promtool check rules "$f"
    promtool test rules "deploy/prometheus/tests/$(basename "$f" .yaml).test.yaml"
  done
fi

echo "-- deploy: metric names in rules and dashboards"
node deploy/validate/metric-names.mjs --self-test | tail -1
bash deploy/check-metric-names.sh "$build"

echo "-- deploy: the container image's runtime packages"
bash deploy/check-image-deps.sh "$build/agent/nodewarden"

echo "deploy/check.sh: all deploy checks pass"
