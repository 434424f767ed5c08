// MetadataSourceMetrics: how each pod metadata source is doing, for an alert that fires before
// names go missing:
//   nodewarden_metadata_source_synced{source}             1 once the source has had a good answer
//   nodewarden_metadata_source_staleness_seconds{source}  the age of its last good answer
//   nodewarden_metadata_pods{source}                      the pods it knows
// with source "runtime" (the runtime's state on the node), "kubelet" or "apiserver".
//
// What a reader gets wrong: a source that fails keeps answering from its last good list, so
// synced stays 1 and staleness is what grows; and the runtime's state is read from the node's own
// files at every cycle, so it has no staleness series at all.
#pragma once

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>

namespace nodewarden {

struct MetadataSourceStatus {
  bool synced = false;
  std::optional<double> staleness_seconds;  // nullopt: the source has no such notion
  std::size_t pods = 0;
};

class MetadataSourceMetrics {
 public:
  explicit MetadataSourceMetrics(prometheus::Registry& registry);
  // Sets the source's gauges (made at its first call).
  void set(const std::string& source, const MetadataSourceStatus& status);

 private:
  struct Gauges {
    prometheus::Gauge* synced = nullptr;
    prometheus::Gauge* staleness = nullptr;  // null while the source has no staleness
    prometheus::Gauge* pods = nullptr;
  };
  prometheus::Family<prometheus::Gauge>& synced_;
  prometheus::Family<prometheus::Gauge>& staleness_;
  prometheus::Family<prometheus::Gauge>& pods_;
  std::map<std::string, Gauges, std::less<>> sources_;
};

}  // namespace nodewarden
