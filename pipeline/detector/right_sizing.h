// RightSizing: the detector's per-container part. Usage windows (CPU cores and working set over
// the short, mid and long windows), the throttle ratio, and the right-sizing recommendation: a
// decaying histogram of CPU samples and one of per-interval memory peaks (memory_peak_interval),
// each read at its percentile and given the margin, next to what the pod asked for.
//
// What a reader gets wrong: a container's memory recommendation includes the peak of the interval
// still open (percentileWith), so a container younger than memory_peak_interval has one; and a
// recommendation waits for min_recommendation_samples CPU samples, memory's included.
#pragma once

#include <cstddef>
#include <vector>

#include "pipeline/detector/cgroup_table.h"  // and detector_parts.h
#include "pipeline/detector/detector.h"

namespace nodewarden::detector::detail {

class RightSizing {
 public:
  // options is held by reference (see detector_parts.h); the windows and interval, which size
  // each container's ring, are read here once.
  explicit RightSizing(const DetectorOptions& options);
  ~RightSizing();
  void beginCycle() { containers_.beginCycle(); }

  // A container's cgroup this cycle (s.isPod() is false). nullptr when it is not tracked: new,
  // and admit is false (the Detector's max_containers).
  const ContainerInterval* update(const CgroupSample& s, double now, bool admit);
  // Drops the containers not seen for kForgetAfterCycles cycles.
  void forget();
  // The signals of this cycle's containers into out, in no order; reuses out's strings.
  void publish(std::vector<ContainerSignals>& out, double now);
  [[nodiscard]] std::size_t size() const { return containers_.size(); }

 private:
  struct Container;

  void fill(Container& c, double now);

  const DetectorOptions& o_;
  std::size_t capacity_ = 0;  // samples in a container's ring: the long window's
  CgroupTable<Container> containers_;
  // Scratch, reused every cycle.
  std::vector<double> cpu_scratch_;
  std::vector<double> ws_scratch_;
};

}  // namespace nodewarden::detector::detail
