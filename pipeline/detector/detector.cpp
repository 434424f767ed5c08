#include "pipeline/detector/detector.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <unordered_map>

#include "pipeline/detector/decaying_histogram.h"

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

namespace {

constexpr std::size_t kCpu = 0;
constexpr std::size_t kMem = 1;
constexpr std::size_t kIo = 2;
constexpr std::array<CgroupField, kResources> kPsiSome = {
    CgroupField::kPsiCpuSomeUs, CgroupField::kPsiMemSomeUs, CgroupField::kPsiIoSomeUs};
constexpr const char* kActivityNames[kResources] = {"cpu_cores", "memory_usage_bytes",
                                                    "io_bytes_per_second"};
// A pod or container not seen for this many cycles is forgotten (its cgroup is gone).
constexpr std::uint64_t kForgetAfterCycles = 3;

double seconds(std::chrono::milliseconds d) { return std::chrono::duration<double>(d).count(); }

// Difference of a monotonic counter between two readings; nullopt when either reading is missing
// or the counter went backwards (a reset: the cgroup was recreated under the same path).
std::optional<double> counterDelta(bool had, std::uint64_t before, bool has, std::uint64_t now) {
  if (!had || !has || now < before) return std::nullopt;
  return static_cast<double>(now - before);
}

std::string formatWindow(double s) {
  char buf[32];
  if (s >= 60 && std::fmod(s, 60) == 0) {
    std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  }
  return buf;
}

// Nearest-rank quantile of a sorted range: the value at rank ceil(q * n).
double nearestRank(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::optional<double> pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const std::size_t n = x.size();
  if (n < 4 || y.size() != n) return std::nullopt;
  double mx = 0;
  double my = 0;
  for (std::size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxy = 0;
  double sxx = 0;
  double syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 1e-12 || syy <= 1e-12) return std::nullopt;
  return sxy / std::sqrt(sxx * syy);
}

struct ContainerSample {
  double t = 0;
  float cpu = 0;
  float working_set = 0;
  float periods = 0;
  float throttled = 0;
  bool has_cpu = false;
  bool has_working_set = false;
  bool has_throttle = false;
};

struct ContainerState {
  ContainerState(const DetectorOptions& o, std::size_t capacity)
      : ring(capacity),
        cpu_hist({0.01, 1.05, seconds(o.half_life)}),
        memory_hist({1e7, 1.05, seconds(o.half_life)}) {}

  std::uint64_t last_seen = 0;
  const CgroupSample* sample = nullptr;  // this cycle's, valid during update() only
  double prev_t = -1;
  bool prev_cpu_ok = false;
  std::uint64_t prev_cpu = 0;
  bool prev_thr_ok = false;
  std::uint64_t prev_periods = 0;
  std::uint64_t prev_throttled = 0;
  std::vector<ContainerSample> ring;
  std::size_t head = 0;  // next slot
  std::size_t count = 0;
  DecayingHistogram cpu_hist;
  DecayingHistogram memory_hist;
  std::uint32_t cpu_samples = 0;
  double peak_start = -1;
  double peak = 0;
  bool has_peak = false;
  // This interval's throttle deltas, for the pod's self-stall, and run-queue delay.
  std::optional<double> interval_throttled_ratio;
  std::optional<double> interval_run_delay_ns;
  bool prev_delay_ok = false;
  std::uint64_t prev_delay = 0;
  ContainerSignals out;

  void push(const ContainerSample& s) {
    ring[head] = s;
    head = (head + 1) % ring.size();
    count = std::min(count + 1, ring.size());
  }
  template <typename F>
  void forEachSince(double t_min, F&& f) const {
    for (std::size_t i = 0; i < count; ++i) {
      const auto& s = ring[(head + ring.size() - 1 - i) % ring.size()];
      if (s.t <= t_min) break;
      f(s);
    }
  }
};

struct PodSample {
  std::uint64_t cycle = 0;  // 0: empty slot
  std::array<float, kResources> others{};
  std::array<float, kResources> activity{};
  std::array<bool, kResources> has_others{};
  std::array<bool, kResources> has_activity{};
  std::array<bool, kResources> elevated{};  // set by judge()
};

struct LatchedAntagonist {
  std::string uid;
  double activity_when_named = 0;
};

struct VerdictState {
  bool active = false;
  std::int64_t since_ms = 0;
  std::vector<LatchedAntagonist> latched;
};

struct PodState {
  explicit PodState(std::size_t capacity) : ring(capacity) {}

