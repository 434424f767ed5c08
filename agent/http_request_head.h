// The HTTP/1.x request head as the agent's listener reads it from any client that reaches the pod
// IP: the request line and header fields (RFC 9112 sections 2-5), and the query string's
// percent-encoded values (RFC 3986 section 2.1, with '+' as a space as HTML forms send it).
//
// What a reader gets wrong: this is outside input, parsed by hand, so it is strict and bounded.
// The caller bounds the head's size before it gets here (the listener refuses a longer one); this
// code never allocates more than the head's length, keeps views into the caller's buffer, and
// answers every malformed head with an error that says why (and is fuzzed, tests/fuzz).
#pragma once

#include <cstddef>
#include <expected>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nodewarden::http {

struct RequestHead {
  std::string_view method;  // e.g. GET; a token, case-sensitive
  std::string_view path;    // the request target up to '?', raw (not percent-decoded)
  std::string_view query;   // after '?', raw; empty when none
  int minor_version = 1;    // HTTP/1.<minor>: 0 or 1
  std::string_view accept_encoding;
  bool keep_alive = true;  // HTTP/1.1 unless "Connection: close"; 1.0 only with "keep-alive"
  bool has_body = false;   // Content-Length other than 0, or any Transfer-Encoding
};

// Offset just past the blank line that ends a head ("\r\n\r\n") in `buffer`, or npos when the
// head is not complete yet.
std::size_t findHeadEnd(std::string_view buffer);

// Parses a complete head (up to and including its blank line). The views point into `head`
// (except the path of an absolute-form target without one, "http://node", which is a static "/").
std::expected<RequestHead, std::string> parseRequestHead(std::string_view head);

// Decodes a query string into (name, value) pairs, in order. A malformed percent-escape ("%zz",
// a '%' near the end) in a name or value fails with a message naming the offending text.
std::expected<std::vector<std::pair<std::string, std::string>>, std::string> parseQuery(
    std::string_view query);

}  // namespace nodewarden::http
