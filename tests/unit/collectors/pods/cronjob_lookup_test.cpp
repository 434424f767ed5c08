// ApiServerCronJobLookup against FakeApiServer's batch/v1 Jobs on 127.0.0.1: what it answers
// before and after the API server does, caching and its time limits (on an injected clock),
// failures, a 403 logged once with the RBAC it needs, a full queue, the bounded cache, a held
// request that must not hold the caller, and the ApiServerPodWatcher answering a Job pod's
// CronJob through it while its watch is open. parseJobOwner on Job JSON first.
//
// What a reader gets wrong: the lookup's clock is injected, so "an hour later" is a call, not a
// sleep; the network is real, so every wait for the worker is bounded (waitIdle, kWait).
#include "collectors/pods/cronjob_lookup.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "collectors/pods/apiserver_pods.h"
#include "tests/fakes/fake_apiserver.h"

namespace nodewarden::pods {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using testing::FakeApiRequest;
using testing::FakeApiServer;
using State = CronJobAnswer::State;
using namespace std::chrono_literals;

constexpr milliseconds kWait{5000};

// A batch/v1 Job as the API server returns it, controlled by `controller_kind`/`controller`
// (none when empty).
json job(const std::string& ns, const std::string& name, const std::string& controller_kind = "",
         const std::string& controller = "") {
  json j = {{"apiVersion", "batch/v1"},
            {"kind", "Job"},
            {"metadata", {{"namespace", ns}, {"name", name}, {"uid", name + "-uid"}}},
            {"spec", {{"completions", 1}}}};
  if (!controller_kind.empty()) {
    j["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "batch/v1"},
                                                     {"kind", controller_kind},
                                                     {"name", controller},
                                                     {"uid", controller + "-uid"},
                                                     {"controller", true},
                                                     {"blockOwnerDeletion", true}}});
  }
  return j;
}

std::vector<FakeApiRequest> jobRequests(const FakeApiServer& fake) {
  std::vector<FakeApiRequest> out;
  for (const auto& r : fake.requests()) {
    if (r.path.starts_with("/apis/batch/")) out.push_back(r);
  }
  return out;
}

// --- parseJobOwner ---------------------------------------------------------------------------

TEST(ParseJobOwner, TheControllingCronJob) {
  const auto answer = parseJobOwner(job("data", "nightly-28504320", "CronJob", "nightly").dump());
  ASSERT_TRUE(answer.has_value()) << answer.error();
  EXPECT_EQ(*answer, (CronJobAnswer{State::kCronJob, "nightly"}));
}

TEST(ParseJobOwner, NoControllingCronJobIsNone) {
  EXPECT_EQ(parseJobOwner(job("data", "etl").dump()).value(), (CronJobAnswer{State::kNone, ""}));
  EXPECT_EQ(parseJobOwner(job("data", "etl", "Workflow", "argo-1").dump()).value(),
            (CronJobAnswer{State::kNone, ""}));
  // A CronJob that is an owner but not the controller does not count.
  json j = job("data", "etl", "CronJob", "nightly");
  j["metadata"]["ownerReferences"][0]["controller"] = false;
  EXPECT_EQ(parseJobOwner(j.dump()).value(), (CronJobAnswer{State::kNone, ""}));
  j["metadata"]["ownerReferences"][0].erase("controller");
  EXPECT_EQ(parseJobOwner(j.dump()).value(), (CronJobAnswer{State::kNone, ""}));
  j["metadata"]["ownerReferences"] = nullptr;
  EXPECT_EQ(parseJobOwner(j.dump()).value(), (CronJobAnswer{State::kNone, ""}));
}

TEST(ParseJobOwner, WhatIsNoJobIsAnError) {
  EXPECT_EQ(parseJobOwner("not json").error(), "not JSON");
  EXPECT_EQ(parseJobOwner("[1]").error(), "not a JSON object");
  EXPECT_EQ(parseJobOwner(R"({"kind":"Pod","metadata":{}})").error(), "kind is not Job");
  EXPECT_EQ(parseJobOwner(R"({"kind":"Job"})").error(), "no metadata object");
  EXPECT_EQ(parseJobOwner(R"({"kind":"Job","metadata":{"ownerReferences":{}}})").error(),
            "ownerReferences is not a list");
  EXPECT_EQ(parseJobOwner(R"({"kind":"Job","metadata":{"ownerReferences":[7]}})").error(),
            "an ownerReference is no object");
  EXPECT_EQ(parseJobOwner(R"({"kind":"Job","metadata":{"ownerReferences":[{"controller":true}]}})")
                .error(),
            "the controller reference has no kind or name");
}

