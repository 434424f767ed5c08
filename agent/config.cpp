// Config loading: YAML (yaml-cpp) over the embedded defaults, strict about keys, types and units;
// and the YAML written back (--print-config, `nodewarden config`, deploy/config/nodewarden.yaml),
// all from one schema table: a row per key with its member, type, range and doc.
//
// What a reader gets wrong: yaml-cpp reports problems by throwing and is lenient where we must not
// be (duplicate keys are kept, quoted "8" converts to an int, a missing value is null). So the file
// is walked against one schema table below, every key checked, every value's YAML kind checked,
// and yaml-cpp exceptions are caught here and turned into ConfigErrors; none leaves this file.
#include "agent/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "agent/config_custom.h"
#include "agent/config_multiline.h"
#include "agent/config_rate_limit.h"
#include "agent/config_rules.h"
#include "agent/config_tenants.h"
#include "agent/json_log.h"
#include "pipeline/pod_labels.h"

namespace nodewarden {
namespace {

using Duration = std::chrono::milliseconds;

constexpr std::size_t kMaxConfigBytes = 1
                                        << 20;  // a config is a few hundred bytes; refuse /dev/zero
constexpr std::size_t kMaxSuggestionDistance = 2;

// --- Schema
// --------------------------------------------------------------------------------------- One row
// per key: where it lives in Config, its type (the alternative of Target), one line of doc and,
// where it has one, its range. The default is never written here: it is read from a
// default-constructed Config.

struct Field;
using Section = std::span<const Field>;
constexpr std::string_view kWindowNames[detector::kWindows] = {"short", "mid", "long"};
template <class T>
using Member = T& (*)(Config&);
struct ByteSize {
  Member<std::uint64_t> get;
};
// A count a component keeps as std::size_t (collectors.logs.max_open_files): written and read as
// an int key, so its errors read as an int key's do.
struct Count {
  Member<std::size_t> get;
};
// detector.metrics_windows: a list of window names in the file, a flag per window in the options.
struct WindowSet {
  Member<std::array<bool, detector::kWindows>> get;
};
using Target = std::variant<Member<std::string>, Member<std::filesystem::path>, Member<Duration>,
                            Member<bool>, Member<int>, Member<double>, ByteSize, Count,
                            Member<std::vector<std::string>>, WindowSet, Section, Custom>;

// Bounds, inclusive: milliseconds for durations, bytes for sizes.
struct Range {
  std::optional<double> min;
  std::optional<double> max;
};

struct Field {
  std::string_view key;
  Target target;
  std::string_view doc;
  Range range{};
};

// A member of Config as a function, so one row can reach into a nested options struct or one
// element of an array. Reads of a const Config go through the same function (see read()).
#define NODEWARDEN_AT(member) \
  +[](Config & c) -> auto& {  \
    return c.member;          \
  }

constexpr double kMs = 1;
constexpr double kS = 1000;
constexpr double kMin = 60 * kS;
constexpr double kH = 60 * kMin;
constexpr double kDay = 24 * kH;
constexpr double kKiB = 1024;
constexpr double kMiB = 1024 * kKiB;
constexpr double kGiB = 1024 * kMiB;
constexpr double kTiB = 1024 * kGiB;

constexpr Field kTlsFields[] = {
    {"cert_file", NODEWARDEN_AT(tls.cert_file),
     "PEM certificate (chain); with key_file, or neither"},
    {"key_file", NODEWARDEN_AT(tls.key_file), "PEM private key of cert_file"},
    {"client_ca_file", NODEWARDEN_AT(tls.client_ca_file),
     "PEM CA bundle: clients must present a certificate it signed"},
};
constexpr Field kPathsFields[] = {
    {"cgroup_root", NODEWARDEN_AT(paths.cgroup_root), "cgroup v2, v1 or hybrid hierarchy"},
    {"proc_root", NODEWARDEN_AT(paths.proc_root), "node readings (/proc/stat, /proc/meminfo, ...)"},
    {"log_root", NODEWARDEN_AT(paths.log_root), "kubelet's container log files"},
    {"state_dir", NODEWARDEN_AT(paths.state_dir),
     "checkpoints and the spool; must survive restarts (hostPath)"},
    {"runtime_state_dirs", NODEWARDEN_AT(paths.runtime_state_dirs),
     "containerd's and CRI-O's state (per-container config.json with kubelet's annotations)"},
};
constexpr Field kCgroupFields[] = {
    {"enabled", NODEWARDEN_AT(cgroup.enabled), "container and pod series from cgroups"},
    {"max_depth",
     NODEWARDEN_AT(cgroup.max_depth),
     "how deep under the cgroup root to look for kubepods",
     {1, 32}},
    {"root_search_interval",
     NODEWARDEN_AT(cgroup.root_search_interval),
     "how often the hierarchies are searched again for kubepods once it was found",
     {1 * kS, {}}},
    {"run_delay", NODEWARDEN_AT(cgroup.run_delay),
     "threads' run-queue wait from /proc/<tid>/schedstat"},
    {"aggregates", NODEWARDEN_AT(cgroup.aggregates),
     "also the root (id \"/\"), kubepods and QoS cgroups, as cAdvisor reports them"},
    {"process_stats", NODEWARDEN_AT(cgroup.process_stats),
     "container_processes, _threads, _file_descriptors, _sockets from cgroup.procs and "
     "/proc/<pid>/fd"},
    {"fd_scan_interval",
     NODEWARDEN_AT(cgroup.fd_scan_interval),
     "how often a container's /proc/<pid>/fd entries are counted again (the last count in between)",
     {0, {}}},
    {"max_fd_scan_processes",
     Count{NODEWARDEN_AT(cgroup.max_fd_scan_processes)},
     "processes whose descriptors one cycle counts at most; the rest wait for the next cycle",
     {1, 1000000}},
};
constexpr Field kNodeFields[] = {
    {"enabled", NODEWARDEN_AT(node.enabled), "node series from /proc"},
};
constexpr Field kPodsFields[] = {
    {"runtime_state", NODEWARDEN_AT(pods.runtime_state),
     "names and images from the runtime's state on the node: needs no API access"},
    {"kubelet", NODEWARDEN_AT(pods.kubelet),
     "the kubelet's /pods (RBAC nodes/pods or nodes/proxy), when its URL is known"},
    {"kubelet_refresh_interval",
     NODEWARDEN_AT(pods.kubelet_source.refresh_interval),
     "at most one GET /pods per interval",
     {1 * kS, 10 * kMin}},
    {"apiserver", NODEWARDEN_AT(pods.apiserver),
     "list+watch of this node's pods (RBAC: list, watch pods; get jobs.batch)"},
    {"unknown_image", NODEWARDEN_AT(pods.unknown_image),
     "image label of a container no source knows the image of, past the hold (\"\": empty)"},
};
constexpr Field kLogsFields[] = {
    {"enabled", NODEWARDEN_AT(logs.enabled),
     "tail the container log files (CRI, Docker json-file)"},
    {"max_line_bytes",
     ByteSize{NODEWARDEN_AT(logs.tailer.max_line_bytes)},
     "a longer line is cut here and marked truncated=\"true\"",
     {1 * kKiB, 64 * kMiB}},
    {"max_open_files",
     Count{NODEWARDEN_AT(logs.tailer.max_open_files)},
     "files held open at once; more wait their turn (none is dropped)",
     {4, 1 << 20}},
    {"rescan_interval",
     NODEWARDEN_AT(logs.tailer.rescan_interval),
     "a full rescan of the log root catches anything inotify missed",
     {100 * kMs, {}}},
    {"read_compressed", NODEWARDEN_AT(logs.tailer.read_compressed),
     "also read rotated .gz files, from where their plain predecessor was left"},
    {"max_streams",
     Count{NODEWARDEN_AT(logs.batcher.max_streams)},
     "label sets per batch; entries of streams past it are dropped and counted",
     {1, 1 << 20}},
    {"batch_bytes",
     ByteSize{NODEWARDEN_AT(logs.batcher.batch_bytes)},
     "a batch is closed and spooled at this many bytes of lines ...",
     {1 * kKiB, 64 * kMiB}},
    {"batch_wait",
     NODEWARDEN_AT(logs.batcher.batch_wait),
     "... or when its first line is this old",
     {10 * kMs, 1 * kMin}},
    {"multiline", Custom{readMultiline, writeMultiline, equalMultiline},
     "multi-line entries (stack traces) joined per stream before any other step"},
    {"filters", config_rules::kFilters,
     "drop streams, or their lines that match (drop_lines) or not (keep_lines) an RE2 pattern"},
    {"rate_limit", Custom{&readRateLimitConfig, &writeRateLimitConfig, &equalRateLimitConfig},
     "per-stream limits so one pod cannot starve the log path (agent/config_rate_limit.h)"},
    {"redaction", config_rules::kRedaction,
     "secrets in lines replaced by <redacted:RULE> before they leave the node"},
};
constexpr Field kJournalFields[] = {
    {"enabled", NODEWARDEN_AT(journal.enabled),
     "the node's systemd journal, resumed from a cursor"},
    {"dir", NODEWARDEN_AT(journal.dir), "or /run/log/journal on nodes with a volatile journal"},
    {"units", NODEWARDEN_AT(journal.units), "the units whose entries are read"},
};
constexpr Field kJobsFields[] = {
    {"enabled", NODEWARDEN_AT(jobs.enabled),
     "every Job pod on this node that ends: GET /jobs, series and a log entry"},
    {"poll_interval",
     NODEWARDEN_AT(jobs.poll_interval),
     "Job pods' statuses checked and their cgroups read between cycles",
     {100 * kMs, 1 * kMin}},
    {"status_wait",
     NODEWARDEN_AT(jobs.status_wait),
     "after a pod's cgroups are gone, how long its final status is awaited",
     {1 * kS, 1 * kH}},
    {"retention",
     NODEWARDEN_AT(jobs.retention),
     "outcomes kept for /jobs, the per-job series and deduplication",
     {1 * kMin, 30 * kDay}},
    {"max_recent", NODEWARDEN_AT(jobs.max_recent), "outcomes kept at most", {1, 100000}},
};
constexpr Field kCollectorsFields[] = {
    {"cgroup", Section(kCgroupFields), "containers and pods from cgroups"},
    {"node", Section(kNodeFields), "the node itself"},
    {"pods", Section(kPodsFields), "where pod and container names, images and sandboxes come from"},
    {"logs", Section(kLogsFields), "container logs under paths.log_root"},
    {"journal", Section(kJournalFields), "the node's journal (kubelet and the container runtime)"},
    {"jobs", Section(kJobsFields), "Job outcomes (needs the kubelet or API server source)"},
};
constexpr Field kLokiFields[] = {
    {"url", NODEWARDEN_AT(loki.url), "push URL, e.g. https://loki.example:3100/loki/api/v1/push"},
    {"tenant", NODEWARDEN_AT(loki.tenant), "sent as X-Scope-OrgID"},
    {"tenants", Custom{readLokiTenants, writeLokiTenants, equalLokiTenants},
     "X-Scope-OrgID by namespace or pod label; lines no rule claims go to tenant"},
    {"encoding", NODEWARDEN_AT(loki.encoding), "protobuf (snappy) or json (gzip)"},
    {"bearer_token_file", NODEWARDEN_AT(loki.bearer_token_file),
     "re-read on every push, so a rotated token is picked up"},
    {"username", NODEWARDEN_AT(loki.username),
     "basic auth (with password_file); not with a bearer token"},
    {"password_file", NODEWARDEN_AT(loki.password_file), "the basic auth password"},
    {"ca_file", NODEWARDEN_AT(loki.ca_file), "PEM bundle for a private CA"},
    {"insecure_skip_verify", NODEWARDEN_AT(loki.insecure_skip_verify),
     "do not verify the server's certificate"},
    {"timeout", NODEWARDEN_AT(loki.timeout), "each push", {100 * kMs, 10 * kMin}},
    {"local_file_max_bytes",
     ByteSize{NODEWARDEN_AT(loki.local_file_max_bytes)},
     "with no url: <state_dir>/logs/nodewarden-logs.jsonl rolls at this size",
     {1 * kMiB, kTiB}},
};
constexpr Field kRemoteWriteFields[] = {
    {"url", NODEWARDEN_AT(remote_write.url), "e.g. http://prometheus:9090/api/v1/write"},
    {"bearer_token_file", NODEWARDEN_AT(remote_write.bearer_token_file),
     "re-read on every request, so a rotated token is picked up"},
    {"username", NODEWARDEN_AT(remote_write.username),
     "basic auth (with password_file); not with a bearer token"},
    {"password_file", NODEWARDEN_AT(remote_write.password_file), "the basic auth password"},
    {"ca_file", NODEWARDEN_AT(remote_write.ca_file), "PEM bundle for a private CA"},
    {"insecure_skip_verify", NODEWARDEN_AT(remote_write.insecure_skip_verify),
     "do not verify the server's certificate"},
    {"timeout", NODEWARDEN_AT(remote_write.timeout), "each request", {100 * kMs, 10 * kMin}},
    {"headers", NODEWARDEN_AT(remote_write.headers),
     "extra headers, e.g. [\"X-Scope-OrgID: team-a\"]"},
    {"max_samples_per_send",
     NODEWARDEN_AT(remote_write.max_samples_per_send),
     "samples per request, like Prometheus' max_samples_per_send",
     {1, 1000000}},
    {"spool_max_bytes",
     ByteSize{NODEWARDEN_AT(remote_write.spool_max_bytes)},
     "requests wait in <state_dir>/spool/remote_write; when full the oldest go",
     {1 * kMiB, kTiB}},
};
constexpr Field kSpoolFields[] = {
    {"max_bytes",
     ByteSize{NODEWARDEN_AT(spool.max_bytes)},
     "when full, reading pauses (the log files are the buffer); at least 4 x batch_bytes",
     {{}, kTiB}},
    {"segment_bytes",
     ByteSize{NODEWARDEN_AT(spool.segment_bytes)},
     "a file of the spool; at most max_bytes / 4 (lowered to it)",
     {64 * kKiB, kGiB}},
};
constexpr Field kKubernetesFields[] = {
    {"kubelet_url", NODEWARDEN_AT(kubernetes.kubelet_url),
     "empty: https://$NODE_IP:10250 (set NODE_IP from status.hostIP)"},
    {"apiserver_url", NODEWARDEN_AT(kubernetes.apiserver_url),
     "empty: KUBERNETES_SERVICE_HOST/_PORT"},
    {"token_file", NODEWARDEN_AT(kubernetes.token_file), "empty: the service account's token"},
    {"ca_file", NODEWARDEN_AT(kubernetes.ca_file), "empty: the service account's CA"},
    {"kubelet_insecure_skip_verify", NODEWARDEN_AT(kubernetes.kubelet_insecure_skip_verify),
     "many kubelets serve a self-signed certificate no CA in the pod can verify"},
    {"pod_labels", NODEWARDEN_AT(kubernetes.pod_labels),
     "pod label keys exported on log streams and nodewarden_pod_labels; keep it short"},
};
constexpr Field kDetectorWindowFields[] = {
    {"short", NODEWARDEN_AT(detector.windows[0]), "", {1 * kS, 1 * kH}},
    {"mid",
     NODEWARDEN_AT(detector.windows[1]),
     "also the window of the throttle ratio",
     {1 * kS, 1 * kH}},
    {"long",
     NODEWARDEN_AT(detector.windows[2]),
     "also sizes each container's ring",
     {1 * kS, 1 * kH}},
};
constexpr Field kRecommendationFields[] = {
    {"half_life",
     NODEWARDEN_AT(detector.half_life),
     "a sample's weight halves every half-life (VPA's default)",
     {1 * kMin, 30 * kDay}},
    {"memory_peak_interval",
     NODEWARDEN_AT(detector.memory_peak_interval),
     "memory is sized from the peak of each such interval",
     {1 * kS, 7 * kDay}},
    {"cpu_percentile",
     NODEWARDEN_AT(detector.cpu_percentile),
     "of per-interval CPU usage",
     {0.01, 1}},
    {"memory_percentile",
     NODEWARDEN_AT(detector.memory_percentile),
     "of the per-interval working-set peaks",
     {0.01, 1}},
    {"margin",
     NODEWARDEN_AT(detector.margin),
     "added on top of both (VPA's safety margin)",
     {0, 10}},
};
constexpr Field kOnsetMinStallFields[] = {
    {"cpu",
     NODEWARDEN_AT(detector.onset_min_stall[0]),
     "cpu stall is noisy (a light neighbour leaves 0.11-0.14)",
     {0, 1}},
    {"memory",
     NODEWARDEN_AT(detector.onset_min_stall[1]),
     "memory stall is 0 at baseline and rises only under reclaim",
     {0, 1}},
    {"io", NODEWARDEN_AT(detector.onset_min_stall[2]), "", {0, 1}},
};
constexpr Field kNoisyNeighborFields[] = {
    {"baseline_half_life",
     NODEWARDEN_AT(detector.baseline_half_life),
     "each pod's usual stall; learnt only from quiet intervals",
     {1 * kS, 1 * kDay}},
    {"victim_z",
     NODEWARDEN_AT(detector.victim_z),
     "standard deviations above the baseline ...",
     {0, 100}},
    {"victim_min_stall",
     NODEWARDEN_AT(detector.victim_min_stall),
     "... and at least this share of wall time above it (cpu, io)",
     {0, 1}},
    {"memory_victim_min_stall",
     NODEWARDEN_AT(detector.memory_victim_min_stall),
     "memory's: 0 at baseline, and 0.12 already halves a victim",
     {0, 1}},
    {"self_throttle_ratio",
     NODEWARDEN_AT(detector.self_throttle_ratio),
     "throttled share of periods from which cpu stall is its own",
     {0, 1}},
    {"victim_k", NODEWARDEN_AT(detector.victim_k),
     "high in k of the last n intervals (and the last one); 1..victim_n"},
    {"victim_n", NODEWARDEN_AT(detector.victim_n), "", {1, 64}},
    {"onset_min_stall", Section(kOnsetMinStallFields),
     "one interval is a verdict on its own at 2 x victim_z and this share of wall time"},
    {"correlation_window",
     NODEWARDEN_AT(detector.correlation_window),
     "antagonists are ranked over this window at most ...",
     {1 * kS, 1 * kH}},
    {"episode_lead",
     NODEWARDEN_AT(detector.episode_lead),
     "... the victim's episode and this much quiet before it",
     {1 * kS, 1 * kH}},
    {"antagonist_threshold",
     NODEWARDEN_AT(detector.antagonist_threshold),
     "correlation needed to name an antagonist",
     {-1, 1}},
};
constexpr Field kDetectorFields[] = {
    {"enabled", NODEWARDEN_AT(detector.enabled),
     "usage windows, right-sizing and noisy-neighbor verdicts (README \"Detector\")"},
    {"windows", Section(kDetectorWindowFields),
     "usage quantiles over these, in order short <= mid <= long (at most 3600 intervals)"},
    {"metrics_windows", WindowSet{NODEWARDEN_AT(detector.metrics_windows)},
     "windows whose quantiles are also on /metrics (8 series each per container)"},
    {"max_containers",
     NODEWARDEN_AT(detector.max_containers),
     "pods + containers tracked; the rest is counted, not kept",
     {1, 100000}},
    {"recommendation", Section(kRecommendationFields), "right-sizing: decaying histograms"},
    {"noisy_neighbor", Section(kNoisyNeighborFields), "victims and their antagonists"},
};
constexpr Field kPlacementFields[] = {
    {"enabled", NODEWARDEN_AT(placement.enabled),
     "needs detector.enabled and RBAC patch on nodes and nodes/status"},
    {"dry_run", NODEWARDEN_AT(placement.dry_run), "log the patches instead of sending them"},
    {"condition_type", NODEWARDEN_AT(placement.condition_type), "the node condition's type"},
    {"annotation_key", NODEWARDEN_AT(placement.annotation_key),
     "the annotation with the node's scores"},
    {"taint_key", NODEWARDEN_AT(placement.taint_key), "the PreferNoSchedule taint's key"},
    {"on_score",
     NODEWARDEN_AT(placement.on_score),
     "node interference score that turns the taint on ...",
     {0, 1}},
    {"off_score",
     NODEWARDEN_AT(placement.off_score),
     "... and the one it must fall under to come off",
     {0, 1}},
    {"on_hold",
     NODEWARDEN_AT(placement.on_hold),
     "above on_score this long before tainting",
     {0, 1 * kDay}},
    {"off_hold",
     NODEWARDEN_AT(placement.off_hold),
     "under off_score this long before untainting",
     {0, 1 * kDay}},
    {"min_taint_duration",
     NODEWARDEN_AT(placement.min_taint_duration),
     "a taint stays at least this long",
     {0, 1 * kDay}},
    {"max_backoff",
     NODEWARDEN_AT(placement.max_backoff),
     "retries of failed API calls back off up to this",
     {100 * kMs, 1 * kH}},
    {"timeout", NODEWARDEN_AT(placement.timeout), "each request", {100 * kMs, 10 * kMin}},
};
constexpr Field kRootFields[] = {
    {"listen", NODEWARDEN_AT(listen),
     "host:port of /metrics, /healthz, /readyz, /jobs, /signals (IPv6 as [::1]:9465)"},
    {"tls", Section(kTlsFields), "TLS on the listener, re-read when the files change"},
    {"node_name", NODEWARDEN_AT(node_name), "empty: $NODE_NAME, else the host name"},
    {"interval", NODEWARDEN_AT(interval), "collection period", {1 * kS, 1 * kH}},
    {"log_level", NODEWARDEN_AT(log_level),
     "trace, debug, info, warn or error (JSON lines on stderr)"},
    {"paths", Section(kPathsFields), "where the node is (in the DaemonSet, under /host)"},
    {"collectors", Section(kCollectorsFields), "what is read"},
    {"loki", Section(kLokiFields),
     "where logs go; with no url they stay on the node (the spool, then a local file)"},
    {"remote_write", Section(kRemoteWriteFields),
     "Prometheus remote write of every cycle's series; off while url is empty"},
    {"spool", Section(kSpoolFields), "the durable queue of logs in <state_dir>/spool"},
    {"kubernetes", Section(kKubernetesFields),
     "endpoints for the pod metadata sources and the placement feed"},
    {"detector", Section(kDetectorFields), "signals, right-sizing and noisy neighbors"},
    {"placement", Section(kPlacementFields),
     "opt-in: this node's condition, annotation and taint in the API server"},
};

#undef NODEWARDEN_AT

std::string joinPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

void collectPaths(Section section, const std::string& parent, std::vector<std::string>& out) {
  for (const Field& field : section) {
    std::string path = joinPath(parent, field.key);
    out.push_back(path);
    if (const auto* child = std::get_if<Section>(&field.target)) collectPaths(*child, path, out);
  }
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "unknown key" plus the most useful hint: a near miss in the same section, else the same name in
// another section (a key indented at the wrong level), else the list of keys that are allowed.
std::string unknownKeyReason(std::string_view key, Section section) {
  std::string reason = "unknown key \"" + std::string(key) + "\"";
  const Field* closest = nullptr;
  std::size_t best = kMaxSuggestionDistance + 1;
  for (const Field& field : section) {
    const std::size_t distance = editDistance(key, field.key);
    if (distance < best) {
      best = distance;
      closest = &field;
    }
  }
  if (closest != nullptr) return reason + " (did you mean \"" + std::string(closest->key) + "\"?)";

  std::vector<std::string> all;
  collectPaths(kRootFields, "", all);
  for (const std::string& path : all) {
    const std::size_t dot = path.rfind('.');
    const std::string_view last =
        dot == std::string::npos ? std::string_view(path) : std::string_view(path).substr(dot + 1);
    if (last == key) {
      return reason + " (did you mean \"" + path + "\"?)";
    }
  }

  reason += " (known keys:";
  for (std::size_t i = 0; i < section.size(); ++i) {
    reason += i == 0 ? " " : ", ";
    reason += section[i].key;
  }
  return reason + ")";
}

// --- Walking the document
// -------------------------------------------------------------------------

std::string_view kindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

int lineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

// yaml-cpp gives quoted scalars the non-specific tag "!" (YAML 1.2 section 6.9.1): "8" is a string.
bool isQuoted(const YAML::Node& node) { return node.Tag() == "!"; }

std::string inQuotes(std::string_view text) { return "\"" + std::string(text) + "\""; }

// Walks one document into a Config. The first error wins: once error_ is set, later reads do
// nothing, so nested reads need not pass results back up.
class ConfigParser final : public CustomReader {
 public:
  explicit ConfigParser(const std::string& file) : file_(file) {}

  void fail(int line, const std::string& field, std::string reason) override {
    if (!error_) error_ = ConfigError{file_, line, field, std::move(reason)};
  }
  [[nodiscard]] bool failed() const override { return error_.has_value(); }

  void parseSection(const YAML::Node& node, int line, const std::string& path, Section section,
                    Config& config) {
    if (node.IsNull()) return;  // "collectors:" with everything below commented out
    if (!node.IsMap()) {
      fail(line, path,
           "expected a mapping of settings, found " + std::string(kindName(node)) +
               (node.IsScalar() ? " " + inQuotes(node.Scalar()) : ""));
      return;
    }
    std::map<std::string, int, std::less<>> seen;  // key -> line where it was first set
    // Range-for keeps each dereferenced entry alive for the body; with an explicit iterator,
    // it->first refers into a temporary proxy and dangles (GCC's -Wdangling-pointer catches it).
    for (const auto& entry : node) {
      if (error_) return;
      const YAML::Node& key = entry.first;
      const int key_line = lineOf(key);
      if (!key.IsScalar()) {
        fail(key_line, path, "keys must be plain names, found " + std::string(kindName(key)));
        return;
      }
      const std::string field_path = joinPath(path, key.Scalar());
      if (const auto first = seen.find(key.Scalar()); first != seen.end()) {
        fail(key_line, field_path,
             "duplicate key (first set on line " + std::to_string(first->second) + ")");
        return;
      }
      seen.emplace(key.Scalar(), key_line);
      const auto field = std::ranges::find(section, std::string_view(key.Scalar()), &Field::key);
      if (field == section.end()) {
        fail(key_line, field_path, unknownKeyReason(key.Scalar(), section));
        return;
      }
      lines_[field_path] = key_line;
      // Errors about a value point at its key's line: for a missing value yaml-cpp marks the next
      // token, which may be lines further down.
      std::visit(
          [&](const auto& target) {
            if constexpr (std::is_same_v<std::decay_t<decltype(target)>, Count>) {
              read(entry.second, key_line, field_path, target, field->range, config);
            } else {
              read(entry.second, key_line, field_path, target, config);
            }
          },
          field->target);
    }
  }

  [[nodiscard]] const std::optional<ConfigError>& error() const { return error_; }

  // Line of the key that set a field, 0 if the document did not set it.
  [[nodiscard]] int lineOfField(const std::string& field) const {
    const auto it = lines_.find(field);
    return it == lines_.end() ? 0 : it->second;
  }

 private:
  void read(const YAML::Node& node, int line, const std::string& path, Section section,
            Config& config) {
    parseSection(node, line, path, section, config);
  }

  void read(const YAML::Node& node, int line, const std::string& path, Custom target,
            Config& config) {
    target.read(node, line, path, config, *this);
  }

  void read(const YAML::Node& node, int line, const std::string& path, Member<std::string> target,
            Config& config) {
    if (auto text = scalarText(node, line, path, "a string")) target(config) = std::move(*text);
  }

  void read(const YAML::Node& node, int line, const std::string& path,
            Member<std::filesystem::path> target, Config& config) {
    if (auto text = scalarText(node, line, path, "a path")) target(config) = std::move(*text);
  }

  void read(const YAML::Node& node, int line, const std::string& path, Member<Duration> target,
            Config& config) {
    const auto text = scalarText(node, line, path, "a duration such as \"10s\"");
    if (!text) return;
    if (const auto duration = parseDuration(*text)) {
      target(config) = *duration;
    } else {
      fail(line, path, duration.error());
    }
  }

  void read(const YAML::Node& node, int line, const std::string& path, Member<bool> target,
            Config& config) {
    bool value = false;
    if (!node.IsScalar() || isQuoted(node) || !YAML::convert<bool>::decode(node, value)) {
      fail(line, path, "expected true or false, found " + describe(node));
      return;
    }
    target(config) = value;
  }

  void read(const YAML::Node& node, int line, const std::string& path, ByteSize target,
            Config& config) {
    const auto text = scalarText(node, line, path, "a size such as \"1MiB\"");
    if (!text) return;
    if (isQuoted(node)) {
      fail(line, path, "expected a size such as 1MiB, found " + describe(node));
      return;
    }
    if (const auto size = parseByteSize(*text)) {
      target.get(config) = *size;
    } else {
      fail(line, path, size.error());
    }
  }

  void read(const YAML::Node& node, int line, const std::string& path,
            Member<std::vector<std::string>> target, Config& config) {
    if (!node.IsSequence()) {
      fail(line, path, "expected a list of strings, found " + describe(node));
      return;
    }
    std::vector<std::string> out;
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        fail(lineOf(item), path,
             "expected a list of strings, found an item that is " + std::string(kindName(item)));
        return;
      }
      // validateConfig names a bad item "<path>[<index>]": its own line, not the key's.
      lines_[path + "[" + std::to_string(out.size()) + "]"] = lineOf(item);
      out.push_back(item.Scalar());
    }
    target(config) = std::move(out);
  }

