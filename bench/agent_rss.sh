#!/usr/bin/env bash
# agent_rss.sh: peak and current RSS of the real agent serving a 1000-container synthetic cgroup
# tree, with the size and time of its /metrics scrapes. Prints figures; the exit code only says
# whether the run itself worked (the 20 MiB peak RSS target is reported, not enforced).
#
# What a reader gets wrong: the tree is regular files on tmpfs, so this measures the agent's own
# memory (tracked cgroups, open descriptors' bookkeeping, the rendered scrape), not the kernel's.
#
# usage: bench/agent_rss.sh [nodewarden binary] [bench_make_tree binary]
#   env: CONTAINERS (1000), LAYOUTS ("v2 v1"; v1 = hybrid v1 + unified), CYCLES (15), SCRAPES (3)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

build_default=$(cd "$(dirname "$0")/.." && pwd)/build/release
agent=${1:-$build_default/agent/nodewarden}
make_tree=${2:-$(dirname "$agent")/../bench/bench_make_tree}
containers=${CONTAINERS:-1000}
layouts=${LAYOUTS:-v2 v1}
cycles=${CYCLES:-15}
scrapes=${SCRAPES:-3}

for bin in "$agent" "$make_tree"; do
  [[ -x $bin ]] || { echo "agent_rss.sh: $bin is not an executable (build it first)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "agent_rss.sh: curl is required" >&2; exit 2; }

work=""
pid=""
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  [[ -n $work ]] && rm -rf "$work"
  pid=""
  work=""
}
trap cleanup EXIT INT TERM

scrape() {  # prints "http_code bytes seconds" and leaves the body in $work/metrics.txt
  curl -s -o "$work/metrics.txt" -w '%{http_code} %{size_download} %{time_total}\n' \
    "http://127.0.0.1:$port/metrics" || echo "000 0 0"
}

hz=$(getconf CLK_TCK)
echo "agent_rss.sh: $agent, $containers containers, interval 1s, $cycles cycles"
for layout in $layouts; do
  work=$(mktemp -d "$( [[ -d /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/nodewarden-rss.XXXXXX")
  "$make_tree" "$work/cgroup" "$containers" "$layout" | sed 's/^/  tree: /'
  mkdir -p "$work/state"
  port=$(free_port)
  "$agent" run --listen "127.0.0.1:$port" --cgroup-root "$work/cgroup" --proc-root /proc \
    --log-root "$work/no-such-log-root" --state-dir "$work/state" --interval 1s \
    >"$work/agent.log" 2>&1 &
  pid=$!
  ready=""
  for _ in $(seq 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $ready ]]; then
    echo "agent_rss.sh: the agent did not serve /metrics on 127.0.0.1:$port; its log:" >&2
    tail -20 "$work/agent.log" >&2
    exit 1
  fi
  echo "== layout $layout: agent pid $pid on 127.0.0.1:$port"
  for i in $(seq "$scrapes"); do
    read -r code bytes secs < <(scrape)
    echo "  scrape $i (start-up): HTTP $code, $bytes bytes, $(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }') ms"
  done
  t0=$(cpu_ticks "$pid")
  sleep "$cycles"
  t1=$(cpu_ticks "$pid")
  hwm_before=$(status_kib "$pid" VmHWM)
  rss_before=$(status_kib "$pid" VmRSS)
  for i in $(seq "$scrapes"); do
    read -r code bytes secs < <(scrape)
    echo "  scrape $i (after ${cycles} cycles): HTTP $code, $bytes bytes, $(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }') ms"
  done
  series=$(grep -c '^container_cpu_usage_seconds_total' "$work/metrics.txt" || true)
  lines=$(grep -vc '^#' "$work/metrics.txt" || true)
  hwm=$(status_kib "$pid" VmHWM)
  rss=$(status_kib "$pid" VmRSS)
  anon=$(status_kib "$pid" RssAnon)
  threads=$(status_kib "$pid" Threads)
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  echo "  samples: $lines series, $series container_cpu_usage_seconds_total series"
  echo "  agent CPU over the ${cycles}s wait: $(( (t1 - t0) * 1000 / hz )) ms ($(awk -v t=$((t1 - t0)) -v hz="$hz" -v c="$cycles" 'BEGIN { printf "%.1f", t * 1000 / hz / c }') ms per 1s cycle, tick resolution $((1000 / hz)) ms)"
  verdict=$(awk -v h="$hwm" 'BEGIN { print (h < 20 * 1024) ? "within" : "OVER" }')
  echo "  before the post-wait scrapes: VmHWM $hwm_before kB ($(mib "$hwm_before") MiB), VmRSS $rss_before kB ($(mib "$rss_before") MiB)"
  echo "  VmHWM $hwm kB ($(mib "$hwm") MiB, $verdict the 20 MiB target), VmRSS $rss kB ($(mib "$rss") MiB), RssAnon $anon kB, threads $threads, open fds $fds"
  errors=$(grep '^nodewarden_errors_total' "$work/metrics.txt" || true)
  if [[ -n $errors ]]; then
    while IFS= read -r line; do echo "  $line"; done <<<"$errors"
  fi
  kill -TERM "$pid"
  if wait "$pid"; then rc=0; else rc=$?; fi
  echo "  agent stopped (exit $rc)"
  pid=""
  rm -rf "$work"
  work=""
done
