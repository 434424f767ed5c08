// The owner chain's rules (owner_chain.h): a ReplicaSet's Deployment by the pod-template-hash,
// a Job's CronJob from a lookup in each of its states or by the CronJob controller's naming, and
// every other owner as its own workload.
//
// What a reader gets wrong: the minute bounds are 23667840 (2015-01-01T00:00Z) and 68374080
// (2100-01-01T00:00Z); the cases below sit on and just beyond them on purpose.
#include "collectors/pods/owner_chain.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace nodewarden::pods {
namespace {

// Answers what it was told and remembers what it was asked.
class ScriptedLookup final : public CronJobLookup {
 public:
  explicit ScriptedLookup(CronJobAnswer answer) : answer_(std::move(answer)) {}
  CronJobAnswer cronJobOf(std::string_view namespace_name, std::string_view job) override {
    asked.emplace_back(std::string(namespace_name), std::string(job));
    return answer_;
  }
  std::vector<std::pair<std::string, std::string>> asked;

 private:
  CronJobAnswer answer_;
};

PodIdentity pod(std::string owner_kind, std::string owner_name,
                std::map<std::string, std::string> labels = {}) {
  PodIdentity id;
  id.namespace_name = "data";
  id.pod_name = "some-pod";
  id.owner_kind = std::move(owner_kind);
  id.owner_name = std::move(owner_name);
  id.labels = std::move(labels);
  return id;
}

struct Chain {
  std::string job, cronjob, workload_kind, workload_name;
  bool operator==(const Chain&) const = default;
};
std::ostream& operator<<(std::ostream& out, const Chain& c) {
  return out << "{job=" << c.job << " cronjob=" << c.cronjob << " workload=" << c.workload_kind
             << "/" << c.workload_name << "}";
}

Chain resolve(PodIdentity id, CronJobLookup* lookup = nullptr) {
  resolveOwnerChain(id, lookup);
  return {id.job, id.cronjob, id.workload_kind, id.workload_name};
}

TEST(DeploymentOfReplicaSet, ThePrefixWhenTheNameEndsWithTheHash) {
  EXPECT_EQ(deploymentOfReplicaSet("checkout-6d8f9c7b5", "6d8f9c7b5"), "checkout");
  EXPECT_EQ(deploymentOfReplicaSet("web-frontend-7d9c6b5f8", "7d9c6b5f8"), "web-frontend");
  EXPECT_EQ(deploymentOfReplicaSet("a-1", "1"), "a");
}

TEST(DeploymentOfReplicaSet, NoneWhenTheHashDoesNotCloseTheName) {
  EXPECT_EQ(deploymentOfReplicaSet("checkout-6d8f9c7b5", ""), std::nullopt);
  EXPECT_EQ(deploymentOfReplicaSet("checkout-6d8f9c7b5", "7f9d8b6c4"), std::nullopt);
  EXPECT_EQ(deploymentOfReplicaSet("checkout6d8f9c7b5", "6d8f9c7b5"), std::nullopt);  // no dash
  EXPECT_EQ(deploymentOfReplicaSet("-6d8f9c7b5", "6d8f9c7b5"), std::nullopt);  // nothing left
  EXPECT_EQ(deploymentOfReplicaSet("6d8f9c7b5", "6d8f9c7b5"), std::nullopt);
  EXPECT_EQ(deploymentOfReplicaSet("x-6d8f9c7b5-extra", "6d8f9c7b5"), std::nullopt);
}

TEST(CronJobByJobName, PlausibleScheduledMinutesNameTheCronJob) {
  EXPECT_EQ(cronJobByJobName("nightly-report-28504320"), "nightly-report");  // 2024-03-12
  EXPECT_EQ(cronJobByJobName("backup-23667840"), "backup");                  // 2015-01-01T00:00
  EXPECT_EQ(cronJobByJobName("backup-68374080"), "backup");                  // 2100-01-01T00:00
  EXPECT_EQ(cronJobByJobName("a-b-c-28571040"), "a-b-c");
}

TEST(CronJobByJobName, OtherSuffixesAreNoCronJobs) {
  EXPECT_EQ(cronJobByJobName("job-42"), std::nullopt);
  EXPECT_EQ(cronJobByJobName("backup-23667839"), std::nullopt);    // a minute before 2015
  EXPECT_EQ(cronJobByJobName("backup-68374081"), std::nullopt);    // a minute after 2100
  EXPECT_EQ(cronJobByJobName("backup-1710259200"), std::nullopt);  // seconds, not minutes
  EXPECT_EQ(cronJobByJobName("backup-028504320"), std::nullopt);   // a leading zero
  EXPECT_EQ(cronJobByJobName("backup-2850432x"), std::nullopt);
  EXPECT_EQ(cronJobByJobName("backup-+28504320"), std::nullopt);
  EXPECT_EQ(cronJobByJobName("backup-"), std::nullopt);
  EXPECT_EQ(cronJobByJobName("-28504320"), std::nullopt);  // no CronJob name
  EXPECT_EQ(cronJobByJobName("28504320"), std::nullopt);
  EXPECT_EQ(cronJobByJobName("etl-load"), std::nullopt);
  EXPECT_EQ(cronJobByJobName("backup-99999999999999999999999"), std::nullopt);  // overflows
  EXPECT_EQ(cronJobByJobName(""), std::nullopt);
}

TEST(ResolveOwnerChain, ReplicaSetOfADeployment) {
  EXPECT_EQ(resolve(pod("ReplicaSet", "checkout-6d8f9c7b5", {{"pod-template-hash", "6d8f9c7b5"}})),
            (Chain{"", "", "Deployment", "checkout"}));
}

TEST(ResolveOwnerChain, ReplicaSetWithoutAMatchingHashIsItsOwnWorkload) {
  EXPECT_EQ(resolve(pod("ReplicaSet", "checkout-6d8f9c7b5")),
            (Chain{"", "", "ReplicaSet", "checkout-6d8f9c7b5"}));
  EXPECT_EQ(resolve(pod("ReplicaSet", "handmade", {{"pod-template-hash", "6d8f9c7b5"}})),
            (Chain{"", "", "ReplicaSet", "handmade"}));
}

TEST(ResolveOwnerChain, OtherOwnersAreTheirOwnWorkload) {
  EXPECT_EQ(resolve(pod("StatefulSet", "postgres")), (Chain{"", "", "StatefulSet", "postgres"}));
  EXPECT_EQ(resolve(pod("DaemonSet", "node-exporter")),
            (Chain{"", "", "DaemonSet", "node-exporter"}));
  EXPECT_EQ(resolve(pod("Node", "worker-1")), (Chain{"", "", "Node", "worker-1"}));
  EXPECT_EQ(resolve(pod("ReplicationController", "legacy")),
            (Chain{"", "", "ReplicationController", "legacy"}));
}

TEST(ResolveOwnerChain, NoOwnerNoWorkload) {
  EXPECT_EQ(resolve(pod("", "", {{"run", "debug-shell"}})), (Chain{}));
  // The Job controller's labels still name the Job of an orphaned pod, but there is no owner.
  EXPECT_EQ(resolve(pod("", "", {{"batch.kubernetes.io/job-name", "backfill"}})),
            (Chain{"backfill", "", "", ""}));
}

TEST(ResolveOwnerChain, JobWithoutALookupFallsBackToTheNamingRule) {
  EXPECT_EQ(resolve(pod("Job", "nightly-report-28504320")),
            (Chain{"nightly-report-28504320", "nightly-report", "CronJob", "nightly-report"}));
  EXPECT_EQ(resolve(pod("Job", "etl-load")), (Chain{"etl-load", "", "Job", "etl-load"}));
  EXPECT_EQ(resolve(pod("Job", "job-42")), (Chain{"job-42", "", "Job", "job-42"}));
}

TEST(ResolveOwnerChain, JobsCronJobFromTheLookupWinsOverTheName) {
  ScriptedLookup found({CronJobAnswer::State::kCronJob, "nightly"});
  EXPECT_EQ(resolve(pod("Job", "nightly-report-28504320"), &found),
            (Chain{"nightly-report-28504320", "nightly", "CronJob", "nightly"}));
  ASSERT_EQ(found.asked.size(), 1U);
  EXPECT_EQ(found.asked[0],
            (std::pair<std::string, std::string>{"data", "nightly-report-28504320"}));

  // The API says no CronJob controls it: a name that looks like one is not taken for one.
  ScriptedLookup none({CronJobAnswer::State::kNone, ""});
  EXPECT_EQ(resolve(pod("Job", "nightly-report-28504320"), &none),
            (Chain{"nightly-report-28504320", "", "Job", "nightly-report-28504320"}));
}

TEST(ResolveOwnerChain, JobWhileTheLookupIsPendingHasNoWorkloadYet) {
  ScriptedLookup pending({CronJobAnswer::State::kPending, ""});
  EXPECT_EQ(resolve(pod("Job", "nightly-report-28504320"), &pending),
            (Chain{"nightly-report-28504320", "", "", ""}));
  EXPECT_EQ(pending.asked.size(), 1U);
}

TEST(ResolveOwnerChain, JobWhenTheLookupIsUnavailableUsesTheNamingRule) {
  ScriptedLookup unavailable({CronJobAnswer::State::kUnavailable, ""});
  EXPECT_EQ(resolve(pod("Job", "nightly-report-28504320"), &unavailable),
            (Chain{"nightly-report-28504320", "nightly-report", "CronJob", "nightly-report"}));
  EXPECT_EQ(resolve(pod("Job", "etl-load"), &unavailable),
            (Chain{"etl-load", "", "Job", "etl-load"}));
}

TEST(ResolveOwnerChain, OnlyJobOwnersAreLookedUp) {
  ScriptedLookup lookup({CronJobAnswer::State::kCronJob, "never"});
  EXPECT_EQ(resolve(pod("StatefulSet", "db-28504320"), &lookup),
            (Chain{"", "", "StatefulSet", "db-28504320"}));
  EXPECT_EQ(resolve(pod("", "", {{"job-name", "orphan-28504320"}}), &lookup),
            (Chain{"orphan-28504320", "", "", ""}));
  EXPECT_TRUE(lookup.asked.empty());
}

TEST(ResolveOwnerChain, EarlierFieldsAreReplaced) {
  PodIdentity id = pod("DaemonSet", "node-exporter");
  id.cronjob = "stale";
  id.workload_kind = "CronJob";
  id.workload_name = "stale";
  id.job = "stale";
  resolveOwnerChain(id, nullptr);
  EXPECT_EQ(id.cronjob, "");
  EXPECT_EQ(id.job, "");
  EXPECT_EQ(id.workload_kind, "DaemonSet");
  EXPECT_EQ(id.workload_name, "node-exporter");
}

}  // namespace
}  // namespace nodewarden::pods
