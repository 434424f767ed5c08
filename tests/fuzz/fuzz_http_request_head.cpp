// libFuzzer target for the agent listener's request-head parser (agent/http_request_head): every
// input is taken as a head (up to its blank line, if it has one) and as a query string. Seeds are
// tests/fuzz/corpus/http (heads a scraper, a probe, curl and a hostile client send).
//
// What a reader gets wrong: this checks more than "no crash". A head that parses must hold what
// the server relies on (views inside the input, a path starting with '/', a token method, version
// 1.0 or 1.1); a decoded query value is never longer than its encoded text; anything else traps.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/http_request_head.h"

namespace {

void check(bool invariant) {
  if (!invariant) {
    __builtin_trap();
  }
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace http = nodewarden::http;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t end = http::findHeadEnd(in);
  check(end == std::string_view::npos || (end >= 4 && end <= in.size()));
  const std::string_view head_text = end == std::string_view::npos ? in : in.substr(0, end);
  if (auto head = http::parseRequestHead(head_text)) {
    check(end != std::string_view::npos);
    // An absolute-form target without a path ("http://node") gets the static "/".
    check(inside(head->method, head_text) && (inside(head->path, head_text) || head->path == "/") &&
          inside(head->query, head_text) && inside(head->accept_encoding, head_text));
    check(!head->method.empty() && !head->path.empty() && head->path.front() == '/');
    check(head->minor_version == 0 || head->minor_version == 1);
    if (auto params = http::parseQuery(head->query)) {
      std::size_t decoded = 0;
      for (const auto& [name, value] : *params) decoded += name.size() + value.size();
      check(decoded <= head->query.size());
    }
  } else {
    check(!head.error().empty());
  }
  if (auto params = http::parseQuery(in)) {
    for (const auto& [name, value] : *params) check(name.size() + value.size() <= in.size());
  } else {
    check(!params.error().empty());
  }
  return 0;
}