  // Window names, each checked here: the options hold a flag per window, not the names.
  void read(const YAML::Node& node, int line, const std::string& path, WindowSet target,
            Config& config) {
    if (!node.IsSequence()) {
      fail(line, path, "expected a list of strings, found " + describe(node));
      return;
    }
    std::array<bool, detector::kWindows> out{};
    std::size_t index = 0;
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        fail(lineOf(item), path,
             "expected a list of strings, found an item that is " + std::string(kindName(item)));
        return;
      }
      const auto window = std::ranges::find(kWindowNames, std::string_view(item.Scalar()));
      if (window == std::end(kWindowNames)) {
        fail(lineOf(item), path + "[" + std::to_string(index) + "]",
             "must be short, mid or long, got " + inQuotes(item.Scalar()));
        return;
      }
      out[static_cast<std::size_t>(window - std::begin(kWindowNames))] = true;
      ++index;
    }
    target.get(config) = out;
  }

  void read(const YAML::Node& node, int line, const std::string& path, Member<int> target,
            Config& config) {
    int value = 0;
    if (!node.IsScalar() || isQuoted(node) || !YAML::convert<int>::decode(node, value)) {
      fail(line, path, "expected an integer, found " + describe(node));
      return;
    }
    target(config) = value;
  }

  // A negative count cannot be stored: it fails here with the message the range check gives.
  void read(const YAML::Node& node, int line, const std::string& path, Count target,
            const Range& range, Config& config) {
    int value = 0;
    if (!node.IsScalar() || isQuoted(node) || !YAML::convert<int>::decode(node, value)) {
      fail(line, path, "expected an integer, found " + describe(node));
      return;
    }
    if (value < 0) {
      fail(line, path,
           "must be between " + std::to_string(static_cast<int>(range.min.value_or(0))) + " and " +
               std::to_string(static_cast<int>(range.max.value_or(0))) + ", got " +
               std::to_string(value));
      return;
    }
    target.get(config) = static_cast<std::size_t>(value);
  }

  void read(const YAML::Node& node, int line, const std::string& path, Member<double> target,
            Config& config) {
    double value = 0;
    if (!node.IsScalar() || isQuoted(node) || !YAML::convert<double>::decode(node, value) ||
        !std::isfinite(value)) {
      fail(line, path, "expected a number, found " + describe(node));
      return;
    }
    target(config) = value;
  }

  std::optional<std::string> scalarText(const YAML::Node& node, int line, const std::string& path,
                                        std::string_view expected) {
    if (!node.IsScalar()) {
      fail(line, path, "expected " + std::string(expected) + ", found " + describe(node));
      return std::nullopt;
    }
    return node.Scalar();
  }

  static std::string describe(const YAML::Node& node) {
    if (!node.IsScalar()) return std::string(kindName(node));
    return (isQuoted(node) ? "the quoted string " : "") + inQuotes(node.Scalar());
  }

  std::string file_;
  std::optional<ConfigError> error_;
  std::map<std::string, int, std::less<>> lines_;
};

