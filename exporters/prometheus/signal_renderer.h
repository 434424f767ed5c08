// SignalRenderer: the detector's state as Prometheus text exposition, nodewarden_* families
// labelled namespace, pod, container (for container series) and node, for autoscalers (KEDA,
// prometheus-adapter), the descheduler's and Trimaran's recording rules, and alerts.
//
// What a reader gets wrong: cardinality is bounded by what is on the node now. Verdict series
// (nodewarden_noisy_neighbor_*) exist only while a verdict holds and disappear with it, so an
// alert on them is an alert on the verdict; a signal that could not be computed has no series
// rather than a 0.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "pipeline/detector/detector.h"

namespace nodewarden {

// Appends the families to out, handing out to flush (and clearing it) whenever it passes
// chunk_bytes and at the end; with no flush everything stays in out. Returns the number of series
// written.
std::size_t renderDetectorState(const detector::DetectorState& state,
                                const detector::DetectorOptions& options, std::string& out,
                                const std::function<void(std::string&)>& flush = {},
                                std::size_t chunk_bytes = 64 * 1024);

}  // namespace nodewarden
