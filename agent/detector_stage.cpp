#include "agent/detector_stage.h"

#include <chrono>

namespace nodewarden {

DetectorStage::DetectorStage(detector::Detector& detector, DetectorStageGauges gauges)
    : detector_(detector), gauges_(gauges) {}

void DetectorStage::consume(const Snapshot& snapshot) {
  const auto start = std::chrono::steady_clock::now();
  detector_.update(snapshot, std::chrono::duration<double>(start.time_since_epoch()).count());
  published_.publish([&](detector::DetectorState& state) {
    state = detector_.state();
    if (placement_ != nullptr) {
      placement_->update(state.node_signals, std::chrono::steady_clock::now());
    }
  });
  const auto st = detector_.stats();
  gauges_.pods->Set(static_cast<double>(st.pods));
  gauges_.containers->Set(static_cast<double>(st.containers));
  gauges_.untracked->Set(static_cast<double>(st.dropped));
  gauges_.duration->Set(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace nodewarden
