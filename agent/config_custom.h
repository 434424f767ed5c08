// A config key whose value the schema's row types cannot say (a list of rules, a map of tenants):
// a `Custom` row in agent/config.cpp's schema names the module's own reader, writer and
// comparison, and the helpers here read the common pieces (strings, lists, maps, a LogSelector, a
// regular expression) with the same strictness and the same `FILE:LINE: FIELD: REASON` errors as
// every other key.
//
// What a reader gets wrong: a reader reports the first error through CustomReader::fail and
// returns; it never throws and never falls back to a default (an unknown key in a rule is an
// error, as everywhere). The writer produces the YAML that `nodewarden config` prints and that
// deploy/config/nodewarden.yaml holds, so what it writes must read back to an equal value.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/log_selector.h"

namespace YAML {
class Node;
}

namespace nodewarden {

struct Config;

// Where a custom reader sends its error: the parser's, with the file name it knows.
class CustomReader {
 public:
  virtual ~CustomReader() = default;
  // The first call wins; later ones are ignored.
  virtual void fail(int line, const std::string& field, std::string reason) = 0;
  [[nodiscard]] virtual bool failed() const = 0;
};

struct Custom {
  // Reads the value under the key (node, on line `line`; path is its dotted name) into config.
  void (*read)(const YAML::Node& node, int line, const std::string& path, Config& config,
               CustomReader& reader);
  // The value as YAML, right after "key:": " <scalar or flow>" on the key's line, or "\n" and a
  // block indented by `indent` spaces. No trailing newline.
  std::string (*write)(const Config& config, int indent);
  bool (*equal)(const Config& a, const Config& b);
};

namespace config_read {

// Line (1-based) of a node, 0 when yaml-cpp has no mark.
int lineOf(const YAML::Node& node);
// "a.b" + "c" -> "a.b.c"; "a" + "[2]" -> "a[2]".
std::string join(const std::string& path, std::string_view key);

// A mapping whose keys must all be in `allowed`; otherwise an error naming the unknown key (and the
// allowed ones). False on error or when node is not a mapping.
bool checkKeys(const YAML::Node& node, int line, const std::string& path,
               std::initializer_list<std::string_view> allowed, CustomReader& reader);
std::optional<std::string> string(const YAML::Node& node, int line, const std::string& path,
                                  CustomReader& reader);
std::optional<bool> boolean(const YAML::Node& node, int line, const std::string& path,
                            CustomReader& reader);
// An integer within [min, max].
std::optional<long long> integer(const YAML::Node& node, int line, const std::string& path,
                                 long long min, long long max, CustomReader& reader);
// A non-negative number (rates: 1000, 0.5).
std::optional<double> number(const YAML::Node& node, int line, const std::string& path,
                             CustomReader& reader);
// A duration such as "3s" (the schema's syntax), within [min, max].
std::optional<std::chrono::milliseconds> duration(const YAML::Node& node, int line,
                                                  const std::string& path,
                                                  std::chrono::milliseconds min,
                                                  std::chrono::milliseconds max,
                                                  CustomReader& reader);
// A size such as "1MiB".
std::optional<std::uint64_t> byteSize(const YAML::Node& node, int line, const std::string& path,
                                      CustomReader& reader);
// A list of strings; a single scalar is a list of one.
std::optional<std::vector<std::string>> stringList(const YAML::Node& node, int line,
                                                   const std::string& path, CustomReader& reader);
// A mapping of strings to strings.
std::optional<std::map<std::string, std::string>> stringMap(const YAML::Node& node, int line,
                                                            const std::string& path,
                                                            CustomReader& reader);
// A regular expression in RE2's syntax, compiled to check it; the error is RE2's.
std::optional<std::string> regex(const YAML::Node& node, int line, const std::string& path,
                                 CustomReader& reader);
// A selector: namespaces, pods, containers, streams (stdout/stderr), pod_labels.
std::optional<LogSelector> selector(const YAML::Node& node, int line, const std::string& path,
                                    CustomReader& reader);

}  // namespace config_read

namespace config_write {

// A scalar as YAML writes it: plain when that reads back as the same string, else double-quoted
// with escapes.
std::string scalar(std::string_view value);
// ["a", "b"] in flow style.
std::string list(const std::vector<std::string>& values);
// {a: b, c: d} in flow style.
std::string map(const std::map<std::string, std::string>& values);
// A selector in flow style ({} when it matches everything).
std::string selector(const LogSelector& selector);
std::string duration(std::chrono::milliseconds value);

}  // namespace config_write

}  // namespace nodewarden
