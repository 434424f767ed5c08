#include "pipeline/metric_sender.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "pipeline/retry_backoff.h"

namespace nodewarden {
namespace {
constexpr std::string_view kComponent = "remote_write";
}  // namespace

MetricSender::MetricSender(MetricSenderOptions options, MetricSpool& spool,
                           MetricExporter& exporter, prometheus::Registry& registry,
                           ErrorReporter& errors)
    : options_(options), spool_(spool), exporter_(exporter), errors_(errors) {
  samples_sent_ = &prometheus::BuildCounter()
                       .Name("nodewarden_remote_write_samples_sent_total")
                       .Help("Samples the remote-write destination accepted.")
                       .Register(registry)
                       .Add({});
  requests_sent_ = &prometheus::BuildCounter()
                        .Name("nodewarden_remote_write_requests_sent_total")
                        .Help("Remote-write requests the destination accepted.")
                        .Register(registry)
                        .Add({});
  requests_failed_ =
      &prometheus::BuildCounter()
           .Name("nodewarden_remote_write_requests_failed_total")
           .Help("Remote-write attempts that were not accepted (retried or dropped).")
           .Register(registry)
           .Add({});
  requests_retried_ = &prometheus::BuildCounter()
                           .Name("nodewarden_remote_write_requests_retried_total")
                           .Help("Remote-write requests sent again after 429, 5xx or no answer.")
                           .Register(registry)
                           .Add({});
  dropped_4xx_ =
      &prometheus::BuildCounter()
           .Name("nodewarden_remote_write_samples_dropped_total")
           .Help("Samples dropped, by reason (http_4xx, spool_full, spool_append_failed).")
           .Register(registry)
           .Add({{"reason", "http_4xx"}});
  backoff_seconds_ = &prometheus::BuildGauge()
                          .Name("nodewarden_remote_write_backoff_seconds")
                          .Help("Current wait before the next retry (0 when sending normally).")
                          .Register(registry)
                          .Add({});
  last_success_ = &prometheus::BuildGauge()
                       .Name("nodewarden_remote_write_last_success_timestamp_seconds")
                       .Help("When the destination last accepted a request (Unix time).")
                       .Register(registry)
                       .Add({});
}

MetricSender::~MetricSender() { stop(); }

void MetricSender::start() {
  signal_.reset();
  thread_ = std::thread([this] { run(); });
}

void MetricSender::notify() { signal_.notify(); }

void MetricSender::stop() {
  if (!thread_.joinable()) return;
  signal_.stop();
  exporter_.cancel();
  thread_.join();
}

void MetricSender::run() {
  while (!signal_.stopping()) {
    const std::shared_ptr<const MetricWriteBatch> batch = spool_.front();
    if (!batch) {
      signal_.waitForWork(options_.idle_poll);
      continue;
    }
    if (!deliver(*batch)) break;
    spool_.acknowledge(batch->sequence);
  }
}

bool MetricSender::deliver(const MetricWriteBatch& batch) {
  auto backoff = options_.initial_backoff;
  for (;;) {
    if (signal_.stopping()) return false;
    const SendResult r = exporter_.send(batch);
    if (r.status == SendStatus::kOk) {
      backoff_seconds_->Set(0);
      samples_sent_->Increment(static_cast<double>(batch.samples));
      requests_sent_->Increment();
      last_success_->SetToCurrentTime();
      return true;
    }
    requests_failed_->Increment();
    if (r.status != SendStatus::kRetry) {
      backoff_seconds_->Set(0);
      dropped_4xx_->Increment(static_cast<double>(batch.samples));
      // One log line per distinct status and interval; the request is never resent.
      errors_.report(kComponent, "http_" + std::to_string(r.http_status),
                     "HTTP " + std::to_string(r.http_status) + ": " + r.message + " (" +
                         std::to_string(batch.samples) + " samples dropped, never resent)");
      return true;
    }
    if (signal_.stopping()) return false;
    errors_.report(kComponent, r.http_status == 0 ? "unreachable" : "retry",
                   (r.http_status == 0 ? std::string("no response")
                                       : "HTTP " + std::to_string(r.http_status)) +
                       ": " + r.message);
    requests_retried_->Increment();
    const auto wait = jitteredWait(backoff, r.retry_after, rng_);
    backoff_seconds_->Set(static_cast<double>(wait.count()) / 1000.0);
    signal_.sleepFor(wait);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace nodewarden
