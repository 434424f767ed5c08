// MetricSender: the one thread that moves remote-write requests from the metric spool to the
// destination, like Prometheus' own queue manager: the oldest request first, and on the answer
// acknowledged (OK), sent again after exponential backoff with equal jitter or the peer's
// Retry-After (RETRY: 429, 5xx, no answer), or dropped for good (DROP: any other 4xx; counted by
// status, logged once per status and interval).
//
// What a reader gets wrong: requests are sent strictly in order and one being retried holds the
// rest back. Receivers reject samples older than a series' newest one, so sending a later cycle
// first would turn a short outage into a permanent gap; holding back keeps every cycle.
#pragma once

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "pipeline/metric_exporter.h"
#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"
#include "pipeline/wake_signal.h"

namespace nodewarden {

struct MetricSenderOptions {
  std::chrono::milliseconds initial_backoff{30};  // Prometheus' min_backoff
  std::chrono::milliseconds max_backoff{5000};    // Prometheus' max_backoff
  std::chrono::milliseconds idle_poll{1000};
};

class MetricSender {
 public:
  MetricSender(MetricSenderOptions options, MetricSpool& spool, MetricExporter& exporter,
               prometheus::Registry& registry, ErrorReporter& errors);
  ~MetricSender();
  MetricSender(const MetricSender&) = delete;
  MetricSender& operator=(const MetricSender&) = delete;

  void start();
  void notify();  // a request was appended
  // Stops the thread (a send in flight is cancelled; its request stays in the spool).
  void stop();

 private:
  void run();
  bool deliver(const MetricWriteBatch& batch);  // false when stopped first

  MetricSenderOptions options_;
  MetricSpool& spool_;
  MetricExporter& exporter_;
  ErrorReporter& errors_;
  std::mt19937_64 rng_{std::random_device{}()};

  WakeSignal signal_;
  std::thread thread_;

  prometheus::Counter* samples_sent_ = nullptr;
  prometheus::Counter* requests_sent_ = nullptr;
  prometheus::Counter* requests_failed_ = nullptr;
  prometheus::Counter* requests_retried_ = nullptr;
  prometheus::Counter* dropped_4xx_ = nullptr;
  prometheus::Gauge* backoff_seconds_ = nullptr;
  prometheus::Gauge* last_success_ = nullptr;
};

}  // namespace nodewarden
