// MetricExporter: the remote-write destination. send() is called by the MetricSender on its own
// thread with the metric spool's oldest request and answers how it went (SendStatus, shared with
// the log path); the sender owns retries and backoff.
//
// What a reader gets wrong: this interface has one production implementation
// (exporters/remote_write's RemoteWriteExporter) and is kept on purpose. MetricSender lives in
// pipeline/, which may not know an exporter, so it can only reach one through an interface; and
// the sender's retry, backoff and drop policy is tested against a scripted exporter
// (tests/unit/exporters/remote_write) without an HTTP peer. Folding the sender into the exporter
// instead would put retry policy in exporters/, which answer and never retry.
#pragma once

#include <string_view>

#include "pipeline/metric_write_batch.h"
#include "pipeline/send_result.h"

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
