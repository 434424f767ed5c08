// The interface files of cAdvisor's memory failure, reservation, swap-limit and pids series on
// cgroup directories written by the test, v1 and v2: present where the file is, absent (never 0)
// where it is not, and a garbled value counted and left absent.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>

#include "collectors/cgroup/cgroup_files.h"
#include "tests/support/temp_dir.h"

namespace nodewarden::cgroup {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;

void writeFile(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::trunc) << content;
}

struct Dir {
  explicit Dir(unsigned roles) : tmp("nodewarden-series-files"), dir(tmp.path() / rel) {
    fs::create_directories(dir);
    h.label = "test";
    h.path = tmp.path().string();
    h.fd = ::open(h.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    h.roles = roles;
  }
  ~Dir() {
    files.close(budget);
    if (h.fd >= 0) ::close(h.fd);
  }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;

  bool openAndRead() {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    files.open(h, fd, rel, "pod/c", budget, errors);
    ::close(fd);
    sample.clearReadings();
    ReadScratch scratch;
    return files.read(h, buf, sample, scratch, errors);
  }

  test_support::TempDir tmp;
  const std::string rel = "kubepods/pod/c";
  fs::path dir;
  Hierarchy h;
  SelfMetrics self;
  ErrorReporter errors{self.registry()};
  DescriptorBudget budget{0, 1000, false};
  CgroupFiles files;
  CgroupSample sample;
  std::array<char, 4096> buf{};
};

// A v1 memory.stat as the kernel prints it: local counters first, total_* (hierarchical) after.
constexpr const char* kV1MemoryStat =
    "cache 100\nrss 200\nmapped_file 10\npgpgin 5\npgpgout 4\npgfault 1000\npgmajfault 7\n"
    "inactive_file 30\ntotal_cache 150\ntotal_rss 250\ntotal_mapped_file 12\n"
    "total_pgfault 5000\ntotal_pgmajfault 70\ntotal_inactive_file 40\n";

TEST(CgroupSeriesFiles, V1MemoryGivesFailcntFaultsReservationAndSwapLimit) {
  Dir d(kRoleMemV1);
  writeFile(d.dir / "memory.usage_in_bytes", "4096\n");
  writeFile(d.dir / "memory.limit_in_bytes", "9223372036854771712\n");
  writeFile(d.dir / "memory.stat", kV1MemoryStat);
  writeFile(d.dir / "memory.failcnt", "3\n");
  writeFile(d.dir / "memory.soft_limit_in_bytes", "268435456\n");
  writeFile(d.dir / "memory.memsw.limit_in_bytes", "9223372036854771712\n");
  ASSERT_TRUE(d.openAndRead());
  const auto& s = d.sample;
  EXPECT_EQ(s.get(F::kMemFailcnt), 3U);
  EXPECT_EQ(s.get(F::kMemPgfault), 1000U) << "scope=container: the cgroup's own counter";
  EXPECT_EQ(s.get(F::kMemPgmajfault), 7U);
  EXPECT_EQ(s.get(F::kMemHierPgfault), 5000U) << "scope=hierarchy: total_pgfault";
  EXPECT_EQ(s.get(F::kMemHierPgmajfault), 70U);
  EXPECT_EQ(s.get(F::kMemReservationBytes), 268435456U);
  ASSERT_TRUE(s.has(F::kMemSwapLimitBytes));
  EXPECT_EQ(s.get(F::kMemSwapLimitBytes), 0U) << "unlimited is 0, as cAdvisor's specMemoryValue";
  EXPECT_EQ(s.get(F::kMemRssBytes), 250U) << "the existing keys are still read";
  EXPECT_EQ(d.errors.count("cgroup", "parse_error"), 0.0);
}

TEST(CgroupSeriesFiles, V1WithoutSwapAccountingOrFaultKeysLeavesThoseAbsent) {
  Dir d(kRoleMemV1);
  writeFile(d.dir / "memory.usage_in_bytes", "4096\n");
  writeFile(d.dir / "memory.limit_in_bytes", "1048576\n");
  writeFile(d.dir / "memory.stat", "total_rss 250\ntotal_cache 1\n");  // an older or odd kernel
  ASSERT_TRUE(d.openAndRead());
  for (F f : {F::kMemFailcnt, F::kMemPgfault, F::kMemPgmajfault, F::kMemHierPgfault,
              F::kMemHierPgmajfault, F::kMemReservationBytes, F::kMemSwapLimitBytes}) {
    EXPECT_FALSE(d.sample.has(f)) << static_cast<int>(f);
  }
  EXPECT_EQ(d.errors.count("cgroup", "missing_file"), 0.0) << "none of them is required";
}

TEST(CgroupSeriesFiles, V2MemoryGivesFailcntFromEventsMaxAndBothFaultScopes) {
  Dir d(kRoleMemV2 | kRolePidsV2);
  writeFile(d.dir / "memory.current", "4096\n");
  writeFile(d.dir / "memory.stat",
            "anon 1024\nfile 2048\ninactive_file 1000\npgfault 321\npgmajfault 9\n");
  writeFile(d.dir / "memory.events", "low 0\nhigh 2\nmax 11\noom 1\noom_kill 1\n");
  writeFile(d.dir / "memory.min", "0\n");
  writeFile(d.dir / "memory.swap.max", "max\n");
  writeFile(d.dir / "pids.current", "17\n");
  writeFile(d.dir / "pids.max", "max\n");
  ASSERT_TRUE(d.openAndRead());
  const auto& s = d.sample;
  EXPECT_EQ(s.get(F::kMemFailcnt), 11U) << "memory.events max, as runc's fs2 sets Failcnt";
  EXPECT_EQ(s.get(F::kOomKills), 1U);
  EXPECT_EQ(s.get(F::kMemPgfault), 321U);
  EXPECT_EQ(s.get(F::kMemHierPgfault), 321U) << "v2 has one pair: both scopes, as cAdvisor";
  EXPECT_EQ(s.get(F::kMemPgmajfault), 9U);
  EXPECT_EQ(s.get(F::kMemHierPgmajfault), 9U);
  ASSERT_TRUE(s.has(F::kMemReservationBytes));
  EXPECT_EQ(s.get(F::kMemReservationBytes), 0U);
  ASSERT_TRUE(s.has(F::kMemSwapLimitBytes));
  EXPECT_EQ(s.get(F::kMemSwapLimitBytes), 0U) << "max is no limit";
  EXPECT_EQ(s.get(F::kThreads), 17U);
  ASSERT_TRUE(s.has(F::kThreadsMax));
  EXPECT_EQ(s.get(F::kThreadsMax), 0U) << "cAdvisor: infinity if value is zero";
}

TEST(CgroupSeriesFiles, V2WithoutSwapOrPidsLeavesThoseAbsent) {
  Dir d(kRoleMemV2 | kRolePidsV2);
  writeFile(d.dir / "memory.current", "4096\n");
  writeFile(d.dir / "memory.events", "low 0\nhigh 0\noom 0\noom_kill 0\n");  // no "max" line
  ASSERT_TRUE(d.openAndRead());
  for (F f : {F::kMemFailcnt, F::kMemReservationBytes, F::kMemSwapLimitBytes, F::kThreads,
              F::kThreadsMax}) {
    EXPECT_FALSE(d.sample.has(f)) << static_cast<int>(f);
  }
  EXPECT_TRUE(d.sample.has(F::kOomKills));
}

TEST(CgroupSeriesFiles, V1PidsHierarchyGivesThreadsAndTheirLimit) {
  Dir d(kRolePidsV1);
  writeFile(d.dir / "pids.current", "5\n");
  writeFile(d.dir / "pids.max", "4096\n");
  ASSERT_TRUE(d.openAndRead());
  EXPECT_EQ(d.sample.get(F::kThreads), 5U);
  EXPECT_EQ(d.sample.get(F::kThreadsMax), 4096U);
}

TEST(CgroupSeriesFiles, GarbledValuesAreCountedAndLeftAbsent) {
  Dir d(kRoleMemV1 | kRolePidsV1);
  writeFile(d.dir / "memory.usage_in_bytes", "4096\n");
  writeFile(d.dir / "memory.limit_in_bytes", "1048576\n");
  writeFile(d.dir / "memory.stat", "total_rss 250\npgfault x\ntotal_pgfault 12\n");
  writeFile(d.dir / "memory.failcnt", "-1\n");
  writeFile(d.dir / "memory.soft_limit_in_bytes", "lots\n");
  writeFile(d.dir / "memory.memsw.limit_in_bytes", "\n");
  writeFile(d.dir / "pids.current", "5 threads\n");
  writeFile(d.dir / "pids.max", "unlimited\n");
  ASSERT_TRUE(d.openAndRead());
  for (F f : {F::kMemFailcnt, F::kMemPgfault, F::kMemReservationBytes, F::kMemSwapLimitBytes,
              F::kThreads, F::kThreadsMax}) {
    EXPECT_FALSE(d.sample.has(f)) << static_cast<int>(f);
  }
  EXPECT_EQ(d.sample.get(F::kMemHierPgfault), 12U) << "the good keys of the file still count";
  EXPECT_EQ(d.errors.count("cgroup", "parse_error"), 6.0);
}

}  // namespace
}  // namespace nodewarden::cgroup
