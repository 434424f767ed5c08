// The right-sizing histogram against percentiles computed by hand from its bucket bounds.
#include "pipeline/detector/decaying_histogram.h"

#include <gtest/gtest.h>

#include <cmath>

namespace nodewarden::detector {
namespace {

// first bucket 1, ratio 2: buckets [0,1) [1,3) [3,7) [7,15) [15,31) ...
HistogramOptions doubling(double half_life = 1e9) { return {1.0, 2.0, half_life}; }

TEST(DecayingHistogram, BucketBoundsAreExponential) {
  DecayingHistogram h(doubling());
  EXPECT_DOUBLE_EQ(h.bucketLower(0), 0);
  EXPECT_DOUBLE_EQ(h.bucketUpper(0), 1);
  EXPECT_DOUBLE_EQ(h.bucketUpper(1), 3);
  EXPECT_DOUBLE_EQ(h.bucketUpper(2), 7);
  EXPECT_DOUBLE_EQ(h.bucketUpper(3), 15);
  EXPECT_EQ(h.bucketOf(0), 0U);
  EXPECT_EQ(h.bucketOf(0.999), 0U);
  EXPECT_EQ(h.bucketOf(1), 1U);  // a bound belongs to the bucket it opens
  EXPECT_EQ(h.bucketOf(2.999), 1U);
  EXPECT_EQ(h.bucketOf(3), 2U);
  EXPECT_EQ(h.bucketOf(10), 3U);
  EXPECT_EQ(h.bucketOf(1e300), DecayingHistogram::kBuckets - 1);
}

TEST(DecayingHistogram, PercentileIsTheUpperBoundOfTheBucketReachingIt) {
  DecayingHistogram h(doubling());
  EXPECT_FALSE(h.percentile(0.5).has_value());
  for (double v : {0.5, 2.0, 5.0, 10.0}) h.add(v, 1.0, 0);
  // Cumulative weights by bucket: [0,1):1, [1,3):2, [3,7):3, [7,15):4.
  EXPECT_DOUBLE_EQ(*h.percentile(0.25), 1);
  EXPECT_DOUBLE_EQ(*h.percentile(0.5), 3);
  EXPECT_DOUBLE_EQ(*h.percentile(0.75), 7);
  EXPECT_DOUBLE_EQ(*h.percentile(0.9), 15);
  EXPECT_DOUBLE_EQ(*h.percentile(1.0), 15);
  EXPECT_DOUBLE_EQ(h.totalWeight(0), 4);
}

TEST(DecayingHistogram, WeightsHalveEveryHalfLife) {
  DecayingHistogram h(doubling(10));
  h.add(0.5, 1.0, 0);  // weighs 1/2 relative to a sample at t=10
  h.add(10.0, 1.0, 10);
  // Total at t=10: 0.5 + 1 = 1.5; bucket [0,1) holds a third of it.
  EXPECT_NEAR(h.totalWeight(10), 1.5, 1e-9);
  EXPECT_DOUBLE_EQ(*h.percentile(0.3), 1);    // 0.3 * 1.5 = 0.45 <= 0.5
  EXPECT_DOUBLE_EQ(*h.percentile(0.34), 15);  // 0.51 > 0.5: the next non-empty bucket
  // Ten half-lives on, a new sample outweighs the old ones 1024:1.5.
  h.add(2.0, 1.0, 110);
  EXPECT_DOUBLE_EQ(*h.percentile(0.9), 3);
}

TEST(DecayingHistogram, RenormalizingKeepsPercentilesAndStaysFinite) {
  DecayingHistogram h(doubling(1));
  h.add(0.5, 1.0, 0);
  for (int t = 1; t <= 2000; ++t) h.add(t % 2 == 0 ? 2.0 : 5.0, 1.0, t);
  const double total = h.totalWeight(2000);
  EXPECT_TRUE(std::isfinite(total));
  // Geometric series: 1 + 1/2 + 1/4 + ... -> 2.
  EXPECT_NEAR(total, 2.0, 1e-3);
  // The last sample (t=2000, value 2) holds half the weight, the one before (value 5) a quarter.
  EXPECT_DOUBLE_EQ(*h.percentile(0.5), 3);
  EXPECT_DOUBLE_EQ(*h.percentile(0.7), 7);
}

TEST(DecayingHistogram, PercentileWithCountsTheRunningPeakOnce) {
  DecayingHistogram h(doubling());
  h.add(2.0, 1.0, 0);
  h.add(2.0, 1.0, 0);
  h.add(2.0, 1.0, 0);
  EXPECT_DOUBLE_EQ(*h.percentileWith(0.95, 10.0, 1.0, 0), 15);  // 3.8 of 4: the extra sample
  EXPECT_DOUBLE_EQ(*h.percentileWith(0.5, 10.0, 1.0, 0), 3);
  EXPECT_DOUBLE_EQ(*h.percentile(0.95), 3);  // nothing was stored
  DecayingHistogram empty(doubling());
  EXPECT_DOUBLE_EQ(*empty.percentileWith(0.5, 4.0, 1.0, 0), 7);
}

TEST(DecayingHistogram, IgnoresGarbage) {
  DecayingHistogram h(doubling());
  h.add(-1, 1, 0);
  h.add(NAN, 1, 0);
  h.add(1, 0, 0);
  h.add(1, 1, INFINITY);
  EXPECT_TRUE(h.empty());
}

}  // namespace
}  // namespace nodewarden::detector
