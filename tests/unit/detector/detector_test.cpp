// The detector on synthetic snapshot sequences: each test drives pods' counters the way the
// kernel would (CPU nanoseconds, PSI microseconds, CFS periods) and checks what it concludes.
#include "pipeline/detector/detector.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "pipeline/detector/decaying_histogram.h"

namespace nodewarden::detector {
namespace {

constexpr double kInterval = 5;  // seconds

// One pod with one container; per-interval rates are set, counters accumulate.
struct FakePod {
  CgroupSample pod;
  CgroupSample container;
  double cpu_cores = 0;           // both pod and container
  std::array<double, 3> stall{};  // PSI some share, per resource
  double throttled_ratio = 0;     // of the CFS periods
  double throttled_share = 0;     // throttled time / wall time
  std::uint64_t working_set = 50 << 20;
  std::uint64_t memory_limit = 0;
  std::uint64_t usage = 0;  // 0: the working set (no inactive cache)
  bool present = true;
  bool psi = true;

  FakePod(const std::string& ns, const std::string& name, const std::string& uid) {
    for (CgroupSample* s : {&pod, &container}) {
      s->pod_uid = uid;
      s->namespace_name = ns;
      s->pod_name = name;
      s->qos = QosClass::kBurstable;
    }
    pod.id = "/kubepods/burstable/pod" + uid;
    container.container_id = std::string(64, uid[0]);
    container.container_name = "main";
    container.id = pod.id + "/" + container.container_id;
    for (CgroupSample* s : {&pod, &container}) {
      s->set(CgroupField::kCpuUsageNs, 0);
      s->set(CgroupField::kCfsPeriods, 0);
      s->set(CgroupField::kCfsThrottledPeriods, 0);
      s->set(CgroupField::kCfsThrottledNs, 0);
      s->set(CgroupField::kCpuShares, 1024);
    }
    for (auto f :
         {CgroupField::kPsiCpuSomeUs, CgroupField::kPsiMemSomeUs, CgroupField::kPsiIoSomeUs}) {
      pod.set(f, 0);
    }
  }

  void advance(double dt) {
    for (CgroupSample* s : {&pod, &container}) {
      s->set(CgroupField::kCpuUsageNs,
             s->get(CgroupField::kCpuUsageNs) + static_cast<std::uint64_t>(cpu_cores * dt * 1e9));
      const auto periods = static_cast<std::uint64_t>(dt * 10);  // 100 ms periods
      s->set(CgroupField::kCfsPeriods, s->get(CgroupField::kCfsPeriods) + periods);
      s->set(CgroupField::kCfsThrottledPeriods,
             s->get(CgroupField::kCfsThrottledPeriods) +
                 static_cast<std::uint64_t>(throttled_ratio * static_cast<double>(periods)));
      s->set(CgroupField::kCfsThrottledNs,
             s->get(CgroupField::kCfsThrottledNs) +
                 static_cast<std::uint64_t>(throttled_share * dt * 1e9));
      s->set(CgroupField::kMemWorkingSetBytes, working_set);
      s->set(CgroupField::kMemUsageBytes, usage != 0 ? usage : working_set);
      s->set(CgroupField::kMemLimitBytes, memory_limit);
    }
    const CgroupField psi_fields[] = {CgroupField::kPsiCpuSomeUs, CgroupField::kPsiMemSomeUs,
                                      CgroupField::kPsiIoSomeUs};
    for (std::size_t r = 0; r < 3; ++r) {
      if (!psi) {
        pod.present.reset(CgroupSample::index(psi_fields[r]));
        continue;
      }
      pod.set(psi_fields[r],
              pod.get(psi_fields[r]) + static_cast<std::uint64_t>(stall[r] * dt * 1e6));
    }
  }
};

class DetectorTest : public ::testing::Test {
 protected:
  DetectorOptions options() {
    DetectorOptions o;
    o.node = "node-a";
    o.interval = std::chrono::seconds(5);
    o.windows = {std::chrono::seconds(10), std::chrono::minutes(1), std::chrono::minutes(5)};
    return o;
  }

  void start(DetectorOptions o) { detector_ = std::make_unique<Detector>(std::move(o)); }

  FakePod& pod(const std::string& name) {
    auto& p = pods_[name];
    if (!p)
      p = std::make_unique<FakePod>(
          "ns", name, std::string(1, static_cast<char>('a' + pods_.size() - 1)) + "-uid-" + name);
    return *p;
  }

