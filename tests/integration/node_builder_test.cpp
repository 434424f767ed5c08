// The test node builder against the real kernel, without the agent: the layout it creates is
// kubelet's, processes it runs are inside every hierarchy's container cgroup, the CPU it measures
// from /proc agrees with cpuacct, and it leaves nothing behind.
#include "tests/support/node_builder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace nodewarden::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Layout {
  CgroupDriver driver;
  ContainerRuntime runtime;
};

class NodeBuilderTest : public ::testing::TestWithParam<Layout> {
 protected:
  std::unique_ptr<NodeBuilder> makeNode() {
    NodeBuilderOptions options;
    options.driver = GetParam().driver;
    options.runtime = GetParam().runtime;
    auto node = NodeBuilder::create(options);
    EXPECT_TRUE(node.has_value()) << node.error();
    return node ? std::move(*node) : nullptr;
  }
};

// Polls until pred() or the timeout; the tests' only way of waiting.
template <typename Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

TEST_P(NodeBuilderTest, CreatesKubeletLayoutAndRemovesEverything) {
  auto node = makeNode();
  ASSERT_NE(node, nullptr);
  const std::vector<fs::path> parents = node->parentDirs();
  ASSERT_FALSE(parents.empty());
  const bool systemd = GetParam().driver == CgroupDriver::kSystemd;
  const std::string uid = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
  auto pod = node->addPod("spark", "exec-1", uid, PodQos::kBurstable);
  ASSERT_TRUE(pod) << pod.error();
  auto c = (*pod)->addContainer(containerSpec("main", 30000, 256 << 20));
  ASSERT_TRUE(c) << c.error();
  auto g = node->addPod("kafka", "broker-0", "", PodQos::kGuaranteed);
  ASSERT_TRUE(g) << g.error();
  auto gc = (*g)->addContainer(containerSpec("kafka", 50000, 64 << 20));
  ASSERT_TRUE(gc) << gc.error();
  auto be = node->addPod("default", "idle", "", PodQos::kBestEffort);
  ASSERT_TRUE(be) << be.error();
  ASSERT_TRUE((*be)->addContainer(containerSpec("sleep")));

  const std::string id = (*c)->id();
  const fs::path expected =
      systemd ? fs::path("kubepods.slice/kubepods-burstable.slice") /
                    "kubepods-burstable-pod1b4e28ba_2fa1_11d2_883f_0016d3cca427.slice" /
                    ((GetParam().runtime == ContainerRuntime::kCrio ? "crio-" : "cri-containerd-") +
                     id + ".scope")
              : fs::path("kubepods/burstable/pod" + uid) / id;
  EXPECT_EQ((*c)->relativePath(), expected);
  EXPECT_EQ((*g)->relativePath().parent_path().string(), systemd ? "kubepods.slice" : "kubepods");
  for (const auto& dir : (*c)->cgroupDirs()) {
    EXPECT_TRUE(fs::is_directory(dir)) << dir;
    EXPECT_TRUE(fs::exists(dir / "cgroup.procs")) << dir;
  }
  ASSERT_TRUE((*c)->cgroupDir("memory"));
  ASSERT_TRUE((*c)->cgroupDir("unified"));
  EXPECT_EQ((*c)->readUint("cpu", "cpu.cfs_quota_us").value_or(0), 30000u);
  EXPECT_EQ((*c)->readUint("cpu", "cpu.cfs_period_us").value_or(0), 100000u);
  EXPECT_EQ((*c)->readUint("memory", "memory.limit_in_bytes").value_or(0), 256u << 20);
  auto pod_cpu = (*pod)->cgroupDir("cpu");
  ASSERT_TRUE(pod_cpu);
  EXPECT_TRUE(fs::exists(*pod_cpu / "cpu.cfs_quota_us"));

  // Logs, as kubelet writes them.
  const fs::path log = node->logRoot() / ("spark_exec-1_" + uid) / "main" / "0.log";
  EXPECT_EQ((*c)->logFile(), log);
  EXPECT_TRUE(fs::is_regular_file(log));
  const fs::path link = node->containerLogDir() / ("exec-1_spark_main-" + id + ".log");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), log);

  ASSERT_TRUE(node->removePod(**pod));
  EXPECT_FALSE(fs::exists(log));
  EXPECT_FALSE(fs::exists(link));
  for (const auto& p : parents) EXPECT_TRUE(fs::exists(p));
  auto done = node->cleanup();
  EXPECT_TRUE(done) << done.error();
  for (const auto& p : parents) EXPECT_FALSE(fs::exists(p)) << p;
  const fs::path temp = node->tempDir();
  node.reset();
  EXPECT_FALSE(fs::exists(temp));
}

