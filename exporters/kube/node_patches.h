// The bodies the placement feed sends to the API server for its node, built as pure functions so
// tests check them without a server:
//  - the condition: a strategic merge patch of /api/v1/nodes/<node>/status. Node status conditions
//    carry patchMergeKey "type" (core/v1 NodeStatus), so a patch listing only our condition merges
//    into the list by type and leaves every other condition untouched;
//  - the annotation: a JSON merge patch (RFC 7386) of /api/v1/nodes/<node>, whose value is the
//    node's scores as compact JSON;
//  - the taints: a JSON merge patch of spec.taints with metadata.resourceVersion.
//
// What a reader gets wrong: spec.taints has no merge key, so any patch of it replaces the whole
// list. The only safe write is read-modify-write: take the taints from a GET, add or remove ours
// (key and effect PreferNoSchedule; a taint with our key and another effect is someone else's),
// keep every other entry byte for byte, and send the resourceVersion the GET saw so that a change
// made in between is answered 409 Conflict instead of being overwritten.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "pipeline/detector/signals.h"

namespace nodewarden::kube {

inline constexpr std::string_view kTaintEffect = "PreferNoSchedule";
inline constexpr std::string_view kReasonHigh = "InterferenceHigh";
inline constexpr std::string_view kReasonLow = "InterferenceLow";

// RFC 3339 in UTC with second precision, as meta/v1 Time is written ("2024-05-01T12:00:00Z").
[[nodiscard]] std::string rfc3339(std::chrono::system_clock::time_point time);

struct ConditionState {
  bool status = false;  // "True": interference is high
  std::string message;
  std::chrono::system_clock::time_point heartbeat;
  // When status last changed, RFC 3339: kept as the node had it, so an agent restart (or the next
  // pod of a rollout) does not move it when the status stays the same.
  std::string transition;
};
[[nodiscard]] nlohmann::json conditionPatch(std::string_view type, const ConditionState& state);

// The annotation's value: {"interference_score":..,"saturation":{"cpu":..},"headroom":{..},
// "pressure":{..},"victims":n,"antagonists":n,"tainted":b,"updated":"<RFC 3339>"}; figures
// rounded to 3 decimals, a resource whose figure is unknown left out (never 0).
[[nodiscard]] std::string annotationValue(const detector::NodeSignals& signals, bool tainted,
                                          std::chrono::system_clock::time_point updated);
[[nodiscard]] nlohmann::json annotationPatch(std::string_view key, std::string_view value);

// True when `after` differs from `before` enough to be worth a write before the refresh interval:
// a score or ratio moved by at least 0.05, a figure appeared or vanished, the victim or antagonist
// count changed.
[[nodiscard]] bool materiallyChanged(const detector::NodeSignals& before,
                                     const detector::NodeSignals& after);

// Whether `taints` (a Node's spec.taints, null or absent meaning none) holds our taint.
[[nodiscard]] bool hasTaint(const nlohmann::json& taints, std::string_view key);
// spec.taints with our taint present or not; every other entry kept as it was, in order.
[[nodiscard]] nlohmann::json taintsWith(const nlohmann::json& taints, std::string_view key,
                                        bool present);
// {"metadata":{"resourceVersion":rv},"spec":{"taints":[...]}}
[[nodiscard]] nlohmann::json taintPatch(const nlohmann::json& taints,
                                        std::string_view resource_version);

}  // namespace nodewarden::kube