  void cycles(int n) {
    for (int i = 0; i < n; ++i) {
      now_ += kInterval;
      Snapshot snap;
      snap.timestamp_ms = static_cast<std::int64_t>(now_ * 1000) + 1'700'000'000'000;
      for (auto& [name, p] : pods_) {
        p->advance(kInterval);
        if (!p->present) continue;
        snap.cgroups.push_back(&p->pod);
        snap.cgroups.push_back(&p->container);
      }
      detector_->update(snap, now_);
    }
  }

  const Verdict* verdict(const std::string& pod_name, Resource r) const {
    for (const auto& v : detector_->state().verdicts) {
      if (v.pod_name == pod_name && v.resource == r) return &v;
    }
    return nullptr;
  }
  const PodSignals* podSignals(const std::string& name) const {
    for (const auto& p : detector_->state().pods) {
      if (p.pod_name == name) return &p;
    }
    return nullptr;
  }
  const ContainerSignals* containerSignals(const std::string& pod_name) const {
    for (const auto& c : detector_->state().containers) {
      if (c.pod_name == pod_name) return &c;
    }
    return nullptr;
  }

  std::unique_ptr<Detector> detector_;
  std::map<std::string, std::unique_ptr<FakePod>> pods_;
  double now_ = 1000;
};

TEST_F(DetectorTest, UsageWindowsHoldNearestRankQuantiles) {
  start(options());
  FakePod& p = pod("app");
  cycles(1);  // first reading: no rate yet
  for (int i = 1; i <= 10; ++i) {
    p.cpu_cores = 0.1 * i;
    cycles(1);
  }
  const ContainerSignals* c = containerSignals("app");
  ASSERT_NE(c, nullptr);
  // Long and mid windows hold the ten rates 0.1 .. 1.0.
  EXPECT_EQ(c->cpu_cores[2].samples, 10U);
  EXPECT_NEAR(c->cpu_cores[2].p50, 0.5, 1e-6);
  EXPECT_NEAR(c->cpu_cores[2].p90, 0.9, 1e-6);
  EXPECT_NEAR(c->cpu_cores[2].p99, 1.0, 1e-6);
  EXPECT_NEAR(c->cpu_cores[2].max, 1.0, 1e-6);
  // The 10 s window holds the last two intervals only.
  EXPECT_EQ(c->cpu_cores[0].samples, 2U);
  EXPECT_NEAR(c->cpu_cores[0].p50, 0.9, 1e-6);
  EXPECT_EQ(c->working_set_bytes[0].samples, 2U);
  EXPECT_NEAR(c->working_set_bytes[0].max, 50 << 20, 1);
}

TEST_F(DetectorTest, CounterResetSkipsOneRateAndMissingSamplesAreNotZeros) {
  start(options());
  FakePod& p = pod("app");
  p.cpu_cores = 1;
  cycles(4);
  // The cgroup is recreated: its counter starts again from zero.
  p.container.set(CgroupField::kCpuUsageNs, 0);
  p.pod.set(CgroupField::kCpuUsageNs, 0);
  cycles(1);
  const ContainerSignals* c = containerSignals("app");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->cpu_cores[2].samples, 3U);  // not 4: the reset interval has no rate
  EXPECT_NEAR(c->cpu_cores[2].p50, 1.0, 1e-6);
  cycles(1);
  EXPECT_EQ(containerSignals("app")->cpu_cores[2].samples, 4U);
  // Absent for one cycle: kept, and the next rate spans the gap.
  p.present = false;
  cycles(1);
  EXPECT_EQ(containerSignals("app"), nullptr);
  p.present = true;
  cycles(1);
  ASSERT_NE(containerSignals("app"), nullptr);
  EXPECT_EQ(containerSignals("app")->cpu_cores[2].samples, 5U);
  EXPECT_NEAR(containerSignals("app")->cpu_cores[2].max, 1.0, 1e-6);
  // Absent for three cycles: forgotten, so it starts over.
  p.present = false;
  cycles(3);
  EXPECT_EQ(detector_->stats().containers, 0U);
  p.present = true;
  cycles(1);
  EXPECT_EQ(containerSignals("app")->cpu_cores[2].samples, 0U);
}

TEST_F(DetectorTest, ContainerAppearingMidWindowHasOnlyItsOwnSamples) {
  start(options());
  pod("old").cpu_cores = 0.5;
  cycles(10);
  pod("new").cpu_cores = 0.25;
  cycles(3);
  EXPECT_EQ(containerSignals("old")->cpu_cores[1].samples, 12U);
  EXPECT_EQ(containerSignals("new")->cpu_cores[1].samples, 2U);
  EXPECT_NEAR(containerSignals("new")->cpu_cores[1].p50, 0.25, 1e-6);
}

TEST_F(DetectorTest, OwnThrottlingAndOwnLimitAreSelfStall) {
  start(options());
  FakePod& throttled = pod("throttled");
  throttled.cpu_cores = 0.2;
  throttled.throttled_ratio = 1.0;
  throttled.throttled_share = 0.5;
  throttled.stall[0] = 0.8;  // measured: a pod held at its quota shows ~80% cpu some
  FakePod& full = pod("full");
  full.memory_limit = 100 << 20;
  full.working_set = 95 << 20;
  full.stall[1] = 0.3;
  FakePod& mild = pod("mild");
  mild.throttled_ratio = 0.05;  // under self_throttle_ratio: only its throttled time is its own
  mild.throttled_share = 0.1;
  mild.stall[0] = 0.4;
  cycles(3);
  const PodSignals* t = podSignals("throttled");
  ASSERT_NE(t, nullptr);
  EXPECT_NEAR(*t->stall[0].total, 0.8, 1e-3);
  EXPECT_NEAR(*t->stall[0].self, 0.8, 1e-3);
  EXPECT_NEAR(*t->stall[0].others, 0.0, 1e-3);
  const PodSignals* f = podSignals("full");
  EXPECT_NEAR(*f->stall[1].self, 0.3, 1e-3);
  EXPECT_NEAR(*f->stall[1].others, 0.0, 1e-3);
  const PodSignals* m = podSignals("mild");
  EXPECT_NEAR(*m->stall[0].self, 0.1, 1e-3);
  EXPECT_NEAR(*m->stall[0].others, 0.3, 1e-3);
  // Throttling for many intervals is never a verdict.
  cycles(20);
  EXPECT_TRUE(detector_->state().verdicts.empty());
  // Without PSI files there is no stall reading at all, not a zero.
  FakePod& nopsi = pod("nopsi");
  nopsi.psi = false;
  cycles(2);
  EXPECT_FALSE(podSignals("nopsi")->stall[0].total.has_value());
}

TEST_F(DetectorTest, CpuAntagonistIsNamedAndTheVerdictEndsWithIt) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& hog = pod("hog");
  FakePod& bystander = pod("bystander");
  victim.cpu_cores = 1.0;
  victim.stall[0] = 0.01;
  bystander.cpu_cores = 0.3;
  cycles(20);
  EXPECT_TRUE(detector_->state().verdicts.empty());
  // The hog starts: the victim gets half the CPU and waits the other half; the hog waits too.
  hog.cpu_cores = 1.0;
  hog.stall[0] = 0.5;
  victim.cpu_cores = 0.5;
  victim.stall[0] = 0.5;
  int detected_after = -1;
  for (int i = 1; i <= 6 && detected_after < 0; ++i) {
    cycles(1);
    if (verdict("victim", Resource::kCpu) != nullptr) detected_after = i;
  }
  EXPECT_EQ(detected_after, 1);  // twice over both thresholds: no second interval needed
  const Verdict* v = verdict("victim", Resource::kCpu);
  ASSERT_NE(v, nullptr);
  ASSERT_FALSE(v->antagonists.empty());
  EXPECT_EQ(v->antagonists[0].pod_name, "hog");
  EXPECT_TRUE(v->antagonists[0].named);
  EXPECT_GT(v->antagonists[0].score, 0.9);
  EXPECT_GT(v->score, 3);
  EXPECT_NEAR(v->excess, 0.49, 0.01);
  EXPECT_EQ(verdict("hog", Resource::kCpu), nullptr);  // its own activity rose first
  for (const auto& a : v->antagonists) EXPECT_NE(a.pod_name, "bystander");  // steady: no rise
  const auto& node = detector_->state().node_signals;
  EXPECT_NEAR(node.interference_score, 0.49, 0.01);
  EXPECT_EQ(node.victims, 1);
  EXPECT_EQ(node.antagonists, 1);
  EXPECT_NE(node.summary.find("ns/victim cpu"), std::string::npos) << node.summary;
  EXPECT_NE(node.summary.find("from ns/hog"), std::string::npos) << node.summary;

