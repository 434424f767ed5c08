// RateTracker: the increase of one monotonic kernel counter (CPU nanoseconds, PSI "some"
// microseconds, CFS periods, I/O bytes, /proc/stat ticks) from one cycle's reading to the next,
// and that increase per second. Every counter the detector differentiates goes through it, so the
// rules below are written once.
//
// What a reader gets wrong: a missing reading is not a zero, and it breaks the chain. It yields no
// increase, and the reading after it has nothing to subtract from either (the file came back,
// perhaps for a cgroup recreated under the same path, and a delta across the gap could mix two
// counters). A caller that means to bridge a gap (the node's /proc/stat, whose ticks are only
// ever compared as a ratio) skips next() for that cycle instead of passing nullopt. A counter
// that went backwards is a reset (a recreated cgroup; a wrapped counter looks the same), never a
// negative rate: no increase that cycle, and the new reading is the next one's base.
#pragma once

#include <cstdint>
#include <optional>

#include "pipeline/snapshot.h"

namespace nodewarden::detector {

class RateTracker {
 public:
  struct Step {
    // The counter's increase since the previous reading; nullopt for the first reading, when
    // this or the previous reading was missing, or when the counter went backwards.
    std::optional<double> increase;
    // Seconds since the previous next(), whether or not either call had a reading; 0 for the
    // first. 0 or less when the clock did not advance: then there is no rate.
    double seconds = 0;

    // increase / unit / seconds (unit: what makes one of the counter's units per second, 1e9
    // for nanoseconds); nullopt without an increase or when no time passed. Divided in that
    // order, so the figures are bit for bit those of the detector before this type existed.
    [[nodiscard]] std::optional<double> perSecond(double unit = 1) const {
      if (!increase || seconds <= 0) return std::nullopt;
      return *increase / unit / seconds;
    }
  };

  // Takes this cycle's reading (nullopt: missing) at now, monotonic seconds, and says what
  // changed since the previous call. Every call moves the base, reading or not.
  Step next(std::optional<std::uint64_t> reading, double now) {
    Step step;
    if (previous_time_) step.seconds = now - *previous_time_;
    if (reading && previous_ && *reading >= *previous_) {
      step.increase = static_cast<double>(*reading - *previous_);
    }
    previous_ = reading;
    previous_time_ = now;
    return step;
  }

 private:
  std::optional<std::uint64_t> previous_;
  std::optional<double> previous_time_;
};

// A cgroup field as a reading for RateTracker: nullopt when this sample does not have it.
inline std::optional<std::uint64_t> reading(const CgroupSample& s, CgroupField f) {
  return s.has(f) ? std::optional<std::uint64_t>(s.get(f)) : std::nullopt;
}

}  // namespace nodewarden::detector
