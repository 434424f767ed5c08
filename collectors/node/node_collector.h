// NodeCollector: the node's own readings from /proc (stat, meminfo, pressure, loadavg), exposed
// under node_exporter's names so existing node dashboards work.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include "pipeline/interfaces.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

class NodeCollector final : public MetricCollector {
 public:
  NodeCollector(std::filesystem::path proc_root, ErrorReporter& errors);
  ~NodeCollector() override;
  NodeCollector(const NodeCollector&) = delete;
  NodeCollector& operator=(const NodeCollector&) = delete;

  [[nodiscard]] std::string_view name() const override { return "node"; }
  void collect(Snapshot& into) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden
