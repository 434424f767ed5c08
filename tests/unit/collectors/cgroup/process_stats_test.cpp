// ProcessStatsReader on a /proc and a cgroup written by the test (fd directories of symlinks, as
// /proc shows them), then on the real kernel: what an agent with only CAP_DAC_READ_SEARCH, as the
// default deploy runs it, can count of another user's process.
#include "collectors/cgroup/process_stats.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace nodewarden::cgroup {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;
using namespace std::chrono_literals;

struct Fixture {
  explicit Fixture(ProcessStatsReader::Limits limits = {})
      : tmp("nodewarden-process-stats"), reader(tmp.path() / "proc", limits, errors) {
    fs::create_directories(tmp.path() / "proc");
    fs::create_directories(tmp.path() / "cg" / dir);
    h.path = (tmp.path() / "cg").string();
    h.fd = ::open(h.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  ~Fixture() {
    if (h.fd >= 0) ::close(h.fd);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  // A process with these descriptor links in /proc/<pid>/fd.
  void process(int pid, const std::vector<std::string>& links) {
    const fs::path fd = tmp.path() / "proc" / std::to_string(pid) / "fd";
    fs::remove_all(fd);
    fs::create_directories(fd);
    for (std::size_t i = 0; i < links.size(); ++i) {
      fs::create_symlink(links[i], fd / std::to_string(i));
    }
  }
  void list(const char* file, const std::string& content) {
    std::ofstream(tmp.path() / "cg" / dir / file, std::ios::trunc) << content;
  }
  // One cycle at now + at.
  const CgroupSample& read(std::chrono::milliseconds at, const char* threads = nullptr) {
    reader.beginCycle(t0 + at);
    s.clearReadings();
    reader.read(h, dir, threads, pc, s, buf, budget);
    return s;
  }

  test_support::TempDir tmp;
  const std::string dir = "kubepods/pod/c";
  SelfMetrics self;
  ErrorReporter errors{self.registry()};
  ProcessStatsReader reader;
  Hierarchy h;
  ProcessCounts pc;
  DescriptorBudget budget{0, 1000, false};
  CgroupSample s;
  std::chrono::steady_clock::time_point t0{std::chrono::hours(1)};
  std::array<char, 4096> buf{};
};

TEST(ProcessStats, CountsProcessesDescriptorsAndSockets) {
  Fixture f;
  f.process(10, {"/dev/null", "socket:[1234]", "pipe:[99]", "socket:[5678]"});
  f.process(11, {"/var/log/x", "anon_inode:[eventpoll]"});
  f.list("cgroup.procs", "10\n11\n");
  f.list("cgroup.threads", "10\n11\n12\n13\n");
  const auto& s = f.read(0ms, "cgroup.threads");
  EXPECT_EQ(s.get(F::kProcesses), 2U);
  EXPECT_EQ(s.get(F::kThreads), 4U) << "the thread list's length when asked for";
  EXPECT_EQ(s.get(F::kFileDescriptors), 6U);
  EXPECT_EQ(s.get(F::kSockets), 2U) << "links reading socket:[...]";
}

TEST(ProcessStats, ThePidListsAreKeptOpenWithinTheDescriptorBudget) {
  Fixture f;
  f.list("cgroup.procs", "10\n");
  f.list("cgroup.threads", "10\n11\n");
  EXPECT_EQ(f.read(0ms, "cgroup.threads").get(F::kThreads), 2U);
  EXPECT_EQ(f.budget.open, 2U) << "both lists held";
  f.list("cgroup.procs", "10\n12\n");  // rewritten in place: the kept descriptor sees it
  f.list("cgroup.threads", "10\n11\n12\n");
  const auto& s = f.read(1ms, "cgroup.threads");
  EXPECT_EQ(s.get(F::kProcesses), 2U);
  EXPECT_EQ(s.get(F::kThreads), 3U);
  f.pc.close(f.budget);
  EXPECT_EQ(f.budget.open, 0U) << "closing gives them back";

  Fixture g;
  g.budget.limit = 0;  // past the budget: read by path every cycle, never unread
  g.list("cgroup.procs", "10\n");
  EXPECT_EQ(g.read(0ms).get(F::kProcesses), 1U);
  g.list("cgroup.procs", "10\n11\n");
  EXPECT_EQ(g.read(1ms).get(F::kProcesses), 2U);
  EXPECT_EQ(g.budget.open, 0U);
  EXPECT_FALSE(g.pc.procs.isOpen());
}

TEST(ProcessStats, WithoutAThreadListThreadsAreLeftToPids) {
  Fixture f;
  f.list("cgroup.procs", "");
  const auto& s = f.read(0ms);
  EXPECT_FALSE(s.has(F::kThreads));
  ASSERT_TRUE(s.has(F::kProcesses));
  EXPECT_EQ(s.get(F::kProcesses), 0U) << "an empty cgroup (a pod's own) has 0, as cAdvisor says";
  EXPECT_EQ(s.get(F::kFileDescriptors), 0U);
}

TEST(ProcessStats, DescriptorsAreCountedAgainOnlyOnceTheIntervalHasPassed) {
  Fixture f({.fd_scan_interval = 30s, .max_fd_scan_processes = 100});
  f.process(10, {"/a", "socket:[1]"});
  f.list("cgroup.procs", "10\n");
  EXPECT_EQ(f.read(0ms).get(F::kFileDescriptors), 2U);
  f.process(10, {"/a", "socket:[1]", "socket:[2]"});
  f.list("cgroup.procs", "10\n10\n");  // not a real list, but it shows processes are per cycle
  const auto& s = f.read(29s);
  EXPECT_EQ(s.get(F::kProcesses), 2U) << "processes are counted every cycle";
  EXPECT_EQ(s.get(F::kFileDescriptors), 2U) << "the last count stands until it is due";
  EXPECT_EQ(s.get(F::kSockets), 1U);
  f.list("cgroup.procs", "10\n");
  EXPECT_EQ(f.read(30s).get(F::kSockets), 2U);
}

TEST(ProcessStats, CgroupsCountedTogetherAreDueAgainInDifferentCycles) {
  Fixture f({.fd_scan_interval = 30s, .max_fd_scan_processes = 100});
  f.process(10, {"/a"});
  f.list("cgroup.procs", "10\n");
  std::array<ProcessCounts, 10> pcs;
  std::array<CgroupSample, 10> samples;
  f.reader.beginCycle(f.t0);
  for (std::size_t i = 0; i < pcs.size(); ++i) {
    f.reader.read(f.h, f.dir, nullptr, pcs[i], samples[i], f.buf, f.budget);
  }
  f.process(10, {"/a", "/b"});
  // Cycles of 3 s over the next 30 s: each cgroup is counted again once, not all in one cycle.
  std::size_t most_in_a_cycle = 0;
  std::size_t recounted = 0;
  for (int cycle = 1; cycle <= 10; ++cycle) {
    f.reader.beginCycle(f.t0 + std::chrono::seconds(3 * cycle));
    std::size_t now_counted = 0;
    for (std::size_t i = 0; i < pcs.size(); ++i) {
      const bool before = samples[i].get(F::kFileDescriptors) == 2;
      samples[i].clearReadings();
      f.reader.read(f.h, f.dir, nullptr, pcs[i], samples[i], f.buf, f.budget);
      if (!before && samples[i].get(F::kFileDescriptors) == 2) ++now_counted;
    }
    most_in_a_cycle = std::max(most_in_a_cycle, now_counted);
    recounted += now_counted;
  }
  EXPECT_EQ(recounted, pcs.size()) << "every one within the interval";
  EXPECT_LE(most_in_a_cycle, 3U) << "spread, not a burst";
}

TEST(ProcessStats, ACycleCountsAtMostItsBudgetOfProcessesAndTheRestWait) {
  Fixture f({.fd_scan_interval = 0ms, .max_fd_scan_processes = 3});
  f.process(10, {"/a"});
  f.process(11, {"/b"});
  f.list("cgroup.procs", "10\n11\n");
  ProcessCounts other;
  CgroupSample other_sample;
  f.reader.beginCycle(f.t0);
  f.reader.read(f.h, f.dir, nullptr, other, other_sample, f.buf, f.budget);  // 2 of the 3 spent
  f.s.clearReadings();
  f.reader.read(f.h, f.dir, nullptr, f.pc, f.s, f.buf, f.budget);
  EXPECT_TRUE(other_sample.has(F::kFileDescriptors));
  EXPECT_FALSE(f.s.has(F::kFileDescriptors)) << "over the budget: waits, never a 0";
  EXPECT_TRUE(f.s.has(F::kProcesses));
  EXPECT_EQ(f.read(1ms).get(F::kFileDescriptors), 2U) << "counted in the next cycle";
}

TEST(ProcessStats, MoreProcessesThanTheBudgetAreCountedAsSkipped) {
  Fixture f({.fd_scan_interval = 0ms, .max_fd_scan_processes = 1});
  f.process(10, {"/a"});
  f.process(11, {"/b"});
  f.list("cgroup.procs", "10\n11\n");
  const auto& s = f.read(0ms);
  EXPECT_EQ(s.get(F::kProcesses), 2U);
  EXPECT_FALSE(s.has(F::kFileDescriptors));
  EXPECT_FALSE(s.has(F::kSockets));
  EXPECT_EQ(f.errors.count("cgroup", "fd_scan_too_many_processes"), 1.0);
}

TEST(ProcessStats, AProcessThatExitedIsSkippedAndGarbageIsCounted) {
  Fixture f({.fd_scan_interval = 0ms, .max_fd_scan_processes = 100});
  f.process(10, {"/a", "socket:[3]"});
  f.list("cgroup.procs", "10\n77\n");  // 77 exited after the list was read
  const auto& s = f.read(0ms);
  EXPECT_EQ(s.get(F::kFileDescriptors), 2U);
  EXPECT_EQ(s.get(F::kSockets), 1U);
  EXPECT_EQ(f.errors.count("cgroup", "fd_scan_denied"), 0.0);

  f.list("cgroup.procs", "10\nten\n");
  f.list("cgroup.threads", "10\n-3\n");
  const auto& g = f.read(1ms, "cgroup.threads");
  EXPECT_FALSE(g.has(F::kProcesses));
  EXPECT_FALSE(g.has(F::kThreads));
  EXPECT_EQ(f.errors.count("cgroup", "parse_error"), 2.0);
}

TEST(ProcessStats, AGoneCgroupOrNoProcGivesNothingAndIsNotAReadError) {
  Fixture f;
  fs::remove_all(f.tmp.path() / "cg" / f.dir);
  EXPECT_FALSE(f.read(0ms, "cgroup.threads").has(F::kProcesses));
  EXPECT_EQ(f.errors.count("cgroup", "read_error"), 0.0);

  Fixture g;
  fs::remove_all(g.tmp.path() / "proc");
  g.list("cgroup.procs", "10\n");
  const auto& s = g.read(0ms);
  EXPECT_EQ(s.get(F::kProcesses), 1U);
  EXPECT_FALSE(s.has(F::kFileDescriptors));
  EXPECT_EQ(g.errors.count("cgroup", "fd_scan_no_proc"), 1.0);
}

TEST(ProcessStats, PidListsAreDecimalPidsOnly) {
  std::size_t bad = 0;
  EXPECT_EQ(countPids("1\n22\n333\n", bad), 3U);
  EXPECT_EQ(bad, 0U);
  EXPECT_EQ(countPids("1\n\n2", bad), 2U) << "no final newline, blank lines";
  EXPECT_EQ(countPids("0\n2147483648\n99999999999\n+1\n 1\n1x\n2147483647\n", bad), 1U);
  EXPECT_EQ(bad, 6U);
}

// ---- the real kernel ----

// Sets this process's capabilities to CAP_DAC_READ_SEARCH alone (the default deploy's agent).
bool keepOnlyDacReadSearch() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, 2> data{};
  data[0].effective = data[0].permitted = 1U << CAP_DAC_READ_SEARCH;
  return ::syscall(SYS_capset, &hdr, data.data()) == 0;
}

// A child that opens a socket, becomes `uid` (with no capabilities when drop_caps), and waits to
// be killed.
pid_t targetProcess(uid_t uid, bool drop_caps, int& ready_fd) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    const int sock = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || ::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) _exit(1);
    if (drop_caps) {
      __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
      std::array<__user_cap_data_struct, 2> none{};
      if (::syscall(SYS_capset, &hdr, none.data()) != 0) _exit(1);
    }
    // setuid clears "dumpable", which would make /proc/<pid>/fd root's: a container's process
    // that exec'd its program is dumpable again, so the test makes it so.
    ::prctl(PR_SET_DUMPABLE, 1);
    if (::write(p[1], "x", 1) != 1) _exit(1);
    for (;;) ::pause();
  }
  ::close(p[1]);
  ready_fd = p[0];
  char c = 0;
  if (pid < 0 || ::read(p[0], &c, 1) != 1) return -1;
  return pid;
}

