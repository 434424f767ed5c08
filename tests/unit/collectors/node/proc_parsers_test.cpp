// Unit tests of the /proc parsers against a real machine's files and broken variants of them.
//
// What a reader gets wrong: the broken variants must fail, not parse "most of it": a truncated
// number would otherwise be exported as a plausible, wrong value.
#include "collectors/node/proc_parsers.h"

#include <gtest/gtest.h>

#include <string>

#include "fixture_files.h"

namespace nodewarden {
namespace {

using fixtures::readFixture;

constexpr std::uint64_t kKiB = 1024;

TEST(ProcStatTest, ParsesRealFile) {
  NodeSample node;
  const std::string text = readFixture("proc/stat");
  ASSERT_TRUE(parseProcStat(text, node));

  ASSERT_EQ(node.cpus.size(), 2U);
  EXPECT_EQ(node.cpus[0].cpu, 0);
  EXPECT_EQ(node.cpus[0].columns, 10);
  EXPECT_EQ(node.cpus[0].ticks,
            (std::array<std::uint64_t, 10>{488, 0, 385, 47770, 40, 0, 14, 1, 0, 0}));
  EXPECT_EQ(node.cpus[1].cpu, 1);
  EXPECT_EQ(node.cpus[1].columns, 10);
  EXPECT_EQ(node.cpus[1].ticks,
            (std::array<std::uint64_t, 10>{1087, 0, 782, 46270, 506, 0, 37, 2, 0, 0}));
  EXPECT_EQ(node.interrupts, 129559U);
  EXPECT_EQ(node.context_switches, 294409U);
  EXPECT_EQ(node.boot_time_s, 1795305332U);
  EXPECT_EQ(node.forks, 5727U);
  EXPECT_EQ(node.procs_running, 1U);
  EXPECT_EQ(node.procs_blocked, 0U);
}

TEST(ProcStatTest, ReusesCpuVectorAcrossParses) {
  NodeSample node;
  const std::string text = readFixture("proc/stat");
  ASSERT_TRUE(parseProcStat(text, node));
  const CpuTimes* first = node.cpus.data();
  ASSERT_TRUE(parseProcStat(text, node));
  EXPECT_EQ(node.cpus.data(), first);
  EXPECT_EQ(node.cpus.size(), 2U);
}

TEST(ProcStatTest, OlderKernelsWithFewerColumns) {
  NodeSample node;
  ASSERT_TRUE(parseProcStat(readFixture("proc_variants/stat_8_columns"), node));
  ASSERT_EQ(node.cpus.size(), 2U);
  EXPECT_EQ(node.cpus[1].columns, 8);
  EXPECT_EQ(node.cpus[1].ticks[7], 2U);
  EXPECT_EQ(node.cpus[1].ticks[8], 0U);
}

TEST(ProcStatTest, SparseCpuIdsAndExtraColumns) {
  // Offline cpus are not printed; a future kernel's eleventh column is validated and ignored.
  NodeSample node;
  const std::string text =
      "cpu  1 2 3 4 5 6 7 8 9 10 11\ncpu0 1 2 3 4 5 6 7 8 9 10 11\ncpu3 9 9 9 9\n"
      "intr 5\nctxt 6\nbtime 7\nprocesses 8\nprocs_running 9\nprocs_blocked 10\n";
  ASSERT_TRUE(parseProcStat(text, node));
  ASSERT_EQ(node.cpus.size(), 2U);
  EXPECT_EQ(node.cpus[0].columns, 10);
  EXPECT_EQ(node.cpus[0].ticks[9], 10U);
  EXPECT_EQ(node.cpus[1].cpu, 3);
  EXPECT_EQ(node.cpus[1].columns, 4);
  EXPECT_EQ(node.interrupts, 5U);
  EXPECT_EQ(node.procs_blocked, 10U);
}

struct BrokenCase {
  const char* fixture;
  ProcParseError error;
};

class BrokenStatTest : public ::testing::TestWithParam<BrokenCase> {};

TEST_P(BrokenStatTest, IsRejected) {
  NodeSample node;
  const auto result =
      parseProcStat(readFixture(std::string("proc_variants/") + GetParam().fixture), node);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), GetParam().error) << procParseErrorName(result.error());
}

