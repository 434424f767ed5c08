// collectors.logs.rate_limit: its reader (values, overrides, bursts, every error as
// FILE:LINE: FIELD: REASON) and its writer (what it prints reads back to the same value).
#include <gtest/gtest.h>

#include <string>

#include "agent/config.h"

namespace nodewarden {
namespace {

using namespace std::chrono_literals;

std::string logs(const std::string& rate_limit) {
  return "collectors:\n  logs:\n    rate_limit:\n" + rate_limit;
}

std::string errorOf(const std::string& yaml) {
  const auto result = parseConfig(yaml, "nw.yaml");
  EXPECT_FALSE(result.has_value()) << "parsed without error:\n" << yaml;
  return result.has_value() ? std::string() : result.error().message();
}

TEST(RateLimitConfig, DefaultsAreGenerousAndOn) {
  const RateLimitOptions o = Config{}.logs.rate_limit;
  EXPECT_TRUE(o.enabled);
  EXPECT_EQ(o.lines_per_second, 50000);
  EXPECT_EQ(o.bytes_per_second, 10U << 20);
  EXPECT_EQ(o.burst.duration, 5s);
  EXPECT_FALSE(o.burst.explicitCounts());
  EXPECT_TRUE(o.overrides.empty());
}

TEST(RateLimitConfig, ReadsEveryKeyAndOverrides) {
  const auto config = parseConfig(logs("      enabled: true\n"
                                       "      lines_per_second: 2000\n"
                                       "      bytes_per_second: 2MiB\n"
                                       "      burst: 10s\n"
                                       "      max_streams: 500\n"
                                       "      overrides:\n"
                                       "        - match: {namespaces: [batch], streams: stderr}\n"
                                       "          lines_per_second: 0.5\n"
                                       "        - match:\n"
                                       "            pod_labels: {team: etl}\n"
                                       "          bytes_per_second: 65536\n"
                                       "          burst: {lines: 100, bytes: 1MiB}\n"),
                                  "nw.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  const RateLimitOptions& o = config->logs.rate_limit;
  EXPECT_EQ(o.lines_per_second, 2000);
  EXPECT_EQ(o.bytes_per_second, 2U << 20);
  EXPECT_EQ(o.burst.duration, 10s);
  EXPECT_EQ(o.max_streams, 500U);
  ASSERT_EQ(o.overrides.size(), 2U);
  EXPECT_EQ(o.overrides[0].match.namespaces, std::vector<std::string>{"batch"});
  EXPECT_EQ(o.overrides[0].match.streams, std::vector<std::string>{"stderr"});
  EXPECT_EQ(o.overrides[0].lines_per_second, 0.5);
  EXPECT_FALSE(o.overrides[0].bytes_per_second.has_value());
  EXPECT_EQ(o.overrides[1].match.pod_labels.at("team"), "etl");
  EXPECT_EQ(o.overrides[1].bytes_per_second, 65536U);
  ASSERT_TRUE(o.overrides[1].burst.has_value());
  EXPECT_EQ(o.overrides[1].burst->lines, 100);
  EXPECT_EQ(o.overrides[1].burst->bytes, 1U << 20);
  EXPECT_EQ(changedConfigKeys(Config{}, *config),
            std::vector<std::string>{"collectors.logs.rate_limit"});
}

TEST(RateLimitConfig, KeysNotGivenKeepTheirDefaults) {
  const auto config = parseConfig(logs("      enabled: false\n"), "nw.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_FALSE(config->logs.rate_limit.enabled);
  EXPECT_EQ(config->logs.rate_limit.lines_per_second, 50000);
  const auto empty = parseConfig("collectors:\n  logs:\n    rate_limit:\n", "nw.yaml");
  ASSERT_TRUE(empty.has_value()) << empty.error().message();
  EXPECT_EQ(empty->logs.rate_limit, RateLimitOptions{});
}

TEST(RateLimitConfig, ErrorsNameFileLineFieldAndReason) {
  EXPECT_EQ(errorOf(logs("      lines_per_second: -3\n")),
            "nw.yaml:4: collectors.logs.rate_limit.lines_per_second: expected a number of at "
            "least 0, found \"-3\"");
  EXPECT_EQ(errorOf(logs("      enabled: true\n      line_per_second: 3\n")),
            "nw.yaml:5: collectors.logs.rate_limit.line_per_second: unknown key (known here: "
            "enabled, lines_per_second, bytes_per_second, burst, max_streams, overrides)");
  EXPECT_TRUE(errorOf(logs("      bytes_per_second: lots\n"))
                  .starts_with("nw.yaml:4: collectors.logs.rate_limit.bytes_per_second: "));
  EXPECT_TRUE(errorOf(logs("      burst: 5\n"))
                  .starts_with("nw.yaml:4: collectors.logs.rate_limit.burst: "));
  EXPECT_EQ(errorOf(logs("      burst: {lines: 0}\n")),
            "nw.yaml:4: collectors.logs.rate_limit.burst.lines: must be at least 1 (one line)");
  EXPECT_EQ(errorOf(logs("      burst: [1, 2]\n")),
            "nw.yaml:4: collectors.logs.rate_limit.burst: expected a duration such as 5s, or "
            "{lines: N, bytes: SIZE}");
  EXPECT_EQ(errorOf(logs("      overrides: {namespaces: [a]}\n")),
            "nw.yaml:4: collectors.logs.rate_limit.overrides: expected a list of overrides "
            "({match: ..., lines_per_second: ...})");
  EXPECT_EQ(errorOf(logs("      overrides:\n        - lines_per_second: 5\n")),
            "nw.yaml:5: collectors.logs.rate_limit.overrides[0].match: missing: an override says "
            "which streams it is for (a selector: namespaces, pods, containers, streams, "
            "pod_labels)");
  EXPECT_EQ(errorOf(logs("      overrides:\n        - match: {pods: [a]}\n")),
            "nw.yaml:5: collectors.logs.rate_limit.overrides[0]: sets no limit: give "
            "lines_per_second, bytes_per_second or burst");
  EXPECT_EQ(errorOf(logs("      overrides:\n"
                         "        - match: {pods: [a]}\n"
                         "          lines_per_second: 1\n"
                         "        - match: {streams: [stdin]}\n"
                         "          lines_per_second: 1\n")),
            "nw.yaml:7: collectors.logs.rate_limit.overrides[1].match.streams: must be stdout or "
            "stderr, got \"stdin\"");
  EXPECT_EQ(errorOf(logs("      max_streams: 3\n")),
            "nw.yaml:4: collectors.logs.rate_limit.max_streams: must be between 16 and 1048576, "
            "got 3");
}

TEST(RateLimitConfig, PrintedConfigReadsBackTheSame) {
  Config config;
  RateLimitOptions& o = config.logs.rate_limit;
  o.lines_per_second = 12.5;
  o.bytes_per_second = 1536;
  o.burst.lines = 300;
  RateLimitOverride a;
  a.match.namespaces = {"batch", "needs \"quotes\""};
  a.match.pod_labels = {{"app.kubernetes.io/name", "spark"}};
  a.lines_per_second = 0;
  a.burst = RateLimitBurst{30s, 0, 0};
  o.overrides.push_back(a);
  RateLimitOverride b;
  b.match.containers = {"istio-proxy"};
  b.bytes_per_second = 3U << 20;
  o.overrides.push_back(b);
  const std::string yaml = configYaml(config);
  const auto parsed = parseConfig(yaml, "<printed>");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message() << "\n" << yaml;
  EXPECT_EQ(parsed->logs.rate_limit, o) << yaml;
  EXPECT_EQ(changedConfigKeys(*parsed, config), std::vector<std::string>{});
}

}  // namespace
}  // namespace nodewarden
