// The one RFC 3339 parser (collectors/common/rfc3339.h) and its two results: the log path's int64
// nanoseconds (logs::parseRfc3339Nano, 1677-2262) and metav1.Time's seconds (pods::parseRfc3339,
// any four-digit year, as the Job state file round-trips 1000-9999).
#include "collectors/common/rfc3339.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string_view>

#include "collectors/logs/container_log_parser.h"
#include "collectors/pods/pod.h"

namespace nodewarden {
namespace {

using namespace std::chrono;

constexpr std::int64_t kMarch1 = 1'709'287'200;  // 2024-03-01T10:00:00Z

pods::Timestamp seconds(std::int64_t s) { return pods::Timestamp(std::chrono::seconds(s)); }

TEST(Rfc3339Fields, DateTimeOffsetAndFraction) {
  const auto f = rfc3339::parse("2024-03-01T12:00:00.25+02:00");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->local_seconds, kMarch1 + 2 * 3600);
  EXPECT_EQ(f->offset_seconds, 2 * 3600);
  EXPECT_EQ(f->nanos, 250'000'000);
  EXPECT_EQ(f->fraction_digits, 2U);
  EXPECT_FALSE(f->leap_second);

  const auto west = rfc3339::parse("2024-03-01t04:30:00-05:30");
  ASSERT_TRUE(west.has_value());
  EXPECT_EQ(west->offset_seconds, -(5 * 3600 + 30 * 60));
  EXPECT_EQ(west->local_seconds - west->offset_seconds, kMarch1);

  const auto zulu = rfc3339::parse("2024-03-01T10:00:00z");
  ASSERT_TRUE(zulu.has_value());
  EXPECT_EQ(zulu->offset_seconds, 0);
  EXPECT_EQ(zulu->fraction_digits, 0U);
}

TEST(Rfc3339Fields, LongFractionsKeepNineDigitsAndCountAll) {
  const auto f = rfc3339::parse("2024-03-01T10:00:00.1234567891234Z");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->nanos, 123'456'789);
  EXPECT_EQ(f->fraction_digits, 13U);
}

TEST(Rfc3339Fields, LeapSecondIsReportedNotRejected) {
  const auto f = rfc3339::parse("2016-12-31T23:59:60Z");
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->leap_second);
  // The cache of the last second parsed keeps the flag.
  const auto again = rfc3339::parse("2016-12-31T23:59:60.5Z");
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->leap_second);
  const auto next = rfc3339::parse("2016-12-31T23:59:59Z");
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->leap_second);
}

TEST(Rfc3339Fields, RejectsMalformedText) {
  for (const std::string_view bad : {
           "",
           "2024-03-01",
           "2024-03-01 10:00:00Z",
           "2024-03-01T10:00:00",
           "2024-03-01T10:00Z",
           "2024-3-01T10:00:00Z",
           "2024-00-01T10:00:00Z",
           "2024-13-01T10:00:00Z",
           "2024-04-31T10:00:00Z",
           "2023-02-29T10:00:00Z",
           "2024-03-01T24:00:00Z",
           "2024-03-01T10:60:00Z",
           "2024-03-01T10:00:61Z",
           "2024-03-01T10:00:00.Z",
           "2024-03-01T10:00:00,5Z",
           "2024-03-01T10:00:00+02",
           "2024-03-01T10:00:00+0200",
           "2024-03-01T10:00:00+24:00",
           "2024-03-01T10:00:00+02:60",
           "2024-03-01T10:00:00ZZ",
           "2024-03-01T10:00:00Z ",
           " 2024-03-01T10:00:00Z",
           "+2024-03-01T10:00:00Z",
           "-024-03-01T10:00:00Z",
           "2024-0a-01T10:00:00Z",
       }) {
    EXPECT_FALSE(rfc3339::parse(bad).has_value()) << bad;
    // After a valid parse too: the cache of the last second must not let a bad one through.
    ASSERT_TRUE(rfc3339::parse("2024-03-01T10:00:00Z").has_value());
    EXPECT_FALSE(rfc3339::parse(bad).has_value()) << bad;
  }
}

// The log path: nanoseconds within int64, at most nine digits, no leap second.
TEST(Rfc3339Results, LogNanosecondsRange) {
  EXPECT_EQ(logs::parseRfc3339Nano("2024-03-01T12:00:00.5+02:00"),
            kMarch1 * 1'000'000'000 + 500'000'000);
  EXPECT_EQ(logs::parseRfc3339Nano("1677-09-21T00:12:43.145224192Z"), INT64_MIN);
  EXPECT_EQ(logs::parseRfc3339Nano("2262-04-11T23:47:16.854775807Z"), INT64_MAX);
  EXPECT_FALSE(logs::parseRfc3339Nano("1677-09-21T00:12:43.145224191Z").has_value());
  EXPECT_FALSE(logs::parseRfc3339Nano("2262-04-11T23:47:16.854775808Z").has_value());
  EXPECT_FALSE(logs::parseRfc3339Nano("1000-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(logs::parseRfc3339Nano("2024-03-01T10:00:00.1234567890Z").has_value());
  EXPECT_FALSE(logs::parseRfc3339Nano("2016-12-31T23:59:60Z").has_value());
}

// metav1.Time: whole seconds of any four-digit year; the fraction is dropped, whatever its length.
TEST(Rfc3339Results, KubernetesSecondsRange) {
  EXPECT_EQ(pods::parseRfc3339("2024-03-01T12:00:00.999+02:00"), seconds(kMarch1));
  EXPECT_EQ(pods::parseRfc3339("2024-03-01T10:00:00.1234567890Z"), seconds(kMarch1));
  EXPECT_EQ(pods::parseRfc3339("1000-01-01T00:00:00Z"),
            pods::Timestamp(sys_days(year(1000) / January / 1)));
  EXPECT_EQ(pods::parseRfc3339("9999-12-31T23:59:59Z"),
            pods::Timestamp(sys_days(year(9999) / December / 31) + 86'399s));
  EXPECT_EQ(pods::parseRfc3339("1600-02-29T00:00:00-01:00"),
            pods::Timestamp(sys_days(year(1600) / February / 29) + 1h));
  EXPECT_EQ(pods::parseRfc3339("2016-12-31T23:59:60Z"),
            pods::Timestamp(sys_days(year(2017) / January / 1)));
  EXPECT_FALSE(pods::parseRfc3339("1900-02-29T00:00:00Z").has_value());
  EXPECT_FALSE(pods::parseRfc3339("2024-03-01T10:00:00").has_value());
  EXPECT_FALSE(pods::parseRfc3339("").has_value());
}

}  // namespace
}  // namespace nodewarden