std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

// What the default deploy's agent (uid 0, CAP_DAC_READ_SEARCH alone) counts of a target process:
// {listed, links_read, fds, sockets, errno}, and the target's entries as root with every
// capability sees them.
struct DeployView {
  std::array<long, 5> got{-1, -1, -1, -1, -1};
  std::size_t expected_fds = 0;
};
DeployView scanAsTheDeploy(uid_t uid, bool drop_caps) {
  DeployView v;
  int ready = -1;
  const pid_t target = targetProcess(uid, drop_caps, ready);
  if (target <= 0) return v;
  v.expected_fds = entries("/proc/" + std::to_string(target) + "/fd");
  int p[2];
  if (::pipe(p) != 0) return v;
  const pid_t scanner = ::fork();
  if (scanner == 0) {
    ::close(p[0]);
    std::array<long, 5> out{-1, -1, -1, -1, -1};
    if (keepOnlyDacReadSearch()) {
      SelfMetrics self;
      ErrorReporter errors(self.registry());
      ProcessStatsReader reader("/proc", {}, errors);
      const FdCount c = reader.countFds(target);
      out = {c.listed, c.links_read, static_cast<long>(c.fds), static_cast<long>(c.sockets),
             c.error};
    }
    (void)!::write(p[1], out.data(), sizeof out);
    _exit(0);
  }
  ::close(p[1]);
  if (::read(p[0], v.got.data(), sizeof v.got) != sizeof v.got) v.got[0] = -1;
  ::close(p[0]);
  ::waitpid(scanner, nullptr, 0);
  ::kill(target, SIGKILL);
  ::waitpid(target, nullptr, 0);
  ::close(ready);
  return v;
}

