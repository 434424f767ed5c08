// The tracker's decisions over time: when an end is recorded, from which witness, once, and what
// survives a restart. Clocks are the test's.
#include "collectors/jobs/job_tracker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace nodewarden::jobs {
namespace {

using namespace std::chrono_literals;

class JobTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nodewarden-jobs-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  JobTrackerOptions options() {
    JobTrackerOptions o;
    o.status_wait = 30s;
    o.cgroup_wait = 20s;
    o.retention = 1h;
    o.state_file = dir_ / "outcomes.jsonl";
    o.now = [this] { return steady_; };
    o.wall = [this] { return wall_; };
    return o;
  }

  static PodStatus status(const char* uid, const char* phase, int exit_code = 0,
                          const char* reason = "") {
    PodStatus s;
    s.uid = uid;
    s.namespace_name = "data";
    s.name = std::string("pod-") + uid;
    s.job = "etl";
    s.phase = phase;
    ContainerEnd c;
    c.name = "main";
    if (std::string_view(phase) == "Succeeded" || std::string_view(phase) == "Failed") {
      c.terminated = true;
      c.exit_code = exit_code;
      c.reason = reason;
    }
    s.containers.push_back(c);
    return s;
  }

  static CgroupSample sample(const char* uid, const char* container_id, std::uint64_t cpu_ns,
                             std::uint64_t peak, std::uint64_t ooms) {
    CgroupSample s;
    s.pod_uid = uid;
    s.container_id = container_id;
    s.set(CgroupField::kCpuUsageNs, cpu_ns);
    s.set(CgroupField::kMemMaxUsageBytes, peak);
    s.set(CgroupField::kOomKills, ooms);
    return s;
  }

  void advance(std::chrono::seconds d) {
    steady_ += d;
    wall_ += d;
  }

  std::filesystem::path dir_;
  JobTrackerOptions::Clock::time_point steady_{};
  std::chrono::system_clock::time_point wall_{
      std::chrono::sys_days{std::chrono::year{2026} / 11 / 20}};
  SelfMetrics self_;
  ErrorReporter errors_{self_.registry()};
};

TEST_F(JobTrackerTest, ATerminalStatusIsRecordedOnceWithTheLastReadings) {
  JobTracker t(options(), errors_);
  t.observeStatus(status("u1", "Running"), "nightly");
  EXPECT_TRUE(t.wants("u1"));
  EXPECT_FALSE(t.wants("other"));
  t.observeCgroup(sample("u1", "", 1'000'000'000, 100, 0), false);
  t.observeCgroup(sample("u1", "c1", 900'000'000, 90, 0), false);
  EXPECT_TRUE(t.settle().empty());
  advance(5s);
  t.observeCgroup(sample("u1", "", 4'000'000'000, 300, 0), false);
  t.observeStatus(status("u1", "Failed", 3, "Error"), "nightly");
  const auto out = t.settle();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].outcome, Outcome::kFailed);
  EXPECT_EQ(out[0].exit_code, 3);
  EXPECT_DOUBLE_EQ(*out[0].cpu_seconds, 4.0) << "the pod level, which includes every container";
  EXPECT_EQ(out[0].peak_memory_bytes, 300U);
  EXPECT_EQ(out[0].cronjob, "nightly");
  EXPECT_FALSE(t.wants("u1"));
  // Seen again (the kubelet still lists the Failed pod): not a second outcome.
  t.observeStatus(status("u1", "Failed", 3, "Error"), "nightly");
  EXPECT_TRUE(t.settle().empty());
  EXPECT_EQ(t.recent().size(), 1U);
}

TEST_F(JobTrackerTest, ACronJobLearnedAfterTheLastStatusIsAskedAtTheDecision) {
  auto o = options();
  o.cronjob_of = [](std::string_view uid) {
    return uid == "u1" ? std::string("nightly") : std::string();
  };
  JobTracker t(o, errors_);
  t.observeStatus(status("u1", "Running"), "");
  t.observeCgroup(sample("u1", "", 1, 1, 0), false);
  t.observeStatus(status("u1", "Succeeded", 0, "Completed"), "");
  const auto out = t.settle();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].cronjob, "nightly");
}

TEST_F(JobTrackerTest, ATerminalStatusIsNeverReplacedByAStaleRunningOne) {
  JobTracker t(options(), errors_);
  t.observeCgroup(sample("u1", "", 1, 1, 0), false);               // not tracked yet: ignored
  t.observeStatus(status("u1", "Succeeded", 0, "Completed"), "");  // the API server, first
  t.observeStatus(status("u1", "Running"), "");                    // the kubelet, behind
  advance(21s);  // past cgroup_wait: no cgroup was ever read
  const auto out = t.settle();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].outcome, Outcome::kSucceeded);
  EXPECT_EQ(out[0].evidence, "status");
  EXPECT_FALSE(out[0].cpu_seconds.has_value()) << "never read: absent, not zero";
}

