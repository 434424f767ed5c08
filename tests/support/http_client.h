// httpGet: one blocking HTTP GET through libcurl, for tests and the demo talking to the agent and
// to Prometheus on 127.0.0.1.
//
// What a reader gets wrong: a response with status 503 is a success of this function (the agent's
// /readyz answers 503 until its first collection); only transport failures are errors.
#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <string_view>

namespace nodewarden::testing {

struct HttpResponse {
  long status = 0;
  std::string body;
};

std::expected<HttpResponse, std::string> httpGet(
    const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// A loopback TCP port nobody listens on right now (bound to 0, then released for a child to
// take); -1 if none could be had.
int freeLoopbackPort();

// Percent-encodes a query parameter value (PromQL has braces, quotes and brackets).
std::string urlEncode(std::string_view text);

}  // namespace nodewarden::testing
