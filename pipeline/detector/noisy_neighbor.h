// NoisyNeighbors: the detector's per-pod part. Each pod's stall by cause (PSI "some" minus what
// its own quota or limit explains), its baseline, whether it is a victim this interval (high,
// k of n, onsets) and which co-located pods are named as antagonists (rise, then correlation).
// The method is described at the top of detector.h.
//
// What a reader gets wrong: one cycle runs in a fixed order, and each step reads what the one
// before wrote for every pod: all pods' stalls first (update), then high or not (judge, which
// needs the pod's own rise), then verdicts (decide, which ranks the other pods' activity of this
// same cycle), and only then the baselines learn (so an interval is judged against a baseline
// that has not seen it). A verdict's antagonist stays latched while it keeps half the activity
// it had when named: a steady antagonist makes both series flat, and flat series do not correlate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pipeline/detector/cgroup_table.h"  // and detector_parts.h
#include "pipeline/detector/detector.h"

namespace nodewarden::detector::detail {

class NoisyNeighbors {
 public:
  // Holds options by reference (see detector_parts.h); what sizes the rings is read here once.
  explicit NoisyNeighbors(const DetectorOptions& options);
  ~NoisyNeighbors();

  void beginCycle() { pods_.beginCycle(); }
  // A pod's cgroup this cycle (s.isPod()), before any of its containers. False when it is not
  // tracked: new, and admit is false (the Detector's max_containers).
  bool seePod(const CgroupSample& s, bool admit);
  // A container's cgroup this cycle: what only its containers show (their own quotas, limits,
  // threads) is folded into its pod, if the pod was seen this cycle.
  void seeContainer(const CgroupSample& s, const ContainerInterval& interval);
  // After every sample of the cycle: stalls, victims and their verdicts (appended to verdicts),
  // then the baselines. now is monotonic seconds, now_ms the wall clock a verdict starts at.
  void conclude(double now, std::int64_t now_ms, std::vector<Verdict>& verdicts);
  // Drops the pods not seen for kForgetAfterCycles cycles.
  void forget();
  // The signals of this cycle's pods into out, in no order; reuses out's strings.
  void publish(std::vector<PodSignals>& out);
  [[nodiscard]] std::size_t size() const { return pods_.size(); }

 private:
  struct Pod;

  void update(Pod& p, double now);
  [[nodiscard]] bool nearLimit(const CgroupSample& s) const;
  [[nodiscard]] double minRise(std::size_t r) const;
  [[nodiscard]] bool rose(const Pod& p, std::size_t r, int intervals) const;
  [[nodiscard]] bool newHigh(const Pod& p, std::size_t r) const;
  [[nodiscard]] std::size_t episodeSpan(const Pod& p, std::size_t r) const;
  [[nodiscard]] std::size_t correlationSamples() const;
  void judge(Pod& p);
  [[nodiscard]] int highCount(const Pod& p, std::size_t r) const;
  void decide(Pod& victim, std::int64_t now_ms, std::vector<Verdict>& verdicts);
  void learnBaseline(Pod& p);

  const DetectorOptions& o_;
  std::size_t capacity_ = 0;  // samples in a pod's ring: the correlation window's
  CgroupTable<Pod> pods_;
  // Scratch, reused every cycle.
  std::vector<double> xs_;
  std::vector<double> ys_;
  std::vector<AntagonistRank> ranked_;
};

}  // namespace nodewarden::detector::detail
