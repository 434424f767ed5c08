// Job outcomes end to end on the real kernel: "Job pods" are real cgroups in kubelet's layout
// (NodeBuilder) with real processes in them; the pod statuses come from the fake kubelet over TLS
// with a bearer token, changed by the test the way the kubelet would report them (or not at all);
// the real agent decides, and the test reads GET /jobs, /metrics and the fake Loki.
//
//  - a pod under a 64 MiB memory limit that stress-ng exceeds, whose status never says it ended:
//    failed, OOMKilled, from the cgroup's own oom_kill counter, peak memory at the limit;
//  - a pod whose process exits 3: failed, exit code 3;
//  - a CronJob's pod that burns CPU for a few seconds: CPU seconds within 10% of what the kernel
//    charged its processes (/proc/<pid>/stat of the exited process tree, read before reaping).
// Then the agent restarts: nothing is recorded or sent twice.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/fakes/fake_apiserver.h"
#include "tests/fakes/fake_kubelet.h"
#include "tests/fakes/fake_loki.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/loopback_certificate.h"
#include "tests/support/node_builder.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::Container;
using nodewarden::testing::FakeKubelet;
using nodewarden::testing::FakeLoki;
using nodewarden::testing::NodeBuilder;
using nodewarden::testing::Pod;
using nodewarden::testing::PodQos;
using nodewarden::testing::SpawnOptions;
using namespace std::chrono_literals;

constexpr std::int64_t kMemoryLimit = 64LL << 20;

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
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

