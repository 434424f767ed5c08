// PlacementDecision with a fake clock: the holds, min_taint_duration, and no flapping when the
// score oscillates around either threshold.
#include "exporters/kube/placement_decision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace nodewarden::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Change = PlacementDecision::Change;
using Clock = PlacementDecision::Clock;

constexpr auto kStep = seconds(5);  // the collection interval

PlacementThresholds thresholds() {
  return {.on_score = 0.3,
          .off_score = 0.1,
          .on_hold = seconds(30),
          .off_hold = seconds(60),
          .min_taint_duration = seconds(300)};
}

// Feeds `score` every kStep from `t` for `span`; returns the time after the last reading.
Clock::time_point feed(PlacementDecision& d, double score, Clock::time_point t,
                       Clock::duration span, int* transitions = nullptr) {
  const auto end = t + span;
  for (; t < end; t += kStep) {
    if (d.observe(score, t) != Change::kNone && transitions != nullptr) ++*transitions;
  }
  return t;
}

TEST(PlacementDecisionTest, TurnsOnOnlyAfterTheScoreHeldForOnHold) {
  PlacementDecision d(thresholds());
  const Clock::time_point t0{};
  for (int i = 0; i < 6; ++i) {  // 0 s .. 25 s
    EXPECT_EQ(d.observe(0.5, t0 + i * kStep), Change::kNone) << i;
  }
  EXPECT_FALSE(d.high());
  EXPECT_EQ(d.observe(0.5, t0 + seconds(30)), Change::kOn);
  EXPECT_TRUE(d.high());
  EXPECT_EQ(d.observe(0.5, t0 + seconds(35)), Change::kNone);
}

TEST(PlacementDecisionTest, OneReadingUnderOnScoreRestartsTheOnHold) {
  PlacementDecision d(thresholds());
  Clock::time_point t{};
  t = feed(d, 0.5, t, seconds(25));
  EXPECT_EQ(d.observe(0.29, t), Change::kNone);
  t += kStep;
  t = feed(d, 0.5, t, seconds(30));  // 30 s of readings span only 25 s since the restart
  EXPECT_FALSE(d.high());
  EXPECT_EQ(d.observe(0.5, t), Change::kOn);
}

TEST(PlacementDecisionTest, ScoreOscillatingAroundEitherThresholdNeverFlaps) {
  PlacementDecision d(thresholds());
  Clock::time_point t{};
  int transitions = 0;
  // Around on_score for 10 minutes: never held for 30 s.
  for (int i = 0; i < 120; ++i, t += kStep) {
    if (d.observe(i % 2 == 0 ? 0.31 : 0.29, t) != Change::kNone) ++transitions;
  }
  EXPECT_EQ(transitions, 0);
  EXPECT_FALSE(d.high());

  t = feed(d, 0.8, t, seconds(35), &transitions);
  ASSERT_TRUE(d.high());
  ASSERT_EQ(transitions, 1);
  // Around off_score for an hour: never under it for 60 s, so it stays on.
  for (int i = 0; i < 720; ++i, t += kStep) {
    if (d.observe(i % 2 == 0 ? 0.09 : 0.11, t) != Change::kNone) ++transitions;
  }
  EXPECT_EQ(transitions, 1);
  EXPECT_TRUE(d.high());
  // Between the thresholds holds whatever the state is, in both directions.
  t = feed(d, 0.2, t, seconds(3600), &transitions);
  EXPECT_TRUE(d.high());
  EXPECT_EQ(transitions, 1);
}

TEST(PlacementDecisionTest, TurnsOffAfterOffHoldOnceMinTaintDurationPassed) {
  PlacementDecision d(thresholds());
  Clock::time_point t{};
  t = feed(d, 0.5, t, seconds(35));
  ASSERT_TRUE(d.high());
  const Clock::time_point on_at = t - kStep;  // the reading that turned it on
  // Low at once: off_hold (60 s) passes long before min_taint_duration (300 s).
  int transitions = 0;
  while (t < on_at + seconds(300)) {
    if (d.observe(0.0, t) != Change::kNone) ++transitions;
    t += kStep;
  }
  EXPECT_EQ(transitions, 0);
  EXPECT_TRUE(d.high());
  EXPECT_EQ(d.observe(0.0, on_at + seconds(300)), Change::kOff);
  EXPECT_FALSE(d.high());
}

TEST(PlacementDecisionTest, OffHoldIsMeasuredAfterMinTaintDurationToo) {
  PlacementDecision d(thresholds());
  Clock::time_point t{};
  t = feed(d, 0.5, t, seconds(35));
  ASSERT_TRUE(d.high());
  const Clock::time_point on_at = t - kStep;
  t = feed(d, 0.5, t, on_at + seconds(290) - t);  // high until 10 s before min_taint_duration
  // Now low: min_taint_duration passes after 10 s, off_hold only after 60 s.
  EXPECT_EQ(d.observe(0.0, t), Change::kNone);
  EXPECT_EQ(d.observe(0.0, t + seconds(55)), Change::kNone);
  EXPECT_EQ(d.observe(0.0, t + seconds(60)), Change::kOff);
}

TEST(PlacementDecisionTest, AMissingScoreCountsForNeitherSide) {
  PlacementDecision d(thresholds());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Clock::time_point t{};
  t = feed(d, 0.5, t, seconds(25));
  EXPECT_EQ(d.observe(nan, t), Change::kNone);  // restarts the on hold
  t += kStep;
  EXPECT_EQ(d.observe(0.5, t + seconds(25)), Change::kNone);
  EXPECT_FALSE(d.high());
}

TEST(PlacementDecisionTest, ZeroHoldsActOnTheFirstReading) {
  PlacementDecision d({.on_score = 0.3,
                       .off_score = 0.1,
                       .on_hold = milliseconds(0),
                       .off_hold = milliseconds(0),
                       .min_taint_duration = milliseconds(0)});
  const Clock::time_point t{};
  EXPECT_EQ(d.observe(0.3, t), Change::kOn);
  EXPECT_EQ(d.observe(0.1, t + kStep), Change::kNone);  // not under off_score
  EXPECT_EQ(d.observe(0.0, t + 2 * kStep), Change::kOff);
}

TEST(PlacementDecisionTest, AdoptedTaintKeepsMinTaintDurationFromTheAdoption) {
  PlacementDecision d(thresholds());
  const Clock::time_point t0 = Clock::time_point{} + seconds(1000);
  d.adopt(true, t0);
  EXPECT_TRUE(d.high());
  Clock::time_point t = t0;
  int transitions = 0;
  t = feed(d, 0.0, t, seconds(295), &transitions);
  EXPECT_EQ(transitions, 0);
  EXPECT_EQ(d.observe(0.0, t0 + seconds(300)), Change::kOff);
}

}  // namespace
}  // namespace nodewarden::kube
