// The root, kubepods and QoS cgroups (collectors.cgroup.aggregates) on fixture trees of the three
// layouts, with the files written at the levels the fixtures leave empty (as the kernel has them
// there, and without those it has not), their exposition, the switch off, and the real kernel.
#include "collectors/cgroup/aggregate_cgroups.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "agent/config.h"
#include "collectors/cgroup/cgroup_collector.h"
#include "exporters/prometheus/text_renderer.h"
#include "pipeline/detector/detector.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;

constexpr std::uint64_t kMemTotalKiB = 24683656;
constexpr std::uint64_t kMemFreeKiB = 20000000;
constexpr std::uint64_t kV1Unlimited = 9223372036854771712ULL;

class TempTree {
 public:
  explicit TempTree(const std::string& fixture) {
    static std::mt19937_64 rng{std::random_device{}()};
    root_ = fs::temp_directory_path() / ("nodewarden-agg-test-" + std::to_string(rng()));
    fs::copy(fs::path(NODEWARDEN_FIXTURES) / "cgroup" / fixture, root_,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::create_directories(root_ / "proc");
    write("proc/meminfo", "MemTotal:       " + std::to_string(kMemTotalKiB) +
                              " kB\nMemFree:        " + std::to_string(kMemFreeKiB) +
                              " kB\nMemAvailable:   22000000 kB\n");
    write("proc/1/net/dev",
          "Inter-|   Receive                                                |  Transmit\n"
          " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
          "errs drop fifo colls carrier compressed\n"
          "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
          "  eth0: 5000 40 1 2 0 0 0 0 7000 50 3 4 0 0 0 0\n");
  }
  ~TempTree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  void write(const std::string& rel, const std::string& content) const {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel, std::ios::trunc) << content;
  }
  [[nodiscard]] const fs::path& root() const { return root_; }

 private:
  fs::path root_;
};

struct Harness {
  Harness(const fs::path& base, bool aggregates)
      : errors(self.registry()), collector(options(base, aggregates), errors) {}
  static CgroupCollectorOptions options(const fs::path& base, bool aggregates) {
    CgroupCollectorOptions o;
    o.cgroup_root = base / "sys/fs/cgroup";
    o.log_root = base / "var/log/pods";
    o.proc_root = base / "proc";
    o.aggregates = aggregates;
    return o;
  }
  // One cycle; aggregate samples by id.
  std::map<std::string, const CgroupSample*> collect() {
    snap.reset();
    collector.collect(snap);
    std::map<std::string, const CgroupSample*> out;
    for (const CgroupSample* s : snap.aggregates) out[s->id] = s;
    return out;
  }
  std::string render() {
    TextRenderer r(fs::path(NODEWARDEN_FIXTURES) / "proc");
    std::string out;
    r.renderToString(snap, out);
    return out;
  }
  SelfMetrics self;
  ErrorReporter errors;
  CgroupCollector collector;
  Snapshot snap;
};

std::vector<std::string> keys(const std::map<std::string, const CgroupSample*>& m) {
  std::vector<std::string> k;
  for (const auto& [id, s] : m) k.push_back(id);
  return k;
}

