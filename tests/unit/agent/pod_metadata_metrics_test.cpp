// nodewarden_pod_info and nodewarden_pod_labels from a cycle's pod samples and a metadata source,
// and the metadata sources' health gauges, read back as the text /metrics serves.
//
// What a reader gets wrong: the series are checked as whole exposition lines, labels in the
// order prometheus-cpp writes them (sorted by name), so a missing, extra or renamed label fails.
#include "agent/pod_metadata_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <string>
#include <vector>

#include "agent/metadata_source_metrics.h"
#include "tests/support/map_metadata.h"

namespace nodewarden {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using testing::MapMetadata;

PodIdentity cronJobPod() {
  PodIdentity id;
  id.namespace_name = "analytics";
  id.pod_name = "nightly-report-28504320-7xk2p";
  id.job = "nightly-report-28504320";
  id.cronjob = "nightly-report";
  id.owner_kind = "Job";
  id.owner_name = "nightly-report-28504320";
  id.workload_kind = "CronJob";
  id.workload_name = "nightly-report";
  id.qos_class = "Burstable";
  id.labels = {{"app.kubernetes.io/name", "report"}, {"job-name", "nightly-report-28504320"}};
  return id;
}

PodIdentity deploymentPod() {
  PodIdentity id;
  id.namespace_name = "shop";
  id.pod_name = "checkout-6d8f9c7b5-x2x9q";
  id.owner_kind = "ReplicaSet";
  id.owner_name = "checkout-6d8f9c7b5";
  id.workload_kind = "Deployment";
  id.workload_name = "checkout";
  id.qos_class = "Guaranteed";
  id.labels = {{"app.kubernetes.io/name", "checkout"}, {"team", "payments"}, {"other", "x"}};
  return id;
}

class PodMetadataMetricsTest : public ::testing::Test {
 protected:
  // One pod-level sample per uid, plus a container of the first (which must not count).
  void cycle(const std::vector<std::string>& uids) {
    samples_.assign(uids.size() + 1, CgroupSample{});
    snapshot_.reset();
    for (std::size_t i = 0; i < uids.size(); ++i) {
      samples_[i].pod_uid = uids[i];
      snapshot_.cgroups.push_back(&samples_[i]);
    }
    if (!uids.empty()) {
      samples_.back().pod_uid = "container-only-uid";
      samples_.back().container_id = std::string(64, 'c');
      snapshot_.cgroups.push_back(&samples_.back());
    }
    metrics_.update(snapshot_, &meta_);
  }
  std::string text() { return prometheus::TextSerializer().Serialize(registry_.Collect()); }

