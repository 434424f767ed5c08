// LogExporter: one log destination (exporters/loki, exporters/file). send() is called by the
// shipper on its own thread with the spool's oldest batch and answers how it went; the shipper
// owns retries, backoff and splitting, and counts the errors under name().
//
// What a reader gets wrong: a destination with a wire format that can be built line by line
// encodes its batches itself, but not in send(): batchEncoder() gives the batcher an encoder, so
// each batch is encoded once, before the spool, and send() gets the body it wrote (or, for a batch
// spooled without it, the entries). send() must take both.
#pragma once

#include <memory>
#include <string_view>

#include "pipeline/log_batch_encoder.h"
#include "pipeline/log_record.h"
#include "pipeline/send_result.h"

namespace nodewarden {

class LogExporter {
 public:
  virtual ~LogExporter() = default;
  // Names the destination in the shipper's metrics and in nodewarden_errors_total's component.
  [[nodiscard]] virtual std::string_view name() const = 0;
  // A new encoder for the batcher, when this destination wants its batches encoded as they are
  // made (the default: no, send() gets the entries). Called once, before the batcher exists; the
  // encoder is the batcher's (another thread from send()'s).
  [[nodiscard]] virtual std::unique_ptr<LogBatchEncoder> batchEncoder() const { return nullptr; }
  // Blocking; bounded by the exporter's own timeouts. Never throws.
  virtual SendResult send(const LogBatch& batch) = 0;
  // Called from another thread at shutdown: a send in flight should give up promptly (answering
  // kRetry; the batch stays in the spool). Sends after cancel() may fail at once.
  virtual void cancel() {}
};

}  // namespace nodewarden
