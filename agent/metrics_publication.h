// MetricsPublication: the one path by which series reach /metrics and remote write. Its turn in
// the collection cycle (a SnapshotConsumer) publishes a copy of the finished snapshot; a
// PublishedCycle then names everything one exposition shows (that snapshot, the detector's state,
// the pod and Job series) and render() writes it: a scrape renders the latest, remote write the
// one of its cycle, through the same function, so both carry the same series.
//
// /metrics/cadvisor renders the same published cycle with Exposition::kCadvisor and nothing else:
// cAdvisor's series without the node_*, detector, pod, Job and nodewarden_* ones.
//
// What a reader gets wrong: only the agent's own nodewarden_* series (SelfMetrics' registry) are
// read live, at render time, not from the published cycle. They describe the agent (requests
// served, bytes spooled, errors) rather than the node, a scrape wants them current, and many are
// set from other threads (the HTTP server, the senders) that have no cycle to publish into.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "agent/detector_stage.h"
#include "agent/publication.h"
#include "agent/remote_write_pipeline.h"
#include "agent/workload_series.h"
#include "exporters/prometheus/text_renderer.h"
#include "pipeline/interfaces.h"
#include "pipeline/snapshot.h"

namespace nodewarden {

// What one exposition shows. Each part is immutable once published; a null part shows nothing.
struct PublishedCycle {
  std::shared_ptr<const OwnedSnapshot> snapshot;
  std::shared_ptr<const detector::DetectorState> detector;
  std::shared_ptr<const WorkloadSeries::Families> workload;
};

class MetricsPublication final : public SnapshotConsumer {
 public:
  // detector may be null (detector off); cycles (nodewarden_collection_cycles_total) may be null.
  // All must outlive this. unknown_image is the image label of a container exported without a
  // known one (collectors.pods.unknown_image); unknown_images, when not null, is set to how many
  // containers of each published cycle got it.
  MetricsPublication(TextRenderer& renderer, prometheus::Registry& self,
                     const WorkloadSeries& workload, const DetectorStage* detector,
                     prometheus::Counter* cycles, std::string unknown_image = {},
                     prometheus::Gauge* unknown_images = nullptr);

  // Makes a copy of the snapshot the latest, then counts the cycle: a reader that sees the count N
  // sees cycle N or a later one, and remote write's render of cycle N (after this) shows N.
  // Collection thread.
  void consume(const Snapshot& snapshot) override;

  // The latest of each part. Any thread.
  [[nodiscard]] PublishedCycle latest() const;

  // Writes the exposition of `cycle` through sink, in chunks: the snapshot's series, the
  // detector's, the pod and Job series, then the agent's own. Returns the snapshot's series
  // count. Any thread; concurrent renders are independent. Exposition::kCadvisor writes only the
  // snapshot's cAdvisor series (/metrics/cadvisor).
  std::size_t render(const PublishedCycle& cycle, const std::function<void(std::string_view)>& sink,
                     Exposition exposition = Exposition::kFull) const;

 private:
  TextRenderer& renderer_;
  prometheus::Registry& self_;
  const WorkloadSeries& workload_;
  const DetectorStage* detector_;
  prometheus::Counter* cycles_;
  std::string unknown_image_;
  prometheus::Gauge* unknown_images_;
  Publication<OwnedSnapshot> snapshots_;
};

// Remote write's turn in the cycle: hands the cycle just published to the pipeline, which renders
// and encodes it on its encoder thread. After MetricsPublication in the cycle.
class RemoteWriteStage final : public SnapshotConsumer {
 public:
  RemoteWriteStage(const MetricsPublication& publication, RemoteWritePipeline& pipeline)
      : publication_(publication), pipeline_(pipeline) {}

  void consume(const Snapshot& snapshot) override;

 private:
  const MetricsPublication& publication_;
  RemoteWritePipeline& pipeline_;
};

}  // namespace nodewarden
