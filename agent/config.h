// Config: the agent's settings, from embedded defaults, then a YAML file, then flags.
//
// What a reader gets wrong: validation is strict on purpose. An unknown key, a wrong type or a bad
// duration stops start-up with one message naming the file, line and field, because a typo that
// silently falls back to a default is found at 3 a.m., not at deploy time.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace nodewarden {

struct Config {
  std::string listen = "0.0.0.0:9465";  // host:port of the HTTP server
  // TLS on that listener (PEM files, reloaded when they change): both or neither. With a client CA
  // bundle, clients must present a certificate it signed.
  std::filesystem::path tls_cert_file;
  std::filesystem::path tls_key_file;
  std::filesystem::path tls_client_ca_file;
  std::string node_name;                      // default: $NODE_NAME, else the host name
  std::chrono::milliseconds interval{10000};  // collection period, 1s..1h
  std::string log_level = "info";             // trace, debug, info, warn, error

  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path log_root = "/var/log/pods";
  std::filesystem::path state_dir = "/var/lib/nodewarden";
  // containerd's and CRI-O's state roots (their per-container OCI config.json files name pods).
  std::vector<std::string> runtime_state_dirs = {"/run/containerd", "/run/containers/storage"};

  bool cgroup_enabled = true;
  int cgroup_max_depth = 8;      // 1..32
  bool cgroup_run_delay = true;  // threads' run-queue delay from /proc/<tid>/schedstat
  std::chrono::milliseconds cgroup_root_search_interval{60000};
  bool node_enabled = true;
  bool pods_runtime_state = true;  // names and images from the runtime's state on the node
  bool pods_kubelet = true;        // the kubelet's /pods, when its URL is known
  std::chrono::milliseconds pods_kubelet_refresh_interval{10000};  // at most one GET /pods per
  bool pods_apiserver = true;  // the API server's watch of this node's pods, when in a cluster

  // Kubernetes endpoints; empty: the in-cluster defaults (https://$NODE_IP:10250 for the kubelet,
  // KUBERNETES_SERVICE_HOST/_PORT and the service account's token and CA for the API server).
  std::string kubelet_url;
  std::string apiserver_url;
  std::filesystem::path token_file;
  std::filesystem::path ca_file;
  bool kubelet_insecure_skip_verify = false;
  // Pod label keys (exact, e.g. app.kubernetes.io/name) exported as Loki stream labels of the
  // pod's container logs and on nodewarden_pod_labels; names sanitized (pipeline/pod_labels.h).
  std::vector<std::string> pod_labels;

  // Container logs under log_root.
  bool logs_enabled = true;
  std::uint64_t logs_max_line_bytes = 256 * 1024;  // Loki's default line limit
  int logs_max_open_files = 1024;
  std::chrono::milliseconds logs_rescan_interval{10000};
  // Rotated files kubelet compressed (.gz) are read, from where their plain predecessor was left.
  bool logs_read_compressed = false;
  int logs_max_streams = 10000;
  std::uint64_t logs_batch_bytes = 1 << 20;
  std::chrono::milliseconds logs_batch_wait{1000};

  // The node's journal.
  bool journal_enabled = true;
  std::filesystem::path journal_dir = "/var/log/journal";
  std::vector<std::string> journal_units = {"kubelet.service", "containerd.service", "crio.service",
                                            "docker.service"};

  // Job outcomes: every Job pod on this node that ends, from its status and its cgroups.
  bool jobs_enabled = true;
  // How often Job pods' statuses are checked and their cgroups read between collection cycles.
  std::chrono::milliseconds jobs_poll_interval{1000};
  // After a Job pod's cgroups are gone, how long its final status is waited for.
  std::chrono::milliseconds jobs_status_wait{30000};
  // How long outcomes are kept (for /jobs, the per-job series, and against counting twice).
  std::chrono::milliseconds jobs_retention{6 * 3600 * 1000};
  int jobs_max_recent = 1000;

  // The detector: signals, right-sizing and noisy-neighbor verdicts from the same snapshots.
  bool detector_enabled = true;
  // The sliding windows of the usage quantiles (the long one also bounds each container's ring).
  std::chrono::milliseconds detector_short_window{10000};
  std::chrono::milliseconds detector_mid_window{60000};
  std::chrono::milliseconds detector_long_window{300000};
  // Which windows' quantiles are also series on /metrics (all are in /signals): 8 series per
  // container and window.
  std::vector<std::string> detector_metrics_windows = {"mid"};
  int detector_max_containers = 2000;  // containers (and pods) tracked; fixed memory per entry
  // Right-sizing: VPA-style decaying histograms.
  std::chrono::milliseconds detector_half_life{24LL * 3600 * 1000};
  std::chrono::milliseconds detector_memory_peak_interval{3600 * 1000};
  double detector_cpu_percentile = 0.9;
  double detector_memory_percentile = 0.95;
  double detector_margin = 0.15;
  // Noisy neighbors.
  std::chrono::milliseconds detector_baseline_half_life{600 * 1000};
  double detector_victim_z = 3.0;
  double detector_victim_min_stall = 0.15;
  double detector_memory_victim_min_stall = 0.1;
  double detector_self_throttle_ratio = 0.2;
  int detector_victim_k = 2;
  int detector_victim_n = 3;
  double detector_onset_min_stall_cpu = 0.3;
  double detector_onset_min_stall_memory = 0.1;
  double detector_onset_min_stall_io = 0.3;
  std::chrono::milliseconds detector_correlation_window{120 * 1000};
  std::chrono::milliseconds detector_episode_lead{30 * 1000};
  double detector_antagonist_threshold = 0.6;

