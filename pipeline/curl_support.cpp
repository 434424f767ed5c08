#include "pipeline/curl_support.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <string_view>
#include <utility>

namespace nodewarden {

void initCurlOnce() {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool appendHeader(CurlHeaders& list, const std::string& header) {
  curl_slist* next = curl_slist_append(list.get(), header.c_str());
  if (next == nullptr) return false;
  (void)list.release();  // curl_slist_append returned the same list, now longer
  list.reset(next);
  return true;
}

int abortWhenCancelled(void* cancelled, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancelled)->load() ? 1 : 0;
}

std::expected<std::string, std::string> readBearerTokenFile(const std::string& path) {
  constexpr std::size_t kMaxTokenBytes = std::size_t{1} << 20U;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(std::string("cannot be read"));
  std::string text;
  std::array<char, 4096> chunk{};
  while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0) {
    text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxTokenBytes) return std::unexpected(std::string("is over 1 MiB"));
  }
  constexpr std::string_view kSpace = " \t\r\n";
  const auto begin = text.find_first_not_of(kSpace);
  if (begin == std::string::npos) return std::unexpected(std::string("is empty"));
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

std::optional<std::string> readBearerToken(const std::string& path) {
  auto token = readBearerTokenFile(path);
  if (!token) return std::nullopt;
  return std::move(*token);
}

namespace {

std::size_t keepReply(char* data, std::size_t size, std::size_t count, void* user) {
  auto* reply = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (reply->size() < CurlPoster::kMaxReplyBytes) {
    reply->append(data, std::min(n, CurlPoster::kMaxReplyBytes - reply->size()));
  }
  return n;  // the rest is read and discarded, so the connection stays usable
}

}  // namespace

CurlPoster::~CurlPoster() {
  if (handle_ != nullptr) curl_easy_cleanup(handle_);
}

std::expected<std::unique_ptr<CurlPoster>, std::string> CurlPoster::create(
    const CurlPostOptions& options, const std::atomic<bool>* cancelled) {
  initCurlOnce();
  std::unique_ptr<CurlPoster> p(new CurlPoster());
  p->handle_ = curl_easy_init();
  if (p->handle_ == nullptr) return std::unexpected("curl_easy_init failed");
  p->url_ = options.url;
  CURL* h = p->handle_;
  const long timeout_ms = static_cast<long>(options.timeout.count());
  // libcurl copies string options, so options need not outlive the handle.
  bool ok = curl_easy_setopt(h, CURLOPT_URL, options.url.c_str()) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;  // we are not alone in here
  ok = ok && curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str()) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &keepReply) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEDATA, &p->reply_) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->error_.data()) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &abortWhenCancelled) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFODATA, cancelled) == CURLE_OK;
  if (!options.ca_file.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str()) == CURLE_OK;
  }
  if (options.insecure_skip_verify) {
    ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
  }
  if (!options.basic_user.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC)) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_USERNAME, options.basic_user.c_str()) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PASSWORD, options.basic_password.c_str()) == CURLE_OK;
  }
  if (!options.no_proxy.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_NOPROXY, options.no_proxy.c_str()) == CURLE_OK;
  }
  if (!ok) {
    return std::unexpected(std::string("libcurl refused an option: ") + p->error_.data());
  }
  return p;
}

SendResult CurlPoster::post(std::string_view body, const CurlHeaders& headers,
                            SendStatus (*map_status)(long)) {
  CURL* h = handle_;
  reply_.clear();
  error_[0] = '\0';
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // the list dies with the caller
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);

  SendResult result;
  if (rc != CURLE_OK) {
    result.status = SendStatus::kRetry;
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      result.message = "cancelled";
      return result;
    }
    result.message = "POST " + url_ + ": " + curl_easy_strerror(rc);
    if (error_[0] != '\0') result.message += std::string(" (") + error_.data() + ")";
    return result;
  }
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_off_t retry_after = 0;  // libcurl reads both forms: seconds and an HTTP date
  if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
    result.retry_after = std::chrono::seconds(retry_after);
  }
  result.http_status = static_cast<int>(code);
  result.status = map_status(code);
  result.message = std::move(reply_);
  reply_.clear();
  return result;
}

}  // namespace nodewarden
