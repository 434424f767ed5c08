// Tests for agent/config_reload and changedConfigKeys: which changed keys a SIGHUP applies, which
// wait for a restart, and that a combination the running config cannot take is refused whole.
#include "agent/config_reload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/config.h"

namespace nodewarden {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Config parsed(const std::string& yaml) {
  auto c = parseConfig(yaml, "reload.yaml");
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message());
  return c.value_or(Config{});
}

TEST(ChangedConfigKeys, NamesEveryChangedLeafByItsPathInTheFile) {
  const Config a;
  EXPECT_THAT(changedConfigKeys(a, a), IsEmpty());
  const Config b = parsed(
      "listen: 127.0.0.1:1\n"
      "log_level: debug\n"
      "spool:\n  max_bytes: 1GiB\n"
      "detector:\n  noisy_neighbor:\n    onset_min_stall:\n      io: 0.5\n"
      "kubernetes:\n  pod_labels: [team]\n");
  EXPECT_THAT(changedConfigKeys(a, b),
              ElementsAre("listen", "log_level", "spool.max_bytes", "kubernetes.pod_labels",
                          "detector.noisy_neighbor.onset_min_stall.io"));
}

TEST(PlanReload, AppliesLiveKeysAndListsTheRestAsNeedingARestart) {
  const Config running;
  const Config next = parsed(
      "listen: 127.0.0.1:1\n"
      "interval: 30s\n"
      "log_level: warn\n"
      "detector:\n  recommendation:\n    margin: 0.5\n"
      "  noisy_neighbor:\n    victim_z: 4\n"
      "placement:\n  on_score: 0.5\n");
  const auto plan = planReload(running, next);
  ASSERT_TRUE(plan.has_value()) << plan.error().message();
  EXPECT_THAT(plan->applied, ElementsAre("log_level", "detector.recommendation.margin",
                                         "detector.noisy_neighbor.victim_z", "placement.on_score"));
  EXPECT_THAT(plan->needs_restart, ElementsAre("listen", "interval"));
  EXPECT_EQ(plan->result.log_level, "warn");
  EXPECT_DOUBLE_EQ(plan->result.detector.margin, 0.5);
  EXPECT_DOUBLE_EQ(plan->result.detector.victim_z, 4);
  EXPECT_DOUBLE_EQ(plan->result.placement.on_score, 0.5);
  EXPECT_EQ(plan->result.listen, running.listen) << "kept until the restart";
  EXPECT_EQ(plan->result.interval, running.interval);
}

TEST(PlanReload, NothingChangedIsAnEmptyPlan) {
  const auto plan = planReload(Config{}, Config{});
  ASSERT_TRUE(plan.has_value());
  EXPECT_THAT(plan->applied, IsEmpty());
  EXPECT_THAT(plan->needs_restart, IsEmpty());
}

TEST(PlanReload, RefusesALiveValueThatDoesNotFitTheRunningOnes) {
  // victim_k 5 is valid beside the file's victim_n 6, but victim_n needs a restart and the
  // running one is 3.
  const Config next = parsed("detector:\n  noisy_neighbor:\n    victim_k: 5\n    victim_n: 6\n");
  const auto plan = planReload(Config{}, next);
  ASSERT_FALSE(plan.has_value());
  EXPECT_EQ(plan.error().field, "detector.noisy_neighbor.victim_k");
  EXPECT_THAT(plan.error().message(), HasSubstr("restart"));
}

TEST(ApplyLiveConfigKeys, WritesOnlyTheNamedLiveFields) {
  Config to;
  Config from = parsed(
      "log_level: error\nlisten: 127.0.0.1:1\ndetector:\n  recommendation:\n"
      "    margin: 0.3\n");
  applyLiveConfigKeys(to, from, {"log_level", "listen"});
  EXPECT_EQ(to.log_level, "error");
  EXPECT_EQ(to.listen, Config{}.listen) << "not a live key";
  EXPECT_DOUBLE_EQ(to.detector.margin, Config{}.detector.margin) << "not named";
}

TEST(IsLiveConfigKey, EveryLiveKeyIsAKeyOfTheFile) {
  // A live key that the schema does not have (a typo, a renamed key) would never apply.
  Config a;
  Config b = parsed(
      "log_level: debug\n"
      "detector:\n  recommendation:\n    cpu_percentile: 0.5\n    memory_percentile: 0.5\n"
      "    margin: 0.5\n    memory_peak_interval: 2h\n"
      "  noisy_neighbor:\n    baseline_half_life: 5m\n    victim_z: 4\n"
      "    victim_min_stall: 0.2\n    memory_victim_min_stall: 0.2\n"
      "    self_throttle_ratio: 0.3\n    victim_k: 3\n"
      "    onset_min_stall: {cpu: 0.4, memory: 0.2, io: 0.4}\n    episode_lead: 20s\n"
      "    antagonist_threshold: 0.7\n"
      "placement:\n  on_score: 0.5\n  off_score: 0.2\n  on_hold: 1m\n  off_hold: 3m\n"
      "  min_taint_duration: 10m\n");
  const auto changed = changedConfigKeys(a, b);
  EXPECT_EQ(changed.size(), 21U);
  for (const auto& key : changed) EXPECT_TRUE(isLiveConfigKey(key)) << key;
  const auto plan = planReload(a, b);
  ASSERT_TRUE(plan.has_value()) << plan.error().message();
  EXPECT_THAT(plan->needs_restart, IsEmpty());
  EXPECT_TRUE(changedConfigKeys(plan->result, b).empty()) << "every one was applied";
}

}  // namespace
}  // namespace nodewarden
