// Detector: runs its three parts once per cycle in a fixed order and publishes what they
// concluded (see detector.h for the layout and right_sizing.h, noisy_neighbor.h, node_score.h).
#include "pipeline/detector/detector.h"

#include <algorithm>
#include <tuple>

#include "pipeline/detector/node_score.h"
#include "pipeline/detector/noisy_neighbor.h"
#include "pipeline/detector/right_sizing.h"

namespace nodewarden::detector {

const char* resourceName(Resource resource) {
  switch (resource) {
    case Resource::kCpu:
      return "cpu";
    case Resource::kMemory:
      return "memory";
    case Resource::kIo:
      return "io";
  }
  return "unknown";
}

class Detector::Impl {
 public:
  explicit Impl(DetectorOptions o) : o_(std::move(o)), containers_(o_), pods_(o_) {
    state_.node = o_.node;
    state_.interval_seconds = detail::seconds(o_.interval);
  }

  void update(const Snapshot& snap, double now) {
    containers_.beginCycle();
    pods_.beginCycle();
    // Pods first: containers fold their throttling into them.
    for (const CgroupSample* s : snap.cgroups) {
      if (!s->isPod()) continue;
      if (!pods_.seePod(*s, room())) ++dropped_;
    }
    for (const CgroupSample* s : snap.cgroups) {
      if (s->isPod()) continue;
      const detail::ContainerInterval* interval = containers_.update(*s, now, room());
      if (interval == nullptr) {
        ++dropped_;
        continue;
      }
      pods_.seeContainer(*s, *interval);
    }
    state_.verdicts.clear();
    pods_.conclude(now, snap.timestamp_ms, state_.verdicts);
    node_.update(snap.node, state_.verdicts, now, state_.node_signals);
    containers_.forget();
    pods_.forget();
    publish(snap.timestamp_ms, now);
  }

  [[nodiscard]] const DetectorState& state() const { return state_; }
  [[nodiscard]] DetectorStats stats() const { return {pods_.size(), containers_.size(), dropped_}; }
  [[nodiscard]] const DetectorOptions& options() const { return o_; }

  // Only these: they are read afresh by every update(). The rest sized the rings and histograms
  // (windows, interval, victim_n, correlation_window, half_life, max_containers) or is read by the
  // renderers on other threads (metrics_windows).
  void retune(const DetectorOptions& o) {
    o_.cpu_percentile = o.cpu_percentile;
    o_.memory_percentile = o.memory_percentile;
    o_.margin = o.margin;
    o_.memory_peak_interval = o.memory_peak_interval;
    o_.baseline_half_life = o.baseline_half_life;
    o_.victim_z = o.victim_z;
    o_.victim_min_stall = o.victim_min_stall;
    o_.memory_victim_min_stall = o.memory_victim_min_stall;
    o_.self_throttle_ratio = o.self_throttle_ratio;
    o_.victim_k = std::min(o.victim_k, o_.victim_n);
    o_.onset_min_stall = o.onset_min_stall;
    o_.episode_lead = std::min(o.episode_lead, o_.correlation_window);
    o_.antagonist_threshold = o.antagonist_threshold;
  }

 private:
  // max_containers bounds pods and containers together: a new cgroup is tracked only below it.
  [[nodiscard]] bool room() const {
    return pods_.size() + containers_.size() < static_cast<std::size_t>(o_.max_containers);
  }

  void publish(std::int64_t now_ms, double now) {
    state_.timestamp_ms = now_ms;
    pods_.publish(state_.pods);
    containers_.publish(state_.containers, now);
    const auto by_name = [](const auto& a, const auto& b) {
      return std::tie(a.namespace_name, a.pod_name) < std::tie(b.namespace_name, b.pod_name);
    };
    std::ranges::sort(state_.pods, by_name);
    std::ranges::sort(state_.containers, [](const ContainerSignals& a, const ContainerSignals& b) {
      return std::tie(a.namespace_name, a.pod_name, a.container_name, a.container_id) <
             std::tie(b.namespace_name, b.pod_name, b.container_name, b.container_id);
    });
    std::ranges::sort(state_.verdicts, [](const Verdict& a, const Verdict& b) {
      return std::tie(a.namespace_name, a.pod_name, a.resource) <
             std::tie(b.namespace_name, b.pod_name, b.resource);
    });
  }

  // Declared first: the parts hold a reference to it, so retune() reaches them.
  DetectorOptions o_;
  detail::RightSizing containers_;
  detail::NoisyNeighbors pods_;
  detail::NodeScore node_;
  std::uint64_t dropped_ = 0;
  DetectorState state_;
};

Detector::Detector(DetectorOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Detector::~Detector() = default;
void Detector::update(const Snapshot& snapshot, double now_s) { impl_->update(snapshot, now_s); }
const DetectorState& Detector::state() const { return impl_->state(); }
DetectorStats Detector::stats() const { return impl_->stats(); }
const DetectorOptions& Detector::options() const { return impl_->options(); }
void Detector::retune(const DetectorOptions& options) { impl_->retune(options); }

}  // namespace nodewarden::detector
