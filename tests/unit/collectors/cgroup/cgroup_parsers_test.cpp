// Parsers of cgroup interface files, on the exact shapes the kernel prints.
#include "collectors/cgroup/cgroup_parsers.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace nodewarden::cgroup {
namespace {

TEST(ParseU64, AcceptsNumbersWithNewline) {
  EXPECT_EQ(parseU64("123\n").value(), 123U);
  EXPECT_EQ(parseU64(" 18446744073709551615 ").value(), UINT64_MAX);
}

TEST(ParseU64, RejectsGarbage) {
  EXPECT_EQ(parseU64("").error(), ParseError::kEmpty);
  EXPECT_EQ(parseU64("\n").error(), ParseError::kEmpty);
  EXPECT_EQ(parseU64("12a").error(), ParseError::kNotANumber);
  EXPECT_EQ(parseU64("-1").error(), ParseError::kNotANumber);
  EXPECT_EQ(parseU64("18446744073709551616").error(), ParseError::kNotANumber);
}

TEST(FlatKeyed, YieldsGoodLinesAndCountsBadOnes) {
  std::map<std::string, std::uint64_t> got;
  const int bad =
      parseFlatKeyed("nr_periods 10\nnr_throttled x\ngarbage\n\nthrottled_time 99\n",
                     [&](std::string_view k, std::uint64_t v) { got[std::string(k)] = v; });
  EXPECT_EQ(bad, 2);
  EXPECT_EQ(got.size(), 2U);
  EXPECT_EQ(got["nr_periods"], 10U);
  EXPECT_EQ(got["throttled_time"], 99U);
}

TEST(FlatKeyed, TruncatedLastLineStillParses) {
  std::map<std::string, std::uint64_t> got;
  EXPECT_EQ(parseFlatKeyed("a 1\nb 2",
                           [&](std::string_view k, std::uint64_t v) { got[std::string(k)] = v; }),
            0);
  EXPECT_EQ(got["b"], 2U);
}

TEST(MemoryLimits, UnlimitedIsZero) {
  EXPECT_EQ(parseV1MemoryLimit("9223372036854771712\n").value(), 0U);
  EXPECT_EQ(parseV1MemoryLimit("536870912\n").value(), 536870912U);
  EXPECT_EQ(parseV2MemoryMax("max\n").value(), 0U);
  EXPECT_EQ(parseV2MemoryMax("268435456\n").value(), 268435456U);
  EXPECT_FALSE(parseV2MemoryMax("maximum\n").has_value());
}

TEST(CpuQuota, V1MinusOneIsNoQuota) {
  EXPECT_FALSE(parseV1CpuQuota("-1\n").value().has_value());
  EXPECT_EQ(parseV1CpuQuota("50000\n").value().value(), 50000U);
  EXPECT_FALSE(parseV1CpuQuota("-2\n").has_value());
}

TEST(CpuMax, ParsesBothForms) {
  auto a = parseCpuMax("max 100000\n").value();
  EXPECT_FALSE(a.quota_us.has_value());
  EXPECT_EQ(a.period_us, 100000U);
  auto b = parseCpuMax("30000 100000\n").value();
  EXPECT_EQ(b.quota_us.value(), 30000U);
  EXPECT_FALSE(parseCpuMax("30000\n").has_value());
  EXPECT_FALSE(parseCpuMax("30000 100000 7\n").has_value());
  EXPECT_FALSE(parseCpuMax("").has_value());
}

TEST(CpuWeight, MapsBackToShares) {
  EXPECT_EQ(cpuWeightToShares(1), 2U);
  EXPECT_EQ(cpuWeightToShares(10000), 262144U);
  EXPECT_EQ(cpuWeightToShares(100), 2597U);
}

TEST(Pressure, ParsesSomeAndFull) {
  auto p = parsePressure(
               "some avg10=0.02 avg60=0.03 avg300=0.21 total=5325517\n"
               "full avg10=0.00 avg60=0.01 avg300=0.21 total=4958167\n")
               .value();
  EXPECT_TRUE(p.has_some);
  EXPECT_TRUE(p.has_full);
  EXPECT_EQ(p.some_us, 5325517U);
  EXPECT_EQ(p.full_us, 4958167U);
}

TEST(Pressure, FullLineIsOptional) {
  auto p = parsePressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n").value();
  EXPECT_EQ(p.some_us, 7U);
  EXPECT_FALSE(p.has_full);
}

TEST(Pressure, RejectsGarbage) {
  EXPECT_FALSE(parsePressure("").has_value());
  EXPECT_FALSE(parsePressure("garbage\n").has_value());
  EXPECT_FALSE(parsePressure("some avg10=0.00 total=x\n").has_value());
  EXPECT_FALSE(parsePressure("some avg10=0.00 avg60=0.00\n").has_value());
  EXPECT_FALSE(parsePressure("full avg10=0.00 total=1\n").has_value());
}

TEST(Schedstat, RunDelayIsTheSecondField) {
  EXPECT_EQ(parseSchedstatRunDelay("2410093512 113370150 3921\n").value(), 113370150U);
  EXPECT_EQ(parseSchedstatRunDelay("0 0 0").value(), 0U);
  EXPECT_FALSE(parseSchedstatRunDelay("").has_value());
  EXPECT_FALSE(parseSchedstatRunDelay("12\n").has_value());
  EXPECT_FALSE(parseSchedstatRunDelay("12 34\n").has_value());
  EXPECT_FALSE(parseSchedstatRunDelay("x 34 5\n").has_value());
  EXPECT_FALSE(parseSchedstatRunDelay("12 -3 5\n").has_value());
}

TEST(IoStat, ParsesDevices) {
  std::array<IoDeviceStat, 4> out{};
  auto n = parseIoStat(
      "254:0 rbytes=1048576 wbytes=2097152 rios=100 wios=200 dbytes=0 dios=0\n"
      "8:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
      out);
  ASSERT_EQ(n.value(), 2);
  EXPECT_EQ(out[0].major, 254U);
  EXPECT_EQ(out[0].read_bytes, 1048576U);
  EXPECT_EQ(out[0].write_bytes, 2097152U);
  EXPECT_EQ(out[0].reads, 100U);
  EXPECT_EQ(out[0].writes, 200U);
  EXPECT_EQ(out[1].minor, 16U);
  EXPECT_EQ(parseIoStat("", out).value(), 0);
}

TEST(IoStat, RejectsGarbageAndTooManyDevices) {
  std::array<IoDeviceStat, 1> out{};
  EXPECT_FALSE(parseIoStat("254:0 rbytes=x\n", out).has_value());
  EXPECT_FALSE(parseIoStat("nodev rbytes=1\n", out).has_value());
  EXPECT_EQ(parseIoStat("1:0 rbytes=1\n2:0 rbytes=1\n", out).error(), ParseError::kTooManyDevices);
}

TEST(Blkio, MergesBytesAndOps) {
  std::array<IoDeviceStat, 4> out{};
  auto n = parseBlkioThrottle(
      "254:0 Read 10\n254:0 Write 20\n254:0 Sync 20\n254:0 Async 10\n254:0 Discard 0\n"
      "254:0 Total 30\nTotal 30\n",
      true, out, 0);
  ASSERT_EQ(n.value(), 1);
  n = parseBlkioThrottle("254:0 Read 1\n254:0 Write 2\nTotal 3\n", false, out, *n);
  ASSERT_EQ(n.value(), 1);
  EXPECT_EQ(out[0].read_bytes, 10U);
  EXPECT_EQ(out[0].write_bytes, 20U);
  EXPECT_EQ(out[0].reads, 1U);
  EXPECT_EQ(out[0].writes, 2U);
  EXPECT_EQ(parseBlkioThrottle("Total 0\n", true, out, 0).value(), 0);
  EXPECT_FALSE(parseBlkioThrottle("254:0 Read\n", true, out, 0).has_value());
}

}  // namespace
}  // namespace nodewarden::cgroup
