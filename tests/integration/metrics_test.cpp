// The agent end to end: the real binary on a real node (NodeBuilder's cgroups on this kernel,
// stress-ng inside them) scraped every second by a real Prometheus; every assertion goes through
// Prometheus's HTTP API, the way users and the kubernetes-mixin dashboards read the agent.
//
// What a reader gets wrong: the reference for CPU is measured independently, from /proc/<pid>/stat
// of the container's processes over the same wall-clock window Prometheus's rate() covers; it is
// not the cgroup file the agent reads. The window is the one deliberate wait (a rate needs time to
// pass); everything else polls with a deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/node_builder.h"

namespace nodewarden::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr const char* kAgentBinary = NODEWARDEN_BINARY;
constexpr const char* kPrometheusBinary = NODEWARDEN_PROMETHEUS;
constexpr std::int64_t kMiB = 1 << 20;

template <typename Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout, std::chrono::milliseconds poll = 200ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

double wallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string tail(const fs::path& file, std::size_t bytes = 3000) {
  std::ifstream in(file);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

struct Series {
  std::map<std::string, std::string> labels;
  double value = 0;
  [[nodiscard]] std::string label(const std::string& key) const {
    auto it = labels.find(key);
    return it == labels.end() ? std::string() : it->second;
  }
};

std::string describe(const std::vector<Series>& series) {
  std::string out;
  for (const auto& s : series) {
    out += "{";
    for (const auto& [k, v] : s.labels) out += k + "=\"" + v + "\",";
    out += "} " + std::to_string(s.value) + "\n";
  }
  return out.empty() ? "(no series)" : out;
}

// The agent and a Prometheus that scrapes it every second, both children of the test.
class Stack {
 public:
  static std::expected<std::unique_ptr<Stack>, std::string> start(const fs::path& dir,
                                                                  const fs::path& log_root) {
    auto stack = std::unique_ptr<Stack>(new Stack(dir));
    if (auto r = stack->startAgent(log_root); !r) return std::unexpected(r.error());
    if (auto r = stack->startPrometheus(); !r) return std::unexpected(r.error());
    return stack;
  }
  ~Stack() {
    prometheus_.stop(10s);
    agent_.stop(10s);
  }

  [[nodiscard]] int agentPort() const { return agent_port_; }
  [[nodiscard]] std::string logs() const {
    return "--- agent log (tail) ---\n" + tail(dir_ / "agent.log") +
           "\n--- prometheus log (tail) ---\n" + tail(dir_ / "prometheus.log", 1500);
  }

  // An instant query; at: evaluation time (wall-clock seconds), default now.
  std::expected<std::vector<Series>, std::string> query(const std::string& promql,
                                                        std::optional<double> at = {}) {
    std::string url = "http://127.0.0.1:" + std::to_string(prom_port_) +
                      "/api/v1/query?query=" + urlEncode(promql);
    if (at) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3f", *at);
      url += std::string("&time=") + buf;
    }
    auto response = httpGet(url);
    if (!response) return std::unexpected(response.error());
    if (response->status != 200) {
      return std::unexpected(promql + ": HTTP " + std::to_string(response->status) + " " +
                             response->body);
    }
    try {
      const Json doc = Json::parse(response->body);
      if (doc.at("status") != "success") return std::unexpected(response->body);
      std::vector<Series> out;
      for (const auto& r : doc.at("data").at("result")) {
        Series s;
        for (const auto& [k, v] : r.at("metric").items()) s.labels[k] = v.get<std::string>();
        s.value = std::stod(r.at("value").at(1).get<std::string>());
        out.push_back(std::move(s));
      }
      return out;
    } catch (const std::exception& e) {
      return std::unexpected(std::string("bad response to ") + promql + ": " + e.what());
    }
  }

  // The single value of a query that must return exactly one series.
  std::expected<double, std::string> scalar(const std::string& promql,
                                            std::optional<double> at = {}) {
    auto r = query(promql, at);
    if (!r) return std::unexpected(r.error());
    if (r->size() != 1) {
      return std::unexpected(promql + " returned " + std::to_string(r->size()) + " series:\n" +
                             describe(*r));
    }
    return r->front().value;
  }

  // Polls until the query returns at least one series.
  bool waitForSeries(const std::string& promql, std::chrono::milliseconds timeout) {
    return waitFor(
        [&] {
          auto r = query(promql);
          return r && !r->empty();
        },
        timeout, 500ms);
  }

 private:
  explicit Stack(fs::path dir) : dir_(std::move(dir)) {}

  std::expected<void, std::string> startAgent(const fs::path& log_root) {
    agent_port_ = nodewarden::testing::freeLoopbackPort();
    if (agent_port_ <= 0) return std::unexpected("no free port");
    fs::create_directories(dir_ / "state");
    SpawnOptions options;
    options.output = dir_ / "agent.log";
    auto child = ChildProcess::start(
        {kAgentBinary, "run", "--listen", "127.0.0.1:" + std::to_string(agent_port_),
         "--cgroup-root", "/sys/fs/cgroup", "--proc-root", "/proc", "--log-root", log_root.string(),
         "--state-dir", (dir_ / "state").string(), "--interval", "1s", "--node-name", "itest-node"},
        options);
    if (!child) return std::unexpected(child.error());
    agent_ = std::move(*child);
    const std::string ready = "http://127.0.0.1:" + std::to_string(agent_port_) + "/readyz";
    long last = 0;
    const bool ok = waitFor(
        [&] {
          if (!agent_.running()) return true;
          auto r = httpGet(ready, 1s);
          last = r ? r->status : 0;
          return last == 200;
        },
        30s, 100ms);
    if (!agent_.running()) {
      return std::unexpected("agent " + describeWaitStatus(agent_.exitStatus().value_or(0)) + "\n" +
                             tail(dir_ / "agent.log"));
    }
    if (!ok) {
      return std::unexpected("agent /readyz not 200 within 30s (last " + std::to_string(last) +
                             ")\n" + tail(dir_ / "agent.log"));
    }
    return {};
  }

  std::expected<void, std::string> startPrometheus() {
    prom_port_ = nodewarden::testing::freeLoopbackPort();
    if (prom_port_ <= 0) return std::unexpected("no free port");
    {
      std::ofstream yml(dir_ / "prom.yml");
      yml << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
          << "scrape_configs:\n  - job_name: nodewarden\n    static_configs:\n"
          << "      - targets: ['127.0.0.1:" << agent_port_ << "']\n";
    }
    SpawnOptions options;
    options.output = dir_ / "prometheus.log";
    auto child =
        ChildProcess::start({kPrometheusBinary, "--config.file=" + (dir_ / "prom.yml").string(),
                             "--storage.tsdb.path=" + (dir_ / "data").string(),
                             "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_)},
                            options);
    if (!child) return std::unexpected(child.error());
    prometheus_ = std::move(*child);
    const std::string ready = "http://127.0.0.1:" + std::to_string(prom_port_) + "/-/ready";
    const bool ok = waitFor(
        [&] {
          if (!prometheus_.running()) return true;
          auto r = httpGet(ready, 1s);
          return r && r->status == 200;
        },
        60s, 200ms);
    if (!prometheus_.running() || !ok) {
      return std::unexpected("prometheus did not become ready\n" + tail(dir_ / "prometheus.log"));
    }
    // The first successful scrape of the agent.
    const bool up = waitFor(
        [&] {
          auto r = scalar("up{job=\"nodewarden\"}");
          return r && *r == 1.0;
        },
        30s, 250ms);
    if (!up) {
      return std::unexpected("prometheus never scraped the agent successfully\n" +
                             tail(dir_ / "prometheus.log"));
    }
    return {};
  }

  fs::path dir_;
  int agent_port_ = 0;
  int prom_port_ = 0;
  ChildProcess agent_;
  ChildProcess prometheus_;
};

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    if (!fs::exists(kAgentBinary)) GTEST_SKIP() << "agent not built: " << kAgentBinary;
    if (std::string(kPrometheusBinary).empty() || !fs::exists(kPrometheusBinary)) {
      GTEST_SKIP() << "prometheus not installed (scripts/setup.sh)";
    }
    if (std::system("stress-ng --version >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "stress-ng not installed (scripts/setup.sh)";
    }
    std::string tmpl = (fs::temp_directory_path() / "nodewarden-itest-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }

  void TearDown() override {
    if (HasFailure() && stack_) std::cerr << stack_->logs() << "\n";
    stack_.reset();  // stops Prometheus and the agent
    for (auto& node : nodes_) {
      auto r = node->cleanup();
      EXPECT_TRUE(r) << r.error();
      for (const auto& p : node->parentDirs()) EXPECT_FALSE(fs::exists(p)) << p;
    }
    nodes_.clear();
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  NodeBuilder* makeNode(CgroupDriver driver, ContainerRuntime runtime) {
    NodeBuilderOptions options;
    options.driver = driver;
    options.runtime = runtime;
    options.temp_dir = dir_ / "node";  // one log root shared by every node of the test
    auto node = NodeBuilder::create(options);
    EXPECT_TRUE(node) << node.error();
    if (!node) return nullptr;
    nodes_.push_back(std::move(*node));
    return nodes_.back().get();
  }

  Container* addContainer(NodeBuilder& node, const std::string& ns, const std::string& pod,
                          PodQos qos, const ContainerSpec& spec) {
    Pod* p = node.pod(pod);
    if (p == nullptr) {
      auto added = node.addPod(ns, pod, "", qos);
      EXPECT_TRUE(added) << added.error();
      if (!added) return nullptr;
      p = *added;
    }
    auto c = p->addContainer(spec);
    EXPECT_TRUE(c) << c.error();
    return c ? *c : nullptr;
  }

  bool startStack() {
    auto stack = Stack::start(dir_, dir_ / "node" / "var" / "log" / "pods");
    EXPECT_TRUE(stack) << stack.error();
    if (!stack) return false;
    stack_ = std::move(*stack);
    return true;
  }

  fs::path dir_;
  std::vector<std::unique_ptr<NodeBuilder>> nodes_;
  std::unique_ptr<Stack> stack_;
};

std::string sel(const std::string& pod, const std::string& container) {
  return "{pod=\"" + pod + "\",container=\"" + container + "\"}";
}

const std::vector<std::string> kBurn = {"stress-ng", "--cpu",     "1",   "--cpu-load",
                                        "100",       "--timeout", "120s"};

// ---------------------------------------------------------------------------------------------

struct Layout {
  CgroupDriver driver;
  ContainerRuntime runtime;
};

class CpuTest : public MetricsTest, public ::testing::WithParamInterface<Layout> {};

TEST_P(CpuTest, UsageRateMatchesProcAndThrottlingShows) {
  NodeBuilder* node = makeNode(GetParam().driver, GetParam().runtime);
  ASSERT_NE(node, nullptr);
  Container* hog = addContainer(*node, "spark", "spark-hog", PodQos::kBurstable,
                                containerSpec("executor", -1, 512 * kMiB));
  Container* thr = addContainer(*node, "airflow", "airflow-throttled", PodQos::kGuaranteed,
                                containerSpec("worker", 30000, 256 * kMiB));
  ASSERT_TRUE(hog && thr);
  ASSERT_TRUE(hog->run(kBurn));
  ASSERT_TRUE(thr->run(kBurn));
  ASSERT_TRUE(startStack());

  const std::string usage = "container_cpu_usage_seconds_total";
  ASSERT_TRUE(stack_->waitForSeries(usage + sel("spark-hog", "executor"), 30s))
      << describe(stack_->query(usage).value_or(std::vector<Series>{}));
  ASSERT_TRUE(stack_->waitForSeries(usage + sel("airflow-throttled", "worker"), 30s));

  // One window, measured both ways: /proc of the containers' processes, and rate() over it.
  const double window = 15;
  const auto hog_pids = hog->pids();
  const auto thr_pids = thr->pids();
  const double t0 = wallSeconds();
  const double hog0 = processesCpuSeconds(hog_pids);
  const double thr0 = processesCpuSeconds(thr_pids);
  const auto kernel_thr0 = thr->readKey("cpu", "cpu.stat", "nr_throttled");
  const auto pod_thr0 = thr->pod().readKey("cpu", "cpu.stat", "nr_throttled");
  std::this_thread::sleep_for(std::chrono::duration<double>(window));
  const double hog1 = processesCpuSeconds(hog_pids);
  const double thr1 = processesCpuSeconds(thr_pids);
  const auto kernel_thr1 = thr->readKey("cpu", "cpu.stat", "nr_throttled");
  const auto pod_thr1 = thr->pod().readKey("cpu", "cpu.stat", "nr_throttled");
  const double t1 = wallSeconds();
  ASSERT_TRUE(kernel_thr0 && kernel_thr1);
  ASSERT_TRUE(pod_thr0 && pod_thr1);
  const double hog_proc = (hog1 - hog0) / (t1 - t0);
  const double thr_proc = (thr1 - thr0) / (t1 - t0);
  // Give Prometheus the scrape that lands just before t1; the query is evaluated at t1.
  std::this_thread::sleep_for(2s);
  const std::string range = "[" + std::to_string(static_cast<int>(window)) + "s]";
  auto hog_rate = stack_->scalar("rate(" + usage + sel("spark-hog", "executor") + range + ")", t1);
  auto thr_rate =
      stack_->scalar("rate(" + usage + sel("airflow-throttled", "worker") + range + ")", t1);
  ASSERT_TRUE(hog_rate) << hog_rate.error();
  ASSERT_TRUE(thr_rate) << thr_rate.error();
  std::cerr << "cores used: hog agent " << *hog_rate << " proc " << hog_proc << "; throttled agent "
            << *thr_rate << " proc " << thr_proc << "\n";
  EXPECT_GT(hog_proc, 0.1) << "the unthrottled hog hardly ran; nothing to compare";
  EXPECT_NEAR(*hog_rate, hog_proc, 0.1 * hog_proc);
  EXPECT_NEAR(*thr_rate, thr_proc, 0.1 * thr_proc);
  // The quota is a ceiling whatever else runs. It is also reached when the machine has room,
  // which the unthrottled hog shows; on a machine busy with other work it may not be.
  EXPECT_LE(*thr_rate, 0.3 * 1.1);
  if (hog_proc >= 0.6) {
    EXPECT_GE(*thr_rate, 0.3 * 0.85);
  } else {
    std::cerr << "machine busy (the hog got " << hog_proc
              << " cores): the 0.3-core floor is not checked\n";
  }

  const std::string throttled = "container_cpu_cfs_throttled_periods_total";
  auto thr_inc = stack_->scalar(
      "increase(" + throttled + sel("airflow-throttled", "worker") + range + ")", t1);
  ASSERT_TRUE(thr_inc) << thr_inc.error();
  const double kernel_inc = static_cast<double>(*kernel_thr1 - *kernel_thr0);
  // The pod has the container's quota (kubelet's sum of limits), and the kernel counts a
  // throttled period only at the level whose runtime ran out: either may take them.
  const double pod_kernel_inc = static_cast<double>(*pod_thr1 - *pod_thr0);
  auto pod_inc =
      stack_->scalar("increase(" + throttled + sel("airflow-throttled", "") + range + ")", t1);
  ASSERT_TRUE(pod_inc) << pod_inc.error();
  std::cerr << "throttled periods in the window: container agent " << *thr_inc << " kernel "
            << kernel_inc << "; pod agent " << *pod_inc << " kernel " << pod_kernel_inc << "\n";
  EXPECT_GT(*thr_inc + *pod_inc, 0);
  EXPECT_NEAR(*thr_inc, kernel_inc, std::max(3.0, 0.2 * kernel_inc));
  EXPECT_NEAR(*pod_inc, pod_kernel_inc, std::max(3.0, 0.2 * pod_kernel_inc));
  auto hog_inc =
      stack_->query("increase(" + throttled + sel("spark-hog", "executor") + range + ")", t1);
  ASSERT_TRUE(hog_inc) << hog_inc.error();
  for (const auto& s : *hog_inc) EXPECT_EQ(s.value, 0) << describe(*hog_inc);
  auto thr_time = stack_->scalar(
      "sum(increase(container_cpu_cfs_throttled_seconds_total"
      "{pod=\"airflow-throttled\"}" +
          range + "))",
      t1);
  ASSERT_TRUE(thr_time) << thr_time.error();
  EXPECT_GT(*thr_time, 0);

  // Limits as cAdvisor reports them.
  auto quota = stack_->scalar("container_spec_cpu_quota" + sel("airflow-throttled", "worker"));
  ASSERT_TRUE(quota) << quota.error();
  EXPECT_EQ(*quota, 30000);
  auto mem_limit =
      stack_->scalar("container_spec_memory_limit_bytes" + sel("airflow-throttled", "worker"));
  ASSERT_TRUE(mem_limit) << mem_limit.error();
  EXPECT_EQ(*mem_limit, static_cast<double>(256 * kMiB));

  // Labels from the log directory names; the id label is the cgroup path.
  auto series = stack_->query(usage + "{pod=\"spark-hog\"}");
  ASSERT_TRUE(series) << series.error();
  const Series* container = nullptr;
  const Series* pod = nullptr;
  for (const auto& s : *series) {
    if (s.label("container") == "executor") container = &s;
    if (s.label("container").empty()) pod = &s;
  }
  ASSERT_NE(container, nullptr) << describe(*series);
  EXPECT_EQ(container->label("namespace"), "spark");
  EXPECT_EQ(container->label("pod"), "spark-hog");
  EXPECT_TRUE(container->label("id").ends_with(hog->relativePath().filename().string()))
      << container->label("id");
  // The pod-level series: container="" (absent in Prometheus), same namespace and pod.
  ASSERT_NE(pod, nullptr) << describe(*series);
  EXPECT_EQ(pod->label("namespace"), "spark");
  EXPECT_TRUE(pod->label("id").ends_with(hog->pod().relativePath().filename().string()))
      << pod->label("id");
  auto pod_rate =
      stack_->scalar("rate(" + usage + "{pod=\"spark-hog\",container=\"\"}" + range + ")", t1);
  ASSERT_TRUE(pod_rate) << pod_rate.error();
  EXPECT_GE(*pod_rate, 0.9 * *hog_rate);

  // PSI from the v2 tree where it exists (hybrid hosts carry it in /sys/fs/cgroup/unified).
  if (hog->cgroupDir("unified") && fs::exists(*hog->cgroupDir("unified") / "cpu.pressure")) {
    auto psi = stack_->query("container_pressure_cpu_waiting_seconds_total" +
                             sel("spark-hog", "executor"));
    ASSERT_TRUE(psi) << psi.error();
    EXPECT_EQ(psi->size(), 1u) << describe(*psi);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CpuTest,
                         ::testing::Values(Layout{CgroupDriver::kCgroupfs,
                                                  ContainerRuntime::kContainerd},
                                           Layout{CgroupDriver::kSystemd, ContainerRuntime::kCrio}),
                         [](const auto& p) {
                           return std::string(driverName(p.param.driver)) + "_" +
                                  runtimeName(p.param.runtime);
                         });

// ---------------------------------------------------------------------------------------------

TEST_F(MetricsTest, WorkingSetTracksAnAllocationAndFallsWhenItEnds) {
  NodeBuilder* node = makeNode(CgroupDriver::kSystemd, ContainerRuntime::kContainerd);
  ASSERT_NE(node, nullptr);
  Container* c = addContainer(*node, "kafka", "kafka-0", PodQos::kBurstable,
                              containerSpec("broker", -1, 256 * kMiB));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->run({"stress-ng", "--vm", "1", "--vm-bytes", "150M", "--vm-keep", "--timeout", "120s"}));
  ASSERT_TRUE(startStack());
  const double target = 150.0 * kMiB;
  ASSERT_TRUE(waitFor(
      [&] { return c->readUint("memory", "memory.usage_in_bytes").value_or(0) >= 0.95 * target; },
      30s))
      << "stress-ng never allocated; usage "
      << c->readUint("memory", "memory.usage_in_bytes").value_or(0);

  const std::string ws = "container_memory_working_set_bytes" + sel("kafka-0", "broker");
  double seen = 0;
  const bool tracked = waitFor(
      [&] {
        auto v = stack_->scalar(ws);
        seen = v.value_or(0);
        return v && std::abs(*v - target) <= 0.15 * target;
      },
      20s, 500ms);
  EXPECT_TRUE(tracked) << "working set " << seen / kMiB << " MiB, expected 150 MiB +-15%";
  // And the agent's figure agrees with the kernel's (usage - inactive_file, cAdvisor's formula).
  const auto usage = c->readUint("memory", "memory.usage_in_bytes").value_or(0);
  const auto inactive = c->readKey("memory", "memory.stat", "total_inactive_file").value_or(0);
  const double kernel_ws = static_cast<double>(usage - std::min(usage, inactive));
  EXPECT_NEAR(seen, kernel_ws, 0.15 * kernel_ws);
  auto limit = stack_->scalar("container_spec_memory_limit_bytes" + sel("kafka-0", "broker"));
  ASSERT_TRUE(limit) << limit.error();
  EXPECT_EQ(*limit, static_cast<double>(256 * kMiB));
  auto rss = stack_->scalar("container_memory_rss" + sel("kafka-0", "broker"));
  ASSERT_TRUE(rss) << rss.error();
  EXPECT_GT(*rss, 0.85 * target);

  ASSERT_TRUE(c->kill());
  const bool fell = waitFor(
      [&] {
        auto v = stack_->scalar(ws);
        seen = v.value_or(-1);
        return v && *v < 0.2 * target;
      },
      20s, 500ms);
  EXPECT_TRUE(fell) << "working set still " << seen / kMiB << " MiB after the allocation ended";
}

// ---------------------------------------------------------------------------------------------

TEST_F(MetricsTest, EveryLayoutAndQosClassIsNamedFromTheLogDirectories) {
  struct Expect {
    std::string ns, pod;
  };
  std::vector<Expect> expected;
  for (const auto driver : {CgroupDriver::kCgroupfs, CgroupDriver::kSystemd}) {
    for (const auto runtime :
         {ContainerRuntime::kContainerd, ContainerRuntime::kCrio, ContainerRuntime::kDocker}) {
      NodeBuilder* node = makeNode(driver, runtime);
      ASSERT_NE(node, nullptr);
      for (const auto qos : {PodQos::kGuaranteed, PodQos::kBurstable, PodQos::kBestEffort}) {
        std::string pod =
            std::string(driverName(driver)) + "-" + runtimeName(runtime) + "-" + qosName(qos);
        std::transform(pod.begin(), pod.end(), pod.begin(), ::tolower);
        const std::string ns = std::string("ns-") + runtimeName(runtime);
        const bool limited = qos != PodQos::kBestEffort;
        Container* c =
            addContainer(*node, ns, pod, qos,
                         containerSpec("app", limited ? 10000 : -1, limited ? 64 * kMiB : -1));
        ASSERT_NE(c, nullptr);
        ASSERT_TRUE(c->run({"sleep", "300"}));
        expected.push_back({ns, pod});
      }
    }
  }
  ASSERT_TRUE(startStack());
  for (const auto& e : expected) {
    const std::string q = "container_memory_working_set_bytes{pod=\"" + e.pod + "\"}";
    EXPECT_TRUE(stack_->waitForSeries(q, 30s)) << e.pod;
    auto series = stack_->query(q);
    ASSERT_TRUE(series) << series.error();
    bool container = false;
    bool pod = false;
    for (const auto& s : *series) {
      EXPECT_EQ(s.label("namespace"), e.ns) << describe(*series);
      if (s.label("container") == "app") container = true;
      if (s.label("container").empty()) pod = true;
    }
    EXPECT_TRUE(container) << e.pod << ": no container series\n" << describe(*series);
    EXPECT_TRUE(pod) << e.pod << ": no pod-level series\n" << describe(*series);
  }
}

// ---------------------------------------------------------------------------------------------

TEST_F(MetricsTest, RemovedPodsSeriesGoStale) {
  NodeBuilder* node = makeNode(CgroupDriver::kCgroupfs, ContainerRuntime::kContainerd);
  ASSERT_NE(node, nullptr);
  Container* keep = addContainer(*node, "kafka", "kafka-keep", PodQos::kBurstable,
                                 containerSpec("broker", 20000, 64 * kMiB));
  Container* gone = addContainer(*node, "kafka", "kafka-gone", PodQos::kBurstable,
                                 containerSpec("broker", 20000, 64 * kMiB));
  ASSERT_TRUE(keep && gone);
  ASSERT_TRUE(keep->run({"sleep", "300"}));
  ASSERT_TRUE(gone->run({"sleep", "300"}));
  ASSERT_TRUE(startStack());
  const std::string q_gone = "container_cpu_usage_seconds_total{pod=\"kafka-gone\"}";
  const std::string q_keep = "container_cpu_usage_seconds_total{pod=\"kafka-keep\"}";
  ASSERT_TRUE(stack_->waitForSeries(q_gone, 30s));
  ASSERT_TRUE(stack_->waitForSeries(q_keep, 30s));
  EXPECT_EQ(stack_->query(q_gone).value_or(std::vector<Series>{}).size(), 2u)
      << "container and pod-level series";

  auto removed = node->removePod(gone->pod());
  ASSERT_TRUE(removed) << removed.error();
  // Staleness: the scrape after the agent notices is enough; allow a few scrapes.
  std::vector<Series> left;
  const bool vanished = waitFor(
      [&] {
        auto r = stack_->query(q_gone);
        left = r.value_or(std::vector<Series>{Series{}});
        return r && r->empty();
      },
      15s, 250ms);
  EXPECT_TRUE(vanished) << "still there:\n" << describe(left);
  auto still = stack_->query(q_keep);
  ASSERT_TRUE(still) << still.error();
  EXPECT_EQ(still->size(), 2u) << describe(*still);
}

}  // namespace
}  // namespace nodewarden::testing