// --- Validation helpers
// ---------------------------------------------------------------------------

std::string formatDuration(Duration duration) {
  std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  constexpr std::pair<std::int64_t, std::string_view> kUnits[] = {
      {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  for (const auto& [size, name] : kUnits) {
    if (ms >= size) {
      out += std::to_string(ms / size);
      out += name;
      ms %= size;
    }
  }
  return out;
}

// host:port, host:port with an IPv6 host in brackets ([::1]:9465). Returns the reason it is not.
std::optional<std::string> checkListen(std::string_view listen) {
  constexpr std::string_view kExample = " (expected host:port, e.g. 0.0.0.0:9465 or [::1]:9465)";
  std::string_view host;
  std::string_view port;
  if (listen.starts_with('[')) {
    const std::size_t close = listen.find(']');
    if (close == std::string_view::npos) return "unterminated \"[\" in " + inQuotes(listen);
    host = listen.substr(1, close - 1);
    if (close + 1 >= listen.size() || listen[close + 1] != ':') {
      return "missing port in " + inQuotes(listen) + std::string(kExample);
    }
    port = listen.substr(close + 2);
  } else {
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) {
      return "missing port in " + inQuotes(listen) + std::string(kExample);
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return "an IPv6 address must be in brackets, e.g. [::1]:9465, got " + inQuotes(listen);
    }
  }
  if (host.empty()) {
    return "missing host in " + inQuotes(listen) + " (use 0.0.0.0 for all interfaces)";
  }
  if (std::ranges::any_of(host, [](char c) { return c == ' ' || c == '\t' || c == '/'; })) {
    return "invalid host in " + inQuotes(listen);
  }
  const bool digits = !port.empty() && port.size() <= 5 &&
                      std::ranges::all_of(port, [](char c) { return c >= '0' && c <= '9'; });
  int number = 0;
  for (const char c : port) number = number * 10 + (c - '0');
  if (!digits || number < 1 || number > 65535) {
    return "port must be a number from 1 to 65535, got " + inQuotes(port);
  }
  return std::nullopt;
}

std::optional<std::string> checkDurationRange(Duration value, Duration min,
                                              std::optional<Duration> max) {
  if (value >= min && (!max || value <= *max)) return std::nullopt;
  if (max) {
    return "must be between " + formatDuration(min) + " and " + formatDuration(*max) + ", got " +
           formatDuration(value);
  }
  return "must be at least " + formatDuration(min) + ", got " + formatDuration(value);
}

// kubernetes.pod_labels: valid label keys, each once, no two with the same sanitized name.
std::optional<ConfigError> checkPodLabels(const std::vector<std::string>& keys) {
  const auto fail = [](std::size_t index, std::string reason) {
    return ConfigError{"", 0, "kubernetes.pod_labels[" + std::to_string(index) + "]",
                       std::move(reason)};
  };
  std::map<std::string, std::size_t, std::less<>> names;  // metric label name -> index
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    if (auto valid = checkPodLabelKey(key); !valid) {
      return fail(i, inQuotes(key) + " is not a Kubernetes label key: " + valid.error());
    }
    const auto [it, added] = names.emplace(podLabelMetricName(key), i);
    if (added) continue;
    const std::string& first = keys[it->second];
    if (first == key) return fail(i, inQuotes(key) + " is listed twice");
    return fail(i, inQuotes(key) + " and " + inQuotes(first) + " both become the label name " +
                       sanitizeLabelName(key) + "; list only one of them");
  }
  return std::nullopt;
}

