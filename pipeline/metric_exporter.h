// MetricExporter: the remote-write destination. send() is called by the MetricSender on its own
// thread with the metric spool's oldest request and answers how it went (SendStatus, shared with
// the log path); the sender owns retries and backoff.
#pragma once

#include <string_view>

#include "pipeline/log_exporter.h"
#include "pipeline/metric_write_batch.h"

namespace nodewarden {

class MetricExporter {
 public:
  virtual ~MetricExporter() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  // Blocking; bounded by the exporter's own timeout. Never throws, never answers kTooLarge.
  virtual SendResult send(const MetricWriteBatch& batch) = 0;
  // Called from another thread at shutdown: a send in flight gives up promptly (kRetry).
  virtual void cancel() {}
};

}  // namespace nodewarden
