// RunDelayReader on a /proc and a cgroup written by the test: how the container's counter follows
// its threads as they come, go and are read again, and what it does with what it cannot read.
#include "collectors/cgroup/run_delay.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace nodewarden::cgroup {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  explicit Fixture(std::size_t max_threads = 2048)
      : tmp("nodewarden-run-delay"), reader(tmp.path() / "proc", max_threads, errors) {
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

  // A thread with this run_delay (ns) in /proc.
  void thread(int tid, std::uint64_t delay_ns) {
    fs::create_directories(tmp.path() / "proc" / std::to_string(tid));
    std::ofstream(tmp.path() / "proc" / std::to_string(tid) / "schedstat", std::ios::trunc)
        << "123456 " << delay_ns << " 42\n";
  }
  // The cgroup's thread list.
  void threads(const std::vector<int>& tids) {
    std::ofstream out(tmp.path() / "cg" / dir / "cgroup.threads", std::ios::trunc);
    for (int tid : tids) out << tid << "\n";
  }
  std::optional<std::uint64_t> read() { return reader.read(h, dir, "cgroup.threads", rd, buf); }

  test_support::TempDir tmp;
  const std::string dir = "kubepods/pod/c";
  SelfMetrics self;
  ErrorReporter errors{self.registry()};
  RunDelayReader reader;
  Hierarchy h;
  RunDelay rd;
  std::array<char, 4096> buf{};
};

TEST(RunDelay, TheCounterGrowsByEachThreadsIncreaseAndNeverGoesBack) {
  Fixture f;
  f.thread(10, 1000);
  f.thread(11, 5000);
  f.threads({10, 11});
  EXPECT_EQ(f.read(), 0U) << "the first read only sets the starting points";
  f.thread(10, 1500);
  f.thread(11, 5100);
  EXPECT_EQ(f.read(), 600U);

  // 11 exits, 12 starts with delay of its own already: neither moves the counter.
  f.thread(12, 90000);
  f.threads({10, 12});
  EXPECT_EQ(f.read(), 600U);
  EXPECT_EQ(f.rd.threads.size(), 2U) << "the exited thread is forgotten";
  f.thread(12, 90050);
  EXPECT_EQ(f.read(), 650U);

  // A thread id reused by a new thread with a smaller counter adds nothing, then counts on.
  f.thread(10, 100);
  EXPECT_EQ(f.read(), 650U);
  f.thread(10, 130);
  EXPECT_EQ(f.read(), 680U);
}

TEST(RunDelay, ThreadsThatCannotBeReadAreSkippedAndGarbageIsCounted) {
  Fixture f;
  f.thread(10, 1000);
  f.threads({10, 77, 0});  // 77 exited before its schedstat was read; 0 is no thread
  std::ofstream(f.tmp.path() / "cg" / f.dir / "cgroup.threads", std::ios::app) << "x\n";
  EXPECT_EQ(f.read(), 0U);
  std::ofstream(f.tmp.path() / "proc/10/schedstat", std::ios::trunc) << "garbage\n";
  EXPECT_EQ(f.read(), 0U);
  EXPECT_EQ(f.errors.count("cgroup", "parse_error"), 1.0);
}

TEST(RunDelay, MoreThreadsThanTheBoundLeaveTheFieldAbsent) {
  Fixture f(2);
  for (int tid : {10, 11, 12}) f.thread(tid, 1);
  f.threads({10, 11, 12});
  EXPECT_EQ(f.read(), std::nullopt);
  EXPECT_EQ(f.errors.count("cgroup", "run_delay_too_many_threads"), 1.0);
  f.threads({10, 11});
  EXPECT_EQ(f.read(), 0U);
}

TEST(RunDelay, AGoneCgroupGivesNothingAndIsNotAnError) {
  Fixture f;
  fs::remove_all(f.tmp.path() / "cg" / f.dir);
  EXPECT_EQ(f.read(), std::nullopt);
  EXPECT_EQ(f.errors.count("cgroup", "read_error"), 0.0);
}

TEST(RunDelay, WithoutProcNothingIsReadAndThatIsSaidOnce) {
  Fixture f;
  fs::remove_all(f.tmp.path() / "proc");
  f.threads({10});
  EXPECT_FALSE(f.reader.available());
  EXPECT_EQ(f.read(), std::nullopt);
  EXPECT_EQ(f.errors.count("cgroup", "run_delay_no_proc"), 1.0);
}

}  // namespace
}  // namespace nodewarden::cgroup