// remote_write.*: a usable URL, one kind of credentials, well-formed extra headers.
std::optional<ConfigError> checkRemoteWrite(const Config& config) {
  const auto error = [](std::string field, std::string reason) {
    return ConfigError{"", 0, std::move(field), std::move(reason)};
  };
  const std::string& url = config.remote_write.url;
  if (!url.empty() && !url.starts_with("http://") && !url.starts_with("https://")) {
    return error("remote_write.url", "must start with http:// or https://, got " + inQuotes(url));
  }
  if (!config.remote_write.username.empty() && !config.remote_write.bearer_token_file.empty()) {
    return error("remote_write.username", "basic auth and a bearer token cannot both be set");
  }
  if (config.remote_write.username.empty() != config.remote_write.password_file.empty()) {
    return error(config.remote_write.username.empty() ? "remote_write.username"
                                                      : "remote_write.password_file",
                 "username and password_file go together");
  }
  for (const auto& header : config.remote_write.headers) {
    const auto colon = header.find(':');
    const bool bad_name =
        colon == 0 || colon == std::string::npos || header.find_first_of(" \t") < colon;
    if (bad_name || header.find_first_of("\r\n") != std::string::npos) {
      return error("remote_write.headers",
                   "each entry must be \"Name: value\" on one line, got " + inQuotes(header));
    }
  }
  return std::nullopt;
}

