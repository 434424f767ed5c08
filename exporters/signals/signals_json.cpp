#include "exporters/signals/signals_json.h"

#include <ctime>
#include <nlohmann/json.hpp>

namespace nodewarden {
namespace {

using detector::kResources;
using detector::Resource;
using nlohmann::json;

std::string rfc3339(std::int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

const char* res(std::size_t r) { return detector::resourceName(static_cast<Resource>(r)); }

void put(json& j, const char* key, const std::optional<double>& v) {
  if (v) j[key] = *v;
}

json perResource(const std::array<std::optional<double>, kResources>& values) {
  json j = json::object();
  for (std::size_t r = 0; r < kResources; ++r) put(j, res(r), values[r]);
  return j;
}

json windowJson(const detector::WindowStats& w) {
  if (w.samples == 0) return json::object();
  return {{"samples", w.samples}, {"p50", w.p50}, {"p90", w.p90}, {"p99", w.p99}, {"max", w.max}};
}

bool wanted(const SignalsQuery& q, const std::string& ns, const std::string& pod) {
  return (q.namespace_name.empty() || q.namespace_name == ns) && (q.pod.empty() || q.pod == pod);
}

}  // namespace

std::string signalsJson(const detector::DetectorState& state, const PlacementView& placement,
                        const SignalsQuery& query) {
  json out;
  out["node"] = state.node;
  out["timestamp"] = rfc3339(state.timestamp_ms);
  out["interval_seconds"] = state.interval_seconds;

  const auto& n = state.node_signals;
  json node;
  node["interference_score"] = n.interference_score;
  node["victims"] = n.victims;
  node["antagonists"] = n.antagonists;
  node["saturation"] = perResource(n.saturation);
  node["headroom"] = perResource(n.headroom);
  node["pressure"] = perResource(n.pressure);
  node["summary"] = n.summary;
  json p = {{"enabled", placement.enabled}};
  if (placement.enabled) {
    p["dry_run"] = placement.dry_run;
    p["tainted"] = placement.tainted;
    p["condition"] = placement.condition;
    if (!placement.last_error.empty()) p["last_error"] = placement.last_error;
  }
  node["placement"] = std::move(p);
  out["node_signals"] = std::move(node);

  json verdicts = json::array();
  for (const auto& v : state.verdicts) {
    if (!wanted(query, v.namespace_name, v.pod_name)) continue;
    json j;
    j["resource"] = detector::resourceName(v.resource);
    j["namespace"] = v.namespace_name;
    j["pod"] = v.pod_name;
    j["uid"] = v.pod_uid;
    j["score"] = v.score;
    j["excess"] = v.excess;
    j["since"] = rfc3339(v.since_ms);
    j["high_intervals"] = v.high_intervals;
    json ev = json::array();
    for (const auto& e : v.evidence) {
      json x = {{"signal", e.signal}, {"window", e.window}, {"value", e.value}};
      put(x, "baseline", e.baseline);
      ev.push_back(std::move(x));
    }
    j["evidence"] = std::move(ev);
    json ants = json::array();
    for (const auto& a : v.antagonists) {
      json x = {{"namespace", a.namespace_name},
                {"pod", a.pod_name},
                {"uid", a.pod_uid},
                {"score", a.score},
                {"activity", a.activity},
                {"value", a.activity_value},
                {"named", a.named}};
      put(x, "baseline", a.activity_baseline);
      ants.push_back(std::move(x));
    }
    j["antagonists"] = std::move(ants);
    verdicts.push_back(std::move(j));
  }
  out["verdicts"] = std::move(verdicts);

  if (!query.verdicts_only) {
    json pods = json::array();
    for (const auto& pod : state.pods) {
      if (!wanted(query, pod.namespace_name, pod.pod_name)) continue;
      json j = {{"namespace", pod.namespace_name},
                {"pod", pod.pod_name},
                {"uid", pod.pod_uid},
                {"qos", pod.qos}};
      json stall = json::object();
      for (std::size_t r = 0; r < kResources; ++r) {
        json s = json::object();
        put(s, "total", pod.stall[r].total);
        put(s, "self", pod.stall[r].self);
        put(s, "others", pod.stall[r].others);
        if (!s.empty()) stall[res(r)] = std::move(s);
      }
      j["stall"] = std::move(stall);
      j["baseline"] = perResource(pod.baseline);
      j["victim_score"] = perResource(pod.victim_score);
      j["activity"] = perResource(pod.activity);
      put(j, "run_delay_ratio", pod.run_delay_ratio);
      pods.push_back(std::move(j));
    }
    out["pods"] = std::move(pods);

    json containers = json::array();
    for (const auto& c : state.containers) {
      if (!wanted(query, c.namespace_name, c.pod_name)) continue;
      json j = {{"namespace", c.namespace_name},
                {"pod", c.pod_name},
                {"container", c.container_name},
                {"container_id", c.container_id}};
      json cpu = json::object();
      json mem = json::object();
      for (std::size_t w = 0; w < detector::kWindows; ++w) {
        static constexpr const char* kNames[] = {"short", "mid", "long"};
        cpu[kNames[w]] = windowJson(c.cpu_cores[w]);
        mem[kNames[w]] = windowJson(c.working_set_bytes[w]);
      }
      j["cpu_cores"] = std::move(cpu);
      j["working_set_bytes"] = std::move(mem);
      put(j, "throttle_ratio", c.throttle_ratio);
      put(j, "memory_limit_ratio", c.memory_limit_ratio);
      j["oom_kills"] = c.oom_kills;
      const auto& r = c.recommendation;
      json rec = json::object();
      put(rec, "cpu_cores", r.cpu_cores);
      put(rec, "memory_bytes", r.memory_bytes);
      put(rec, "cpu_request_cores", r.cpu_request_cores);
      put(rec, "cpu_limit_cores", r.cpu_limit_cores);
      put(rec, "memory_limit_bytes", r.memory_limit_bytes);
      put(rec, "cpu_provisioning_ratio", r.cpu_provisioning_ratio);
      put(rec, "memory_provisioning_ratio", r.memory_provisioning_ratio);
      j["recommendation"] = std::move(rec);
      containers.push_back(std::move(j));
    }
    out["containers"] = std::move(containers);
  }

  // Flat numbers for KEDA's metrics-api trigger (valueLocation "metrics.<name>").
  json metrics;
  metrics["nodewarden_node_interference_score"] = n.interference_score;
  metrics["nodewarden_node_noisy_neighbor_victims"] = n.victims;
  metrics["nodewarden_node_noisy_neighbor_antagonists"] = n.antagonists;
  for (std::size_t r = 0; r < kResources; ++r) {
    if (n.saturation[r]) {
      metrics[std::string("nodewarden_node_saturation_") + res(r)] = *n.saturation[r];
    }
    if (n.headroom[r]) metrics[std::string("nodewarden_node_headroom_") + res(r)] = *n.headroom[r];
  }
  out["metrics"] = std::move(metrics);
  return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace nodewarden
