// RateTracker: the rules every counter the detector differentiates follows (first reading,
// missing reading, reset, a clock that did not advance), and CgroupTable's admission and
// forgetting.
#include "pipeline/detector/rate_tracker.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "pipeline/detector/cgroup_table.h"

namespace nodewarden::detector {
namespace {

TEST(RateTracker, FirstReadingHasNoIncreaseAndNoInterval) {
  RateTracker t;
  const auto step = t.next(1000, 10.0);
  EXPECT_FALSE(step.increase);
  EXPECT_EQ(step.seconds, 0);
  EXPECT_FALSE(step.perSecond());
}

TEST(RateTracker, IncreaseAndRateBetweenTwoReadings) {
  RateTracker t;
  t.next(1'000'000'000, 10.0);
  const auto step = t.next(3'500'000'000, 15.0);
  ASSERT_TRUE(step.increase);
  EXPECT_EQ(*step.increase, 2.5e9);
  EXPECT_EQ(step.seconds, 5.0);
  ASSERT_TRUE(step.perSecond(1e9));
  EXPECT_DOUBLE_EQ(*step.perSecond(1e9), 0.5);  // cores
  EXPECT_DOUBLE_EQ(*step.perSecond(), 5e8);     // ns per second
}

TEST(RateTracker, CounterResetGivesNothingAndRestartsFromTheNewReading) {
  RateTracker t;
  t.next(5000, 0.0);
  const auto reset = t.next(100, 1.0);  // the cgroup was recreated under the same path
  EXPECT_FALSE(reset.increase);
  EXPECT_FALSE(reset.perSecond());
  EXPECT_EQ(reset.seconds, 1.0);
  const auto after = t.next(400, 2.0);
  ASSERT_TRUE(after.increase);
  EXPECT_EQ(*after.increase, 300);  // from the reading after the reset, not the one before
}

TEST(RateTracker, AnUnchangedCounterIsAZeroRateNotAReset) {
  RateTracker t;
  t.next(7, 0.0);
  const auto step = t.next(7, 1.0);
  ASSERT_TRUE(step.perSecond());
  EXPECT_EQ(*step.perSecond(), 0);
}

TEST(RateTracker, ClockNotAdvancingGivesAnIncreaseButNoRate) {
  RateTracker t;
  t.next(100, 5.0);
  const auto same = t.next(300, 5.0);
  ASSERT_TRUE(same.increase);
  EXPECT_EQ(*same.increase, 200);
  EXPECT_EQ(same.seconds, 0);
  EXPECT_FALSE(same.perSecond());
  const auto back = t.next(400, 4.0);  // a clock that went backwards
  EXPECT_LT(back.seconds, 0);
  EXPECT_FALSE(back.perSecond());
  // The base moved with each call: the next interval is measured from the last one.
  const auto next = t.next(500, 6.0);
  EXPECT_EQ(next.seconds, 2.0);
  ASSERT_TRUE(next.perSecond());
  EXPECT_EQ(*next.perSecond(), 50);
}

TEST(RateTracker, MissingReadingBreaksTheChain) {
  RateTracker t;
  t.next(100, 0.0);
  const auto missing = t.next(std::nullopt, 1.0);
  EXPECT_FALSE(missing.increase);
  EXPECT_EQ(missing.seconds, 1.0);  // the clock still moved
  // The reading after the gap has nothing to subtract from: no delta across the gap.
  const auto back = t.next(200, 2.0);
  EXPECT_FALSE(back.increase);
  EXPECT_EQ(back.seconds, 1.0);
  const auto then = t.next(260, 3.0);
  ASSERT_TRUE(then.increase);
  EXPECT_EQ(*then.increase, 60);
}

TEST(RateTracker, PerSecondDividesByTheUnitFirst) {
  // The detector's figures before RateTracker were x / 1e9 / dt; (x / dt) / 1e9 differs in the
  // last bit for some x, which would move a threshold comparison.
  RateTracker t;
  t.next(0, 0.0);
  const auto step = t.next(1'234'567'893, 3.0);
  const double x = 1'234'567'893.0;  // one where the two orders differ
  EXPECT_EQ(*step.perSecond(1e9), x / 1e9 / 3.0);
  EXPECT_NE(*step.perSecond(1e9), x / 3.0 / 1e9);
}

TEST(RateTracker, ReadingOfACgroupField) {
  CgroupSample s;
  EXPECT_FALSE(reading(s, CgroupField::kCpuUsageNs));
  s.set(CgroupField::kCpuUsageNs, 42);
  ASSERT_TRUE(reading(s, CgroupField::kCpuUsageNs));
  EXPECT_EQ(*reading(s, CgroupField::kCpuUsageNs), 42U);
}

struct Entry {
  std::uint64_t last_seen = 0;
  const CgroupSample* sample = nullptr;
  std::string out;
};

TEST(CgroupTable, AdmitsOnlyWhenAllowedAndForgetsAfterThreeMissedCycles) {
  detail::CgroupTable<Entry> table;
  CgroupSample s;
  const auto make = [] { return std::make_unique<Entry>(); };
  table.beginCycle();
  EXPECT_EQ(table.see("a", s, /*admit=*/false, make), nullptr);
  EXPECT_EQ(table.size(), 0U);
  Entry* a = table.see("a", s, true, make);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->sample, &s);
  // A known key needs no admission.
  EXPECT_EQ(table.see("a", s, false, make), a);
  EXPECT_EQ(table.seen("a"), a);
  EXPECT_EQ(table.seen("b"), nullptr);
  for (int i = 0; i < 2; ++i) {
    table.beginCycle();
    EXPECT_EQ(table.seen("a"), nullptr);  // kept, but not seen this cycle
    table.forget();
    EXPECT_EQ(table.size(), 1U);
  }
  table.beginCycle();
  table.forget();
  EXPECT_EQ(table.size(), 0U);
}

TEST(CgroupTable, PublishesOnlyThisCyclesEntriesInPlaceAndDropsSamples) {
  detail::CgroupTable<Entry> table;
  CgroupSample s;
  const auto make = [] { return std::make_unique<Entry>(); };
  table.beginCycle();
  table.see("a", s, true, make)->out = "a";
  table.see("b", s, true, make)->out = "b";
  std::vector<std::string> out{"old", "old", "old"};
  table.publish(out, [](const Entry& e) -> const std::string& { return e.out; });
  ASSERT_EQ(out.size(), 2U);
  EXPECT_TRUE(out[0] + out[1] == "ab" || out[0] + out[1] == "ba");
  table.beginCycle();
  table.see("b", s, false, make);
  table.publish(out, [](const Entry& e) -> const std::string& { return e.out; });
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0], "b");
  for (const auto& [key, e] : table) EXPECT_EQ(e->sample, nullptr);
}

}  // namespace
}  // namespace nodewarden::detector