std::string formatNumber(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// Every row's range, in the schema's order.
std::optional<ConfigError> checkRanges(Section section, const std::string& parent,
                                       const Config& config) {
  for (const Field& field : section) {
    const std::string path = joinPath(parent, field.key);
    const Range& range = field.range;
    const auto between = [&](auto value, auto lo, auto hi,
                             auto text) -> std::optional<ConfigError> {
      if (value >= lo && value <= hi) return std::nullopt;
      return ConfigError{
          "", 0, path, "must be between " + text(lo) + " and " + text(hi) + ", got " + text(value)};
    };
    std::optional<ConfigError> error = std::visit(
        [&](const auto& target) -> std::optional<ConfigError> {
          using T = std::decay_t<decltype(target)>;
          if constexpr (std::is_same_v<T, Section>) {
            return checkRanges(target, path, config);
          } else if constexpr (std::is_same_v<T, WindowSet> || std::is_same_v<T, Custom>) {
            return std::nullopt;  // a custom row's reader checks its own values
          } else {
            if (!range.min && !range.max) return std::nullopt;
            if constexpr (std::is_same_v<T, Count>) {
              const auto to_text = [](std::size_t v) { return std::to_string(v); };
              return between(target.get(const_cast<Config&>(config)),  // NOLINT: read only
                             static_cast<std::size_t>(range.min.value_or(0)),
                             static_cast<std::size_t>(range.max.value_or(0x1p63)), to_text);
            } else if constexpr (std::is_same_v<T, ByteSize>) {
              const auto to_text = [](std::uint64_t v) { return std::to_string(v); };
              return between(target.get(const_cast<Config&>(config)),  // NOLINT: read only
                             static_cast<std::uint64_t>(range.min.value_or(0)),
                             static_cast<std::uint64_t>(range.max.value_or(0x1p63)), to_text);
            } else {
              const auto& value = target(const_cast<Config&>(config));  // NOLINT: read only
              using V = std::decay_t<decltype(value)>;
              if constexpr (std::is_same_v<V, Duration>) {
                const std::optional<Duration> max =
                    range.max ? std::optional(Duration(static_cast<Duration::rep>(*range.max)))
                              : std::nullopt;
                if (auto reason = checkDurationRange(
                        value, Duration(static_cast<Duration::rep>(range.min.value_or(0))), max)) {
                  return ConfigError{"", 0, path, std::move(*reason)};
                }
              } else if constexpr (std::is_same_v<V, int>) {
                const auto to_text = [](int v) { return std::to_string(v); };
                return between(value, static_cast<int>(*range.min), static_cast<int>(*range.max),
                               to_text);
              } else if constexpr (std::is_same_v<V, double>) {
                return between(value, *range.min, *range.max, formatNumber);
              }
              return std::nullopt;
            }
          }
        },
        field.target);
    if (error) return error;
  }
  return std::nullopt;
}

// detector.*: windows in order and within the ring, k of n possible (ranges are in the schema).
std::optional<ConfigError> checkDetector(const Config& c) {
  const auto fail = [](std::string field, std::string reason) {
    return ConfigError{"", 0, std::move(field), std::move(reason)};
  };
  const auto& w = c.detector.windows;
  if (w[0] > w[1] || w[1] > w[2]) {
    return fail("detector.windows", "must be in order short <= mid <= long, got " +
                                        formatDuration(w[0]) + ", " + formatDuration(w[1]) + ", " +
                                        formatDuration(w[2]));
  }
  if (w[2] / c.interval > 3600) {
    return fail("detector.windows.long", "holds at most 3600 intervals of " +
                                             formatDuration(c.interval) + ", got " +
                                             formatDuration(w[2]));
  }
  if (c.detector.victim_k < 1 || c.detector.victim_k > c.detector.victim_n) {
    return fail("detector.noisy_neighbor.victim_k",
                "must be between 1 and victim_n (" + std::to_string(c.detector.victim_n) +
                    "), got " + std::to_string(c.detector.victim_k));
  }
  return std::nullopt;
}

// placement.*: it needs the detector, on above off, and keys the API server accepts.
std::optional<ConfigError> checkPlacement(const Config& c) {
  const auto fail = [](std::string field, std::string reason) {
    return ConfigError{"", 0, std::move(field), std::move(reason)};
  };
  if (c.placement.enabled && !c.detector.enabled) {
    return fail("placement.enabled", "needs detector.enabled: the feed publishes its verdicts");
  }
  if (c.placement.off_score > c.placement.on_score) {
    return fail("placement.off_score", "must not be above placement.on_score (" +
                                           formatNumber(c.placement.on_score) + "), got " +
                                           formatNumber(c.placement.off_score));
  }
  for (const auto& [field, value] :
       {std::pair{"placement.condition_type", &c.placement.condition_type},
        std::pair{"placement.annotation_key", &c.placement.annotation_key},
        std::pair{"placement.taint_key", &c.placement.taint_key}}) {
    if (value->empty()) return fail(field, "must not be empty");
    if (std::string_view(field) != "placement.condition_type") {
      if (auto valid = checkPodLabelKey(*value); !valid) {
        return fail(field, inQuotes(*value) + " is not a Kubernetes key: " + valid.error());
      }
    }
  }
  return std::nullopt;
}

// --- Reading files ----------------------------------------------------------------------------

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::string errnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

// tls.*: the certificate and key come together, and every file named is readable now (what is in
// them is checked when the listener loads them).
std::optional<ConfigError> checkTls(const Config& config) {
  const auto error = [](std::string field, std::string reason) {
    return ConfigError{"", 0, std::move(field), std::move(reason)};
  };
  if (config.tls.cert_file.empty() != config.tls.key_file.empty()) {
    return config.tls.cert_file.empty()
               ? error("tls.cert_file", "must be set when tls.key_file is (both or neither)")
               : error("tls.key_file", "must be set when tls.cert_file is (both or neither)");
  }
  if (!config.tls.client_ca_file.empty() && config.tls.cert_file.empty()) {
    return error("tls.client_ca_file", "needs tls.cert_file and tls.key_file");
  }
  for (const auto& [field, path] : {std::pair{"tls.cert_file", &config.tls.cert_file},
                                    std::pair{"tls.key_file", &config.tls.key_file},
                                    std::pair{"tls.client_ca_file", &config.tls.client_ca_file}}) {
    if (path->empty()) continue;
    const FileDescriptor fd(::open(path->c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      return error(field, "cannot read " + inQuotes(path->string()) + ": " + errnoText(errno));
    }
  }
  return std::nullopt;
}

}  // namespace

std::string ConfigError::message() const {
  std::string out;
  if (!file.empty()) {
    out = file;
    if (line > 0) out += ":" + std::to_string(line);
    out += ": ";
  } else if (line > 0) {
    out = "line " + std::to_string(line) + ": ";
  }
  if (!field.empty()) out += field + ": ";
  return out + reason;
}

std::expected<std::uint64_t, std::string> parseByteSize(std::string_view text) {
  const auto invalid = [&](std::string_view why) {
    return std::unexpected("invalid size " + inQuotes(text) + ": " + std::string(why));
  };
  std::size_t pos = 0;
  std::uint64_t value = 0;
  bool overflow = false;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    overflow |= __builtin_mul_overflow(value, std::uint64_t{10}, &value);
    overflow |= __builtin_add_overflow(value, static_cast<std::uint64_t>(text[pos] - '0'), &value);
    ++pos;
  }
  if (pos == 0) return invalid("expected a number, e.g. \"1MiB\" or \"65536\"");
  const std::string_view unit = text.substr(pos);
  struct Unit {
    std::string_view name;
    std::uint64_t factor;
  };
  constexpr Unit kUnits[] = {{"", 1},
                             {"B", 1},
                             {"KiB", 1ULL << 10},
                             {"MiB", 1ULL << 20},
                             {"GiB", 1ULL << 30},
                             {"TiB", 1ULL << 40}};
  const auto u = std::ranges::find(kUnits, unit, &Unit::name);
  if (u == std::end(kUnits)) return invalid("unknown unit (use B, KiB, MiB, GiB or TiB)");
  overflow |= __builtin_mul_overflow(value, u->factor, &value);
  if (overflow) return invalid("too large");
  return value;
}

