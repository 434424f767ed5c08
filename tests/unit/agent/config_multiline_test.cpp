// collectors.logs.multiline: its keys read, its errors as FILE:LINE: FIELD: REASON, and what
// `nodewarden config` writes reads back to an equal config (rules included).
#include <gtest/gtest.h>

#include <string>

#include "agent/config.h"

namespace nodewarden {
namespace {

std::string errorOf(const std::string& yaml) {
  const auto result = parseConfig(yaml, "test.yaml");
  EXPECT_FALSE(result.has_value()) << yaml;
  return result.has_value() ? "" : result.error().message();
}

TEST(ConfigMultiline, DefaultsAreOnWithEveryBuiltInRule) {
  const Config c;
  EXPECT_TRUE(c.logs.multiline.enabled);
  EXPECT_TRUE(c.logs.multiline.jvm && c.logs.multiline.python && c.logs.multiline.go);
  EXPECT_TRUE(c.logs.multiline.rules.empty());
}

TEST(ConfigMultiline, ReadsEveryKeyAndRules) {
  const auto c = parseConfig(R"(collectors:
  logs:
    multiline:
      builtin: [python]
      flush_timeout: 2500ms
      max_lines: 50
      rules:
        - match: {namespaces: [spark], pod_labels: {app: driver}}
          start: '^\d{4}-\d\d-\d\d '
        - match: {containers: [sql]}
          continue: '^\s+AND '
)",
                             "test.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  const MultilineOptions& m = c->logs.multiline;
  EXPECT_TRUE(m.enabled);
  EXPECT_FALSE(m.jvm);
  EXPECT_TRUE(m.python);
  EXPECT_FALSE(m.go);
  EXPECT_EQ(m.flush_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(m.max_lines, 50U);
  ASSERT_EQ(m.rules.size(), 2U);
  EXPECT_EQ(m.rules[0].match.namespaces, std::vector<std::string>{"spark"});
  EXPECT_EQ(m.rules[0].match.pod_labels.at("app"), "driver");
  EXPECT_EQ(m.rules[0].start, R"(^\d{4}-\d\d-\d\d )");
  EXPECT_EQ(m.rules[1].continue_pattern, R"(^\s+AND )");

  // Written back and read again: the same config, and the same text.
  const std::string written = configYaml(*c);
  const auto again = parseConfig(written, "written.yaml");
  ASSERT_TRUE(again.has_value()) << again.error().message() << "\n" << written;
  EXPECT_EQ(again->logs.multiline, c->logs.multiline);
  EXPECT_TRUE(changedConfigKeys(*c, *again).empty());
  EXPECT_EQ(configYaml(*again), written);
  EXPECT_EQ(changedConfigKeys(Config{}, *c), std::vector<std::string>{"collectors.logs.multiline"});
}

TEST(ConfigMultiline, DefaultsWrittenReadBackEqual) {
  const auto c = parseConfig(defaultConfigYaml(), "default.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->logs.multiline, Config{}.logs.multiline);
}

TEST(ConfigMultiline, ErrorsNameFileLineFieldAndReason) {
  EXPECT_EQ(errorOf("collectors:\n  logs:\n    multiline:\n      builtin: [jvm, ruby]\n"),
            "test.yaml:4: collectors.logs.multiline.builtin: unknown built-in rule \"ruby\" "
            "(known: jvm, python, go)");
  EXPECT_EQ(errorOf("collectors:\n  logs:\n    multiline:\n      rules:\n        - start: '(['\n"),
            "test.yaml:5: collectors.logs.multiline.rules[0].start: not a valid RE2 regular "
            "expression: missing ]: [");
  EXPECT_EQ(errorOf("collectors:\n  logs:\n    multiline:\n      rules:\n        - match: {}\n"),
            "test.yaml:5: collectors.logs.multiline.rules[0]: a rule needs exactly one of start "
            "and continue");
  EXPECT_EQ(
      errorOf("collectors:\n  logs:\n    multiline:\n      rules:\n        - start: a\n"
              "          continue: b\n"),
      "test.yaml:5: collectors.logs.multiline.rules[0]: a rule needs exactly one of start and "
      "continue");
  EXPECT_EQ(
      errorOf("collectors:\n  logs:\n    multiline:\n      max_lines: 1\n"),
      "test.yaml:4: collectors.logs.multiline.max_lines: must be between 2 and 100000, got 1");
  EXPECT_EQ(errorOf("collectors:\n  logs:\n    multiline:\n      flush_timeout: 5\n").substr(0, 50),
            "test.yaml:4: collectors.logs.multiline.flush_timeo");
  EXPECT_EQ(errorOf("collectors:\n  logs:\n    multiline:\n      maxlines: 3\n"),
            "test.yaml:4: collectors.logs.multiline.maxlines: unknown key (known here: enabled, "
            "builtin, flush_timeout, max_lines, rules)");
  EXPECT_EQ(
      errorOf("collectors:\n  logs:\n    multiline:\n      rules:\n        - start: x\n"
              "          match: {streams: [both]}\n"),
      "test.yaml:6: collectors.logs.multiline.rules[0].match.streams: must be stdout or stderr, "
      "got \"both\"");
}

TEST(ConfigMultiline, OffAndNoBuiltIns) {
  const auto c = parseConfig(
      "collectors:\n  logs:\n    multiline:\n      enabled: false\n      builtin: []\n", "t.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_FALSE(c->logs.multiline.enabled);
  EXPECT_FALSE(c->logs.multiline.jvm || c->logs.multiline.python || c->logs.multiline.go);
  const auto again = parseConfig(configYaml(*c), "w.yaml");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->logs.multiline, c->logs.multiline);
}

}  // namespace
}  // namespace nodewarden
