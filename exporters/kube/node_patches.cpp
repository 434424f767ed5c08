// The placement feed's patch bodies (see node_patches.h for the patch types and why).
#include "exporters/kube/node_patches.h"

#include <array>
#include <cmath>
#include <ctime>

namespace nodewarden::kube {
namespace {

using nlohmann::json;

constexpr double kMaterial = 0.05;

double rounded(double value) { return std::round(value * 1000.0) / 1000.0; }

json perResource(const std::array<std::optional<double>, detector::kResources>& values) {
  json out = json::object();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] && std::isfinite(*values[i]))
      out[detector::resourceName(static_cast<detector::Resource>(i))] = rounded(*values[i]);
  }
  return out;
}

bool moved(const std::optional<double>& a, const std::optional<double>& b) {
  if (a.has_value() != b.has_value()) return true;
  return a && std::fabs(*a - *b) >= kMaterial;
}

bool isOurs(const json& taint, std::string_view key) {
  if (!taint.is_object()) return false;
  const auto k = taint.find("key");
  const auto e = taint.find("effect");
  return k != taint.end() && k->is_string() && k->get_ref<const std::string&>() == key &&
         e != taint.end() && e->is_string() && e->get_ref<const std::string&>() == kTaintEffect;
}

}  // namespace

std::string rfc3339(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&t, &utc);
  std::array<char, 32> out{};
  const std::size_t n = std::strftime(out.data(), out.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return {out.data(), n};
}

json conditionPatch(std::string_view type, const ConditionState& state) {
  json condition = {{"type", type},
                    {"status", state.status ? "True" : "False"},
                    {"reason", state.status ? kReasonHigh : kReasonLow},
                    {"message", state.message},
                    {"lastHeartbeatTime", rfc3339(state.heartbeat)},
                    {"lastTransitionTime", state.transition}};
  return json{{"status", {{"conditions", json::array({std::move(condition)})}}}};
}

std::string annotationValue(const detector::NodeSignals& signals, bool tainted,
                            std::chrono::system_clock::time_point updated) {
  const double score = std::isfinite(signals.interference_score) ? signals.interference_score : 0;
  const json value = {{"interference_score", rounded(score)},
                      {"saturation", perResource(signals.saturation)},
                      {"headroom", perResource(signals.headroom)},
                      {"pressure", perResource(signals.pressure)},
                      {"victims", signals.victims},
                      {"antagonists", signals.antagonists},
                      {"tainted", tainted},
                      {"updated", rfc3339(updated)}};
  return value.dump();
}

json annotationPatch(std::string_view key, std::string_view value) {
  return json{{"metadata", {{"annotations", {{key, value}}}}}};
}

bool materiallyChanged(const detector::NodeSignals& before, const detector::NodeSignals& after) {
  if (before.victims != after.victims || before.antagonists != after.antagonists) return true;
  if (moved(before.interference_score, after.interference_score)) return true;
  for (std::size_t i = 0; i < detector::kResources; ++i) {
    if (moved(before.saturation[i], after.saturation[i]) ||
        moved(before.headroom[i], after.headroom[i]) ||
        moved(before.pressure[i], after.pressure[i])) {
      return true;
    }
  }
  return false;
}

bool hasTaint(const json& taints, std::string_view key) {
  if (!taints.is_array()) return false;
  for (const json& taint : taints) {
    if (isOurs(taint, key)) return true;
  }
  return false;
}

json taintsWith(const json& taints, std::string_view key, bool present) {
  json out = json::array();
  bool have = false;
  if (taints.is_array()) {
    for (const json& taint : taints) {
      if (isOurs(taint, key)) {
        if (!present || have) continue;  // removed, or a duplicate of ours
        have = true;
      }
      out.push_back(taint);
    }
  }
  if (present && !have) out.push_back(json{{"key", key}, {"effect", kTaintEffect}});
  return out;
}

json taintPatch(const json& taints, std::string_view resource_version) {
  return json{{"metadata", {{"resourceVersion", resource_version}}},
              {"spec", {{"taints", taints}}}};
}

}  // namespace nodewarden::kube