// --- against the fake API server -------------------------------------------------------------

class CronJobLookupTest : public ::testing::Test {
 protected:
  using Clock = ApiServerCronJobLookup::Clock;

  void SetUp() override {
    auto fake = FakeApiServer::start();
    ASSERT_TRUE(fake.has_value()) << fake.error();
    fake_ = std::move(*fake);
    dir_ = fs::temp_directory_path() / ("nw-cronjob-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "token") << "job-reader-token\n";
    options_.url = fake_->url() + "/";  // a trailing slash is dropped
    options_.token_file = (dir_ / "token").string();
    options_.timeout = 2s;
    options_.now = [this] { return Clock::time_point{} + 1h + Clock::duration(clock_.load()); };
    fake_->putJob(job("analytics", "nightly-report-28504320", "CronJob", "nightly-report"));
    fake_->putJob(job("data", "etl-load"));
  }
  void TearDown() override {
    lookup_.reset();
    fs::remove_all(dir_);
  }

  ApiServerCronJobLookup& make() {
    auto created = ApiServerCronJobLookup::create(options_, errors_);
    EXPECT_TRUE(created.has_value()) << created.error();
    lookup_ = std::move(*created);
    return *lookup_;
  }
  // Asks, waits for the worker, asks again: the answer once the API server was heard.
  CronJobAnswer settled(std::string_view ns, std::string_view name) {
    (void)lookup_->cronJobOf(ns, name);
    EXPECT_TRUE(lookup_->waitIdle(kWait));
    return lookup_->cronJobOf(ns, name);
  }
  void advance(Clock::duration by) { clock_ += by.count(); }
  double errorCount(std::string_view reason) const { return errors_.count("pods", reason); }

  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::atomic<Clock::rep> clock_{0};
  std::unique_ptr<FakeApiServer> fake_;
  CronJobLookupOptions options_;
  std::unique_ptr<ApiServerCronJobLookup> lookup_;
  fs::path dir_;
};

TEST_F(CronJobLookupTest, AnswersPendingThenWhatTheApiServerSays) {
  ApiServerCronJobLookup& l = make();
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320").state, State::kPending);
  ASSERT_TRUE(l.waitIdle(kWait));
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320"),
            (CronJobAnswer{State::kCronJob, "nightly-report"}));
  EXPECT_EQ(settled("data", "etl-load"), (CronJobAnswer{State::kNone, ""}));
  // Gone (404): the naming rule is to answer, and that is no failure.
  EXPECT_EQ(settled("data", "backfill-28504320"), (CronJobAnswer{State::kUnavailable, ""}));
  EXPECT_EQ(errorCount("apiserver_job_lookup_http_status"), 0.0);

  const auto requests = jobRequests(*fake_);
  ASSERT_EQ(requests.size(), 3U);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, "/apis/batch/v1/namespaces/analytics/jobs/nightly-report-28504320");
  EXPECT_EQ(requests[0].authorization, "Bearer job-reader-token");
  EXPECT_EQ(requests[2].status, 404);
  const auto stats = l.stats();
  EXPECT_EQ(stats.requests, 3U);
  EXPECT_EQ(stats.cronjobs, 1U);
  EXPECT_EQ(stats.none, 1U);
  EXPECT_EQ(stats.not_found, 1U);
  EXPECT_EQ(stats.failures, 0U);
}

