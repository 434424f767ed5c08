// ApiClient: one libcurl easy handle driven through a multi handle (see api_client.h), and the
// meta/v1 Status decoder (nlohmann::json, without exceptions).
#include "kubeapi/api_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <utility>

#include "pipeline/curl_support.h"

namespace nodewarden::kubeapi {
namespace {

using nlohmann::json;

// A failed answer's body is a Status of a few hundred bytes; more is not read into memory.
constexpr std::size_t kMaxErrorBodyBytes = std::size_t{64} * 1024;
constexpr std::size_t kMaxQuotedBody = 200;  // of a body that is no Status, in a message
// curl_multi_poll's wait when nothing happens; cancel() wakes it at once.
constexpr int kPollMs = 1000;
constexpr std::string_view kTokenHint =
    " (in a pod it is the service-account token, mounted at "
    "/var/run/secrets/kubernetes.io/serviceaccount/token)";

std::string_view trimmed(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

std::string stringMember(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string_view errorReason(ErrorKind kind) {
  // In ErrorKind's order.
  constexpr std::array<std::string_view, 8> kReasons = {
      "token", "connect", "tls", "timeout", "too_large", "cancelled", "transport", "http_status"};
  const auto i = static_cast<std::size_t>(kind);
  return i < kReasons.size() ? kReasons[i] : "transport";
}

std::optional<Status> parseStatus(std::string_view body) {
  const json doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  const auto kind = doc.find("kind");
  const bool is_status =
      kind != doc.end() && kind->is_string() && kind->get<std::string>() == "Status";
  if (kind != doc.end() && !is_status) return std::nullopt;
  Status status;
  status.reason = stringMember(doc, "reason");
  status.message = stringMember(doc, "message");
  if (const auto code = doc.find("code"); code != doc.end() && code->is_number_integer()) {
    const auto value = code->get<std::int64_t>();
    if (value >= 0 && value < 1000) status.code = static_cast<int>(value);
  }
  if (!is_status && status.reason.empty() && status.message.empty()) return std::nullopt;
  return status;
}

ApiError statusError(std::string_view method, std::string_view url, const Response& response) {
  ApiError error;
  error.kind = ErrorKind::kHttpStatus;
  error.http_status = response.http_status;
  error.status = parseStatus(response.body);
  error.detail = "HTTP " + std::to_string(response.http_status);
  if (error.status && (!error.status->reason.empty() || !error.status->message.empty())) {
    error.detail += ": " + error.status->reason + ": " + error.status->message;
  } else if (const auto quoted = trimmed(std::string_view(response.body).substr(0, kMaxQuotedBody));
             !quoted.empty()) {
    error.detail += ": " + std::string(quoted);
  }
  error.message = std::string(method) + " " + std::string(url) + ": " + error.detail;
  return error;
}

// The handles and what the request in flight has received. The requesting thread's, except
// curl_multi_wakeup from cancel(), which libcurl allows from any thread.
struct ApiClient::Curl {
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  std::array<char, CURL_ERROR_SIZE> error{};
  long status = 0;  // the HTTP status, once the first body bytes are in
  std::string body;
  std::size_t limit = 0;
  bool too_large = false;
  // stream(): the line being gathered, and where lines go.
  const LineHandler* on_line = nullptr;
  const std::function<void()>* on_oversize = nullptr;
  std::size_t max_line_bytes = 0;
  std::string line;
  bool skipping_line = false;
  bool reader_stopped = false;

  ~Curl() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  static std::size_t onData(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<Curl*>(user);
    const std::size_t n = size * count;
    if (self->status == 0) curl_easy_getinfo(self->easy, CURLINFO_RESPONSE_CODE, &self->status);
    const bool success = self->status >= 200 && self->status < 300;
    if (!success) {  // a Status: kept for the error, bounded, the rest read and dropped
      const std::size_t room = kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, self->body.size());
      self->body.append(data, std::min(n, room));
      return n;
    }
    if (self->on_line == nullptr) {
      if (self->body.size() + n > self->limit) {
        self->too_large = true;
        return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
      }
      self->body.append(data, n);
      return n;
    }
    std::string_view chunk(data, n);
    while (!chunk.empty()) {
      const auto newline = chunk.find('\n');
      const std::string_view part = chunk.substr(0, newline);
      if (!self->skipping_line) {
        if (self->line.size() + part.size() > self->max_line_bytes) {
          self->skipping_line = true;
          self->line.clear();
          if (*self->on_oversize) (*self->on_oversize)();
        } else {
          self->line.append(part);
        }
      }
      if (newline == std::string_view::npos) break;
      chunk.remove_prefix(newline + 1);
      const bool go_on = self->skipping_line || (*self->on_line)(self->line);
      self->line.clear();
      self->skipping_line = false;
      if (!go_on) {
        self->reader_stopped = true;
        return 0;
      }
    }
    return n;
  }
};

ApiClient::ApiClient(ClientOptions options)
    : options_(std::move(options)), curl_(std::make_unique<Curl>()) {}

ApiClient::~ApiClient() = default;

std::expected<std::unique_ptr<ApiClient>, std::string> ApiClient::create(ClientOptions options) {
  while (options.url.ends_with('/')) options.url.pop_back();
  if (!options.url.starts_with("https://") && !options.url.starts_with("http://")) {
    return std::unexpected("URL must start with https:// or http://: '" + options.url + "'");
  }
  if (options.timeout.count() <= 0 || options.connect_timeout.count() <= 0) {
    return std::unexpected(std::string("request and connect timeouts must be > 0"));
  }
  if (options.max_body_bytes == 0)
    return std::unexpected(std::string("answer size limit must be > 0"));
  initCurlOnce();
  std::unique_ptr<ApiClient> self(new ApiClient(std::move(options)));
  Curl& c = *self->curl_;
  c.multi = curl_multi_init();
  c.easy = curl_easy_init();
  if (c.multi == nullptr || c.easy == nullptr) return std::unexpected("libcurl init failed");
  const ClientOptions& o = self->options_;
  CURL* h = c.easy;
  // libcurl copies string options, so options need not outlive the handle.
  bool ok = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;  // not alone in the process
  ok = ok && curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, "nodewarden") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK;  // gzip if offered
  ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                              static_cast<long>(o.connect_timeout.count())) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Curl::onData) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEDATA, &c) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c.error.data()) == CURLE_OK;
  // The multi loop watches cancelled_; the progress callback also ends a transfer that libcurl
  // is busy with when cancel() comes between two polls.
  ok = ok && curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &abortWhenCancelled) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFODATA, &self->cancelled_) == CURLE_OK;
  if (o.bypass_proxy) ok = ok && curl_easy_setopt(h, CURLOPT_NOPROXY, "*") == CURLE_OK;
  if (!o.ca_file.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, o.ca_file.c_str()) == CURLE_OK;
  }
  if (o.insecure_skip_verify) {
    ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
  }
  if (!ok) return std::unexpected(std::string("libcurl refused an option: ") + c.error.data());
  return self;
}

