// NodeApiClient: one libcurl easy handle driven through a multi handle (see node_api_client.h).
#include "exporters/kube/node_api_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "pipeline/curl_support.h"

namespace nodewarden::kube {
namespace {

constexpr std::size_t kMaxBodyBytes = std::size_t{16} << 20U;
constexpr int kPollMs = 1000;  // curl_multi_poll's wait when idle; cancel() wakes it sooner
constexpr std::chrono::milliseconds kMaxConnectTimeout{10'000};

}  // namespace

struct NodeApiClient::Curl {
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  std::array<char, CURL_ERROR_SIZE> error{};
  std::string body;
  bool too_large = false;

  ~Curl() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  static std::size_t onData(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<Curl*>(user);
    const std::size_t n = size * count;
    if (self->body.size() + n > kMaxBodyBytes) {
      self->too_large = true;
      return 0;  // CURLE_WRITE_ERROR
    }
    self->body.append(data, n);
    return n;
  }
};

NodeApiClient::NodeApiClient(NodeApiOptions options)
    : options_(std::move(options)), curl_(std::make_unique<Curl>()) {}

NodeApiClient::~NodeApiClient() = default;

std::expected<std::unique_ptr<NodeApiClient>, std::string> NodeApiClient::create(
    NodeApiOptions options) {
  while (!options.url.empty() && options.url.back() == '/') options.url.pop_back();
  if (!options.url.starts_with("https://") && !options.url.starts_with("http://")) {
    return std::unexpected("the API server URL must start with https:// or http://: '" +
                           options.url + "'");
  }
  if (options.node_name.empty()) return std::unexpected("no node name");
  if (options.timeout.count() <= 0) return std::unexpected("the request timeout must be > 0");
  initCurlOnce();
  std::unique_ptr<NodeApiClient> self(new NodeApiClient(std::move(options)));
  Curl& c = *self->curl_;
  c.multi = curl_multi_init();
  c.easy = curl_easy_init();
  if (c.multi == nullptr || c.easy == nullptr) return std::unexpected("libcurl init failed");
  const NodeApiOptions& o = self->options_;
  CURL* h = c.easy;
  const auto connect = std::min(o.timeout, kMaxConnectTimeout);
  bool ok = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, "nodewarden") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect.count())) ==
                 CURLE_OK;
  ok = ok &&
       curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(o.timeout.count())) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Curl::onData) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEDATA, &c) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c.error.data()) == CURLE_OK;
  // Also ends a transfer libcurl is busy with when cancel() comes between two polls.
  ok = ok && curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &abortWhenCancelled) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFODATA, &self->cancelled_) == CURLE_OK;
  if (!o.ca_file.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, o.ca_file.c_str()) == CURLE_OK;
  }
  if (!ok) return std::unexpected(std::string("libcurl refused an option: ") + c.error.data());
  char* escaped = curl_easy_escape(h, o.node_name.data(), static_cast<int>(o.node_name.size()));
  if (escaped == nullptr) return std::unexpected("libcurl could not escape the node name");
  self->node_path_ = std::string("/api/v1/nodes/") + escaped;
  curl_free(escaped);
  return self;
}

void NodeApiClient::cancel() {
  cancelled_.store(true);
  if (curl_->multi != nullptr) curl_multi_wakeup(curl_->multi);
}

NodeApiResponse NodeApiClient::getNode() { return perform(node_path_, "GET", {}, nullptr); }

NodeApiResponse NodeApiClient::patchNode(bool status_subresource, std::string_view content_type,
                                         const std::string& body) {
  return perform(status_subresource ? node_path_ + "/status" : node_path_, "PATCH", content_type,
                 &body);
}

NodeApiResponse NodeApiClient::perform(const std::string& path, const char* method,
                                       std::string_view content_type, const std::string* body) {
  NodeApiResponse out;
  if (cancelled_.load()) {
    out.cancelled = true;
    out.error = "cancelled";
    return out;
  }
  CurlHeaders headers;
  bool ok = appendHeader(headers, "Accept: application/json");
  // No "Expect: 100-continue" round trip before a body.
  ok = ok && appendHeader(headers, "Expect:");
  if (body != nullptr)
    ok = ok && appendHeader(headers, "Content-Type: " + std::string(content_type));
  if (!options_.token_file.empty()) {
    const auto token = readBearerToken(options_.token_file);
    if (!token) {
      out.error = "cannot read a bearer token from " + options_.token_file;
      return out;
    }
    ok = ok && appendHeader(headers, "Authorization: Bearer " + *token);
  }
  if (!ok) {
    out.error = "out of memory building the request headers";
    return out;
  }
  Curl& c = *curl_;
  CURL* h = c.easy;
  c.body.clear();
  c.too_large = false;
  c.error[0] = '\0';
  const std::string url = options_.url + path;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, body != nullptr ? method : nullptr);
  if (body != nullptr) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  if (curl_multi_add_handle(c.multi, h) != CURLM_OK) {
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    out.error = "curl_multi_add_handle failed";
    return out;
  }
  CURLcode result = CURLE_OK;
  int running = 1;
  while (!cancelled_.load()) {
    if (curl_multi_perform(c.multi, &running) != CURLM_OK || running == 0) break;
    curl_multi_poll(c.multi, nullptr, 0, kPollMs, nullptr);
  }
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(c.multi, &left)) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) result = msg->data.result;
  }
  curl_multi_remove_handle(c.multi, h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // the list dies with this scope
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);  // the body belongs to the caller
  out.cancelled = cancelled_.load();
  if (out.cancelled) {
    out.error = "cancelled";
    return out;
  }
  if (running != 0) {
    out.error = "libcurl could not drive the transfer";
    return out;
  }
  if (result != CURLE_OK) {
    out.error = c.too_large ? "the answer passed " + std::to_string(kMaxBodyBytes) + " bytes"
                            : std::string(curl_easy_strerror(result));
    if (c.error[0] != '\0') out.error += std::string(" (") + c.error.data() + ")";
    return out;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out.status);
  out.body = std::move(c.body);
  c.body.clear();
  return out;
}

}  // namespace nodewarden::kube