std::expected<Duration, std::string> parseDuration(std::string_view text) {
  const auto invalid = [&](std::string_view why) {
    return std::unexpected("invalid duration " + inQuotes(text) + ": " + std::string(why));
  };
  if (text.empty()) return invalid("empty (write e.g. \"10s\")");
  if (text.front() == '-') return invalid("must not be negative");

  struct Unit {
    std::string_view name;
    std::int64_t ms;
  };
  // Largest first; "m" is minutes, so "ms" must be matched by exact name, not prefix.
  constexpr Unit kUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};
  constexpr std::int64_t kMax = std::numeric_limits<Duration::rep>::max();
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto is_letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };

  std::int64_t total = 0;
  std::size_t next_unit = 0;  // index in kUnits of the smallest unit still allowed
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!is_digit(text[pos])) return invalid("expected a number at " + inQuotes(text.substr(pos)));
    std::int64_t whole = 0;
    bool overflow = false;
    for (; pos < text.size() && is_digit(text[pos]); ++pos) {
      overflow |= __builtin_mul_overflow(whole, 10, &whole);
      overflow |= __builtin_add_overflow(whole, text[pos] - '0', &whole);
    }
    std::string_view fraction;
    if (pos < text.size() && text[pos] == '.') {
      const std::size_t start = ++pos;
      while (pos < text.size() && is_digit(text[pos])) ++pos;
      fraction = text.substr(start, pos - start);
      if (fraction.empty()) return invalid("expected digits after \".\"");
    }
    const std::size_t unit_start = pos;
    while (pos < text.size() && is_letter(text[pos])) ++pos;
    const std::string_view unit_name = text.substr(unit_start, pos - unit_start);
    if (unit_name.empty()) {
      return invalid(unit_start == text.size()
                         ? "missing unit (use h, m, s or ms, e.g. \"10s\")"
                         : "expected a unit at " + inQuotes(text.substr(unit_start)));
    }
    const auto unit = std::ranges::find(kUnits, unit_name, &Unit::name);
    if (unit == std::end(kUnits)) {
      return invalid("unknown unit " + inQuotes(unit_name) + " (use h, m, s or ms)");
    }
    const auto unit_index = static_cast<std::size_t>(unit - std::begin(kUnits));
    if (unit_index < next_unit) return invalid("units must go from largest to smallest, each once");
    next_unit = unit_index + 1;

    std::int64_t value = 0;
    overflow |= __builtin_mul_overflow(whole, unit->ms, &value);
    // A fraction of 8+ significant digits can never be a whole number of milliseconds of any of
    // these units (3600000 = 2^7 * 3^2 * 5^5), so bounding it also keeps the arithmetic small.
    while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
    if (fraction.size() > 7) return invalid("finer than a millisecond");
    std::int64_t numerator = 0;
    std::int64_t denominator = 1;
    for (const char c : fraction) {
      numerator = numerator * 10 + (c - '0');
      denominator *= 10;
    }
    numerator *= unit->ms;
    if (numerator % denominator != 0) return invalid("finer than a millisecond");
    overflow |= __builtin_add_overflow(value, numerator / denominator, &value);
    overflow |= __builtin_add_overflow(total, value, &total);
    if (overflow || total > kMax) return invalid("too large");
  }
  return Duration(total);
}

