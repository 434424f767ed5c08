// The detector's output: what one cycle concluded about the node, its pods and containers. The
// Prometheus renderer, GET /signals and the placement feed all read this one value.
//
// What a reader gets wrong: a ratio or score that could not be computed (no limit, no PSI file,
// too few samples) is std::nullopt and is not exported, never 0: 0 is a real reading ("no stall").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nodewarden::detector {

enum class Resource : std::uint8_t { kCpu, kMemory, kIo };
inline constexpr std::size_t kResources = 3;
const char* resourceName(Resource resource);  // "cpu", "memory", "io"

// The sliding windows, shortest first (config detector.windows.{short,mid,long}).
inline constexpr std::size_t kWindows = 3;

struct WindowStats {
  std::uint32_t samples = 0;  // 0: nothing in the window yet; the figures below are then unset
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};

// Right-sizing next to what the pod asked for. Requests come from the cgroup (cpu.shares /
// cpu.weight as kubelet writes them); a memory request is not visible in cgroups.
struct Recommendation {
  std::optional<double> cpu_cores;     // decaying-histogram percentile x (1 + margin)
  std::optional<double> memory_bytes;  // percentile of per-interval peaks x (1 + margin)
  std::optional<double> cpu_request_cores;
  std::optional<double> cpu_limit_cores;
  std::optional<double> memory_limit_bytes;
  // request (cpu) or limit (memory) divided by the recommendation: > 1 over-provisioned, < 1
  // under-provisioned.
  std::optional<double> cpu_provisioning_ratio;
  std::optional<double> memory_provisioning_ratio;
  double histogram_weight = 0;  // total decayed weight behind the recommendation
};

struct ContainerSignals {
  std::string namespace_name;
  std::string pod_name;
  std::string container_name;
  std::string pod_uid;
  std::string container_id;
  bool names_pending = false;  // its sample's (CgroupSample::names_pending): not exported yet
  std::array<WindowStats, kWindows> cpu_cores;
  std::array<WindowStats, kWindows> working_set_bytes;
  std::optional<double> throttle_ratio;      // throttled periods / periods, mid window
  std::optional<double> memory_limit_ratio;  // working set / limit, last sample
  std::uint64_t oom_kills = 0;
  Recommendation recommendation;
};

// Stall of one resource over the last interval, as a fraction of wall time (PSI "some" delta
// divided by elapsed time). self is the part the pod's own throttling or own limit explains;
// others = total - self.
struct Stall {
  std::optional<double> total;
  std::optional<double> self;
  std::optional<double> others;
};

struct PodSignals {
  std::string namespace_name;
  std::string pod_name;
  std::string pod_uid;
  std::string qos;
  bool names_pending = false;  // its sample's (CgroupSample::names_pending): not exported yet
  std::array<Stall, kResources> stall{};
  std::array<std::optional<double>, kResources> baseline{};      // EWMA of others-stall
  std::array<std::optional<double>, kResources> victim_score{};  // z against the baseline
  std::optional<double> run_delay_ratio;  // run-queue wait seconds per second, summed over tasks
  // Activity, what antagonists are ranked by: cpu cores, working set bytes, io bytes/s.
  std::array<std::optional<double>, kResources> activity{};
};

struct Evidence {
  std::string signal;  // e.g. "cpu_stall_others", "cpu_cores"
  std::string window;  // e.g. "10s", "2m"
  double value = 0;
  std::optional<double> baseline;
};

struct AntagonistRank {
  std::string namespace_name;
  std::string pod_name;
  std::string pod_uid;
  double score = 0;      // correlation of its activity with the victim's stall (-1..1)
  std::string activity;  // "cpu_cores", "working_set_bytes", "io_bytes_per_second"
  double activity_value = 0;
  std::optional<double> activity_baseline;
  bool named = false;  // above the antagonist threshold: an antagonist verdict
};

struct Verdict {
  Resource resource = Resource::kCpu;
  std::string namespace_name;  // the victim
  std::string pod_name;
  std::string pod_uid;
  double score = 0;           // victim score (z) this interval
  double excess = 0;          // others-stall above baseline, fraction of wall time
  std::int64_t since_ms = 0;  // wall clock when the verdict started
  int high_intervals = 0;     // of the last victim_n
  std::vector<Evidence> evidence;
  std::vector<AntagonistRank> antagonists;  // best first; only pods that were candidates
};

struct NodeSignals {
  // 0..1: the largest others-stall excess among current victims; 0 with no verdict.
  double interference_score = 0;
  std::array<std::optional<double>, kResources> saturation{};  // cpu used/capacity, memory
                                                               // used/total, io PSI some
  std::array<std::optional<double>, kResources> headroom{};    // 1 - saturation
  std::array<std::optional<double>, kResources> pressure{};    // node PSI some, fraction of time
  int victims = 0;
  int antagonists = 0;
  // One line for humans (the node condition's message): the verdicts and their strongest evidence.
  std::string summary;
};

struct DetectorState {
  std::int64_t timestamp_ms = 0;
  double interval_seconds = 0;
  std::string node;
  NodeSignals node_signals;
  std::vector<PodSignals> pods;
  std::vector<ContainerSignals> containers;
  std::vector<Verdict> verdicts;
};

}  // namespace nodewarden::detector
