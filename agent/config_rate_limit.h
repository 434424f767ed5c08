// collectors.logs.rate_limit: the per-stream rate limits of the log path
// (pipeline/log_rate_limit.h), a `Custom` row of the config schema because its overrides are a list
// of selectors with limits:
//
//   rate_limit:
//     enabled: true
//     lines_per_second: 50000      # per stream (a container's stdout or stderr, a journal unit)
//     bytes_per_second: 10MiB
//     burst: 5s                    # seconds of the rates, or {lines: 100000, bytes: 20MiB}
//     max_streams: 16384
//     overrides:
//       - match: {namespaces: [batch]}
//         lines_per_second: 1000
//         bytes_per_second: 1MiB
//
// What a reader gets wrong: a rate of 0 means no limit of that kind, not "drop everything" (that
// is a filter's job); an override that sets nothing, or has no `match`, is an error rather than a
// rule that quietly applies to every stream.
#pragma once

#include <string>

#include "agent/config_custom.h"

namespace nodewarden {

void readRateLimitConfig(const YAML::Node& node, int line, const std::string& path, Config& config,
                         CustomReader& reader);
std::string writeRateLimitConfig(const Config& config, int indent);
bool equalRateLimitConfig(const Config& a, const Config& b);

}  // namespace nodewarden
