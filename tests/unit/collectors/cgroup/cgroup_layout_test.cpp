// Kubelet's cgroup names, both drivers and every runtime.
#include "collectors/cgroup/cgroup_layout.h"

#include <gtest/gtest.h>

namespace nodewarden::cgroup {
namespace {

const std::string kId(64, 'a');

TEST(Layout, KubepodsRoots) {
  EXPECT_TRUE(isKubepodsRootName("kubepods"));
  EXPECT_TRUE(isKubepodsRootName("kubepods.slice"));
  EXPECT_FALSE(isKubepodsRootName("kubepods-burstable.slice"));
}

TEST(Layout, QosDirs) {
  EXPECT_EQ(parseQosDir("burstable"), QosClass::kBurstable);
  EXPECT_EQ(parseQosDir("besteffort"), QosClass::kBestEffort);
  EXPECT_EQ(parseQosDir("kubepods-burstable.slice"), QosClass::kBurstable);
  EXPECT_EQ(parseQosDir("kubepods-besteffort.slice"), QosClass::kBestEffort);
  EXPECT_FALSE(parseQosDir("guaranteed").has_value());
}

TEST(Layout, PodDirsBothDrivers) {
  auto a = parsePodDir("pod11111111-2222-3333-4444-555555555551");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->uid_raw, "11111111-2222-3333-4444-555555555551");
  EXPECT_EQ(a->qos_hint, QosClass::kUnknown);
  auto b = parsePodDir("kubepods-burstable-pod11111111_2222_3333_4444_555555555551.slice");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->qos_hint, QosClass::kBurstable);
  auto c = parsePodDir("kubepods-pod11111111_2222_3333_4444_555555555551.slice");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->qos_hint, QosClass::kGuaranteed);
  EXPECT_FALSE(parsePodDir("pod123"));
  EXPECT_FALSE(parsePodDir("kubepods-burstable.slice"));
  EXPECT_FALSE(parsePodDir("system.slice"));
}

TEST(Layout, UidNormalized) {
  std::string out;
  ASSERT_TRUE(normalizePodUid("11111111_2222_3333_4444_555555555551", out));
  EXPECT_EQ(out, "11111111-2222-3333-4444-555555555551");
  EXPECT_FALSE(normalizePodUid("11111111x2222_3333_4444_555555555551", out));
  EXPECT_FALSE(normalizePodUid("1111111g-2222-3333-4444-555555555551", out));
}

TEST(Layout, ContainerDirsEveryRuntime) {
  EXPECT_EQ(parseContainerDir(kId), kId);
  EXPECT_EQ(parseContainerDir("cri-containerd-" + kId + ".scope"), kId);
  EXPECT_EQ(parseContainerDir("crio-" + kId + ".scope"), kId);
  EXPECT_EQ(parseContainerDir("docker-" + kId + ".scope"), kId);
  EXPECT_EQ(parseContainerDir("crio-" + kId), kId);  // CRI-O, cgroupfs driver
  EXPECT_FALSE(parseContainerDir("crio-conmon-" + kId + ".scope"));
  EXPECT_FALSE(parseContainerDir("podman-" + kId + ".scope"));
  EXPECT_FALSE(parseContainerDir(kId.substr(1)));
  EXPECT_FALSE(parseContainerDir(std::string(64, 'G')));
}

}  // namespace
}  // namespace nodewarden::cgroup
