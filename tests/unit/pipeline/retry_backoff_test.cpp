// The one retry policy (pipeline/retry_backoff.h): the wait a caller that keeps its own backoff
// gets is the same equal jitter as backoffDelay(), never below half the backoff (no busy loop
// against a server that fails at once), never above it, and never shorter than Retry-After.
#include "pipeline/retry_backoff.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

namespace nodewarden {
namespace {

using std::chrono::milliseconds;

TEST(RetryBackoff, AWaitIsEqualJitterOfTheBackoff) {
  std::mt19937_64 rng(7);
  milliseconds lowest = milliseconds::max();
  milliseconds highest{0};
  for (int i = 0; i < 2000; ++i) {
    const milliseconds wait = jitteredWait(milliseconds(1000), milliseconds(0), rng);
    lowest = std::min(lowest, wait);
    highest = std::max(highest, wait);
  }
  EXPECT_GE(lowest, milliseconds(500));  // full jitter would go down to 0
  EXPECT_LT(lowest, milliseconds(550));  // and the lower half is reached
  EXPECT_LE(highest, milliseconds(1000));
  EXPECT_GT(highest, milliseconds(950));
}

TEST(RetryBackoff, RetryAfterIsAFloor) {
  std::mt19937_64 rng(7);
  EXPECT_EQ(jitteredWait(milliseconds(100), milliseconds(5000), rng), milliseconds(5000));
}

TEST(RetryBackoff, TheDrawnDelayDoublesUpToTheCap) {
  std::mt19937_64 rng(7);
  for (unsigned failures = 1; failures < 12; ++failures) {
    const milliseconds cap = std::min(milliseconds(100) * (1 << (failures - 1)), milliseconds(800));
    const milliseconds wait = backoffDelay(failures, milliseconds(100), milliseconds(800), rng);
    EXPECT_GE(wait, cap / 2) << failures;
    EXPECT_LE(wait, cap) << failures;
  }
}

}  // namespace
}  // namespace nodewarden