  // A long-running antagonist keeps its verdict even once both series are flat.
  cycles(40);
  v = verdict("victim", Resource::kCpu);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->antagonists[0].pod_name, "hog");
  EXPECT_TRUE(v->antagonists[0].named);

  // The hog stops: the verdict ends within victim_n - victim_k + 1 intervals.
  hog.cpu_cores = 0;
  hog.stall[0] = 0;
  victim.cpu_cores = 1.0;
  victim.stall[0] = 0.01;
  cycles(3);
  EXPECT_EQ(verdict("victim", Resource::kCpu), nullptr);
  EXPECT_EQ(detector_->state().node_signals.interference_score, 0);
  // The baseline did not learn the interference.
  EXPECT_LT(*podSignals("victim")->baseline[0], 0.05);
}

TEST_F(DetectorTest, ModerateStallNeedsTwoIntervalsAndAStoppedAntagonistIsNotBlamed) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& hog = pod("hog");
  victim.cpu_cores = 1.0;
  cycles(20);
  hog.cpu_cores = 0.25;
  victim.cpu_cores = 0.75;
  victim.stall[0] = 0.25;  // over victim_min_stall (0.15), under twice it
  cycles(1);
  EXPECT_EQ(verdict("victim", Resource::kCpu), nullptr);
  cycles(1);
  ASSERT_NE(verdict("victim", Resource::kCpu), nullptr);
  // The hog stops halfway through an interval: the victim still waited part of it, but the hog is
  // no longer active and is not named for it.
  hog.cpu_cores = 0.1;
  victim.stall[0] = 0.2;
  cycles(1);
  EXPECT_EQ(verdict("victim", Resource::kCpu), nullptr);
}

