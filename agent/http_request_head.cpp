#include "agent/http_request_head.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>

namespace nodewarden::http {
namespace {

// tchar (RFC 9110 section 5.6.2): the characters of methods and field names.
bool isTokenChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  return !s.empty() &&
         std::ranges::all_of(s, [](char c) { return isTokenChar(static_cast<unsigned char>(c)); });
}

// field-value characters: visible, obs-text, space and tab; never CR, LF or NUL.
bool isFieldValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A quoted excerpt of outside text for an error message: printable ASCII only, at most 40 bytes.
std::string excerpt(std::string_view s) {
  std::string out = "\"";
  for (const char c : s.substr(0, 40)) {
    const auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f && c != '"' ? c : '?';
  }
  if (s.size() > 40) out += "...";
  return out + "\"";
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::expected<std::string, std::string> percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c != '%') {
      out += c;
    } else {
      const int hi = i + 1 < s.size() ? hexValue(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hexValue(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return std::unexpected("malformed percent-escape " + excerpt(s.substr(i, 3)) +
                               " (expected % and two hex digits)");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

// Splits a comma-separated header value (Connection: keep-alive, Upgrade) into trimmed items.
template <typename F>
void forEachListItem(std::string_view value, F f) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    f(trimOws(value.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

}  // namespace

std::size_t findHeadEnd(std::string_view buffer) {
  const std::size_t at = buffer.find("\r\n\r\n");
  return at == std::string_view::npos ? std::string_view::npos : at + 4;
}

std::expected<RequestHead, std::string> parseRequestHead(std::string_view head) {
  using Error = std::unexpected<std::string>;
  RequestHead out;
  const std::size_t line_end = head.find("\r\n");
  if (line_end == std::string_view::npos) return Error("request line not ended by CRLF");
  const std::string_view line = head.substr(0, line_end);

  // request-line = method SP request-target SP HTTP-version (RFC 9112 section 3)
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Error("request line " + excerpt(line) + " is not METHOD TARGET HTTP/1.x");
  }
  out.method = line.substr(0, sp1);
  if (!isToken(out.method)) return Error("method " + excerpt(out.method) + " is not a token");
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") {
    out.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    out.minor_version = 0;
    out.keep_alive = false;
  } else {
    return Error("version " + excerpt(version) + " is not HTTP/1.0 or HTTP/1.1");
  }
  if (target.empty() || !std::ranges::all_of(target, [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
      })) {
    return Error("request target " + excerpt(target) + " has a character outside URI syntax");
  }
  // absolute-form (RFC 9112 section 3.2.2) is accepted and reduced to its path and query.
  for (const std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        equalsIgnoreCase(target.substr(0, scheme.size()), scheme)) {
      const std::size_t slash = target.find_first_of("/?", scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  const std::size_t fragment = target.find('#');
  if (fragment != std::string_view::npos) target = target.substr(0, fragment);
  if (target.empty() || target.front() != '/') {
    return Error("request target " + excerpt(target) + " is not a path");
  }
  const std::size_t question = target.find('?');
  out.path = target.substr(0, question);
  if (question != std::string_view::npos) out.query = target.substr(question + 1);

  // field-line = field-name ":" OWS field-value OWS, each ended by CRLF, then an empty line.
  std::string_view rest = head.substr(line_end + 2);
  bool close = false;
  bool keep_alive = false;
  std::optional<std::uint64_t> content_length;
  while (true) {
    const std::size_t end = rest.find("\r\n");
    if (end == std::string_view::npos) return Error("head not ended by an empty line");
    const std::string_view field = rest.substr(0, end);
    rest.remove_prefix(end + 2);
    if (field.empty()) break;
    if (field.front() == ' ' || field.front() == '\t') {
      return Error("obsolete line folding in the header fields");
    }
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) {
      return Error("header field " + excerpt(field) + " has no ':'");
    }
    const std::string_view name = field.substr(0, colon);
    if (!isToken(name)) return Error("header field name " + excerpt(name) + " is not a token");
    const std::string_view value = trimOws(field.substr(colon + 1));
    if (!std::ranges::all_of(
            value, [](char c) { return isFieldValueChar(static_cast<unsigned char>(c)); })) {
      return Error("header field " + excerpt(name) + " has a control character in its value");
    }
    if (equalsIgnoreCase(name, "accept-encoding")) {
      if (out.accept_encoding.empty()) out.accept_encoding = value;
    } else if (equalsIgnoreCase(name, "connection")) {
      forEachListItem(value, [&](std::string_view item) {
        close = close || equalsIgnoreCase(item, "close");
        keep_alive = keep_alive || equalsIgnoreCase(item, "keep-alive");
      });
    } else if (equalsIgnoreCase(name, "content-length")) {
      std::uint64_t length = 0;
      const auto r = std::from_chars(value.data(), value.data() + value.size(), length);
      if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size()) {
        return Error("Content-Length " + excerpt(value) + " is not a number");
      }
      // Two differing lengths are a smuggling attempt (RFC 9112 section 6.3).
      if (content_length && *content_length != length) {
        return Error("conflicting Content-Length fields");
      }
      content_length = length;
      out.has_body = out.has_body || length != 0;
    } else if (equalsIgnoreCase(name, "transfer-encoding")) {
      out.has_body = true;
    }
  }
  if (!rest.empty()) return Error("bytes after the head's empty line");
  if (close) {
    out.keep_alive = false;
  } else if (keep_alive) {
    out.keep_alive = true;
  }
  return out;
}

std::expected<std::vector<std::pair<std::string, std::string>>, std::string> parseQuery(
    std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    auto name = percentDecode(part.substr(0, eq));
    if (!name) return std::unexpected("query parameter name: " + name.error());
    auto value =
        percentDecode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
    if (!value) return std::unexpected("query parameter " + excerpt(*name) + ": " + value.error());
    out.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

}  // namespace nodewarden::http
