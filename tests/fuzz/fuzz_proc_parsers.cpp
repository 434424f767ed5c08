// libFuzzer target for the node /proc parsers (stat, meminfo, pressure, loadavg): every input goes
// to every parser, and whatever parses is rendered by the Prometheus node text renderer.
//
// What a reader gets wrong: this checks more than "no crash". A parse that succeeds must satisfy
// the invariants the exporter relies on (4..10 cpu columns, ascending cpu ids, finite loads);
// anything else traps, because a garbled file must never turn into a plausible wrong number.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "collectors/node/proc_parsers.h"
#include "exporters/prometheus/node_text.h"

namespace {

void check(bool invariant) {
  if (!invariant) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nodewarden;
  // Reused across inputs, as the collector reuses them across cycles.
  static NodeSample node;
  static std::string out;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  node.has_stat = parseProcStat(text, node).has_value();
  if (node.has_stat) {
    int previous = -1;
    for (const CpuTimes& cpu : node.cpus) {
      check(cpu.columns >= 4 && cpu.columns <= cpu.ticks.size());
      check(cpu.cpu > previous);
      previous = cpu.cpu;
    }
  }

  node.has_meminfo = parseMeminfo(text, node.meminfo).has_value();
  if (node.has_meminfo) {
    check(!node.meminfo.empty());
    for (const auto& entry : node.meminfo) {
      check(!entry.first.empty());
    }
  }

  node.psi_cpu = PsiTotals{};
  if (parsePressure(text, node.psi_cpu)) {
    check(node.psi_cpu.has_some);
  }

  node.has_loadavg = false;
  if (const auto loads = parseLoadavg(text)) {
    for (const double load : {loads->load1, loads->load5, loads->load15}) {
      check(std::isfinite(load) && load >= 0);
    }
    node.has_loadavg = true;
    node.load1 = loads->load1;
    node.load5 = loads->load5;
    node.load15 = loads->load15;
  }

  out.clear();
  appendNodeMetrics(node, out);
  return 0;
}
