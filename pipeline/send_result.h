// SendResult: a destination's answer to one send, shared by the log path (LogExporter) and remote
// write (MetricExporter). The exporter maps its protocol onto it; the shipper or sender that called
// it owns what follows (retries, backoff, splitting, counting).
//
// What a reader gets wrong: kDrop is final. The batch is acknowledged and counted as lost, never
// sent again, since resending bytes the peer called malformed cannot help and would hold up every
// batch behind it.
#pragma once

#include <chrono>
#include <string>

namespace nodewarden {

enum class SendStatus {
  kOk,        // accepted (2xx): acknowledge the batch
  kRetry,     // 429, 5xx, connection error, timeout: send the same batch again later
  kDrop,      // other 4xx (400 above all): never resend; count and log once
  kTooLarge,  // 413: split the batch and send the halves
};

struct SendResult {
  SendStatus status = SendStatus::kRetry;
  int http_status = 0;                       // 0 when no response came
  std::string message;                       // the peer's reply (truncated) or the transport error
  std::chrono::milliseconds retry_after{0};  // from a Retry-After header, when given
};

}  // namespace nodewarden
