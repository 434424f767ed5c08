#include "agent/config_rate_limit.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <charconv>

#include "agent/config.h"

namespace nodewarden {
namespace {

using config_read::join;
using config_read::lineOf;

std::string number(double value) {
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return ec == std::errc() ? std::string(buffer.data(), end) : std::to_string(value);
}

std::string size(std::uint64_t bytes) {
  constexpr std::pair<std::uint64_t, const char*> kUnits[] = {
      {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
  for (const auto& [unit, name] : kUnits) {
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + name;
  }
  return std::to_string(bytes);
}

std::optional<RateLimitBurst> readBurst(const YAML::Node& node, int line, const std::string& path,
                                        CustomReader& reader) {
  RateLimitBurst burst;
  if (node.IsScalar()) {
    auto d = config_read::duration(node, line, path, std::chrono::milliseconds(100),
                                   std::chrono::hours(1), reader);
    if (!d) return std::nullopt;
    burst.duration = *d;
    return burst;
  }
  if (!node.IsMap()) {
    reader.fail(line, path, "expected a duration such as 5s, or {lines: N, bytes: SIZE}");
    return std::nullopt;
  }
  if (!config_read::checkKeys(node, line, path, {"lines", "bytes"}, reader)) return std::nullopt;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = join(path, key);
    const int key_line = lineOf(entry.first);
    if (key == "lines") {
      auto v = config_read::number(entry.second, key_line, field, reader);
      if (!v) return std::nullopt;
      if (*v < 1) {
        reader.fail(key_line, field, "must be at least 1 (one line)");
        return std::nullopt;
      }
      burst.lines = *v;
    } else {
      auto v = config_read::byteSize(entry.second, key_line, field, reader);
      if (!v) return std::nullopt;
      if (*v == 0) {
        reader.fail(key_line, field, "must be more than 0");
        return std::nullopt;
      }
      burst.bytes = *v;
    }
  }
  if (!burst.explicitCounts()) {
    reader.fail(line, path, "a burst mapping needs lines, bytes or both");
    return std::nullopt;
  }
  return burst;
}

std::optional<RateLimitOverride> readOverride(const YAML::Node& node, int line,
                                              const std::string& path, CustomReader& reader) {
  if (!config_read::checkKeys(node, line, path,
                              {"match", "lines_per_second", "bytes_per_second", "burst"}, reader)) {
    return std::nullopt;
  }
  RateLimitOverride o;
  bool matched = false;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = join(path, key);
    const int key_line = lineOf(entry.first);
    if (key == "match") {
      auto selector = config_read::selector(entry.second, key_line, field, reader);
      if (!selector) return std::nullopt;
      o.match = std::move(*selector);
      matched = true;
    } else if (key == "lines_per_second") {
      auto v = config_read::number(entry.second, key_line, field, reader);
      if (!v) return std::nullopt;
      o.lines_per_second = *v;
    } else if (key == "bytes_per_second") {
      auto v = config_read::byteSize(entry.second, key_line, field, reader);
      if (!v) return std::nullopt;
      o.bytes_per_second = *v;
    } else {
      auto burst = readBurst(entry.second, key_line, field, reader);
      if (!burst) return std::nullopt;
      o.burst = *burst;
    }
  }
  if (!matched) {
    reader.fail(line, join(path, "match"),
                "missing: an override says which streams it is for (a selector: namespaces, pods, "
                "containers, streams, pod_labels)");
    return std::nullopt;
  }
  if (!o.lines_per_second && !o.bytes_per_second && !o.burst) {
    reader.fail(line, path, "sets no limit: give lines_per_second, bytes_per_second or burst");
    return std::nullopt;
  }
  return o;
}

std::string burstText(const RateLimitBurst& burst) {
  if (!burst.explicitCounts()) return config_write::duration(burst.duration);
  std::string out = "{";
  if (burst.lines > 0) out += "lines: " + number(burst.lines);
  if (burst.bytes > 0) {
    if (out.size() > 1) out += ", ";
    out += "bytes: " + size(burst.bytes);
  }
  return out + "}";
}

}  // namespace

void readRateLimitConfig(const YAML::Node& node, int line, const std::string& path, Config& config,
                         CustomReader& reader) {
  if (node.IsNull()) return;  // "rate_limit:" with everything below commented out
  if (!config_read::checkKeys(
          node, line, path,
          {"enabled", "lines_per_second", "bytes_per_second", "burst", "max_streams", "overrides"},
          reader)) {
    return;
  }
  RateLimitOptions out = config.logs.rate_limit;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = join(path, key);
    const int key_line = lineOf(entry.first);
    const YAML::Node& value = entry.second;
    if (key == "enabled") {
      auto v = config_read::boolean(value, key_line, field, reader);
      if (!v) return;
      out.enabled = *v;
    } else if (key == "lines_per_second") {
      auto v = config_read::number(value, key_line, field, reader);
      if (!v) return;
      out.lines_per_second = *v;
    } else if (key == "bytes_per_second") {
      auto v = config_read::byteSize(value, key_line, field, reader);
      if (!v) return;
      out.bytes_per_second = *v;
    } else if (key == "burst") {
      auto v = readBurst(value, key_line, field, reader);
      if (!v) return;
      out.burst = *v;
    } else if (key == "max_streams") {
      auto v = config_read::integer(value, key_line, field, 16, 1 << 20, reader);
      if (!v) return;
      out.max_streams = static_cast<std::size_t>(*v);
    } else {
      out.overrides.clear();
      if (value.IsNull()) continue;
      if (!value.IsSequence()) {
        reader.fail(key_line, field,
                    "expected a list of overrides ({match: ..., lines_per_second: ...})");
        return;
      }
      for (const auto& item : value) {
        const std::string item_path = join(field, "[" + std::to_string(out.overrides.size()) + "]");
        auto o = readOverride(item, lineOf(item), item_path, reader);
        if (!o) return;
        out.overrides.push_back(std::move(*o));
      }
    }
  }
  config.logs.rate_limit = std::move(out);
}

