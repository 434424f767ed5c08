#!/usr/bin/env bash
# Starts the demo node (real cgroups with stress-ng pods) and the real agent on it, scrapes
# /metrics twice, and checks every metric name of deploy/prometheus and deploy/grafana against
# what the agent announced (deploy/validate/metric-names.mjs). Root; the ci build.
# usage: deploy/check-metric-names.sh [BUILD_DIR]   (default build/ci)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/ci}
demo=$build/tests/support/nodewarden-demo
[ -x "$demo" ] || { echo "check-metric-names.sh: $demo is not built" >&2; exit 2; }
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$((20000 + RANDOM % 20000))
for _ in $(seq 20); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  port=$((20000 + RANDOM % 20000))
done
# The demo removes its cgroups and processes when it stops (SIGTERM or --duration).
"$demo" --listen "127.0.0.1:$port" --duration 90 >"$tmp/demo.log" 2>&1 &
pid=$!
url=http://127.0.0.1:$port
for _ in $(seq 120); do
  curl -fs "$url/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/demo.log" >&2; echo "check-metric-names.sh: the demo stopped" >&2; exit 1; }
  sleep 0.5
done
curl -fs "$url/readyz" >/dev/null || { cat "$tmp/demo.log" >&2; echo "check-metric-names.sh: the agent never got ready" >&2; exit 1; }
# A few collection cycles (2 s each in the demo): the detector's windows and the log path's
# first push come after the first cycle.
sleep 10
curl -fs "$url/metrics" >"$tmp/scrape1.txt"
sleep 6
curl -fs "$url/metrics" >"$tmp/scrape2.txt"
node deploy/validate/metric-names.mjs --scrape "$tmp/scrape1.txt" --scrape "$tmp/scrape2.txt" \
  --source agent --source collectors --source pipeline --source exporters