TEST(RealKernelProcessStats, TheDefaultDeployListsAnotherUsersFdsButCannotReadTheirLinks) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a process of another user";
  const DeployView v = scanAsTheDeploy(65534, false);
  ASSERT_NE(v.got[0], -1) << "the target or the scanner could not be made";
  EXPECT_EQ(v.got[0], 1) << "CAP_DAC_READ_SEARCH lists the directory";
  EXPECT_EQ(static_cast<std::size_t>(v.got[2]), v.expected_fds);
  EXPECT_EQ(v.got[1], 0) << "readlink needs ptrace access, which the deploy does not have";
  EXPECT_TRUE(v.got[4] == EACCES || v.got[4] == EPERM) << v.got[4];
}

TEST(RealKernelProcessStats, TheDefaultDeployCannotReadTheLinksOfARootProcessWithCapabilities) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  // A container's root keeps capabilities (CHOWN, DAC_OVERRIDE, ...) the agent has not got.
  const DeployView v = scanAsTheDeploy(0, false);
  ASSERT_NE(v.got[0], -1);
  EXPECT_EQ(v.got[0], 1);
  EXPECT_EQ(static_cast<std::size_t>(v.got[2]), v.expected_fds);
  EXPECT_EQ(v.got[1], 0);
}

TEST(RealKernelProcessStats, TheDefaultDeployReadsTheLinksOfARootProcessWithoutCapabilities) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const DeployView v = scanAsTheDeploy(0, true);
  ASSERT_NE(v.got[0], -1);
  EXPECT_EQ(v.got[0], 1);
  EXPECT_EQ(v.got[1], 1) << "same uid, no capability the agent lacks: ptrace read is allowed";
  EXPECT_EQ(v.got[3], 1) << "its one socket";
}

TEST(RealKernelProcessStats, OwnProcessesDescriptorsAndSocketsMatchProc) {
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  ProcessStatsReader reader("/proc", {}, errors);
  ASSERT_TRUE(reader.available());  // its /proc descriptor is one of ours from now on
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  const fs::path fd_dir = "/proc/self/fd";
  std::size_t fds = 0;
  std::size_t sockets = 0;
  for (const auto& e : fs::directory_iterator(fd_dir)) {
    ++fds;
    std::error_code ec;
    if (fs::read_symlink(e.path(), ec).string().starts_with("socket:[")) ++sockets;
  }
  const FdCount c = reader.countFds(::getpid());
  ::close(sock);
  ASSERT_TRUE(c.listed);
  ASSERT_TRUE(c.links_read);
  // The iterator's own descriptor is open while it lists, the reader's while it does: the same
  // count, one of them each.
  EXPECT_EQ(c.fds, fds);
  EXPECT_EQ(c.sockets, sockets);
  EXPECT_GE(c.sockets, 1U);
}

}  // namespace
}  // namespace nodewarden::cgroup
