#include "agent/config_rules.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>

#include "agent/config.h"
#include "pipeline/log_filter.h"
#include "pipeline/log_redaction.h"

namespace nodewarden::config_rules {
namespace {

using config_read::join;
using config_read::lineOf;

std::string kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return "\"" + node.Scalar() + "\"";
    default:
      return "nothing";
  }
}

// Rule names are metric label values and part of the redaction marker: plain words.
bool validName(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::ranges::all_of(name, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// A name, checked and unique among `seen` (name -> line of its rule).
std::optional<std::string> ruleName(const YAML::Node& node, int line, const std::string& path,
                                    std::map<std::string, int>& seen, CustomReader& reader) {
  auto name = config_read::string(node, line, path, reader);
  if (!name) return std::nullopt;
  if (!validName(*name)) {
    reader.fail(line, path,
                "must be 1-64 letters, digits, '_', '-' or '.' (it is a metric label), got \"" +
                    *name + "\"");
    return std::nullopt;
  }
  if (const auto it = seen.find(*name); it != seen.end()) {
    reader.fail(line, path,
                "duplicate rule name \"" + *name + "\" (first used on line " +
                    std::to_string(it->second) + ")");
    return std::nullopt;
  }
  seen.emplace(*name, line);
  return name;
}

std::unique_ptr<RE2> compiled(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  return std::make_unique<RE2>(pattern, options);
}

// Whether a pattern matches any line at all: it matches the empty string and lines of other
// shapes (an unanchored `x*`, `^`, `a|`), so a filter with it decides nothing.
bool matchesEveryLine(const RE2& re) {
  for (const char* probe : {"", " ", "x", "0", "\x01", "line of a log 123", "{\"msg\":1}"}) {
    if (!RE2::PartialMatch(probe, re)) return false;
  }
  return true;
}

std::string indentOf(int indent) { return std::string(static_cast<std::size_t>(indent), ' '); }

}  // namespace

// ---- collectors.logs.filters ------------------------------------------------------------------

void readFilters(const YAML::Node& node, int line, const std::string& path, Config& config,
                 CustomReader& reader) {
  std::vector<LogFilterRule> out;
  if (node.IsNull()) {
    config.logs.filters.clear();
    return;
  }
  if (!node.IsSequence()) {
    reader.fail(line, path, "expected a list of rules, found " + kind(node));
    return;
  }
  std::map<std::string, int> names;
  for (const auto& item : node) {
    const std::string item_path = join(path, "[" + std::to_string(out.size()) + "]");
    const int item_line = lineOf(item) != 0 ? lineOf(item) : line;
    if (!config_read::checkKeys(item, item_line, item_path,
                                {"name", "match", "drop_stream", "drop_lines", "keep_lines"},
                                reader)) {
      return;
    }
    LogFilterRule rule;
    bool named = false;
    std::string action;  // the first action key seen
    for (const auto& entry : item) {
      const std::string key = entry.first.Scalar();
      const std::string field = join(item_path, key);
      const int key_line = lineOf(entry.first);
      if (key == "name") {
        auto name = ruleName(entry.second, key_line, field, names, reader);
        if (!name) return;
        rule.name = std::move(*name);
        named = true;
        continue;
      }
      if (key == "match") {
        auto selector = config_read::selector(entry.second, key_line, field, reader);
        if (!selector) return;
        rule.match = std::move(*selector);
        continue;
      }
      if (key == "drop_stream") {
        const auto drop = config_read::boolean(entry.second, key_line, field, reader);
        if (!drop) return;
        if (!*drop) continue;  // no action: said below if there is no other
        rule.action = LogFilterRule::Action::kDropStream;
      } else {
        auto pattern = config_read::regex(entry.second, key_line, field, reader);
        if (!pattern) return;
        if (matchesEveryLine(*compiled(*pattern))) {
          reader.fail(key_line, field,
                      key == "drop_lines"
                          ? "matches every line (it matches the empty string); to drop a whole "
                            "stream use drop_stream: true"
                          : "matches every line (it matches the empty string): the rule would "
                            "keep everything");
          return;
        }
        rule.pattern = std::move(*pattern);
        rule.action = key == "drop_lines" ? LogFilterRule::Action::kDropLines
                                          : LogFilterRule::Action::kKeepLines;
      }
      if (!action.empty()) {
        reader.fail(key_line, field, "one action per rule, and this one has " + action + " too");
        return;
      }
      action = key;
    }
    if (!named) {
      reader.fail(item_line, item_path, "a rule needs a name (its counters' rule label)");
      return;
    }
    if (action.empty()) {
      reader.fail(item_line, item_path,
                  "rule \"" + rule.name +
                      "\" has no action: give drop_stream: true, drop_lines: PATTERN or "
                      "keep_lines: PATTERN");
      return;
    }
    if (rule.action == LogFilterRule::Action::kDropStream && rule.match.matchesEverything()) {
      reader.fail(item_line, item_path,
                  "rule \"" + rule.name +
                      "\": drop_stream without a match would drop every line of the node");
      return;
    }
    out.push_back(std::move(rule));
  }
  if (out.size() > kMaxFilterRules) {
    reader.fail(line, path, "at most " + std::to_string(kMaxFilterRules) + " rules");
    return;
  }
  config.logs.filters = std::move(out);
}

std::string writeFilters(const Config& config, int indent) {
  const std::string pad = indentOf(indent);
  if (config.logs.filters.empty()) {
    return " []\n" + pad +
           "# - name: team-a-debug            # unique: the counters' rule label\n" + pad +
           "#   match: {namespaces: [team-a]} # also pods, containers, streams, pod_labels\n" +
           pad +
           "#   drop_lines: \"\\\\bDEBUG\\\\b\"      # or keep_lines: RE2, or drop_stream: true";
  }
  std::string out;
  for (const auto& rule : config.logs.filters) {
    out += "\n" + pad + "- name: " + config_write::scalar(rule.name);
    if (!rule.match.matchesEverything()) {
      out += "\n" + pad + "  match: " + config_write::selector(rule.match);
    }
    switch (rule.action) {
      case LogFilterRule::Action::kDropStream:
        out += "\n" + pad + "  drop_stream: true";
        break;
      case LogFilterRule::Action::kDropLines:
        out += "\n" + pad + "  drop_lines: " + config_write::scalar(rule.pattern);
        break;
      case LogFilterRule::Action::kKeepLines:
        out += "\n" + pad + "  keep_lines: " + config_write::scalar(rule.pattern);
        break;
    }
  }
  return out;
}

bool equalFilters(const Config& a, const Config& b) { return a.logs.filters == b.logs.filters; }

// ---- collectors.logs.redaction ----------------------------------------------------------------

namespace {

std::optional<std::vector<LogRedactionRule>> readRedactionRules(const YAML::Node& node, int line,
                                                                const std::string& path,
                                                                CustomReader& reader) {
  std::vector<LogRedactionRule> out;
  if (node.IsNull()) return out;
  if (!node.IsSequence()) {
    reader.fail(line, path, "expected a list of rules, found " + kind(node));
    return std::nullopt;
  }
  std::map<std::string, int> names;
  for (const auto& builtin : builtinRedactions()) names.emplace(std::string(builtin.name), 0);
  for (const auto& item : node) {
    const std::string item_path = join(path, "[" + std::to_string(out.size()) + "]");
    const int item_line = lineOf(item) != 0 ? lineOf(item) : line;
    if (!config_read::checkKeys(item, item_line, item_path,
                                {"name", "pattern", "match", "replacement"}, reader)) {
      return std::nullopt;
    }
    LogRedactionRule rule;
    bool named = false;
    bool has_pattern = false;
    for (const auto& entry : item) {
      const std::string key = entry.first.Scalar();
      const std::string field = join(item_path, key);
      const int key_line = lineOf(entry.first);
      if (key == "name") {
        if (entry.second.IsScalar() && names.contains(entry.second.Scalar()) &&
            names.at(entry.second.Scalar()) == 0) {
          reader.fail(key_line, field,
                      "\"" + entry.second.Scalar() +
                          "\" is a built-in rule's name; choose another for a custom rule");
          return std::nullopt;
        }
        auto name = ruleName(entry.second, key_line, field, names, reader);
        if (!name) return std::nullopt;
        rule.name = std::move(*name);
        named = true;
      } else if (key == "pattern") {
        auto pattern = config_read::regex(entry.second, key_line, field, reader);
        if (!pattern) return std::nullopt;
        const auto re = compiled(*pattern);
        if (RE2::PartialMatch("", *re)) {
          reader.fail(key_line, field,
                      "matches the empty string: a redaction pattern must match the secret "
                      "itself");
          return std::nullopt;
        }
        if (re->NumberOfCapturingGroups() > 15) {
          reader.fail(key_line, field, "more than 15 capturing groups");
          return std::nullopt;
        }
        rule.pattern = std::move(*pattern);
        has_pattern = true;
      } else if (key == "match") {
        auto selector = config_read::selector(entry.second, key_line, field, reader);
        if (!selector) return std::nullopt;
        rule.match = std::move(*selector);
      } else if (key == "replacement") {
        auto replacement = config_read::string(entry.second, key_line, field, reader);
        if (!replacement) return std::nullopt;
        rule.replacement = std::move(*replacement);
      }
    }
    if (!named) {
      reader.fail(item_line, item_path, "a rule needs a name (its marker's and counter's)");
      return std::nullopt;
    }
    if (!has_pattern) {
      reader.fail(item_line, item_path,
                  "rule \"" + rule.name + "\" has no pattern (an RE2 regular expression)");
      return std::nullopt;
    }
    out.push_back(std::move(rule));
  }
  if (out.size() > kMaxRedactionRules) {
    reader.fail(line, path, "at most " + std::to_string(kMaxRedactionRules) + " rules");
    return std::nullopt;
  }
  return out;
}

}  // namespace

void readRedaction(const YAML::Node& node, int line, const std::string& path, Config& config,
                   CustomReader& reader) {
  if (node.IsNull()) return;
  if (!config_read::checkKeys(node, line, path, {"enabled", "builtin", "rules"}, reader)) return;
  LogRedactionOptions& options = config.logs.redaction;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = join(path, key);
    const int key_line = lineOf(entry.first);
    if (key == "enabled") {
      const auto enabled = config_read::boolean(entry.second, key_line, field, reader);
      if (!enabled) return;
      options.enabled = *enabled;
    } else if (key == "builtin") {
      auto names = config_read::stringList(entry.second, key_line, field, reader);
      if (!names) return;
      const auto known = builtinRedactionNames();
      for (std::size_t i = 0; i < names->size(); ++i) {
        const std::string& name = (*names)[i];
        const std::string item = join(field, "[" + std::to_string(i) + "]");
        if (std::ranges::find(known, name) == known.end()) {
          std::string list;
          for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
          reader.fail(key_line, item, "no built-in rule \"" + name + "\" (known: " + list + ")");
          return;
        }
        if (std::find(names->begin(), names->begin() + static_cast<std::ptrdiff_t>(i), name) !=
            names->begin() + static_cast<std::ptrdiff_t>(i)) {
          reader.fail(key_line, item, "\"" + name + "\" is listed twice");
          return;
        }
      }
      options.builtin = std::move(*names);
    } else if (key == "rules") {
      auto rules = readRedactionRules(entry.second, key_line, field, reader);
      if (!rules) return;
      options.rules = std::move(*rules);
    }
  }
}

