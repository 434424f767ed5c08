// RemoteWriteExporter: one POST per request through a kept CurlPoster. Headers follow
// the remote write 1.0 spec (Content-Encoding: snappy, Content-Type: application/x-protobuf,
// X-Prometheus-Remote-Write-Version: 0.1.0).
#include "exporters/remote_write/remote_write_exporter.h"

#include <snappy.h>

#include <fstream>

#include "pipeline/curl_support.h"

namespace nodewarden {
namespace {

bool headerSafe(std::string_view text) {
  return text.find_first_of("\r\n") == std::string_view::npos;
}

}  // namespace

SendStatus remoteWriteSendStatus(long http_status) {
  if (http_status >= 200 && http_status < 300) return SendStatus::kOk;
  if (http_status == 429 || http_status >= 500) return SendStatus::kRetry;
  return SendStatus::kDrop;
}

std::string snappyBlock(std::string_view bytes) {
  std::string out;
  snappy::Compress(bytes.data(), bytes.size(), &out);
  return out;
}

RemoteWriteExporter::RemoteWriteExporter(RemoteWriteOptions options)
    : options_(std::move(options)) {}

RemoteWriteExporter::~RemoteWriteExporter() = default;

std::expected<std::unique_ptr<RemoteWriteExporter>, std::string> RemoteWriteExporter::create(
    RemoteWriteOptions options) {
  const auto bad = [](const std::string& what) {
    return std::unexpected("remote_write exporter: " + what);
  };
  if (!options.http.url.starts_with("http://") && !options.http.url.starts_with("https://")) {
    return bad("url '" + options.http.url + "' is not an http:// or https:// URL");
  }
  if (!options.bearer_token_file.empty() && !options.http.basic_user.empty()) {
    return bad("a bearer token and basic auth are both set; choose one");
  }
  if (!options.http.ca_file.empty() && !std::ifstream(options.http.ca_file).good()) {
    return bad("ca_file '" + options.http.ca_file + "' cannot be read");
  }
  if (options.http.timeout.count() <= 0) return bad("timeout must be positive");
  for (const auto& [name, value] : options.headers) {
    if (name.empty() || name.find(':') != std::string::npos || !headerSafe(name) ||
        !headerSafe(value)) {
      return bad("header '" + name + "' is not a valid header name and value");
    }
  }
  std::unique_ptr<RemoteWriteExporter> exporter(new RemoteWriteExporter(std::move(options)));
  if (auto ok = exporter->setUp(); !ok) return bad(ok.error());
  return exporter;
}

std::expected<void, std::string> RemoteWriteExporter::setUp() {
  auto poster = CurlPoster::create(options_.http, &cancelled_);
  if (!poster) return std::unexpected(poster.error());
  poster_ = std::move(*poster);
  return {};
}

SendResult RemoteWriteExporter::send(const MetricWriteBatch& batch) {
  const std::scoped_lock lock(mutex_);
  if (cancelled_) return {SendStatus::kRetry, 0, "cancelled", {}};
  std::string token;
  if (!options_.bearer_token_file.empty()) {
    const auto read = readBearerToken(options_.bearer_token_file);
    if (!read || !headerSafe(*read)) {
      return {SendStatus::kRetry,
              0,
              "bearer token file '" + options_.bearer_token_file + "' is missing or empty",
              {}};
    }
    token = *read;
  }
  CurlHeaders headers;
  bool ok = appendHeader(headers, "Content-Type: application/x-protobuf");
  ok = ok && appendHeader(headers, "Content-Encoding: snappy");
  ok = ok && appendHeader(headers, "X-Prometheus-Remote-Write-Version: 0.1.0");
  ok = ok && appendHeader(headers, "Expect:");  // no wait for "100 Continue"
  if (!token.empty()) ok = ok && appendHeader(headers, "Authorization: Bearer " + token);
  for (const auto& [name, value] : options_.headers) {
    ok = ok && appendHeader(headers, name + ": " + value);
  }
  if (!ok) return {SendStatus::kRetry, 0, "out of memory building headers", {}};
  snappy::Compress(batch.request.data(), batch.request.size(), &compressed_);
  return poster_->post(compressed_, headers, &remoteWriteSendStatus);
}

}  // namespace nodewarden
