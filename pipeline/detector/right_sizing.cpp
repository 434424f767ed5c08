// RightSizing: per-container windows and recommendations (see right_sizing.h).
#include "pipeline/detector/right_sizing.h"

#include <algorithm>
#include <cmath>

#include "pipeline/detector/decaying_histogram.h"
#include "pipeline/detector/rate_tracker.h"

namespace nodewarden::detector::detail {
namespace {

// Nearest-rank quantile of a sorted range: the value at rank ceil(q * n).
double nearestRank(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

WindowStats windowStats(std::vector<double>& values) {
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

}  // namespace

struct RightSizing::Container {
  Container(const DetectorOptions& o, std::size_t capacity)
      : ring(capacity),
        cpu_hist({0.01, 1.05, seconds(o.half_life)}),
        memory_hist({1e7, 1.05, seconds(o.half_life)}) {}

  std::uint64_t last_seen = 0;
  const CgroupSample* sample = nullptr;  // this cycle's, valid during Detector::update() only
  RateTracker cpu_ns;
  RateTracker periods;
  RateTracker throttled_periods;
  RateTracker run_delay_ns;
  std::vector<ContainerSample> ring;
  std::size_t head = 0;  // next slot
  std::size_t count = 0;
  DecayingHistogram cpu_hist;
  DecayingHistogram memory_hist;
  std::uint32_t cpu_samples = 0;
  double peak_start = -1;
  double peak = 0;
  bool has_peak = false;
  ContainerInterval interval;  // for the pod's self-stall
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

RightSizing::RightSizing(const DetectorOptions& options) : o_(options) {
  const double interval = std::max(0.001, seconds(o_.interval));
  capacity_ = std::clamp<std::size_t>(
      static_cast<std::size_t>(std::ceil(seconds(o_.windows[kWindows - 1]) / interval)) + 1, 2,
      3601);
}

RightSizing::~RightSizing() = default;

const ContainerInterval* RightSizing::update(const CgroupSample& s, double now, bool admit) {
  Container* found =
      containers_.see(s.id, s, admit, [&] { return std::make_unique<Container>(o_, capacity_); });
  if (found == nullptr) return nullptr;
  Container& c = *found;

  ContainerSample cs;
  cs.t = now;
  if (const auto cpu = c.cpu_ns.next(reading(s, CgroupField::kCpuUsageNs), now).perSecond(1e9)) {
    cs.cpu = static_cast<float>(*cpu);
    cs.has_cpu = true;
  }
  // Periods and throttled periods are read as a pair: one without the other is no reading.
  const bool thr_ok = s.has(CgroupField::kCfsPeriods) && s.has(CgroupField::kCfsThrottledPeriods);
  const auto pair = [&](CgroupField f) {
    return thr_ok ? std::optional<std::uint64_t>(s.get(f)) : std::nullopt;
  };
  const auto dp = c.periods.next(pair(CgroupField::kCfsPeriods), now);
  const auto dthr = c.throttled_periods.next(pair(CgroupField::kCfsThrottledPeriods), now);
  c.interval.throttled_ratio.reset();
  if (dp.seconds > 0 && dp.increase && dthr.increase) {
    cs.periods = static_cast<float>(*dp.increase);
    cs.throttled = static_cast<float>(*dthr.increase);
    cs.has_throttle = true;
    if (*dp.increase > 0) c.interval.throttled_ratio = *dthr.increase / *dp.increase;
  }
  // An increase even when no time passed: the pod divides the sum by its own interval.
  c.interval.run_delay_ns = c.run_delay_ns.next(reading(s, CgroupField::kRunDelayNs), now).increase;
  if (s.has(CgroupField::kMemWorkingSetBytes)) {
    cs.working_set = static_cast<float>(s.get(CgroupField::kMemWorkingSetBytes));
    cs.has_working_set = true;
  }
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
  return &c.interval;
}

void RightSizing::forget() { containers_.forget(); }

void RightSizing::publish(std::vector<ContainerSignals>& out, double now) {
  containers_.publish(out, [&](Container& c) -> const ContainerSignals& {
    fill(c, now);
    return c.out;
  });
}

void RightSizing::fill(Container& c, double now) {
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
    out.cpu_cores[w] = windowStats(cpu_scratch_);
    out.working_set_bytes[w] = windowStats(ws_scratch_);
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

}  // namespace nodewarden::detector::detail
