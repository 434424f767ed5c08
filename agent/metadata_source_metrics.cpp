#include "agent/metadata_source_metrics.h"

namespace nodewarden {

MetadataSourceMetrics::MetadataSourceMetrics(prometheus::Registry& registry)
    : synced_(prometheus::BuildGauge()
                  .Name("nodewarden_metadata_source_synced")
                  .Help("1 once the pod metadata source has had a good answer, else 0.")
                  .Register(registry)),
      staleness_(prometheus::BuildGauge()
                     .Name("nodewarden_metadata_source_staleness_seconds")
                     .Help("Age of the pod metadata source's last good answer (before the first: "
                           "time since it started).")
                     .Register(registry)),
      pods_(prometheus::BuildGauge()
                .Name("nodewarden_metadata_pods")
                .Help("Pods the pod metadata source knows.")
                .Register(registry)) {}

void MetadataSourceMetrics::set(const std::string& source, const MetadataSourceStatus& status) {
  auto it = sources_.find(source);
  if (it == sources_.end()) {
    Gauges g;
    g.synced = &synced_.Add({{"source", source}});
    g.pods = &pods_.Add({{"source", source}});
    it = sources_.emplace(source, g).first;
  }
  Gauges& g = it->second;
  g.synced->Set(status.synced ? 1.0 : 0.0);
  g.pods->Set(static_cast<double>(status.pods));
  if (status.staleness_seconds) {
    if (g.staleness == nullptr) g.staleness = &staleness_.Add({{"source", source}});
    g.staleness->Set(*status.staleness_seconds);
  } else if (g.staleness != nullptr) {
    staleness_.Remove(g.staleness);
    g.staleness = nullptr;
  }
}

}  // namespace nodewarden