  std::uint64_t last_seen = 0;
  const CgroupSample* sample = nullptr;
  double prev_t = -1;
  std::array<bool, kResources> prev_psi_ok{};
  std::array<std::uint64_t, kResources> prev_psi{};
  bool prev_cpu_ok = false;
  std::uint64_t prev_cpu = 0;
  bool prev_io_ok = false;
  std::uint64_t prev_io = 0;
  bool prev_thr_ok = false;
  std::uint64_t prev_periods = 0;
  std::uint64_t prev_throttled_periods = 0;
  std::uint64_t prev_throttled_ns = 0;
  std::vector<PodSample> ring;  // slot = cycle % size
  std::array<double, kResources> mean{};
  std::array<double, kResources> var{};
  std::array<int, kResources> baseline_n{};
  std::array<std::uint64_t, kResources> high_bits{};
  std::array<VerdictState, kResources> verdict;
  // This cycle's values.
  std::array<std::optional<double>, kResources> others{};
  std::array<std::optional<double>, kResources> activity{};
  std::array<bool, kResources> own_rise{};
  std::array<bool, kResources> high{};
  std::array<bool, kResources> elevated{};  // high before excusing a pod whose activity rose
  std::array<std::optional<double>, kResources> z{};
  std::optional<double> throttle_ratio;  // the largest of the pod's and its containers'
  std::optional<double> throttled_fraction;
  bool near_memory_limit = false;
  // What this cycle's containers add to the pod.
  std::optional<double> child_throttle_ratio;
  std::optional<double> child_run_delay_ns;
  bool child_near_limit = false;
  PodSignals out;

  PodSample& slot(std::uint64_t cycle) { return ring[cycle % ring.size()]; }
  [[nodiscard]] const PodSample* at(std::uint64_t cycle) const {
    const auto& s = ring[cycle % ring.size()];
    return s.cycle == cycle ? &s : nullptr;
  }
};

std::uint64_t ioBytes(const CgroupSample& s) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < s.io_devices; ++i) total += s.io[i].read_bytes + s.io[i].write_bytes;
  return total;
}

}  // namespace