void ApiClient::cancel() {
  cancelled_.store(true);
  curl_multi_wakeup(curl_->multi);
}

std::string ApiClient::escape(std::string_view text) const {
  char* escaped = curl_easy_escape(curl_->easy, text.data(), static_cast<int>(text.size()));
  std::string out = escaped != nullptr ? escaped : "";
  curl_free(escaped);
  return out;
}

std::expected<Response, ApiError> ApiClient::get(std::string_view path, Timeout timeout) {
  return perform("GET", path, {}, nullptr, timeout);
}

std::expected<Response, ApiError> ApiClient::patch(std::string_view path,
                                                   std::string_view content_type,
                                                   std::string_view body, Timeout timeout) {
  return perform("PATCH", path, content_type, &body, timeout);
}

std::expected<Response, ApiError> ApiClient::stream(std::string_view path,
                                                    std::chrono::milliseconds timeout,
                                                    std::size_t max_line_bytes,
                                                    const LineHandler& on_line,
                                                    const std::function<void()>& on_oversize) {
  Curl& c = *curl_;
  c.on_line = &on_line;
  c.on_oversize = &on_oversize;
  c.max_line_bytes = max_line_bytes;
  c.line.clear();
  c.skipping_line = false;
  auto result = perform("GET", path, {}, nullptr, timeout);
  // A last line without its newline, when the answer ended cleanly.
  if (result && result->http_status == 200 && !result->ended_by_reader && !c.skipping_line &&
      !c.line.empty() && !on_line(c.line)) {
    result->ended_by_reader = true;
  }
  c.on_line = nullptr;
  c.on_oversize = nullptr;
  c.line.clear();
  return result;
}

