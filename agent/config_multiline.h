// collectors.logs.multiline: the multiline stage's config key (pipeline/log_multiline.h), a Custom
// row of the schema because it holds a list of rules.
//
// What a reader gets wrong: the writer writes every key, rules included, so what `nodewarden
// config` prints reads back to an equal value; max_bytes is not a key (it is
// collectors.logs.max_line_bytes, set by the agent) and equality ignores it.
#pragma once

#include <string>

#include "agent/config_custom.h"

namespace nodewarden {

// The row's reader, writer and comparison: Custom{readMultiline, writeMultiline, equalMultiline}.
void readMultiline(const YAML::Node& node, int line, const std::string& path, Config& config,
                   CustomReader& reader);
std::string writeMultiline(const Config& config, int indent);
bool equalMultiline(const Config& a, const Config& b);

}  // namespace nodewarden
