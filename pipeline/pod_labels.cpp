// Label key checks after k8s.io/apimachinery/pkg/util/validation (IsQualifiedName,
// IsDNS1123Subdomain), and label name sanitizing after Prometheus' strutil.SanitizeLabelName.
#include "pipeline/pod_labels.h"

namespace nodewarden {
namespace {

constexpr std::size_t kMaxNameLength = 63;
constexpr std::size_t kMaxPrefixLength = 253;

bool isLower(char c) { return c >= 'a' && c <= 'z'; }
bool isUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlnum(char c) { return isLower(c) || isUpper(c) || isDigit(c); }
bool isLabelNameChar(char c) { return isAlnum(c) || c == '_'; }

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters.
std::expected<void, std::string> checkName(std::string_view name) {
  if (name.empty()) return std::unexpected("the name part is empty");
  if (name.size() > kMaxNameLength) {
    return std::unexpected("the name part " + quoted(name) + " is longer than 63 characters");
  }
  if (!isAlnum(name.front()) || !isAlnum(name.back())) {
    return std::unexpected("the name part " + quoted(name) +
                           " must begin and end with a letter or digit");
  }
  for (const char c : name) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') {
      return std::unexpected("the name part " + quoted(name) +
                             " may hold only letters, digits, '-', '_' and '.'");
    }
  }
  return {};
}

// A DNS-1123 subdomain: dot-separated lower-case labels of [a-z0-9-], each beginning and ending
// with [a-z0-9]; at most 253 characters.
std::expected<void, std::string> checkPrefix(std::string_view prefix) {
  const auto bad = [&] {
    return std::unexpected("the prefix " + quoted(prefix) +
                           " is not a DNS subdomain (lower-case letters, digits, '-' and '.', "
                           "e.g. app.kubernetes.io)");
  };
  if (prefix.empty()) return std::unexpected(std::string("the prefix before '/' is empty"));
  if (prefix.size() > kMaxPrefixLength) {
    return std::unexpected("the prefix is longer than 253 characters");
  }
  std::string_view rest = prefix;
  while (true) {
    const auto dot = rest.find('.');
    const std::string_view part = rest.substr(0, dot);
    if (part.empty() || !(isLower(part.front()) || isDigit(part.front())) ||
        !(isLower(part.back()) || isDigit(part.back()))) {
      return bad();
    }
    for (const char c : part) {
      if (!isLower(c) && !isDigit(c) && c != '-') return bad();
    }
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return {};
}

std::string replaceInvalid(std::string_view key) {
  std::string out(key);
  for (char& c : out) {
    if (!isLabelNameChar(c)) c = '_';
  }
  return out;
}

}  // namespace

std::expected<void, std::string> checkPodLabelKey(std::string_view key) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return checkName(key);
  if (key.find('/', slash + 1) != std::string_view::npos) {
    return std::unexpected(std::string("holds more than one '/'"));
  }
  if (auto prefix = checkPrefix(key.substr(0, slash)); !prefix) return prefix;
  return checkName(key.substr(slash + 1));
}

std::string sanitizeLabelName(std::string_view key) {
  std::string out = replaceInvalid(key);
  if (out.empty() || isDigit(out.front())) out.insert(out.begin(), '_');
  return out;
}

std::string podLabelMetricName(std::string_view key) { return "label_" + replaceInvalid(key); }

}  // namespace nodewarden
