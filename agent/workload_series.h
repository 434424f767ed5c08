// WorkloadSeries: the series about the node's pods and Jobs (nodewarden_pod_info,
// nodewarden_pod_labels, nodewarden_job_*), kept in a prometheus-cpp registry of their own and
// published like the snapshot: /metrics and remote write read the published set, never the
// registry while a writer changes it.
//
// What a reader gets wrong: the registry is only where PodMetadataMetrics and JobMetrics keep
// their families (counters, a histogram, gauges, with their removal rules); it is not an output.
// The series leave only through publish(), on the collection thread, when a writer changed them
// (after a cycle's pods, after a Job poll that recorded or aged something), so a remote-write cycle
// carries the set of its own cycle, and a steady cycle costs nothing here.
#pragma once

#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "agent/publication.h"

namespace nodewarden {

class WorkloadSeries {
 public:
  using Families = std::vector<prometheus::MetricFamily>;

  // Where the writers register their families. Collection thread only.
  [[nodiscard]] prometheus::Registry& registry() { return registry_; }

  // Takes the registry's series as they are now and makes them the latest. Collection thread only;
  // called by a writer after it changed them.
  void publish();
  // The latest published set; null before the first publish(). Any thread.
  [[nodiscard]] std::shared_ptr<const Families> latest() const { return published_.latest(); }

  // Writes families in the text format 0.0.4, as a scrape of the registry would show them.
  static void render(const Families& families, const std::function<void(std::string_view)>& sink);

 private:
  prometheus::Registry registry_;
  Publication<Families> published_;
};

}  // namespace nodewarden
