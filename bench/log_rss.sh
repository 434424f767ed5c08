#!/usr/bin/env bash
# log_rss.sh: peak RSS and CPU of the real agent shipping a synthetic container-log corpus
# (1 GiB by default) to fake-loki, from start until every log line was acknowledged. Prints
# figures; the exit code only says whether the run itself worked (the 32 MiB peak RSS target is
# reported, not enforced).
#
# What a reader gets wrong: the agent's CPU is its whole life (start-up, the /metrics scrapes this
# script polls with, shutdown excluded), from /proc/<pid>/stat at the moment the last line was
# acknowledged; fake-loki runs beside it on the same cores (it decodes every push, keeps every entry
# in memory and prints each as JSON to /dev/null), so wall time is slower than the agent alone
# would be, and fake-loki's own memory grows with the corpus (a few GiB for 1 GiB of logs).
#
# usage: bench/log_rss.sh [nodewarden binary] [bench_make_log_corpus binary] [fake-loki binary]
#   env: CORPUS_MIB (1024), PODS (8), TIMEOUT (seconds to wait for the last line, 1800),
#        TMPDIR (where the corpus, state dir and spool go; on disk, not tmpfs, by default /tmp),
#        ENCODING (the agent's loki.encoding: protobuf, the default, or json)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

build_default=$(cd "$(dirname "$0")/.." && pwd)/build/release
agent=${1:-$build_default/agent/nodewarden}
make_corpus=${2:-$(dirname "$agent")/../bench/bench_make_log_corpus}
fake_loki=${3:-$(dirname "$agent")/../tests/fakes/fake-loki}
corpus_mib=${CORPUS_MIB:-1024}
pods=${PODS:-8}
timeout_s=${TIMEOUT:-1800}
encoding=${ENCODING:-protobuf}
[[ $encoding == protobuf || $encoding == json ]] || { echo "log_rss.sh: ENCODING must be protobuf or json" >&2; exit 2; }