INSTANTIATE_TEST_SUITE_P(
    Variants, BrokenStatTest,
    ::testing::Values(BrokenCase{"empty", ProcParseError::kEmpty},
                      BrokenCase{"stat_truncated", ProcParseError::kTruncated},
                      BrokenCase{"stat_cut_at_line", ProcParseError::kTruncated},
                      BrokenCase{"stat_garbled", ProcParseError::kMalformed},
                      BrokenCase{"stat_negative", ProcParseError::kMalformed},
                      BrokenCase{"stat_overflow", ProcParseError::kOutOfRange},
                      BrokenCase{"stat_duplicate_cpu", ProcParseError::kDuplicate},
                      BrokenCase{"stat_3_columns", ProcParseError::kMalformed}));

TEST(ProcStatTest, RejectsOddInlineInputs) {
  NodeSample node;
  const std::string tail =
      "intr 1\nctxt 2\nbtime 3\nprocesses 4\nprocs_running 5\nprocs_blocked 6\n";
  EXPECT_TRUE(parseProcStat("cpu0 1 2 3 4\n" + tail, node));
  EXPECT_FALSE(parseProcStat("cpu0 1 2 3 4\n\n" + tail, node));             // blank line
  EXPECT_FALSE(parseProcStat("cpu0 1 2 3 4\n" + tail + "ctxt 9\n", node));  // repeated key
  EXPECT_FALSE(parseProcStat("cpu0 1 2 3 4\nctxt 2 3\n" + tail, node));     // extra value
  EXPECT_FALSE(parseProcStat("cpu-1 1 2 3 4\n" + tail, node));
  EXPECT_FALSE(parseProcStat("cpu99999999999 1 2 3 4\n" + tail, node));
  EXPECT_FALSE(parseProcStat("cpu0 1 2 3 +4\n" + tail, node));
  EXPECT_FALSE(parseProcStat(std::string("cpu0 1 2 3 4\0\n", 14) + tail, node));
}

TEST(MeminfoTest, ParsesRealFile) {
  MeminfoEntries entries;
  ASSERT_TRUE(parseMeminfo(readFixture("proc/meminfo"), entries));
  ASSERT_EQ(entries.size(), 54U);
  EXPECT_EQ(entries.front().first, "MemTotal");
  EXPECT_EQ(entries.front().second, 24683656 * kKiB);
  EXPECT_EQ(entries[8].first, "Active(anon)");
  EXPECT_EQ(entries[8].second, 1532 * kKiB);
  EXPECT_EQ(entries.back().first, "DirectMap1G");
  EXPECT_EQ(entries.back().second, 25165824 * kKiB);
  bool saw_huge_total = false;
  for (const auto& [key, value] : entries) {
    if (key == "VmallocTotal") {
      EXPECT_EQ(value, 34359738367 * kKiB);
    }
    if (key == "HugePages_Total") {
      saw_huge_total = true;
      EXPECT_EQ(value, 0U);
    }
  }
  EXPECT_TRUE(saw_huge_total);
}

TEST(MeminfoTest, UnitlessValuesAreKeptAsPrinted) {
  MeminfoEntries entries;
  ASSERT_TRUE(parseMeminfo("HugePages_Total:      12\nHugepagesize:       2048 kB\n", entries));
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(entries[0], (std::pair<std::string, std::uint64_t>{"HugePages_Total", 12}));
  EXPECT_EQ(entries[1], (std::pair<std::string, std::uint64_t>{"Hugepagesize", 2048 * kKiB}));
}

