// The few interfaces the metric path is built from. Collectors fill a Snapshot; consumers read it.
// agent/ wires them; neither side knows the other's concrete types.
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

// Reads a finished Snapshot. Called on the collection thread after every collector has run.
class SnapshotConsumer {
 public:
  virtual ~SnapshotConsumer() = default;
  virtual void consume(const Snapshot& snapshot) = 0;
};

}  // namespace nodewarden
