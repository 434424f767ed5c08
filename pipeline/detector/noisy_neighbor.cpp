// NoisyNeighbors: per-pod stall by cause, victims and antagonists (see noisy_neighbor.h and the
// method at the top of detector.h).
#include "pipeline/detector/noisy_neighbor.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>

#include "pipeline/detector/rate_tracker.h"

namespace nodewarden::detector::detail {
namespace {

constexpr std::array<CgroupField, kResources> kPsiSome = {
    CgroupField::kPsiCpuSomeUs, CgroupField::kPsiMemSomeUs, CgroupField::kPsiIoSomeUs};
constexpr const char* kActivityNames[kResources] = {"cpu_cores", "memory_usage_bytes",
                                                    "io_bytes_per_second"};

std::string formatWindow(double s) {
  char buf[32];
  if (s >= 60 && std::fmod(s, 60) == 0) {
    std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  }
  return buf;
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

std::optional<std::uint64_t> ioBytes(const CgroupSample& s) {
  if (!s.io_present) return std::nullopt;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < s.io_devices; ++i) total += s.io[i].read_bytes + s.io[i].write_bytes;
  return total;
}

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

}  // namespace

struct NoisyNeighbors::Pod {
  explicit Pod(std::size_t capacity) : ring(capacity) {}

  std::uint64_t last_seen = 0;
  const CgroupSample* sample = nullptr;  // this cycle's, valid during Detector::update() only
  std::array<RateTracker, kResources> psi_some_us;
  RateTracker cpu_ns;
  RateTracker io_bytes;
  RateTracker periods;
  RateTracker throttled_periods;
  RateTracker throttled_ns;
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

NoisyNeighbors::NoisyNeighbors(const DetectorOptions& options) : o_(options) {
  const double interval = std::max(0.001, seconds(o_.interval));
  capacity_ = std::clamp<std::size_t>(
      static_cast<std::size_t>(std::ceil(
          seconds(std::max(o_.correlation_window, o_.interval * o_.victim_n)) / interval)) +
          1,
      static_cast<std::size_t>(o_.victim_n) + 1, 7201);
}

NoisyNeighbors::~NoisyNeighbors() = default;

bool NoisyNeighbors::seePod(const CgroupSample& s, bool admit) {
  Pod* p = pods_.see(s.pod_uid, s, admit, [&] { return std::make_unique<Pod>(capacity_); });
  if (p == nullptr) return false;
  p->child_throttle_ratio.reset();
  p->child_run_delay_ns.reset();
  p->child_near_limit = false;
  return true;
}

void NoisyNeighbors::seeContainer(const CgroupSample& s, const ContainerInterval& interval) {
  Pod* pod = pods_.seen(s.pod_uid);
  if (pod == nullptr) return;
  Pod& p = *pod;
  if (interval.throttled_ratio) {
    p.child_throttle_ratio =
        std::max(p.child_throttle_ratio.value_or(0), *interval.throttled_ratio);
  }
  if (interval.run_delay_ns) {
    p.child_run_delay_ns = p.child_run_delay_ns.value_or(0) + *interval.run_delay_ns;
  }
  if (nearLimit(s)) p.child_near_limit = true;
}

void NoisyNeighbors::conclude(double now, std::int64_t now_ms, std::vector<Verdict>& verdicts) {
  for (auto& [uid, p] : pods_) {
    if (p->last_seen == pods_.cycle()) update(*p, now);
  }
  for (auto& [uid, p] : pods_) {
    if (p->last_seen == pods_.cycle()) judge(*p);
  }
  for (auto& [uid, p] : pods_) {
    if (p->last_seen == pods_.cycle()) decide(*p, now_ms, verdicts);
  }
  for (auto& [uid, p] : pods_) {
    if (p->last_seen == pods_.cycle()) learnBaseline(*p);
  }
}

void NoisyNeighbors::forget() { pods_.forget(); }

void NoisyNeighbors::publish(std::vector<PodSignals>& out) {
  pods_.publish(out, [](const Pod& p) -> const PodSignals& { return p.out; });
}

void NoisyNeighbors::update(Pod& p, double now) {
  const CgroupSample& s = *p.sample;
  p.others.fill(std::nullopt);
  p.activity.fill(std::nullopt);
  p.throttle_ratio.reset();
  p.throttled_fraction.reset();
  std::array<std::optional<double>, kResources> total{};
  for (std::size_t r = 0; r < kResources; ++r) {
    if (const auto d = p.psi_some_us[r].next(reading(s, kPsiSome[r]), now).perSecond(1e6)) {
      total[r] = std::clamp(*d, 0.0, 1.0);
    }
  }
  // Activity. Every counter of a pod is read at the same times, so the CPU counter's interval
  // is the pod's.
  const RateTracker::Step cpu = p.cpu_ns.next(reading(s, CgroupField::kCpuUsageNs), now);
  const double dt = cpu.seconds;
  p.activity[kCpu] = cpu.perSecond(1e9);
  // Memory activity is usage (anonymous memory and page cache charged to the pod): what fills a
  // node and makes the kernel reclaim. Not the working set: a victim whose cache is reclaimed
  // refaults it, the kernel activates the refaulted pages, and its working set grows while it
  // is being hurt.
  if (s.has(CgroupField::kMemUsageBytes)) {
    p.activity[kMem] = static_cast<double>(s.get(CgroupField::kMemUsageBytes));
  }
  p.activity[kIo] = p.io_bytes.next(ioBytes(s), now).perSecond();

  // Self: the pod's own quota (pod level, or any of its containers) and its own memory limit.
  // The three CFS counters are read as one: one missing makes all three no reading.
  const bool thr_ok = s.has(CgroupField::kCfsPeriods) && s.has(CgroupField::kCfsThrottledPeriods) &&
                      s.has(CgroupField::kCfsThrottledNs);
  const auto cfs = [&](CgroupField f) {
    return thr_ok ? std::optional<std::uint64_t>(s.get(f)) : std::nullopt;
  };
  const auto dp = p.periods.next(cfs(CgroupField::kCfsPeriods), now);
  const auto dthr = p.throttled_periods.next(cfs(CgroupField::kCfsThrottledPeriods), now);
  const auto dns = p.throttled_ns.next(cfs(CgroupField::kCfsThrottledNs), now);
  if (dt > 0 && dp.increase && dthr.increase && *dp.increase > 0) {
    p.throttle_ratio = *dthr.increase / *dp.increase;
  }
  if (const auto f = dns.perSecond(1e9)) p.throttled_fraction = std::clamp(*f, 0.0, 1.0);
  p.near_memory_limit = nearLimit(s);
  std::optional<double> run_delay;
  if (p.child_run_delay_ns && dt > 0) run_delay = *p.child_run_delay_ns / 1e9 / dt;
  if (p.child_throttle_ratio) {
    p.throttle_ratio = std::max(p.throttle_ratio.value_or(0), *p.child_throttle_ratio);
  }
  if (p.child_near_limit) p.near_memory_limit = true;

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

  PodSample& slot = p.slot(pods_.cycle());
  slot = PodSample{};
  slot.cycle = pods_.cycle();
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
}

bool NoisyNeighbors::nearLimit(const CgroupSample& s) const {
  if (!s.has(CgroupField::kMemLimitBytes) || !s.has(CgroupField::kMemUsageBytes)) return false;
  const auto limit = s.get(CgroupField::kMemLimitBytes);
  return limit > 0 && static_cast<double>(s.get(CgroupField::kMemUsageBytes)) >=
                          o_.self_memory_limit_ratio * static_cast<double>(limit);
}

double NoisyNeighbors::minRise(std::size_t r) const {
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
bool NoisyNeighbors::rose(const Pod& p, std::size_t r, int intervals) const {
  const PodSample* now = p.at(pods_.cycle());
  if (now == nullptr || !now->has_activity[r]) return false;
  std::optional<double> least;
  for (int i = 1; i <= intervals && static_cast<std::uint64_t>(i) < pods_.cycle(); ++i) {
    const PodSample* s = p.at(pods_.cycle() - static_cast<std::uint64_t>(i));
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
bool NoisyNeighbors::newHigh(const Pod& p, std::size_t r) const {
  const PodSample* now = p.at(pods_.cycle());
  if (now == nullptr || !now->has_activity[r]) return false;
  const std::size_t window = correlationSamples();
  std::optional<double> older_max;
  for (std::size_t i = static_cast<std::size_t>(o_.victim_n); i < window && i < pods_.cycle();
       ++i) {
    const PodSample* s = p.at(pods_.cycle() - i);
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
std::size_t NoisyNeighbors::episodeSpan(const Pod& p, std::size_t r) const {
  const std::size_t window = correlationSamples();
  // Whole intervals only, so the lead never reaches further back than episode_lead.
  const auto lead = static_cast<std::size_t>(std::max<std::int64_t>(0, o_.episode_lead.count()) /
                                             std::max<std::int64_t>(1, o_.interval.count()));
  std::size_t i = 0;
  std::size_t quiet = 0;
  bool in_episode = true;
  for (; i < window && i < pods_.cycle(); ++i) {
    const PodSample* s = p.at(pods_.cycle() - i);
    const bool elevated = s != nullptr && s->elevated[r];
    if (in_episode && !elevated) in_episode = false;
    if (!in_episode && (elevated || quiet == lead)) break;
    if (!in_episode) ++quiet;
  }
  return i;
}

std::size_t NoisyNeighbors::correlationSamples() const {
  return std::min<std::size_t>(
      capacity_ - 1, static_cast<std::size_t>(std::ceil(seconds(o_.correlation_window) /
                                                        std::max(0.001, seconds(o_.interval)))));
}

// High or not this interval, per resource; the k-of-n history.
void NoisyNeighbors::judge(Pod& p) {
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
      p.slot(pods_.cycle()).elevated[r] = p.elevated[r];
      p.high[r] = p.elevated[r] && !p.own_rise[r];
    }
    p.high_bits[r] = (p.high_bits[r] << 1) | (p.high[r] ? 1U : 0U);
    p.out.baseline[r] =
        p.baseline_n[r] >= o_.baseline_warmup ? std::optional<double>(p.mean[r]) : std::nullopt;
    p.out.victim_score[r] = p.z[r];
  }
}

int NoisyNeighbors::highCount(const Pod& p, std::size_t r) const {
  const std::uint64_t mask =
      o_.victim_n >= 64 ? ~0ULL : ((1ULL << static_cast<unsigned>(o_.victim_n)) - 1);
  return std::popcount(p.high_bits[r] & mask);
}

void NoisyNeighbors::decide(Pod& victim, std::int64_t now_ms, std::vector<Verdict>& verdicts) {
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
      if (cand.get() == &victim || cand->last_seen != pods_.cycle() || !cand->activity[r]) continue;
      const auto latched = std::ranges::find(vs.latched, uid, &LatchedAntagonist::uid);
      const bool still_latched =
          latched != vs.latched.end() && *cand->activity[r] >= 0.5 * latched->activity_when_named;
      const bool candidate = rose(*cand, r, static_cast<int>(window));
      if (!candidate && !still_latched) continue;
      xs_.clear();
      ys_.clear();
      std::optional<double> least;
      for (std::size_t i = 0; i < window && i < pods_.cycle(); ++i) {
        const std::uint64_t cyc = pods_.cycle() - i;
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
      v.evidence.push_back({"cpu_throttle_ratio", interval, *victim.throttle_ratio, std::nullopt});
    }
    v.evidence.push_back({"high_intervals", std::to_string(o_.victim_n) + "_intervals",
                          static_cast<double>(highs), std::nullopt});
    v.antagonists = ranked_;
    verdicts.push_back(std::move(v));
  }
}

// The baseline learns from quiet intervals, so an interference that lasts is not learnt as
// normal. A stall that stays elevated with no one to blame (the pod's own new normal) is learnt
// ten times slower, so it is absorbed in hours rather than minutes.
void NoisyNeighbors::learnBaseline(Pod& p) {
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
}  // namespace nodewarden::detector::detail
