// Tests for agent/state_dir on real files: a missing directory is created, a file where a
// directory belongs and a directory where a file belongs are named with the system's reason.
// (A read-only state dir is tested with the real agent: tests/integration/agent_lifecycle_test.)
#include "agent/state_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class StateDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("nodewarden-state-dir-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(StateDirTest, CreatesAMissingDirectoryAndLeavesNoProbeBehind) {
  ASSERT_TRUE(checkStateDir(dir_ / "spool" / "logs").has_value());
  EXPECT_TRUE(fs::is_directory(dir_ / "spool" / "logs"));
  EXPECT_TRUE(fs::is_empty(dir_ / "spool" / "logs"));
}

TEST_F(StateDirTest, AFileWhereADirectoryBelongsIsNamed) {
  std::ofstream(dir_ / "spool") << "x";
  const auto r = checkStateDir(dir_ / "spool" / "logs");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error(), HasSubstr((dir_ / "spool").string()));
  EXPECT_THAT(r.error(), HasSubstr("Not a directory"));
  const auto leaf = checkStateDir(dir_ / "spool");
  ASSERT_FALSE(leaf.has_value());
  EXPECT_THAT(leaf.error(), HasSubstr("Not a directory"));
}

TEST_F(StateDirTest, ADirectoryWhereAFileBelongsIsNamed) {
  fs::create_directories(dir_ / "checkpoints" / "logs.json");
  const auto r = checkStateFile(dir_ / "checkpoints" / "logs.json");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error(), HasSubstr((dir_ / "checkpoints" / "logs.json").string()));
  EXPECT_THAT(r.error(), HasSubstr("Is a directory"));
}

TEST_F(StateDirTest, AnExistingOrMissingRegularFileIsFine) {
  EXPECT_TRUE(checkStateFile(dir_ / "jobs" / "outcomes.jsonl").has_value());
  std::ofstream(dir_ / "jobs" / "outcomes.jsonl") << "{}\n";
  EXPECT_TRUE(checkStateFile(dir_ / "jobs" / "outcomes.jsonl").has_value());
}

}  // namespace
}  // namespace nodewarden
