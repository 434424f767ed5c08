// cAdvisor's process, start-time, last-seen, failure and spec series through CgroupCollector: on
// copies of the hybrid and v2 fixtures with the files added (and a /proc written by the test), on
// the unmodified fixtures (absent, never 0), and on the real kernel: a process of the test in a
// test cgroup, its processes, threads, descriptors and socket compared with /proc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "collectors/cgroup/cgroup_collector.h"
#include "exporters/prometheus/text_renderer.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;

const std::string kU1 = "11111111-2222-3333-4444-555555555551";
const std::string kId1 = std::string(63, 'a') + "1";

class TempTree {
 public:
  explicit TempTree(const std::string& name) {
    static std::mt19937_64 rng{std::random_device{}()};
    root_ = fs::temp_directory_path() / ("nodewarden-series-" + std::to_string(rng()));
    fs::copy(fs::path(NODEWARDEN_FIXTURES) / "cgroup" / name, root_,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
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
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::trunc) << content;
}

struct Harness {
  explicit Harness(const fs::path& base) : collector(options(base), errors) {}
  static CgroupCollectorOptions options(const fs::path& base) {
    CgroupCollectorOptions o;
    o.cgroup_root = base / "sys/fs/cgroup";
    o.log_root = base / "var/log/pods";
    o.proc_root = base / "proc";
    return o;
  }
  std::map<std::string, const CgroupSample*> collect() {
    snapshot.reset();
    collector.collect(snapshot);
    std::map<std::string, const CgroupSample*> out;
    for (const auto* s : snapshot.cgroups) out.emplace(s->pod_uid + "/" + s->container_id, s);
    return out;
  }
  SelfMetrics self;
  ErrorReporter errors{self.registry()};
  CgroupCollector collector;
  Snapshot snapshot;
};

// A process with these links in the tree's /proc.
void fakeProcess(const fs::path& base, int pid, const std::vector<std::string>& links) {
  const fs::path fd = base / "proc" / std::to_string(pid) / "fd";
  fs::create_directories(fd);
  for (std::size_t i = 0; i < links.size(); ++i)
    fs::create_symlink(links[i], fd / std::to_string(i));
}

std::int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(CgroupSeries, V2ContainerGivesEverySeries) {
  TempTree t("v2-cgroupfs-docker");
  const fs::path c = t.root() / ("sys/fs/cgroup/kubepods/burstable/pod" + kU1) / kId1;
  writeFile(c / "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
  writeFile(c / "memory.min", "1048576\n");
  writeFile(c / "memory.swap.max", "max\n");
  writeFile(c / "pids.current", "9\n");
  writeFile(c / "pids.max", "1024\n");
  writeFile(c / "cgroup.procs", "100\n101\n");
  writeFile(c / "cgroup.threads", "100\n101\n102\n");
  fakeProcess(t.root(), 100, {"/dev/null", "socket:[77]"});
  fakeProcess(t.root(), 101, {"pipe:[1]"});
  Harness h(t.root());
  const std::int64_t before = unixNow();
  auto got = h.collect();
  const CgroupSample& s = *got.at(kU1 + "/" + kId1);
  EXPECT_EQ(s.get(F::kMemFailcnt), 4U);
  EXPECT_EQ(s.get(F::kMemPgfault), 40312U) << "the fixture's memory.stat";
  EXPECT_EQ(s.get(F::kMemHierPgfault), 40312U);
  EXPECT_EQ(s.get(F::kMemHierPgmajfault), 7U);
  EXPECT_EQ(s.get(F::kMemReservationBytes), 1048576U);
  EXPECT_EQ(s.get(F::kMemSwapLimitBytes), 0U);
  EXPECT_EQ(s.get(F::kThreads), 9U) << "pids.current, not the thread list";
  EXPECT_EQ(s.get(F::kThreadsMax), 1024U);
  EXPECT_EQ(s.get(F::kProcesses), 2U);
  EXPECT_EQ(s.get(F::kFileDescriptors), 3U);
  EXPECT_EQ(s.get(F::kSockets), 1U);
  const auto mtime = [](const fs::path& p) {
    return std::chrono::duration_cast<std::chrono::seconds>(
               fs::last_write_time(p).time_since_epoch() -
               (fs::file_time_type::clock::now().time_since_epoch() -
                std::chrono::system_clock::now().time_since_epoch()))
        .count();
  };
  ASSERT_TRUE(s.has(F::kStartTimeS));
  EXPECT_NEAR(static_cast<double>(s.get(F::kStartTimeS)), static_cast<double>(mtime(c)), 1.0);
  ASSERT_TRUE(s.has(F::kLastSeenS));
  EXPECT_GE(static_cast<std::int64_t>(s.get(F::kLastSeenS)), before);
  EXPECT_LE(static_cast<std::int64_t>(s.get(F::kLastSeenS)), unixNow());
  EXPECT_EQ(h.errors.count("cgroup", "parse_error"), 0.0);
}

TEST(CgroupSeries, V2WithoutPidsCountsTheThreadList) {
  TempTree t("v2-cgroupfs-docker");
  const fs::path c = t.root() / ("sys/fs/cgroup/kubepods/burstable/pod" + kU1) / kId1;
  writeFile(c / "cgroup.procs", "100\n");
  writeFile(c / "cgroup.threads", "100\n101\n102\n");
  Harness h(t.root());
  const CgroupSample& s = *h.collect().at(kU1 + "/" + kId1);
  EXPECT_EQ(s.get(F::kThreads), 3U);
  EXPECT_FALSE(s.has(F::kThreadsMax));
  EXPECT_EQ(s.get(F::kProcesses), 1U);
  EXPECT_FALSE(s.has(F::kFileDescriptors)) << "pid 100 has no /proc entry here: exited";
}

TEST(CgroupSeries, HybridReadsPidsFromItsV1HierarchyAndProcessesFromTheUnifiedTree) {
  TempTree t("hybrid-systemd-crio");
  const std::string rel = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                          std::string("11111111_2222_3333_4444_555555555551") + ".slice/crio-" +
                          kId1 + ".scope";
  const fs::path cg = t.root() / "sys/fs/cgroup";
  writeFile(cg / "pids" / rel / "pids.current", "6\n");
  writeFile(cg / "pids" / rel / "pids.max", "max\n");
  writeFile(cg / "memory" / rel / "memory.failcnt", "2\n");
  writeFile(cg / "memory" / rel / "memory.soft_limit_in_bytes", "9223372036854771712\n");
  writeFile(cg / "unified" / rel / "cgroup.procs", "200\n");
  fakeProcess(t.root(), 200, {"socket:[1]", "socket:[2]", "/x"});
  Harness h(t.root());
  const CgroupSample& s = *h.collect().at(kU1 + "/" + kId1);
  EXPECT_EQ(h.collector.stats().hierarchies, 5U) << "pids is a hierarchy of its own";
  EXPECT_EQ(s.get(F::kThreads), 6U);
  EXPECT_EQ(s.get(F::kThreadsMax), 0U);
  EXPECT_EQ(s.get(F::kMemFailcnt), 2U);
  EXPECT_EQ(s.get(F::kMemReservationBytes), 0U) << "unlimited";
  EXPECT_FALSE(s.has(F::kMemSwapLimitBytes)) << "no memsw file: no swap accounting";
  EXPECT_EQ(s.get(F::kProcesses), 1U);
  EXPECT_EQ(s.get(F::kFileDescriptors), 3U);
  EXPECT_EQ(s.get(F::kSockets), 2U);
}

// The fixtures as the kernels printed them: what each layout has and has not.
TEST(CgroupSeries, TheUnmodifiedFixturesGiveWhatTheirFilesHoldAndNothingElse) {
  for (const char* name : {"hybrid-systemd-crio", "v1-cgroupfs-containerd"}) {
    Harness h(fs::path(NODEWARDEN_FIXTURES) / "cgroup" / name);
    const CgroupSample& s = *h.collect().at(kU1 + "/" + kId1);
    for (F f : {F::kMemFailcnt, F::kMemReservationBytes, F::kMemSwapLimitBytes, F::kThreads,
                F::kThreadsMax, F::kProcesses, F::kFileDescriptors, F::kSockets}) {
      EXPECT_FALSE(s.has(f)) << name << " " << static_cast<int>(f);
    }
    EXPECT_EQ(s.get(F::kMemPgfault), 8910U) << name;
    EXPECT_EQ(s.get(F::kMemHierPgfault), 8910U) << name;
    EXPECT_TRUE(s.has(F::kStartTimeS)) << name << ": every cgroup directory has a time";
    EXPECT_TRUE(s.has(F::kLastSeenS)) << name;
    EXPECT_EQ(h.errors.count("cgroup", "read_error"), 0.0) << name;
  }
  Harness h(fs::path(NODEWARDEN_FIXTURES) / "cgroup" / "v2-cgroupfs-docker");
  const CgroupSample& s = *h.collect().at(kU1 + "/" + kId1);
  EXPECT_EQ(s.get(F::kMemFailcnt), 12U) << "memory.events max";
  EXPECT_EQ(s.get(F::kMemPgmajfault), 7U);
  for (F f : {F::kMemReservationBytes, F::kMemSwapLimitBytes, F::kThreadsMax, F::kThreads}) {
    EXPECT_FALSE(s.has(f)) << static_cast<int>(f) << ": no memory.min, swap.max, pids.*, threads";
  }
  EXPECT_EQ(s.get(F::kProcesses), 0U) << "its cgroup.procs is empty";
  EXPECT_EQ(s.get(F::kFileDescriptors), 0U) << "no process, no descriptor";
}

TEST(CgroupSeries, TheSwitchTurnsTheProcessSeriesOff) {
  TempTree t("v2-cgroupfs-docker");
  const fs::path c = t.root() / ("sys/fs/cgroup/kubepods/burstable/pod" + kU1) / kId1;
  writeFile(c / "cgroup.procs", "100\n");
  auto o = Harness::options(t.root());
  o.process_stats = false;
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollector collector(o, errors);
  Snapshot snap;
  collector.collect(snap);
  for (const auto* s : snap.cgroups) EXPECT_FALSE(s->has(F::kProcesses));
}

// ---- the real kernel (hybrid v1: cpu, cpuacct, memory and pids) ----

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

TEST(RealKernelSeries, AProcessInATestCgroupIsCountedAsProcShowsIt) {
  const fs::path cg = "/sys/fs/cgroup";
  if (::geteuid() != 0 || !fs::exists(cg / "cpu/cpu.shares") ||
      !fs::exists(cg / "cpuacct/cpuacct.usage") || !fs::exists(cg / "memory/memory.stat") ||
      !fs::exists(cg / "pids/cgroup.procs")) {
    GTEST_SKIP() << "needs root and v1 cpu, cpuacct, memory and pids";
  }
  const std::string parent = "nodewarden-series-" + std::to_string(::getpid());
  const std::string rel = "kubepods/burstable/pod" + kU1;
  std::vector<fs::path> made;
  for (const std::string hier : {"cpu", "cpuacct", "memory", "pids"}) {
    const fs::path base = cg / hier / ownCgroup(hier).substr(1) / parent;
    fs::create_directories(base / rel / kId1);
    made.push_back(base);
  }
  // The container's process: two threads more than its main one, a socket, then it waits.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
    std::thread a([] { ::pause(); });
    std::thread b([] { ::pause(); });
    if (sock < 0 || ::write(ready[1], "x", 1) != 1) _exit(1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  for (const auto& base : made) {
    std::ofstream(base / rel / kId1 / "cgroup.procs") << child << "\n";
  }
  std::size_t fds = 0;
  std::size_t sockets = 0;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(child) + "/fd")) {
    ++fds;
    std::error_code ec;
    if (fs::read_symlink(e.path(), ec).string().starts_with("socket:[")) ++sockets;
  }
  std::size_t threads = 0;
  for ([[maybe_unused]] const auto& e :
       fs::directory_iterator("/proc/" + std::to_string(child) + "/task")) {
    ++threads;
  }

  CgroupCollectorOptions o;
  o.cgroup_root = cg;
  o.log_root = "/nonexistent";
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  std::optional<CgroupCollector> collector;
  collector.emplace(o, errors);
  Snapshot snap;
  const std::int64_t before = unixNow();
  collector->collect(snap);
  // A copy: the collector's samples go with it, and it is gone before the checks.
  std::optional<CgroupSample> mine;
  for (const auto* s : snap.cgroups) {
    if (s->container_id == kId1 && s->id.find(parent) != std::string::npos) mine = *s;
  }
  std::string text;
  if (mine) {
    Snapshot one;
    one.cgroups.push_back(&*mine);
    TextRenderer renderer("/proc");
    renderer.renderToString(one, text);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  collector.reset();
  for (const auto& base : made) {
    for (const auto& p :
         {base / rel / kId1, base / rel, base / "kubepods/burstable", base / "kubepods", base}) {
      ::rmdir(p.c_str());
    }
  }
  ASSERT_TRUE(mine.has_value());
  EXPECT_EQ(threads, 3U);
  EXPECT_EQ(mine->get(F::kProcesses), 1U);
  EXPECT_EQ(mine->get(F::kThreads), threads) << "pids.current";
  ASSERT_TRUE(mine->has(F::kThreadsMax));
  EXPECT_EQ(mine->get(F::kThreadsMax), 0U) << "pids.max is max";
  EXPECT_EQ(mine->get(F::kFileDescriptors), fds);
  EXPECT_EQ(mine->get(F::kSockets), sockets);
  EXPECT_GE(sockets, 1U);
  EXPECT_TRUE(mine->has(F::kMemFailcnt));
  EXPECT_TRUE(mine->has(F::kMemPgfault));
  EXPECT_TRUE(mine->has(F::kMemHierPgfault));
  EXPECT_TRUE(mine->has(F::kMemReservationBytes));
  EXPECT_LE(static_cast<std::int64_t>(mine->get(F::kStartTimeS)), before + 1);
  EXPECT_GE(static_cast<std::int64_t>(mine->get(F::kStartTimeS)), before - 120);
  EXPECT_NE(text.find("container_processes{"), std::string::npos) << text;
  EXPECT_NE(text.find("container_memory_failures_total{container=\"\",failure_type=\"pgfault\""),
            std::string::npos);
  for (const auto& base : made) EXPECT_FALSE(fs::exists(base));
}

// ---- the real kernel, cgroup v2 ----

std::optional<fs::path> cgroupV2Mount() {
  std::ifstream in("/proc/self/mounts");
  std::string device, dir, type, rest;
  while (in >> device >> dir >> type && std::getline(in, rest)) {
    if (type == "cgroup2") return fs::path(dir);
  }
  return std::nullopt;
}

// The same process in a test cgroup of the v2 tree (below this process's own v2 cgroup), the
// collector pointed at the v2 mount: processes, threads (pids.current where the pids controller
// is on, else cgroup.threads), descriptors and sockets as /proc shows them.
TEST(RealKernelSeriesV2, AProcessInATestCgroupIsCountedAsProcShowsIt) {
  const auto mount = cgroupV2Mount();
  if (::geteuid() != 0 || !mount) GTEST_SKIP() << "needs root and cgroup v2 mounted";
  const fs::path base =
      *mount / ownCgroup("").substr(1) / ("nodewarden-series-v2-" + std::to_string(::getpid()));
  const std::string rel = "kubepods/burstable/pod" + kU1;
  fs::create_directories(base / rel / kId1);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    const int sock = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    std::thread a([] { ::pause(); });
    if (sock < 0 || ::write(ready[1], "x", 1) != 1) _exit(1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  std::ofstream(base / rel / kId1 / "cgroup.procs") << child << "\n";
  std::size_t fds = 0;
  std::size_t sockets = 0;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(child) + "/fd")) {
    ++fds;
    std::error_code ec;
    if (fs::read_symlink(e.path(), ec).string().starts_with("socket:[")) ++sockets;
  }
  CgroupCollectorOptions o;
  o.cgroup_root = *mount;
  o.log_root = "/nonexistent";
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  std::optional<CgroupCollector> collector;
  collector.emplace(o, errors);
  Snapshot snap;
  collector->collect(snap);
  std::optional<CgroupSample> mine;
  for (const auto* s : snap.cgroups) {
    if (s->container_id == kId1 && s->id.find(base.filename().string()) != std::string::npos) {
      mine = *s;
    }
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  collector.reset();
  for (const auto& p :
       {base / rel / kId1, base / rel, base / "kubepods/burstable", base / "kubepods", base}) {
    ::rmdir(p.c_str());
  }
  EXPECT_FALSE(fs::exists(base));
  ASSERT_TRUE(mine.has_value());
  EXPECT_EQ(mine->get(F::kProcesses), 1U);
  EXPECT_EQ(mine->get(F::kThreads), 2U);
  EXPECT_EQ(mine->get(F::kFileDescriptors), fds);
  EXPECT_EQ(mine->get(F::kSockets), sockets);
  EXPECT_GE(sockets, 1U);
  EXPECT_TRUE(mine->has(F::kStartTimeS));
}

}  // namespace
}  // namespace nodewarden
