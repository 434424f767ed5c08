// LogDirNames on log directories written by the test, and CgroupNamer on cgroups the test holds
// (the collector's tests cover the two together on fixture trees): which source names what, when
// the sources are asked, and when a hold ends.
#include "collectors/cgroup/cgroup_naming.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pipeline/container_metadata.h"
#include "tests/support/temp_dir.h"

namespace nodewarden::cgroup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kUid = "11111111-2222-3333-4444-555555555551";
const std::string kId = std::string(63, 'a') + "1";

// kubelet's log layout below a temp dir: var/log/pods and var/log/containers.
struct LogTree {
  LogTree() : tmp("nodewarden-naming") {
    fs::create_directories(pods());
    fs::create_directories(tmp.path() / "var/log/containers");
  }
  [[nodiscard]] fs::path pods() const { return tmp.path() / "var/log/pods"; }
  void pod(const std::string& ns, const std::string& name, const std::string& uid) const {
    fs::create_directories(pods() / (ns + "_" + name + "_" + uid));
  }
  void container(const std::string& pod, const std::string& ns, const std::string& name,
                 const std::string& id) const {
    std::ofstream(tmp.path() / "var/log/containers" /
                  (pod + "_" + ns + "_" + name + "-" + id + ".log"));
  }
  test_support::TempDir tmp;
};

TEST(LogDirNames, PodsFromTheirDirectoriesAndContainersFromTheirLinks) {
  LogTree t;
  t.pod("spark", "driver-0", kUid);
  t.pod("bad", "no-uid", "not-a-uid");
  fs::create_directories(t.pods() / "no_underscores-at-all");
  t.container("driver-0", "spark", "spark-driver", kId);
  t.container("driver-0", "spark", "short", "abc");
  LogDirNames names;
  names.scan(t.pods());
  const auto* p = names.pod(kUid);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->namespace_name, "spark");
  EXPECT_EQ(p->pod_name, "driver-0");
  ASSERT_NE(names.container(kId), nullptr);
  EXPECT_EQ(*names.container(kId), "spark-driver");
  EXPECT_EQ(names.container("abc"), nullptr) << "not a 64-hex runtime id";

  fs::remove_all(t.pods() / ("spark_driver-0_" + kUid));
  names.scan(t.pods());
  EXPECT_EQ(names.pod(kUid), nullptr) << "a scan replaces what the last found";
  names.scan(t.tmp.path() / "absent/pods");
  EXPECT_EQ(names.container(kId), nullptr);
}

// A source that knows the one pod and container of these tests once taught; a lesson moves its
// generation.
class TaughtMetadata final : public ContainerMetadata {
 public:
  void refresh() override {}
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override {
    ++lookups;
    if (lessons == 0 || id != kId) return std::nullopt;
    return ContainerIdentity{kUid, "spark", "driver-0", "spark-driver", "apache/spark:3", false};
  }
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override {
    ++lookups;
    if (lessons == 0 || uid != kUid) return std::nullopt;
    PodIdentity p;
    p.namespace_name = "spark";
    p.pod_name = "driver-0";
    return p;
  }
  [[nodiscard]] std::uint64_t generation() const override { return lessons; }
  void requestRefresh() override { ++refresh_requests; }
  void learn() { ++lessons; }

  std::uint64_t lessons = 0;
  mutable int lookups = 0;
  int refresh_requests = 0;
};

// A pod and its container, as the tracker would hold them, and the namer.
struct Namer {
  explicit Namer(std::chrono::milliseconds hold) {
    options.log_root = "/nonexistent";
    options.metadata = &meta;
    options.hold_unnamed = hold;
    pod.sample.pod_uid = kUid;
    container.sample.pod_uid = kUid;
    container.sample.container_id = kId;
    pod.state.found_at = container.state.found_at = now;
  }
  void update(bool found_new) {
    namer.update(now, found_new, [this](const auto& f) {
      for (Entry* e : {&pod, &container}) f(e->sample, e->state);
    });
  }
  struct Entry {
    CgroupSample sample;
    NameState state;
  };
  TaughtMetadata meta;
  CgroupCollectorOptions options;
  CgroupNamer namer{options};
  Entry pod;
  Entry container;
  Clock::time_point now = Clock::time_point{} + 1h;
};

TEST(CgroupNamer, NamesWhenTheSourceMovesAndAsksNothingWhileItDoesNot) {
  Namer n(0ms);
  n.update(true);
  EXPECT_EQ(n.container.sample.pod_name, "");
  EXPECT_FALSE(n.container.state.named);
  const int asked = n.meta.lookups;
  EXPECT_GT(asked, 0);
  for (int i = 0; i < 3; ++i) {
    n.now += 1s;
    n.update(false);
  }
  EXPECT_EQ(n.meta.lookups, asked) << "no source moved, nothing found: nothing asked";
  n.meta.learn();
  n.now += 1s;
  n.update(false);
  EXPECT_EQ(n.container.sample.container_name, "spark-driver");
  EXPECT_EQ(n.container.sample.image, "apache/spark:3");
  EXPECT_EQ(n.pod.sample.pod_name, "driver-0");
  EXPECT_TRUE(n.container.state.named);
  EXPECT_TRUE(n.pod.state.named);
  const int named = n.meta.lookups;
  n.meta.learn();  // moves again: the named ones are not asked about again
  n.now += 1s;
  n.update(false);
  EXPECT_EQ(n.meta.lookups, named);
}

TEST(CgroupNamer, AnUnnamedCgroupIsHeldUntilTheHoldEndsAndTheSourcesAreAskedMeanwhile) {
  Namer n(10s);
  n.update(true);
  EXPECT_TRUE(n.container.sample.names_pending);
  EXPECT_TRUE(n.pod.sample.names_pending);
  EXPECT_EQ(n.meta.refresh_requests, 1);
  n.now += 9s;
  n.update(false);
  EXPECT_TRUE(n.container.sample.names_pending);
  EXPECT_EQ(n.meta.refresh_requests, 2) << "again each cycle while held";
  n.now += 1s;
  n.update(false);
  EXPECT_FALSE(n.container.sample.names_pending) << "the hold is over: exported as known";
  EXPECT_FALSE(n.pod.sample.names_pending);
  EXPECT_TRUE(CgroupNamer::awaitsNames(n.container.sample, n.container.state, false));
  EXPECT_EQ(n.meta.refresh_requests, 2);
}

TEST(CgroupNamer, TheLogDirectoriesNameWhatTheSourcesDoNotKnow) {
  LogTree t;
  t.pod("spark", "driver-0", kUid);
  t.container("driver-0", "spark", "spark-driver", kId);
  Namer n(10s);
  n.options.log_root = t.pods();
  n.options.metadata = nullptr;
  n.update(true);
  EXPECT_EQ(n.container.sample.namespace_name, "spark");
  EXPECT_EQ(n.container.sample.container_name, "spark-driver");
  EXPECT_TRUE(n.container.state.named) << "without a source, no image is awaited";
  EXPECT_FALSE(n.container.sample.names_pending);
}

}  // namespace
}  // namespace nodewarden::cgroup
