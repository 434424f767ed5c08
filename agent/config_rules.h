// collectors.logs.filters and collectors.logs.redaction: the log path's rules, as Custom rows of
// the config schema (agent/config_custom.h). Every pattern is compiled with RE2 when the config is
// read, so a bad rule stops the agent at start with `FILE:LINE: FIELD: REASON`: an invalid
// pattern, a duplicate rule name, a rule with no action or two, a pattern that matches every line
// (a filter that would drop everything) or the empty string (a redaction that would mask nothing).
//
// What a reader gets wrong: the writers' output is what `nodewarden config` prints and what
// deploy/config/nodewarden.yaml holds, comments included (the built-in rules and an example
// filter), and it must read back to an equal value (tests/unit/agent/config_rules_test.cpp).
#pragma once

#include <string>

#include "agent/config_custom.h"

namespace YAML {
class Node;
}

namespace nodewarden {

struct Config;

namespace config_rules {

void readFilters(const YAML::Node& node, int line, const std::string& path, Config& config,
                 CustomReader& reader);
std::string writeFilters(const Config& config, int indent);
bool equalFilters(const Config& a, const Config& b);

void readRedaction(const YAML::Node& node, int line, const std::string& path, Config& config,
                   CustomReader& reader);
std::string writeRedaction(const Config& config, int indent);
bool equalRedaction(const Config& a, const Config& b);

inline constexpr Custom kFilters{readFilters, writeFilters, equalFilters};
inline constexpr Custom kRedaction{readRedaction, writeRedaction, equalRedaction};

}  // namespace config_rules
}  // namespace nodewarden