// The process has exited and not been reaped: its /proc entry still holds its CPU times and its
// reaped children's.
bool isZombie(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  return close != std::string::npos && close + 2 < all.size() && all[close + 2] == 'Z';
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A Job's pod as the kubelet lists it.
struct JobPod {
  Pod* pod = nullptr;
  Container* container = nullptr;
  std::string job;
  json state = json{{"running", {{"startedAt", "2026-11-22T00:00:00Z"}}}};
  std::string phase = "Running";
  std::string started_at;

  [[nodiscard]] json item() const {
    return json{
        {"metadata",
         {{"name", pod->name()},
          {"namespace", pod->ns()},
          {"uid", pod->uid()},
          {"labels", {{"job-name", job}, {"batch.kubernetes.io/job-name", job}}},
          {"ownerReferences",
           json::array({{{"apiVersion", "batch/v1"},
                         {"kind", "Job"},
                         {"name", job},
                         {"uid", "0b0b0b0b-0000-4000-8000-" + pod->uid().substr(24)},
                         {"controller", true}}})}}},
        {"spec", {{"nodeName", "test-node"}, {"restartPolicy", "Never"}}},
        {"status",
         {{"phase", phase},
          {"qosClass", "Burstable"},
          {"startTime", started_at},
          {"containerStatuses", json::array({{{"name", container->name()},
                                              {"containerID", "containerd://" + container->id()},
                                              {"image", "registry.example/batch:1"},
                                              {"restartCount", 0},
                                              {"state", state}}})}}}};
  }

  void terminated(int exit_code, const char* reason) {
    phase = exit_code == 0 ? "Succeeded" : "Failed";
    state = json{{"terminated",
                  {{"exitCode", exit_code},
                   {"reason", reason},
                   {"startedAt", started_at},
                   {"finishedAt", rfc3339(std::chrono::system_clock::now())}}}};
  }
};

class JobOutcomesEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("nodewarden-jobs-it-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    const auto pki = nodewarden::testing::makeLoopbackCertificate(base_ / "pki");
    ASSERT_TRUE(pki.has_value()) << pki.error();
    nodewarden::testing::FakeKubeletOptions ko;
    ko.token = "job-watcher-token";
    ko.certificate_file = pki->certificate;
    ko.key_file = pki->key;
    auto kubelet = FakeKubelet::start(ko);
    ASSERT_TRUE(kubelet.has_value()) << kubelet.error();
    kubelet_ = std::move(*kubelet);
    std::ofstream(base_ / "token") << "job-watcher-token\n";
    auto loki = FakeLoki::start();
    ASSERT_TRUE(loki.has_value()) << loki.error();
    loki_ = std::move(*loki);
    auto apiserver = nodewarden::testing::FakeApiServer::start();
    ASSERT_TRUE(apiserver.has_value()) << apiserver.error();
    apiserver_ = std::move(*apiserver);
    auto node = NodeBuilder::create();
    ASSERT_TRUE(node.has_value()) << node.error();
    node_ = std::move(*node);
    port_ = nodewarden::testing::freeLoopbackPort();
    ASSERT_GT(port_, 0);
  }

  void TearDown() override {
    if (agent_.running()) agent_.stop(5s);
    if (HasFailure()) std::cerr << "agent log:\n" << slurp(base_ / "agent.log") << "\n";
    node_.reset();
    kubelet_.reset();
    apiserver_.reset();
    loki_.reset();
    fs::remove_all(base_);
  }

  JobPod addJobPod(const std::string& name, const std::string& job, std::int64_t memory_limit) {
    auto pod = node_->addPod("batch", name, "", PodQos::kBurstable);
    EXPECT_TRUE(pod.has_value()) << pod.error();
    auto c = (*pod)->addContainer(nodewarden::testing::containerSpec("main", -1, memory_limit));
    EXPECT_TRUE(c.has_value()) << c.error();
    JobPod j;
    j.pod = *pod;
    j.container = *c;
    j.job = job;
    j.started_at = rfc3339(std::chrono::system_clock::now());
    return j;
  }

  void serve(const std::vector<const JobPod*>& pods) {
    json items = json::array();
    for (const auto* p : pods) items.push_back(p->item());
    kubelet_->setPodList(json{
        {"kind", "PodList"},
        {"apiVersion", "v1"},
        {"metadata", json::object()},
        {"items", items}}.dump());
  }

  // The statuses come from the kubelet, or (from_apiserver) from the API server's watch alone.
  void startAgent(bool from_apiserver = false) {
    std::ofstream config(base_ / "config.yaml");
    config << "interval: 1s\n"
              "node_name: test-node\n"
              "collectors:\n"
              "  node:\n    enabled: false\n"
              "  journal:\n    enabled: false\n"
              "  logs:\n    batch_wait: 100ms\n"
              "  pods:\n    runtime_state: false\n"
           << (from_apiserver ? "    kubelet: false\n" : "    apiserver: false\n")
           << "    kubelet_refresh_interval: 1s\n"
              "  jobs:\n    poll_interval: 200ms\n    status_wait: 3s\n"
              "kubernetes:\n  token_file: "
           << (base_ / "token").string() << "\n";
    if (from_apiserver) {
      config << "  apiserver_url: " << apiserver_->url() << "\n";
    } else {
      config << "  kubelet_url: " << kubelet_->url() << "\n  kubelet_insecure_skip_verify: true\n";
    }
    config.close();
    SpawnOptions o;
    o.output = base_ / "agent.log";
    auto child = ChildProcess::start(
        {NODEWARDEN_BINARY, "run", "--config", (base_ / "config.yaml").string(), "--listen",
         "127.0.0.1:" + std::to_string(port_), "--cgroup-root", "/sys/fs/cgroup", "--log-root",
         node_->logRoot().string(), "--state-dir", (base_ / "state").string(), "--loki-url",
         loki_->pushUrl()},
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

  json jobs() {
    auto r = nodewarden::testing::httpGet(url("/jobs"), 2s);
    if (!r || r->status != 200) return json::object();
    return json::parse(r->body, nullptr, false);
  }

  json outcomeOf(const json& all, const std::string& pod) {
    if (!all.contains("outcomes")) return nullptr;
    for (const auto& o : all["outcomes"]) {
      if (o["pod"] == pod) return o;
    }
    return nullptr;
  }

  fs::path base_;
  std::unique_ptr<FakeKubelet> kubelet_;
  std::unique_ptr<nodewarden::testing::FakeApiServer> apiserver_;
  std::unique_ptr<FakeLoki> loki_;
  std::unique_ptr<NodeBuilder> node_;
  ChildProcess agent_;
  int port_ = 0;
};

TEST_F(JobOutcomesEndToEnd, OomExitCodeAndCpuSecondsFromTheRealKernel) {
  JobPod oom = addJobPod("memory-hog-k2x9v", "memory-hog", kMemoryLimit);
  JobPod exit3 = addJobPod("exit-three-q8w4n", "exit-three", -1);
  JobPod cpu = addJobPod("nightly-cpu-29395200-x7k2p", "nightly-cpu-29395200", -1);
  serve({&oom, &exit3, &cpu});
  startAgent();
  // The agent must know the pods and have read their cgroups before anything ends.
  ASSERT_TRUE(waitFor(
      [&] {
        auto r = nodewarden::testing::httpGet(url("/metrics"), 2s);
        return r && r->body.find(cpu.pod->uid()) != std::string::npos &&
               r->body.find(oom.pod->uid()) != std::string::npos;
      },
      20s));
  std::this_thread::sleep_for(1500ms);  // a kubelet fetch and a poll after the pods were seen

  // CPU: a few seconds of one core, then exit 0.
  auto cpu_pid = cpu.container->run({"sh", "-c", "stress-ng --cpu 1 --timeout 3s --quiet; exit 0"});
  ASSERT_TRUE(cpu_pid.has_value()) << cpu_pid.error();
  // Exit 3 after a second.
  auto exit_pid = exit3.container->run({"sh", "-c", "sleep 1; exit 3"});
  ASSERT_TRUE(exit_pid.has_value()) << exit_pid.error();
  // OOM: stress-ng asks for 4x the limit; the kernel kills its worker, which is not respawned.
  auto oom_pid = oom.container->run({"stress-ng", "--vm", "1", "--vm-bytes", "256M", "--vm-keep",
                                     "--oomable", "--timeout", "30s", "--quiet"});
  ASSERT_TRUE(oom_pid.has_value()) << oom_pid.error();

  ASSERT_TRUE(waitFor([&] { return isZombie(*exit_pid); }, 10s));
  exit3.terminated(3, "Error");
  serve({&oom, &exit3, &cpu});

  ASSERT_TRUE(waitFor([&] { return isZombie(*oom_pid); }, 30s)) << "stress-ng did not end";
  const auto ooms = oom.container->readKey("memory", "memory.oom_control", "oom_kill");
  const auto ooms_v2 = oom.container->readKey("memory", "memory.events", "oom_kill");
  ASSERT_TRUE((ooms && *ooms > 0) || (ooms_v2 && *ooms_v2 > 0)) << "the kernel killed nothing";
  // The kubelet never reports this one: its status stays Running, and the pod is cleaned up.
  ASSERT_TRUE(node_->removePod(*oom.pod).has_value());

  ASSERT_TRUE(waitFor([&] { return isZombie(*cpu_pid); }, 20s));
  const double cpu_truth = nodewarden::testing::processTreeCpuSeconds(*cpu_pid);
  ASSERT_GT(cpu_truth, 1.0) << "stress-ng hardly ran";
  cpu.terminated(0, "Completed");
  serve({&exit3, &cpu});  // the OOM pod is gone from the list too, as when the Job is deleted

  ASSERT_TRUE(waitFor([&] { return jobs()["outcomes"].size() >= 3; }, 30s)) << jobs().dump(2);
  // The kubelet removes the cgroups of ended pods later; the outcomes are already recorded.
  for (JobPod* p : {&exit3, &cpu}) ASSERT_TRUE(node_->removePod(*p->pod).has_value());

  const json all = jobs();
  EXPECT_EQ(all["node"], "test-node");
  ASSERT_EQ(all["outcomes"].size(), 3U) << all.dump(2);

  const json o = outcomeOf(all, "memory-hog-k2x9v");
  ASSERT_FALSE(o.is_null()) << all.dump(2);
  EXPECT_EQ(o["outcome"], "failed");
  EXPECT_EQ(o["reason"], "OOMKilled");
  EXPECT_EQ(o["job"], "memory-hog");
  EXPECT_EQ(o["namespace"], "batch");
  EXPECT_GE(o["oom_kills"].get<int>(), 1);
  ASSERT_TRUE(o["peak_memory_bytes"].is_number()) << o.dump();
  const auto peak = o["peak_memory_bytes"].get<double>();
  EXPECT_GE(peak, 0.9 * kMemoryLimit) << "peak memory near the limit";
  EXPECT_LE(peak, 1.01 * kMemoryLimit);
  EXPECT_EQ(o["memory_limit_bytes"].get<double>(), static_cast<double>(kMemoryLimit));

  const json e = outcomeOf(all, "exit-three-q8w4n");
  ASSERT_FALSE(e.is_null()) << all.dump(2);
  EXPECT_EQ(e["outcome"], "failed");
  EXPECT_EQ(e["exit_code"], 3);
  EXPECT_EQ(e["reason"], "Error");
  EXPECT_EQ(e["evidence"], "status+cgroup");

  const json c = outcomeOf(all, "nightly-cpu-29395200-x7k2p");
  ASSERT_FALSE(c.is_null()) << all.dump(2);
  EXPECT_EQ(c["outcome"], "succeeded");
  EXPECT_EQ(c["job"], "nightly-cpu-29395200");
  EXPECT_EQ(c["cronjob"], "nightly-cpu") << "the CronJob controller's naming, without the API";
  EXPECT_EQ(c["reason"], "Completed");
  EXPECT_EQ(c["exit_code"], 0);
  ASSERT_TRUE(c["cpu_seconds"].is_number()) << c.dump();
  const double cpu_seconds = c["cpu_seconds"].get<double>();
  std::cout << "cpu seconds: agent " << cpu_seconds << ", kernel " << cpu_truth << "; peak memory "
            << peak << " of a " << kMemoryLimit << " limit\n";
  EXPECT_NEAR(cpu_seconds, cpu_truth, 0.1 * cpu_truth)
      << "agent " << cpu_seconds << " s, kernel " << cpu_truth << " s";

  // The filters.
  auto failed = nodewarden::testing::httpGet(url("/jobs?outcome=failed&namespace=batch"), 2s);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(json::parse(failed->body)["outcomes"].size(), 2U);
  auto bad = nodewarden::testing::httpGet(url("/jobs?outcome=maybe"), 2s);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400);

  // The series.
  auto metrics = nodewarden::testing::httpGet(url("/metrics"), 2s);
  ASSERT_TRUE(metrics.has_value());
  for (const std::string want :
       {"nodewarden_job_pod_completions_total{cronjob=\"\",job_name=\"memory-hog\",namespace="
        "\"batch\","
        "outcome=\"failed\",reason=\"OOMKilled\"} 1",
        "nodewarden_job_last_exit_code{cronjob=\"\",job_name=\"exit-three\",namespace=\"batch\"} 3",
        "nodewarden_job_pod_duration_seconds_count{"}) {
    EXPECT_NE(metrics->body.find(want), std::string::npos) << want;
  }

  // One event line per outcome in its own stream.
  const nodewarden::Labels stream = {{"kind", "job_outcome"},
                                     {"namespace", "batch"},
                                     {"node", "test-node"},
                                     {"source", "nodewarden"}};
  ASSERT_TRUE(waitFor([&] { return loki_->entries(stream).size() >= 3; }, 15s))
      << loki_->entries(stream).size();
  std::set<std::string> event_pods;
  for (const auto& entry : loki_->entries(stream)) {
    const json line = json::parse(entry.line, nullptr, false);
    ASSERT_TRUE(line.is_object()) << entry.line;
    event_pods.insert(line["pod"].get<std::string>());
  }
  EXPECT_EQ(event_pods.size(), 3U);
  const std::size_t events_before = loki_->entries(stream).size();

  // A restart: the kubelet still lists the two ended pods. Nothing is recorded or sent again.
  ASSERT_TRUE(agent_.stop(5s).has_value());
  startAgent();
  std::this_thread::sleep_for(4s);  // fetches, polls and a status_wait
  EXPECT_EQ(jobs()["outcomes"].size(), 3U) << "kept across the restart, not doubled";
  auto after = nodewarden::testing::httpGet(url("/metrics"), 2s);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->body.find("nodewarden_job_pod_completions_total{"), std::string::npos)
      << "a restart counts nothing again";
  EXPECT_NE(after->body.find("nodewarden_job_last_exit_code{cronjob=\"\",job_name=\"exit-three\""),
            std::string::npos)
      << "the latest run per job is restored";
  EXPECT_EQ(loki_->entries(stream).size(), events_before);
}

