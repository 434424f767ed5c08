// How a Job pod's end is decided from its status (kubelet PodList and API server fixtures) and its
// cgroup evidence, and the outcome's JSON.
#include "collectors/jobs/job_outcome.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "collectors/pods/apiserver_pods.h"
#include "collectors/pods/kubelet_pods.h"

namespace nodewarden::jobs {
namespace {

std::string slurp(const std::string& name) {
  std::ifstream in(std::string(NODEWARDEN_FIXTURES) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, PodStatus> kubeletStatuses(const std::string& file) {
  auto list = pods::parsePodList(slurp(file));
  EXPECT_TRUE(list.has_value());
  std::map<std::string, PodStatus> out;
  if (!list) return out;
  for (const auto& p : list->pods) out[p.name] = fromPod(p);
  return out;
}

Timestamp at(const char* rfc3339) { return *pods::parseRfc3339(rfc3339); }

JobOutcome decideFromStatus(const PodStatus& s, CgroupEvidence e = {}) {
  return decide(&s, e, s.uid, "", std::nullopt, std::nullopt);
}

TEST(JobOutcome, EachReasonOfTheKubeletFixtures) {
  auto pods = kubeletStatuses("kubelet/podlist_jobs.json");
  ASSERT_EQ(pods.size(), 6U);

  const auto ok = decideFromStatus(pods.at("nightly-report-28504320-7xk2p"));
  EXPECT_EQ(ok.outcome, Outcome::kSucceeded);
  EXPECT_EQ(ok.reason, "Completed");
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.job, "nightly-report-28504320");
  EXPECT_EQ(ok.namespace_name, "analytics");
  EXPECT_EQ(ok.container, "report");
  EXPECT_EQ(ok.evidence, "status");

  const auto exit3 = decideFromStatus(pods.at("etl-load-q8w4n"));
  EXPECT_EQ(exit3.outcome, Outcome::kFailed);
  EXPECT_EQ(exit3.reason, "Error");
  EXPECT_EQ(exit3.exit_code, 3);
  EXPECT_EQ(exit3.signal, 0);

  const auto oom = decideFromStatus(pods.at("spark-shuffle-5vbtl"));
  EXPECT_EQ(oom.outcome, Outcome::kFailed);
  EXPECT_EQ(oom.reason, "OOMKilled");
  EXPECT_EQ(oom.exit_code, 137);
  EXPECT_EQ(oom.signal, 9);

  const auto deadline = decideFromStatus(pods.at("backfill-9dj2m"));
  EXPECT_EQ(deadline.outcome, Outcome::kFailed);
  EXPECT_EQ(deadline.reason, "DeadlineExceeded") << "the pod's reason wins over the container's";
  EXPECT_EQ(deadline.exit_code, 143);
  EXPECT_EQ(deadline.signal, 15);

  const auto start = decideFromStatus(pods.at("schema-migrate-l4k7s"));
  EXPECT_EQ(start.reason, "StartError");
  EXPECT_EQ(start.exit_code, 128);

  EXPECT_FALSE(isTerminal(pods.at("db-seed-2xq9d"))) << "Running with init containers done";
}

TEST(JobOutcome, EvictionInitFailureRestartsSigkillAndUnknownPhases) {
  auto pods = kubeletStatuses("kubelet/podlist_job_outcomes.json");
  ASSERT_EQ(pods.size(), 6U);

  const auto evicted = decideFromStatus(pods.at("ingest-7pq2x"));
  EXPECT_EQ(evicted.outcome, Outcome::kFailed);
  EXPECT_EQ(evicted.reason, "Evicted");

  const auto init = decideFromStatus(pods.at("warehouse-sync-n5m8c"));
  EXPECT_EQ(init.outcome, Outcome::kFailed);
  EXPECT_EQ(init.container, "fetch-credentials") << "the init container that failed";
  EXPECT_EQ(init.exit_code, 1);
  EXPECT_EQ(init.reason, "Error");

  const auto restarted = decideFromStatus(pods.at("flaky-export-28845120-q9z7d"));
  EXPECT_EQ(restarted.outcome, Outcome::kSucceeded);
  EXPECT_EQ(restarted.restarts, 2);
  EXPECT_EQ(restarted.exit_code, 0);
  ASSERT_TRUE(restarted.duration_seconds.has_value());
  // startTime 10:00:00 to the last finish 10:03:30.
  EXPECT_DOUBLE_EQ(*restarted.duration_seconds, 210.0);

  const auto killed = decideFromStatus(pods.at("reindex-j2k4l"));
  EXPECT_EQ(killed.reason, "Error") << "137 without an OOM kill is not guessed to be OOM";
  EXPECT_EQ(killed.signal, 9);

  EXPECT_FALSE(isTerminal(pods.at("future-phase-x1y2z")));
  EXPECT_EQ(pods.at("labelled-only-abcde").job, "labelled-only");
}

TEST(JobOutcome, TheCgroupsOomCounterMakesAFailureAnOomKill) {
  auto pods = kubeletStatuses("kubelet/podlist_jobs.json");
  CgroupEvidence e;
  e.seen = true;
  e.oom_kills = 1;
  e.cpu_ns = 2'500'000'000;
  e.peak_memory_bytes = 256ULL << 20;
  e.memory_limit_bytes = 256ULL << 20;
  // The status says Error, exit 3; the kernel says a process was OOM-killed.
  const auto o = decideFromStatus(pods.at("etl-load-q8w4n"), e);
  EXPECT_EQ(o.reason, "OOMKilled");
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_EQ(o.oom_kills, 1U);
  EXPECT_DOUBLE_EQ(*o.cpu_seconds, 2.5);
  EXPECT_EQ(o.peak_memory_bytes, 256ULL << 20);
  EXPECT_EQ(o.evidence, "status+cgroup");
  // A pod-level reason still wins, and a success stays a success.
  EXPECT_EQ(decideFromStatus(pods.at("backfill-9dj2m"), e).reason, "DeadlineExceeded");
  const auto ok = decideFromStatus(pods.at("nightly-report-28504320-7xk2p"), e);
  EXPECT_EQ(ok.outcome, Outcome::kSucceeded);
  EXPECT_EQ(ok.oom_kills, 1U);
}

TEST(JobOutcome, WithoutAFinalStatusTheCgroupDecides) {
  auto pods = kubeletStatuses("kubelet/podlist_jobs.json");
  CgroupEvidence oom;
  oom.seen = true;
  oom.oom_kills = 2;
  const auto running = pods.at("db-seed-2xq9d");  // last status: Running
  const auto end = at("2026-11-20T10:30:00Z");
  const auto o = decide(&running, oom, running.uid, "", end, std::nullopt);
  EXPECT_EQ(o.outcome, Outcome::kFailed);
  EXPECT_EQ(o.reason, "OOMKilled");
  EXPECT_EQ(o.finished_at, end);
  EXPECT_FALSE(o.exit_code.has_value()) << "no status said it";

  CgroupEvidence quiet;
  quiet.seen = true;
  const auto none = decide(nullptr, quiet, "uid-1", "nightly", end, at("2026-11-20T10:29:00Z"));
  EXPECT_EQ(none.outcome, Outcome::kUnknown);
  EXPECT_EQ(none.reason, "Unknown");
  EXPECT_EQ(none.evidence, "cgroup");
  EXPECT_EQ(none.cronjob, "nightly");
  EXPECT_DOUBLE_EQ(*none.duration_seconds, 60.0);
}

TEST(JobOutcome, ApiServerPodsDecideAlike) {
  auto pod = pods::parseApiPod(slurp("apiserver/pod_job_failed.json"));
  ASSERT_TRUE(pod.has_value());
  const PodStatus s = fromPod(*pod);
  ASSERT_TRUE(isTerminal(s));
  const auto o = decideFromStatus(s);
  EXPECT_EQ(o.outcome, Outcome::kFailed);
  EXPECT_FALSE(o.job.empty());
  EXPECT_FALSE(o.reason.empty());
  ASSERT_TRUE(o.exit_code.has_value());
  EXPECT_NE(*o.exit_code, 0);
}

TEST(JobOutcome, JsonRoundTripsAndRejectsGarbage) {
  JobOutcome o;
  o.pod_uid = "u-1";
  o.namespace_name = "data";
  o.job = "etl-28845120";
  o.cronjob = "etl";
  o.pod = "etl-28845120-abcde";
  o.container = "main";
  o.outcome = Outcome::kFailed;
  o.reason = "OOMKilled";
  o.exit_code = 137;
  o.signal = 9;
  o.started_at = at("2026-11-20T10:00:00Z");
  o.finished_at = at("2026-11-20T10:01:30Z");
  o.duration_seconds = 90;
  o.cpu_seconds = 12.25;
  o.peak_memory_bytes = 1ULL << 30;
  o.oom_kills = 1;
  o.evidence = "status+cgroup";
  o.recorded_at_ms = 1'795'000'000'000;
  const std::string j = toJson(o);
  EXPECT_NE(j.find("\"started_at\":\"2026-11-20T10:00:00Z\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"memory_limit_bytes\":null"), std::string::npos) << j;
  EXPECT_EQ(fromJson(j), o);
  EXPECT_FALSE(fromJson("not json").has_value());
  EXPECT_FALSE(fromJson("{}").has_value());
  EXPECT_FALSE(fromJson(R"({"pod_uid":"u","namespace":1})").has_value());
  EXPECT_FALSE(fromJson(R"({"pod_uid":"u","namespace":"n","job":"j","cronjob":"","pod":"p",)"
                        R"("container":"","outcome":"failed","reason":"r","evidence":"status",)"
                        R"("started_at":"yesterday"})")
                   .has_value());
}

TEST(JobOutcome, LongReasonsAreCut) {
  pods::PodInfo info;
  info.uid = "u";
  info.name = "p";
  info.namespace_name = "n";
  info.owner = {"Job", "j"};
  info.phase = pods::PodPhase::kFailed;
  info.reason = std::string(500, 'x');
  const auto o = decideFromStatus(fromPod(info));
  EXPECT_EQ(o.reason.size(), kMaxReasonBytes);
}

}  // namespace
}  // namespace nodewarden::jobs