TEST_F(CronJobLookupTest, AnswersAreCachedUntilTheirTimeThenAskedAgainWhileStillAnswering) {
  options_.answer_ttl = 10min;
  ApiServerCronJobLookup& l = make();
  EXPECT_EQ(settled("analytics", "nightly-report-28504320").state, State::kCronJob);
  EXPECT_EQ(settled("data", "backfill-28504320").state, State::kUnavailable);  // 404, cached too
  advance(9min);
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320").name, "nightly-report");
  EXPECT_EQ(l.cronJobOf("data", "backfill-28504320").state, State::kUnavailable);
  ASSERT_TRUE(l.waitIdle(kWait));
  EXPECT_EQ(jobRequests(*fake_).size(), 2U) << "both answers came from the cache";

  // Past its time the old answer still holds while the API server is asked again.
  advance(2min);
  fake_->holdJobs(true);
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320"),
            (CronJobAnswer{State::kCronJob, "nightly-report"}));
  ASSERT_TRUE(fake_->waitForHeldJobs(1, kWait));
  fake_->holdJobs(false);
  ASSERT_TRUE(l.waitIdle(kWait));
  EXPECT_EQ(jobRequests(*fake_).size(), 3U);
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320").name, "nightly-report");
}

TEST_F(CronJobLookupTest, AFailureIsCountedAnsweredByNameAndRetriedAfterItsTime) {
  options_.failure_ttl = 1min;
  ApiServerCronJobLookup& l = make();
  fake_->answerJobs(500, 1);
  EXPECT_EQ(settled("analytics", "nightly-report-28504320"),
            (CronJobAnswer{State::kUnavailable, ""}));
  EXPECT_EQ(errorCount("apiserver_job_lookup_http_status"), 1.0);
  advance(30s);
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320").state, State::kUnavailable);
  ASSERT_TRUE(l.waitIdle(kWait));
  EXPECT_EQ(jobRequests(*fake_).size(), 1U) << "not retried before failure_ttl";
  advance(31s);
  EXPECT_EQ(settled("analytics", "nightly-report-28504320"),
            (CronJobAnswer{State::kCronJob, "nightly-report"}));
  EXPECT_EQ(jobRequests(*fake_).size(), 2U);
  EXPECT_EQ(l.stats().failures, 1U);

  // A refresh that fails keeps what was known.
  advance(11min);
  fake_->answerJobs(503, 1);
  EXPECT_EQ(settled("analytics", "nightly-report-28504320").name, "nightly-report");
  EXPECT_EQ(errorCount("apiserver_job_lookup_http_status"), 2.0);
}

TEST_F(CronJobLookupTest, UnreachableApiServerIsAConnectFailure) {
  options_.url = "http://127.0.0.1:1";
  ApiServerCronJobLookup& l = make();
  EXPECT_EQ(settled("data", "etl-load").state, State::kUnavailable);
  EXPECT_EQ(errorCount("apiserver_job_lookup_connect"), 1.0);
  EXPECT_EQ(l.stats().failures, 1U);
}

