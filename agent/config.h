// Config: the agent's settings, from embedded defaults, then a YAML file, then flags.
//
// Layout: Config is a composition of sections, one per config file section. Where a component has
// an options struct, the section IS that struct (the listener's TLS files, the cgroup collector's,
// the log tailer's and batcher's, the journal reader's, the Job tracker's, the log spool's, the
// detector's and the placement feed's options, and the kubelet pod source's inside pods.*), at
// most with an `enabled` or a poll interval added, and the agent hands it on, setting only what
// is known at run time (the node name, the roots and files under paths.*, the interval, holds
// computed from it) on top. loki.* and remote_write.* are the log and remote write pipelines' own
// config structs (agent/log_pipeline.h, agent/remote_write_pipeline.h), which turn them into
// their exporters' options (a password file read, Loki's encoding named); their shared
// destination members (url, credentials, CA) are pipeline/http_destination.h's. The other
// sections are small structs here, named after the file's sections, those of the agent itself
// (paths, kubernetes, node, and pods.*'s switches choosing the metadata sources). A default is
// written once, in a member initializer in the component's header or here; the schema table in
// config.cpp binds each key to its member with its type, range and one line of doc, and parsing,
// range checks, --print-config, the embedded default YAML, changedConfigKeys and
// deploy/config/nodewarden.yaml all come from that table.
//
// What a reader gets wrong: validation is strict on purpose. An unknown key, a wrong type or a bad
// duration stops start-up with one message naming the file, line and field, because a typo that
// silently falls back to a default is found at 3 a.m., not at deploy time. And Config's operator==
// compares the schema's keys only: members of a component's options struct that no key sets (a
// clock, the node name the agent fills in, the spool's directory) are not part of a config: they
// keep the component's defaults or the agent sets them before handing the struct on.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/log_pipeline.h"
#include "agent/remote_write_pipeline.h"
#include "agent/tls_context.h"
#include "collectors/cgroup/cgroup_collector.h"
#include "collectors/jobs/job_tracker.h"
#include "collectors/journal/journal_reader.h"
#include "collectors/logs/log_tailer.h"
#include "collectors/pods/kubelet_pods.h"
#include "exporters/kube/placement_feed.h"
#include "pipeline/detector/detector.h"
#include "pipeline/log_batcher.h"
#include "pipeline/log_filter.h"
#include "pipeline/log_multiline.h"
#include "pipeline/log_rate_limit.h"
#include "pipeline/log_redaction.h"
#include "pipeline/spool.h"