std::string writeRateLimitConfig(const Config& config, int indent) {
  const RateLimitOptions& o = config.logs.rate_limit;
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  std::string out;
  const auto key = [&](std::string_view comment, std::string_view name, const std::string& value) {
    out += "\n" + pad + "# " + std::string(comment);
    out += "\n" + pad + std::string(name) + ": " + value;
  };
  key("per stream (a container's stdout or stderr, a journal unit); what is dropped is counted "
      "and told by a marker line",
      "enabled", o.enabled ? "true" : "false");
  key("refilled on the lines' own timestamps (a backlog written at this rate passes); 0: no limit",
      "lines_per_second", number(o.lines_per_second));
  key("0: no limit", "bytes_per_second", size(o.bytes_per_second));
  key("seconds of the rates, or {lines: N, bytes: SIZE}", "burst", burstText(o.burst));
  key("streams limited at once; more pass unlimited (nodewarden_errors_total)", "max_streams",
      std::to_string(o.max_streams));
  out += "\n" + pad + "# the first whose match (a selector) selects a stream sets its limits";
  out += "\n" + pad + "overrides:";
  if (o.overrides.empty()) return out + " []";
  for (const auto& item : o.overrides) {
    out += "\n" + pad + "  - match: " + config_write::selector(item.match);
    if (item.lines_per_second) {
      out += "\n" + pad + "    lines_per_second: " + number(*item.lines_per_second);
    }
    if (item.bytes_per_second) {
      out += "\n" + pad + "    bytes_per_second: " + size(*item.bytes_per_second);
    }
    if (item.burst) out += "\n" + pad + "    burst: " + burstText(*item.burst);
  }
  return out;
}

bool equalRateLimitConfig(const Config& a, const Config& b) {
  return a.logs.rate_limit == b.logs.rate_limit;
}

}  // namespace nodewarden
