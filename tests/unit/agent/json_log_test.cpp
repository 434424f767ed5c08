// Tests for agent/json_log: every line is one JSON object that nlohmann::json parses back to the
// exact message, whatever bytes the message held.
//
// What a reader gets wrong: setupJsonLogging replaces spdlog's process-wide default logger, so the
// fixture puts the previous one back; otherwise later tests in this program would log into a
// string stream that no longer exists.
#include "agent/json_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace nodewarden {
namespace {

class JsonLogTest : public ::testing::Test {
 protected:
  void SetUp() override { previous_ = spdlog::default_logger(); }
  void TearDown() override { spdlog::set_default_logger(previous_); }

  void setup(std::string_view level) {
    setupJsonLogging(level, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
  }

  // Every line written so far, each parsed as JSON.
  std::vector<nlohmann::json> lines() const {
    std::vector<nlohmann::json> parsed;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) {
      parsed.push_back(nlohmann::json::parse(line));  // throws, failing the test, if invalid
    }
    return parsed;
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(JsonLogTest, OneObjectPerLineWithTsLevelMsg) {
  setup("info");
  spdlog::info("collector {} started with {} cgroups", "cgroup", 42);
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 1u);
  const nlohmann::json& line = parsed[0];
  ASSERT_TRUE(line.is_object());
  EXPECT_EQ(line.size(), 3u);
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["msg"], "collector cgroup started with 42 cgroups");
  EXPECT_TRUE(std::regex_match(line["ts"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << line["ts"];
  EXPECT_EQ(out_.str().back(), '\n');
}

TEST_F(JsonLogTest, EscapesQuotesBackslashesAndControlCharacters) {
  setup("trace");
  const std::vector<std::string> messages = {
      "say \"hi\"",
      R"(C:\path\to "x")",
      "two\nlines\r\n",
      "tab\there",
      std::string("nul\0byte", 8),
      "bell\x07 bs\b ff\f esc\x1b us\x1f del\x7f",
      "}{\",\"level\":\"error",
      "unicode: caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
  };
  for (const std::string& message : messages) spdlog::info("{}", message);
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(parsed[i]["msg"].get<std::string>(), messages[i]) << i;
    EXPECT_EQ(parsed[i]["level"], "info") << i;
  }
  // Control characters are escaped, never written raw.
  EXPECT_THAT(out_.str(), ::testing::HasSubstr(R"(nul\u0000byte)"));
  EXPECT_THAT(out_.str(), ::testing::HasSubstr(R"(bell\u0007 bs\b ff\f esc\u001b us\u001f)"));
}

TEST_F(JsonLogTest, InvalidUtf8BecomesReplacementCharacter) {
  setup("info");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bad \xFF byte", "bad \xEF\xBF\xBD byte"},
      {"cut \xC3", "cut \xEF\xBF\xBD"},  // truncated at the end
      {"overlong \xC0\xAF", "overlong \xEF\xBF\xBD\xEF\xBF\xBD"},
      {"surrogate \xED\xA0\x80", "surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"too big \xF4\x90\x80\x80", "too big \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"lone \x80 continuation", "lone \xEF\xBF\xBD continuation"},
      {"\xE2\x82 short then ok \xE2\x82\xAC",
       "\xEF\xBF\xBD\xEF\xBF\xBD short then ok \xE2\x82\xAC"},
  };
  for (const auto& [message, expected] : cases) spdlog::info("{}", message);
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(parsed[i]["msg"].get<std::string>(), cases[i].second) << i;
  }
}

TEST_F(JsonLogTest, LevelFiltersAndNames) {
  setup("warn");
  spdlog::debug("hidden");
  spdlog::info("hidden");
  spdlog::warn("w");
  spdlog::error("e");
  spdlog::critical("c");
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 3u);
  EXPECT_EQ(parsed[0]["level"], "warn");
  EXPECT_EQ(parsed[1]["level"], "error");
  EXPECT_EQ(parsed[2]["level"], "critical");
}

TEST_F(JsonLogTest, TraceLevelShowsEverything) {
  setup("trace");
  spdlog::trace("t");
  spdlog::debug("d");
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0]["level"], "trace");
  EXPECT_EQ(parsed[1]["level"], "debug");
}

TEST_F(JsonLogTest, UnknownLevelFallsBackToInfoAndSaysSo) {
  setup("loud");
  spdlog::debug("hidden");
  spdlog::info("shown");
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0]["level"], "warn");
  EXPECT_THAT(parsed[0]["msg"].get<std::string>(),
              ::testing::HasSubstr("unknown log level \"loud\""));
  EXPECT_EQ(parsed[1]["msg"], "shown");
}

TEST(JsonLogFormatter, TimestampIsUtcWithMilliseconds) {
  using namespace std::chrono;
  // 2026-11-21T23:59:59.123Z
  const sys_days day = year(2026) / November / 21;
  const auto time = day + hours(23) + minutes(59) + seconds(59) + milliseconds(123);
  JsonLogFormatter formatter;
  for (const auto& [at, expected] :
       {std::pair{time, "2026-11-21T23:59:59.123Z"},
        std::pair{time + milliseconds(877), "2026-11-22T00:00:00.000Z"},  // next second, new day
        std::pair{time + milliseconds(878), "2026-11-22T00:00:00.001Z"}}) {
    spdlog::details::log_msg msg(time_point_cast<spdlog::log_clock::duration>(at),
                                 spdlog::source_loc{}, "", spdlog::level::info, "m");
    spdlog::memory_buf_t out;
    formatter.format(msg, out);
    const std::string text(out.data(), out.size());
    EXPECT_EQ(text, std::string(R"({"ts":")") + expected +
                        R"(","level":"info","msg":"m"})"
                        "\n");
  }
}

TEST(JsonLogFormatter, CloneFormatsTheSame) {
  JsonLogFormatter formatter;
  const auto copy = formatter.clone();
  spdlog::details::log_msg msg(spdlog::log_clock::time_point{}, spdlog::source_loc{}, "",
                               spdlog::level::err, "a\"b");
  spdlog::memory_buf_t first;
  spdlog::memory_buf_t second;
  formatter.format(msg, first);
  copy->format(msg, second);
  EXPECT_EQ(std::string(first.data(), first.size()), std::string(second.data(), second.size()));
  EXPECT_EQ(std::string(first.data(), first.size()),
            R"({"ts":"1970-01-01T00:00:00.000Z","level":"error","msg":"a\"b"})"
            "\n");
}

TEST(ParseLogLevel, KnownNames) {
  EXPECT_EQ(parseLogLevel("trace"), spdlog::level::trace);
  EXPECT_EQ(parseLogLevel("debug"), spdlog::level::debug);
  EXPECT_EQ(parseLogLevel("info"), spdlog::level::info);
  EXPECT_EQ(parseLogLevel("warn"), spdlog::level::warn);
  EXPECT_EQ(parseLogLevel("error"), spdlog::level::err);
}

TEST(ParseLogLevel, UnknownNames) {
  for (const std::string_view name : {"", "warning", "critical", "off", "INFO", "info "}) {
    const auto level = parseLogLevel(name);
    ASSERT_FALSE(level.has_value()) << name;
    EXPECT_EQ(level.error(), "unknown log level \"" + std::string(name) +
                                 "\" (expected trace, debug, info, warn or error)");
  }
}

}  // namespace
}  // namespace nodewarden
