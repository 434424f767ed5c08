// DecayingHistogram: the right-sizing histogram of the Vertical Pod Autoscaler's recommender
// (autoscaler/vertical-pod-autoscaler/pkg/recommender/util: exponential buckets, sample weights
// that halve every half-life), in a fixed array so each container costs the same memory forever.
//
// What a reader gets wrong: old samples are never multiplied down. A new sample is added with
// weight 2^((t - reference) / half_life), which grows with time, so the relative weight of older
// samples shrinks without touching them; when the factor gets large every bucket is rescaled once
// and the reference moves (renormalize), which is what keeps float weights finite.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace nodewarden::detector {

struct HistogramOptions {
  double first_bucket_size = 0.01;  // upper bound of bucket 0 (cores or bytes)
  double ratio = 1.05;              // each bucket is this much wider than the one before
  double half_life_seconds = 86400;
};

class DecayingHistogram {
 public:
  static constexpr std::size_t kBuckets = 240;

  explicit DecayingHistogram(HistogramOptions options = {});

  // Adds a value observed at time t (seconds, any monotonic origin) with the given weight.
  // Negative or non-finite values are ignored.
  void add(double value, double weight, double t_seconds);
  // The smallest bucket bound below which at least `percentile` of the weight lies, or nullopt
  // when the histogram is empty. With `extra`, that value is counted as one more sample at `t`
  // without being stored (the memory peak of the interval still running).
  [[nodiscard]] std::optional<double> percentile(double percentile) const;
  [[nodiscard]] std::optional<double> percentileWith(double percentile, double extra,
                                                     double extra_weight, double t_seconds) const;
  // The decayed total weight, in units of a sample added now (t).
  [[nodiscard]] double totalWeight(double t_seconds) const;
  [[nodiscard]] bool empty() const { return total_ == 0; }

  // Bucket index of a value, and the bounds of a bucket: bucket i holds [lower(i), upper(i)).
  [[nodiscard]] std::size_t bucketOf(double value) const;
  [[nodiscard]] double bucketUpper(std::size_t bucket) const;
  [[nodiscard]] double bucketLower(std::size_t bucket) const;

 private:
  [[nodiscard]] double scaleAt(double t_seconds) const;
  void renormalize(double t_seconds);

  HistogramOptions options_;
  double log_ratio_;
  std::array<float, kBuckets> weights_{};
  double total_ = 0;
  double reference_ = 0;  // time at which a sample weighs exactly its weight
  bool has_reference_ = false;
};

}  // namespace nodewarden::detector
