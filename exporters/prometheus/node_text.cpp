// node_exporter-compatible text for the node's readings: stat (cpu collector + stat collector),
// meminfo, pressure and loadavg, in Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). Names, HELP texts, label keys
// and units are node_exporter's (collector/{cpu,stat,meminfo,pressure,loadavg}_linux.go).
//
// What a reader gets wrong: the meminfo sample does not carry the kernel's unit, so whether a key
// gets node_exporter's "_bytes" suffix is decided here by name. The only unit-less keys the kernel
// prints are the HugePages_{Total,Free,Rsvd,Surp} page counts (mm/hugetlb.c); everything else is
// printed in kB and was converted to bytes by the parser.
#include "exporters/prometheus/node_text.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace nodewarden {
namespace {

// USER_HZ: the unit of /proc/stat's cpu columns. It is 100 on every architecture the kernel
// exposes to user space (it is not CONFIG_HZ); node_exporter's procfs divides by the same.
constexpr double kUserHz = 100.0;
constexpr double kMicrosPerSecond = 1e6;

// Column order of a /proc/stat cpu line (proc.rst); the first eight are node_cpu_seconds_total
// modes, the last two are node_cpu_guest_seconds_total modes.
constexpr std::array<std::string_view, 8> kCpuModes = {"user",   "nice", "system",  "idle",
                                                       "iowait", "irq",  "softirq", "steal"};
constexpr std::size_t kGuestColumn = 8;
constexpr std::array<std::string_view, 2> kGuestModes = {"user", "nice"};

void appendNumber(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  std::array<char, 32> buf{};  // a shortest round-trip double needs at most 24
  const auto result = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  out.append(buf.data(), result.ptr);
}

void appendInteger(std::string& out, int value) {
  std::array<char, 16> buf{};
  const auto result = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  out.append(buf.data(), result.ptr);
}

void appendHeader(std::string& out, std::string_view name, std::string_view help,
                  std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void appendSample(std::string& out, std::string_view name, double value) {
  out += name;
  out += ' ';
  appendNumber(out, value);
  out += '\n';
}

void appendFamily(std::string& out, std::string_view name, std::string_view help,
                  std::string_view type, double value) {
  appendHeader(out, name, help, type);
  appendSample(out, name, value);
}

void appendCpuSample(std::string& out, std::string_view name, int cpu, std::string_view mode,
                     std::uint64_t ticks) {
  out += name;
  out += "{cpu=\"";
  appendInteger(out, cpu);
  out += "\",mode=\"";
  out += mode;
  out += "\"} ";
  appendNumber(out, static_cast<double>(ticks) / kUserHz);
  out += '\n';
}

void appendCpu(const NodeSample& node, std::string& out) {
  constexpr std::string_view kCpuName = "node_cpu_seconds_total";
  constexpr std::string_view kGuestName = "node_cpu_guest_seconds_total";
  if (!node.cpus.empty()) {
    appendHeader(out, kCpuName, "Seconds the CPUs spent in each mode.", "counter");
    for (const CpuTimes& cpu : node.cpus) {
      for (std::size_t i = 0; i < kCpuModes.size() && i < cpu.columns; ++i) {
        appendCpuSample(out, kCpuName, cpu.cpu, kCpuModes[i], cpu.ticks[i]);
      }
    }
  }
  bool any_guest = false;
  for (const CpuTimes& cpu : node.cpus) {
    any_guest = any_guest || cpu.columns > kGuestColumn;
  }
  if (any_guest) {
    appendHeader(out, kGuestName, "Seconds the CPUs spent in guests (VMs) for each mode.",
                 "counter");
    for (const CpuTimes& cpu : node.cpus) {
      for (std::size_t i = 0; i < kGuestModes.size() && kGuestColumn + i < cpu.columns; ++i) {
        appendCpuSample(out, kGuestName, cpu.cpu, kGuestModes[i], cpu.ticks[kGuestColumn + i]);
      }
    }
  }
}

void appendStat(const NodeSample& node, std::string& out) {
  appendCpu(node, out);
  appendFamily(out, "node_context_switches_total", "Total number of context switches.", "counter",
               static_cast<double>(node.context_switches));
  appendFamily(out, "node_boot_time_seconds", "Node boot time, in unixtime.", "gauge",
               static_cast<double>(node.boot_time_s));
  appendFamily(out, "node_forks_total", "Total number of forks.", "counter",
               static_cast<double>(node.forks));
  appendFamily(out, "node_intr_total", "Total number of interrupts serviced.", "counter",
               static_cast<double>(node.interrupts));
  appendFamily(out, "node_procs_running", "Number of processes in runnable state.", "gauge",
               static_cast<double>(node.procs_running));
  appendFamily(out, "node_procs_blocked",
               "Number of processes blocked waiting for I/O to complete.", "gauge",
               static_cast<double>(node.procs_blocked));
}

// node_exporter's meminfo key: "Active(anon)" -> "Active_anon" (regexp \((.*)\) -> _$1), plus
// "_bytes" for values the kernel printed in kB.
void appendMeminfoKey(std::string& out, std::string_view key) {
  for (const char c : key) {
    if (c == '(') {
      out += '_';
    } else if (c != ')') {
      out += c;
    }
  }
  if (!key.starts_with("HugePages_")) {
    out += "_bytes";
  }
}

void appendMeminfo(const NodeSample& node, std::string& out) {
  for (const auto& [key, value] : node.meminfo) {
    out += "# HELP node_memory_";
    appendMeminfoKey(out, key);
    out += " Memory information field ";
    appendMeminfoKey(out, key);
    out += ".\n# TYPE node_memory_";
    appendMeminfoKey(out, key);
    out += " gauge\nnode_memory_";
    appendMeminfoKey(out, key);
    out += ' ';
    appendNumber(out, static_cast<double>(value));
    out += '\n';
  }
}

void appendPsi(std::string& out, std::string_view name, std::string_view help, bool present,
               std::uint64_t total_us) {
  if (present) {
    appendFamily(out, name, help, "counter", static_cast<double>(total_us) / kMicrosPerSecond);
  }
}

void appendPressure(const NodeSample& node, std::string& out) {
  // some = at least one task stalled ("waiting"), full = all non-idle tasks stalled ("stalled").
  // The system-wide cpu "full" line (5.13+) is not exported, as node_exporter's list stands.
  appendPsi(out, "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time", node.psi_cpu.has_some,
            node.psi_cpu.some_us);
  appendPsi(out, "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory", node.psi_memory.has_some,
            node.psi_memory.some_us);
  appendPsi(out, "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
            node.psi_memory.has_full, node.psi_memory.full_us);
  appendPsi(out, "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
            node.psi_io.has_some, node.psi_io.some_us);
  appendPsi(out, "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
            node.psi_io.has_full, node.psi_io.full_us);
}

void appendLoad(const NodeSample& node, std::string& out) {
  appendFamily(out, "node_load1", "1m load average.", "gauge", node.load1);
  appendFamily(out, "node_load5", "5m load average.", "gauge", node.load5);
  appendFamily(out, "node_load15", "15m load average.", "gauge", node.load15);
}

}  // namespace

void appendMachineMetrics(const NodeSample& node, std::string& out) {
  // Names and help texts: cadvisor/metrics/prometheus_machine.go.
  if (node.has_stat && !node.cpus.empty()) {
    appendFamily(out, "machine_cpu_cores", "Number of logical CPU cores.", "gauge",
                 static_cast<double>(node.cpus.size()));
  }
  if (node.has_meminfo) {
    for (const auto& [key, value] : node.meminfo) {
      if (key != "MemTotal") continue;
      appendFamily(out, "machine_memory_bytes", "Amount of memory installed on the machine.",
                   "gauge", static_cast<double>(value));
      break;
    }
  }
}

void appendNodeMetrics(const NodeSample& node, std::string& out) {
  if (node.has_stat) {
    appendStat(node, out);
  }
  if (node.has_meminfo) {
    appendMeminfo(node, out);
  }
  appendPressure(node, out);
  if (node.has_loadavg) {
    appendLoad(node, out);
  }
}

}  // namespace nodewarden