std::expected<Response, ApiError> ApiClient::perform(std::string_view method, std::string_view path,
                                                     std::string_view content_type,
                                                     const std::string_view* body,
                                                     Timeout timeout) {
  const std::string url = options_.url + std::string(path);
  const auto fail = [&](ErrorKind kind, std::string what, long status = 0) {
    std::string message = std::string(method) + " " + url + ": " + what;
    return std::unexpected(
        ApiError{kind, status, std::nullopt, std::move(what), std::move(message)});
  };
  if (cancelled_.load()) return fail(ErrorKind::kCancelled, "cancelled");
  CurlHeaders headers;
  bool ok = appendHeader(headers, "Accept: application/json");
  // No "Expect: 100-continue" round trip before a body.
  ok = ok && appendHeader(headers, "Expect:");
  if (body != nullptr) {
    ok = ok && appendHeader(headers, "Content-Type: " + std::string(content_type));
  }
  if (!options_.token_file.empty()) {
    // Projected service-account tokens rotate (about hourly): the file is read for every request.
    auto token = readBearerTokenFile(options_.token_file);
    if (token && token->find_first_of("\r\n") != std::string::npos) {
      token = std::unexpected(std::string("holds a line break"));
    }
    if (!token) {
      return fail(ErrorKind::kToken, "the token file '" + options_.token_file + "' " +
                                         token.error() + std::string(kTokenHint));
    }
    ok = ok && appendHeader(headers, "Authorization: Bearer " + *token);
  }
  if (!ok) return fail(ErrorKind::kTransport, "out of memory building the request headers");

  Curl& c = *curl_;
  CURL* h = c.easy;
  c.status = 0;
  c.body.clear();
  c.limit = options_.max_body_bytes;
  c.too_large = false;
  c.reader_stopped = false;
  c.error[0] = '\0';
  const auto limit = timeout.value_or(options_.timeout);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(limit.count()));
  if (body != nullptr) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  if (curl_multi_add_handle(c.multi, h) != CURLM_OK) {
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
    return fail(ErrorKind::kTransport, "curl_multi_add_handle failed");
  }
  CURLcode rc = CURLE_OK;
  int running = 1;
  while (!cancelled_.load()) {
    if (curl_multi_perform(c.multi, &running) != CURLM_OK || running == 0) break;
    // Sleeps until the socket is ready, kPollMs pass, or cancel() calls curl_multi_wakeup.
    curl_multi_poll(c.multi, nullptr, 0, kPollMs, nullptr);
  }
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(c.multi, &left)) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) rc = msg->data.result;
  }
  curl_multi_remove_handle(c.multi, h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // the list dies with this scope
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);  // the body belongs to the caller
  if (c.status == 0) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c.status);
  const long status = c.status;
  if (cancelled_.load()) return fail(ErrorKind::kCancelled, "cancelled", status);
  if (running != 0 && rc == CURLE_OK) {
    return fail(ErrorKind::kTransport, "libcurl could not drive the transfer", status);
  }
  Response response;
  response.http_status = status;
  if (rc == CURLE_WRITE_ERROR && c.reader_stopped) {
    response.ended_by_reader = true;
    return response;
  }
  if (rc != CURLE_OK) {
    std::string what = status != 0 ? "HTTP " + std::to_string(status) + ", then " : "";
    what += curl_easy_strerror(rc);
    if (c.error[0] != '\0') what += std::string(" (") + c.error.data() + ")";
    switch (rc) {
      case CURLE_WRITE_ERROR:
        if (c.too_large) {
          return fail(ErrorKind::kTooLarge,
                      "the answer passed " + std::to_string(c.limit) + " bytes", status);
        }
        break;
      case CURLE_ABORTED_BY_CALLBACK:
        return fail(ErrorKind::kCancelled, "cancelled", status);
      case CURLE_OPERATION_TIMEDOUT:
        return fail(ErrorKind::kTimeout, what + " after " + std::to_string(limit.count()) + " ms",
                    status);
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
        return fail(ErrorKind::kConnect, what, status);
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_CERTPROBLEM:
        return fail(ErrorKind::kTls, what, status);
      default:
        break;
    }
    return fail(ErrorKind::kTransport, what, status);
  }
  response.body = std::move(c.body);
  c.body.clear();
  return response;
}

}  // namespace nodewarden::kubeapi
