// CgroupCollector on fixture trees of every layout (file contents as the kernel prints them), on
// damaged copies of them, and on the real kernel where it can show what fixtures cannot.
#include "collectors/cgroup/cgroup_collector.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "collectors/common/pread_file.h"
#include "exporters/prometheus/text_renderer.h"
#include "pipeline/container_metadata.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;
using namespace std::chrono_literals;

const std::string kU1 = "11111111-2222-3333-4444-555555555551";
const std::string kU2 = "11111111-2222-3333-4444-555555555552";
const std::string kU3 = "11111111-2222-3333-4444-555555555553";
const std::string kId1 = std::string(63, 'a') + "1";
const std::string kId2 = std::string(63, 'b') + "2";
const std::string kId3 = std::string(63, 'c') + "3";
const std::string kPause = std::string(63, 'd') + "4";

fs::path fixture(const std::string& name) {
  return fs::path(NODEWARDEN_FIXTURES) / "cgroup" / name;
}

// A writable copy of a fixture, removed at the end.
class TempTree {
 public:
  explicit TempTree(const std::string& name) {
    static std::mt19937_64 rng{std::random_device{}()};
    root_ = fs::temp_directory_path() / ("nodewarden-test-" + std::to_string(rng()));
    fs::copy(fixture(name), root_, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  }
  ~TempTree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  [[nodiscard]] const fs::path& root() const { return root_; }

 private:
  fs::path root_;
};

void writeFile(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::trunc);
  out << content;
}

struct Harness {
  explicit Harness(const fs::path& base)
      : errors(self.registry()), collector(options(base), errors) {}
  static CgroupCollectorOptions options(const fs::path& base) {
    CgroupCollectorOptions o;
    o.cgroup_root = base / "sys/fs/cgroup";
    o.log_root = base / "var/log/pods";
    o.proc_root = base / "proc";
    return o;
  }
  // One cycle; samples keyed by "uid/container_id".
  std::map<std::string, const CgroupSample*> collect() {
    snapshot.reset();
    collector.collect(snapshot);
    std::map<std::string, const CgroupSample*> out;
    for (const auto* s : snapshot.cgroups) {
      EXPECT_TRUE(out.emplace(s->pod_uid + "/" + s->container_id, s).second) << "duplicate";
    }
    return out;
  }
  SelfMetrics self;
  ErrorReporter errors;
  CgroupCollector collector;
  Snapshot snapshot;
};

// Readings of container 1 in every fixture: C(2, quota 50000, limit 512 MiB).
void expectContainer1(const CgroupSample& s, bool v2) {
  const std::uint64_t usage_ns = v2 ? 20123456000ULL : 20123456789ULL;
  EXPECT_EQ(s.get(F::kCpuUsageNs), usage_ns);
  EXPECT_EQ(s.get(F::kCpuUserNs), 14000000000ULL);
  EXPECT_EQ(s.get(F::kCpuSystemNs), 6000000000ULL);
  EXPECT_EQ(s.get(F::kCfsPeriods), 2000U);
  EXPECT_EQ(s.get(F::kCfsThrottledPeriods), 200U);
  EXPECT_EQ(s.get(F::kCfsThrottledNs), 10000000000ULL);
  EXPECT_EQ(s.get(F::kCpuQuotaUs), 50000U);
  EXPECT_EQ(s.get(F::kCpuPeriodUs), 100000U);
  EXPECT_EQ(s.get(F::kCpuShares), v2 ? 2597U : 1024U);
  EXPECT_EQ(s.get(F::kMemUsageBytes), 200U << 20);
  EXPECT_EQ(s.get(F::kMemWorkingSetBytes), 180U << 20);  // usage - inactive_file
  EXPECT_EQ(s.get(F::kMemRssBytes), 120U << 20);
  EXPECT_EQ(s.get(F::kMemCacheBytes), 80U << 20);
  EXPECT_EQ(s.get(F::kMemMappedFileBytes), 8U << 20);
  EXPECT_EQ(s.get(F::kMemLimitBytes), 512U << 20);
  EXPECT_EQ(s.get(F::kOomKills), 1U);
  EXPECT_EQ(s.get(F::kMemMaxUsageBytes), 300U << 20);
  ASSERT_TRUE(s.io_present);
  ASSERT_GE(s.io_devices, 1);
  EXPECT_EQ(s.io[0].major, 254U);
  EXPECT_EQ(s.io[0].read_bytes, 2U << 20);
  EXPECT_EQ(s.io[0].write_bytes, 4U << 20);
  EXPECT_EQ(s.io[0].reads, 200U);
  EXPECT_EQ(s.io[0].writes, 400U);
}

void expectPsi(const CgroupSample& s) {
  EXPECT_EQ(s.get(F::kPsiCpuSomeUs), 2000000U);
  EXPECT_EQ(s.get(F::kPsiCpuFullUs), 1000000U);
  EXPECT_EQ(s.get(F::kPsiMemSomeUs), 40000U);
  EXPECT_EQ(s.get(F::kPsiMemFullUs), 0U);
  EXPECT_EQ(s.get(F::kPsiIoSomeUs), 600000U);
  EXPECT_EQ(s.get(F::kPsiIoFullUs), 200000U);
}

