// CgroupFiles on cgroup directories written by the test: which files a hierarchy's roles open,
// the fallbacks of older kernels, the descriptor budget and its by-path reads, and a cgroup that
// goes away between two reads.
#include "collectors/cgroup/cgroup_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/temp_dir.h"

namespace nodewarden::cgroup {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;

void writeFile(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::trunc) << content;
}

// A hierarchy rooted at a temp dir with one cgroup directory "kubepods/pod/c" below it.
struct Fixture {
  explicit Fixture(unsigned roles) : tmp("nodewarden-cgroup-files"), dir(tmp.path() / rel) {
    fs::create_directories(dir);
    h.label = "test";
    h.path = tmp.path().string();
    h.fd = ::open(h.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    h.roles = roles;
  }
  ~Fixture() {
    files.close(budget);
    if (h.fd >= 0) ::close(h.fd);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  void open() {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    files.open(h, fd, rel, "pod/c", budget, errors);
    ::close(fd);
  }
  bool read() {
    sample.clearReadings();
    scratch = ReadScratch{};
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
  ReadScratch scratch;
  std::array<char, 4096> buf{};
};

TEST(CgroupFiles, AV2CgroupsFilesLandInTheirFields) {
  Fixture f(kRoleCpuV2 | kRoleMemV2 | kRoleIoV2 | kRolePsi);
  writeFile(f.dir / "cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\n");
  writeFile(f.dir / "cpu.max", "max 100000\n");
  writeFile(f.dir / "cpu.weight", "100\n");
  writeFile(f.dir / "memory.current", "4096\n");
  writeFile(f.dir / "memory.max", "max\n");
  writeFile(f.dir / "memory.stat", "anon 1024\nfile 2048\ninactive_file 1000\n");
  writeFile(f.dir / "io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n");
  writeFile(f.dir / "cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n");
  f.open();
  EXPECT_TRUE(f.files.located());
  EXPECT_FALSE(f.files.transient());
  EXPECT_EQ(f.files.dir(), f.rel);
  EXPECT_EQ(f.files.fileCount(), 8U) << "only the files there are";
  EXPECT_EQ(f.budget.open, 8U);
  ASSERT_TRUE(f.read());
  EXPECT_EQ(f.sample.get(F::kCpuUsageNs), 10000U);
  EXPECT_EQ(f.sample.get(F::kCfsPeriods), 3U);
  EXPECT_FALSE(f.sample.has(F::kCpuQuotaUs)) << "max is no quota";
  EXPECT_EQ(f.sample.get(F::kCpuPeriodUs), 100000U);
  EXPECT_EQ(f.sample.get(F::kCpuShares), 2597U);
  EXPECT_EQ(f.sample.get(F::kMemUsageBytes), 4096U);
  EXPECT_EQ(f.sample.get(F::kMemLimitBytes), 0U);
  EXPECT_EQ(f.sample.get(F::kMemRssBytes), 1024U);
  EXPECT_FALSE(f.sample.has(F::kMemWorkingSetBytes)) << "the collector derives it";
  EXPECT_TRUE(f.scratch.has_inactive_file);
  EXPECT_EQ(f.scratch.inactive_file, 1000U);
  ASSERT_EQ(f.sample.io_devices, 1);
  EXPECT_EQ(f.sample.io[0].writes, 4U);
  EXPECT_EQ(f.sample.get(F::kPsiCpuSomeUs), 7U);
  EXPECT_EQ(f.errors.count("cgroup", "missing_file"), 0.0) << "none of those is required";

  f.files.close(f.budget);
  EXPECT_EQ(f.budget.open, 0U) << "closing gives the descriptors back";
}

TEST(CgroupFiles, OlderKernelsFilesAreTheFallbacksAndARequiredOneMissingIsCounted) {
  Fixture f(kRoleCpuAcct | kRoleBlkioV1 | kRoleMemV1);
  writeFile(f.dir / "cpuacct.usage", "5000\n");
  writeFile(f.dir / "cpuacct.stat", "user 3\nsystem 1\n");  // no usage_user/_sys before 4.7
  writeFile(f.dir / "blkio.throttle.io_service_bytes", "8:0 Read 10\n8:0 Write 20\nTotal 30\n");
  writeFile(f.dir / "memory.usage_in_bytes", "100\n");  // limit and stat missing
  f.open();
  ASSERT_TRUE(f.read());
  EXPECT_EQ(f.sample.get(F::kCpuUsageNs), 5000U);
  EXPECT_EQ(f.sample.get(F::kCpuUserNs), 30000000U) << "ticks of USER_HZ 100";
  EXPECT_EQ(f.sample.get(F::kCpuSystemNs), 10000000U);
  ASSERT_TRUE(f.sample.io_present);
  EXPECT_EQ(f.sample.io[0].write_bytes, 20U) << "the non-recursive file stands in";
  EXPECT_EQ(f.errors.count("cgroup", "missing_file"), 2.0) << "memory.limit_in_bytes, .stat";
}

TEST(CgroupFiles, PastTheBudgetFilesAreReadByPathAndTheBudgetIsSaidOnce) {
  Fixture f(kRoleCpuV2 | kRoleMemV2);
  writeFile(f.dir / "cpu.stat", "usage_usec 1\n");
  writeFile(f.dir / "memory.current", "2\n");
  f.budget.limit = 1;  // fewer than the role's files
  f.open();
  EXPECT_TRUE(f.files.transient());
  EXPECT_EQ(f.budget.open, 0U);
  ASSERT_TRUE(f.read());
  EXPECT_EQ(f.sample.get(F::kCpuUsageNs), 1000U);
  writeFile(f.dir / "memory.current", "3\n");
  ASSERT_TRUE(f.read());
  EXPECT_EQ(f.sample.get(F::kMemUsageBytes), 3U);
  f.open();  // again: still past the budget, not said again
  EXPECT_EQ(f.errors.count("cgroup", "fd_budget_exhausted"), 1.0);
}

TEST(CgroupFiles, ACgroupRemovedSinceItWasOpenedIsReportedGone) {
  Fixture f(kRoleCpuV2);
  writeFile(f.dir / "cpu.stat", "usage_usec 1\n");
  f.budget.limit = 0;  // by path, so the removal shows on a plain file system as on cgroupfs
  f.open();
  ASSERT_TRUE(f.read());
  fs::remove_all(f.dir);
  EXPECT_FALSE(f.read());
  EXPECT_EQ(f.errors.count("cgroup", "vanished_mid_read"), 1.0);
}

TEST(CgroupFiles, AGarbledValueIsCountedAndTheOthersAreRead) {
  Fixture f(kRoleCpuV2 | kRoleMemV2);
  writeFile(f.dir / "cpu.stat", "usage_usec 1\n");
  writeFile(f.dir / "memory.current", "12x\n");
  writeFile(f.dir / "memory.max", "\n");
  f.open();
  ASSERT_TRUE(f.read());
  EXPECT_TRUE(f.sample.has(F::kCpuUsageNs));
  EXPECT_FALSE(f.sample.has(F::kMemUsageBytes));
  EXPECT_FALSE(f.sample.has(F::kMemLimitBytes));
  EXPECT_EQ(f.errors.count("cgroup", "parse_error"), 2.0);
}

}  // namespace
}  // namespace nodewarden::cgroup
