// DetectorStage: the detector's turn in the collection cycle, as a SnapshotConsumer. It feeds the
// finished snapshot to the detector, publishes a copy of the detector's state for the readers on
// other threads (/metrics, remote write, /signals), hands the node's signals to the placement feed
// and sets the detector's own gauges.
//
// What a reader gets wrong: the state is published, not read from the detector: /metrics and
// /signals never wait for the collection thread, and a reader holds the state of one cycle
// however long it takes (see agent/publication.h). The detector itself stays the agent's: a
// reload retunes it, and the exposition reads its options.
#pragma once

#include <prometheus/gauge.h>

#include <memory>

#include "agent/publication.h"
#include "exporters/kube/placement_feed.h"
#include "pipeline/detector/detector.h"
#include "pipeline/interfaces.h"

namespace nodewarden {

// The detector's gauges in the agent's own registry.
struct DetectorStageGauges {
  prometheus::Gauge* duration = nullptr;  // nodewarden_collection_duration_seconds{collector}
  prometheus::Gauge* pods = nullptr;
  prometheus::Gauge* containers = nullptr;
  prometheus::Gauge* untracked = nullptr;
};

class DetectorStage final : public SnapshotConsumer {
 public:
  DetectorStage(detector::Detector& detector, DetectorStageGauges gauges);

  // The feed that gets the node's signals each cycle; null: none. Before the first cycle.
  void setPlacement(kube::PlacementFeed* placement) { placement_ = placement; }

  void consume(const Snapshot& snapshot) override;

  // The state of the latest cycle; null before the first. Any thread.
  [[nodiscard]] std::shared_ptr<const detector::DetectorState> latest() const {
    return published_.latest();
  }
  // The detector's options, for rendering its state. Retuned by a reload on the collection thread.
  [[nodiscard]] const detector::DetectorOptions& options() const { return detector_.options(); }

 private:
  detector::Detector& detector_;
  DetectorStageGauges gauges_;
  kube::PlacementFeed* placement_ = nullptr;
  Publication<detector::DetectorState> published_;
};

}  // namespace nodewarden
