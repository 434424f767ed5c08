// The detector's state as Prometheus series and as /signals JSON.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "exporters/prometheus/signal_renderer.h"
#include "exporters/signals/signals_json.h"

namespace nodewarden {
namespace {

using namespace detector;

DetectorState sampleState() {
  DetectorState s;
  s.node = "node-a";
  s.timestamp_ms = 1'763'800'000'123;
  s.interval_seconds = 5;
  ContainerSignals c;
  c.namespace_name = "spark";
  c.pod_name = "exec-1";
  c.container_name = "executor";
  c.cpu_cores[0] = {2, 0.5, 0.9, 0.95, 1.0};
  c.throttle_ratio = 0.25;
  c.recommendation.cpu_cores = 1.2;
  c.recommendation.cpu_request_cores = 2;
  c.recommendation.cpu_provisioning_ratio = 2 / 1.2;
  s.containers.push_back(c);
  PodSignals p;
  p.namespace_name = "spark";
  p.pod_name = "exec-1";
  p.pod_uid = "u1";
  p.stall[0] = {0.5, 0.0, 0.5};
  p.victim_score[0] = 7.5;
  s.pods.push_back(p);
  Verdict v;
  v.resource = Resource::kCpu;
  v.namespace_name = "spark";
  v.pod_name = "exec-1";
  v.pod_uid = "u1";
  v.score = 7.5;
  v.excess = 0.45;
  v.since_ms = s.timestamp_ms - 15000;
  v.high_intervals = 3;
  v.evidence.push_back({"cpu_stall_others", "5s", 0.5, 0.05});
  AntagonistRank named{"batch", "hog", "u2", 0.93, "cpu_cores", 1.0, 0.0, true};
  AntagonistRank other{"batch", "small", "u3", 0.2, "cpu_cores", 0.3, 0.1, false};
  v.antagonists = {named, other};
  s.verdicts.push_back(v);
  s.node_signals.interference_score = 0.45;
  s.node_signals.victims = 1;
  s.node_signals.antagonists = 1;
  s.node_signals.saturation[0] = 0.97;
  s.node_signals.headroom[0] = 0.03;
  s.node_signals.summary = "spark/exec-1 cpu stall";
  return s;
}

TEST(SignalRenderer, WritesSeriesWithNodeLabelAndOnlyCurrentVerdicts) {
  const DetectorState s = sampleState();
  DetectorOptions o;
  o.metrics_windows = {true, true, false};
  std::string text;
  const std::size_t n = renderDetectorState(s, o, text);
  EXPECT_NE(text.find("nodewarden_container_cpu_usage_cores{namespace=\"spark\",pod=\"exec-1\","
                      "container=\"executor\",window=\"10s\",stat=\"p90\",node=\"node-a\"} 0.9\n"),
            std::string::npos)
      << text;
  // Empty windows write nothing.
  EXPECT_EQ(text.find("window=\"1m\""), std::string::npos);
  EXPECT_NE(text.find("nodewarden_container_cpu_throttle_ratio{namespace=\"spark\",pod=\"exec-1\","
                      "container=\"executor\",node=\"node-a\"} 0.25\n"),
            std::string::npos);
  EXPECT_EQ(text.find("nodewarden_container_memory_limit_ratio{"), std::string::npos);  // unset
  EXPECT_NE(text.find("nodewarden_pod_stall_ratio{namespace=\"spark\",pod=\"exec-1\",resource="
                      "\"cpu\",cause=\"others\",node=\"node-a\"} 0.5\n"),
            std::string::npos);
  EXPECT_NE(text.find("nodewarden_noisy_neighbor_victim{namespace=\"spark\",pod=\"exec-1\","
                      "resource=\"cpu\",node=\"node-a\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("nodewarden_noisy_neighbor_antagonist{namespace=\"batch\",pod=\"hog\","
                      "resource=\"cpu\",victim_namespace=\"spark\",victim_pod=\"exec-1\",node="
                      "\"node-a\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(text.find("pod=\"small\""), std::string::npos);  // ranked, not named: no series
  EXPECT_NE(text.find("nodewarden_node_interference_score{node=\"node-a\"} 0.45\n"),
            std::string::npos);
  EXPECT_NE(text.find("nodewarden_node_saturation_ratio{resource=\"cpu\",node=\"node-a\"} 0.97\n"),
            std::string::npos);
  EXPECT_EQ(text.find("nodewarden_node_saturation_ratio{resource=\"memory\""), std::string::npos);
  // Every series line is counted; every family has HELP and TYPE.
  std::size_t lines = 0;
  std::size_t helps = 0;
  std::size_t types = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    if (line.starts_with("# HELP")) {
      ++helps;
    } else if (line.starts_with("# TYPE")) {
      ++types;
    } else {
      ++lines;
    }
    pos = end + 1;
  }
  EXPECT_EQ(lines, n);
  EXPECT_EQ(helps, types);

  // Without a verdict the verdict families are empty.
  DetectorState quiet = sampleState();
  quiet.verdicts.clear();
  std::string q;
  renderDetectorState(quiet, o, q);
  EXPECT_EQ(q.find("nodewarden_noisy_neighbor_victim{"), std::string::npos);
  EXPECT_EQ(q.find("nodewarden_noisy_neighbor_antagonist{"), std::string::npos);
}

// A container or pod whose names no source knows yet (CgroupSample::names_pending) has no
// detector series either: they appear once, named, like its cgroup series.
TEST(SignalRenderer, LeavesOutWhatIsStillUnnamed) {
  DetectorState s = sampleState();
  s.verdicts.clear();
  ContainerSignals c = s.containers[0];
  c.namespace_name.clear();
  c.pod_name.clear();
  c.container_name.clear();
  c.names_pending = true;
  s.containers.push_back(c);
  PodSignals p = s.pods[0];
  p.namespace_name.clear();
  p.pod_name.clear();
  p.pod_uid = "u9";
  p.run_delay_ratio = 0.1;
  p.names_pending = true;
  s.pods.push_back(p);
  DetectorOptions o;
  o.metrics_windows = {true, true, false};
  std::string text;
  renderDetectorState(s, o, text);
  EXPECT_EQ(text.find("pod=\"\""), std::string::npos) << text;
  EXPECT_NE(text.find("nodewarden_container_cpu_throttle_ratio{namespace=\"spark\""),
            std::string::npos);
  EXPECT_NE(text.find("nodewarden_pod_victim_score{namespace=\"spark\""), std::string::npos);
}

TEST(SignalRenderer, FlushesInChunks) {
  const DetectorState s = sampleState();
  std::string buf;
  std::string all;
  int flushes = 0;
  renderDetectorState(
      s, DetectorOptions{}, buf,
      [&](std::string& chunk) {
        all += chunk;
        ++flushes;
      },
      256);
  EXPECT_GT(flushes, 3);
  EXPECT_TRUE(buf.empty());
  std::string whole;
  renderDetectorState(s, DetectorOptions{}, whole);
  EXPECT_EQ(all, whole);
}

TEST(SignalsJson, CarriesVerdictsEvidenceAndFlatMetrics) {
  const auto j =
      nlohmann::json::parse(signalsJson(sampleState(), PlacementView{true, true, true, false, ""}));
  EXPECT_EQ(j["node"], "node-a");
  EXPECT_EQ(j["timestamp"], "2025-11-22T08:26:40.123Z");
  EXPECT_EQ(j["node_signals"]["interference_score"], 0.45);
  EXPECT_EQ(j["node_signals"]["saturation"]["cpu"], 0.97);
  EXPECT_FALSE(j["node_signals"]["saturation"].contains("memory"));
  EXPECT_EQ(j["node_signals"]["placement"]["tainted"], true);
  ASSERT_EQ(j["verdicts"].size(), 1U);
  const auto& v = j["verdicts"][0];
  EXPECT_EQ(v["resource"], "cpu");
  EXPECT_EQ(v["pod"], "exec-1");
  EXPECT_EQ(v["since"], "2025-11-22T08:26:25.123Z");
  EXPECT_EQ(v["evidence"][0]["signal"], "cpu_stall_others");
  EXPECT_EQ(v["evidence"][0]["baseline"], 0.05);
  EXPECT_EQ(v["antagonists"][0]["pod"], "hog");
  EXPECT_EQ(v["antagonists"][0]["named"], true);
  EXPECT_EQ(v["antagonists"][1]["named"], false);
  EXPECT_EQ(j["pods"][0]["stall"]["cpu"]["others"], 0.5);
  EXPECT_EQ(j["containers"][0]["recommendation"]["cpu_cores"], 1.2);
  EXPECT_FALSE(j["containers"][0]["recommendation"].contains("memory_bytes"));
  EXPECT_EQ(j["metrics"]["nodewarden_node_interference_score"], 0.45);
  EXPECT_EQ(j["metrics"]["nodewarden_node_headroom_cpu"], 0.03);

  SignalsQuery only;
  only.namespace_name = "other";
  only.verdicts_only = true;
  const auto f = nlohmann::json::parse(signalsJson(sampleState(), PlacementView{}, only));
  EXPECT_TRUE(f["verdicts"].empty());
  EXPECT_FALSE(f.contains("pods"));
  EXPECT_EQ(f["node_signals"]["placement"], nlohmann::json({{"enabled", false}}));
}

}  // namespace
}  // namespace nodewarden
