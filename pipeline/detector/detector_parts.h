// What the detector's parts (right_sizing, noisy_neighbor, node_score) share with each other and
// with the Detector that runs them. Nothing outside pipeline/detector/ includes this.
//
// What a reader gets wrong: the parts hold a reference to the Detector's DetectorOptions, not a
// copy, so that Detector::retune() reaches them all at once; the Detector outlives its parts.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "pipeline/detector/signals.h"
#include "pipeline/snapshot.h"

namespace nodewarden::detector::detail {

// Indices of the per-resource arrays (the order of Resource).
inline constexpr std::size_t kCpu = 0;
inline constexpr std::size_t kMem = 1;
inline constexpr std::size_t kIo = 2;

// A pod or container not seen for this many cycles is forgotten (its cgroup is gone).
inline constexpr std::uint64_t kForgetAfterCycles = 3;

inline double seconds(std::chrono::milliseconds d) {
  return std::chrono::duration<double>(d).count();
}

// What one container's counters said over the last interval that its pod's self-stall needs
// (a container's own quota or threads are not visible in the pod's cgroup).
struct ContainerInterval {
  std::optional<double> throttled_ratio;  // throttled CFS periods / periods
  std::optional<double> run_delay_ns;     // run-queue delay of its tasks
};

}  // namespace nodewarden::detector::detail
