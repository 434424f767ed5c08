// The detector end to end on the real kernel: pods are real cgroups in kubelet's layout
// (NodeBuilder), their work is stress-ng pinned to one CPU with taskset, and the real agent reads
// them at a 2 s interval.
//
//  - two busy threads sharing one CPU inside one container: the container's run-queue delay
//    (/proc/<tid>/schedstat summed over its threads) is about one second per second;
//  - a victim alone on CPU 0, then an antagonist started on the same CPU: the victim gets a cpu
//    verdict naming the antagonist (and the antagonist none); the placement feed patches the
//    node's condition, annotation and PreferNoSchedule taint into the fake API server (keeping the
//    node's other taint), and once the antagonist is stopped the verdict ends and the taint and
//    condition are taken off again after their hold times.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "tests/fakes/fake_apiserver.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/node_builder.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::NodeBuilder;
using nodewarden::testing::PodQos;
using nodewarden::testing::SpawnOptions;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename F>
bool waitFor(F&& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return done();
}

class DetectorEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("nodewarden-detector-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_);
    auto node = NodeBuilder::create();
    ASSERT_TRUE(node.has_value()) << node.error();
    node_ = std::move(*node);
    port_ = nodewarden::testing::freeLoopbackPort();
    ASSERT_GT(port_, 0);
  }

  void TearDown() override {
    if (agent_.running()) agent_.stop(5s);
    if (HasFailure()) {
      std::cerr << "agent log:\n" << slurp(base_ / "agent.log") << "\n";
      std::cerr << "last /signals:\n" << last_signals_.dump(1) << "\n";
    }
    node_.reset();
    fs::remove_all(base_);
  }

  void startAgent(const std::string& extra_config = "") {
    std::ofstream config(base_ / "config.yaml");
    config << "interval: 2s\n"
              "node_name: test-node\n"
              "collectors:\n"
              "  logs:\n    enabled: false\n"
              "  journal:\n    enabled: false\n"
              "  jobs:\n    enabled: false\n"
              "  pods:\n    runtime_state: false\n    kubelet: false\n    apiserver: false\n"
           << extra_config;
    config.close();
    SpawnOptions o;
    o.output = base_ / "agent.log";
    auto child = ChildProcess::start(
        {NODEWARDEN_BINARY, "run", "--config", (base_ / "config.yaml").string(), "--listen",
         "127.0.0.1:" + std::to_string(port_), "--cgroup-root", "/sys/fs/cgroup", "--log-root",
         node_->logRoot().string(), "--state-dir", (base_ / "state").string()},
        o);
    ASSERT_TRUE(child.has_value()) << child.error();
    agent_ = std::move(*child);
    ASSERT_TRUE(waitFor(
        [&] {
          auto r = nodewarden::testing::httpGet(url("/readyz"), 1s);
          return r && r->status == 200;
        },
        20s));
  }

  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  json signals() {
    auto r = nodewarden::testing::httpGet(url("/signals"), 2s);
    if (!r || r->status != 200) return json::object();
    last_signals_ = json::parse(r->body, nullptr, false);
    return last_signals_;
  }

  static const json* verdictOf(const json& s, const std::string& pod, const std::string& res) {
    if (!s.contains("verdicts")) return nullptr;
    for (const auto& v : s["verdicts"]) {
      if (v["pod"] == pod && v["resource"] == res) return &v;
    }
    return nullptr;
  }

  static std::optional<json> conditionOf(const json& node, const std::string& type) {
    if (!node.contains("status") || !node["status"].contains("conditions")) return std::nullopt;
    for (const auto& c : node["status"]["conditions"]) {
      if (c.value("type", "") == type) return c;
    }
    return std::nullopt;
  }

  static bool hasTaint(const json& node, const std::string& key) {
    if (!node.contains("spec") || !node["spec"].contains("taints")) return false;
    for (const auto& t : node["spec"]["taints"]) {
      if (t.value("key", "") == key && t.value("effect", "") == "PreferNoSchedule") return true;
    }
    return false;
  }

  static std::vector<std::string> pinned(const std::string& cpu, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"taskset", "-c", cpu});
    return argv;
  }

  fs::path base_;
  std::unique_ptr<NodeBuilder> node_;
  ChildProcess agent_;
  int port_ = 0;
  json last_signals_;
};