TEST_P(NodeBuilderTest, RunsWorkloadsInsideAndMeasuresTheirCpu) {
  auto node = makeNode();
  ASSERT_NE(node, nullptr);
  auto pod = node->addPod("spark", "throttled", "", PodQos::kGuaranteed);
  ASSERT_TRUE(pod) << pod.error();
  auto c = (*pod)->addContainer(containerSpec("burn", 30000, 256 << 20));
  ASSERT_TRUE(c) << c.error();
  auto pid = (*c)->run({"stress-ng", "--cpu", "1", "--cpu-load", "100", "--timeout", "60s"});
  ASSERT_TRUE(pid) << pid.error();
  // stress-ng forks its worker: both must be in the cgroup, in every hierarchy.
  ASSERT_TRUE(waitFor([&] { return (*c)->pids().size() >= 2; }, 10s));
  for (const auto& dir : (*c)->cgroupDirs()) {
    std::ifstream procs(dir / "cgroup.procs");
    int n = 0;
    for (long p; procs >> p;) ++n;
    EXPECT_GE(n, 2) << dir;
  }
  // Let it settle into throttling, then measure a window both ways. The pod has the same quota
  // as its one container (kubelet sets the sum of the limits), so the kernel may throttle at
  // either level: nr_throttled counts only the level whose own runtime ran out.
  const auto throttled = [&] {
    return (*c)->readKey("cpu", "cpu.stat", "nr_throttled").value_or(0) +
           (*pod)->readKey("cpu", "cpu.stat", "nr_throttled").value_or(0);
  };
  ASSERT_TRUE(waitFor([&] { return throttled() > 5; }, 10s))
      << "container " << (*c)->readKey("cpu", "cpu.stat", "nr_throttled").value_or(0) << ", pod "
      << (*pod)->readKey("cpu", "cpu.stat", "nr_throttled").value_or(0) << "; cpuacct.usage "
      << (*c)->readUint("cpuacct", "cpuacct.usage").value_or(0);
  const auto t0 = std::chrono::steady_clock::now();
  const double proc0 = processTreeCpuSeconds(*pid);
  const auto acct0 = (*c)->readUint("cpuacct", "cpuacct.usage");
  ASSERT_TRUE(acct0) << acct0.error();
  const auto throttled0 = throttled();
  std::this_thread::sleep_for(5s);  // the measurement window itself
  const double proc1 = processTreeCpuSeconds(*pid);
  const auto acct1 = (*c)->readUint("cpuacct", "cpuacct.usage");
  ASSERT_TRUE(acct1) << acct1.error();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double proc_rate = (proc1 - proc0) / seconds;
  const double acct_rate = static_cast<double>(*acct1 - *acct0) / 1e9 / seconds;
  EXPECT_NEAR(acct_rate, 0.3, 0.03);
  EXPECT_NEAR(proc_rate, acct_rate, 0.1 * acct_rate);
  EXPECT_GT(throttled(), throttled0);
  const double cpu_in_cgroup = processesCpuSeconds((*c)->pids());
  EXPECT_GT(cpu_in_cgroup, 0.0);

  EXPECT_TRUE((*c)->stop());
  EXPECT_TRUE((*c)->pids().empty());
  const auto parents = node->parentDirs();
  node.reset();
  for (const auto& p : parents) EXPECT_FALSE(fs::exists(p)) << p;
}

TEST_P(NodeBuilderTest, MemoryWorkloadIsChargedToTheContainer) {
  auto node = makeNode();
  ASSERT_NE(node, nullptr);
  auto pod = node->addPod("kafka", "mem", "", PodQos::kBurstable);
  ASSERT_TRUE(pod) << pod.error();
  auto c = (*pod)->addContainer(containerSpec("vm", -1, 256 << 20));
  ASSERT_TRUE(c) << c.error();
  ASSERT_TRUE(
      (*c)->run({"stress-ng", "--vm", "1", "--vm-bytes", "100M", "--vm-keep", "--timeout", "60s"}));
  EXPECT_TRUE(waitFor(
      [&] { return (*c)->readUint("memory", "memory.usage_in_bytes").value_or(0) > (95u << 20); },
      20s))
      << (*c)->readUint("memory", "memory.usage_in_bytes").value_or(0);
  EXPECT_TRUE((*c)->kill());
  EXPECT_TRUE(waitFor(
      [&] { return (*c)->readUint("memory", "memory.usage_in_bytes").value_or(0) < (50u << 20); },
      10s));
}

INSTANTIATE_TEST_SUITE_P(Layouts, NodeBuilderTest,
                         ::testing::Values(Layout{CgroupDriver::kCgroupfs,
                                                  ContainerRuntime::kContainerd},
                                           Layout{CgroupDriver::kSystemd, ContainerRuntime::kCrio}),
                         [](const auto& p) {
                           return std::string(driverName(p.param.driver)) + "_" +
                                  runtimeName(p.param.runtime);
                         });

}  // namespace
}  // namespace nodewarden::testing
