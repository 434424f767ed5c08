// The readers and writers custom config rows share: strict, with the line of what is wrong.
#include "agent/config_custom.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

namespace nodewarden {
namespace {

struct Error {
  int line = 0;
  std::string field;
  std::string reason;
};

class TestReader final : public CustomReader {
 public:
  void fail(int line, const std::string& field, std::string reason) override {
    if (!error) error = Error{line, field, std::move(reason)};
  }
  [[nodiscard]] bool failed() const override { return error.has_value(); }
  std::optional<Error> error;
};

TEST(ConfigRead, SelectorReadsEveryFieldAndWritesBackEqual) {
  const YAML::Node node = YAML::Load(
      "namespaces: [etl, web]\n"
      "containers: driver\n"
      "streams: [stderr]\n"
      "pod_labels: {spark-role: driver}\n");
  TestReader reader;
  const auto sel = config_read::selector(node, 1, "x.match", reader);
  ASSERT_TRUE(sel) << reader.error->reason;
  EXPECT_EQ(sel->namespaces, (std::vector<std::string>{"etl", "web"}));
  EXPECT_EQ(sel->containers, (std::vector<std::string>{"driver"}));
  EXPECT_EQ(sel->pod_labels.at("spark-role"), "driver");
  const std::string written = config_write::selector(*sel);
  TestReader again;
  const auto back = config_read::selector(YAML::Load(written), 1, "x.match", again);
  ASSERT_TRUE(back) << written;
  EXPECT_EQ(*back, *sel);
  EXPECT_EQ(config_write::selector(LogSelector{}), "{}");
}

TEST(ConfigRead, SelectorErrorsNameTheLineAndTheField) {
  TestReader unknown;
  EXPECT_FALSE(
      config_read::selector(YAML::Load("namespaces: [a]\nnamespace: b\n"), 1, "f.match", unknown));
  ASSERT_TRUE(unknown.error);
  EXPECT_EQ(unknown.error->line, 2);
  EXPECT_EQ(unknown.error->field, "f.match.namespace");
  EXPECT_NE(unknown.error->reason.find("namespaces"), std::string::npos);

  TestReader stream;
  EXPECT_FALSE(config_read::selector(YAML::Load("streams: [stdout, both]\n"), 1, "f", stream));
  ASSERT_TRUE(stream.error);
  EXPECT_EQ(stream.error->field, "f.streams");
  EXPECT_NE(stream.error->reason.find("\"both\""), std::string::npos);

  TestReader nested;
  EXPECT_FALSE(config_read::selector(YAML::Load("pods:\n  - [a]\n"), 1, "f", nested));
  ASSERT_TRUE(nested.error);
  EXPECT_EQ(nested.error->line, 2);
  EXPECT_EQ(nested.error->field, "f.pods[0]");
}

TEST(ConfigRead, RegexIsCheckedByRe2) {
  TestReader ok;
  EXPECT_EQ(config_read::regex(YAML::Load("'^\\s+at '"), 3, "r", ok), "^\\s+at ");
  TestReader bad;
  EXPECT_FALSE(config_read::regex(YAML::Load("'a(b'"), 3, "r.pattern", bad));
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->line, 3);
  EXPECT_NE(bad.error->reason.find("RE2"), std::string::npos);
  // Backreferences are what RE2 refuses (they need backtracking).
  TestReader backref;
  EXPECT_FALSE(config_read::regex(YAML::Load("'(a)\\1'"), 1, "r", backref));
}

TEST(ConfigRead, ScalarsAreStrict) {
  TestReader quoted;
  EXPECT_FALSE(config_read::boolean(YAML::Load("\"true\""), 1, "b", quoted));
  TestReader range;
  EXPECT_FALSE(config_read::integer(YAML::Load("0"), 1, "n", 1, 10, range));
  EXPECT_NE(range.error->reason.find("between 1 and 10"), std::string::npos);
  TestReader negative;
  EXPECT_FALSE(config_read::number(YAML::Load("-1"), 1, "rate", negative));
  TestReader unit;
  EXPECT_FALSE(config_read::duration(YAML::Load("3"), 1, "t", std::chrono::milliseconds(0),
                                     std::chrono::hours(1), unit));
  TestReader fine;
  EXPECT_EQ(config_read::duration(YAML::Load("1m30s"), 1, "t", std::chrono::milliseconds(0),
                                  std::chrono::hours(1), fine),
            std::chrono::milliseconds(90000));
  TestReader size;
  EXPECT_EQ(config_read::byteSize(YAML::Load("2MiB"), 1, "s", size), 2U << 20);
}

TEST(ConfigWrite, ScalarsReadBackAsTheSameString) {
  for (const std::string value : {"plain", "with space", "a: b", "#x", "", "q\"uote", "-dash"}) {
    const YAML::Node node = YAML::Load("k: " + config_write::scalar(value));
    EXPECT_EQ(node["k"].as<std::string>(""), value) << config_write::scalar(value);
  }
  EXPECT_EQ(config_write::list({"a", "b c"}), "[a, \"b c\"]");
  EXPECT_EQ(config_write::map({{"k", "v"}}), "{k: v}");
}

}  // namespace
}  // namespace nodewarden
