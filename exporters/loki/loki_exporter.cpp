// LokiExporter: one POST per batch through a kept libcurl easy handle.
#include "exporters/loki/loki_exporter.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>

#include "pipeline/curl_support.h"

namespace nodewarden {
namespace {

std::size_t keepReply(char* data, std::size_t size, std::size_t count, void* user) {
  auto* reply = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (reply->size() < LokiExporter::kMaxReplyBytes) {
    reply->append(data, std::min(n, LokiExporter::kMaxReplyBytes - reply->size()));
  }
  return n;  // the rest is read and discarded, so the connection stays usable
}

std::string trim(std::string text) {
  const auto isSpace = [](unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
  };
  while (!text.empty() && isSpace(static_cast<unsigned char>(text.back()))) text.pop_back();
  const auto first = std::find_if_not(
      text.begin(), text.end(), [&](char c) { return isSpace(static_cast<unsigned char>(c)); });
  text.erase(text.begin(), first);
  return text;
}

bool headerSafe(std::string_view text) {
  return text.find_first_of("\r\n") == std::string_view::npos;
}

}  // namespace

struct LokiExporter::Curl {
  CURL* handle = nullptr;
  std::string reply;
  std::array<char, CURL_ERROR_SIZE> error{};
  ~Curl() {
    if (handle != nullptr) curl_easy_cleanup(handle);
  }
};

SendStatus lokiSendStatus(long http_status) {
  if (http_status >= 200 && http_status < 300) return SendStatus::kOk;
  if (http_status == 413) return SendStatus::kTooLarge;
  if (http_status == 429 || http_status >= 500) return SendStatus::kRetry;
  // 4xx, and redirects (not followed): resending the same bytes to the same URL cannot help.
  return SendStatus::kDrop;
}

LokiExporter::LokiExporter(LokiExporterOptions options)
    : options_(std::move(options)), encoder_(options_.encoding), curl_(std::make_unique<Curl>()) {}

LokiExporter::~LokiExporter() = default;

std::expected<std::unique_ptr<LokiExporter>, std::string> LokiExporter::create(
    LokiExporterOptions options) {
  const auto bad = [](const std::string& what) {
    return std::unexpected("loki exporter: " + what);
  };
  if (!options.url.starts_with("http://") && !options.url.starts_with("https://")) {
    return bad("url '" + options.url + "' is not an http:// or https:// URL");
  }
  if (!options.bearer_token.empty() && !options.bearer_token_file.empty()) {
    return bad("bearer_token and bearer_token_file are both set; choose one");
  }
  const bool bearer = !options.bearer_token.empty() || !options.bearer_token_file.empty();
  if (bearer && !options.basic_user.empty()) {
    return bad("a bearer token and basic auth are both set; choose one");
  }
  if (options.basic_user.empty() && !options.basic_password.empty()) {
    return bad("basic_password is set without basic_user");
  }
  if (!options.ca_file.empty() && !std::ifstream(options.ca_file).good()) {
    return bad("ca_file '" + options.ca_file + "' cannot be read");
  }
  if (options.timeout.count() <= 0) return bad("timeout must be positive");
  if (!headerSafe(options.tenant) || !headerSafe(options.bearer_token)) {
    return bad("tenant and bearer_token must not contain line breaks");
  }
  for (const auto& [name, value] : options.headers) {
    if (name.empty() || name.find(':') != std::string::npos || !headerSafe(name) ||
        !headerSafe(value)) {
      return bad("header '" + name + "' is not a valid header name and value");
    }
  }
  std::unique_ptr<LokiExporter> exporter(new LokiExporter(std::move(options)));
  if (auto ok = exporter->setUp(); !ok) return bad(ok.error());
  return exporter;
}

std::expected<void, std::string> LokiExporter::setUp() {
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
  ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;  // we are not alone in here
  ok = ok && curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, "nodewarden") == CURLE_OK;
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
  if (!options_.no_proxy.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_NOPROXY, options_.no_proxy.c_str()) == CURLE_OK;
  }
  if (!ok) return std::unexpected(std::string("libcurl refused an option: ") + curl_->error.data());
  return {};
}

SendResult LokiExporter::send(const LogBatch& batch) {
  const std::scoped_lock lock(mutex_);
  if (cancelled_) return {SendStatus::kRetry, 0, "cancelled", {}};
  std::string token = options_.bearer_token;
  if (!options_.bearer_token_file.empty()) {
    std::ifstream in(options_.bearer_token_file);
    if (in) token = trim(std::string(std::istreambuf_iterator<char>(in), {}));
    if (!in || token.empty() || !headerSafe(token)) {
      return {SendStatus::kRetry,
              0,
              "bearer token file '" + options_.bearer_token_file + "' is missing or empty",
              {}};
    }
  }
  auto body = encoder_.encode(batch);
  if (!body) return {SendStatus::kRetry, 0, "encoding: " + body.error(), {}};
  return post(*body, token);
}

SendResult LokiExporter::post(const LokiPushBody& body, const std::string& token) {
  CURL* h = curl_->handle;
  CurlHeaders headers;
  bool ok = appendHeader(headers, "Content-Type: " + std::string(body.content_type));
  if (!body.content_encoding.empty()) {
    ok = ok && appendHeader(headers, "Content-Encoding: " + std::string(body.content_encoding));
  }
  // libcurl would wait up to a second for "100 Continue" before sending a large body.
  ok = ok && appendHeader(headers, "Expect:");
  if (!options_.tenant.empty())
    ok = ok && appendHeader(headers, "X-Scope-OrgID: " + options_.tenant);
  if (!token.empty()) ok = ok && appendHeader(headers, "Authorization: Bearer " + token);
  for (const auto& [name, value] : options_.headers) {
    ok = ok && appendHeader(headers, name + ": " + value);
  }
  if (!ok) return {SendStatus::kRetry, 0, "out of memory building headers", {}};

  curl_->reply.clear();
  curl_->error[0] = '\0';
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.bytes.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.bytes.size()));
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // the list dies with this call
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);

  SendResult result;
  if (rc != CURLE_OK) {
    result.status = SendStatus::kRetry;
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      result.message = "cancelled";
      return result;
    }
    result.message = "POST " + options_.url + ": " + curl_easy_strerror(rc);
    if (curl_->error[0] != '\0') result.message += std::string(" (") + curl_->error.data() + ")";
    return result;
  }
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_off_t retry_after = 0;  // libcurl reads both forms: seconds and an HTTP date
  if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
    result.retry_after = std::chrono::seconds(retry_after);
  }
  result.http_status = static_cast<int>(code);
  result.status = lokiSendStatus(code);
  result.message = std::move(curl_->reply);
  curl_->reply.clear();
  return result;
}

}  // namespace nodewarden