  // The placement feed: this node's condition, annotation and taint in the API server (opt-in).
  bool placement_enabled = false;
  bool placement_dry_run = false;
  std::string placement_condition_type = "NoisyNeighbor";
  std::string placement_annotation_key = "nodewarden.io/signals";
  std::string placement_taint_key = "nodewarden.io/noisy-neighbor";
  double placement_on_score = 0.3;   // interference score that turns the taint on ...
  double placement_off_score = 0.1;  // ... and the one it must fall under to come off
  std::chrono::milliseconds placement_on_hold{30000};    // above on_score this long first
  std::chrono::milliseconds placement_off_hold{120000};  // under off_score this long first
  std::chrono::milliseconds placement_min_taint_duration{300000};
  std::chrono::milliseconds placement_max_backoff{60000};
  std::chrono::milliseconds placement_timeout{10000};

  // Loki. With no url, logs go to the spool and a rolling local file under state_dir.
  std::string loki_url;
  std::string loki_tenant;
  std::string loki_encoding = "protobuf";  // protobuf (snappy) or json (gzip)
  std::filesystem::path loki_bearer_token_file;
  std::string loki_username;
  std::filesystem::path loki_password_file;
  std::filesystem::path loki_ca_file;
  bool loki_insecure_skip_verify = false;
  std::chrono::milliseconds loki_timeout{10000};
  std::uint64_t local_log_file_max_bytes = 64ULL << 20;

  // Prometheus remote write of every cycle's series (the same as /metrics). Off with no url.
  std::string remote_write_url;
  std::filesystem::path remote_write_bearer_token_file;
  std::string remote_write_username;
  std::filesystem::path remote_write_password_file;
  std::filesystem::path remote_write_ca_file;
  bool remote_write_insecure_skip_verify = false;
  std::chrono::milliseconds remote_write_timeout{30000};
  std::vector<std::string> remote_write_headers;  // "Name: value", e.g. "X-Scope-OrgID: team-a"
  int remote_write_max_samples_per_send = 2000;
  std::uint64_t remote_write_spool_max_bytes = 256ULL << 20;

  // The durable spool in state_dir.
  std::uint64_t spool_max_bytes = 512ULL << 20;
  std::uint64_t spool_segment_bytes = 16ULL << 20;

  bool operator==(const Config&) const = default;
};

struct ConfigError {
  std::string file;   // empty for flags and defaults
  int line = 0;       // 1-based; 0 when unknown
  std::string field;  // dotted path, e.g. "collectors.cgroup.max_depth"
  std::string reason;
  // "FILE:LINE: FIELD: REASON" with the parts that are known.
  [[nodiscard]] std::string message() const;
};

// Parses a byte size such as "256KiB", "1MiB", "512MiB", "2GiB" or a plain number of bytes.
std::expected<std::uint64_t, std::string> parseByteSize(std::string_view text);

// Parses a duration such as "500ms", "10s", "1m30s", "2h", "1.5s". Units are h, m, s, ms, largest
// first, each at most once. Bare numbers, signs, sub-millisecond precision and values that overflow
// are rejected: a unit must be written.
std::expected<std::chrono::milliseconds, std::string> parseDuration(std::string_view text);

// Parses YAML text over the defaults. file names the source in errors. The values the text sets
// are also checked with validateConfig's rules, so a range error points at its line in the file.
std::expected<Config, ConfigError> parseConfig(const std::string& yaml_text,
                                               const std::string& file);

// Reads and parses a file; an unreadable file is a ConfigError too.
std::expected<Config, ConfigError> loadConfigFile(const std::filesystem::path& path);

// Checks cross-field rules and ranges (also for values that came from flags).
std::expected<void, ConfigError> validateConfig(const Config& config);

// The embedded defaults as the YAML a user would write (printed by `nodewarden run --print-config`
// and documented in the README).
std::string defaultConfigYaml();

// The config keys (dotted paths as in the file, e.g. "detector.noisy_neighbor.victim_z") whose
// values differ between a and b, in the file's order.
std::vector<std::string> changedConfigKeys(const Config& a, const Config& b);

}  // namespace nodewarden
