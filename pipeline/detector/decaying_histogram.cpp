#include "pipeline/detector/decaying_histogram.h"

#include <algorithm>
#include <cmath>

namespace nodewarden::detector {
namespace {
// Rescale once a new sample would weigh more than 2^kMaxExponent: far inside float's range, and
// far enough apart that rescaling (every 40 half-lives) costs nothing.
constexpr double kMaxExponent = 40;
}  // namespace

DecayingHistogram::DecayingHistogram(HistogramOptions options)
    : options_(options), log_ratio_(std::log(options.ratio)) {}

// Bucket i spans [first * (ratio^i - 1) / (ratio - 1), first * (ratio^(i+1) - 1) / (ratio - 1)):
// bucket 0 is [0, first), and each next bucket is `ratio` times wider (VPA's
// NewExponentialHistogramOptions).
double DecayingHistogram::bucketLower(std::size_t bucket) const {
  if (bucket == 0) return 0;
  return options_.first_bucket_size * (std::pow(options_.ratio, static_cast<double>(bucket)) - 1) /
         (options_.ratio - 1);
}

double DecayingHistogram::bucketUpper(std::size_t bucket) const { return bucketLower(bucket + 1); }

std::size_t DecayingHistogram::bucketOf(double value) const {
  if (!(value > 0)) return 0;
  const double x = value * (options_.ratio - 1) / options_.first_bucket_size + 1;
  const double i = std::floor(std::log(x) / log_ratio_);
  if (!(i >= 0)) return 0;
  auto bucket = static_cast<std::size_t>(std::min(i, static_cast<double>(kBuckets - 1)));
  // log() rounding can put a value on a bound one bucket off; settle it by the bounds themselves.
  if (bucket + 1 < kBuckets && value >= bucketUpper(bucket)) ++bucket;
  if (bucket > 0 && value < bucketLower(bucket)) --bucket;
  return bucket;
}

double DecayingHistogram::scaleAt(double t_seconds) const {
  return std::exp2((t_seconds - reference_) / options_.half_life_seconds);
}

void DecayingHistogram::renormalize(double t_seconds) {
  const double factor = 1 / scaleAt(t_seconds);
  total_ = 0;
  for (auto& w : weights_) {
    w = static_cast<float>(static_cast<double>(w) * factor);
    if (w < 1e-30F) w = 0;
    total_ += static_cast<double>(w);
  }
  reference_ = t_seconds;
}

void DecayingHistogram::add(double value, double weight, double t_seconds) {
  if (!std::isfinite(value) || value < 0 || !(weight > 0) || !std::isfinite(t_seconds)) return;
  if (!has_reference_) {
    reference_ = t_seconds;
    has_reference_ = true;
  }
  if ((t_seconds - reference_) / options_.half_life_seconds > kMaxExponent) renormalize(t_seconds);
  const double w = weight * scaleAt(t_seconds);
  weights_[bucketOf(value)] += static_cast<float>(w);
  total_ += w;
}

std::optional<double> DecayingHistogram::percentile(double p) const {
  if (total_ <= 0) return std::nullopt;
  const double target = std::clamp(p, 0.0, 1.0) * total_;
  double sum = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    sum += static_cast<double>(weights_[i]);
    if (sum >= target && weights_[i] > 0) return bucketUpper(i);
  }
  // Float sums can fall short of total_ by rounding: the highest non-empty bucket answers.
  for (std::size_t i = kBuckets; i-- > 0;) {
    if (weights_[i] > 0) return bucketUpper(i);
  }
  return std::nullopt;
}

std::optional<double> DecayingHistogram::percentileWith(double p, double extra, double extra_weight,
                                                        double t_seconds) const {
  if (!std::isfinite(extra) || extra < 0 || !(extra_weight > 0)) return percentile(p);
  const double w = extra_weight * (has_reference_ ? scaleAt(t_seconds) : 1.0);
  const std::size_t extra_bucket = bucketOf(extra);
  const double total = total_ + w;
  const double target = std::clamp(p, 0.0, 1.0) * total;
  double sum = 0;
  std::optional<double> last;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    const double here = static_cast<double>(weights_[i]) + (i == extra_bucket ? w : 0.0);
    if (here <= 0) continue;
    sum += here;
    last = bucketUpper(i);
    if (sum >= target) return last;
  }
  return last;
}

double DecayingHistogram::totalWeight(double t_seconds) const {
  if (!has_reference_) return 0;
  return total_ / scaleAt(t_seconds);
}

}  // namespace nodewarden::detector
