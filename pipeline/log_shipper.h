// LogShipper: the one thread that moves batches from the spool to a destination. It sends the
// spool's oldest batch, and on the exporter's answer acknowledges it (OK), waits and sends the
// same batch again (RETRY: exponential backoff with equal jitter, or the peer's Retry-After),
// drops it for good (DROP: counted, logged once per reason), or splits it in halves (TOO_LARGE).
//
// What a reader gets wrong: order. Batches leave the spool strictly in order and a batch is
// never skipped while it is being retried, so each stream reaches Loki in order even across
// outages and restarts; the price is that one poisoned batch delays the rest until it is
// answered, which is why a 4xx other than 413/429 is dropped rather than retried. Errors are
// counted under the exporter's name (nodewarden_errors_total{component="loki"} or "file").
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "pipeline/log_batch_encoder.h"
#include "pipeline/log_exporter.h"
#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"
#include "pipeline/wake_signal.h"

namespace nodewarden {

struct LogShipperOptions {
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  std::chrono::milliseconds idle_poll{1000};  // how often an empty spool is looked at again
  // Called on the shipper's thread each time a batch has left the spool (acknowledged, dropped):
  // a producer waiting for the spool's consumer (Spool::waitForConsumer) can go on.
  std::function<void()> on_batch_done;
  // Reads the bodies of spooled batches (LogBatch::encoded_body) back into entries, to split a
  // batch the destination refused as too large. Empty: such a batch cannot be split and is dropped.
  std::shared_ptr<const LogBatchEncoder> body_decoder;
  // Labels added to every series of this shipper (a Loki tenant's `tenant`). With any, the series
  // are removed when the shipper goes (a closed tenant leaves none behind).
  std::map<std::string, std::string> metric_labels;
};

class LogShipper {
 public:
  LogShipper(LogShipperOptions options, Spool& spool, LogExporter& exporter,
             prometheus::Registry& registry, ErrorReporter& errors);
  ~LogShipper();
  LogShipper(const LogShipper&) = delete;
  LogShipper& operator=(const LogShipper&) = delete;

  void start();
  // Wakes the thread: a batch was appended.
  void notify();
  // Stops the thread, waiting at most grace for a send in flight (its batch stays in the spool
  // and is sent after the next start). Returns whether the thread ended within grace.
  bool stop(std::chrono::milliseconds grace);

 private:
  void run();
  // Sends one batch until it is acknowledged, dropped, or the shipper stops. Returns false when
  // stopped before the batch was done.
  bool deliver(const LogBatch& batch);

  LogShipperOptions options_;
  Spool& spool_;
  LogExporter& exporter_;
  ErrorReporter& errors_;
  std::mt19937_64 rng_{std::random_device{}()};

  WakeSignal signal_;
  std::atomic<bool> finished_{false};
  std::thread thread_;

  prometheus::Counter* lines_sent_ = nullptr;
  prometheus::Counter* bytes_sent_ = nullptr;
  prometheus::Counter* batches_sent_ = nullptr;
  prometheus::Counter* dropped_rejected_ = nullptr;
  prometheus::Counter* dropped_too_large_ = nullptr;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Gauge* backoff_seconds_ = nullptr;
  // With metric_labels: every series made, to remove at the end.
  std::vector<std::pair<prometheus::Family<prometheus::Counter>*, prometheus::Counter*>> counters_;
  prometheus::Family<prometheus::Gauge>* backoff_family_ = nullptr;
  prometheus::Labels labels(prometheus::Labels base) const;
};

}  // namespace nodewarden
