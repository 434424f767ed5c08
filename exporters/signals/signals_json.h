// GET /signals: the detector's state as JSON, for people and for KEDA's metrics-api trigger
// (valueLocation is a GJSON path such as "node_signals.interference_score" or
// "metrics.nodewarden_node_interference_score").
//
// What a reader gets wrong: a value the detector could not compute is left out of the object
// (not null, not 0), like the Prometheus series; timestamps are RFC 3339 UTC.
#pragma once

#include <string>

#include "pipeline/detector/signals.h"

namespace nodewarden {

// The placement feed's state as /signals reports it (absent when the feed is off).
struct PlacementView {
  bool enabled = false;
  bool dry_run = false;
  bool tainted = false;
  bool condition = false;
  std::string last_error;
};

struct SignalsQuery {
  std::string namespace_name;  // only this namespace's pods, containers and verdicts
  std::string pod;
  bool verdicts_only = false;  // leave out the pods and containers lists
};

std::string signalsJson(const detector::DetectorState& state, const PlacementView& placement,
                        const SignalsQuery& query = {});

}  // namespace nodewarden