void expectNames(const std::map<std::string, const CgroupSample*>& got) {
  const auto* c1 = got.at(kU1 + "/" + kId1);
  EXPECT_EQ(c1->namespace_name, "spark");
  EXPECT_EQ(c1->pod_name, "driver-0");
  EXPECT_EQ(c1->container_name, "spark-driver");
  EXPECT_EQ(c1->image, "");  // unknown until the metadata collector: never invented
  const auto* p1 = got.at(kU1 + "/");
  EXPECT_EQ(p1->pod_name, "driver-0");
  EXPECT_EQ(p1->container_name, "");
  EXPECT_EQ(got.at(kU2 + "/" + kId2)->container_name, "consumer");
  EXPECT_EQ(got.at(kU3 + "/" + kId3)->namespace_name, "airflow");
  EXPECT_EQ(got.at(kU1 + "/")->qos, QosClass::kBurstable);
  EXPECT_EQ(got.at(kU2 + "/")->qos, QosClass::kGuaranteed);
  EXPECT_EQ(got.at(kU3 + "/" + kId3)->qos, QosClass::kBestEffort);
}

TEST(CgroupCollector, V1CgroupfsContainerdWithControllersAtDifferentDepths) {
  Harness h(fixture("v1-cgroupfs-containerd"));
  auto got = h.collect();
  ASSERT_EQ(got.size(), 7U) << "3 pods, 3 containers, 1 sandbox";
  const auto* c1 = got.at(kU1 + "/" + kId1);
  expectContainer1(*c1, false);
  EXPECT_FALSE(c1->has(F::kPsiCpuSomeUs)) << "no v2 mount, so no PSI";
  EXPECT_EQ(c1->id, "/kubepods/burstable/pod" + kU1 + "/" + kId1);
  // memory's kubepods sits at machine.slice/node1/kubepods: matched by uid and id, not by path.
  EXPECT_TRUE(got.at(kU2 + "/" + kId2)->has(F::kMemWorkingSetBytes));
  EXPECT_FALSE(got.at(kU3 + "/" + kId3)->has(F::kCpuQuotaUs)) << "-1 is no quota";
  EXPECT_EQ(got.at(kU3 + "/" + kId3)->get(F::kMemLimitBytes), 0U) << "unlimited is 0";
  EXPECT_EQ(got.at(kU1 + "/" + kPause)->container_name, "") << "no log file names the sandbox";
  expectNames(got);
  const auto st = h.collector.stats();
  EXPECT_EQ(st.pods, 3U);
  EXPECT_EQ(st.containers, 4U);
  EXPECT_EQ(st.hierarchies, 4U);
  EXPECT_EQ(h.errors.count("cgroup", "parse_error"), 0.0);
  EXPECT_EQ(h.errors.count("cgroup", "missing_file"), 0.0);
}

TEST(CgroupCollector, HybridSystemdCrioReadsPsiFromUnified) {
  Harness h(fixture("hybrid-systemd-crio"));
  auto got = h.collect();
  ASSERT_EQ(got.size(), 6U) << "conmon scopes are not containers";
  const auto* c1 = got.at(kU1 + "/" + kId1);
  expectContainer1(*c1, false);
  expectPsi(*c1);
  EXPECT_EQ(c1->id, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                        std::string("11111111_2222_3333_4444_555555555551") + ".slice/crio-" +
                        kId1 + ".scope");
  expectNames(got);
  EXPECT_EQ(h.collector.stats().hierarchies, 4U) << "cpu and cpuacct are one mount";
  EXPECT_EQ(h.errors.count("cgroup", "parse_error"), 0.0);
}

TEST(CgroupCollector, PureV2SystemdNestedBelowAParent) {
  Harness h(fixture("v2-systemd-containerd"));
  auto got = h.collect();
  ASSERT_EQ(got.size(), 6U);
  const auto* c1 = got.at(kU1 + "/" + kId1);
  expectContainer1(*c1, true);
  expectPsi(*c1);
  EXPECT_EQ(c1->get(F::kMemSwapBytes), 4096U);
  EXPECT_EQ(c1->io_devices, 2);
  EXPECT_TRUE(c1->id.starts_with("/system.slice/kind-node.scope/kubepods.slice/"));
  EXPECT_FALSE(got.at(kU3 + "/" + kId3)->has(F::kCpuQuotaUs)) << "max is no quota";
  expectNames(got);
}

TEST(CgroupCollector, PureV2CgroupfsDocker) {
  Harness h(fixture("v2-cgroupfs-docker"));
  auto got = h.collect();
  ASSERT_EQ(got.size(), 6U);
  expectContainer1(*got.at(kU1 + "/" + kId1), true);
  expectNames(got);
}

TEST(CgroupCollector, GarbledFilesSkipTheirSeriesAndAreCounted) {
  TempTree t("v2-cgroupfs-docker");
  const fs::path c1 = t.root() / "sys/fs/cgroup/kubepods/burstable" / ("pod" + kU1) / kId1;
  Harness h(t.root());
  h.collect();
  writeFile(c1 / "cpu.stat", "usage_usec abc\nnr_periods 5\n");
  writeFile(c1 / "memory.current", "");
  writeFile(c1 / "cpu.pressure", "garbage\n");
  writeFile(c1 / "io.stat", "254:0 rbytes=x\n");
  writeFile(c1 / "memory.max", "12abc\n");
  writeFile(c1 / "memory.stat", "anon 1\nfile");  // truncated mid-line
  auto got = h.collect();
  const auto* s = got.at(kU1 + "/" + kId1);
  EXPECT_FALSE(s->has(F::kCpuUsageNs));
  EXPECT_EQ(s->get(F::kCfsPeriods), 5U) << "the good line of a garbled file is kept";
  EXPECT_FALSE(s->has(F::kMemUsageBytes));
  EXPECT_FALSE(s->has(F::kMemWorkingSetBytes)) << "derived from a missing reading";
  EXPECT_FALSE(s->has(F::kPsiCpuSomeUs));
  EXPECT_FALSE(s->io_present);
  EXPECT_FALSE(s->has(F::kMemLimitBytes));
  EXPECT_EQ(s->get(F::kMemRssBytes), 1U);
  EXPECT_TRUE(s->has(F::kPsiMemSomeUs)) << "other files of the same cgroup still read";
  EXPECT_GE(h.errors.count("cgroup", "parse_error"), 6.0);
}