  prometheus::Registry registry_;
  MapMetadata meta_;
  PodMetadataMetrics metrics_{registry_, {"app.kubernetes.io/name", "team"}};
  std::vector<CgroupSample> samples_;
  Snapshot snapshot_;
};

constexpr const char* kCronUid = "57471fdd-e841-4f2d-a0d1-79af5f0f7ebd";
constexpr const char* kShopUid = "a3a13f8e-917d-4e01-af8b-4d3e59403d34";

const std::string kCronInfo =
    "nodewarden_pod_info{cronjob=\"nightly-report\",job_name=\"nightly-report-28504320\","
    "namespace=\"analytics\",owner_kind=\"Job\",owner_name=\"nightly-report-28504320\","
    "pod=\"nightly-report-28504320-7xk2p\",qos_class=\"Burstable\","
    "uid=\"57471fdd-e841-4f2d-a0d1-79af5f0f7ebd\",workload=\"nightly-report\","
    "workload_kind=\"CronJob\"} 1\n";
const std::string kCronLabels =
    "nodewarden_pod_labels{label_app_kubernetes_io_name=\"report\",namespace=\"analytics\","
    "pod=\"nightly-report-28504320-7xk2p\",uid=\"57471fdd-e841-4f2d-a0d1-79af5f0f7ebd\"} 1\n";
const std::string kShopInfo =
    "nodewarden_pod_info{cronjob=\"\",job_name=\"\",namespace=\"shop\",owner_kind=\"ReplicaSet\","
    "owner_name=\"checkout-6d8f9c7b5\",pod=\"checkout-6d8f9c7b5-x2x9q\",qos_class=\"Guaranteed\","
    "uid=\"a3a13f8e-917d-4e01-af8b-4d3e59403d34\",workload=\"checkout\","
    "workload_kind=\"Deployment\"} 1\n";
const std::string kShopLabels =
    "nodewarden_pod_labels{label_app_kubernetes_io_name=\"checkout\",label_team=\"payments\","
    "namespace=\"shop\",pod=\"checkout-6d8f9c7b5-x2x9q\","
    "uid=\"a3a13f8e-917d-4e01-af8b-4d3e59403d34\"} 1\n";

TEST_F(PodMetadataMetricsTest, InfoAndAllowListedLabelsOfEachKnownPod) {
  meta_.pods[kCronUid] = cronJobPod();
  meta_.pods[kShopUid] = deploymentPod();
  cycle({kCronUid, kShopUid, "unknown-uid"});
  const std::string t = text();
  EXPECT_THAT(t, HasSubstr(kCronInfo));
  EXPECT_THAT(t, HasSubstr(kCronLabels));
  EXPECT_THAT(t, HasSubstr(kShopInfo));
  EXPECT_THAT(t, HasSubstr(kShopLabels));
  EXPECT_THAT(t, Not(HasSubstr("unknown-uid"))) << "nothing is guessed";
  EXPECT_THAT(t, Not(HasSubstr("container-only-uid"))) << "only pod-level samples count";
  EXPECT_THAT(t, Not(HasSubstr("label_other"))) << "not allow-listed";
  EXPECT_THAT(t, Not(HasSubstr("label_job_name")));
  EXPECT_EQ(metrics_.pods(), 2U);
  EXPECT_EQ(meta_.asked, 3) << "once per pod sample";
}

TEST_F(PodMetadataMetricsTest, APodThatLeftLosesItsSeries) {
  meta_.pods[kCronUid] = cronJobPod();
  meta_.pods[kShopUid] = deploymentPod();
  cycle({kCronUid, kShopUid});
  cycle({kShopUid});
  const std::string t = text();
  EXPECT_THAT(t, Not(HasSubstr(kCronUid)));
  EXPECT_THAT(t, HasSubstr(kShopInfo));
  EXPECT_THAT(t, HasSubstr(kShopLabels));
  EXPECT_EQ(metrics_.pods(), 1U);
  cycle({});
  EXPECT_THAT(text(), Not(HasSubstr("nodewarden_pod_info{")));
  EXPECT_EQ(metrics_.pods(), 0U);
}

TEST_F(PodMetadataMetricsTest, AChangeReplacesTheSeriesAndAMissKeepsThem) {
  meta_.pods[kCronUid] = cronJobPod();
  PodIdentity pending = cronJobPod();  // the CronJob lookup has not answered yet
  pending.cronjob.clear();
  pending.workload_kind.clear();
  pending.workload_name.clear();
  meta_.pods[kCronUid] = pending;
  cycle({kCronUid});
  EXPECT_THAT(text(), HasSubstr("cronjob=\"\",job_name=\"nightly-report-28504320\""));

  meta_.pods[kCronUid] = cronJobPod();
  cycle({kCronUid});
  std::string t = text();
  EXPECT_THAT(t, HasSubstr(kCronInfo));
  EXPECT_THAT(t, Not(HasSubstr("cronjob=\"\""))) << "the old series is gone";

  PodIdentity relabelled = cronJobPod();
  relabelled.labels["team"] = "data";
  meta_.pods[kCronUid] = relabelled;
  cycle({kCronUid});
  t = text();
  EXPECT_THAT(t, HasSubstr("nodewarden_pod_labels{label_app_kubernetes_io_name=\"report\","
                           "label_team=\"data\",namespace=\"analytics\""));
  EXPECT_THAT(t, Not(HasSubstr(kCronLabels)));

  // The source forgot the pod while its cgroup is still here: what was known stays.
  meta_.pods.erase(kCronUid);
  cycle({kCronUid});
  t = text();
  EXPECT_THAT(t, HasSubstr(kCronInfo));
  EXPECT_THAT(t, HasSubstr("label_team=\"data\""));
}

TEST_F(PodMetadataMetricsTest, NoMetadataNoSeries) {
  cycle({kCronUid});
  PodMetadataMetrics without(registry_, {});
  without.update(snapshot_, nullptr);
  EXPECT_EQ(without.pods(), 0U);
  EXPECT_THAT(text(), Not(HasSubstr("nodewarden_pod_info{")));
}

TEST(MetadataSourceMetrics, SyncedStalenessAndPodsPerSource) {
  prometheus::Registry registry;
  MetadataSourceMetrics m(registry);
  m.set("runtime", {true, std::nullopt, 12});
  m.set("kubelet", {false, 3.5, 0});
  m.set("apiserver", {true, 0.25, 14});
  std::string t = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_source_synced{source=\"runtime\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_source_synced{source=\"kubelet\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_source_synced{source=\"apiserver\"} 1\n"));
  EXPECT_THAT(t,
              HasSubstr("nodewarden_metadata_source_staleness_seconds{source=\"kubelet\"} 3.5\n"));
  EXPECT_THAT(
      t, HasSubstr("nodewarden_metadata_source_staleness_seconds{source=\"apiserver\"} 0.25\n"));
  EXPECT_THAT(t,
              Not(HasSubstr("nodewarden_metadata_source_staleness_seconds{source=\"runtime\"}")));
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_pods{source=\"runtime\"} 12\n"));
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_pods{source=\"kubelet\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_pods{source=\"apiserver\"} 14\n"));

  m.set("kubelet", {true, 0.0, 9});
  m.set("apiserver", {true, std::nullopt, 14});
  t = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_source_synced{source=\"kubelet\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_source_staleness_seconds{source=\"kubelet\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("nodewarden_metadata_pods{source=\"kubelet\"} 9\n"));
  EXPECT_THAT(t,
              Not(HasSubstr("nodewarden_metadata_source_staleness_seconds{source=\"apiserver\"}")));
}

}  // namespace
}  // namespace nodewarden
