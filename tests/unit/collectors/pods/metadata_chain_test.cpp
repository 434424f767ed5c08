// The metadata sources answering as one: first answer wins, empty fields filled from later ones.
#include "collectors/pods/metadata_chain.h"

#include <gtest/gtest.h>

#include <map>

namespace nodewarden::pods {
namespace {

class Known final : public ContainerMetadata {
 public:
  void refresh() override { ++refreshes; }
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override {
    auto it = containers.find(std::string(id));
    return it == containers.end() ? std::nullopt : std::optional(it->second);
  }
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override {
    auto it = pods.find(std::string(uid));
    return it == pods.end() ? std::nullopt : std::optional(it->second);
  }
  [[nodiscard]] std::uint64_t generation() const override { return generation_number; }
  void requestRefresh() override { ++refresh_requests; }
  [[nodiscard]] bool namesImages() const override { return images; }
  std::map<std::string, ContainerIdentity> containers;
  std::map<std::string, PodIdentity> pods;
  int refreshes = 0;
  std::uint64_t generation_number = 0;
  int refresh_requests = 0;
  bool images = false;
};

PodIdentity podId(const char* ns, const char* name, const char* job) {
  PodIdentity id;
  id.namespace_name = ns;
  id.pod_name = name;
  id.job = job;
  return id;
}

TEST(MetadataChain, FirstAnswerWinsAndLaterSourcesFillItsGaps) {
  auto runtime = std::make_unique<Known>();
  auto kubelet = std::make_unique<Known>();
  runtime->containers["c1"] = {"u1", "data", "etl-load-q8w4n", "load", "etl:1.2", false};
  runtime->pods["u1"] = podId("data", "etl-load-q8w4n", "");
  kubelet->containers["c1"] = {"u1", "other", "other", "other", "", false};
  kubelet->containers["c2"] = {"u2", "web", "web-1", "nginx", "", false};
  kubelet->pods["u1"] = podId("other", "other", "etl-load");
  Known* r = runtime.get();
  MetadataChain chain;
  chain.add(std::move(runtime));
  chain.add(std::move(kubelet));
  chain.refresh();
  EXPECT_EQ(r->refreshes, 1);
  const auto c1 = chain.container("c1");
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->namespace_name, "data");
  EXPECT_EQ(c1->image, "etl:1.2");
  EXPECT_EQ(chain.container("c2")->container_name, "nginx") << "only the later source knows it";
  const auto p = chain.pod("u1");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->pod_name, "etl-load-q8w4n");
  EXPECT_EQ(p->job, "etl-load") << "the runtime's state cannot tell; the kubelet can";
  EXPECT_FALSE(chain.pod("nope"));
  EXPECT_FALSE(chain.container("nope"));
}

TEST(JobOfPod, OwnerFirstThenTheJobControllersLabels) {
  const std::string a = "from-label", b = "from-batch-label";
  EXPECT_EQ(jobOfPod("Job", "etl", &a, &b), "etl");
  EXPECT_EQ(jobOfPod("ReplicaSet", "web-7f", nullptr, nullptr), "");
  EXPECT_EQ(jobOfPod("", "", &a, nullptr), "from-label");
  EXPECT_EQ(jobOfPod("", "", &a, &b), "from-batch-label");
  EXPECT_EQ(jobOfPod("Job", "", nullptr, nullptr), "");
}

// The chain's generation moves when any source's does; an early refresh is asked of every source;
// images are told when any source tells them.
TEST(MetadataChain, GenerationRefreshRequestsAndImagesAreEverySources) {
  auto runtime = std::make_unique<Known>();
  auto kubelet = std::make_unique<Known>();
  Known* r = runtime.get();
  Known* k = kubelet.get();
  MetadataChain chain;
  chain.add(std::move(runtime));
  chain.add(std::move(kubelet));
  const auto g0 = chain.generation();
  k->generation_number = 3;
  const auto g1 = chain.generation();
  EXPECT_NE(g1, g0);
  r->generation_number = 1;
  EXPECT_NE(chain.generation(), g1);
  chain.requestRefresh();
  EXPECT_EQ(r->refresh_requests, 1);
  EXPECT_EQ(k->refresh_requests, 1);
  EXPECT_FALSE(chain.namesImages());
  k->images = true;
  EXPECT_TRUE(chain.namesImages());
}

}  // namespace
}  // namespace nodewarden::pods