// Memory stall is 0 at a pod's baseline: one interval of it, over 2 x victim_z and memory's onset
// stall (0.1), is a verdict at once, while CPU at twice that stall waits for a second interval
// (above). What lingers after the antagonist has freed its memory is not blamed on it.
TEST_F(DetectorTest, MemoryStallIsAVerdictInItsFirstIntervalCpuNeedsTwo) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& filler = pod("filler");
  victim.working_set = 200 << 20;
  filler.working_set = 10 << 20;
  cycles(15);
  filler.working_set = 500 << 20;
  victim.working_set = 150 << 20;
  victim.stall[1] = 0.13;  // under cpu's victim_min_stall (0.15), over memory's (0.1)
  cycles(1);
  const Verdict* v = verdict("victim", Resource::kMemory);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->high_intervals, 1);
  ASSERT_FALSE(v->antagonists.empty());
  EXPECT_EQ(v->antagonists[0].pod_name, "filler");
  filler.working_set = 10 << 20;
  victim.stall[1] = 0.3;
  cycles(1);
  EXPECT_EQ(verdict("victim", Resource::kMemory), nullptr);

  // With the memory onset stall raised to CPU's, the same first interval is not enough.
  DetectorOptions o = options();
  o.onset_min_stall[1] = 0.3;
  start(o);
  victim.working_set = 200 << 20;
  victim.stall[1] = 0;
  filler.working_set = 10 << 20;
  cycles(15);
  filler.working_set = 500 << 20;
  victim.working_set = 150 << 20;
  victim.stall[1] = 0.2;
  cycles(1);
  EXPECT_EQ(verdict("victim", Resource::kMemory), nullptr);
  cycles(1);
  EXPECT_NE(verdict("victim", Resource::kMemory), nullptr);
}

TEST_F(DetectorTest, SecondAntagonistIsRankedOverItsOwnEpisode) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& first = pod("first");
  FakePod& second = pod("second");
  victim.cpu_cores = 1.0;
  cycles(20);
  first.cpu_cores = 1.0;
  victim.cpu_cores = 0.5;
  victim.stall[0] = 0.5;
  cycles(9);
  ASSERT_NE(verdict("victim", Resource::kCpu), nullptr);
  EXPECT_EQ(verdict("victim", Resource::kCpu)->antagonists[0].pod_name, "first");
  first.cpu_cores = 0;
  victim.cpu_cores = 1.0;
  victim.stall[0] = 0;
  cycles(5);
  EXPECT_EQ(verdict("victim", Resource::kCpu), nullptr);
  // Another pod starts within the same correlation window: blamed on its own episode, not
  // diluted by the first one's.
  second.cpu_cores = 1.0;
  victim.cpu_cores = 0.5;
  victim.stall[0] = 0.5;
  cycles(2);
  const Verdict* v = verdict("victim", Resource::kCpu);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->antagonists[0].pod_name, "second");
  EXPECT_GT(v->antagonists[0].score, 0.9);
  for (const auto& a : v->antagonists) EXPECT_NE(a.pod_name, "first");
}

