// LokiExporter: sends a LogBatch to Loki's push API (POST .../loki/api/v1/push) and maps the
// answer onto SendStatus. One libcurl easy handle is kept for the exporter's life, so batches go
// over one kept-alive connection (and one TLS session).
//
// What a reader gets wrong: send() never retries, sleeps or splits; it answers kRetry (429, 5xx,
// no answer, timeout), kTooLarge (413) or kDrop (any other 4xx) and the shipper decides. A
// missing or unreadable bearer token file is kRetry, not kDrop: a projected service-account token
// is rewritten in place and may be briefly absent, and dropping logs over it would lose them.
//
// What a reader gets wrong about where the body is made: send() rarely encodes. The exporter gives
// the batcher a LokiBatchEncoder or, for the JSON API, a LokiJsonBatchEncoder (batchEncoder()),
// so each batch is encoded into its push body once, as its lines come, before the spool; send()
// posts those bytes. It encodes only batches that carry entries (halves of a split batch, batches
// the local file destination spooled before a restart) and bodies of the other encoding (spooled
// before a restart with the other config). The folder: loki_push_body (the protobuf wire format and
// its batch encoder), loki_json_body (the JSON form and its batch encoder), loki_encoder (the
// request body per encoding), this file (transport).
#pragma once

#include <atomic>
#include <chrono>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporters/loki/loki_encoder.h"
#include "pipeline/curl_support.h"
#include "pipeline/log_exporter.h"

namespace nodewarden {

struct LokiExporterOptions {
  std::string url;  // e.g. http://loki:3100/loki/api/v1/push
  LokiEncoding encoding = LokiEncoding::kProtobuf;
  std::string tenant;             // X-Scope-OrgID, when not empty
  std::string bearer_token;       // Authorization: Bearer ...
  std::string bearer_token_file;  // read again before every send (tokens rotate)
  std::string basic_user;         // basic auth, when not empty
  std::string basic_password;
  std::string ca_file;  // PEM bundle to verify the server with, instead of the system's
  bool insecure_skip_verify = false;
  std::chrono::milliseconds timeout{10'000};                 // the whole request, connect included
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  std::string no_proxy;  // libcurl's NOPROXY list ("*" for none); proxies come from the env
};

class LokiExporter final : public LogExporter {
 public:
  // Fails with a message naming the option when the options cannot work (no URL, two kinds of
  // credentials at once, a CA file that cannot be read).
  static std::expected<std::unique_ptr<LokiExporter>, std::string> create(
      LokiExporterOptions options);
  ~LokiExporter() override;
  LokiExporter(const LokiExporter&) = delete;
  LokiExporter& operator=(const LokiExporter&) = delete;

  [[nodiscard]] std::string_view name() const override { return "loki"; }
  // A LokiBatchEncoder (protobuf) or a LokiJsonBatchEncoder (json): the batcher writes the push
  // body once and send() posts it as it is.
  [[nodiscard]] std::unique_ptr<LogBatchEncoder> batchEncoder() const override;
  SendResult send(const LogBatch& batch) override;
  // Aborts a send in flight within about a second (libcurl's progress callback) and makes later
  // sends answer kRetry at once.
  void cancel() override { cancelled_ = true; }

  // The reply bodies quoted in SendResult::message are cut to this many bytes.
  static constexpr std::size_t kMaxReplyBytes = CurlPoster::kMaxReplyBytes;

 private:
  explicit LokiExporter(LokiExporterOptions options);
  std::expected<void, std::string> setUp();
  SendResult post(const LokiPushBody& body, const std::string& token);

  LokiExporterOptions options_;
  LokiPushEncoder encoder_;
  std::unique_ptr<CurlPoster> poster_;
  std::mutex mutex_;  // send() is meant for one shipper thread; this makes a second one wait
  std::atomic<bool> cancelled_{false};
};

// Maps an HTTP status to what the shipper should do (Loki's and Promtail's conventions).
SendStatus lokiSendStatus(long http_status);

}  // namespace nodewarden
