// RemoteWriteExporter: POSTs a MetricWriteBatch to a Prometheus remote-write 1.0 endpoint (e.g.
// Prometheus' /api/v1/write, Mimir, Thanos receive, VictoriaMetrics), snappy block-compressed,
// over one kept libcurl handle, and maps the answer onto SendStatus like Prometheus' own queue
// manager: 2xx OK; 429, 5xx and no answer RETRY; any other status DROP (never resent).
//
// What a reader gets wrong: a missing bearer token file is RETRY, not DROP (projected tokens are
// rewritten in place), and 413 is DROP too: one cycle's requests are already cut to
// max_samples_per_send, and remote write has no way to split a request the receiver refused.
#pragma once

#include <atomic>
#include <chrono>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/curl_support.h"
#include "pipeline/metric_exporter.h"

namespace nodewarden {

struct RemoteWriteOptions {
  // url (e.g. http://prometheus:9090/api/v1/write), TLS, basic auth, timeout, user agent.
  CurlPostOptions http;
  std::string bearer_token_file;  // read again before every send (tokens rotate)
  std::vector<std::pair<std::string, std::string>> headers;  // extra, e.g. X-Scope-OrgID
};

class RemoteWriteExporter final : public MetricExporter {
 public:
  static std::expected<std::unique_ptr<RemoteWriteExporter>, std::string> create(
      RemoteWriteOptions options);
  ~RemoteWriteExporter() override;
  RemoteWriteExporter(const RemoteWriteExporter&) = delete;
  RemoteWriteExporter& operator=(const RemoteWriteExporter&) = delete;

  [[nodiscard]] std::string_view name() const override { return "remote_write"; }
  SendResult send(const MetricWriteBatch& batch) override;
  void cancel() override { cancelled_ = true; }

 private:
  explicit RemoteWriteExporter(RemoteWriteOptions options);
  std::expected<void, std::string> setUp();

  RemoteWriteOptions options_;
  std::unique_ptr<CurlPoster> poster_;
  std::string compressed_;  // the last request's snappy block, reused
  std::mutex mutex_;        // send() is meant for one sender thread
  std::atomic<bool> cancelled_{false};
};

// Prometheus' queue-manager rules: what to do with a request the receiver answered this way.
SendStatus remoteWriteSendStatus(long http_status);

// Snappy block format (not the framed stream), as remote write requires.
std::string snappyBlock(std::string_view bytes);

}  // namespace nodewarden
