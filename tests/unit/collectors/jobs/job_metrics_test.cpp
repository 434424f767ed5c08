// The nodewarden_job_* series: what an outcome adds, what a restore does not count, and aging.
#include "collectors/jobs/job_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

namespace nodewarden::jobs {
namespace {

using namespace std::chrono_literals;

std::string text(prometheus::Registry& r) {
  return prometheus::TextSerializer().Serialize(r.Collect());
}

JobOutcome outcome(const char* job, Outcome result, const char* reason, std::int64_t at_ms) {
  JobOutcome o;
  o.pod_uid = std::string("uid-") + job;
  o.namespace_name = "data";
  o.job = job;
  o.cronjob = "etl";
  o.outcome = result;
  o.reason = reason;
  o.exit_code = result == Outcome::kSucceeded ? 0 : 137;
  o.cpu_seconds = 12.5;
  o.peak_memory_bytes = 1ULL << 30;
  o.duration_seconds = 90;
  o.finished_at = Timestamp(std::chrono::seconds(at_ms / 1000));
  o.recorded_at_ms = at_ms;
  return o;
}

TEST(JobMetrics, AnOutcomeIsCountedObservedAndMadeTheLatest) {
  prometheus::Registry r;
  JobMetrics m(r, 1h);
  m.add(outcome("etl-1", Outcome::kFailed, "OOMKilled", 1'000'000));
  const std::string t = text(r);
  EXPECT_NE(t.find("nodewarden_job_pod_completions_total{cronjob=\"etl\",job_name=\"etl-1\","
                   "namespace=\"data\",outcome=\"failed\",reason=\"OOMKilled\"} 1"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("nodewarden_job_pod_duration_seconds_bucket{cronjob=\"etl\",namespace=\"data\","
                   "outcome=\"failed\",le=\"120\"} 1"),
            std::string::npos)
      << "no job label on the histogram\n"
      << t;
  EXPECT_NE(
      t.find("nodewarden_job_last_exit_code{cronjob=\"etl\",job_name=\"etl-1\",namespace=\"data\"} "
             "137"),
      std::string::npos)
      << t;
  EXPECT_NE(t.find("nodewarden_job_last_peak_memory_bytes{cronjob=\"etl\",job_name=\"etl-1\","
                   "namespace=\"data\"} 1073741824"),
            std::string::npos)
      << t;
  EXPECT_NE(
      t.find("nodewarden_job_last_outcome{cronjob=\"etl\",job_name=\"etl-1\",namespace=\"data\","
             "outcome=\"failed\",reason=\"OOMKilled\"} 1"),
      std::string::npos)
      << t;
}

TEST(JobMetrics, ANewerRunReplacesTheLatestAndARestoreIsNotCounted) {
  prometheus::Registry r;
  JobMetrics m(r, 1h);
  m.add(outcome("etl-1", Outcome::kFailed, "Error", 1'000'000));
  auto again = outcome("etl-1", Outcome::kSucceeded, "Completed", 2'000'000);
  m.add(again);
  m.restore(outcome("etl-1", Outcome::kFailed, "Error", 500'000));  // older: ignored
  const std::string t = text(r);
  EXPECT_NE(t.find("nodewarden_job_pod_completions_total{cronjob=\"etl\",job_name=\"etl-1\","
                   "namespace=\"data\",outcome=\"failed\",reason=\"Error\"} 1"),
            std::string::npos)
      << "counts stay: both runs counted once\n"
      << t;
  EXPECT_NE(t.find("nodewarden_job_pod_completions_total{cronjob=\"etl\",job_name=\"etl-1\","
                   "namespace=\"data\",outcome=\"succeeded\",reason=\"Completed\"} 1"),
            std::string::npos)
      << t;
  EXPECT_NE(
      t.find("nodewarden_job_last_outcome{cronjob=\"etl\",job_name=\"etl-1\",namespace=\"data\","
             "outcome=\"succeeded\",reason=\"Completed\"} 1"),
      std::string::npos)
      << t;
  EXPECT_EQ(
      t.find("nodewarden_job_last_outcome{cronjob=\"etl\",job_name=\"etl-1\",namespace=\"data\","
             "outcome=\"failed\""),
      std::string::npos)
      << "the previous run's outcome series is gone\n"
      << t;

  prometheus::Registry r2;
  JobMetrics restored(r2, 1h);
  restored.restore(outcome("etl-2", Outcome::kFailed, "Error", 1'000'000));
  const std::string t2 = text(r2);
  EXPECT_EQ(t2.find("nodewarden_job_pod_completions_total{"), std::string::npos) << t2;
  EXPECT_NE(t2.find("nodewarden_job_last_exit_code{cronjob=\"etl\",job_name=\"etl-2\""),
            std::string::npos)
      << t2;
}

TEST(JobMetrics, SeriesAgeOutAfterTheRetention) {
  prometheus::Registry r;
  JobMetrics m(r, 1h);
  m.add(outcome("etl-1", Outcome::kFailed, "Error", 0));
  m.add(outcome("etl-2", Outcome::kSucceeded, "Completed", 3'000'000));
  m.age(3'600'000 + 1);
  const std::string t = text(r);
  EXPECT_EQ(t.find("job_name=\"etl-1\""), std::string::npos) << t;
  EXPECT_NE(t.find("nodewarden_job_last_cpu_seconds{cronjob=\"etl\",job_name=\"etl-2\""),
            std::string::npos)
      << t;
  m.age(3'000'000 + 3'600'000 + 1);
  const std::string t2 = text(r);
  EXPECT_EQ(t2.find("job_name=\"etl-2\""), std::string::npos) << t2;
  EXPECT_EQ(t2.find("nodewarden_job_pod_duration_seconds_bucket{"), std::string::npos) << t2;
}

}  // namespace
}  // namespace nodewarden::jobs
