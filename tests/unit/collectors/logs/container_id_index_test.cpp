// Container ids from kubelet's /var/log/containers links, whatever the links' absolute prefix.
#include "collectors/logs/container_id_index.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace nodewarden::logs {
namespace {

namespace fs = std::filesystem;

class ContainerIdIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::mt19937_64 rng{std::random_device{}()};
    dir_ = fs::temp_directory_path() / ("nodewarden-ids-" + std::to_string(rng()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void link(const std::string& name, const std::string& target) {
    fs::create_symlink(target, dir_ / name);
  }
  fs::path dir_;
};

const std::string kId1(64, 'a');
const std::string kId2 = std::string(63, 'b') + "2";

TEST_F(ContainerIdIndexTest, KeysOnTheTargetsLastComponentsNotItsPrefix) {
  // Absolute targets as kubelet writes them, valid on the host, not where the agent mounts it.
  link("driver-0_spark_driver-" + kId1 + ".log",
       "/var/log/pods/spark_driver-0_11111111-2222-3333-4444-555555555551/driver/0.log");
  link("driver-0_spark_driver-" + kId2 + ".log",
       "/var/log/pods/spark_driver-0_11111111-2222-3333-4444-555555555551/driver/1.log");
  ContainerIdIndex index;
  index.refresh(dir_);
  EXPECT_EQ(index.size(), 2U);
  const std::string pod = "spark_driver-0_11111111-2222-3333-4444-555555555551";
  EXPECT_EQ(index.lookup(pod, "driver", 0), kId1);
  EXPECT_EQ(index.lookup(pod, "driver", 1), kId2) << "a restart has its own id";
  EXPECT_EQ(index.lookup(pod, "driver", 2), "");
  EXPECT_EQ(index.lookup(pod, "sidecar", 0), "");
}

TEST_F(ContainerIdIndexTest, OddEntriesAreIgnored) {
  link("no-id.log", "/var/log/pods/ns_p_u/c/0.log");
  link("p_ns_c-" + std::string(64, 'G') + ".log", "/var/log/pods/ns_p_u/c/0.log");
  link("p_ns_c-" + kId1 + ".log", "/var/log/pods/ns_p_u/c/zero.log");
  link("p_ns_c-" + kId2 + ".txt", "/var/log/pods/ns_p_u/c/0.log");
  std::ofstream(dir_ / ("p_ns_c-" + std::string(64, 'c') + ".log")) << "a file, not a link";
  ContainerIdIndex index;
  index.refresh(dir_);
  EXPECT_EQ(index.size(), 0U);
}

TEST_F(ContainerIdIndexTest, MissingDirectoryIsAnEmptyIndex) {
  ContainerIdIndex index;
  index.refresh(dir_ / "nope");
  EXPECT_EQ(index.size(), 0U);
}

}  // namespace
}  // namespace nodewarden::logs
