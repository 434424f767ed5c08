// PlacementDecision: whether this node should carry the noisy-neighbor taint (and report its
// condition as True), from the detector's interference score over time. Pure and single-threaded:
// the caller passes the time of every reading, so tests drive it with a fake clock.
//
// What a reader gets wrong: the two thresholds alone do not stop flapping; the holds do. The state
// turns on only after every reading for on_hold was >= on_score, and off only after every reading
// for off_hold was < off_score AND it has been on for min_taint_duration. One reading on the wrong
// side restarts the hold, and a reading between the thresholds (or a missing one, NaN) counts for
// neither side.
#pragma once

#include <chrono>
#include <optional>

namespace nodewarden::kube {

struct PlacementThresholds {
  double on_score = 0.3;
  double off_score = 0.1;
  std::chrono::milliseconds on_hold{30'000};
  std::chrono::milliseconds off_hold{120'000};
  std::chrono::milliseconds min_taint_duration{300'000};
};

class PlacementDecision {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Change { kNone, kOn, kOff };

  explicit PlacementDecision(PlacementThresholds thresholds) : t_(thresholds) {}

  // One reading of the interference score at `now` (non-decreasing across calls). Returns the
  // transition it caused, if any.
  Change observe(double score, Clock::time_point now);
  // Takes on a state found elsewhere (the taint already on the node when the agent starts, left by
  // the previous pod of a rollout): on counts as turned on at `now`, so min_taint_duration and
  // off_hold still apply before it comes off.
  void adopt(bool high, Clock::time_point now);

  [[nodiscard]] bool high() const { return high_; }
  [[nodiscard]] const PlacementThresholds& thresholds() const { return t_; }
  void setThresholds(const PlacementThresholds& thresholds) { t_ = thresholds; }

 private:
  PlacementThresholds t_;
  bool high_ = false;
  Clock::time_point on_since_{};
  std::optional<Clock::time_point> above_since_;  // first of the unbroken run >= on_score
  std::optional<Clock::time_point> below_since_;  // first of the unbroken run < off_score
};

}  // namespace nodewarden::kube
