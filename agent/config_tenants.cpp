// loki.tenants, as the config file says it:
//
//   loki:
//     tenant: platform            # the default tenant (every line no rule below claims)
//     tenants:
//       namespaces: {team-a: a, team-b: b}   # namespace -> tenant
//       pod_label: loki-tenant    # a pod label whose value is the tenant (before the map)
//       max: 16                   # tenants open at once, the default's included
//       idle_timeout: 5m          # a tenant without lines this long closes when drained
//
// What a reader gets wrong: a tenant value is checked here with Loki's rule (validateLokiTenant),
// since a tenant Loki refuses answers 4xx and the shipper drops such batches. Pod label values are
// outside input and are checked again for every pod (pipeline/log_tenant_router.cpp).
#include "agent/config_tenants.h"

#include <yaml-cpp/yaml.h>

#include "agent/config.h"

namespace nodewarden {
namespace {

constexpr long long kMaxTenantsCap = 1000;

}  // namespace

void readLokiTenants(const YAML::Node& node, int line, const std::string& path, Config& config,
                     CustomReader& reader) {
  namespace cr = config_read;
  LogTenantOptions out;
  if (node.IsNull()) {
    config.loki.tenants = out;
    return;
  }
  if (!cr::checkKeys(node, line, path, {"namespaces", "pod_label", "max", "idle_timeout"},
                     reader)) {
    return;
  }
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string field = cr::join(path, key);
    const int key_line = cr::lineOf(entry.first);
    if (key == "namespaces") {
      auto map = cr::stringMap(entry.second, key_line, field, reader);
      if (!map) return;
      // Checked entry by entry, so that an error points at its own line.
      for (const auto& item : entry.second) {
        const std::string ns = item.first.Scalar();
        const int item_line = cr::lineOf(item.first);
        if (ns.empty()) {
          reader.fail(item_line, field, "a namespace must not be empty");
          return;
        }
        if (auto valid = validateLokiTenant(item.second.Scalar()); !valid) {
          reader.fail(item_line, cr::join(field, ns), valid.error());
          return;
        }
      }
      out.namespaces = std::move(*map);
    } else if (key == "pod_label") {
      auto label = cr::string(entry.second, key_line, field, reader);
      if (!label) return;
      out.pod_label = std::move(*label);
    } else if (key == "max") {
      auto max = cr::integer(entry.second, key_line, field, 1, kMaxTenantsCap, reader);
      if (!max) return;
      out.max_tenants = static_cast<int>(*max);
    } else if (key == "idle_timeout") {
      auto idle = cr::duration(entry.second, key_line, field, std::chrono::seconds(10),
                               std::chrono::hours(24), reader);
      if (!idle) return;
      out.idle_timeout = *idle;
    }
  }
  config.loki.tenants = std::move(out);
}

std::string writeLokiTenants(const Config& config, int indent) {
  namespace cw = config_write;
  const LogTenantOptions& t = config.loki.tenants;
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  std::string out;
  out += "\n" + pad + "# namespace -> tenant, e.g. {team-a: a}\n";
  out += pad + "namespaces: " + cw::map(t.namespaces) + "\n";
  out += pad + "# a pod label whose value is the pod's tenant (before the namespace map)\n";
  out += pad + "pod_label: " + cw::scalar(t.pod_label) + "\n";
  out += pad + "# tenants open at once, the default's included; more go to the default, counted\n";
  out += pad + "max: " + std::to_string(t.max_tenants) + "\n";
  out += pad + "# a tenant without lines this long closes once all it had is sent\n";
  out += pad + "idle_timeout: " + cw::duration(t.idle_timeout);
  return out;
}

bool equalLokiTenants(const Config& a, const Config& b) { return a.loki.tenants == b.loki.tenants; }

}  // namespace nodewarden