// v1 cgroupfs driver on a hybrid host: the v1 fixture (memory nests kubepods under
// machine.slice/node1, the others have it at the top) plus a unified mount for PSI.
void writeV1Hybrid(const TempTree& t) {
  const std::string c = "sys/fs/cgroup/";
  t.write(c + "unified/cgroup.controllers", "");
  t.write(c + "unified/cpu.pressure",
          "some avg10=0.00 avg60=0.00 avg300=0.00 total=777\n"
          "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  t.write(c + "cpu/cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n");
  t.write(c + "cpu/cpu.shares", "1024\n");
  t.write(c + "cpu/cpu.cfs_quota_us", "-1\n");
  t.write(c + "cpu/cpu.cfs_period_us", "100000\n");
  t.write(c + "cpuacct/cpuacct.usage", "900000000000\n");
  t.write(c + "cpuacct/cpuacct.usage_user", "600000000000\n");
  t.write(c + "cpuacct/cpuacct.usage_sys", "300000000000\n");
  t.write(c + "memory/memory.usage_in_bytes", "8000000000\n");
  t.write(c + "memory/memory.limit_in_bytes", std::to_string(kV1Unlimited) + "\n");
  t.write(c + "memory/memory.stat",
          "cache 1\nrss 1\ntotal_cache 3000000000\ntotal_rss 4000000000\n"
          "total_mapped_file 100000000\ntotal_inactive_file 1000000000\n");
  t.write(c + "cpuacct/kubepods/burstable/cpuacct.usage", "5000\n");
  t.write(c + "memory/machine.slice/node1/kubepods/burstable/memory.usage_in_bytes", "600000\n");
  t.write(c + "memory/machine.slice/node1/kubepods/burstable/memory.limit_in_bytes",
          std::to_string(kV1Unlimited) + "\n");
  t.write(c + "memory/machine.slice/node1/kubepods/burstable/memory.stat",
          "total_rss 400000\ntotal_cache 200000\ntotal_inactive_file 100000\n");
  t.write(c + "memory/machine.slice/node1/kubepods/memory.usage_in_bytes", "900000\n");
  t.write(c + "memory/machine.slice/node1/kubepods/memory.limit_in_bytes", "16000000000\n");
}

TEST(AggregateCgroups, V1HybridCgroupfsRootKubepodsAndQos) {
  TempTree t("v1-cgroupfs-containerd");
  writeV1Hybrid(t);
  Harness h(t.root(), true);
  auto a = h.collect();
  ASSERT_EQ(keys(a), (std::vector<std::string>{"/", "/kubepods", "/kubepods/besteffort",
                                               "/kubepods/burstable"}));
  const CgroupSample& root = *a["/"];
  EXPECT_EQ(root.get(F::kCpuUsageNs), 900000000000ULL);
  EXPECT_EQ(root.get(F::kCpuUserNs), 600000000000ULL);
  EXPECT_EQ(root.get(F::kCpuShares), 1024U);
  EXPECT_EQ(root.get(F::kMemUsageBytes), 8000000000ULL);  // v1: the root's own file
  EXPECT_EQ(root.get(F::kMemWorkingSetBytes), 7000000000ULL);
  EXPECT_EQ(root.get(F::kMemRssBytes), 4000000000ULL);
  // cAdvisor's limit for "/" is the machine's memory, not v1's "unlimited".
  EXPECT_EQ(root.get(F::kMemLimitBytes), kMemTotalKiB * 1024);
  EXPECT_EQ(root.get(F::kPsiCpuSomeUs), 777U);
  EXPECT_FALSE(root.has(F::kCpuQuotaUs));
  EXPECT_TRUE(root.pod_uid.empty() && root.container_name.empty() && root.pod_name.empty());

  const CgroupSample& burstable = *a["/kubepods/burstable"];
  EXPECT_EQ(burstable.qos, QosClass::kBurstable);
  EXPECT_EQ(burstable.get(F::kCpuUsageNs), 5000U);
  EXPECT_EQ(burstable.get(F::kMemUsageBytes), 600000U);  // found below machine.slice/node1
  EXPECT_EQ(burstable.get(F::kMemWorkingSetBytes), 500000U);
  EXPECT_EQ(burstable.get(F::kMemLimitBytes), 0U);  // unlimited, as for pods
  EXPECT_EQ(a["/kubepods"]->get(F::kMemLimitBytes), 16000000000ULL);
  EXPECT_EQ(a["/kubepods/besteffort"]->qos, QosClass::kBestEffort);
  // None of them in the list the consumers keyed by pod uid read.
  for (const CgroupSample* s : h.snap.cgroups) EXPECT_FALSE(s->pod_uid.empty()) << s->id;
}

// Pure v2, systemd driver, kubepods.slice nested below system.slice/kind-node.scope. The root has
// no memory.current, memory.max, cpu.max, cpu.weight, memory.events, memory.peak or
// memory.swap.current: those fields stay absent, except usage (from /proc/meminfo, as runc does).
TEST(AggregateCgroups, V2SystemdSliceNamesAndTheRootWithoutMemoryCurrent) {
  TempTree t("v2-systemd-containerd");
  const std::string c = "sys/fs/cgroup/";
  t.write(c + "cpu.stat", "usage_usec 5000000\nuser_usec 3000000\nsystem_usec 2000000\n");
  t.write(c + "memory.stat", "anon 700000000\nfile 300000000\ninactive_file 1000000\n");
  t.write(c + "io.stat", "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n");
  const std::string k = c + "system.slice/kind-node.scope/kubepods.slice/";
  t.write(k + "kubepods-burstable.slice/memory.current", "123456\n");
  t.write(k + "kubepods-burstable.slice/memory.max", "max\n");
  t.write(k + "kubepods-burstable.slice/cpu.weight", "39\n");
  Harness h(t.root(), true);
  auto a = h.collect();
  const std::string kp = "/system.slice/kind-node.scope/kubepods.slice";
  ASSERT_EQ(keys(a), (std::vector<std::string>{"/", kp, kp + "/kubepods-besteffort.slice",
                                               kp + "/kubepods-burstable.slice"}));
  const CgroupSample& root = *a["/"];
  EXPECT_EQ(root.get(F::kCpuUsageNs), 5000000000ULL);
  const std::uint64_t used = (kMemTotalKiB - kMemFreeKiB) * 1024;
  EXPECT_EQ(root.get(F::kMemUsageBytes), used);
  EXPECT_EQ(root.get(F::kMemWorkingSetBytes), used - 1000000);
  EXPECT_EQ(root.get(F::kMemLimitBytes), kMemTotalKiB * 1024);
  EXPECT_EQ(root.get(F::kMemRssBytes), 700000000U);
  for (F absent : {F::kCpuQuotaUs, F::kCpuPeriodUs, F::kCpuShares, F::kMemSwapBytes,
                   F::kMemMaxUsageBytes, F::kOomKills, F::kCfsPeriods}) {
    EXPECT_FALSE(root.has(absent)) << static_cast<int>(absent);
  }
  ASSERT_TRUE(root.io_present);
  EXPECT_EQ(root.io[0].write_bytes, 8192U);
  const CgroupSample& b = *a[kp + "/kubepods-burstable.slice"];
  EXPECT_EQ(b.get(F::kMemUsageBytes), 123456U);
  EXPECT_EQ(b.get(F::kMemLimitBytes), 0U);
  EXPECT_TRUE(b.has(F::kCpuShares));
}

TEST(AggregateCgroups, V2CgroupfsKubepodsAtTheTop) {
  TempTree t("v2-cgroupfs-docker");
  t.write("sys/fs/cgroup/cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n");
  t.write("sys/fs/cgroup/kubepods/besteffort/cpu.stat", "usage_usec 3\nuser_usec 2\n");
  Harness h(t.root(), true);
  auto a = h.collect();
  ASSERT_EQ(keys(a), (std::vector<std::string>{"/", "/kubepods", "/kubepods/besteffort",
                                               "/kubepods/burstable"}));
  EXPECT_EQ(a["/"]->get(F::kCpuUsageNs), 10000U);
  EXPECT_EQ(a["/kubepods/besteffort"]->get(F::kCpuUsageNs), 3000U);
  // Without a memory.stat the root has no working set, whatever the usage.
  EXPECT_TRUE(a["/"]->has(F::kMemUsageBytes));
  EXPECT_FALSE(a["/"]->has(F::kMemWorkingSetBytes));
}

TEST(AggregateCgroups, ExpositionLabelsAndOneBlockPerFamily) {
  TempTree t("v1-cgroupfs-containerd");
  writeV1Hybrid(t);
  Harness h(t.root(), true);
  h.collect();
  const std::string text = h.render();
  EXPECT_NE(text.find("container_cpu_usage_seconds_total{container=\"\",id=\"/\",image=\"\","
                      "namespace=\"\",pod=\"\"} 900\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("container_memory_working_set_bytes{container=\"\",id=\"/kubepods/"
                      "burstable\",image=\"\",namespace=\"\",pod=\"\"} 500000\n"),
            std::string::npos);
  EXPECT_NE(text.find("container_spec_memory_limit_bytes{container=\"\",id=\"/\",image=\"\","
                      "namespace=\"\",pod=\"\"} " +
                      std::to_string(kMemTotalKiB * 1024) + "\n"),
            std::string::npos);
  // The node's own interfaces on the root, as cAdvisor's root reports them (lo left out).
  EXPECT_NE(text.find("container_network_receive_bytes_total{container=\"\",id=\"/\",image=\"\","
                      "interface=\"eth0\",namespace=\"\",pod=\"\"} 5000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("container_network_transmit_errors_total{container=\"\",id=\"/\",image=\"\","
                      "interface=\"eth0\",namespace=\"\",pod=\"\"} 3\n"),
            std::string::npos);
  EXPECT_EQ(text.find("interface=\"lo\""), std::string::npos);
  EXPECT_EQ(text.find("container_network_receive_bytes_total{container=\"\",id=\"/kubepods"),
            std::string::npos)
      << "the node's interfaces on the root alone";
  // The aggregates' series are in their family's block: one HELP per family.
  std::istringstream lines(text);
  std::map<std::string, int> helps;
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ")) ++helps[line.substr(7, line.find(' ', 7) - 7)];
  }
  for (const auto& [name, n] : helps) EXPECT_EQ(n, 1) << name;
}

// Switched off, the exposition is what it was: the switched-on one less exactly the aggregates'
// lines, and the consumers' list is the same either way.
TEST(AggregateCgroups, SwitchOffGivesTheExpositionWithoutThem) {
  TempTree t("v1-cgroupfs-containerd");
  writeV1Hybrid(t);
  Harness off(t.root(), false);
  Harness on(t.root(), true);
  off.collect();
  on.collect();
  EXPECT_TRUE(off.snap.aggregates.empty());
  ASSERT_EQ(on.snap.cgroups.size(), off.snap.cgroups.size());
  for (std::size_t i = 0; i < on.snap.cgroups.size(); ++i) {
    EXPECT_EQ(on.snap.cgroups[i]->id, off.snap.cgroups[i]->id);
  }
  const std::string text_off = off.render();
  std::istringstream lines(on.render());
  std::string line, filtered;
  std::size_t dropped = 0;
  for (const char* id : {"id=\"/\"", "id=\"/kubepods\"", "id=\"/kubepods/burstable\"",
                         "id=\"/kubepods/besteffort\""}) {
    EXPECT_EQ(text_off.find(id), std::string::npos) << id;
  }
  // A family whose only series were the aggregates' loses its HELP and TYPE too.
  std::string pending;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ")) pending.clear();
    if (line.starts_with("#")) {
      pending += line + "\n";
      continue;
    }
    const bool aggregate = line.find("id=\"/\"") != std::string::npos ||
                           line.find("id=\"/kubepods\"") != std::string::npos ||
                           line.find("id=\"/kubepods/burstable\"") != std::string::npos ||
                           line.find("id=\"/kubepods/besteffort\"") != std::string::npos;
    if (aggregate) {
      ++dropped;
      continue;
    }
    filtered += pending + line + "\n";
    pending.clear();
  }
  EXPECT_GT(dropped, 10U);
  EXPECT_EQ(filtered, text_off);
}

// The detector counts every sample without a container id as a pod: had the aggregates gone into
// Snapshot::cgroups, its pod table would grow by four with the switch on.
TEST(AggregateCgroups, TheDetectorsPodTableIsTheSameWithTheSwitchOn) {
  TempTree t("v1-cgroupfs-containerd");
  writeV1Hybrid(t);
  Harness off(t.root(), false);
  Harness on(t.root(), true);
  off.collect();
  on.collect();
  EXPECT_EQ(on.snap.aggregates.size(), 4U);
  detector::Detector d_off{detector::DetectorOptions{}};
  detector::Detector d_on{detector::DetectorOptions{}};
  d_off.update(off.snap, 100);
  d_on.update(on.snap, 100);
  EXPECT_EQ(d_off.stats().pods, 3U);
  EXPECT_EQ(d_on.stats().pods, d_off.stats().pods);
  EXPECT_EQ(d_on.stats().containers, d_off.stats().containers);
}

TEST(AggregateCgroups, OwnedSnapshotCopiesThem) {
  TempTree t("v2-cgroupfs-docker");
  Harness h(t.root(), true);
  h.collect();
  OwnedSnapshot owned;
  owned.copyFrom(h.snap);
  ASSERT_EQ(owned.view().aggregates.size(), h.snap.aggregates.size());
  EXPECT_EQ(owned.view().aggregates[0]->id, "/");
  EXPECT_NE(owned.view().aggregates[0], h.snap.aggregates[0]);
  EXPECT_EQ(owned.view().cgroups.size(), h.snap.cgroups.size());
}

TEST(AggregateCgroups, GarbledMeminfoIsCountedAndLeavesTheRootsMemoryAsTheFilesSay) {
  TempTree t("v2-cgroupfs-docker");
  t.write("proc/meminfo", "MemTotal: lots\n");
  Harness h(t.root(), true);
  auto a = h.collect();
  EXPECT_FALSE(a["/"]->has(F::kMemUsageBytes));
  EXPECT_FALSE(a["/"]->has(F::kMemLimitBytes));
  EXPECT_EQ(h.errors.count("cgroup", "parse_error"), 1U);
}

// The agent's default (the benchmark kept the collector inside its budget with them) and the
// key that turns them off.
TEST(AggregatesConfig, OnInTheAgentAndSwitchable) {
  EXPECT_TRUE(Config{}.cgroup.aggregates);
  EXPECT_FALSE(CgroupCollectorOptions{}.aggregates);
  auto off = parseConfig("collectors:\n  cgroup:\n    aggregates: false\n", "test.yaml");
  ASSERT_TRUE(off) << off.error().message();
  EXPECT_FALSE(off->cgroup.aggregates);
  EXPECT_FALSE(parseConfig("collectors:\n  cgroup:\n    aggregates: maybe\n", "test.yaml"));
}

TEST(MeminfoTotals, Parses) {
  auto r = cgroup::parseMeminfoTotals("MemTotal:  100 kB\nMemFree:    40 kB\nBuffers: 1 kB\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->total_bytes, 102400U);
  EXPECT_EQ(r->free_bytes, 40960U);
  EXPECT_FALSE(cgroup::parseMeminfoTotals("MemTotal: 100 kB\n"));
  EXPECT_FALSE(cgroup::parseMeminfoTotals("MemTotal: 100\nMemFree: 1\n"));
  EXPECT_FALSE(cgroup::parseMeminfoTotals("MemTotal: 10 kB\nMemFree: 11 kB\n"));
  EXPECT_FALSE(cgroup::parseMeminfoTotals("MemTotal: 99999999999999999999 kB\nMemFree: 1 kB\n"));
  EXPECT_FALSE(cgroup::parseMeminfoTotals(""));
}

// ---- The real kernel ----

std::optional<std::uint64_t> readU64(const fs::path& p) {
  std::ifstream in(p);
  std::uint64_t v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

std::string ownMemoryCgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (line.substr(a + 1, b - a - 1) == "memory") return line.substr(b + 1);
  }
  return {};
}

// The real hierarchy root's counters against its files, and a kubepods tree made below this
// process's own memory cgroup with a process in a burstable pod.
TEST(AggregateCgroupsRealKernel, RootAndABuiltKubepodsTreeMatchTheirFiles) {
  const fs::path cg = "/sys/fs/cgroup";
  if (!fs::exists(cg / "memory/memory.usage_in_bytes") || !fs::exists(cg / "cpuacct")) {
    GTEST_SKIP() << "needs a v1 memory and cpuacct hierarchy (hybrid host)";
  }
  const std::string own = ownMemoryCgroup();
  if (own.empty()) GTEST_SKIP() << "no memory line in /proc/self/cgroup";
  // In memory below our own cgroup, in cpuacct (where we are at the root) below a parent of
  // ours: the collector lists pods in cpuacct and finds the same tree in memory by its path.
  const std::string parent = "nodewarden-agg-" + std::to_string(getpid());
  const fs::path base = cg / "memory" / own.substr(1) / parent;
  const fs::path cpu_base = cg / "cpuacct" / parent;
  const std::string pod_rel = "kubepods/burstable/pod11111111-2222-3333-4444-555555555551";
  const fs::path burstable = base / "kubepods/burstable";
  const fs::path pod = base / pod_rel;
  int child = -1;
  struct Cleanup {
    std::vector<fs::path> bases;
    int& child;
    ~Cleanup() {
      if (child > 0) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
      }
      for (const auto& b : bases) {
        for (const char* d : {"kubepods/burstable/pod11111111-2222-3333-4444-555555555551",
                              "kubepods/burstable", "kubepods", ""}) {
          ::rmdir((b / d).c_str());
        }
      }
    }
  } cleanup{{base, cpu_base}, child};
  std::error_code ec;
  if (!fs::create_directories(pod, ec) || !fs::create_directories(cpu_base / pod_rel, ec)) {
    GTEST_SKIP() << "cannot create cgroups: " << ec.message();
  }
  std::ofstream(burstable / "memory.limit_in_bytes") << 256 * 1024 * 1024;
  // A child that touches 8 MiB and waits, moved into the pod (below our own cgroup).
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[1]);
    char go = 0;
    if (::read(ready[0], &go, 1) != 1) _exit(1);
    std::vector<char> mem(8 << 20, 1);
    const int fd = ::open("/dev/null", O_WRONLY);
    (void)::write(fd, mem.data(), 1);
    for (;;) ::pause();
  }
  ::close(ready[0]);
  std::ofstream(pod / "cgroup.procs") << child;
  std::ofstream(cpu_base / pod_rel / "cgroup.procs") << child;
  ASSERT_EQ(::write(ready[1], "g", 1), 1);
  ::close(ready[1]);
  // Wait (bounded) for the child's pages to be charged.
  for (int i = 0; i < 500 && readU64(burstable / "memory.usage_in_bytes").value_or(0) < (8U << 20);
       ++i) {
    ::usleep(10000);
  }
  ASSERT_GE(readU64(burstable / "memory.usage_in_bytes").value_or(0), 8U << 20);

  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollectorOptions o;
  o.aggregates = true;
  CgroupCollector collector(o, errors);
  Snapshot snap;
  const auto cpu_before = readU64(cg / "cpuacct/cpuacct.usage");
  collector.collect(snap);
  const auto cpu_after = readU64(cg / "cpuacct/cpuacct.usage");
  std::map<std::string, const CgroupSample*> a;
  for (const CgroupSample* s : snap.aggregates) a[s->id] = s;
  ASSERT_TRUE(a.contains("/"));
  const CgroupSample& root = *a["/"];
  ASSERT_TRUE(cpu_before && cpu_after);
  EXPECT_GE(root.get(F::kCpuUsageNs), *cpu_before);
  EXPECT_LE(root.get(F::kCpuUsageNs), *cpu_after);
  EXPECT_EQ(root.get(F::kMemUsageBytes) > 0, true);
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t total_kib = 0;
  meminfo >> key >> total_kib;
  EXPECT_EQ(root.get(F::kMemLimitBytes), total_kib * 1024);

  const std::string id = "/" + parent + "/kubepods/burstable";
  ASSERT_TRUE(a.contains(id)) << id;
  const CgroupSample& b = *a[id];
  EXPECT_EQ(b.qos, QosClass::kBurstable);
  EXPECT_EQ(b.get(F::kMemLimitBytes), 256U * 1024 * 1024);
  const auto usage = readU64(burstable / "memory.usage_in_bytes").value_or(0);
  EXPECT_GE(b.get(F::kMemUsageBytes), 8U << 20);
  // A process that only waits: its cgroup's usage moves by a few pages at most.
  EXPECT_NEAR(static_cast<double>(b.get(F::kMemUsageBytes)), static_cast<double>(usage), 1 << 20);
  EXPECT_TRUE(a.contains("/" + parent + "/kubepods"));
  // The pod is in the consumers' list, not in the aggregates.
  bool pod_seen = false;
  for (const CgroupSample* s : snap.cgroups) {
    pod_seen |= s->pod_uid == "11111111-2222-3333-4444-555555555551";
  }
  EXPECT_TRUE(pod_seen);
  for (const CgroupSample* s : snap.aggregates) EXPECT_TRUE(s->pod_uid.empty());
}

