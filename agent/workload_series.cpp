#include "agent/workload_series.h"

#include <prometheus/text_serializer.h>

namespace nodewarden {

void WorkloadSeries::publish() {
  published_.publish([this](Families& families) { families = registry_.Collect(); });
}

void WorkloadSeries::render(const Families& families,
                            const std::function<void(std::string_view)>& sink) {
  if (families.empty()) return;
  sink(prometheus::TextSerializer().Serialize(families));
}

}  // namespace nodewarden