TEST_F(CronJobLookupTest, ForbiddenIsLoggedOnceNamingTheRbacAndPausesLookups) {
  std::ostringstream log;
  struct LogTo {
    explicit LogTo(std::ostringstream& out) {
      spdlog::set_default_logger(std::make_shared<spdlog::logger>(
          "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)));
    }
    ~LogTo() { spdlog::set_default_logger(previous); }
    std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  };
  std::optional<LogTo> capture(std::in_place, log);
  options_.forbidden_pause = 5min;
  ApiServerCronJobLookup& l = make();
  fake_->answerJobs(403);

  EXPECT_EQ(settled("analytics", "nightly-report-28504320").state, State::kUnavailable);
  EXPECT_EQ(errorCount("apiserver_job_lookup_forbidden"), 1.0);
  // During the pause nothing is asked: other Jobs get the naming rule at once.
  EXPECT_EQ(l.cronJobOf("data", "etl-load").state, State::kUnavailable);
  EXPECT_EQ(l.cronJobOf("data", "backfill-28504320").state, State::kUnavailable);
  ASSERT_TRUE(l.waitIdle(kWait));
  EXPECT_EQ(jobRequests(*fake_).size(), 1U);

  // After it, the next question is asked; a second 403 is counted, not logged again.
  advance(5min + 1s);
  EXPECT_EQ(settled("data", "etl-load").state, State::kUnavailable);
  EXPECT_EQ(jobRequests(*fake_).size(), 2U);
  EXPECT_EQ(errorCount("apiserver_job_lookup_forbidden"), 2.0);
  EXPECT_EQ(l.stats().forbidden, 2U);

  fake_->answerJobs(200, 0);
  advance(5min + 1s);
  EXPECT_EQ(settled("data", "etl-load"), (CronJobAnswer{State::kNone, ""}));

  capture.reset();
  const std::string text = log.str();
  std::size_t logged = 0;
  for (auto at = text.find("apiserver_job_lookup_forbidden"); at != std::string::npos;
       at = text.find("apiserver_job_lookup_forbidden", at + 1)) {
    ++logged;
  }
  EXPECT_EQ(logged, 1U) << text;
  EXPECT_NE(text.find("\"get\" on jobs.batch"), std::string::npos) << text;
  EXPECT_NE(text.find("Forbidden: jobs.batch \"nightly-report-28504320\" is forbidden"),
            std::string::npos)
      << text;
}

TEST_F(CronJobLookupTest, AQuestionNeverWaitsForTheApiServer) {
  ApiServerCronJobLookup& l = make();
  fake_->holdJobs(true);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320").state, State::kPending);
  ASSERT_TRUE(fake_->waitForHeldJobs(1, kWait));  // the request is out and held
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320").state, State::kPending);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_FALSE(l.waitIdle(50ms));
  fake_->holdJobs(false);
  ASSERT_TRUE(l.waitIdle(kWait));
  EXPECT_EQ(l.cronJobOf("analytics", "nightly-report-28504320").name, "nightly-report");
  EXPECT_EQ(jobRequests(*fake_).size(), 1U) << "asked once however often it was asked";
}

TEST_F(CronJobLookupTest, AFullQueueIsCountedAndAnsweredByName) {
  options_.max_queue = 2;
  ApiServerCronJobLookup& l = make();
  fake_->holdJobs(true);
  EXPECT_EQ(l.cronJobOf("ns", "a").state, State::kPending);
  ASSERT_TRUE(fake_->waitForHeldJobs(1, kWait));  // a is in flight, the queue is empty
  EXPECT_EQ(l.cronJobOf("ns", "b").state, State::kPending);
  EXPECT_EQ(l.cronJobOf("ns", "c").state, State::kPending);
  EXPECT_EQ(l.cronJobOf("ns", "d").state, State::kUnavailable);
  EXPECT_EQ(errorCount("apiserver_job_lookup_queue_full"), 1.0);
  EXPECT_EQ(l.stats().queue_full, 1U);
  fake_->holdJobs(false);
  ASSERT_TRUE(l.waitIdle(kWait));
  // d was not remembered: it is asked the next time.
  EXPECT_EQ(l.cronJobOf("ns", "d").state, State::kPending);
  ASSERT_TRUE(l.waitIdle(kWait));
  EXPECT_EQ(jobRequests(*fake_).size(), 4U);
}

TEST_F(CronJobLookupTest, TheCacheIsBounded) {
  options_.max_entries = 4;
  options_.answer_ttl = 1h;
  ApiServerCronJobLookup& l = make();
  for (int i = 0; i < 10; ++i) {
    const std::string name = "job-" + std::to_string(i);
    fake_->putJob(job("ns", name, "CronJob", "cron-" + std::to_string(i)));
    advance(1s);  // each answer expires a second after the one before
    EXPECT_EQ(settled("ns", name).name, "cron-" + std::to_string(i));
    EXPECT_LE(l.cacheSize(), 4U);
  }
  EXPECT_EQ(l.stats().evicted, 6U);
  // The latest are still cached; the oldest were dropped and are asked again.
  const auto before = jobRequests(*fake_).size();
  EXPECT_EQ(l.cronJobOf("ns", "job-9").name, "cron-9");
  EXPECT_EQ(jobRequests(*fake_).size(), before);
  EXPECT_EQ(l.cronJobOf("ns", "job-0").state, State::kPending);
  ASSERT_TRUE(l.waitIdle(kWait));
}

TEST_F(CronJobLookupTest, TheTokenFileIsReadForEveryRequest) {
  make();
  EXPECT_EQ(settled("data", "etl-load").state, State::kNone);
  std::ofstream(dir_ / "token", std::ios::trunc) << "rotated-token\n";
  EXPECT_EQ(settled("analytics", "nightly-report-28504320").state, State::kCronJob);
  const auto requests = jobRequests(*fake_);
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[0].authorization, "Bearer job-reader-token");
  EXPECT_EQ(requests[1].authorization, "Bearer rotated-token");

  fs::remove(dir_ / "token");
  EXPECT_EQ(settled("data", "other").state, State::kUnavailable);
  EXPECT_EQ(errorCount("apiserver_job_lookup_token"), 1.0);
  EXPECT_EQ(jobRequests(*fake_).size(), 2U) << "no request without a token";
}

TEST(CronJobLookupCreate, RefusesWhatCannotWork) {
  prometheus::Registry registry;
  ErrorReporter errors(registry);
  CronJobLookupOptions o;
  o.url = "ftp://x";
  EXPECT_FALSE(ApiServerCronJobLookup::create(o, errors).has_value());
  o.url = "https://127.0.0.1:6443";
  o.max_queue = 0;
  EXPECT_FALSE(ApiServerCronJobLookup::create(o, errors).has_value());
  o.max_queue = 1;
  o.timeout = 0ms;
  EXPECT_FALSE(ApiServerCronJobLookup::create(o, errors).has_value());
}

// The API-server source answers a Job pod's CronJob through the lookup, on another connection
// while its own watch stays open; the name in the Job differs from the naming rule's on purpose.
TEST_F(CronJobLookupTest, TheApiServerSourceFillsTheOwnerChainThroughTheLookup) {
  fake_->putJob(job("data", "nightly-report-28571040", "CronJob", "reports-at-night"));
  std::ifstream in(fs::path(NODEWARDEN_FIXTURES) / "apiserver" / "pod_job_failed.json");
  fake_->putPod(json::parse(in));
  std::ifstream web(fs::path(NODEWARDEN_FIXTURES) / "apiserver" / "pod_web.json");
  fake_->putPod(json::parse(web));
  auto lookup = ApiServerCronJobLookup::create(options_, errors_);
  ASSERT_TRUE(lookup.has_value()) << lookup.error();
  std::shared_ptr<ApiServerCronJobLookup> shared = std::move(*lookup);

  ApiServerPodsOptions wo;
  wo.url = fake_->url();
  wo.node_name = "node-a";
  wo.cronjobs = shared;
  auto watcher = ApiServerPodWatcher::create(wo, errors_);
  ASSERT_TRUE(watcher.has_value()) << watcher.error();
  (*watcher)->start();
  ASSERT_TRUE(fake_->waitForWatch(1, kWait));

  constexpr const char* kJobPod = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
  auto pod = (*watcher)->pod(kJobPod);
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->job, "nightly-report-28571040");
  EXPECT_EQ(pod->cronjob, "") << "not known yet";
  EXPECT_EQ(pod->workload_kind, "");
  ASSERT_TRUE(shared->waitIdle(kWait));
  pod = (*watcher)->pod(kJobPod);
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->owner_kind, "Job");
  EXPECT_EQ(pod->owner_name, "nightly-report-28571040");
  EXPECT_EQ(pod->cronjob, "reports-at-night");
  EXPECT_EQ(pod->workload_kind, "CronJob");
  EXPECT_EQ(pod->workload_name, "reports-at-night");

  const auto web_pod = (*watcher)->pod("3f1c2a9e-5b7d-4c8e-9a1f-2b3c4d5e6f70");
  ASSERT_TRUE(web_pod.has_value());
  EXPECT_EQ(web_pod->workload_kind, "Deployment");
  EXPECT_EQ(web_pod->workload_name, "web");
  EXPECT_EQ(web_pod->job, "");
  EXPECT_EQ(web_pod->labels.at("app.kubernetes.io/name"), "web");
  (*watcher)->stop();
  EXPECT_EQ(jobRequests(*fake_).size(), 1U);
}

}  // namespace
}  // namespace nodewarden::pods
