// loki.tenants: the config reader, writer and comparison of the Loki tenants map (a `Custom` row of
// agent/config.cpp's kLokiFields), checked with Loki's own rule for tenant ids.
#pragma once

#include "agent/config_custom.h"

namespace nodewarden {

// The row's functions (Custom's read, write, equal).
void readLokiTenants(const YAML::Node& node, int line, const std::string& path, Config& config,
                     CustomReader& reader);
std::string writeLokiTenants(const Config& config, int indent);
bool equalLokiTenants(const Config& a, const Config& b);

}  // namespace nodewarden