TEST(CgroupCollector, ContainerThatDisappearsLeavesTheNextSnapshot) {
  TempTree t("v1-cgroupfs-containerd");
  Harness h(t.root());
  ASSERT_EQ(h.collect().size(), 7U);
  const fs::path cg = t.root() / "sys/fs/cgroup";
  for (const char* hier : {"cpu/kubepods", "cpuacct/kubepods",
                           "memory/machine.slice/node1/kubepods", "blkio/kubepods"}) {
    fs::remove_all(cg / hier / ("pod" + kU2));
  }
  auto got = h.collect();
  EXPECT_EQ(got.size(), 5U);
  EXPECT_EQ(got.count(kU2 + "/" + kId2), 0U);
  EXPECT_EQ(got.count(kU2 + "/"), 0U);
  EXPECT_EQ(h.collector.stats().pods, 2U);
}

TEST(CgroupCollector, NewContainerAppearsOnTheNextCycle) {
  TempTree t("v2-cgroupfs-docker");
  Harness h(t.root());
  ASSERT_EQ(h.collect().size(), 6U);
  const fs::path pod = t.root() / "sys/fs/cgroup/kubepods/besteffort" / ("pod" + kU3);
  const std::string id(64, 'e');
  fs::create_directory(pod / id);
  writeFile(pod / id / "cpu.stat", "usage_usec 5\n");
  auto got = h.collect();
  ASSERT_EQ(got.size(), 7U);
  EXPECT_EQ(got.at(kU3 + "/" + id)->get(F::kCpuUsageNs), 5000U);
  EXPECT_EQ(got.at(kU3 + "/" + id)->container_name, "") << "no log names it";
}

TEST(CgroupCollector, OneContainerRemovedFromALivePodLeaves) {
  TempTree t("v2-cgroupfs-docker");
  Harness h(t.root());
  ASSERT_EQ(h.collect().size(), 6U);
  fs::remove_all(t.root() / "sys/fs/cgroup/kubepods/burstable" / ("pod" + kU1) / kId1);
  auto got = h.collect();
  EXPECT_EQ(got.size(), 5U);
  EXPECT_EQ(got.count(kU1 + "/" + kId1), 0U);
  EXPECT_EQ(got.count(kU1 + "/"), 1U);
}

// Pods whose link count did not change are not listed again every cycle; a container replaced by
// another between two cycles (same count, and on tmpfs the old files still read) is still found
// by the periodic full listing.
TEST(CgroupCollector, ReplacedContainerIsFoundByThePeriodicListing) {
  TempTree t("v2-cgroupfs-docker");
  Harness h(t.root());
  ASSERT_EQ(h.collect().size(), 6U);
  const fs::path pod = t.root() / "sys/fs/cgroup/kubepods/besteffort" / ("pod" + kU3);
  fs::remove_all(pod / kId3);
  const std::string id(64, 'f');
  fs::create_directory(pod / id);
  writeFile(pod / id / "cpu.stat", "usage_usec 7\n");
  bool found = false;
  for (int i = 0; i < 31 && !found; ++i) found = h.collect().count(kU3 + "/" + id) == 1;
  EXPECT_TRUE(found);
  EXPECT_EQ(h.collect().count(kU3 + "/" + kId3), 0U);
}

TEST(CgroupCollector, OddEntriesAreIgnoredNotFatal) {
  TempTree t("v2-cgroupfs-docker");
  const fs::path kp = t.root() / "sys/fs/cgroup/kubepods";
  writeFile(kp / "burstable" / "pod99999999-2222-3333-4444-555555555559", "a file, not a dir");
  fs::create_directory(kp / "burstable" / "podnot-a-uid");
  fs::create_directory(kp / "burstable" / ("pod" + kU1) / "not-a-container");
  Harness h(t.root());
  EXPECT_EQ(h.collect().size(), 6U);
}

