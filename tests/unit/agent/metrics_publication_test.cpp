// The one path of series to /metrics and remote write: Publication<T> (a held buffer is never
// overwritten; a free one is reused), the pod and Job series published as a set (WorkloadSeries,
// PodSeriesStage), and MetricsPublication rendering one published cycle whole.
//
// What a reader gets wrong: a PublishedCycle held by a reader (remote write's queued cycle, a slow
// scrape) must keep rendering the series of its own cycle while later cycles change the pods; the
// tests hold one across such a change and render it again.
#include "agent/metrics_publication.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <string>
#include <vector>

#include "agent/pod_metadata_metrics.h"
#include "agent/publication.h"
#include "agent/workload_series.h"
#include "collectors/jobs/job_metrics.h"
#include "tests/support/map_metadata.h"

namespace nodewarden {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Publication, ReusesAFreeBufferAndNeverOverwritesAHeldOne) {
  Publication<std::string> p;
  EXPECT_EQ(p.latest(), nullptr);
  p.publish([](std::string& s) { s = "one"; });
  auto held = p.latest();  // a reader keeps cycle one
  p.publish([](std::string& s) { s = "two"; });
  EXPECT_EQ(*held, "one") << "a held buffer is not written";
  EXPECT_EQ(*p.latest(), "two");
  EXPECT_EQ(p.buffers(), 2U);
  held.reset();
  // Steady state: the free buffer (cycle one's) is reused, no new one is made.
  for (int i = 0; i < 5; ++i) {
    p.publish([i](std::string& s) { s = std::to_string(i); });
  }
  EXPECT_EQ(*p.latest(), "4");
  EXPECT_EQ(p.buffers(), 2U);
}

PodIdentity shopPod() {
  PodIdentity id;
  id.namespace_name = "shop";
  id.pod_name = "checkout-1";
  id.owner_kind = "ReplicaSet";
  id.owner_name = "checkout";
  id.workload_kind = "Deployment";
  id.workload_name = "checkout";
  id.qos_class = "Guaranteed";
  return id;
}

class MetricsPublicationTest : public ::testing::Test {
 protected:
  // One collection cycle's consumers in the agent's order: the pod series, then the publication.
  void cycle(const std::vector<std::string>& uids) {
    samples_.assign(uids.size(), CgroupSample{});
    snapshot_.reset();
    for (std::size_t i = 0; i < uids.size(); ++i) {
      samples_[i].pod_uid = uids[i];
      snapshot_.cgroups.push_back(&samples_[i]);
    }
    snapshot_.timestamp_ms = ++now_ms_;
    for (SnapshotConsumer* c : std::initializer_list<SnapshotConsumer*>{&stage_, &publication_}) {
      c->consume(snapshot_);
    }
  }
  std::string render(const PublishedCycle& cycle) {
    std::string out;
    publication_.render(cycle, [&](std::string_view chunk) { out.append(chunk); });
    return out;
  }

  prometheus::Registry self_;
  prometheus::Counter& cycles_ =
      prometheus::BuildCounter().Name("nodewarden_collection_cycles_total").Register(self_).Add({});
  WorkloadSeries workload_;
  testing::MapMetadata meta_;
  PodMetadataMetrics pods_{workload_.registry(), {}};
  PodSeriesStage stage_{pods_, &meta_, workload_};
  TextRenderer renderer_{"/proc"};
  MetricsPublication publication_{renderer_, self_, workload_, nullptr, &cycles_};
  std::vector<CgroupSample> samples_;
  Snapshot snapshot_;
  std::int64_t now_ms_ = 1'700'000'000'000;
};

constexpr const char* kUid = "a3a13f8e-917d-4e01-af8b-4d3e59403d34";
const std::string kShopInfo =
    "nodewarden_pod_info{cronjob=\"\",job_name=\"\",namespace=\"shop\",owner_kind=\"ReplicaSet\","
    "owner_name=\"checkout\",pod=\"checkout-1\",qos_class=\"Guaranteed\","
    "uid=\"a3a13f8e-917d-4e01-af8b-4d3e59403d34\",workload=\"checkout\","
    "workload_kind=\"Deployment\"} 1\n";

