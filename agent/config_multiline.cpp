#include "agent/config_multiline.h"

#include <yaml-cpp/yaml.h>

#include "agent/config.h"

namespace nodewarden {
namespace {

constexpr std::chrono::milliseconds kMinTimeout{10};
constexpr std::chrono::milliseconds kMaxTimeout{60000};
constexpr long long kMaxLines = 100000;

std::optional<MultilineRule> readRule(const YAML::Node& node, int line, const std::string& path,
                                      CustomReader& reader) {
  if (!config_read::checkKeys(node, line, path, {"match", "start", "continue"}, reader)) {
    return std::nullopt;
  }
  MultilineRule rule;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = config_read::join(path, key);
    const int key_line = config_read::lineOf(entry.first);
    if (key == "match") {
      auto selector = config_read::selector(entry.second, key_line, field, reader);
      if (!selector) return std::nullopt;
      rule.match = std::move(*selector);
      continue;
    }
    auto pattern = config_read::regex(entry.second, key_line, field, reader);
    if (!pattern) return std::nullopt;
    if (pattern->empty()) {
      reader.fail(key_line, field, "an empty pattern matches every line");
      return std::nullopt;
    }
    (key == "start" ? rule.start : rule.continue_pattern) = std::move(*pattern);
  }
  if (rule.start.empty() == rule.continue_pattern.empty()) {
    reader.fail(line, path, "a rule needs exactly one of start and continue");
    return std::nullopt;
  }
  return rule;
}

}  // namespace

void readMultiline(const YAML::Node& node, int line, const std::string& path, Config& config,
                   CustomReader& reader) {
  if (node.IsNull()) return;
  if (!config_read::checkKeys(node, line, path,
                              {"enabled", "builtin", "flush_timeout", "max_lines", "rules"},
                              reader)) {
    return;
  }
  MultilineOptions out = config.logs.multiline;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = config_read::join(path, key);
    const int key_line = config_read::lineOf(entry.first);
    const YAML::Node& value = entry.second;
    if (key == "enabled") {
      auto v = config_read::boolean(value, key_line, field, reader);
      if (!v) return;
      out.enabled = *v;
    } else if (key == "builtin") {
      std::vector<std::string> names;
      if (!value.IsNull()) {
        auto v = config_read::stringList(value, key_line, field, reader);
        if (!v) return;
        names = std::move(*v);
      }
      out.jvm = out.python = out.go = false;
      for (const auto& name : names) {
        bool* flag = name == "jvm"      ? &out.jvm
                     : name == "python" ? &out.python
                     : name == "go"     ? &out.go
                                        : nullptr;
        if (flag == nullptr) {
          reader.fail(key_line, field,
                      "unknown built-in rule \"" + name + "\" (known: jvm, python, go)");
          return;
        }
        *flag = true;
      }
    } else if (key == "flush_timeout") {
      auto v = config_read::duration(value, key_line, field, kMinTimeout, kMaxTimeout, reader);
      if (!v) return;
      out.flush_timeout = *v;
    } else if (key == "max_lines") {
      auto v = config_read::integer(value, key_line, field, 2, kMaxLines, reader);
      if (!v) return;
      out.max_lines = static_cast<std::size_t>(*v);
    } else if (key == "rules") {
      out.rules.clear();
      if (value.IsNull()) continue;
      if (!value.IsSequence()) {
        reader.fail(key_line, field, "expected a list of rules");
        return;
      }
      for (const auto& item : value) {
        const std::string item_path =
            config_read::join(field, "[" + std::to_string(out.rules.size()) + "]");
        auto rule = readRule(item, config_read::lineOf(item), item_path, reader);
        if (!rule) return;
        out.rules.push_back(std::move(*rule));
      }
    }
  }
  config.logs.multiline = std::move(out);
}

std::string writeMultiline(const Config& config, int indent) {
  const MultilineOptions& m = config.logs.multiline;
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  std::vector<std::string> builtin;
  if (m.jvm) builtin.emplace_back("jvm");
  if (m.python) builtin.emplace_back("python");
  if (m.go) builtin.emplace_back("go");
  std::string out = "\n";
  out += pad + "enabled: " + (m.enabled ? "true" : "false") + "\n";
  out += pad + "# stack traces joined into one entry: jvm, python (tracebacks), go (panics)\n";
  out += pad + "builtin: " + config_write::list(builtin) + "\n";
  out += pad + "# a held line or trace waits this long for its next line\n";
  out += pad + "flush_timeout: " + config_write::duration(m.flush_timeout) + "\n";
  out += pad + "# lines per entry at most (and collectors.logs.max_line_bytes)\n";
  out += pad + "max_lines: " + std::to_string(m.max_lines) + "\n";
  out += pad +
         "# per stream, the first that matches: {match: {namespaces, pods, containers, streams,\n";
  out += pad + "# pod_labels}, start: RE2} (a matching line starts an entry) or continue: RE2\n";
  out += pad + "# (a matching line joins the previous one); such streams get no built-in rule\n";
  out += pad + "rules:";
  if (m.rules.empty()) return out + " []";
  for (const MultilineRule& rule : m.rules) {
    out += "\n" + pad + "  - match: " + config_write::selector(rule.match) + "\n";
    out += pad + "    " +
           (rule.start.empty() ? "continue: " + config_write::scalar(rule.continue_pattern)
                               : "start: " + config_write::scalar(rule.start));
  }
  return out;
}

bool equalMultiline(const Config& a, const Config& b) {
  const MultilineOptions& x = a.logs.multiline;
  const MultilineOptions& y = b.logs.multiline;
  return x.enabled == y.enabled && x.jvm == y.jvm && x.python == y.python && x.go == y.go &&
         x.flush_timeout == y.flush_timeout && x.max_lines == y.max_lines && x.rules == y.rules;
}

}  // namespace nodewarden