namespace nodewarden {

// paths.*: where the node is (in the DaemonSet, under /host).
struct PathsConfig {
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path log_root = "/var/log/pods";
  std::filesystem::path state_dir = "/var/lib/nodewarden";
  // containerd's and CRI-O's state roots (their per-container OCI config.json files name pods).
  std::vector<std::string> runtime_state_dirs = {"/run/containerd", "/run/containers/storage"};
};

// collectors.cgroup.*: the cgroup collector's own options; the roots are paths.*, set at start.
struct CgroupConfig : CgroupCollectorOptions {
  // The root, kubepods and QoS cgroups are on in the agent: with them the collector stays as far
  // from the read floor as without (bench_collect_cycle --aggregates), and cAdvisor has them.
  CgroupConfig() { aggregates = true; }
  bool enabled = true;
};

// collectors.node.*
struct NodeConfig {
  bool enabled = true;
};

// collectors.pods.*: the pod metadata sources, in their order. The three switches choose which
// sources run and configure none, so they are the agent's own; kubelet_refresh_interval is the
// kubelet source's option (KubeletPodsMetadataOptions::refresh_interval), kept in kubelet_source
// and handed on with the cronjob lookup set on top.
struct PodsConfig {
  bool runtime_state = true;  // names and images from the runtime's state on the node
  bool kubelet = true;        // the kubelet's /pods, when its URL is known
  pods::KubeletPodsMetadataOptions kubelet_source;
  bool apiserver = true;  // the API server's watch of this node's pods, when in a cluster
  // The image label of a container exported past the naming hold without a known image (README
  // "kube-prometheus": kube-prometheus' rules drop image=""). Empty: image="" as cAdvisor would.
  std::string unknown_image = "unknown";
};

// collectors.logs.*: container logs under paths.log_root, the keys of two components: the
// tailer's (max_line_bytes, max_open_files, rescan_interval, read_compressed) and the batcher's
// (max_streams, batch_bytes, batch_wait) own options. The agent sets the roots, the node, the
// metadata, the spool's bound and the commit timing on top.
struct LogsConfig {
  bool enabled = true;
  logs::LogTailerOptions tailer;
  LogBatcherOptions batcher;
  RateLimitOptions rate_limit;         // collectors.logs.rate_limit (agent/config_rate_limit.h)
  MultilineOptions multiline;          // collectors.logs.multiline (agent/config_multiline.cpp)
  std::vector<LogFilterRule> filters;  // collectors.logs.filters (agent/config_rules.cpp)
  LogRedactionOptions redaction;       // collectors.logs.redaction
};

// collectors.journal.*: the journal reader's own options; the cursor file and the node are the
// agent's.
struct JournalConfig : journal::JournalOptions {
  bool enabled = true;
};

// collectors.jobs.*: the Job tracker's own options; the poll is the agent's.
struct JobsConfig : jobs::JobTrackerOptions {
  bool enabled = true;
  std::chrono::milliseconds poll_interval{1000};
};

// kubernetes.*: endpoints; empty: the in-cluster defaults (https://$NODE_IP:10250 for the kubelet,
// KUBERNETES_SERVICE_HOST/_PORT and the service account's token and CA for the API server).
struct KubernetesConfig {
  std::string kubelet_url;
  std::string apiserver_url;
  std::filesystem::path token_file;
  std::filesystem::path ca_file;
  bool kubelet_insecure_skip_verify = false;
  std::vector<std::string> pod_labels;  // label keys; names sanitized (pipeline/pod_labels.h)
};

// detector.*: the detector's own options; node and interval are the agent's, set at start.
struct DetectorConfig : detector::DetectorOptions {
  bool enabled = true;
};

// placement.*: the placement feed's own options; the node and the API server are the agent's.
struct PlacementConfig : kube::PlacementOptions {
  bool enabled = false;
};

struct Config {
  std::string listen = "0.0.0.0:9465";        // host:port of the HTTP server
  TlsFiles tls;                               // the listener's own (agent/tls_context.h)
  std::string node_name;                      // default: $NODE_NAME, else the host name
  std::chrono::milliseconds interval{10000};  // collection period
  std::string log_level = "info";             // trace, debug, info, warn, error
  PathsConfig paths;
  CgroupConfig cgroup;
  NodeConfig node;
  PodsConfig pods;
  LogsConfig logs;
  JournalConfig journal;
  JobsConfig jobs;
  LokiConfig loki;
  RemoteWriteConfig remote_write;
  SpoolOptions spool;  // the log spool's own; its dir is under paths.state_dir
  KubernetesConfig kubernetes;
  DetectorConfig detector;
  PlacementConfig placement;
};

// Equal when every key of the schema has the same value (changedConfigKeys is empty).
bool operator==(const Config& a, const Config& b);

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

// Checks each key's range (from the schema) and the cross-field rules (also for values that came
// from flags).
std::expected<void, ConfigError> validateConfig(const Config& config);

// config as the YAML a user would write, every key with its one line of doc as a comment above
// it; parsing it gives config back. `nodewarden run --print-config` prints the config in effect.
std::string configYaml(const Config& config);

// configYaml of the built-in defaults (documented in the README).
std::string defaultConfigYaml();

// The DaemonSet's config (deploy/config/nodewarden.yaml and its copy in deploy/kubernetes/base/):
// the defaults with the few deploy overrides, each marked in a comment. `nodewarden config
// --deploy` prints it; deploy/check.sh fails when the committed files differ.
std::string deployConfigYaml();

// The config keys (dotted paths as in the file, e.g. "detector.noisy_neighbor.victim_z") whose
// values differ between a and b, in the file's order.
std::vector<std::string> changedConfigKeys(const Config& a, const Config& b);

}  // namespace nodewarden
