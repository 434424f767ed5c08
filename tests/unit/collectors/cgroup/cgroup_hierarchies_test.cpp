// CgroupHierarchies on the fixture trees and on temp trees the tests change: which hierarchies,
// which roles, where kubelet's tree is found, and when a search says the layout changed.
#include "collectors/cgroup/cgroup_hierarchies.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace nodewarden::cgroup {
namespace {

namespace fs = std::filesystem;

fs::path fixtureRoot(const std::string& name) {
  return fs::path(NODEWARDEN_FIXTURES) / "cgroup" / name / "sys/fs/cgroup";
}

struct Errors {
  SelfMetrics self;
  ErrorReporter errors{self.registry()};
};

const Hierarchy* byRole(const CgroupHierarchies& hs, unsigned role) {
  for (const auto& h : hs.all()) {
    if ((h.roles & role) != 0) return &h;
  }
  return nullptr;
}

TEST(CgroupHierarchies, OneMountReachedByTwoNamesIsOneHierarchyWithBothRoles) {
  Errors e;
  CgroupHierarchies hs(fixtureRoot("hybrid-systemd-crio"), 8, e.errors);
  EXPECT_TRUE(hs.search()) << "the first search finds a layout where there was none";
  ASSERT_EQ(hs.size(), 4U) << "cpu+cpuacct, memory, blkio, unified";
  const Hierarchy* cpu = byRole(hs, kRoleCpuV1);
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu, byRole(hs, kRoleCpuAcct));
  EXPECT_EQ(byRole(hs, kRolePsi)->label, "unified");
  EXPECT_EQ(byRole(hs, kRoleCpuV2), nullptr);
  ASSERT_GE(hs.primary(), 0);
  EXPECT_EQ(&hs[static_cast<std::size_t>(hs.primary())], cpu) << "cpuacct before memory";
  EXPECT_EQ(hs.rootCount(), 4U);
  for (const auto& h : hs.all()) EXPECT_EQ(h.roots, std::vector<std::string>{"kubepods.slice"});
}

TEST(CgroupHierarchies, EachControllerMayNestKubeletsTreeElsewhere) {
  Errors e;
  CgroupHierarchies hs(fixtureRoot("v1-cgroupfs-containerd"), 8, e.errors);
  hs.search();
  ASSERT_EQ(hs.size(), 4U);
  EXPECT_EQ(byRole(hs, kRoleMemV1)->roots,
            std::vector<std::string>{"machine.slice/node1/kubepods"});
  EXPECT_EQ(byRole(hs, kRoleCpuV1)->roots, std::vector<std::string>{"kubepods"});
}

TEST(CgroupHierarchies, TheSearchStopsAtMaxDepth) {
  Errors e;
  CgroupHierarchies shallow(fixtureRoot("v2-systemd-containerd"), 2, e.errors);
  shallow.search();
  ASSERT_EQ(shallow.size(), 1U);
  EXPECT_TRUE(shallow[0].roots.empty());
  EXPECT_EQ(shallow.primary(), -1) << "kubepods.slice sits at depth 3";

  CgroupHierarchies deep(fixtureRoot("v2-systemd-containerd"), 8, e.errors);
  deep.search();
  EXPECT_EQ(deep[0].label, "v2");
  EXPECT_EQ(deep[0].roots, std::vector<std::string>{"system.slice/kind-node.scope/kubepods.slice"});
  EXPECT_EQ(deep.primary(), 0);
}

TEST(CgroupHierarchies, ASearchSaysWhetherTheLayoutChanged) {
  test_support::TempDir tmp("nodewarden-hierarchies");
  std::ofstream(tmp.path() / "cgroup.controllers") << "cpu memory io\n";
  Errors e;
  CgroupHierarchies hs(tmp.path(), 8, e.errors);
  EXPECT_TRUE(hs.search()) << "a v2 hierarchy where there was none";
  EXPECT_EQ(hs.primary(), -1) << "no kubepods yet";
  EXPECT_FALSE(hs.search());
  fs::create_directories(tmp.path() / "a/kubepods");
  EXPECT_TRUE(hs.search());
  EXPECT_EQ(hs.primary(), 0);
  EXPECT_FALSE(hs.search()) << "the same layout found again";
  fs::create_directories(tmp.path() / "b/kubepods.slice");
  EXPECT_TRUE(hs.search()) << "a second root";
  EXPECT_EQ(hs[0].roots, (std::vector<std::string>{"a/kubepods", "b/kubepods.slice"}));
  fs::remove(tmp.path() / "a/kubepods");
  EXPECT_TRUE(hs.search());
  EXPECT_EQ(hs.rootCount(), 1U);
}

TEST(CgroupHierarchies, NoHierarchyIsCountedNotFatal) {
  test_support::TempDir tmp("nodewarden-hierarchies");
  Errors e;
  CgroupHierarchies hs(tmp.path() / "absent", 8, e.errors);
  EXPECT_FALSE(hs.search()) << "nothing before, nothing now";
  EXPECT_EQ(hs.size(), 0U);
  EXPECT_EQ(hs.primary(), -1);
  EXPECT_EQ(e.errors.count("cgroup", "no_hierarchy"), 1.0);
}

}  // namespace
}  // namespace nodewarden::cgroup
