#include "agent/config_custom.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "agent/config.h"

namespace nodewarden {
namespace config_read {
namespace {

bool isQuoted(const YAML::Node& node) { return node.Tag() == "!"; }

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return (isQuoted(node) ? "the quoted string \"" : "\"") + node.Scalar() + "\"";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

}  // namespace

int lineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

std::string join(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  if (key.starts_with('[')) return path + std::string(key);
  return path + "." + std::string(key);
}

bool checkKeys(const YAML::Node& node, int line, const std::string& path,
               std::initializer_list<std::string_view> allowed, CustomReader& reader) {
  if (!node.IsMap()) {
    reader.fail(line, path, "expected a mapping, found " + describe(node));
    return false;
  }
  std::vector<std::string> seen;
  for (const auto& entry : node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      reader.fail(lineOf(key), path, "keys must be plain names, found " + describe(key));
      return false;
    }
    if (std::ranges::find(seen, key.Scalar()) != seen.end()) {
      reader.fail(lineOf(key), join(path, key.Scalar()), "duplicate key");
      return false;
    }
    seen.push_back(key.Scalar());
    if (std::ranges::find(allowed, std::string_view(key.Scalar())) == allowed.end()) {
      std::string names;
      for (const auto name : allowed) {
        if (!names.empty()) names += ", ";
        names += name;
      }
      reader.fail(lineOf(key), join(path, key.Scalar()), "unknown key (known here: " + names + ")");
      return false;
    }
  }
  return true;
}

std::optional<std::string> string(const YAML::Node& node, int line, const std::string& path,
                                  CustomReader& reader) {
  if (!node.IsScalar()) {
    reader.fail(line, path, "expected a string, found " + describe(node));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<bool> boolean(const YAML::Node& node, int line, const std::string& path,
                            CustomReader& reader) {
  bool value = false;
  if (!node.IsScalar() || isQuoted(node) || !YAML::convert<bool>::decode(node, value)) {
    reader.fail(line, path, "expected true or false, found " + describe(node));
    return std::nullopt;
  }
  return value;
}

std::optional<long long> integer(const YAML::Node& node, int line, const std::string& path,
                                 long long min, long long max, CustomReader& reader) {
  long long value = 0;
  if (!node.IsScalar() || isQuoted(node) || !YAML::convert<long long>::decode(node, value)) {
    reader.fail(line, path, "expected an integer, found " + describe(node));
    return std::nullopt;
  }
  if (value < min || value > max) {
    reader.fail(line, path,
                "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                    ", got " + std::to_string(value));
    return std::nullopt;
  }
  return value;
}

std::optional<double> number(const YAML::Node& node, int line, const std::string& path,
                             CustomReader& reader) {
  double value = 0;
  if (!node.IsScalar() || isQuoted(node) || !YAML::convert<double>::decode(node, value) ||
      !(value >= 0) || value > 1e15) {
    reader.fail(line, path, "expected a number of at least 0, found " + describe(node));
    return std::nullopt;
  }
  return value;
}

std::optional<std::chrono::milliseconds> duration(const YAML::Node& node, int line,
                                                  const std::string& path,
                                                  std::chrono::milliseconds min,
                                                  std::chrono::milliseconds max,
                                                  CustomReader& reader) {
  if (!node.IsScalar()) {
    reader.fail(line, path, "expected a duration such as \"10s\", found " + describe(node));
    return std::nullopt;
  }
  const auto value = parseDuration(node.Scalar());
  if (!value) {
    reader.fail(line, path, value.error());
    return std::nullopt;
  }
  if (*value < min || *value > max) {
    reader.fail(line, path,
                "must be between " + config_write::duration(min) + " and " +
                    config_write::duration(max) + ", got " + config_write::duration(*value));
    return std::nullopt;
  }
  return *value;
}

std::optional<std::uint64_t> byteSize(const YAML::Node& node, int line, const std::string& path,
                                      CustomReader& reader) {
  if (!node.IsScalar() || isQuoted(node)) {
    reader.fail(line, path, "expected a size such as 1MiB, found " + describe(node));
    return std::nullopt;
  }
  const auto value = parseByteSize(node.Scalar());
  if (!value) {
    reader.fail(line, path, value.error());
    return std::nullopt;
  }
  return *value;
}

std::optional<std::vector<std::string>> stringList(const YAML::Node& node, int line,
                                                   const std::string& path, CustomReader& reader) {
  if (node.IsScalar()) return std::vector<std::string>{node.Scalar()};
  if (!node.IsSequence()) {
    reader.fail(line, path, "expected a list of strings, found " + describe(node));
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const auto& item : node) {
    if (!item.IsScalar()) {
      reader.fail(lineOf(item), join(path, "[" + std::to_string(out.size()) + "]"),
                  "expected a string, found " + describe(item));
      return std::nullopt;
    }
    out.push_back(item.Scalar());
  }
  return out;
}

std::optional<std::map<std::string, std::string>> stringMap(const YAML::Node& node, int line,
                                                            const std::string& path,
                                                            CustomReader& reader) {
  if (node.IsNull()) return std::map<std::string, std::string>{};
  if (!node.IsMap()) {
    reader.fail(line, path, "expected a mapping of strings, found " + describe(node));
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) {
      reader.fail(lineOf(entry.first), path,
                  "keys must be strings, found " + describe(entry.first));
      return std::nullopt;
    }
    const std::string key = entry.first.Scalar();
    if (!entry.second.IsScalar()) {
      reader.fail(lineOf(entry.first), join(path, key),
                  "expected a string, found " + describe(entry.second));
      return std::nullopt;
    }
    if (!out.emplace(key, entry.second.Scalar()).second) {
      reader.fail(lineOf(entry.first), join(path, key), "duplicate key");
      return std::nullopt;
    }
  }
  return out;
}

std::optional<std::string> regex(const YAML::Node& node, int line, const std::string& path,
                                 CustomReader& reader) {
  auto text = string(node, line, path, reader);
  if (!text) return std::nullopt;
  RE2::Options options;
  options.set_log_errors(false);
  const RE2 re(*text, options);
  if (!re.ok()) {
    reader.fail(line, path, "not a valid RE2 regular expression: " + re.error());
    return std::nullopt;
  }
  return text;
}

std::optional<LogSelector> selector(const YAML::Node& node, int line, const std::string& path,
                                    CustomReader& reader) {
  if (node.IsNull()) return LogSelector{};
  if (!checkKeys(node, line, path, {"namespaces", "pods", "containers", "streams", "pod_labels"},
                 reader)) {
    return std::nullopt;
  }
  LogSelector out;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = join(path, key);
    const int key_line = lineOf(entry.first);
    if (key == "pod_labels") {
      auto labels = stringMap(entry.second, key_line, field, reader);
      if (!labels) return std::nullopt;
      out.pod_labels = std::move(*labels);
      continue;
    }
    auto values = stringList(entry.second, key_line, field, reader);
    if (!values) return std::nullopt;
    if (key == "namespaces") out.namespaces = std::move(*values);
    if (key == "pods") out.pods = std::move(*values);
    if (key == "containers") out.containers = std::move(*values);
    if (key == "streams") {
      for (const auto& s : *values) {
        if (s != "stdout" && s != "stderr") {
          reader.fail(key_line, field, "must be stdout or stderr, got \"" + s + "\"");
          return std::nullopt;
        }
      }
      out.streams = std::move(*values);
    }
  }
  return out;
}

}  // namespace config_read

namespace config_write {

std::string list(const std::vector<std::string>& values) {
  std::string out = "[";
  for (const auto& value : values) {
    if (out.size() > 1) out += ", ";
    out += scalar(value);
  }
  return out + "]";
}

std::string map(const std::map<std::string, std::string>& values) {
  std::string out = "{";
  for (const auto& [key, value] : values) {
    if (out.size() > 1) out += ", ";
    out += scalar(key) + ": " + scalar(value);
  }
  return out + "}";
}

std::string selector(const LogSelector& selector) {
  std::string out;
  const auto add = [&](std::string_view key, const std::vector<std::string>& values) {
    if (values.empty()) return;
    if (!out.empty()) out += ", ";
    out += std::string(key) + ": " + list(values);
  };
  add("namespaces", selector.namespaces);
  add("pods", selector.pods);
  add("containers", selector.containers);
  add("streams", selector.streams);
  if (!selector.pod_labels.empty()) {
    if (!out.empty()) out += ", ";
    out += "pod_labels: " + map(selector.pod_labels);
  }
  return "{" + out + "}";
}

}  // namespace config_write
}  // namespace nodewarden