std::expected<Config, ConfigError> parseConfig(const std::string& yaml_text,
                                               const std::string& file) {
  Config config;
  ConfigParser parser(file);
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(yaml_text);
    if (documents.size() > 1) {
      return std::unexpected(
          ConfigError{file, lineOf(documents[1]), "",
                      "expected one YAML document, found " + std::to_string(documents.size())});
    }
    if (!documents.empty()) {
      const YAML::Node& root = documents.front();
      if (!root.IsNull() && !root.IsMap()) {
        return std::unexpected(ConfigError{
            file, lineOf(root), "",
            "the top level must be a mapping of settings, found " + std::string(kindName(root))});
      }
      parser.parseSection(root, lineOf(root), "", kRootFields, config);
    }
  } catch (const YAML::Exception& e) {
    return std::unexpected(
        ConfigError{file, e.mark.is_null() ? 0 : e.mark.line + 1, "", "invalid YAML: " + e.msg});
  }
  if (parser.error()) return std::unexpected(*parser.error());

  if (auto valid = validateConfig(config); !valid) {
    ConfigError error = std::move(valid.error());
    error.file = file;
    error.line = parser.lineOfField(error.field);
    return std::unexpected(std::move(error));
  }
  return config;
}

std::expected<Config, ConfigError> loadConfigFile(const std::filesystem::path& path) {
  const std::string file = path.string();
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return std::unexpected(ConfigError{file, 0, "", "cannot open: " + errnoText(errno)});
  }
  std::string text;
  std::array<char, 8192> buffer;
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(ConfigError{file, 0, "", "cannot read: " + errnoText(errno)});
    if (n == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      return std::unexpected(ConfigError{
          file, 0, "", "larger than " + std::to_string(kMaxConfigBytes) + " bytes; not a config"});
    }
  }
  return parseConfig(text, file);
}

std::expected<void, ConfigError> validateConfig(const Config& config) {
  const auto fail = [](std::string field, std::string reason) {
    return std::unexpected(ConfigError{"", 0, std::move(field), std::move(reason)});
  };
  if (auto reason = checkListen(config.listen)) return fail("listen", *reason);
  if (auto error = checkTls(config)) return std::unexpected(std::move(*error));
  if (auto error = checkRanges(kRootFields, "", config)) return std::unexpected(std::move(*error));
  if (auto level = parseLogLevel(config.log_level); !level) return fail("log_level", level.error());

  const std::pair<std::string_view, const std::filesystem::path*> paths[] = {
      {"paths.cgroup_root", &config.paths.cgroup_root},
      {"paths.proc_root", &config.paths.proc_root},
      {"paths.log_root", &config.paths.log_root},
      {"paths.state_dir", &config.paths.state_dir},
  };
  for (const auto& [field, path] : paths) {
    if (path->empty()) return fail(std::string(field), "must not be empty");
  }
  // The spool holds at least four batches (the batcher keeps two batches' headroom).
  const std::uint64_t min_spool = 4 * config.logs.batcher.batch_bytes;
  if (config.spool.max_bytes < min_spool || config.spool.max_bytes > (1ULL << 40)) {
    return fail("spool.max_bytes", "must be between " + std::to_string(min_spool) + " and " +
                                       std::to_string(1ULL << 40) + ", got " +
                                       std::to_string(config.spool.max_bytes));
  }
  if (config.loki.encoding != "protobuf" && config.loki.encoding != "json") {
    return fail("loki.encoding", "must be protobuf or json, got " + inQuotes(config.loki.encoding));
  }
  if (!config.loki.url.empty() && !config.loki.url.starts_with("http://") &&
      !config.loki.url.starts_with("https://")) {
    return fail("loki.url",
                "must start with http:// or https://, got " + inQuotes(config.loki.url));
  }
  for (const auto& [field, url] :
       {std::pair{"kubernetes.kubelet_url", &config.kubernetes.kubelet_url},
        std::pair{"kubernetes.apiserver_url", &config.kubernetes.apiserver_url}}) {
    if (!url->empty() && !url->starts_with("https://") && !url->starts_with("http://")) {
      return fail(field, "must start with https:// or http://, got " + inQuotes(*url));
    }
  }
  if (!config.loki.username.empty() && !config.loki.bearer_token_file.empty()) {
    return fail("loki.username", "basic auth and a bearer token cannot both be set");
  }
  if (auto error = checkRemoteWrite(config)) return std::unexpected(std::move(*error));
  if (auto error = checkPodLabels(config.kubernetes.pod_labels)) {
    return std::unexpected(std::move(*error));
  }
  if (auto error = checkDetector(config)) return std::unexpected(std::move(*error));
  if (auto error = checkPlacement(config)) return std::unexpected(std::move(*error));
  return {};
}

