#include "pipeline/log_shipper.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "pipeline/retry_backoff.h"

namespace nodewarden {
namespace {

// Halves a batch by entries, keeping each stream's order; checkpoints go with the second half so
// nothing is committed by a half that was sent before the other. A batch that carries its body is
// decoded first (the halves carry streams; the exporter encodes them again).
std::expected<std::pair<LogBatch, LogBatch>, std::string> split(const LogBatch& encoded,
                                                                const LogBatchEncoder* decoder) {
  LogBatch expanded;
  const LogBatch* source = &encoded;
  if (!encoded.encoded_body.empty()) {
    if (decoder == nullptr) return std::unexpected("no decoder for its body");
    expanded.encoded_body = encoded.encoded_body;
    if (auto ok = expandEncodedBody(expanded, *decoder); !ok) return std::unexpected(ok.error());
    expanded.lines = encoded.lines;
    source = &expanded;
  }
  const LogBatch& batch = *source;
  LogBatch a, b;
  const std::size_t half = batch.lines / 2;
  std::size_t seen = 0;
  for (const auto& s : batch.streams) {
    LogBatch::Stream sa{s.labels, {}}, sb{s.labels, {}};
    for (const auto& e : s.entries) {
      LogBatch& into = seen < half ? a : b;
      (seen < half ? sa : sb).entries.push_back(e);
      into.bytes += e.line.size();
      into.lines += 1;
      ++seen;
    }
    if (!sa.entries.empty()) a.streams.push_back(std::move(sa));
    if (!sb.entries.empty()) b.streams.push_back(std::move(sb));
  }
  b.checkpoints = encoded.checkpoints;
  a.sequence = b.sequence = encoded.sequence;
  return std::pair{std::move(a), std::move(b)};
}

const char* statusName(SendStatus s) {
  switch (s) {
    case SendStatus::kOk:
      return "ok";
    case SendStatus::kRetry:
      return "retry";
    case SendStatus::kDrop:
      return "rejected";
    case SendStatus::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

}  // namespace

LogShipper::LogShipper(LogShipperOptions options, Spool& spool, LogExporter& exporter,
                       prometheus::Registry& registry, ErrorReporter& errors)
    : options_(options), spool_(spool), exporter_(exporter), errors_(errors) {
  const std::string dest(exporter_.name());
  const auto counter = [&](prometheus::Family<prometheus::Counter>& family,
                           prometheus::Labels base) {
    prometheus::Counter* c = &family.Add(labels(std::move(base)));
    if (!options_.metric_labels.empty()) counters_.emplace_back(&family, c);
    return c;
  };
  lines_sent_ = counter(prometheus::BuildCounter()
                            .Name("nodewarden_log_lines_sent_total")
                            .Help("Log lines the destination accepted.")
                            .Register(registry),
                        {{"destination", dest}});
  bytes_sent_ =
      counter(prometheus::BuildCounter()
                  .Name("nodewarden_log_bytes_sent_total")
                  .Help("Bytes of log lines the destination accepted (before compression).")
                  .Register(registry),
              {{"destination", dest}});
  batches_sent_ = counter(prometheus::BuildCounter()
                              .Name("nodewarden_log_batches_sent_total")
                              .Help("Log batches the destination accepted.")
                              .Register(registry),
                          {{"destination", dest}});
  auto& dropped = prometheus::BuildCounter()
                      .Name("nodewarden_log_lines_dropped_total")
                      .Help("Log lines dropped, by reason.")
                      .Register(registry);
  dropped_rejected_ = &dropped.Add({{"reason", "rejected"}});
  dropped_too_large_ = &dropped.Add({{"reason", "too_large"}});
  requests_ = &prometheus::BuildCounter()
                   .Name("nodewarden_log_send_requests_total")
                   .Help("Push requests to the log destination, by outcome.")
                   .Register(registry);
  backoff_family_ = &prometheus::BuildGauge()
                         .Name("nodewarden_log_send_backoff_seconds")
                         .Help("Current wait before the next retry (0 when sending normally).")
                         .Register(registry);
  backoff_seconds_ = &backoff_family_->Add(labels({{"destination", dest}}));
  if (!options_.metric_labels.empty()) {
    // Every outcome's series now, so that they can all be removed at the end.
    for (const auto status :
         {SendStatus::kOk, SendStatus::kRetry, SendStatus::kDrop, SendStatus::kTooLarge}) {
      counter(*requests_, {{"destination", dest}, {"outcome", statusName(status)}});
    }
  }
}

prometheus::Labels LogShipper::labels(prometheus::Labels base) const {
  base.insert(options_.metric_labels.begin(), options_.metric_labels.end());
  return base;
}

LogShipper::~LogShipper() {
  stop(std::chrono::milliseconds(1500));
  for (const auto& [family, c] : counters_) family->Remove(c);
  if (!options_.metric_labels.empty()) backoff_family_->Remove(backoff_seconds_);
}

void LogShipper::start() {
  signal_.reset();
  finished_ = false;
  thread_ = std::thread([this] { run(); });
}

void LogShipper::notify() { signal_.notify(); }

bool LogShipper::stop(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return true;
  signal_.stop();
  exporter_.cancel();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!finished_ && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (finished_) {
    thread_.join();
    return true;
  }
  // The exporter did not give up in time. Waiting is the only safe choice (the thread uses this
  // object); the batch stays in the spool either way.
  spdlog::warn("log shipper: send still in flight after {} ms, waiting for it", grace.count());
  thread_.join();
  return false;
}

void LogShipper::run() {
  while (!signal_.stopping()) {
    const std::shared_ptr<const LogBatch> batch = spool_.front();
    if (!batch) {
      signal_.waitForWork(options_.idle_poll);
      continue;
    }
    if (!deliver(*batch)) break;
    spool_.acknowledge(batch->sequence);
    if (options_.on_batch_done) options_.on_batch_done();
  }
  finished_ = true;
}

bool LogShipper::deliver(const LogBatch& batch) {
  auto backoff = options_.initial_backoff;
  for (;;) {
    if (signal_.stopping()) return false;
    const SendResult r = exporter_.send(batch);
    const std::string_view destination = exporter_.name();
    requests_
        ->Add(
            labels({{"destination", std::string(destination)}, {"outcome", statusName(r.status)}}))
        .Increment();
    switch (r.status) {
      case SendStatus::kOk:
        backoff_seconds_->Set(0);
        lines_sent_->Increment(static_cast<double>(batch.lines));
        bytes_sent_->Increment(static_cast<double>(batch.bytes));
        batches_sent_->Increment();
        return true;
      case SendStatus::kDrop:
        backoff_seconds_->Set(0);
        dropped_rejected_->Increment(static_cast<double>(batch.lines));
        errors_.report(destination, "rejected",
                       "HTTP " + std::to_string(r.http_status) + ": " + r.message +
                           " (batch dropped, never resent)");
        return true;
      case SendStatus::kTooLarge: {
        if (batch.lines <= 1) {
          dropped_too_large_->Increment(static_cast<double>(batch.lines));
          errors_.report(destination, "too_large",
                         "a single entry was refused with 413: " + r.message);
          return true;
        }
        auto halves = split(batch, options_.body_decoder.get());
        if (!halves) {
          dropped_too_large_->Increment(static_cast<double>(batch.lines));
          errors_.report(destination, "too_large",
                         "refused with 413 and cannot be split: " + halves.error());
          return true;
        }
        return deliver(halves->first) && deliver(halves->second);
      }
      case SendStatus::kRetry: {
        errors_.report(destination, r.http_status == 0 ? "unreachable" : "retry",
                       (r.http_status == 0 ? std::string("no response")
                                           : "HTTP " + std::to_string(r.http_status)) +
                           ": " + r.message);
        const auto wait = jitteredWait(backoff, r.retry_after, rng_);
        backoff_seconds_->Set(static_cast<double>(wait.count()) / 1000.0);
        signal_.sleepFor(wait);
        backoff = std::min(backoff * 2, options_.max_backoff);
        break;
      }
    }
  }
}

}  // namespace nodewarden
