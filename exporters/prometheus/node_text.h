// Renders the node's own readings (NodeSample) as Prometheus text exposition format 0.0.4 under
// node_exporter's metric names, label keys and units, so node dashboards and alerts work unchanged.
//
// What a reader gets wrong: the sample holds kernel units (USER_HZ ticks, microseconds, meminfo
// bytes or page counts) and conversion to seconds happens here; and only what the sample marks
// present is written, so a section the collector could not read is absent, never zero.
#pragma once

#include <string>

#include "pipeline/snapshot.h"

namespace nodewarden {

// Appends every present node series, each family with its # HELP and # TYPE lines, to out.
// Allocates nothing beyond growing out.
void appendNodeMetrics(const NodeSample& node, std::string& out);

// Appends cAdvisor's machine_cpu_cores (the per-cpu lines of /proc/stat: the online logical CPUs)
// and machine_memory_bytes (MemTotal), when the sample has them. cAdvisor's boot_id, machine_id
// and system_uuid labels are not written (README, differences from cAdvisor).
void appendMachineMetrics(const NodeSample& node, std::string& out);

}  // namespace nodewarden