TEST_F(MetricsPublicationTest, ACycleRendersThePodSeriesOfItsOwnCycleWhileHeld) {
  meta_.pods[kUid] = shopPod();
  cycle({kUid});
  const PublishedCycle first = publication_.latest();  // as remote write's queued cycle holds it
  ASSERT_NE(first.snapshot, nullptr);
  ASSERT_NE(first.workload, nullptr);
  EXPECT_THAT(render(first), HasSubstr(kShopInfo));

  cycle({});  // the pod left: the next cycle has no series for it
  EXPECT_THAT(render(publication_.latest()), Not(HasSubstr("nodewarden_pod_info{")));
  EXPECT_THAT(render(first), HasSubstr(kShopInfo))
      << "the held cycle still shows its own pods, not the registry as it is now";
  EXPECT_EQ(first.snapshot->view().cgroups.size(), 1U);
}

TEST_F(MetricsPublicationTest, OneRenderHoldsEverySourceAsAScrapeOfTheirRegistriesShowedThem) {
  meta_.pods[kUid] = shopPod();
  jobs::JobMetrics jobs(workload_.registry(), std::chrono::hours(1));
  jobs::JobOutcome o;
  o.namespace_name = "batch";
  o.job = "etl-1";
  o.outcome = jobs::Outcome::kFailed;
  o.reason = "OOMKilled";
  o.exit_code = 137;
  o.recorded_at_ms = now_ms_;
  jobs.add(o);
  cycle({kUid});
  const std::string text = render(publication_.latest());
  // The pod and Job families exactly as prometheus-cpp serializes their registry (what /metrics
  // served when they lived in the agent's own registry), then the agent's own series.
  const std::string workload =
      prometheus::TextSerializer().Serialize(workload_.registry().Collect());
  EXPECT_THAT(text, HasSubstr(workload));
  EXPECT_THAT(workload, HasSubstr(kShopInfo));
  EXPECT_THAT(workload, HasSubstr("nodewarden_job_last_exit_code{cronjob=\"\",job_name=\"etl-1\","
                                  "namespace=\"batch\"} 137"));
  EXPECT_THAT(text, HasSubstr("# TYPE nodewarden_job_pod_completions_total counter"));
  EXPECT_THAT(text, HasSubstr("nodewarden_collection_cycles_total 1\n"))
      << "counted when the cycle is published";
  const std::string type = "# TYPE nodewarden_pod_info gauge";
  EXPECT_EQ(text.find(type), text.rfind(type)) << "each family once";
  EXPECT_NE(text.find(type), std::string::npos);
}

TEST_F(MetricsPublicationTest, ASteadyCycleDoesNotRepublishThePodSeries) {
  meta_.pods[kUid] = shopPod();
  cycle({kUid});
  const auto set = workload_.latest();
  cycle({kUid});
  cycle({kUid});
  EXPECT_EQ(workload_.latest(), set) << "nothing changed: the same published set";
  meta_.pods[kUid].qos_class = "Burstable";
  cycle({kUid});
  EXPECT_NE(workload_.latest(), set);
  std::string text;
  WorkloadSeries::render(*workload_.latest(), [&](std::string_view c) { text.append(c); });
  EXPECT_THAT(text, HasSubstr("qos_class=\"Burstable\""));
}

