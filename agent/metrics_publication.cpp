#include "agent/metrics_publication.h"

#include <prometheus/text_serializer.h>

#include <string>
#include <utility>

#include "exporters/prometheus/signal_renderer.h"

namespace nodewarden {

MetricsPublication::MetricsPublication(TextRenderer& renderer, prometheus::Registry& self,
                                       const WorkloadSeries& workload,
                                       const DetectorStage* detector, prometheus::Counter* cycles,
                                       std::string unknown_image, prometheus::Gauge* unknown_images)
    : renderer_(renderer),
      self_(self),
      workload_(workload),
      detector_(detector),
      cycles_(cycles),
      unknown_image_(std::move(unknown_image)),
      unknown_images_(unknown_images) {}

void MetricsPublication::consume(const Snapshot& snapshot) {
  // The placeholder goes into the published copy only: the collector's samples (and the detector,
  // /signals, Job outcomes that read them) keep image="" for "not known".
  std::size_t unknown = 0;
  snapshots_.publish([&](OwnedSnapshot& owned) {
    owned.copyFrom(snapshot);
    unknown = owned.fillUnknownImages(unknown_image_);
  });
  if (unknown_images_ != nullptr) unknown_images_->Set(static_cast<double>(unknown));
  if (cycles_ != nullptr) cycles_->Increment();
}

PublishedCycle MetricsPublication::latest() const {
  return PublishedCycle{snapshots_.latest(), detector_ != nullptr ? detector_->latest() : nullptr,
                        workload_.latest()};
}

std::size_t MetricsPublication::render(const PublishedCycle& cycle,
                                       const std::function<void(std::string_view)>& sink,
                                       Exposition exposition) const {
  std::size_t n = 0;
  if (cycle.snapshot) n = renderer_.render(cycle.snapshot->view(), sink, exposition);
  if (exposition == Exposition::kCadvisor) return n;
  if (cycle.detector && detector_ != nullptr) {
    std::string chunk;
    renderDetectorState(*cycle.detector, detector_->options(), chunk,
                        [&](std::string& text) { sink(text); });
  }
  if (cycle.workload) WorkloadSeries::render(*cycle.workload, sink);
  sink(prometheus::TextSerializer().Serialize(self_.Collect()));
  return n;
}

void RemoteWriteStage::consume(const Snapshot& snapshot) {
  MetricCycle cycle;
  cycle.timestamp_ms = snapshot.timestamp_ms;
  cycle.render = [&publication = publication_, published = publication_.latest()](
                     const std::function<void(std::string_view)>& sink) {
    publication.render(published, sink);
  };
  pipeline_.enqueue(std::move(cycle));
}

}  // namespace nodewarden
