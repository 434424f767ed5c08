// NodeCollector against fixture proc roots: what it fills, and how a missing, unreadable or
// garbled file is skipped and counted without taking the other sections with it.
//
// What a reader gets wrong: the collector keeps descriptors open, so these tests rewrite files in
// place (same inode) to model the kernel's changing text; a rename would keep the old file.
#include "collectors/node/node_collector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "fixture_files.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using fixtures::fixturePath;
using fixtures::readFixture;
using fixtures::writeFile;

constexpr std::uint64_t kKiB = 1024;

class NodeCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) /
            (std::string("nodewarden_node_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    fs::copy(fixturePath("proc"), root_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(root_); }

  double errors(std::string_view reason) const { return errors_.count("node", reason); }

  fs::path root_;
  SelfMetrics metrics_;
  ErrorReporter errors_{metrics_.registry()};
  Snapshot snapshot_;
};

TEST_F(NodeCollectorTest, FillsEverySectionFromTheFixtureRoot) {
  NodeCollector collector(fixturePath("proc"), errors_);
  EXPECT_EQ(collector.name(), "node");
  collector.collect(snapshot_);
  const NodeSample& node = snapshot_.node;

  ASSERT_TRUE(node.has_stat);
  ASSERT_EQ(node.cpus.size(), 2U);
  EXPECT_EQ(node.cpus[1].ticks[0], 1087U);
  EXPECT_EQ(node.context_switches, 294409U);
  EXPECT_EQ(node.boot_time_s, 1795305332U);
  EXPECT_EQ(node.forks, 5727U);
  EXPECT_EQ(node.interrupts, 129559U);
  EXPECT_EQ(node.procs_running, 1U);
  EXPECT_EQ(node.procs_blocked, 0U);

  ASSERT_TRUE(node.has_meminfo);
  ASSERT_EQ(node.meminfo.size(), 54U);
  EXPECT_EQ(node.meminfo[0].first, "MemTotal");
  EXPECT_EQ(node.meminfo[0].second, 24683656 * kKiB);

  EXPECT_TRUE(node.psi_cpu.has_some);
  EXPECT_EQ(node.psi_cpu.some_us, 3022663U);
  EXPECT_TRUE(node.psi_memory.has_full);
  EXPECT_EQ(node.psi_memory.full_us, 0U);
  EXPECT_TRUE(node.psi_io.has_full);
  EXPECT_EQ(node.psi_io.some_us, 4802610U);
  EXPECT_EQ(node.psi_io.full_us, 4683964U);

  ASSERT_TRUE(node.has_loadavg);
  EXPECT_EQ(node.load1, 0.02);
  EXPECT_EQ(node.load5, 0.06);
  EXPECT_EQ(node.load15, 0.03);

  for (const char* reason : {"missing", "read_error", "parse_error"}) {
    EXPECT_EQ(errors(reason), 0) << reason;
  }
}

TEST_F(NodeCollectorTest, MissingFilesAreSkippedAndCountedEveryCycle) {
  fs::remove_all(root_ / "pressure");  // a kernel without CONFIG_PSI, or booted with psi=0
  NodeCollector collector(root_, errors_);
  collector.collect(snapshot_);
  EXPECT_TRUE(snapshot_.node.has_stat);
  EXPECT_TRUE(snapshot_.node.has_meminfo);
  EXPECT_TRUE(snapshot_.node.has_loadavg);
  EXPECT_FALSE(snapshot_.node.psi_cpu.has_some);
  EXPECT_FALSE(snapshot_.node.psi_memory.has_some);
  EXPECT_FALSE(snapshot_.node.psi_io.has_full);
  EXPECT_EQ(errors("missing"), 3);
  collector.collect(snapshot_);
  EXPECT_EQ(errors("missing"), 6);
  EXPECT_EQ(errors("parse_error"), 0);
}

TEST_F(NodeCollectorTest, FileThatAppearsLaterIsPickedUp) {
  fs::remove(root_ / "loadavg");
  NodeCollector collector(root_, errors_);
  collector.collect(snapshot_);
  EXPECT_FALSE(snapshot_.node.has_loadavg);
  EXPECT_EQ(errors("missing"), 1);

  writeFile(root_ / "loadavg", "1.50 0.75 0.25 2/90 6000\n");
  collector.collect(snapshot_);
  ASSERT_TRUE(snapshot_.node.has_loadavg);
  EXPECT_EQ(snapshot_.node.load1, 1.5);
  EXPECT_EQ(errors("missing"), 1);
}

TEST_F(NodeCollectorTest, GarbledFileDropsOnlyItsSectionUntilItIsWholeAgain) {
  NodeCollector collector(root_, errors_);
  collector.collect(snapshot_);
  ASSERT_TRUE(snapshot_.node.has_stat);

  const std::string good = readFixture("proc/stat");
  writeFile(root_ / "stat", readFixture("proc_variants/stat_truncated"));
  collector.collect(snapshot_);
  EXPECT_FALSE(snapshot_.node.has_stat);
  EXPECT_TRUE(snapshot_.node.has_meminfo);
  EXPECT_TRUE(snapshot_.node.psi_memory.has_some);
  EXPECT_TRUE(snapshot_.node.has_loadavg);
  EXPECT_EQ(errors("parse_error"), 1);

  writeFile(root_ / "pressure" / "io", readFixture("proc_variants/pressure_garbled"));
  writeFile(root_ / "stat", good);
  collector.collect(snapshot_);
  EXPECT_TRUE(snapshot_.node.has_stat);
  EXPECT_EQ(snapshot_.node.context_switches, 294409U);
  EXPECT_FALSE(snapshot_.node.psi_io.has_some);
  EXPECT_FALSE(snapshot_.node.psi_io.has_full);
  EXPECT_EQ(errors("parse_error"), 2);
}

TEST_F(NodeCollectorTest, RereadsThroughTheOpenDescriptorsAndReusesMeminfoStrings) {
  NodeCollector collector(root_, errors_);
  collector.collect(snapshot_);
  ASSERT_TRUE(snapshot_.node.has_meminfo);
  const auto* entries = snapshot_.node.meminfo.data();
  const char* active_anon = snapshot_.node.meminfo[8].first.data();

  std::string meminfo = readFixture("proc/meminfo");
  const std::string from = "MemTotal:       24683656 kB";
  meminfo.replace(meminfo.find(from), from.size(), "MemTotal:       24683657 kB");
  writeFile(root_ / "meminfo", meminfo);
  writeFile(root_ / "loadavg", "3.00 2.00 1.00 1/88 5728\n");
  collector.collect(snapshot_);

  ASSERT_TRUE(snapshot_.node.has_meminfo);
  EXPECT_EQ(snapshot_.node.meminfo[0].second, 24683657 * kKiB);
  EXPECT_EQ(snapshot_.node.meminfo.data(), entries);
  EXPECT_EQ(snapshot_.node.meminfo[8].first, "Active(anon)");
  EXPECT_EQ(snapshot_.node.meminfo[8].first.data(), active_anon);
  EXPECT_EQ(snapshot_.node.load15, 1.0);
}

TEST_F(NodeCollectorTest, UnreadableFileIsAReadError) {
  fs::remove(root_ / "meminfo");
  fs::create_directory(root_ / "meminfo");  // opens, but pread fails with EISDIR
  NodeCollector collector(root_, errors_);
  collector.collect(snapshot_);
  EXPECT_FALSE(snapshot_.node.has_meminfo);
  EXPECT_TRUE(snapshot_.node.has_stat);
  EXPECT_EQ(errors("read_error"), 1);
  EXPECT_EQ(errors("missing"), 0);
}

TEST_F(NodeCollectorTest, FileLargerThanTheInitialBufferIsReadWhole) {
  // A 1024-cpu host: /proc/stat well past the first buffer size.
  std::string stat = "cpu  1 2 3 4 5 6 7 8 9 10\n";
  for (int cpu = 0; cpu < 1024; ++cpu) {
    stat += "cpu" + std::to_string(cpu) + " 100000 200000 300000 400000 5 6 7 8 9 10\n";
  }
  stat += "intr 42\nctxt 1\nbtime 2\nprocesses 3\nprocs_running 4\nprocs_blocked 5\n";
  ASSERT_GT(stat.size(), 32U * 1024);
  writeFile(root_ / "stat", stat);
  NodeCollector collector(root_, errors_);
  collector.collect(snapshot_);
  ASSERT_TRUE(snapshot_.node.has_stat);
  ASSERT_EQ(snapshot_.node.cpus.size(), 1024U);
  EXPECT_EQ(snapshot_.node.cpus.back().cpu, 1023);
  EXPECT_EQ(snapshot_.node.interrupts, 42U);
  EXPECT_EQ(snapshot_.node.procs_blocked, 5U);
}

TEST_F(NodeCollectorTest, ReadsTheLiveProcWhenItHasPressure) {
  if (!fs::exists("/proc/pressure/cpu")) {
    GTEST_SKIP() << "this kernel has no PSI";
  }
  NodeCollector collector("/proc", errors_);
  collector.collect(snapshot_);
  EXPECT_TRUE(snapshot_.node.has_stat);
  EXPECT_FALSE(snapshot_.node.cpus.empty());
  EXPECT_TRUE(snapshot_.node.has_meminfo);
  EXPECT_TRUE(snapshot_.node.has_loadavg);
  EXPECT_TRUE(snapshot_.node.psi_cpu.has_some);
  EXPECT_EQ(errors("parse_error"), 0);
}

}  // namespace
}  // namespace nodewarden