// collectors.pods.unknown_image: a container past the hold whose image no source knows is exported
// with the placeholder (kube-prometheus' rules keep only image!=""); a pod-level sample keeps
// image="" as cAdvisor's do (its rules rely on that to leave pod cgroups out of the sums), a known
// image is kept, and a held sample is not exported at all. The gauge counts the placeholders.
TEST(MetricsPublicationUnknownImage, ContainersWithoutAnImageGetThePlaceholderPodsDoNot) {
  prometheus::Registry self;
  WorkloadSeries workload;
  TextRenderer renderer("/proc");
  auto& gauge = prometheus::BuildGauge().Name("g").Register(self).Add({});
  MetricsPublication publication(renderer, self, workload, nullptr, nullptr, "unknown", &gauge);
  std::vector<CgroupSample> samples(4);
  for (auto& s : samples) {
    s.pod_uid = kUid;
    s.namespace_name = "shop";
    s.pod_name = "checkout-1";
    s.set(CgroupField::kCpuUsageNs, 1000000000);
  }
  samples[0].id = "/kubepods/pod1";  // the pod's own cgroup
  samples[1].container_id = std::string(64, 'a');
  samples[1].id = "/kubepods/pod1/a";
  samples[1].container_name = "app";  // named from the log directories: no image
  samples[2].container_id = std::string(64, 'b');
  samples[2].id = "/kubepods/pod1/b";
  samples[2].container_name = "sidecar";
  samples[2].image = "registry.example/sidecar:1.2";
  samples[3].container_id = std::string(64, 'c');
  samples[3].id = "/kubepods/pod1/c";
  samples[3].names_pending = true;  // within the hold
  Snapshot snapshot;
  for (const auto& s : samples) snapshot.cgroups.push_back(&s);
  publication.consume(snapshot);
  std::string text;
  publication.render(
      publication.latest(), [&](std::string_view c) { text.append(c); }, Exposition::kCadvisor);
  EXPECT_THAT(text, HasSubstr("container_cpu_usage_seconds_total{container=\"\",id=\"/kubepods/"
                              "pod1\",image=\"\",namespace"));
  EXPECT_THAT(text, HasSubstr("container_cpu_usage_seconds_total{container=\"app\",id=\"/kubepods/"
                              "pod1/a\",image=\"unknown\",namespace"));
  EXPECT_THAT(text, HasSubstr("image=\"registry.example/sidecar:1.2\""));
  EXPECT_THAT(text, Not(HasSubstr("pod1/c")));
  EXPECT_EQ(gauge.Value(), 1.0);
  EXPECT_TRUE(samples[1].image.empty()) << "the collector's own sample keeps \"not known\"";

  // The image becomes known: the series carries it and the gauge falls.
  samples[1].image = "registry.example/app:3";
  publication.consume(snapshot);
  text.clear();
  publication.render(publication.latest(), [&](std::string_view c) { text.append(c); });
  EXPECT_THAT(text, Not(HasSubstr("image=\"unknown\"")));
  EXPECT_EQ(gauge.Value(), 0.0);
}

// /metrics/cadvisor is the snapshot's cAdvisor series alone: no node_*, pod/Job or nodewarden_*
// series, which a scrape filed under job="kubelet" would misfile.
TEST_F(MetricsPublicationTest, TheCadvisorExpositionHoldsOnlyTheSnapshotsCadvisorSeries) {
  meta_.pods[kUid] = shopPod();
  samples_.assign(1, CgroupSample{});
  samples_[0].pod_uid = kUid;
  samples_[0].set(CgroupField::kCpuUsageNs, 5);
  snapshot_.reset();
  snapshot_.cgroups.push_back(&samples_[0]);
  snapshot_.node.has_loadavg = true;
  snapshot_.node.load1 = 0.5;
  stage_.consume(snapshot_);
  publication_.consume(snapshot_);
  const std::string full = render(publication_.latest());
  std::string cadvisor;
  publication_.render(
      publication_.latest(), [&](std::string_view c) { cadvisor.append(c); },
      Exposition::kCadvisor);
  for (const char* s :
       {"nodewarden_pod_info{", "nodewarden_collection_cycles_total", "node_load1"}) {
    EXPECT_THAT(full, HasSubstr(s));
    EXPECT_THAT(cadvisor, Not(HasSubstr(s)));
  }
  EXPECT_THAT(cadvisor, HasSubstr("container_cpu_usage_seconds_total{"));
}

}  // namespace
}  // namespace nodewarden
