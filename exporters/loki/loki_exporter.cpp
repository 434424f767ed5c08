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

SendStatus lokiSendStatus(long http_status) {
  if (http_status >= 200 && http_status < 300) return SendStatus::kOk;
  if (http_status == 413) return SendStatus::kTooLarge;
  if (http_status == 429 || http_status >= 500) return SendStatus::kRetry;
  // 4xx, and redirects (not followed): resending the same bytes to the same URL cannot help.
  return SendStatus::kDrop;
}

LokiExporter::LokiExporter(LokiExporterOptions options)
    : options_(std::move(options)), encoder_(options_.encoding) {}

LokiExporter::~LokiExporter() = default;

std::unique_ptr<LogBatchEncoder> LokiExporter::batchEncoder() const {
  if (options_.encoding == LokiEncoding::kJson) return std::make_unique<LokiJsonBatchEncoder>();
  return std::make_unique<LokiBatchEncoder>();
}

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
  CurlPostOptions o;
  o.url = options_.url;
  o.ca_file = options_.ca_file;
  o.insecure_skip_verify = options_.insecure_skip_verify;
  o.basic_user = options_.basic_user;
  o.basic_password = options_.basic_password;
  o.timeout = options_.timeout;
  o.no_proxy = options_.no_proxy;
  auto poster = CurlPoster::create(o, &cancelled_);
  if (!poster) return std::unexpected(poster.error());
  poster_ = std::move(*poster);
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
  return poster_->post(body.bytes, headers, &lokiSendStatus);
}

}  // namespace nodewarden
