// The few interfaces the metric path is built from. Collectors fill a Snapshot; consumers read it.
// agent/ wires them; neither side knows the other's concrete types.
//
// What a reader gets wrong: the consumers' order in a cycle is the agent's (agent/agent.cpp,
// wireConsumers): the ones that add to what a cycle shows (the detector's state, the pod series)
// run before the one that publishes the cycle (agent/metrics_publication.h), and remote write
// after it. And /metrics does not read the registry of pod and Job series or the snapshot being
// filled: it renders a published cycle, the same one remote write encodes.
#pragma once

#include <string_view>

#include "pipeline/snapshot.h"

namespace nodewarden {

// A source of readings for one collection cycle. collect() runs on the collection thread, must
// return promptly, and must not throw: outside-world failures are counted and skipped.
class MetricCollector {
 public:
  virtual ~MetricCollector() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  virtual void collect(Snapshot& into) = 0;
};

// Reads a finished Snapshot. Called on the collection thread after every collector has run, in the
// agent's order; must not keep the Snapshot (it is refilled next cycle): copy what must outlive it.
class SnapshotConsumer {
 public:
  virtual ~SnapshotConsumer() = default;
  virtual void consume(const Snapshot& snapshot) = 0;
};

}  // namespace nodewarden