TEST(MeminfoTest, ReusesStringsAndShrinks) {
  MeminfoEntries entries;
  ASSERT_TRUE(parseMeminfo("MemTotal:       1 kB\nActive(anon):   2 kB\n", entries));
  const char* key_data = entries[1].first.data();
  ASSERT_TRUE(parseMeminfo("MemTotal:       3 kB\nActive(anon):   4 kB\n", entries));
  EXPECT_EQ(entries[1].first.data(), key_data);
  EXPECT_EQ(entries[1].second, 4 * kKiB);
  ASSERT_TRUE(parseMeminfo("MemTotal:       5 kB\n", entries));
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].second, 5 * kKiB);
}

TEST(MeminfoTest, SkipsBlankLinesLikeNodeExporter) {
  MeminfoEntries entries;
  ASSERT_TRUE(parseMeminfo("MemTotal:       1 kB\n\nMemFree:        2 kB\n", entries));
  EXPECT_EQ(entries.size(), 2U);
}

class BrokenMeminfoTest : public ::testing::TestWithParam<BrokenCase> {};

TEST_P(BrokenMeminfoTest, IsRejected) {
  MeminfoEntries entries;
  const auto result =
      parseMeminfo(readFixture(std::string("proc_variants/") + GetParam().fixture), entries);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), GetParam().error) << procParseErrorName(result.error());
}

INSTANTIATE_TEST_SUITE_P(
    Variants, BrokenMeminfoTest,
    ::testing::Values(BrokenCase{"empty", ProcParseError::kEmpty},
                      BrokenCase{"meminfo_truncated", ProcParseError::kTruncated},
                      BrokenCase{"meminfo_garbled", ProcParseError::kMalformed},
                      BrokenCase{"meminfo_bad_value", ProcParseError::kMalformed},
                      BrokenCase{"meminfo_bad_unit", ProcParseError::kMalformed},
                      BrokenCase{"meminfo_overflow", ProcParseError::kOutOfRange},
                      BrokenCase{"meminfo_duplicate", ProcParseError::kDuplicate}));

TEST(MeminfoTest, RejectsOddInlineInputs) {
  MeminfoEntries entries;
  EXPECT_FALSE(parseMeminfo("\n", entries));
  EXPECT_FALSE(parseMeminfo(":  1 kB\n", entries));
  EXPECT_FALSE(parseMeminfo("Mem Total:  1 kB\n", entries));
  EXPECT_FALSE(parseMeminfo("MemTotal:\n", entries));
  EXPECT_FALSE(parseMeminfo("MemTotal:  1 kB extra\n", entries));
  EXPECT_FALSE(parseMeminfo("MemTotal:  -1 kB\n", entries));
}

TEST(PressureTest, ParsesRealFiles) {
  PsiTotals cpu;
  ASSERT_TRUE(parsePressure(readFixture("proc/pressure/cpu"), cpu));
  EXPECT_TRUE(cpu.has_some);
  EXPECT_EQ(cpu.some_us, 3022663U);
  EXPECT_TRUE(cpu.has_full);
  EXPECT_EQ(cpu.full_us, 0U);

  PsiTotals memory;
  ASSERT_TRUE(parsePressure(readFixture("proc/pressure/memory"), memory));
  EXPECT_TRUE(memory.has_some);
  EXPECT_TRUE(memory.has_full);
  EXPECT_EQ(memory.some_us, 0U);
  EXPECT_EQ(memory.full_us, 0U);

  PsiTotals io;
  ASSERT_TRUE(parsePressure(readFixture("proc/pressure/io"), io));
  EXPECT_TRUE(io.has_some);
  EXPECT_TRUE(io.has_full);
  EXPECT_EQ(io.some_us, 4802610U);
  EXPECT_EQ(io.full_us, 4683964U);
}

TEST(PressureTest, CpuWithoutFullLineOnOlderKernels) {
  PsiTotals cpu;
  ASSERT_TRUE(parsePressure(readFixture("proc_variants/pressure_cpu_no_full"), cpu));
  EXPECT_TRUE(cpu.has_some);
  EXPECT_EQ(cpu.some_us, 3022663U);
  EXPECT_FALSE(cpu.has_full);
}

