// Tests for Detector::retune (a config reload): the decision thresholds change, what sized the
// detector's windows and rings stays, and a k or lead the running rings cannot hold is capped.
#include <gtest/gtest.h>

#include <chrono>

#include "pipeline/detector/detector.h"

namespace nodewarden::detector {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(DetectorRetune, TakesTheThresholdsAndKeepsWhatSizedTheDetector) {
  DetectorOptions o;
  Detector d(o);
  DetectorOptions next = o;
  next.margin = 0.5;
  next.cpu_percentile = 0.8;
  next.victim_z = 4;
  next.onset_min_stall = {0.5, 0.2, 0.6};
  next.antagonist_threshold = 0.7;
  next.windows = {seconds(20), seconds(120), seconds(600)};
  next.victim_n = 5;
  next.max_containers = 10;
  next.metrics_windows = {true, true, true};
  d.retune(next);
  const auto& now = d.options();
  EXPECT_DOUBLE_EQ(now.margin, 0.5);
  EXPECT_DOUBLE_EQ(now.cpu_percentile, 0.8);
  EXPECT_DOUBLE_EQ(now.victim_z, 4);
  EXPECT_DOUBLE_EQ(now.onset_min_stall[2], 0.6);
  EXPECT_DOUBLE_EQ(now.antagonist_threshold, 0.7);
  EXPECT_EQ(now.windows, o.windows);
  EXPECT_EQ(now.victim_n, o.victim_n);
  EXPECT_EQ(now.max_containers, o.max_containers);
  EXPECT_EQ(now.metrics_windows, o.metrics_windows);
}

TEST(DetectorRetune, CapsKAndLeadAtWhatTheRunningRingsHold) {
  DetectorOptions o;  // victim_n 3, correlation_window 2m
  Detector d(o);
  DetectorOptions next = o;
  next.victim_k = 5;
  next.episode_lead = std::chrono::minutes(5);
  d.retune(next);
  EXPECT_EQ(d.options().victim_k, 3);
  EXPECT_EQ(d.options().episode_lead, milliseconds(std::chrono::minutes(2)));
}

}  // namespace
}  // namespace nodewarden::detector
