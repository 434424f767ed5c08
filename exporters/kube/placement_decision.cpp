// PlacementDecision: the taint's hysteresis (see placement_decision.h).
#include "exporters/kube/placement_decision.h"

#include <cmath>

namespace nodewarden::kube {

PlacementDecision::Change PlacementDecision::observe(double score, Clock::time_point now) {
  const bool known = std::isfinite(score);
  if (!high_) {
    below_since_.reset();
    if (!known || score < t_.on_score) {
      above_since_.reset();
      return Change::kNone;
    }
    if (!above_since_) above_since_ = now;
    if (now - *above_since_ < t_.on_hold) return Change::kNone;
    high_ = true;
    on_since_ = now;
    above_since_.reset();
    return Change::kOn;
  }
  above_since_.reset();
  if (!known || score >= t_.off_score) {
    below_since_.reset();
    return Change::kNone;
  }
  if (!below_since_) below_since_ = now;
  if (now - *below_since_ < t_.off_hold || now - on_since_ < t_.min_taint_duration) {
    return Change::kNone;
  }
  high_ = false;
  below_since_.reset();
  return Change::kOff;
}

void PlacementDecision::adopt(bool high, Clock::time_point now) {
  if (high == high_) return;
  high_ = high;
  on_since_ = now;
  above_since_.reset();
  below_since_.reset();
}

}  // namespace nodewarden::kube