// The API server's watch as the only status source: a MODIFIED event brings the end (exit 2), and a
// pod DELETED while Running, its cgroups removed and no OOM kill, ends as "unknown" once
// status_wait has passed.
TEST_F(JobOutcomesEndToEnd, StatusesFromTheApiServerWatchAlone) {
  JobPod exit2 = addJobPod("exit-two-m3n4b", "exit-two", -1);
  JobPod deleted = addJobPod("deleted-early-p5q6r", "deleted-early", -1);
  for (const JobPod* p : {&exit2, &deleted}) {
    json item = p->item();
    item["spec"]["nodeName"] = "test-node";
    apiserver_->putPod(item);
  }
  startAgent(true);
  ASSERT_TRUE(waitFor(
      [&] {
        auto r = nodewarden::testing::httpGet(url("/metrics"), 2s);
        return r && r->body.find(exit2.pod->uid()) != std::string::npos &&
               r->body.find(deleted.pod->uid()) != std::string::npos;
      },
      20s));
  std::this_thread::sleep_for(1s);
  auto pid = exit2.container->run({"sh", "-c", "sleep 1; exit 2"});
  ASSERT_TRUE(pid.has_value()) << pid.error();
  auto sleeper = deleted.container->run({"sleep", "30"});
  ASSERT_TRUE(sleeper.has_value()) << sleeper.error();
  ASSERT_TRUE(waitFor([&] { return isZombie(*pid); }, 10s));
  exit2.terminated(2, "Error");
  apiserver_->putPod(exit2.item());
  apiserver_->deletePod(deleted.pod->uid());
  ASSERT_TRUE(node_->removePod(*deleted.pod).has_value());

  ASSERT_TRUE(waitFor([&] { return jobs()["outcomes"].size() >= 2; }, 20s)) << jobs().dump(2);
  const json all = jobs();
  const json e = outcomeOf(all, "exit-two-m3n4b");
  ASSERT_FALSE(e.is_null()) << all.dump(2);
  EXPECT_EQ(e["outcome"], "failed");
  EXPECT_EQ(e["exit_code"], 2);
  EXPECT_EQ(e["evidence"], "status+cgroup");
  const json d = outcomeOf(all, "deleted-early-p5q6r");
  ASSERT_FALSE(d.is_null()) << all.dump(2);
  EXPECT_EQ(d["outcome"], "unknown");
  EXPECT_EQ(d["reason"], "Unknown");
  EXPECT_EQ(d["oom_kills"], 0);
  EXPECT_TRUE(d["exit_code"].is_null()) << "nothing said how it exited";
}

}  // namespace