std::string writeRedaction(const Config& config, int indent) {
  const LogRedactionOptions& options = config.logs.redaction;
  const std::string pad = indentOf(indent);
  std::string out = "\n" + pad + "enabled: " + (options.enabled ? "true" : "false");
  out += "\n" + pad + "# the built-in rules that run, in this order (default: all):";
  for (const auto& builtin : builtinRedactions()) {
    out += "\n" + pad + "#   " + std::string(builtin.name) + ": " + std::string(builtin.masks);
  }
  out += "\n" + pad + "builtin: " + config_write::list(options.builtin);
  out += "\n" + pad +
         "# custom rules after them: {name, pattern (RE2; with capturing groups only their text is"
         "\n" +
         pad +
         "# replaced), match (a selector, as in filters), replacement (default <redacted:NAME>)}";
  if (options.rules.empty()) return out + "\n" + pad + "rules: []";
  out += "\n" + pad + "rules:";
  for (const auto& rule : options.rules) {
    out += "\n" + pad + "  - name: " + config_write::scalar(rule.name);
    out += "\n" + pad + "    pattern: " + config_write::scalar(rule.pattern);
    if (!rule.match.matchesEverything()) {
      out += "\n" + pad + "    match: " + config_write::selector(rule.match);
    }
    if (!rule.replacement.empty()) {
      out += "\n" + pad + "    replacement: " + config_write::scalar(rule.replacement);
    }
  }
  return out;
}

bool equalRedaction(const Config& a, const Config& b) {
  return a.logs.redaction == b.logs.redaction;
}

}  // namespace nodewarden::config_rules