for bin in "$agent" "$make_corpus" "$fake_loki"; do
  [[ -x $bin ]] || { echo "log_rss.sh: $bin is not an executable (build it first)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "log_rss.sh: curl is required" >&2; exit 2; }

work=""
agent_pid=""
loki_pid=""
cleanup() {
  stop_pid "$agent_pid"
  agent_pid=""
  stop_pid "$loki_pid"
  loki_pid=""
  if [[ -n $work ]]; then
    rm -rf "$work"
    [[ -e $work ]] && echo "log_rss.sh: could not remove $work" >&2
    work=""
  fi
}
trap cleanup EXIT
trap 'echo "log_rss.sh: interrupted" >&2; exit 130' INT TERM HUP

now() { date +%s.%N; }
metric() { metric_in "$work/metrics.txt" "$1"; }

hz=$(getconf CLK_TCK)
work=$(mktemp -d "${TMPDIR:-/tmp}/nodewarden-logrss.XXXXXX")
echo "log_rss.sh: $agent, corpus $corpus_mib MiB, $pods pods, loki.encoding $encoding, work dir $work ($(stat -f -c %T "$work"))"

t0=$(now)
read -r corpus_line < <("$make_corpus" "$work/pods" "$corpus_mib" "$pods")
echo "  corpus: $corpus_line (written in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s)"
lines=$(tr ' ' '\n' <<<"$corpus_line" | awk -F= '$1 == "lines" { print $2 }')
bytes=$(tr ' ' '\n' <<<"$corpus_line" | awk -F= '$1 == "bytes" { print $2 }')
[[ -n $lines && -n $bytes ]] || { echo "log_rss.sh: cannot read the corpus size" >&2; exit 1; }

# fake-loki prints every entry on stdout: thrown away here. Its port comes from its stderr.
"$fake_loki" 0 >/dev/null 2>"$work/fake-loki.err" &
loki_pid=$!
url=""
for _ in $(seq 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*/loki/api/v1/push' "$work/fake-loki.err" || true)
  [[ -n $url ]] && break
  kill -0 "$loki_pid" 2>/dev/null || break
  sleep 0.05
done
[[ -n $url ]] || { echo "log_rss.sh: fake-loki did not start:" >&2; cat "$work/fake-loki.err" >&2; exit 1; }

cat >"$work/config.yaml" <<'EOF'
# log_rss.sh: container logs only; no cgroup, node or journal collection.
collectors:
  cgroup:
    enabled: false
  node:
    enabled: false
  logs:
    enabled: true
  journal:
    enabled: false
EOF
printf 'loki:\n  encoding: %s\n' "$encoding" >>"$work/config.yaml"
"$agent" check-config "$work/config.yaml" >/dev/null

mkdir -p "$work/state"
port=$(free_port)
start=$(now)
no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost \
  "$agent" run --config "$work/config.yaml" --listen "127.0.0.1:$port" --log-root "$work/pods" \
  --state-dir "$work/state" --loki-url "$url" >"$work/agent.log" 2>&1 &
agent_pid=$!
echo "  agent pid $agent_pid on 127.0.0.1:$port, fake-loki pid $loki_pid on $url"

sent=0
joined=0
done_at=""
deadline=$(awk -v s="$start" -v t="$timeout_s" 'BEGIN { printf "%.0f", s + t }')
while :; do
  if ! kill -0 "$agent_pid" 2>/dev/null; then
    echo "log_rss.sh: the agent exited; its log:" >&2
    tail -20 "$work/agent.log" >&2
    agent_pid=""
    exit 1
  fi
  if curl -s -o "$work/metrics.txt" "http://127.0.0.1:$port/metrics"; then
    sent=$(metric nodewarden_log_lines_sent_total)
    # A stack trace the multiline stage joined is sent as one entry: every line is delivered once
    # the entries sent and the lines joined into them add up to the corpus's lines.
    joined=$(metric nodewarden_log_multiline_joined_lines_total)
    if [[ $((sent + joined)) -ge $lines ]]; then
      ticks=$(cpu_ticks "$agent_pid")
      done_at=$(now)
      break
    fi
  fi
  if [[ $(date +%s) -ge $deadline ]]; then
    echo "log_rss.sh: only $sent of $lines lines acknowledged after ${timeout_s}s" >&2
    ticks=$(cpu_ticks "$agent_pid")
    break
  fi
  sleep 0.5
done

hwm=$(status_kib "$agent_pid" VmHWM)
rss=$(status_kib "$agent_pid" VmRSS)
anon=$(status_kib "$agent_pid" RssAnon)
threads=$(status_kib "$agent_pid" Threads)
fds=$(find "/proc/$agent_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
loki_hwm=$(status_kib "$loki_pid" VmHWM)
loki_ticks=$(cpu_ticks "$loki_pid")
end=${done_at:-$(now)}
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
cpu=$(awk -v t="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')
corpus_mib_exact=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')

echo "  acknowledged: $sent entries holding $((sent + joined)) of $lines lines (nodewarden_log_lines_sent_total + nodewarden_log_multiline_joined_lines_total)"
echo "  agent metrics: lines read $(metric nodewarden_log_lines_read_total), line bytes read $(metric nodewarden_log_bytes_read_total) (file bytes $bytes), batches sent $(metric nodewarden_log_batches_sent_total), spool bytes now $(metric nodewarden_log_spool_bytes)"
grep -E '^nodewarden_log_send_requests_total|^nodewarden_log_lines_dropped_total|^nodewarden_errors_total' \
  "$work/metrics.txt" | sed 's/^/  /' || true
echo "  wall from start to the last acknowledgement: $wall s ($(awk -v m="$corpus_mib_exact" -v w="$wall" 'BEGIN { printf "%.1f", m / w }') MiB/s, polled every 0.5 s)"
echo "  agent CPU (utime+stime): $cpu s, $(awk -v m="$corpus_mib_exact" -v c="$cpu" 'BEGIN { printf "%.1f", (c > 0) ? m / c : 0 }') MiB per CPU-second ($(awk -v b="$bytes" -v c="$cpu" 'BEGIN { printf "%.2f", c * 1073741824 / b }') CPU-s per GiB; tick $((1000 / hz)) ms)"
verdict=$(awk -v h="$hwm" 'BEGIN { print (h < 32 * 1024) ? "within" : "OVER" }')
echo "  agent VmHWM $hwm kB ($(mib "$hwm") MiB, $verdict the 32 MiB target), VmRSS $rss kB ($(mib "$rss") MiB), RssAnon $anon kB, threads $threads, open fds $fds"
echo "  fake-loki (not counted): CPU $(awk -v t="$loki_ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }') s, VmHWM $(mib "$loki_hwm") MiB"
stop_pid "$agent_pid"
echo "  agent stopped"
agent_pid=""
[[ -n $done_at ]]