// --- Writing YAML -------------------------------------------------------------------------------

namespace {

std::string formatByteSize(std::uint64_t bytes) {
  constexpr std::pair<std::uint64_t, std::string_view> kUnits[] = {
      {1ULL << 40, "TiB"}, {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
  for (const auto& [size, name] : kUnits) {
    if (bytes != 0 && bytes % size == 0) return std::to_string(bytes / size) + std::string(name);
  }
  return std::to_string(bytes);
}

// A plain scalar when it reads back as the same string in a block or a flow list, else quoted.
std::string yamlScalar(std::string_view text) {
  const auto plain_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '/' || c == '-' || c == ':' || c == '@';
  };
  const bool plain = !text.empty() && std::ranges::all_of(text, plain_char) &&
                     text.front() != '-' && text.front() != ':' && text.back() != ':';
  if (plain) return std::string(text);
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[(c >> 4) & 0xf];
      out += kHex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The shortest text that reads back as the same double: 3 for 3.0, 0.15 for 0.15.
std::string shortestNumber(double value) {
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return ec == std::errc() ? std::string(buffer.data(), end) : std::to_string(value);
}

std::string yamlList(const auto& items) {
  std::string out = "[";
  for (const auto& item : items) {
    if (out.size() > 1) out += ", ";
    out += yamlScalar(item);
  }
  return out + "]";
}

// Reads go through the rows' accessors, which take a mutable Config; nothing is written.
template <class Getter>
const auto& valueOf(Getter get, const Config& config) {
  return get(const_cast<Config&>(config));  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}

std::string valueText(const Target& target, const Config& config) {
  return std::visit(
      [&](const auto& t) -> std::string {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, Section>) {
          return "";
        } else if constexpr (std::is_same_v<T, Custom>) {
          return t.write(config, 0);
        } else if constexpr (std::is_same_v<T, ByteSize>) {
          return formatByteSize(valueOf(t.get, config));
        } else if constexpr (std::is_same_v<T, Count>) {
          return std::to_string(valueOf(t.get, config));
        } else if constexpr (std::is_same_v<T, WindowSet>) {
          std::vector<std::string_view> names;
          const auto& flags = valueOf(t.get, config);
          for (std::size_t i = 0; i < flags.size(); ++i) {
            if (flags[i]) names.push_back(kWindowNames[i]);
          }
          return yamlList(names);
        } else {
          const auto& value = valueOf(t, config);
          using V = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<V, std::string>) return yamlScalar(value);
          if constexpr (std::is_same_v<V, std::filesystem::path>) return yamlScalar(value.string());
          if constexpr (std::is_same_v<V, Duration>) return formatDuration(value);
          if constexpr (std::is_same_v<V, bool>) return value ? "true" : "false";
          if constexpr (std::is_same_v<V, int>) return std::to_string(value);
          if constexpr (std::is_same_v<V, double>) return shortestNumber(value);
          if constexpr (std::is_same_v<V, std::vector<std::string>>) return yamlList(value);
        }
      },
      target);
}

// A key that a rendering sets apart from the defaults, and why (a comment above it).
struct Marked {
  std::string_view key;
  std::string_view why;
};

void writeSection(Section section, const std::string& parent, int depth, const Config& config,
                  std::span<const Marked> marked, std::string& out) {
  const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
  for (const Field& field : section) {
    const std::string path = joinPath(parent, field.key);
    if (depth == 0 && !out.empty()) out += '\n';
    if (!field.doc.empty()) out += indent + "# " + std::string(field.doc) + "\n";
    for (const Marked& m : marked) {
      if (m.key == path) out += indent + "# " + std::string(m.why) + "\n";
    }
    out += indent + std::string(field.key) + ":";
    if (const auto* child = std::get_if<Section>(&field.target)) {
      out += '\n';
      writeSection(*child, path, depth + 1, config, marked, out);
    } else if (const auto* custom = std::get_if<Custom>(&field.target)) {
      out += custom->write(config, (depth + 1) * 2) + "\n";
    } else {
      out += " " + valueText(field.target, config) + "\n";
    }
  }
}

constexpr std::string_view kYamlHeader =
    "# Every key is optional. Strict on purpose: an unknown key, a value of the wrong type or a\n"
    "# duration without a unit stops the agent at start-up with \"FILE:LINE: FIELD: REASON\";\n"
    "# `nodewarden check-config FILE` checks a file without starting the agent.\n"
    "# Durations are written with units, largest first: 500ms, 10s, 1m30s, 2h, 1.5s; sizes as\n"
    "# 65536, 256KiB, 1MiB, 2GiB.\n";

std::string renderYaml(const Config& config, std::string_view intro,
                       std::span<const Marked> marked) {
  std::string body;
  writeSection(kRootFields, "", 0, config, marked, body);
  return std::string(intro) + std::string(kYamlHeader) + "\n" + body;
}

// What the DaemonSet's config sets apart from the built-in defaults.
struct DeployOverride {
  Marked mark;
  void (*apply)(Config&);
};
constexpr DeployOverride kDeployOverrides[] = {
    {{"collectors.pods.kubelet",
      "Deploy: false (default true): the base RBAC grants no kubelet access; overlays/kubelet "
      "adds both"},
     [](Config& c) { c.pods.kubelet = false; }},
};

// The schema's leaves whose values differ, by their dotted paths: a reload says by these names what
// it applied and what needs a restart.
void collectChanged(Section section, const std::string& parent, const Config& a, const Config& b,
                    std::vector<std::string>& out) {
  for (const Field& field : section) {
    std::string path = joinPath(parent, field.key);
    std::visit(
        [&](const auto& target) {
          using T = std::decay_t<decltype(target)>;
          if constexpr (std::is_same_v<T, Section>) {
            collectChanged(target, path, a, b, out);
          } else if constexpr (std::is_same_v<T, Custom>) {
            if (!target.equal(a, b)) out.push_back(path);
          } else if constexpr (std::is_same_v<T, ByteSize> || std::is_same_v<T, Count> ||
                               std::is_same_v<T, WindowSet>) {
            if (valueOf(target.get, a) != valueOf(target.get, b)) out.push_back(path);
          } else {
            if (valueOf(target, a) != valueOf(target, b)) out.push_back(path);
          }
        },
        field.target);
  }
}

}  // namespace

namespace config_write {
std::string scalar(std::string_view value) { return yamlScalar(value); }
std::string duration(std::chrono::milliseconds value) { return formatDuration(value); }
}  // namespace config_write

std::string configYaml(const Config& config) {
  return renderYaml(config, "# nodewarden configuration.\n", {});
}

std::string defaultConfigYaml() {
  return renderYaml(Config{}, "# nodewarden configuration: the built-in defaults.\n", {});
}

std::string deployConfigYaml() {
  Config config;
  std::vector<Marked> marked;
  for (const DeployOverride& o : kDeployOverrides) {
    o.apply(config);
    marked.push_back(o.mark);
  }
  return renderYaml(
      config,
      "# nodewarden configuration of the DaemonSet (deploy/kubernetes/base/nodewarden.yaml is a\n"
      "# copy). Generated: `nodewarden config --deploy > deploy/config/nodewarden.yaml` (the\n"
      "# schema in agent/config.cpp); deploy/check.sh fails when it is stale. The values are the\n"
      "# built-in defaults except the keys marked \"Deploy:\". The DaemonSet's flags set listen\n"
      "# (127.0.0.1, behind kube-rbac-proxy) and the node's paths (under /host).\n",
      marked);
}

std::vector<std::string> changedConfigKeys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  collectChanged(kRootFields, "", a, b, out);
  return out;
}

bool operator==(const Config& a, const Config& b) { return changedConfigKeys(a, b).empty(); }

}  // namespace nodewarden