TEST_F(DetectorTest, MemoryAntagonistRankedByUsageGrowth) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& filler = pod("filler");
  FakePod& other = pod("other");
  victim.working_set = 200 << 20;
  filler.working_set = 10 << 20;
  other.working_set = 30 << 20;
  cycles(15);
  filler.working_set = 500 << 20;
  filler.stall[1] = 0.4;
  victim.working_set = 120 << 20;  // its cache is reclaimed
  victim.stall[1] = 0.35;
  other.working_set = 45 << 20;  // grows a little, under the rise threshold
  cycles(4);
  const Verdict* v = verdict("victim", Resource::kMemory);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->antagonists.size(), 1U);
  EXPECT_EQ(v->antagonists[0].pod_name, "filler");
  EXPECT_EQ(v->antagonists[0].activity, "memory_usage_bytes");
  EXPECT_EQ(verdict("filler", Resource::kMemory), nullptr);
}

// The same pod did harmless work shortly before (the victim did not stall): the ranking looks at
// the episode and a short lead-in (episode_lead), so that earlier work, still inside the
// correlation window, does not blur the correlation of what hurts now.
TEST_F(DetectorTest, AntagonistsEarlierHarmlessActivityDoesNotHideIt) {
  // The hog holds 400 MiB (the node has room), lets go, then takes 500 MiB while the victim
  // stalls.
  const auto run = [this](const DetectorOptions& o) {
    start(o);
    pods_.clear();
    now_ = 1000;
    FakePod& victim = pod("victim");
    FakePod& hog = pod("hog");
    victim.working_set = 200 << 20;
    hog.working_set = 10 << 20;
    cycles(20);
    hog.working_set = 400 << 20;
    cycles(10);
    hog.working_set = 10 << 20;
    cycles(4);
    hog.working_set = 500 << 20;
    victim.working_set = 120 << 20;
    victim.stall[1] = 0.4;
    cycles(2);
    return verdict("victim", Resource::kMemory);
  };
  const Verdict* v = run(options());
  ASSERT_NE(v, nullptr);
  ASSERT_FALSE(v->antagonists.empty());
  EXPECT_EQ(v->antagonists[0].pod_name, "hog");
  EXPECT_GE(v->antagonists[0].score, 0.6);

  // Looking back over the whole correlation window, the earlier work blurs it below the
  // threshold: what the lead-in bound is for.
  auto o = options();
  o.episode_lead = o.correlation_window;
  EXPECT_EQ(run(o), nullptr);
}

// Measured on this kernel: a victim whose page cache is reclaimed refaults it, the kernel
// activates the refaulted pages, and its working set grows while its usage falls. That is not
// the victim starting to do more.
TEST_F(DetectorTest, RefaultingVictimWhoseWorkingSetGrowsIsStillTheVictim) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& hog = pod("hog");
  victim.working_set = 8 << 20;
  victim.usage = 264 << 20;  // 256 MiB of inactive page cache
  hog.working_set = 4 << 20;
  cycles(20);
  hog.working_set = 400 << 20;
  hog.stall[1] = 0.3;
  victim.working_set = 180 << 20;
  victim.usage = 190 << 20;
  victim.stall[1] = 0.45;
  victim.stall[2] = 0.5;
  cycles(2);
  const Verdict* v = verdict("victim", Resource::kMemory);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->antagonists[0].pod_name, "hog");
  // The stall goes on: the verdict holds, and the baseline has not learnt it.
  cycles(20);
  ASSERT_NE(verdict("victim", Resource::kMemory), nullptr);
  EXPECT_LT(*podSignals("victim")->baseline[1], 0.05);
  EXPECT_EQ(verdict("hog", Resource::kMemory), nullptr);
}