class Detector::Impl {
 public:
  explicit Impl(DetectorOptions o) : o_(std::move(o)) {
    const double interval = std::max(0.001, seconds(o_.interval));
    container_capacity_ = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::ceil(seconds(o_.windows[kWindows - 1]) / interval)) + 1, 2,
        3601);
    pod_capacity_ = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::ceil(
            seconds(std::max(o_.correlation_window, o_.interval * o_.victim_n)) / interval)) +
            1,
        static_cast<std::size_t>(o_.victim_n) + 1, 7201);
    state_.node = o_.node;
    state_.interval_seconds = seconds(o_.interval);
  }

  void update(const Snapshot& snap, double now) {
    ++cycle_;
    const double interval = std::max(0.001, seconds(o_.interval));
    // Pods first: containers fold their throttling into them.
    for (const CgroupSample* s : snap.cgroups) {
      if (!s->isPod()) continue;
      PodState* p = podFor(*s);
      if (p == nullptr) continue;
      p->sample = s;
      p->last_seen = cycle_;
      p->child_throttle_ratio.reset();
      p->child_run_delay_ns.reset();
      p->child_near_limit = false;
    }
    for (const CgroupSample* s : snap.cgroups) {
      if (s->isPod()) continue;
      ContainerState* c = containerFor(*s);
      if (c == nullptr) continue;
      c->sample = s;
      c->last_seen = cycle_;
      updateContainer(*c, *s, now);
      // Fold into the pod what only its containers show (their own quotas, limits, threads).
      const auto pod = pods_.find(s->pod_uid);
      if (pod == pods_.end() || pod->second->last_seen != cycle_) continue;
      PodState& p = *pod->second;
      if (c->interval_throttled_ratio) {
        p.child_throttle_ratio =
            std::max(p.child_throttle_ratio.value_or(0), *c->interval_throttled_ratio);
      }
      if (c->interval_run_delay_ns) {
        p.child_run_delay_ns = p.child_run_delay_ns.value_or(0) + *c->interval_run_delay_ns;
      }
      if (nearLimit(*s)) p.child_near_limit = true;
    }
    for (auto& [uid, p] : pods_) {
      if (p->last_seen == cycle_) updatePod(*p, now, interval);
    }
    for (auto& [uid, p] : pods_) {
      if (p->last_seen == cycle_) judge(*p);
    }
    state_.verdicts.clear();
    for (auto& [uid, p] : pods_) {
      if (p->last_seen == cycle_) decide(*p, snap.timestamp_ms);
    }
    for (auto& [uid, p] : pods_) {
      if (p->last_seen == cycle_) learnBaseline(*p);
    }
    updateNode(snap.node, now);
    forget();
    publish(snap.timestamp_ms);
    for (auto& [k, c] : containers_) c->sample = nullptr;
    for (auto& [k, p] : pods_) p->sample = nullptr;
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
  PodState* podFor(const CgroupSample& s) {
    auto it = pods_.find(s.pod_uid);
    if (it != pods_.end()) return it->second.get();
    if (pods_.size() + containers_.size() >= static_cast<std::size_t>(o_.max_containers)) {
      ++dropped_;
      return nullptr;
    }
    return pods_.emplace(s.pod_uid, std::make_unique<PodState>(pod_capacity_)).first->second.get();
  }

  ContainerState* containerFor(const CgroupSample& s) {
    auto it = containers_.find(s.id);
    if (it != containers_.end()) return it->second.get();
    if (pods_.size() + containers_.size() >= static_cast<std::size_t>(o_.max_containers)) {
      ++dropped_;
      return nullptr;
    }
    return containers_.emplace(s.id, std::make_unique<ContainerState>(o_, container_capacity_))
        .first->second.get();
  }

  void updateContainer(ContainerState& c, const CgroupSample& s, double now) {
    ContainerSample cs;
    cs.t = now;
    const double dt = c.prev_t < 0 ? 0 : now - c.prev_t;
    const bool cpu_ok = s.has(CgroupField::kCpuUsageNs);
    if (dt > 0) {
      if (auto d =
              counterDelta(c.prev_cpu_ok, c.prev_cpu, cpu_ok, s.get(CgroupField::kCpuUsageNs))) {
        cs.cpu = static_cast<float>(*d / 1e9 / dt);
        cs.has_cpu = true;
      }
    }
    const bool thr_ok = s.has(CgroupField::kCfsPeriods) && s.has(CgroupField::kCfsThrottledPeriods);
    c.interval_throttled_ratio.reset();
    if (dt > 0 && thr_ok && c.prev_thr_ok) {
      const auto dp = counterDelta(true, c.prev_periods, true, s.get(CgroupField::kCfsPeriods));
      const auto dthr =
          counterDelta(true, c.prev_throttled, true, s.get(CgroupField::kCfsThrottledPeriods));
      if (dp && dthr) {
        cs.periods = static_cast<float>(*dp);
        cs.throttled = static_cast<float>(*dthr);
        cs.has_throttle = true;
        if (*dp > 0) c.interval_throttled_ratio = *dthr / *dp;
      }
    }
    const bool delay_ok = s.has(CgroupField::kRunDelayNs);
    c.interval_run_delay_ns =
        counterDelta(c.prev_delay_ok, c.prev_delay, delay_ok, s.get(CgroupField::kRunDelayNs));
    c.prev_delay_ok = delay_ok;
    c.prev_delay = s.get(CgroupField::kRunDelayNs);
    if (s.has(CgroupField::kMemWorkingSetBytes)) {
      cs.working_set = static_cast<float>(s.get(CgroupField::kMemWorkingSetBytes));
      cs.has_working_set = true;
    }
    c.prev_t = now;
    c.prev_cpu_ok = cpu_ok;
    c.prev_cpu = s.get(CgroupField::kCpuUsageNs);
    c.prev_thr_ok = thr_ok;
    c.prev_periods = s.get(CgroupField::kCfsPeriods);
    c.prev_throttled = s.get(CgroupField::kCfsThrottledPeriods);
    c.push(cs);

    if (cs.has_cpu) {
      c.cpu_hist.add(cs.cpu, 1.0, now);
      ++c.cpu_samples;
    }
    if (cs.has_working_set) {
      if (c.peak_start < 0) c.peak_start = now;
      if (now - c.peak_start >= seconds(o_.memory_peak_interval) && c.has_peak) {
        c.memory_hist.add(c.peak, 1.0, now);
        c.peak = 0;
        c.has_peak = false;
        c.peak_start = now;
      }
      c.peak = std::max(c.peak, static_cast<double>(cs.working_set));
      c.has_peak = true;
    }
  }

  void updatePod(PodState& p, double now, double interval) {
    const CgroupSample& s = *p.sample;
    const double dt = p.prev_t < 0 ? 0 : now - p.prev_t;
    p.others.fill(std::nullopt);
    p.activity.fill(std::nullopt);
    p.throttle_ratio.reset();
    p.throttled_fraction.reset();
    std::array<std::optional<double>, kResources> total{};
    for (std::size_t r = 0; r < kResources; ++r) {
      const bool ok = s.has(kPsiSome[r]);
      if (dt > 0) {
        if (auto d = counterDelta(p.prev_psi_ok[r], p.prev_psi[r], ok, s.get(kPsiSome[r]))) {
          total[r] = std::clamp(*d / 1e6 / dt, 0.0, 1.0);
        }
      }
      p.prev_psi_ok[r] = ok;
      p.prev_psi[r] = s.get(kPsiSome[r]);
    }
    // Activity.
    const bool cpu_ok = s.has(CgroupField::kCpuUsageNs);
    if (dt > 0) {
      if (auto d =
              counterDelta(p.prev_cpu_ok, p.prev_cpu, cpu_ok, s.get(CgroupField::kCpuUsageNs))) {
        p.activity[kCpu] = *d / 1e9 / dt;
      }
    }
    p.prev_cpu_ok = cpu_ok;
    p.prev_cpu = s.get(CgroupField::kCpuUsageNs);
    // Memory activity is usage (anonymous memory and page cache charged to the pod): what fills a
    // node and makes the kernel reclaim. Not the working set: a victim whose cache is reclaimed
    // refaults it, the kernel activates the refaulted pages, and its working set grows while it
    // is being hurt.
    if (s.has(CgroupField::kMemUsageBytes)) {
      p.activity[kMem] = static_cast<double>(s.get(CgroupField::kMemUsageBytes));
    }
    const std::uint64_t io = ioBytes(s);
    if (dt > 0) {
      if (auto d = counterDelta(p.prev_io_ok, p.prev_io, s.io_present, io)) {
        p.activity[kIo] = *d / dt;
      }
    }
    p.prev_io_ok = s.io_present;
    p.prev_io = io;

    // Self: the pod's own quota (pod level, or any of its containers) and its own memory limit.
    const bool thr_ok = s.has(CgroupField::kCfsPeriods) &&
                        s.has(CgroupField::kCfsThrottledPeriods) &&
                        s.has(CgroupField::kCfsThrottledNs);
    if (dt > 0 && thr_ok && p.prev_thr_ok) {
      const auto dp = counterDelta(true, p.prev_periods, true, s.get(CgroupField::kCfsPeriods));
      const auto dthr = counterDelta(true, p.prev_throttled_periods, true,
                                     s.get(CgroupField::kCfsThrottledPeriods));
      const auto dns =
          counterDelta(true, p.prev_throttled_ns, true, s.get(CgroupField::kCfsThrottledNs));
      if (dp && dthr && *dp > 0) p.throttle_ratio = *dthr / *dp;
      if (dns) p.throttled_fraction = std::clamp(*dns / 1e9 / dt, 0.0, 1.0);
    }
    p.prev_thr_ok = thr_ok;
    p.prev_periods = s.get(CgroupField::kCfsPeriods);
    p.prev_throttled_periods = s.get(CgroupField::kCfsThrottledPeriods);
    p.prev_throttled_ns = s.get(CgroupField::kCfsThrottledNs);
    p.near_memory_limit = nearLimit(s);
    std::optional<double> run_delay;
    if (p.child_run_delay_ns && dt > 0) run_delay = *p.child_run_delay_ns / 1e9 / dt;
    if (p.child_throttle_ratio) {
      p.throttle_ratio = std::max(p.throttle_ratio.value_or(0), *p.child_throttle_ratio);
    }
    if (p.child_near_limit) p.near_memory_limit = true;
    p.prev_t = now;

    std::array<std::optional<double>, kResources> self{};
    if (total[kCpu]) {
      const bool throttled = p.throttle_ratio && *p.throttle_ratio >= o_.self_throttle_ratio;
      self[kCpu] =
          throttled ? *total[kCpu] : std::min(*total[kCpu], p.throttled_fraction.value_or(0.0));
    }
    if (total[kMem]) self[kMem] = p.near_memory_limit ? *total[kMem] : 0.0;
    if (total[kIo]) self[kIo] = 0.0;
    for (std::size_t r = 0; r < kResources; ++r) {
      if (total[r]) p.others[r] = std::max(0.0, *total[r] - *self[r]);
    }

    PodSample& slot = p.slot(cycle_);
    slot = PodSample{};
    slot.cycle = cycle_;
    for (std::size_t r = 0; r < kResources; ++r) {
      if (p.others[r]) {
        slot.others[r] = static_cast<float>(*p.others[r]);
        slot.has_others[r] = true;
      }
      if (p.activity[r]) {
        slot.activity[r] = static_cast<float>(*p.activity[r]);
        slot.has_activity[r] = true;
      }
    }
    for (std::size_t r = 0; r < kResources; ++r) p.own_rise[r] = newHigh(p, r);

    auto& out = p.out;
    out.namespace_name = s.namespace_name;
    out.pod_name = s.pod_name;
    out.pod_uid = s.pod_uid;
    out.names_pending = s.names_pending;
    out.qos = qosName(s.qos);
    out.run_delay_ratio = run_delay;
    for (std::size_t r = 0; r < kResources; ++r) {
      out.stall[r] = Stall{total[r], self[r], p.others[r]};
      out.activity[r] = p.activity[r];
    }
    (void)interval;
  }

  bool nearLimit(const CgroupSample& s) const {
    if (!s.has(CgroupField::kMemLimitBytes) || !s.has(CgroupField::kMemUsageBytes)) return false;
    const auto limit = s.get(CgroupField::kMemLimitBytes);
    return limit > 0 && static_cast<double>(s.get(CgroupField::kMemUsageBytes)) >=
                            o_.self_memory_limit_ratio * static_cast<double>(limit);
  }

  double minRise(std::size_t r) const {
    switch (r) {
      case kCpu:
        return o_.min_cpu_rise_cores;
      case kMem:
        return o_.min_memory_rise_bytes;
      default:
        return o_.min_io_rise_bytes_per_second;
    }
  }

  // Whether the pod's activity for r now is well above its least over the last `intervals`
  // cycles (the current one excluded): it started doing more.
  bool rose(const PodState& p, std::size_t r, int intervals) const {
    const PodSample* now = p.at(cycle_);
    if (now == nullptr || !now->has_activity[r]) return false;
    std::optional<double> least;
    for (int i = 1; i <= intervals && static_cast<std::uint64_t>(i) < cycle_; ++i) {
      const PodSample* s = p.at(cycle_ - static_cast<std::uint64_t>(i));
      if (s == nullptr || !s->has_activity[r]) continue;
      least = std::min(least.value_or(s->activity[r]), static_cast<double>(s->activity[r]));
    }
    if (!least) return false;
    const double current = now->activity[r];
    return current - *least >= minRise(r) && current >= 1.5 * *least;
  }

  // Whether the pod's own activity for r is now at a new high: above everything it did in the
  // correlation window before the last victim_n intervals (or, for a pod younger than that, well
  // above its least). A pod that starts doing more and then waits is its own cause; a victim
  // getting back to what it did before is not rising.
  bool newHigh(const PodState& p, std::size_t r) const {
    const PodSample* now = p.at(cycle_);
    if (now == nullptr || !now->has_activity[r]) return false;
    const std::size_t window = correlationSamples();
    std::optional<double> older_max;
    for (std::size_t i = static_cast<std::size_t>(o_.victim_n); i < window && i < cycle_; ++i) {
      const PodSample* s = p.at(cycle_ - i);
      if (s == nullptr || !s->has_activity[r]) continue;
      older_max = std::max(older_max.value_or(s->activity[r]), double{s->activity[r]});
    }
    if (!older_max) return rose(p, r, o_.victim_n);
    const double current = now->activity[r];
    return current - *older_max >= minRise(r) && current >= 1.25 * *older_max;
  }

  // How many samples back the current episode of pod p and resource r reaches: the elevated run
  // up to now, then at most episode_lead of quiet samples before it (fewer when an earlier
  // elevated one comes first), all within the correlation window.
  std::size_t episodeSpan(const PodState& p, std::size_t r) const {
    const std::size_t window = correlationSamples();
    // Whole intervals only, so the lead never reaches further back than episode_lead.
    const auto lead = static_cast<std::size_t>(std::max<std::int64_t>(0, o_.episode_lead.count()) /
                                               std::max<std::int64_t>(1, o_.interval.count()));
    std::size_t i = 0;
    std::size_t quiet = 0;
    bool in_episode = true;
    for (; i < window && i < cycle_; ++i) {
      const PodSample* s = p.at(cycle_ - i);
      const bool elevated = s != nullptr && s->elevated[r];
      if (in_episode && !elevated) in_episode = false;
      if (!in_episode && (elevated || quiet == lead)) break;
      if (!in_episode) ++quiet;
    }
    return i;
  }

  std::size_t correlationSamples() const {
    return std::min<std::size_t>(
        pod_capacity_ - 1,
        static_cast<std::size_t>(
            std::ceil(seconds(o_.correlation_window) / std::max(0.001, seconds(o_.interval)))));
  }

  // High or not this interval, per resource; the k-of-n history.
  void judge(PodState& p) {
    for (std::size_t r = 0; r < kResources; ++r) {
      p.high[r] = false;
      p.elevated[r] = false;
      p.z[r].reset();
      if (p.others[r] && p.baseline_n[r] >= o_.baseline_warmup) {
        const double excess = *p.others[r] - p.mean[r];
        const double sd = std::max(std::sqrt(p.var[r]), o_.stall_std_floor);
        p.z[r] = excess / sd;
        const double min_stall = r == static_cast<std::size_t>(Resource::kMemory)
                                     ? o_.memory_victim_min_stall
                                     : o_.victim_min_stall;
        p.elevated[r] = *p.z[r] >= o_.victim_z && excess >= min_stall;
        p.slot(cycle_).elevated[r] = p.elevated[r];
        p.high[r] = p.elevated[r] && !p.own_rise[r];
      }
      p.high_bits[r] = (p.high_bits[r] << 1) | (p.high[r] ? 1U : 0U);
      p.out.baseline[r] =
          p.baseline_n[r] >= o_.baseline_warmup ? std::optional<double>(p.mean[r]) : std::nullopt;
      p.out.victim_score[r] = p.z[r];
    }
  }

  int highCount(const PodState& p, std::size_t r) const {
    const std::uint64_t mask =
        o_.victim_n >= 64 ? ~0ULL : ((1ULL << static_cast<unsigned>(o_.victim_n)) - 1);
    return std::popcount(p.high_bits[r] & mask);
  }

  void decide(PodState& victim, std::int64_t now_ms) {
    for (std::size_t r = 0; r < kResources; ++r) {
      VerdictState& vs = victim.verdict[r];
      const int highs = highCount(victim, r);
      // k of the last n, and this one: a verdict ends with the first quiet interval. One
      // interval over twice victim_z and the resource's onset stall needs no second one.
      const double excess_now = victim.others[r].value_or(0) - victim.mean[r];
      const bool strong = victim.high[r] && victim.z[r].value_or(0) >= 2 * o_.victim_z &&
                          excess_now >= o_.onset_min_stall[r];
      if ((highs < o_.victim_k && !strong) || !victim.high[r]) {
        vs.active = false;
        vs.latched.clear();
        continue;
      }
      // Rank the co-located pods whose activity rose (or that are still latched), over this
      // episode and the quiet stretch before it: an earlier episode with another cause would
      // only blur the correlation.
      ranked_.clear();
      const std::size_t window = episodeSpan(victim, r);
      for (auto& [uid, cand] : pods_) {
        if (cand.get() == &victim || cand->last_seen != cycle_ || !cand->activity[r]) continue;
        const auto latched = std::ranges::find(vs.latched, uid, &LatchedAntagonist::uid);
        const bool still_latched =
            latched != vs.latched.end() && *cand->activity[r] >= 0.5 * latched->activity_when_named;
        const bool candidate = rose(*cand, r, static_cast<int>(window));
        if (!candidate && !still_latched) continue;
        xs_.clear();
        ys_.clear();
        std::optional<double> least;
        for (std::size_t i = 0; i < window && i < cycle_; ++i) {
          const std::uint64_t cyc = cycle_ - i;
          const PodSample* a = victim.at(cyc);
          const PodSample* b = cand->at(cyc);
          if (a == nullptr || b == nullptr || !a->has_others[r] || !b->has_activity[r]) continue;
          xs_.push_back(a->others[r]);
          ys_.push_back(b->activity[r]);
          if (i > 0) least = std::min(least.value_or(b->activity[r]), double{b->activity[r]});
        }
        // Still active: an antagonist that has just stopped is not the cause of what follows.
        const double peak = ys_.empty() ? 0.0 : *std::ranges::max_element(ys_);
        if (!still_latched && *cand->activity[r] < 0.5 * peak) continue;
        const double score = pearson(xs_, ys_).value_or(0.0);
        AntagonistRank rank;
        rank.namespace_name = cand->out.namespace_name;
        rank.pod_name = cand->out.pod_name;
        rank.pod_uid = uid;
        rank.score = score;
        rank.activity = kActivityNames[r];
        rank.activity_value = *cand->activity[r];
        rank.activity_baseline = least;
        rank.named = score >= o_.antagonist_threshold || still_latched;
        ranked_.push_back(std::move(rank));
      }
      std::ranges::sort(ranked_, [](const AntagonistRank& a, const AntagonistRank& b) {
        if (a.named != b.named) return a.named;
        return a.score > b.score;
      });
      const bool any_named = std::ranges::any_of(ranked_, &AntagonistRank::named);
      if (!any_named) {
        vs.active = false;
        vs.latched.clear();
        continue;
      }
      if (!vs.active) {
        vs.active = true;
        vs.since_ms = now_ms;
      }
      std::vector<LatchedAntagonist> latched;
      for (const auto& a : ranked_) {
        if (!a.named) continue;
        const auto old = std::ranges::find(vs.latched, a.pod_uid, &LatchedAntagonist::uid);
        latched.push_back(
            {a.pod_uid, old != vs.latched.end() ? old->activity_when_named : a.activity_value});
      }
      vs.latched = std::move(latched);

      Verdict v;
      v.resource = static_cast<Resource>(r);
      v.namespace_name = victim.out.namespace_name;
      v.pod_name = victim.out.pod_name;
      v.pod_uid = victim.out.pod_uid;
      v.score = victim.z[r].value_or(0);
      v.excess = std::clamp(victim.others[r].value_or(0) - victim.mean[r], 0.0, 1.0);
      v.since_ms = vs.since_ms;
      v.high_intervals = highs;
      const std::string interval = formatWindow(seconds(o_.interval));
      const std::string res = resourceName(v.resource);
      v.evidence.push_back(
          {res + "_stall_others", interval, victim.others[r].value_or(0), victim.mean[r]});
      v.evidence.push_back({res + "_victim_score", interval, v.score, std::nullopt});
      if (r == kCpu && victim.throttle_ratio) {
        v.evidence.push_back(
            {"cpu_throttle_ratio", interval, *victim.throttle_ratio, std::nullopt});
      }
      v.evidence.push_back({"high_intervals", std::to_string(o_.victim_n) + "_intervals",
                            static_cast<double>(highs), std::nullopt});
      v.antagonists = ranked_;
      state_.verdicts.push_back(std::move(v));
    }
  }

  // The baseline learns from quiet intervals, so an interference that lasts is not learnt as
  // normal. A stall that stays elevated with no one to blame (the pod's own new normal) is learnt
  // ten times slower, so it is absorbed in hours rather than minutes.
  void learnBaseline(PodState& p) {
    const double alpha = 1 - std::exp2(-seconds(o_.interval) / seconds(o_.baseline_half_life));
    for (std::size_t r = 0; r < kResources; ++r) {
      if (!p.others[r] || p.verdict[r].active) continue;
      if (p.elevated[r] && p.baseline_n[r] < o_.baseline_warmup) continue;
      const double x = *p.others[r];
      if (p.baseline_n[r] == 0) {
        p.mean[r] = x;
        p.var[r] = 0;
      } else {
        // Warm-up: a plain running mean until the EWMA's own horizon is reached.
        const double a = p.elevated[r] ? alpha / 10 : std::max(alpha, 1.0 / (p.baseline_n[r] + 1));
        const double d = x - p.mean[r];
        p.mean[r] += a * d;
        p.var[r] = (1 - a) * (p.var[r] + a * d * d);
      }
      ++p.baseline_n[r];
    }
  }

  void updateNode(const NodeSample& n, double now) {
    NodeSignals& out = state_.node_signals;
    out.saturation.fill(std::nullopt);
    out.headroom.fill(std::nullopt);
    out.pressure.fill(std::nullopt);
    const double dt = prev_node_t_ < 0 ? 0 : now - prev_node_t_;
    if (n.has_stat && !n.cpus.empty()) {
      std::uint64_t total = 0;
      std::uint64_t idle = 0;
      for (const auto& c : n.cpus) {
        for (std::size_t i = 0; i < c.columns && i < 8; ++i) total += c.ticks[i];  // not guest
        idle += c.ticks[3] + (c.columns > 4 ? c.ticks[4] : 0);
      }
      if (prev_cpu_total_ > 0 && total > prev_cpu_total_ && idle >= prev_cpu_idle_) {
        const double busy = 1.0 - static_cast<double>(idle - prev_cpu_idle_) /
                                      static_cast<double>(total - prev_cpu_total_);
        out.saturation[kCpu] = std::clamp(busy, 0.0, 1.0);
      }
      prev_cpu_total_ = total;
      prev_cpu_idle_ = idle;
    }
    if (n.has_meminfo) {
      std::optional<double> mem_total;
      std::optional<double> available;
      for (const auto& [k, v] : n.meminfo) {
        if (k == "MemTotal") mem_total = static_cast<double>(v);
        if (k == "MemAvailable") available = static_cast<double>(v);
      }
      if (mem_total && available && *mem_total > 0) {
        out.saturation[kMem] = std::clamp(1 - *available / *mem_total, 0.0, 1.0);
      }
    }
    const PsiTotals* psi[kResources] = {&n.psi_cpu, &n.psi_memory, &n.psi_io};
    for (std::size_t r = 0; r < kResources; ++r) {
      if (dt > 0 && psi[r]->has_some && prev_node_psi_ok_[r] &&
          psi[r]->some_us >= prev_node_psi_[r]) {
        out.pressure[r] = std::clamp(
            static_cast<double>(psi[r]->some_us - prev_node_psi_[r]) / 1e6 / dt, 0.0, 1.0);
      }
      prev_node_psi_ok_[r] = psi[r]->has_some;
      prev_node_psi_[r] = psi[r]->some_us;
    }
    out.saturation[kIo] = out.pressure[kIo];
    for (std::size_t r = 0; r < kResources; ++r) {
      if (out.saturation[r]) out.headroom[r] = 1 - *out.saturation[r];
    }
    prev_node_t_ = now;

    out.interference_score = 0;
    out.victims = 0;
    out.antagonists = 0;
    out.summary.clear();
    std::vector<std::string> named;
    for (const Verdict& v : state_.verdicts) {
      out.interference_score = std::max(out.interference_score, v.excess);
      ++out.victims;
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s/%s %s stall by others %.0f%% (baseline %.0f%%, z %.1f)",
                    v.namespace_name.c_str(), v.pod_name.c_str(), resourceName(v.resource),
                    100 * (v.evidence.empty() ? 0 : v.evidence[0].value),
                    100 * v.evidence[0].baseline.value_or(0), v.score);
      std::string line = buf;
      for (const auto& a : v.antagonists) {
        if (!a.named) continue;
        if (std::ranges::find(named, a.pod_uid) == named.end()) named.push_back(a.pod_uid);
        std::snprintf(buf, sizeof buf, " from %s/%s (r %.2f)", a.namespace_name.c_str(),
                      a.pod_name.c_str(), a.score);
        line += buf;
      }
      if (!out.summary.empty()) out.summary += "; ";
      out.summary += line;
    }
    out.antagonists = static_cast<int>(named.size());
    if (out.summary.size() > 1024) {
      out.summary.resize(1021);
      out.summary += "...";
    }
    if (out.summary.empty()) out.summary = "no interference";
  }

  void forget() {
    std::erase_if(containers_, [&](const auto& kv) {
      return cycle_ - kv.second->last_seen >= kForgetAfterCycles;
    });
    std::erase_if(
        pods_, [&](const auto& kv) { return cycle_ - kv.second->last_seen >= kForgetAfterCycles; });
  }

  void publish(std::int64_t now_ms) {
    state_.timestamp_ms = now_ms;
    // Assigned in place: a string keeps its capacity, so a steady node allocates nothing here.
    std::size_t n = 0;
    for (auto& [uid, p] : pods_) {
      if (p->last_seen != cycle_) continue;
      if (n == state_.pods.size()) state_.pods.emplace_back();
      state_.pods[n++] = p->out;
    }
    state_.pods.resize(n);
    const double now = prev_node_t_;
    n = 0;
    for (auto& [id, c] : containers_) {
      if (c->last_seen != cycle_) continue;
      fillContainer(*c, now);
      if (n == state_.containers.size()) state_.containers.emplace_back();
      state_.containers[n++] = c->out;
    }
    state_.containers.resize(n);
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

  void fillContainer(ContainerState& c, double now) {
    const CgroupSample& s = *c.sample;
    ContainerSignals& out = c.out;
    out.namespace_name = s.namespace_name;
    out.pod_name = s.pod_name;
    out.container_name = s.container_name;
    out.pod_uid = s.pod_uid;
    out.container_id = s.container_id;
    out.names_pending = s.names_pending;
    for (std::size_t w = 0; w < kWindows; ++w) {
      const double since = now - seconds(o_.windows[w]);
      cpu_scratch_.clear();
      ws_scratch_.clear();
      c.forEachSince(since, [&](const ContainerSample& cs) {
        if (cs.has_cpu) cpu_scratch_.push_back(cs.cpu);
        if (cs.has_working_set) ws_scratch_.push_back(cs.working_set);
      });
      out.cpu_cores[w] = stats(cpu_scratch_);
      out.working_set_bytes[w] = stats(ws_scratch_);
    }
    double periods = 0;
    double throttled = 0;
    c.forEachSince(now - seconds(o_.windows[1]), [&](const ContainerSample& cs) {
      if (!cs.has_throttle) return;
      periods += static_cast<double>(cs.periods);
      throttled += static_cast<double>(cs.throttled);
    });
    out.throttle_ratio = periods > 0 ? std::optional<double>(throttled / periods) : std::nullopt;
    out.memory_limit_ratio.reset();
    if (s.has(CgroupField::kMemLimitBytes) && s.get(CgroupField::kMemLimitBytes) > 0 &&
        s.has(CgroupField::kMemWorkingSetBytes)) {
      out.memory_limit_ratio = static_cast<double>(s.get(CgroupField::kMemWorkingSetBytes)) /
                               static_cast<double>(s.get(CgroupField::kMemLimitBytes));
    }
    out.oom_kills = s.has(CgroupField::kOomKills) ? s.get(CgroupField::kOomKills) : 0;

    Recommendation& rec = out.recommendation;
    rec = Recommendation{};
    rec.histogram_weight = c.cpu_hist.totalWeight(now);
    if (c.cpu_samples >= static_cast<std::uint32_t>(o_.min_recommendation_samples)) {
      if (auto p = c.cpu_hist.percentile(o_.cpu_percentile)) rec.cpu_cores = *p * (1 + o_.margin);
      if (c.has_peak || !c.memory_hist.empty()) {
        const auto p = c.has_peak
                           ? c.memory_hist.percentileWith(o_.memory_percentile, c.peak, 1.0, now)
                           : c.memory_hist.percentile(o_.memory_percentile);
        if (p) rec.memory_bytes = *p * (1 + o_.margin);
      }
    }
    // kubelet writes cpu.shares = request millicores * 1024 / 1000, and 2 for no request.
    if (s.has(CgroupField::kCpuShares) && s.get(CgroupField::kCpuShares) > 2) {
      rec.cpu_request_cores = static_cast<double>(s.get(CgroupField::kCpuShares)) / 1024.0;
    }
    if (s.has(CgroupField::kCpuQuotaUs) && s.has(CgroupField::kCpuPeriodUs) &&
        s.get(CgroupField::kCpuPeriodUs) > 0) {
      rec.cpu_limit_cores = static_cast<double>(s.get(CgroupField::kCpuQuotaUs)) /
                            static_cast<double>(s.get(CgroupField::kCpuPeriodUs));
    }
    if (s.has(CgroupField::kMemLimitBytes) && s.get(CgroupField::kMemLimitBytes) > 0) {
      rec.memory_limit_bytes = static_cast<double>(s.get(CgroupField::kMemLimitBytes));
    }
    if (rec.cpu_cores && rec.cpu_request_cores && *rec.cpu_cores > 0) {
      rec.cpu_provisioning_ratio = *rec.cpu_request_cores / *rec.cpu_cores;
    }
    if (rec.memory_bytes && rec.memory_limit_bytes && *rec.memory_bytes > 0) {
      rec.memory_provisioning_ratio = *rec.memory_limit_bytes / *rec.memory_bytes;
    }
  }

  static WindowStats stats(std::vector<double>& values) {
    WindowStats w;
    if (values.empty()) return w;
    std::ranges::sort(values);
    w.samples = static_cast<std::uint32_t>(values.size());
    w.p50 = nearestRank(values, 0.5);
    w.p90 = nearestRank(values, 0.9);
    w.p99 = nearestRank(values, 0.99);
    w.max = values.back();
    return w;
  }

  DetectorOptions o_;
  std::size_t container_capacity_ = 0;
  std::size_t pod_capacity_ = 0;
  std::uint64_t cycle_ = 0;
  std::uint64_t dropped_ = 0;
  std::unordered_map<std::string, std::unique_ptr<PodState>> pods_;
  std::unordered_map<std::string, std::unique_ptr<ContainerState>> containers_;
  double prev_node_t_ = -1;
  std::uint64_t prev_cpu_total_ = 0;
  std::uint64_t prev_cpu_idle_ = 0;
  std::array<bool, kResources> prev_node_psi_ok_{};
  std::array<std::uint64_t, kResources> prev_node_psi_{};
  DetectorState state_;
  // Scratch, reused every cycle.
  std::vector<double> cpu_scratch_;
  std::vector<double> ws_scratch_;
  std::vector<double> xs_;
  std::vector<double> ys_;
  std::vector<AntagonistRank> ranked_;
};

Detector::Detector(DetectorOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Detector::~Detector() = default;
void Detector::update(const Snapshot& snapshot, double now_s) { impl_->update(snapshot, now_s); }
const DetectorState& Detector::state() const { return impl_->state(); }
DetectorStats Detector::stats() const { return impl_->stats(); }
const DetectorOptions& Detector::options() const { return impl_->options(); }
void Detector::retune(const DetectorOptions& options) { impl_->retune(options); }

}  // namespace nodewarden::detector
