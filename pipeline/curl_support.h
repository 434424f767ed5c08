// What every libcurl client of the agent (the Loki exporter, the kubelet and API-server pod
// sources) needs alike: one global initialisation, header lists that free themselves, and a
// progress callback that aborts a transfer when the owner is shutting down.
//
// What a reader gets wrong: curl_global_init is not thread-safe and must run before any easy
// handle exists in any thread; initCurlOnce() is the one place that calls it.
#pragma once

#include <curl/curl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pipeline/log_exporter.h"

namespace nodewarden {

void initCurlOnce();

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlHeaders = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// Appends "Name: value" to the list; false when libcurl could not allocate.
bool appendHeader(CurlHeaders& list, const std::string& header);

// CURLOPT_XFERINFOFUNCTION with CURLOPT_XFERINFODATA pointing at a std::atomic<bool>: a non-zero
// return (the flag is set) aborts the transfer. libcurl calls it about once a second while idle.
int abortWhenCancelled(void* cancelled, curl_off_t, curl_off_t, curl_off_t, curl_off_t);

// A bearer token (or password) file's content without surrounding white space; an error says why
// not ("cannot be read", "is over 1 MiB", "is empty"), without the path. Read per request:
// projected service-account tokens rotate. The one reader of such files in the agent.
std::expected<std::string, std::string> readBearerTokenFile(const std::string& path);
// readBearerTokenFile() without the reason.
std::optional<std::string> readBearerToken(const std::string& path);

// What a push exporter (Loki, remote write) sets on its kept easy handle.
struct CurlPostOptions {
  std::string url;
  std::string ca_file;  // PEM bundle instead of the system's, when not empty
  bool insecure_skip_verify = false;
  std::string basic_user;  // basic auth, when not empty
  std::string basic_password;
  std::chrono::milliseconds timeout{10'000};  // the whole request, connect included
  std::string user_agent = "nodewarden";
  std::string no_proxy;  // libcurl's NOPROXY list, when not empty
};

// One libcurl easy handle kept for an exporter's life (one kept-alive connection, one TLS
// session) that POSTs bodies and reports the answer. Not thread-safe: one sender thread.
class CurlPoster {
 public:
  static constexpr std::size_t kMaxReplyBytes = 1024;  // the reply quoted in SendResult::message

  // cancelled (not owned) aborts a transfer in flight when set (about once a second).
  static std::expected<std::unique_ptr<CurlPoster>, std::string> create(
      const CurlPostOptions& options, const std::atomic<bool>* cancelled);
  ~CurlPoster();
  CurlPoster(const CurlPoster&) = delete;
  CurlPoster& operator=(const CurlPoster&) = delete;

  // POSTs body with the headers. A transport failure is kRetry with http_status 0; an answer is
  // mapped to a status by map_status, with its reply (truncated) and Retry-After.
  SendResult post(std::string_view body, const CurlHeaders& headers,
                  SendStatus (*map_status)(long http_status));

 private:
  CurlPoster() = default;
  CURL* handle_ = nullptr;
  std::string url_;
  std::string reply_;
  std::array<char, CURL_ERROR_SIZE> error_{};
};

}  // namespace nodewarden