TEST_F(JobTrackerTest, APodShorterThanACycleWaitsForItsCgroupToBeRead) {
  JobTracker t(options(), errors_);
  t.observeStatus(status("u1", "Succeeded", 0, "Completed"), "");
  EXPECT_TRUE(t.settle().empty()) << "waits up to cgroup_wait for a collection";
  advance(10s);
  t.observeCgroup(sample("u1", "", 2'000'000'000, 50, 0), false);
  const auto out = t.settle();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_DOUBLE_EQ(*out[0].cpu_seconds, 2.0);
}

TEST_F(JobTrackerTest, AnOomKillIsCaughtWhenTheStatusNeverComes) {
  JobTracker t(options(), errors_);
  t.observeStatus(status("u1", "Running"), "");
  t.observeCgroup(sample("u1", "", 3'000'000'000, 256 << 20, 0), false);
  // cgroup v1 counts the kill in the victim's container cgroup only.
  t.observeCgroup(sample("u1", "c1", 2'900'000'000, 256 << 20, 1), false);
  t.endCycle();
  CgroupSample gone;
  gone.pod_uid = "u1";
  t.observeCgroup(gone, true);  // the pod's cgroup removed
  advance(29s);
  EXPECT_TRUE(t.settle().empty()) << "status_wait not over";
  advance(2s);
  const auto out = t.settle();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].outcome, Outcome::kFailed);
  EXPECT_EQ(out[0].reason, "OOMKilled");
  EXPECT_EQ(out[0].oom_kills, 1U);
  EXPECT_EQ(out[0].peak_memory_bytes, 256U << 20);
  EXPECT_TRUE(out[0].finished_at.has_value()) << "when the cgroup went away";
}

TEST_F(JobTrackerTest, ALateStatusWithinTheWaitStillDecides) {
  JobTracker t(options(), errors_);
  t.observeStatus(status("u1", "Running"), "");
  t.observeCgroup(sample("u1", "", 5, 5, 0), false);
  t.endCycle();
  t.endCycle();  // a cycle that did not find the pod's cgroup: gone
  advance(10s);
  EXPECT_TRUE(t.settle().empty());
  t.observeStatus(status("u1", "Failed", 3, "Error"), "");
  const auto out = t.settle();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].exit_code, 3);
  EXPECT_EQ(out[0].reason, "Error");
}

TEST_F(JobTrackerTest, NotAJobPodOrNeverRunIsNotRecorded) {
  JobTracker t(options(), errors_);
  PodStatus web = status("u2", "Succeeded", 0, "Completed");
  web.job.clear();
  t.observeStatus(web, "");
  EXPECT_FALSE(t.wants("u2"));
  t.observeStatus(status("u3", "Pending"), "");
  advance(2h);
  EXPECT_TRUE(t.settle().empty());
  EXPECT_EQ(t.tracked(), 0U) << "a pod nothing mentioned for the retention is forgotten";
}

TEST_F(JobTrackerTest, OutcomesAndPendingEventsSurviveARestart) {
  {
    JobTracker t(options(), errors_);
    for (const char* uid : {"u1", "u2"}) {
      t.observeStatus(status(uid, "Running"), "");
      t.observeCgroup(sample(uid, "", 1'000'000'000, 10, 0), false);
      t.observeStatus(status(uid, "Succeeded", 0, "Completed"), "");
    }
    ASSERT_EQ(t.settle().size(), 2U);
    ASSERT_EQ(t.pendingEvents().size(), 2U);
    t.eventDurable("u1");
    ASSERT_EQ(t.pendingEvents().size(), 1U);
  }
  JobTracker again(options(), errors_);
  ASSERT_EQ(again.recent().size(), 2U);
  ASSERT_EQ(again.pendingEvents().size(), 1U);
  EXPECT_EQ(again.pendingEvents()[0]->pod_uid, "u2");
  // The kubelet still lists both as Succeeded: neither is counted again.
  again.observeStatus(status("u1", "Succeeded", 0, "Completed"), "");
  again.observeStatus(status("u2", "Succeeded", 0, "Completed"), "");
  advance(30s);
  EXPECT_TRUE(again.settle().empty());
}

TEST_F(JobTrackerTest, RetentionAndTheCapBoundWhatIsKept) {
  auto o = options();
  o.max_recent = 3;
  JobTracker t(o, errors_);
  for (int i = 0; i < 5; ++i) {
    const std::string uid = "u" + std::to_string(i);
    t.observeStatus(status(uid.c_str(), "Succeeded", 0, "Completed"), "");
    advance(21s);
    ASSERT_EQ(t.settle().size(), 1U);
  }
  EXPECT_EQ(t.recent().size(), 3U);
  EXPECT_EQ(t.recent().front().pod_uid, "u2");
  advance(2h);
  t.settle();
  EXPECT_TRUE(t.recent().empty());
  // Forgotten after the retention: the uid would be recorded again if seen (it is not, in
  // practice: a pod's status does not outlive hours after its Job's TTL).
}

TEST_F(JobTrackerTest, AGarbledStateFileIsCountedAndSkipped) {
  std::filesystem::create_directories(dir_);
  {
    std::ofstream out(dir_ / "outcomes.jsonl");
    out << "garbage\n1 {\"not\":\"an outcome\"}\n";
  }
  JobTracker t(options(), errors_);
  EXPECT_TRUE(t.recent().empty());
  EXPECT_EQ(errors_.count("jobs", "state_file_bad_line"), 1.0);
}

}  // namespace
}  // namespace nodewarden::jobs
