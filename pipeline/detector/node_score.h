// NodeScore: the detector's per-node part. The node's saturation, headroom and PSI pressure per
// resource from its own sample (/proc/stat, /proc/meminfo, /proc/pressure), and its interference
// score, victim and antagonist counts and one-line summary from the cycle's verdicts.
//
// What a reader gets wrong: io has no utilisation figure in /proc, so io saturation is the node's
// io pressure; and a cycle without /proc/stat keeps the previous CPU ticks, so the next reading
// is compared over the longer span (a ratio of ticks needs no clock) rather than not at all.
#pragma once

#include <array>
#include <vector>

#include "pipeline/detector/detector_parts.h"
#include "pipeline/detector/rate_tracker.h"

namespace nodewarden::detector::detail {

class NodeScore {
 public:
  // One cycle: node is this cycle's sample, verdicts all this cycle's verdicts, now monotonic
  // seconds. Writes every field of out.
  void update(const NodeSample& node, const std::vector<Verdict>& verdicts, double now,
              NodeSignals& out);

 private:
  RateTracker cpu_ticks_;   // all modes but guest
  RateTracker idle_ticks_;  // idle and iowait
  std::array<RateTracker, kResources> psi_some_us_;
};

}  // namespace nodewarden::detector::detail