// Root reads everything, so the unreadable directory is met as an unprivileged user, in a child
// process (a death test) so the test binary keeps its root rights.
TEST(CgroupCollectorDeathTest, UnreadablePodDirIsCountedAndTheRestIsRead) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  TempTree t("v2-cgroupfs-docker");
  fs::permissions(t.root(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                fs::perms::others_read | fs::perms::others_exec);
  const fs::path pod = t.root() / "sys/fs/cgroup/kubepods/burstable" / ("pod" + kU1);
  fs::permissions(pod, fs::perms::none);
  EXPECT_EXIT(
      {
        if (::setegid(65534) != 0 || ::seteuid(65534) != 0) std::_Exit(3);
        Harness h(t.root());
        auto got = h.collect();
        const bool ok = got.count(kU1 + "/" + kId1) == 0 && got.count(kU2 + "/" + kId2) == 1 &&
                        got.at(kU2 + "/" + kId2)->has(F::kCpuUsageNs) &&
                        h.errors.count("cgroup", "unreadable_dir") >= 1.0;
        std::_Exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  fs::permissions(pod, fs::perms::owner_all);
}

// A metadata source that knows what the test tells it (the runtime-state source has its own tests;
// this checks what the collector does with the answers).
class KnownMetadata final : public ContainerMetadata {
 public:
  void refresh() override { ++refreshes; }
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override {
    auto it = containers.find(std::string(id));
    if (it == containers.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override {
    auto it = pods.find(std::string(uid));
    if (it == pods.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, ContainerIdentity> containers;
  std::map<std::string, PodIdentity> pods;
  int refreshes = 0;
};

TEST(CgroupCollector, RuntimeMetadataNamesContainersGivesImagesAndDropsSandboxes) {
  KnownMetadata meta;
  meta.containers[kId1] = {kU1, "spark", "driver-0", "spark-driver", "apache/spark:3.5.1", false};
  meta.containers[kPause] = {kU1, "spark", "driver-0", "", "registry.k8s.io/pause:3.9", true};
  meta.pods[kU1].namespace_name = "spark";
  meta.pods[kU1].pod_name = "driver-0";
  auto o = Harness::options(fixture("v1-cgroupfs-containerd"));
  o.log_root = "/nonexistent";  // names from the metadata alone
  o.metadata = &meta;
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollector c(o, errors);
  Snapshot snap;
  c.collect(snap);
  std::map<std::string, const CgroupSample*> got;
  for (const auto* s : snap.cgroups) got[s->pod_uid + "/" + s->container_id] = s;
  ASSERT_EQ(got.count(kU1 + "/" + kId1), 1U);
  EXPECT_EQ(got.at(kU1 + "/" + kId1)->container_name, "spark-driver");
  EXPECT_EQ(got.at(kU1 + "/" + kId1)->image, "apache/spark:3.5.1");
  EXPECT_EQ(got.at(kU1 + "/")->pod_name, "driver-0");
  EXPECT_EQ(got.count(kU1 + "/" + kPause), 0U) << "the sandbox's usage is in the pod's series";
  EXPECT_EQ(got.at(kU2 + "/" + kId2)->pod_name, "") << "unknown to every source: left empty";
}

// ---- names as the metadata sources learn them ----

// A source whose view the test changes; each change moves its generation, as the kubelet's list,
// the API server's watch and the runtime's state do.
class LearningMetadata final : public ContainerMetadata {
 public:
  void refresh() override {}
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override {
    ++lookups;
    auto it = containers.find(std::string(id));
    if (it == containers.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override {
    ++lookups;
    auto it = pods.find(std::string(uid));
    if (it == pods.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::uint64_t generation() const override { return generation_; }
  void requestRefresh() override { ++refresh_requests; }

  // The pod of the fixtures' uid u with its one container id (names as in their log directories).
  void learn(const std::string& uid, const std::string& id, const std::string& ns,
             const std::string& pod, const std::string& container) {
    containers[id] = {uid, ns, pod, container, "registry.example/" + container + ":1", false};
    pods[uid].namespace_name = ns;
    pods[uid].pod_name = pod;
    ++generation_;
  }
  void learnAllBut(const std::string& unknown_uid) {
    if (unknown_uid != kU1) learn(kU1, kId1, "spark", "driver-0", "spark-driver");
    if (unknown_uid != kU2) learn(kU2, kId2, "kafka", "consumer-7", "consumer");
    if (unknown_uid != kU3) learn(kU3, kId3, "airflow", "task-1", "base");
  }

  std::map<std::string, ContainerIdentity> containers;
  std::map<std::string, PodIdentity> pods;
  mutable int lookups = 0;
  int refresh_requests = 0;

 private:
  std::uint64_t generation_ = 0;
};

// The collector with a LearningMetadata, no log directories (names from the source alone) and a
// clock the test moves.
struct NamingHarness {
  explicit NamingHarness(std::chrono::milliseconds hold) : errors(self.registry()) {
    auto o = Harness::options(fixture("v2-cgroupfs-docker"));
    o.log_root = "/nonexistent";
    o.metadata = &meta;
    o.hold_unnamed = hold;
    o.now = [this] { return now; };
    collector = std::make_unique<CgroupCollector>(o, errors);
  }
  std::map<std::string, const CgroupSample*> collect() {
    snapshot.reset();
    collector->collect(snapshot);
    std::map<std::string, const CgroupSample*> out;
    for (const auto* s : snapshot.cgroups) out.emplace(s->pod_uid + "/" + s->container_id, s);
    return out;
  }
  // What /metrics would show of this cycle.
  std::string exposition() {
    std::string text;
    renderer.renderToString(snapshot, text);
    return text;
  }
  LearningMetadata meta;
  SelfMetrics self;
  ErrorReporter errors;
  std::unique_ptr<CgroupCollector> collector;
  Snapshot snapshot;
  TextRenderer renderer{"/proc"};
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::time_point{} + 1h;
};

// The cgroups were found before the source knew the pod (the agent's first cycles, or a pod that
// started after the kubelet's last listing): the first cycle after the source learns it names
// them, not a periodic scan 30 s later.
TEST(CgroupNames, NamedInTheFirstCycleAfterTheSourceLearnsThePod) {
  NamingHarness h(0ms);  // no hold: this is about when names arrive
  h.meta.learnAllBut(kU1);
  auto got = h.collect();
  ASSERT_EQ(got.count(kU1 + "/" + kId1), 1U);
  EXPECT_EQ(got.at(kU1 + "/" + kId1)->pod_name, "");
  EXPECT_EQ(got.at(kU2 + "/" + kId2)->pod_name, "consumer-7");
  h.now += 1s;
  got = h.collect();
  EXPECT_EQ(got.at(kU1 + "/" + kId1)->pod_name, "") << "nothing learnt yet";

  h.meta.learn(kU1, kId1, "spark", "driver-0", "spark-driver");
  h.now += 1s;
  got = h.collect();
  const auto* c1 = got.at(kU1 + "/" + kId1);
  EXPECT_EQ(c1->namespace_name, "spark");
  EXPECT_EQ(c1->pod_name, "driver-0");
  EXPECT_EQ(c1->container_name, "spark-driver");
  EXPECT_EQ(c1->image, "registry.example/spark-driver:1");
  EXPECT_EQ(got.at(kU1 + "/")->pod_name, "driver-0") << "the pod's own cgroup too";
}

// Asking costs nothing while no source moved: a steady cycle reads one number, even with a cgroup
// no source will ever name.
TEST(CgroupNames, NoLookupsWhileNoSourceMoved) {
  NamingHarness h(0ms);
  h.meta.learnAllBut(kU3);
  h.collect();
  const int after_first = h.meta.lookups;
  EXPECT_GT(after_first, 0);
  for (int i = 0; i < 5; ++i) {
    h.now += 1s;
    h.collect();
  }
  EXPECT_EQ(h.meta.lookups, after_first);
  h.meta.learn(kU3, kId3, "airflow", "task-1", "base");
  h.now += 1s;
  EXPECT_EQ(h.collect().at(kU3 + "/" + kId3)->pod_name, "task-1");
  // Only the unnamed ones were asked about again: kU3's pod and container (a pod and a container
  // lookup each at most), not the named pods of kU1 and kU2.
  EXPECT_LE(h.meta.lookups - after_first, 3);
}

// A pod no source knows yet is held out of the exposition, not exported anonymous and renamed;
// the detector and Job outcomes still get its readings; the sources are asked to look at once.
TEST(CgroupNames, AnUnknownPodIsHeldOutOfTheExpositionUntilNamed) {
  NamingHarness h(10s);
  h.meta.learnAllBut(kU1);
  auto got = h.collect();
  ASSERT_EQ(got.count(kU1 + "/" + kId1), 1U) << "still collected";
  const auto* c1 = got.at(kU1 + "/" + kId1);
  EXPECT_TRUE(c1->names_pending);
  EXPECT_TRUE(c1->has(F::kCpuUsageNs));
  EXPECT_TRUE(got.at(kU1 + "/")->names_pending);
  EXPECT_FALSE(got.at(kU2 + "/" + kId2)->names_pending);
  std::string text = h.exposition();
  EXPECT_EQ(text.find(kU1), std::string::npos) << "no series of the unnamed pod";
  EXPECT_NE(text.find(kU2), std::string::npos);
  EXPECT_EQ(h.collector->stats().unnamed_held, 2U);
  EXPECT_EQ(h.collector->stats().unnamed_exported, 0U);
  EXPECT_GE(h.meta.refresh_requests, 1) << "the sources are asked early";

  h.now += 2s;
  h.collect();
  EXPECT_EQ(h.exposition().find(kU1), std::string::npos);

  h.meta.learn(kU1, kId1, "spark", "driver-0", "spark-driver");
  h.now += 1s;
  got = h.collect();
  EXPECT_FALSE(got.at(kU1 + "/" + kId1)->names_pending);
  EXPECT_FALSE(got.at(kU1 + "/")->names_pending);
  text = h.exposition();
  EXPECT_NE(text.find("container_cpu_usage_seconds_total{container=\"spark-driver\",id=\"/kubepods/"
                      "burstable/pod" +
                      kU1 + "/" + kId1 +
                      "\",image=\"registry.example/spark-driver:1\",namespace=\"spark\",pod=\""
                      "driver-0\"}"),
            std::string::npos)
      << text;
  EXPECT_EQ(h.collector->stats().unnamed_held, 0U);
}

// Past the hold, a pod still unknown is exported with what is known (here nothing) rather than
// kept out for ever; it is named when a source learns it after all.
TEST(CgroupNames, AfterTheHoldAnUnknownPodIsExportedWithWhatIsKnown) {
  NamingHarness h(10s);
  h.meta.learnAllBut(kU1);
  h.collect();
  h.now += 9s;
  EXPECT_TRUE(h.collect().at(kU1 + "/" + kId1)->names_pending);
  h.now += 1s;
  auto got = h.collect();
  EXPECT_FALSE(got.at(kU1 + "/" + kId1)->names_pending);
  EXPECT_FALSE(got.at(kU1 + "/")->names_pending);
  const std::string text = h.exposition();
  EXPECT_NE(text.find("pod" + kU1 + "/" + kId1 + "\",image=\"\",namespace=\"\",pod=\"\"}"),
            std::string::npos)
      << text;
  EXPECT_EQ(h.collector->stats().unnamed_held, 0U);
  EXPECT_EQ(h.collector->stats().unnamed_exported, 2U);

  h.meta.learn(kU1, kId1, "spark", "driver-0", "spark-driver");
  h.now += 1s;
  EXPECT_EQ(h.collect().at(kU1 + "/" + kId1)->pod_name, "driver-0");
  EXPECT_EQ(h.collector->stats().unnamed_exported, 0U);
}

// A container that appears in a known pod before the source lists it (its id comes with the
// pod's next status) is held too; its pod's names are already on its sample.
TEST(CgroupNames, ANewContainerOfAKnownPodIsHeldUntilListed) {
  TempTree t("v2-cgroupfs-docker");
  NamingHarness h(10s);
  auto o = Harness::options(t.root());
  o.log_root = "/nonexistent";
  o.metadata = &h.meta;
  o.hold_unnamed = 10s;
  o.now = [&h] { return h.now; };
  h.collector = std::make_unique<CgroupCollector>(o, h.errors);
  h.meta.learnAllBut("");
  h.collect();
  const std::string id(64, 'e');
  const fs::path dir = t.root() / "sys/fs/cgroup/kubepods/besteffort" / ("pod" + kU3) / id;
  fs::create_directory(dir);
  writeFile(dir / "cpu.stat", "usage_usec 5\n");
  h.now += 1s;
  auto got = h.collect();
  ASSERT_EQ(got.count(kU3 + "/" + id), 1U);
  EXPECT_TRUE(got.at(kU3 + "/" + id)->names_pending);
  EXPECT_EQ(got.at(kU3 + "/" + id)->pod_name, "task-1");
  EXPECT_EQ(h.exposition().find(id), std::string::npos);
  h.meta.learn(kU3, id, "airflow", "task-1", "sidecar");
  h.now += 1s;
  got = h.collect();
  EXPECT_FALSE(got.at(kU3 + "/" + id)->names_pending);
  EXPECT_NE(h.exposition().find(id), std::string::npos);
}

// With a source that lists on a schedule, a cgroup still unknown is released once two listings
// asked for after it was found are in (the first cannot predate it, the second covers the
// kubelet's lag) and hold_at_least is over, well before the time bound; listings asked for
// earlier do not count.
TEST(CgroupNames, AnUnknownPodIsReleasedAfterTwoListingsMadeSinceItWasFound) {
  NamingHarness h(namingHold(60s, 10s));
  std::vector<std::chrono::steady_clock::time_point> listings{h.now - 1s};  // before: not counted
  auto o = Harness::options(fixture("v2-cgroupfs-docker"));
  o.log_root = "/nonexistent";
  o.metadata = &h.meta;
  o.hold_unnamed = namingHold(60s, 10s);
  o.now = [&h] { return h.now; };
  o.listings_since = [&listings](std::chrono::steady_clock::time_point t) {
    return static_cast<std::size_t>(
        std::ranges::count_if(listings, [t](auto l) { return l >= t; }));
  };
  o.hold_at_least = 5s;
  h.collector = std::make_unique<CgroupCollector>(o, h.errors);
  h.meta.learnAllBut(kU1);
  const auto found = h.now;
  EXPECT_TRUE(h.collect().at(kU1 + "/" + kId1)->names_pending);
  listings.push_back(found);  // the early fetch asked for in the cycle that found it
  h.now += 1s;
  EXPECT_TRUE(h.collect().at(kU1 + "/" + kId1)->names_pending) << "one listing: one more";
  listings.push_back(h.now);  // the next early fetch, a gap later
  h.now += 1s;
  EXPECT_TRUE(h.collect().at(kU1 + "/" + kId1)->names_pending) << "two, but within hold_at_least";
  h.now = found + 6s;
  const auto got = h.collect();
  EXPECT_FALSE(got.at(kU1 + "/" + kId1)->names_pending) << "two listings, 6 s of a 80 s bound";
  EXPECT_FALSE(got.at(kU1 + "/")->names_pending);
  EXPECT_EQ(h.collector->stats().unnamed_exported, 2U);
}

TEST(CgroupCollector, MissingRootIsCountedNotFatal) {
  Harness h(fs::path("/nonexistent/nodewarden"));
  EXPECT_TRUE(h.collect().empty());
  EXPECT_TRUE(h.collect().empty());
  EXPECT_GE(h.errors.count("cgroup", "no_hierarchy"), 1.0);
}

TEST(CgroupCollector, DescriptorBudgetFallsBackToReadingByPath) {
  auto o = Harness::options(fixture("v1-cgroupfs-containerd"));
  o.max_open_files = 20;  // fewer than the 7 cgroups' files: most slots become transient
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollector c(o, errors);
  Snapshot snap;
  c.collect(snap);
  ASSERT_EQ(snap.cgroups.size(), 7U);
  EXPECT_LE(c.stats().open_files, 20U);
  for (const auto* s : snap.cgroups) {
    if (s->pod_uid == kU1 && s->container_id == kId1) expectContainer1(*s, false);
  }
  EXPECT_EQ(errors.count("cgroup", "fd_budget_exhausted"), 1.0);
}

TEST(CgroupCollector, KubepodsBelowMaxDepthIsNotFound) {
  auto o = Harness::options(fixture("v2-systemd-containerd"));
  o.max_depth = 2;  // kubepods.slice sits at depth 3 (system.slice/kind-node.scope/...)
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollector c(o, errors);
  Snapshot snap;
  c.collect(snap);
  EXPECT_TRUE(snap.cgroups.empty());
}

// ---- the real kernel ----

// The memory cgroup this process lives in (tests create theirs below it, never elsewhere).
std::string ownCgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':');
    const auto b = line.find(':', a + 1);
    if (line.substr(a + 1, b - a - 1) == controller) return line.substr(b + 1);
  }
  return "/";
}

TEST(RealKernel, ReadOfARemovedCgroupFailsWithEnodev) {
  const fs::path cpu = "/sys/fs/cgroup/cpu";
  if (::geteuid() != 0 || !fs::exists(cpu / "cpu.shares")) GTEST_SKIP() << "needs root and v1 cpu";
  const fs::path dir =
      cpu / ownCgroup("cpu").substr(1) / ("nodewarden-unit-" + std::to_string(::getpid()));
  ASSERT_TRUE(fs::create_directory(dir));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  PreadFile f;
  ASSERT_TRUE(f.openAt(dfd, "cpu.shares"));
  ::close(dfd);
  std::array<char, 256> buf{};
  EXPECT_EQ(f.read(buf).value(), "1024\n");
  ASSERT_EQ(::rmdir(dir.c_str()), 0);
  auto r = f.read(buf);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ENODEV);
}

TEST(RealKernel, CollectorFollowsARealTreeAndDropsARemovedCgroup) {
  const fs::path cg = "/sys/fs/cgroup";
  if (::geteuid() != 0 || !fs::exists(cg / "cpu/cpu.shares") ||
      !fs::exists(cg / "cpuacct/cpuacct.usage") || !fs::exists(cg / "memory/memory.stat")) {
    GTEST_SKIP() << "needs root and v1 cpu, cpuacct and memory";
  }
  const std::string parent = "nodewarden-unit-" + std::to_string(::getpid());
  const std::string rel = "kubepods/burstable/pod" + kU1;
  std::vector<fs::path> made;
  for (const std::string hier : {"cpu", "cpuacct", "memory"}) {
    const fs::path base = cg / hier / ownCgroup(hier).substr(1) / parent;
    fs::create_directories(base / rel / kId1);
    made.push_back(base);
  }
  auto cleanup = [&] {
    for (const auto& base : made) {
      for (const auto& p :
           {base / rel / kId1, base / rel, base / "kubepods/burstable", base / "kubepods", base}) {
        ::rmdir(p.c_str());
      }
    }
  };
  CgroupCollectorOptions o;
  o.cgroup_root = cg;
  o.log_root = "/nonexistent";
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollector c(o, errors);
  Snapshot snap;
  c.collect(snap);
  const CgroupSample* mine = nullptr;
  for (const auto* s : snap.cgroups) {
    if (s->pod_uid == kU1 && s->container_id == kId1 && s->id.find(parent) != std::string::npos) {
      mine = s;
    }
  }
  ASSERT_NE(mine, nullptr);
  EXPECT_TRUE(mine->has(F::kCpuUsageNs));
  EXPECT_TRUE(mine->has(F::kMemUsageBytes));
  EXPECT_TRUE(mine->has(F::kCpuShares));
  // Remove the container's cgroup in one hierarchy only, between listing and reading: the read
  // fails with ENODEV and the container leaves this snapshot instead of reporting half a sample.
  ASSERT_EQ(::rmdir((made[2] / rel / kId1).c_str()), 0);
  snap.reset();
  c.collect(snap);
  bool found = false;
  for (const auto* s : snap.cgroups) {
    if (s->container_id == kId1 && s->id.find(parent) != std::string::npos) found = true;
  }
  EXPECT_FALSE(found);
  EXPECT_GE(errors.count("cgroup", "vanished_mid_read"), 1.0);

  // Replace the container with another one in every hierarchy: the link count of the pod stays
  // the same, but the old container's reads fail with ENODEV, so the pod is listed again.
  const std::string id2 = std::string(63, 'e') + "2";
  for (std::size_t i = 0; i < made.size(); ++i) {
    if (i != 2) {
      ASSERT_EQ(::rmdir((made[i] / rel / kId1).c_str()), 0);
    }
    fs::create_directory(made[i] / rel / id2);
  }
  snap.reset();
  c.collect(snap);
  snap.reset();
  c.collect(snap);
  found = false;
  for (const auto* s : snap.cgroups) {
    if (s->container_id == id2 && s->id.find(parent) != std::string::npos) found = true;
    EXPECT_FALSE(s->container_id == kId1 && s->id.find(parent) != std::string::npos);
  }
  EXPECT_TRUE(found) << "the replacement container within two cycles";
  for (const auto& base : made) ::rmdir((base / rel / id2).c_str());
  cleanup();
  EXPECT_FALSE(fs::exists(made[0]));
}

// ---- the real kernel, cgroup v2 ----
// The same two checks on the v2 hierarchy wherever one is mounted: /sys/fs/cgroup on a pure v2
// host, /sys/fs/cgroup/unified on a hybrid one (where the v1 tests above run too). The collector
// is pointed at the v2 mount, so it reads it as a pure v2 host. Which controllers a cgroup has
// depends on the host: on a hybrid host the v2 tree usually has none of cpu, memory or io (they
// are bound to v1), and then only what every v2 cgroup has is there to read: cpu.stat's usage and
// the *.pressure files (with PSI).

// The mount point of the cgroup2 file system, if any.
std::optional<fs::path> cgroupV2Mount() {
  std::ifstream in("/proc/self/mounts");
  std::string device;
  std::string dir;
  std::string type;
  std::string rest;
  while (in >> device >> dir >> type && std::getline(in, rest)) {
    if (type == "cgroup2") return fs::path(dir);
  }
  return std::nullopt;
}

// The controllers a v2 cgroup has (its cgroup.controllers).
std::string v2Controllers(const fs::path& dir) {
  std::ifstream in(dir / "cgroup.controllers");
  std::string line;
  std::getline(in, line);
  return " " + line + " ";
}

// A directory for the test below this process's own v2 cgroup; the test removes it.
std::optional<fs::path> v2TestParent(const std::string& suffix) {
  const auto mount = cgroupV2Mount();
  if (!mount) return std::nullopt;
  return *mount / ownCgroup("").substr(1) /
         ("nodewarden-unit-v2" + suffix + "-" + std::to_string(::getpid()));
}

TEST(RealKernelV2, ReadOfARemovedCgroupFailsWithEnodev) {
  const auto dir = v2TestParent("");
  if (::geteuid() != 0 || !dir) GTEST_SKIP() << "needs root and cgroup v2 mounted";
  ASSERT_TRUE(fs::create_directory(*dir)) << *dir;
  const int dfd = ::open(dir->c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  PreadFile f;
  ASSERT_TRUE(f.openAt(dfd, "cpu.stat"));  // every v2 cgroup has it, whatever its controllers
  ::close(dfd);
  std::array<char, 512> buf{};
  auto before = f.read(buf);
  ASSERT_TRUE(before.has_value());
  EXPECT_TRUE(before->starts_with("usage_usec 0\n")) << *before;  // nothing ever ran in it
  ASSERT_EQ(::rmdir(dir->c_str()), 0);
  auto r = f.read(buf);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ENODEV);
}

TEST(RealKernelV2, CollectorFollowsARealTreeAndDropsARemovedCgroup) {
  const auto base = v2TestParent("-tree");
  if (::geteuid() != 0 || !base) GTEST_SKIP() << "needs root and cgroup v2 mounted";
  const std::string parent = base->filename();
  const std::string rel = "kubepods/burstable/pod" + kU1;
  const std::string id2 = std::string(63, 'e') + "2";
  ASSERT_TRUE(fs::create_directories(*base / rel / kId1)) << *base;
  // Removes what the test made, deepest first, however the test ends.
  struct Cleanup {
    std::vector<fs::path> dirs;
    ~Cleanup() {
      for (const auto& d : dirs) ::rmdir(d.c_str());
    }
  } cleanup{{*base / rel / kId1, *base / rel / id2, *base / rel, *base / "kubepods/burstable",
             *base / "kubepods", *base}};

  CgroupCollectorOptions o;
  o.cgroup_root = *cgroupV2Mount();
  o.log_root = "/nonexistent";
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollector c(o, errors);
  Snapshot snap;
  const auto mine = [&](const std::string& id) -> const CgroupSample* {
    for (const auto* s : snap.cgroups) {
      if (s->pod_uid == kU1 && s->container_id == id && s->id.find(parent) != std::string::npos)
        return s;
    }
    return nullptr;
  };
  c.collect(snap);
  const CgroupSample* first = mine(kId1);
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(first->has(F::kCpuUsageNs));
  const std::string controllers = v2Controllers(*base / rel / kId1);
  std::cout << "v2 controllers of the test cgroup:" << controllers << "\n";
  EXPECT_EQ(first->has(F::kMemUsageBytes), controllers.find(" memory ") != std::string::npos);
  EXPECT_EQ(first->has(F::kCpuShares), controllers.find(" cpu ") != std::string::npos);
  EXPECT_EQ(first->has(F::kPsiCpuSomeUs), fs::exists(*base / rel / kId1 / "cpu.pressure"));

  // Replace the container with another one: the pod's link count stays the same, so its listing
  // is kept, and the old container's open files fail with ENODEV: it leaves this snapshot (not
  // half a sample) and the pod is listed again.
  ASSERT_EQ(::rmdir((*base / rel / kId1).c_str()), 0);
  ASSERT_TRUE(fs::create_directory(*base / rel / id2));
  snap.reset();
  c.collect(snap);
  EXPECT_EQ(mine(kId1), nullptr);
  EXPECT_GE(errors.count("cgroup", "vanished_mid_read"), 1.0);
  snap.reset();
  c.collect(snap);
  EXPECT_EQ(mine(kId1), nullptr);
  EXPECT_NE(mine(id2), nullptr) << "the replacement container within two cycles";

  // A container removed outright leaves at the next cycle.
  ASSERT_EQ(::rmdir((*base / rel / id2).c_str()), 0);
  snap.reset();
  c.collect(snap);
  EXPECT_EQ(mine(id2), nullptr);
}

// The kernel lists the pids of cgroup.procs in the reader's PID namespace: an agent in a pod of
// its own PID namespace beside the host's /proc reads only 0s, which it must say once at start.
int pidNamespaceErrors(const fs::path& proc_root) {
  auto o = Harness::options(fixture("v2-systemd-containerd"));
  o.proc_root = proc_root;
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollector c(o, errors);
  return static_cast<int>(errors.count("cgroup", "pid_namespace_not_host"));
}

TEST(CgroupCollectorPidNamespace, TheHostsOwnProcIsQuiet) {
  EXPECT_EQ(pidNamespaceErrors("/proc"), 0);
}

TEST(CgroupCollectorPidNamespace, AProcRootWhoseSelfIsAnotherPidIsReported) {
  const fs::path dir = fs::temp_directory_path() / ("nw-pidns-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(std::to_string(::getpid() + 100000), dir / "self");
  EXPECT_EQ(pidNamespaceErrors(dir), 1);
  fs::remove(dir / "self");
  fs::create_symlink(std::to_string(::getpid()), dir / "self");
  EXPECT_EQ(pidNamespaceErrors(dir), 0);
  fs::remove_all(dir);
}

// On the real kernel: a child in a new PID namespace (as a pod without hostPID) with the host's
// /proc.
TEST(CgroupCollectorPidNamespace, AChildPidNamespaceWithTheHostsProcIsReported) {
  const pid_t outer = ::fork();
  ASSERT_GE(outer, 0);
  if (outer == 0) {
    if (::unshare(CLONE_NEWPID) != 0) ::_exit(90);
    const pid_t inner = ::fork();
    if (inner < 0) ::_exit(91);
    if (inner == 0) ::_exit(pidNamespaceErrors("/proc") == 1 ? 0 : 92);
    int st = 0;
    if (::waitpid(inner, &st, 0) != inner || !WIFEXITED(st)) ::_exit(93);
    ::_exit(WEXITSTATUS(st));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(outer, &status, 0), outer);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "90: unshare failed, 92: not reported";
}

}  // namespace
}  // namespace nodewarden
