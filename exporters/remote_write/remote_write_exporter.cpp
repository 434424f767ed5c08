// RemoteWriteExporter: one POST per request through a kept libcurl easy handle. Headers follow
// the remote write 1.0 spec (Content-Encoding: snappy, Content-Type: application/x-protobuf,
// X-Prometheus-Remote-Write-Version: 0.1.0).
#include "exporters/remote_write/remote_write_exporter.h"

#include <curl/curl.h>
#include <snappy.h>

#include <algorithm>
#include <array>
#include <fstream>

#include "pipeline/curl_support.h"

namespace nodewarden {
namespace {

std::size_t keepReply(char* data, std::size_t size, std::size_t count, void* user) {
  auto* reply = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (reply->size() < RemoteWriteExporter::kMaxReplyBytes) {
    reply->append(data, std::min(n, RemoteWriteExporter::kMaxReplyBytes - reply->size()));
  }
  return n;  // the rest is read and discarded, so the connection stays usable
}

bool headerSafe(std::string_view text) {
  return text.find_first_of("\r\n") == std::string_view::npos;
}

}  // namespace

struct RemoteWriteExporter::Curl {
  CURL* handle = nullptr;
  std::string reply;
  std::array<char, CURL_ERROR_SIZE> error{};
  ~Curl() {
    if (handle != nullptr) curl_easy_cleanup(handle);
  }
};

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
    : options_(std::move(options)), curl_(std::make_unique<Curl>()) {}

RemoteWriteExporter::~RemoteWriteExporter() = default;

std::expected<std::unique_ptr<RemoteWriteExporter>, std::string> RemoteWriteExporter::create(
    RemoteWriteOptions options) {
  const auto bad = [](const std::string& what) {
    return std::unexpected("remote_write exporter: " + what);
  };
  if (!options.url.starts_with("http://") && !options.url.starts_with("https://")) {
    return bad("url '" + options.url + "' is not an http:// or https:// URL");
  }
  if (!options.bearer_token_file.empty() && !options.basic_user.empty()) {
    return bad("a bearer token and basic auth are both set; choose one");
  }
  if (!options.ca_file.empty() && !std::ifstream(options.ca_file).good()) {
    return bad("ca_file '" + options.ca_file + "' cannot be read");
  }
  if (options.timeout.count() <= 0) return bad("timeout must be positive");
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
  initCurlOnce();
  curl_->handle = curl_easy_init();
  if (curl_->handle == nullptr) return std::unexpected("curl_easy_init failed");
  CURL* h = curl_->handle;
  const long timeout_ms = static_cast<long>(options_.timeout.count());
  bool ok = curl_easy_setopt(h, CURLOPT_URL, options_.url.c_str()) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str()) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &keepReply) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEDATA, &curl_->reply) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_->error.data()) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &abortWhenCancelled) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFODATA, &cancelled_) == CURLE_OK;
  if (!options_.ca_file.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str()) == CURLE_OK;
  }
  if (options_.insecure_skip_verify) {
    ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
  }
  if (!options_.basic_user.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC)) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_USERNAME, options_.basic_user.c_str()) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PASSWORD, options_.basic_password.c_str()) == CURLE_OK;
  }
  if (!ok) return std::unexpected(std::string("libcurl refused an option: ") + curl_->error.data());
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
  CURL* h = curl_->handle;
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

  curl_->reply.clear();
  curl_->error[0] = '\0';
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, compressed_.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(compressed_.size()));
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);

  SendResult result;
  if (rc != CURLE_OK) {
    result.status = SendStatus::kRetry;
    result.message = rc == CURLE_ABORTED_BY_CALLBACK
                         ? std::string("cancelled")
                         : "POST " + options_.url + ": " + curl_easy_strerror(rc);
    return result;
  }
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_off_t retry_after = 0;
  if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
    result.retry_after = std::chrono::seconds(retry_after);
  }
  result.http_status = static_cast<int>(code);
  result.status = remoteWriteSendStatus(code);
  result.message = std::move(curl_->reply);
  curl_->reply.clear();
  return result;
}

}  // namespace nodewarden