// A QoS cgroup removed leaves the next snapshot; made again, it is found by the search that its
// removal asked for and read from its new files (the old ones answer ENODEV for ever).
TEST(AggregateCgroupsRealKernel, ARemovedQosCgroupLeavesAndComesBackWhenMadeAgain) {
  const fs::path cg = "/sys/fs/cgroup";
  const std::string own = ownMemoryCgroup();
  if (own.empty() || !fs::exists(cg / "cpuacct/cpuacct.usage")) {
    GTEST_SKIP() << "needs a v1 memory and cpuacct hierarchy (hybrid host)";
  }
  const std::string parent = "nodewarden-agg-rm-" + std::to_string(getpid());
  const std::vector<fs::path> bases = {cg / "memory" / own.substr(1) / parent,
                                       cg / "cpuacct" / parent};
  struct Cleanup {
    std::vector<fs::path> bases;
    ~Cleanup() {
      for (const auto& b : bases) {
        for (const char* d : {"kubepods/burstable", "kubepods", ""}) ::rmdir((b / d).c_str());
      }
    }
  } cleanup{bases};
  for (const auto& b : bases) {
    std::error_code ec;
    if (!fs::create_directories(b / "kubepods/burstable", ec)) GTEST_SKIP() << ec.message();
  }
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollectorOptions o;
  o.aggregates = true;
  CgroupCollector collector(o, errors);
  const std::string id = "/" + parent + "/kubepods/burstable";
  const auto has = [&](Snapshot& snap) {
    snap.reset();
    collector.collect(snap);
    for (const CgroupSample* s : snap.aggregates) {
      if (s->id == id) return s->has(F::kMemUsageBytes);
    }
    return false;
  };
  Snapshot snap;
  ASSERT_TRUE(has(snap));
  for (const auto& b : bases) ASSERT_EQ(::rmdir((b / "kubepods/burstable").c_str()), 0);
  EXPECT_FALSE(has(snap));
  EXPECT_GE(errors.count("cgroup", "vanished_mid_read"), 1.0);
  for (const auto& b : bases) ASSERT_EQ(::mkdir((b / "kubepods/burstable").c_str(), 0755), 0);
  EXPECT_TRUE(has(snap));  // searched again, since one was gone: the new cgroup's files
  EXPECT_TRUE(has(snap));
}

}  // namespace
}  // namespace nodewarden
