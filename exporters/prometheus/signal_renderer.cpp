#include "exporters/prometheus/signal_renderer.h"

#include <chrono>
#include <optional>

#include "exporters/prometheus/text_renderer.h"

namespace nodewarden {
namespace {

using detector::ContainerSignals;
using detector::DetectorState;
using detector::kResources;
using detector::kWindows;
using detector::PodSignals;
using detector::Resource;

std::string windowName(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

class Writer {
 public:
  Writer(std::string& out, const std::function<void(std::string&)>& flush, std::size_t chunk,
         const std::string& node)
      : out_(out), flush_(flush), chunk_(chunk), node_(node) {}

  void family(std::string_view name, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" gauge\n");
  }

  // name{label="value",...,node="..."} value
  void series(std::string_view name,
              std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
              double value) {
    out_.append(name).push_back('{');
    for (const auto& [k, v] : labels) {
      out_.append(k).append("=\"");
      appendLabelValue(out_, v);
      out_.append("\",");
    }
    out_.append("node=\"");
    appendLabelValue(out_, node_);
    out_.append("\"} ");
    appendDouble(out_, value);
    out_.push_back('\n');
    ++count_;
    if (flush_ && out_.size() >= chunk_) {
      flush_(out_);
      out_.clear();
    }
  }

  [[nodiscard]] std::size_t count() const { return count_; }

 private:
  std::string& out_;
  const std::function<void(std::string&)>& flush_;
  std::size_t chunk_;
  const std::string& node_;
  std::size_t count_ = 0;
};

const char* res(std::size_t r) { return detector::resourceName(static_cast<Resource>(r)); }

}  // namespace

std::size_t renderDetectorState(const DetectorState& state,
                                const detector::DetectorOptions& options, std::string& out,
                                const std::function<void(std::string&)>& flush,
                                std::size_t chunk_bytes) {
  Writer w(out, flush, chunk_bytes, state.node);
  std::array<std::string, kWindows> windows;
  for (std::size_t i = 0; i < kWindows; ++i) windows[i] = windowName(options.windows[i]);

  const auto container_labels = [](const ContainerSignals& c) {
    return std::array<std::pair<std::string_view, std::string_view>, 3>{
        {{"namespace", c.namespace_name}, {"pod", c.pod_name}, {"container", c.container_name}}};
  };

  // Usage windows.
  struct WindowFamily {
    const char* name;
    const char* help;
    const std::array<detector::WindowStats, kWindows> ContainerSignals::*member;
  };
  constexpr WindowFamily kWindowFamilies[] = {
      {"nodewarden_container_cpu_usage_cores",
       "CPU cores used per collection interval: quantiles and max over a sliding window.",
       &ContainerSignals::cpu_cores},
      {"nodewarden_container_memory_working_set_window_bytes",
       "Working set bytes: quantiles and max over a sliding window.",
       &ContainerSignals::working_set_bytes},
  };
  for (const auto& f : kWindowFamilies) {
    w.family(f.name, f.help);
    for (const auto& c : state.containers) {
      if (c.names_pending) continue;  // as its cgroup series: exported once named
      const auto l = container_labels(c);
      for (std::size_t i = 0; i < kWindows; ++i) {
        const auto& s = (c.*f.member)[i];
        if (s.samples == 0 || !options.metrics_windows[i]) continue;
        const std::pair<const char*, double> stats[] = {
            {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"max", s.max}};
        for (const auto& [stat, v] : stats) {
          w.series(f.name, {l[0], l[1], l[2], {"window", windows[i]}, {"stat", stat}}, v);
        }
      }
    }
  }

  struct OptionalFamily {
    const char* name;
    const char* help;
    std::optional<double> (*get)(const ContainerSignals&);
  };
  const OptionalFamily kContainerFamilies[] = {
      {"nodewarden_container_cpu_throttle_ratio",
       "Throttled CFS periods divided by periods over the mid window (own CPU limit).",
       [](const ContainerSignals& c) { return c.throttle_ratio; }},
      {"nodewarden_container_memory_limit_ratio", "Working set divided by the memory limit.",
       [](const ContainerSignals& c) { return c.memory_limit_ratio; }},
      {"nodewarden_container_recommended_cpu_cores",
       "Recommended CPU request: decaying-histogram percentile plus the safety margin.",
       [](const ContainerSignals& c) { return c.recommendation.cpu_cores; }},
      {"nodewarden_container_recommended_memory_bytes",
       "Recommended memory: percentile of per-interval working-set peaks plus the safety margin.",
       [](const ContainerSignals& c) { return c.recommendation.memory_bytes; }},
      {"nodewarden_container_cpu_request_cores",
       "CPU request as the cgroup shows it (cpu.shares / 1024).",
       [](const ContainerSignals& c) { return c.recommendation.cpu_request_cores; }},
      {"nodewarden_container_cpu_provisioning_ratio",
       "CPU request divided by the recommendation: above 1 over-provisioned, below 1 under.",
       [](const ContainerSignals& c) { return c.recommendation.cpu_provisioning_ratio; }},
      {"nodewarden_container_memory_provisioning_ratio",
       "Memory limit divided by the recommendation: above 1 over-provisioned, below 1 under.",
       [](const ContainerSignals& c) { return c.recommendation.memory_provisioning_ratio; }},
  };
  for (const auto& f : kContainerFamilies) {
    w.family(f.name, f.help);
    for (const auto& c : state.containers) {
      if (c.names_pending) continue;
      if (const auto v = f.get(c)) {
        const auto l = container_labels(c);
        w.series(f.name, {l[0], l[1], l[2]}, *v);
      }
    }
  }

  // Pods.
  w.family("nodewarden_pod_stall_ratio",
           "Share of wall time the pod's tasks stalled on a resource over the last interval (PSI "
           "some), by cause: self (own CPU quota or memory limit) or others.");
  for (const PodSignals& p : state.pods) {
    if (p.names_pending) continue;
    for (std::size_t r = 0; r < kResources; ++r) {
      const auto& s = p.stall[r];
      if (s.self) {
        w.series("nodewarden_pod_stall_ratio",
                 {{"namespace", p.namespace_name},
                  {"pod", p.pod_name},
                  {"resource", res(r)},
                  {"cause", "self"}},
                 *s.self);
      }
      if (s.others) {
        w.series("nodewarden_pod_stall_ratio",
                 {{"namespace", p.namespace_name},
                  {"pod", p.pod_name},
                  {"resource", res(r)},
                  {"cause", "others"}},
                 *s.others);
      }
    }
  }
  struct PodFamily {
    const char* name;
    const char* help;
    const std::array<std::optional<double>, kResources> PodSignals::*member;
  };
  constexpr PodFamily kPodFamilies[] = {
      {"nodewarden_pod_stall_baseline_ratio",
       "The pod's usual others-caused stall (EWMA over intervals without interference).",
       &PodSignals::baseline},
      {"nodewarden_pod_victim_score",
       "How far the pod's others-caused stall is above its baseline, in standard deviations.",
       &PodSignals::victim_score},
  };
  for (const auto& f : kPodFamilies) {
    w.family(f.name, f.help);
    for (const PodSignals& p : state.pods) {
      if (p.names_pending) continue;
      for (std::size_t r = 0; r < kResources; ++r) {
        if (const auto& v = (p.*f.member)[r]) {
          w.series(f.name,
                   {{"namespace", p.namespace_name}, {"pod", p.pod_name}, {"resource", res(r)}},
                   *v);
        }
      }
    }
  }

  w.family("nodewarden_pod_run_delay_ratio",
           "Seconds the pod's threads waited on a run queue per second, over the last interval "
           "(/proc/<tid>/schedstat).");
  for (const PodSignals& p : state.pods) {
    if (p.run_delay_ratio && !p.names_pending) {
      w.series("nodewarden_pod_run_delay_ratio",
               {{"namespace", p.namespace_name}, {"pod", p.pod_name}}, *p.run_delay_ratio);
    }
  }

  // Verdicts: series only while they hold.
  w.family("nodewarden_noisy_neighbor_victim",
           "1 while the pod is a noisy-neighbor victim for the resource.");
  for (const auto& v : state.verdicts) {
    w.series("nodewarden_noisy_neighbor_victim",
             {{"namespace", v.namespace_name},
              {"pod", v.pod_name},
              {"resource", detector::resourceName(v.resource)}},
             1);
  }
  for (const char* name :
       {"nodewarden_noisy_neighbor_antagonist", "nodewarden_noisy_neighbor_antagonist_score"}) {
    const bool score = std::string_view(name).ends_with("_score");
    w.family(name, score ? "Correlation of the antagonist's activity with its victim's stall."
                         : "1 while the pod is named as the antagonist of a victim.");
    for (const auto& v : state.verdicts) {
      for (const auto& a : v.antagonists) {
        if (!a.named) continue;
        w.series(name,
                 {{"namespace", a.namespace_name},
                  {"pod", a.pod_name},
                  {"resource", detector::resourceName(v.resource)},
                  {"victim_namespace", v.namespace_name},
                  {"victim_pod", v.pod_name}},
                 score ? a.score : 1.0);
      }
    }
  }

  // Node.
  const auto& n = state.node_signals;
  w.family("nodewarden_node_interference_score",
           "0..1: the largest others-caused stall above baseline among current victims.");
  w.series("nodewarden_node_interference_score", {}, n.interference_score);
  struct NodeFamily {
    const char* name;
    const char* help;
    const std::array<std::optional<double>, kResources> detector::NodeSignals::*member;
  };
  constexpr NodeFamily kNodeFamilies[] = {
      {"nodewarden_node_saturation_ratio",
       "Node saturation: cpu busy share, memory used share (1 - MemAvailable/MemTotal), io PSI.",
       &detector::NodeSignals::saturation},
      {"nodewarden_node_headroom_ratio", "1 - saturation.", &detector::NodeSignals::headroom},
      {"nodewarden_node_pressure_ratio",
       "Share of wall time some task on the node stalled on the resource (PSI some).",
       &detector::NodeSignals::pressure},
  };
  for (const auto& f : kNodeFamilies) {
    w.family(f.name, f.help);
    for (std::size_t r = 0; r < kResources; ++r) {
      if (const auto& v = (n.*f.member)[r]) w.series(f.name, {{"resource", res(r)}}, *v);
    }
  }
  w.family("nodewarden_node_noisy_neighbor_verdicts", "Current verdicts on the node, by kind.");
  w.series("nodewarden_node_noisy_neighbor_verdicts", {{"kind", "victim"}}, n.victims);
  w.series("nodewarden_node_noisy_neighbor_verdicts", {{"kind", "antagonist"}}, n.antagonists);
  if (flush && !out.empty()) {
    flush(out);
    out.clear();
  }
  return w.count();
}

}  // namespace nodewarden