TEST_F(DetectorEndToEnd, RunQueueDelayOfTwoThreadsSharingOneCpu) {
  auto pod = node_->addPod("default", "crowded", "", PodQos::kBurstable);
  ASSERT_TRUE(pod.has_value()) << pod.error();
  auto c = (*pod)->addContainer(nodewarden::testing::containerSpec("main"));
  ASSERT_TRUE(c.has_value()) << c.error();
  ASSERT_TRUE((*c)->run(pinned("0", {"stress-ng", "--cpu", "2", "--timeout", "60s", "-q"})));
  startAgent();
  double ratio = -1;
  ASSERT_TRUE(waitFor(
      [&] {
        const json s = signals();
        if (!s.contains("pods")) return false;
        for (const auto& p : s["pods"]) {
          if (p["pod"] == "crowded" && p.contains("run_delay_ratio")) {
            // The first windows can cover stress-ng's start (one worker running before the
            // other exists): wait for the two to share the CPU.
            ratio = p["run_delay_ratio"].get<double>();
            return ratio > 0.6;
          }
        }
        return false;
      },
      20s));
  std::cout << "run-queue delay " << ratio << " s/s\n";
  // Two runnable threads on one CPU: at any moment one waits, so about 1 s of waiting per second.
  EXPECT_GT(ratio, 0.6);
  EXPECT_LT(ratio, 1.4);
  auto metrics = nodewarden::testing::httpGet(url("/metrics"), 2s);
  ASSERT_TRUE(metrics.has_value());
  EXPECT_NE(metrics->body.find("container_cpu_schedstat_runqueue_seconds_total{container=\"main\""),
            std::string::npos);
}