TEST_F(DetectorTest, StallWithNoNeighborChangeIsNoVerdict) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& neighbor = pod("neighbor");
  victim.cpu_cores = 1;
  neighbor.cpu_cores = 0.5;
  cycles(20);
  // The victim's own extra threads queue behind each other: stall, with no neighbor changing.
  victim.stall[0] = 0.6;
  cycles(10);
  EXPECT_TRUE(detector_->state().verdicts.empty());
  const PodSignals* p = podSignals("victim");
  EXPECT_GT(*p->victim_score[0], 3);  // high, but no one to blame
  // A pod whose own activity jumps along with its stall is its own cause.
  FakePod& burst = pod("burst");
  burst.cpu_cores = 0.1;
  cycles(20);
  burst.cpu_cores = 1.5;
  burst.stall[0] = 0.5;
  neighbor.cpu_cores = 1.0;  // a neighbor rising at the same time does not make it a victim
  cycles(3);
  EXPECT_EQ(verdict("burst", Resource::kCpu), nullptr);
}

TEST_F(DetectorTest, NoVerdictBeforeTheBaselineIsWarm) {
  start(options());
  FakePod& victim = pod("victim");
  FakePod& hog = pod("hog");
  victim.stall[0] = 0.5;
  hog.cpu_cores = 1;
  cycles(3);
  EXPECT_TRUE(detector_->state().verdicts.empty());
  EXPECT_FALSE(podSignals("victim")->victim_score[0].has_value());
}

TEST_F(DetectorTest, RecommendationFromTheHistogramAndTheRequest) {
  start(options());
  FakePod& p = pod("app");
  p.cpu_cores = 0.5;
  p.working_set = 300 << 20;
  p.container.set(CgroupField::kCpuShares, 2048);  // request 2 cores
  p.memory_limit = 1 << 30;
  cycles(5);
  EXPECT_FALSE(containerSignals("app")->recommendation.cpu_cores.has_value());  // 4 samples
  cycles(10);
  const auto& rec = containerSignals("app")->recommendation;
  DecayingHistogram cpu({0.01, 1.05, 86400});
  DecayingHistogram mem({1e7, 1.05, 86400});
  const double cpu_expected = cpu.bucketUpper(cpu.bucketOf(0.5)) * 1.15;
  const double mem_expected = mem.bucketUpper(mem.bucketOf(300 << 20)) * 1.15;
  ASSERT_TRUE(rec.cpu_cores.has_value());
  EXPECT_NEAR(*rec.cpu_cores, cpu_expected, 1e-3);
  ASSERT_TRUE(rec.memory_bytes.has_value());
  EXPECT_NEAR(*rec.memory_bytes, mem_expected, 1);
  EXPECT_NEAR(*rec.cpu_request_cores, 2.0, 1e-9);
  EXPECT_NEAR(*rec.cpu_provisioning_ratio, 2.0 / cpu_expected, 1e-6);
  EXPECT_NEAR(*rec.memory_provisioning_ratio, (1 << 30) / mem_expected, 1e-6);
  EXPECT_NEAR(*containerSignals("app")->memory_limit_ratio, 300.0 / 1024, 1e-6);
}

TEST_F(DetectorTest, MemoryRecommendationFollowsPeaksPerInterval) {
  auto o = options();
  o.memory_peak_interval = std::chrono::seconds(60);
  start(o);
  FakePod& p = pod("app");
  p.cpu_cores = 0.1;
  // Twelve intervals of a minute: each peaks once at 400 MiB, sits at 100 MiB otherwise.
  for (int minute = 0; minute < 12; ++minute) {
    p.working_set = 400 << 20;
    cycles(1);
    p.working_set = 100 << 20;
    cycles(11);
  }
  DecayingHistogram mem({1e7, 1.05, 86400});
  const double expected = mem.bucketUpper(mem.bucketOf(400 << 20)) * 1.15;
  EXPECT_NEAR(*containerSignals("app")->recommendation.memory_bytes, expected, 1);
}

TEST_F(DetectorTest, MaxContainersBoundsWhatIsTracked) {
  auto o = options();
  o.max_containers = 3;
  start(o);
  pod("a");
  pod("b");
  cycles(2);
  EXPECT_EQ(detector_->stats().pods + detector_->stats().containers, 3U);
  EXPECT_GT(detector_->stats().dropped, 0U);
}

}  // namespace
}  // namespace nodewarden::detector
