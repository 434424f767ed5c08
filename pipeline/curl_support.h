// What every libcurl client of the agent (the Loki exporter, the kubelet and API-server pod
// sources) needs alike: one global initialisation, header lists that free themselves, and a
// progress callback that aborts a transfer when the owner is shutting down.
//
// What a reader gets wrong: curl_global_init is not thread-safe and must run before any easy
// handle exists in any thread; initCurlOnce() is the one place that calls it.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

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

// A bearer token file's content without surrounding white space; nullopt when the file cannot be
// read, is over 1 MiB (no token is), or holds only white space. Read per request: projected
// service-account tokens rotate.
std::optional<std::string> readBearerToken(const std::string& path);

}  // namespace nodewarden