TEST_F(DetectorEndToEnd, CpuAntagonistNamedTaintedThenCleared) {
  auto api = nodewarden::testing::FakeApiServer::start();
  ASSERT_TRUE(api.has_value()) << api.error();
  const json other_taint = {{"key", "dedicated"}, {"value", "spark"}, {"effect", "NoSchedule"}};
  (*api)->putNode(json{{"kind", "Node"},
                       {"apiVersion", "v1"},
                       {"metadata", {{"name", "test-node"}}},
                       {"spec", {{"taints", json::array({other_taint})}}},
                       {"status", {{"conditions", json::array()}}}});
  std::ofstream(base_ / "token") << "test-token\n";
  auto victim_pod = node_->addPod("apps", "victim", "", PodQos::kBurstable);
  ASSERT_TRUE(victim_pod.has_value());
  auto victim = (*victim_pod)->addContainer(nodewarden::testing::containerSpec("main"));
  ASSERT_TRUE(victim.has_value());
  auto hog_pod = node_->addPod("batch", "hog", "", PodQos::kBestEffort);
  ASSERT_TRUE(hog_pod.has_value());
  auto hog = (*hog_pod)->addContainer(nodewarden::testing::containerSpec("main"));
  ASSERT_TRUE(hog.has_value());
  ASSERT_TRUE((*victim)->run(pinned("0", {"stress-ng", "--cpu", "1", "--timeout", "300s", "-q"})));
  startAgent(
      "placement:\n  enabled: true\n  on_score: 0.2\n  off_score: 0.1\n"
      "  on_hold: 2s\n  off_hold: 4s\n  min_taint_duration: 6s\n  max_backoff: 1s\n"
      "kubernetes:\n  apiserver_url: " +
      (*api)->url() + "\n  token_file: " + (base_ / "token").string() + "\n");
  // A baseline: the victim alone on its CPU for a dozen intervals.
  std::this_thread::sleep_for(24s);
  json s = signals();
  EXPECT_TRUE(s["verdicts"].empty()) << s["verdicts"].dump();
  // The feed has reported the quiet node: condition False, annotation, no taint of ours.
  ASSERT_TRUE(waitFor(
      [&] {
        const auto n = (*api)->node("test-node");
        const auto c = n ? conditionOf(*n, "NoisyNeighbor") : std::nullopt;
        return c && (*c)["status"] == "False";
      },
      10s));
  EXPECT_FALSE(hasTaint(*(*api)->node("test-node"), "nodewarden.io/noisy-neighbor"));
  EXPECT_TRUE(
      (*(*api)->node("test-node"))["metadata"]["annotations"].contains("nodewarden.io/signals"));

  ASSERT_TRUE((*hog)->run(pinned("0", {"stress-ng", "--cpu", "1", "--timeout", "300s", "-q"})));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitFor([&] { return verdictOf(signals(), "victim", "cpu") != nullptr; }, 40s))
      << "no verdict";
  const double detected_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "cpu verdict " << detected_s << " s after the antagonist started\n";
  s = last_signals_;
  const json& v = *verdictOf(s, "victim", "cpu");
  ASSERT_FALSE(v["antagonists"].empty());
  EXPECT_EQ(v["antagonists"][0]["pod"], "hog");
  EXPECT_EQ(v["antagonists"][0]["named"], true);
  EXPECT_EQ(verdictOf(s, "hog", "cpu"), nullptr);
  EXPECT_GT(s["node_signals"]["interference_score"].get<double>(), 0.2);
  auto metrics = nodewarden::testing::httpGet(url("/metrics"), 2s);
  ASSERT_TRUE(metrics.has_value());
  EXPECT_NE(metrics->body.find("nodewarden_noisy_neighbor_victim{namespace=\"apps\",pod=\"victim\","
                               "resource=\"cpu\",node=\"test-node\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("nodewarden_noisy_neighbor_antagonist{namespace=\"batch\",pod="
                               "\"hog\",resource=\"cpu\",victim_namespace=\"apps\",victim_pod="
                               "\"victim\",node=\"test-node\"} 1"),
            std::string::npos);

  // The placement feed: taint and condition on, the node's other taint kept, the evidence as the
  // condition's message.
  ASSERT_TRUE(waitFor(
      [&] { return hasTaint(*(*api)->node("test-node"), "nodewarden.io/noisy-neighbor"); }, 20s))
      << (*api)->node("test-node")->dump(1);
  json node = *(*api)->node("test-node");
  auto cond = conditionOf(node, "NoisyNeighbor");
  ASSERT_TRUE(cond.has_value());
  EXPECT_EQ((*cond)["status"], "True");
  EXPECT_NE((*cond)["message"].get<std::string>().find("apps/victim cpu"), std::string::npos)
      << (*cond)["message"];
  EXPECT_NE((*cond)["message"].get<std::string>().find("batch/hog"), std::string::npos);
  bool other_kept = false;
  for (const auto& t : node["spec"]["taints"]) other_kept |= t == other_taint;
  EXPECT_TRUE(other_kept) << node["spec"].dump();
  EXPECT_EQ(signals()["node_signals"]["placement"]["tainted"], true);

  ASSERT_TRUE((*hog)->kill());
  ASSERT_TRUE(waitFor([&] { return verdictOf(signals(), "victim", "cpu") == nullptr; }, 20s))
      << "the verdict outlived the antagonist";
  EXPECT_EQ(last_signals_["node_signals"]["interference_score"], 0.0);
  // Off after off_hold, and min_taint_duration since it went on.
  ASSERT_TRUE(waitFor(
      [&] {
        const auto n = (*api)->node("test-node");
        const auto c = conditionOf(*n, "NoisyNeighbor");
        return !hasTaint(*n, "nodewarden.io/noisy-neighbor") && c && (*c)["status"] == "False";
      },
      30s))
      << (*api)->node("test-node")->dump(1);
  node = *(*api)->node("test-node");
  EXPECT_EQ(node["spec"]["taints"], json::array({other_taint}));
  // Every patch carried the bearer token.
  for (const auto& r : (*api)->requests())
    EXPECT_EQ(r.authorization, "Bearer test-token") << r.path;
}

}  // namespace