class BrokenPressureTest : public ::testing::TestWithParam<BrokenCase> {};

TEST_P(BrokenPressureTest, IsRejectedAndLeavesOutputAlone) {
  PsiTotals totals{.some_us = 7, .full_us = 8, .has_some = true, .has_full = true};
  const auto result =
      parsePressure(readFixture(std::string("proc_variants/") + GetParam().fixture), totals);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), GetParam().error) << procParseErrorName(result.error());
  EXPECT_EQ(totals.some_us, 7U);
  EXPECT_EQ(totals.full_us, 8U);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, BrokenPressureTest,
    ::testing::Values(BrokenCase{"empty", ProcParseError::kEmpty},
                      BrokenCase{"pressure_garbled", ProcParseError::kMalformed},
                      BrokenCase{"pressure_truncated", ProcParseError::kTruncated},
                      BrokenCase{"pressure_no_total", ProcParseError::kMalformed},
                      BrokenCase{"pressure_full_only", ProcParseError::kTruncated}));

TEST(PressureTest, RejectsOddInlineInputs) {
  PsiTotals totals;
  EXPECT_FALSE(parsePressure("some total=1\nsome total=2\n", totals));
  EXPECT_FALSE(parsePressure("some total=1 total=2\n", totals));
  EXPECT_FALSE(parsePressure("half total=1\n", totals));
  EXPECT_FALSE(parsePressure("some avg10=x total=1\n", totals));
  EXPECT_FALSE(parsePressure("some =1 total=1\n", totals));
  EXPECT_FALSE(parsePressure("some total=\n", totals));
  EXPECT_TRUE(parsePressure("some total=1\n", totals));
  EXPECT_EQ(totals.some_us, 1U);
}

TEST(LoadavgTest, ParsesRealFile) {
  const auto loads = parseLoadavg(readFixture("proc/loadavg"));
  ASSERT_TRUE(loads);
  EXPECT_EQ(loads->load1, 0.02);
  EXPECT_EQ(loads->load5, 0.06);
  EXPECT_EQ(loads->load15, 0.03);
}

class BrokenLoadavgTest : public ::testing::TestWithParam<BrokenCase> {};

TEST_P(BrokenLoadavgTest, IsRejected) {
  const auto result = parseLoadavg(readFixture(std::string("proc_variants/") + GetParam().fixture));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), GetParam().error) << procParseErrorName(result.error());
}

INSTANTIATE_TEST_SUITE_P(
    Variants, BrokenLoadavgTest,
    ::testing::Values(BrokenCase{"empty", ProcParseError::kEmpty},
                      BrokenCase{"loadavg_garbled", ProcParseError::kMalformed},
                      BrokenCase{"loadavg_truncated", ProcParseError::kTruncated},
                      BrokenCase{"loadavg_missing_fields", ProcParseError::kTruncated}));

TEST(LoadavgTest, RejectsOddInlineInputs) {
  EXPECT_TRUE(parseLoadavg("12.50 0.06 0.03 1/88 5728\n"));
  EXPECT_FALSE(parseLoadavg("inf 0.06 0.03 1/88 5728\n"));
  EXPECT_FALSE(parseLoadavg("nan 0.06 0.03 1/88 5728\n"));
  EXPECT_FALSE(parseLoadavg("-1.00 0.06 0.03 1/88 5728\n"));
  EXPECT_FALSE(parseLoadavg("1e3 0.06 0.03 1/88 5728\n"));
  EXPECT_FALSE(parseLoadavg("0.02 0.06 0.03 188 5728\n"));
  EXPECT_FALSE(parseLoadavg("0.02 0.06 0.03 1/88 5728 9\n"));
  EXPECT_FALSE(parseLoadavg("0.02 0.06 0.03 1/88 5728\n0.02 0.06 0.03 1/88 5728\n"));
}

}  // namespace
}  // namespace nodewarden
