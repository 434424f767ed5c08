#!/usr/bin/env bash
# log_steady.sh: the real agent at a steady log rate with a healthy destination (fake-loki): what
# it writes to its spool's files against what it ships, and its CPU. A writer appends CRI lines
# (~150 bytes, a few words and a counter) to one container log at RATE lines per second for SECS
# seconds; when every line was acknowledged the agent's /metrics and /proc figures are printed.
# Figures, never pass/fail; the exit code only says whether the run itself worked.
#
# What a reader gets wrong: the spool is on the path of every batch, but a batch the destination
# acknowledges before the next positions commit is never written (SpoolOptions::defer_writes), so
# nodewarden_log_spool_written_bytes_total stays near the first batch (the first commit is at once)
# while nodewarden_log_bytes_sent_total grows. Compare with a build before that change: its spool
# files grow with every batch (nodewarden_log_spool_bytes, while the segment is open).
#
# usage: bench/log_steady.sh [nodewarden binary] [fake-loki binary]
#   env: RATE (lines per second, 2000), SECS (20), TMPDIR (where the logs and the state dir go)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

build_default=$(cd "$(dirname "$0")/.." && pwd)/build/release
agent=${1:-$build_default/agent/nodewarden}
fake_loki=${2:-$(dirname "$agent")/../tests/fakes/fake-loki}
rate=${RATE:-2000}
secs=${SECS:-20}
for bin in "$agent" "$fake_loki"; do
  [[ -x $bin ]] || { echo "log_steady.sh: $bin is not an executable (build it first)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "log_steady.sh: curl is required" >&2; exit 2; }

work=""
agent_pid=""
loki_pid=""
cleanup() {
  stop_pid "$agent_pid"
  stop_pid "$loki_pid"
  agent_pid=""
  loki_pid=""
  if [[ -n $work ]]; then rm -rf "$work"; work=""; fi
}
trap cleanup EXIT
trap 'echo "log_steady.sh: interrupted" >&2; exit 130' INT TERM HUP

metric() { metric_in "$work/metrics.txt" "$1"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nodewarden-logsteady.XXXXXX")
"$fake_loki" 0 >/dev/null 2>"$work/fake-loki.err" &
loki_pid=$!
url=""
for _ in $(seq 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*/loki/api/v1/push' "$work/fake-loki.err" || true)
  [[ -n $url ]] && break
  sleep 0.1
done
[[ -n $url ]] || { echo "log_steady.sh: fake-loki did not start" >&2; exit 1; }

cat >"$work/config.yaml" <<'YAML'
collectors:
  cgroup:
    enabled: false
  node:
    enabled: false
  logs:
    enabled: true
  journal:
    enabled: false
YAML
log_dir="$work/pods/data_writer-0_11111111-2222-3333-4444-555555555555/app"
mkdir -p "$log_dir" "$work/state"
: >"$log_dir/0.log"
port=$(free_port)
no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost \
  "$agent" run --config "$work/config.yaml" --listen "127.0.0.1:$port" --log-root "$work/pods" \
  --state-dir "$work/state" --loki-url "$url" >"$work/agent.log" 2>&1 &
agent_pid=$!
echo "log_steady.sh: $agent, $rate lines/s for $secs s, fake-loki on $url"
sleep 1

# The writer: every 100 ms a tenth of a second's lines, timestamps as containerd writes them.
per_tick=$((rate / 10))
n=0
start=$(date +%s%N)
exec 4>>"$log_dir/0.log"
for ((tick = 1; tick <= secs * 10; tick++)); do
  ts=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
  chunk=""
  for ((i = 0; i < per_tick; i++)); do
    n=$((n + 1))
    chunk+="$ts stdout F level=info msg=\"consumer committed offset\" topic=events partition=$((n % 12)) offset=$((n * 7)) lag=$((n % 97)) worker=$((n % 5)) n=$n"$'\n'
  done
  printf '%s' "$chunk" >&4
  next=$((start + tick * 100000000))
  now_ns=$(date +%s%N)
  ((now_ns < next)) && sleep "$(awk -v d=$((next - now_ns)) 'BEGIN { printf "%.3f", d / 1e9 }')"
done
exec 4>&-

sent=0
for _ in $(seq 300); do
  curl -s --max-time 2 "http://127.0.0.1:$port/metrics" >"$work/metrics.txt" || true
  sent=$(metric nodewarden_log_lines_sent_total)
  ((sent >= n)) && break
  sleep 0.1
done
((sent >= n)) || { echo "log_steady.sh: only $sent of $n lines acknowledged" >&2; exit 1; }
echo "  lines written and acknowledged: $n"
echo "  bytes of lines sent:            $(metric nodewarden_log_bytes_sent_total)"
echo "  batches sent:                   $(metric nodewarden_log_batches_sent_total)"
echo "  spool bytes written (total):    $(metric nodewarden_log_spool_written_bytes_total)"
echo "  spool bytes on disk now:        $(metric nodewarden_log_spool_bytes)"
echo "  agent CPU (utime+stime):        $(awk -v t="$(cpu_ticks "$agent_pid")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }') s"
