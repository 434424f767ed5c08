#include "agent/metrics_publication.h"

#include <prometheus/text_serializer.h>

#include <string>

#include "exporters/prometheus/signal_renderer.h"

namespace nodewarden {

MetricsPublication::MetricsPublication(TextRenderer& renderer, prometheus::Registry& self,
                                       const WorkloadSeries& workload,
                                       const DetectorStage* detector, prometheus::Counter* cycles)
    : renderer_(renderer), self_(self), workload_(workload), detector_(detector), cycles_(cycles) {}

void MetricsPublication::consume(const Snapshot& snapshot) {
  snapshots_.publish([&](OwnedSnapshot& owned) { owned.copyFrom(snapshot); });
  if (cycles_ != nullptr) cycles_->Increment();
}

PublishedCycle MetricsPublication::latest() const {
  return PublishedCycle{snapshots_.latest(), detector_ != nullptr ? detector_->latest() : nullptr,
                        workload_.latest()};
}

std::size_t MetricsPublication::render(const PublishedCycle& cycle,
                                       const std::function<void(std::string_view)>& sink) const {
  std::size_t n = 0;
  if (cycle.snapshot) n = renderer_.render(cycle.snapshot->view(), sink);
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
