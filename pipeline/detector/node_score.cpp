// NodeScore: the node's saturation, pressure and interference summary (see node_score.h).
#include "pipeline/detector/node_score.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace nodewarden::detector::detail {

void NodeScore::update(const NodeSample& n, const std::vector<Verdict>& verdicts, double now,
                       NodeSignals& out) {
  out.saturation.fill(std::nullopt);
  out.headroom.fill(std::nullopt);
  out.pressure.fill(std::nullopt);
  if (n.has_stat && !n.cpus.empty()) {
    std::uint64_t total = 0;
    std::uint64_t idle = 0;
    for (const auto& c : n.cpus) {
      for (std::size_t i = 0; i < c.columns && i < 8; ++i) total += c.ticks[i];  // not guest
      idle += c.ticks[3] + (c.columns > 4 ? c.ticks[4] : 0);
    }
    // No tick at all is no reading (nothing to take a share of).
    const auto dtotal =
        cpu_ticks_.next(total > 0 ? std::optional<std::uint64_t>(total) : std::nullopt, now);
    const auto didle = idle_ticks_.next(idle, now);
    if (dtotal.increase && *dtotal.increase > 0 && didle.increase) {
      const double busy = 1.0 - *didle.increase / *dtotal.increase;
      out.saturation[kCpu] = std::clamp(busy, 0.0, 1.0);
    }
  }
  if (n.has_meminfo) {
    std::optional<double> mem_total;
    std::optional<double> available;
    for (const auto& [k, v] : n.meminfo) {
      if (k == "MemTotal") mem_total = static_cast<double>(v);
      if (k == "MemAvailable") available = static_cast<double>(v);
    }
    if (mem_total && available && *mem_total > 0) {
      out.saturation[kMem] = std::clamp(1 - *available / *mem_total, 0.0, 1.0);
    }
  }
  const PsiTotals* psi[kResources] = {&n.psi_cpu, &n.psi_memory, &n.psi_io};
  for (std::size_t r = 0; r < kResources; ++r) {
    const auto reading =
        psi[r]->has_some ? std::optional<std::uint64_t>(psi[r]->some_us) : std::nullopt;
    if (const auto d = psi_some_us_[r].next(reading, now).perSecond(1e6)) {
      out.pressure[r] = std::clamp(*d, 0.0, 1.0);
    }
  }
  out.saturation[kIo] = out.pressure[kIo];
  for (std::size_t r = 0; r < kResources; ++r) {
    if (out.saturation[r]) out.headroom[r] = 1 - *out.saturation[r];
  }

  out.interference_score = 0;
  out.victims = 0;
  out.antagonists = 0;
  out.summary.clear();
  std::vector<std::string> named;
  for (const Verdict& v : verdicts) {
    out.interference_score = std::max(out.interference_score, v.excess);
    ++out.victims;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s/%s %s stall by others %.0f%% (baseline %.0f%%, z %.1f)",
                  v.namespace_name.c_str(), v.pod_name.c_str(), resourceName(v.resource),
                  100 * (v.evidence.empty() ? 0 : v.evidence[0].value),
                  100 * v.evidence[0].baseline.value_or(0), v.score);
    std::string line = buf;
    for (const auto& a : v.antagonists) {
      if (!a.named) continue;
      if (std::ranges::find(named, a.pod_uid) == named.end()) named.push_back(a.pod_uid);
      std::snprintf(buf, sizeof buf, " from %s/%s (r %.2f)", a.namespace_name.c_str(),
                    a.pod_name.c_str(), a.score);
      line += buf;
    }
    if (!out.summary.empty()) out.summary += "; ";
    out.summary += line;
  }
  out.antagonists = static_cast<int>(named.size());
  if (out.summary.size() > 1024) {
    out.summary.resize(1021);
    out.summary += "...";
  }
  if (out.summary.empty()) out.summary = "no interference";
}

}  // namespace nodewarden::detector::detail
