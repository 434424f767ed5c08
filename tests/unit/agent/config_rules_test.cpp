// collectors.logs.filters and collectors.logs.redaction in the config file: what they read into,
// what they write (reading back equal, comments and all), and every way a rule is refused at start
// with FILE:LINE: FIELD: REASON.
#include "agent/config_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/config.h"

namespace nodewarden {
namespace {

using ::testing::HasSubstr;

std::string logs(const std::string& body) {
  return "collectors:\n"
         "  logs:\n" +
         body;
}

Config parsed(const std::string& text) {
  auto c = parseConfig(text, "rules.yaml");
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message());
  return c ? *c : Config{};
}

std::string errorOf(const std::string& text) {
  auto c = parseConfig(text, "rules.yaml");
  EXPECT_FALSE(c.has_value()) << text;
  return c ? "" : c.error().message();
}

TEST(ConfigRules, DefaultsAreNoFiltersAndEveryBuiltinRedaction) {
  const Config c;
  EXPECT_TRUE(c.logs.filters.empty());
  EXPECT_TRUE(c.logs.redaction.enabled);
  EXPECT_EQ(c.logs.redaction.builtin, builtinRedactionNames());
  EXPECT_EQ(c.logs.redaction.builtin.size(), 8U);
  EXPECT_TRUE(c.logs.redaction.rules.empty());
}

TEST(ConfigRules, ReadsFilters) {
  const Config c =
      parsed(logs("    filters:\n"
                  "      - name: team-a-debug\n"
                  "        match: {namespaces: [team-a]}\n"
                  "        drop_lines: '\\bDEBUG\\b'\n"
                  "      - name: mesh\n"
                  "        match: {containers: [istio-proxy], streams: [stdout]}\n"
                  "        drop_stream: true\n"
                  "      - name: errors-only\n"
                  "        match: {pod_labels: {team: payments}}\n"
                  "        keep_lines: ERROR|WARN\n"));
  ASSERT_EQ(c.logs.filters.size(), 3U);
  EXPECT_EQ(c.logs.filters[0].name, "team-a-debug");
  EXPECT_EQ(c.logs.filters[0].action, LogFilterRule::Action::kDropLines);
  EXPECT_EQ(c.logs.filters[0].pattern, "\\bDEBUG\\b");
  EXPECT_EQ(c.logs.filters[0].match.namespaces, std::vector<std::string>{"team-a"});
  EXPECT_EQ(c.logs.filters[1].action, LogFilterRule::Action::kDropStream);
  EXPECT_EQ(c.logs.filters[1].match.streams, std::vector<std::string>{"stdout"});
  EXPECT_EQ(c.logs.filters[2].action, LogFilterRule::Action::kKeepLines);
  EXPECT_EQ(c.logs.filters[2].match.pod_labels.at("team"), "payments");
}

TEST(ConfigRules, ReadsRedaction) {
  const Config c =
      parsed(logs("    redaction:\n"
                  "      builtin: [jwt, secret_pair]\n"
                  "      rules:\n"
                  "        - name: ssn\n"
                  "          pattern: '\\b\\d{3}-\\d{2}-\\d{4}\\b'\n"
                  "        - name: order\n"
                  "          pattern: 'order=(\\w+)'\n"
                  "          match: {namespaces: [shop]}\n"
                  "          replacement: '#'\n"));
  EXPECT_TRUE(c.logs.redaction.enabled);
  EXPECT_EQ(c.logs.redaction.builtin, (std::vector<std::string>{"jwt", "secret_pair"}));
  ASSERT_EQ(c.logs.redaction.rules.size(), 2U);
  EXPECT_EQ(c.logs.redaction.rules[0].pattern, "\\b\\d{3}-\\d{2}-\\d{4}\\b");
  EXPECT_EQ(c.logs.redaction.rules[1].replacement, "#");
  EXPECT_EQ(c.logs.redaction.rules[1].match.namespaces, std::vector<std::string>{"shop"});
  EXPECT_FALSE(parsed(logs("    redaction:\n      enabled: false\n")).logs.redaction.enabled);
  EXPECT_TRUE(parsed(logs("    redaction:\n      builtin: []\n")).logs.redaction.builtin.empty());
}

TEST(ConfigRules, WrittenYamlReadsBackEqual) {
  Config c;
  LogSelector s;
  s.namespaces = {"team-a", "team b"};
  s.pod_labels = {{"app.kubernetes.io/name", "spark"}};
  c.logs.filters.push_back(
      {"debug", s, LogFilterRule::Action::kDropLines, R"(\bDEBUG\b|"level":"debug")"});
  c.logs.filters.push_back({"mesh", s, LogFilterRule::Action::kDropStream, ""});
  c.logs.filters.push_back({"errors", {}, LogFilterRule::Action::kKeepLines, "ERROR: .*"});
  c.logs.redaction.builtin = {"private_key", "jwt"};
  c.logs.redaction.rules.push_back({"ssn", R"(\d{3}-\d{2}-\d{4})", {}, ""});
  c.logs.redaction.rules.push_back({"card", "card=(\\d+)", s, "<card>"});
  const std::string yaml = configYaml(c);
  const Config back = parsed(yaml);
  EXPECT_EQ(back.logs.filters, c.logs.filters) << yaml;
  EXPECT_EQ(back.logs.redaction, c.logs.redaction) << yaml;
  EXPECT_TRUE(back == c);
  // And the defaults, with their comments (the built-ins, an example filter).
  const std::string defaults = defaultConfigYaml();
  EXPECT_THAT(defaults, HasSubstr("#   jwt: JSON Web Tokens"));
  EXPECT_THAT(defaults, HasSubstr("# - name: team-a-debug"));
  EXPECT_TRUE(parsed(defaults) == Config{});
}

TEST(ConfigRules, ChangedRulesAreNamedChanged) {
  Config a;
  Config b;
  b.logs.redaction.builtin = {"jwt"};
  b.logs.filters.push_back({"x", {}, LogFilterRule::Action::kDropLines, "x"});
  const auto changed = changedConfigKeys(a, b);
  EXPECT_EQ(changed,
            (std::vector<std::string>{"collectors.logs.filters", "collectors.logs.redaction"}));
}

TEST(ConfigRules, FilterErrorsNameFileLineAndField) {
  EXPECT_EQ(errorOf(logs("    filters:\n"
                         "      - name: a\n"
                         "        drop_lines: 'x('\n")),
            "rules.yaml:5: collectors.logs.filters[0].drop_lines: not a valid RE2 regular "
            "expression: missing ): x(");
  EXPECT_EQ(errorOf(logs("    filters:\n"
                         "      - name: a\n"
                         "        drop_lines: x\n"
                         "      - name: a\n"
                         "        keep_lines: y\n")),
            "rules.yaml:6: collectors.logs.filters[1].name: duplicate rule name \"a\" (first used "
            "on line 4)");
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: a\n"
                           "        match: {namespaces: [x]}\n")),
              HasSubstr("rules.yaml:4: collectors.logs.filters[0]: rule \"a\" has no action"));
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: a\n"
                           "        match: {namespaces: [x]}\n"
                           "        drop_stream: false\n")),
              HasSubstr("rules.yaml:4: collectors.logs.filters[0]: rule \"a\" has no action"));
  EXPECT_EQ(errorOf(logs("    filters:\n"
                         "      - name: a\n"
                         "        drop_lines: x\n"
                         "        keep_lines: y\n")),
            "rules.yaml:6: collectors.logs.filters[0].keep_lines: one action per rule, and this "
            "one has drop_lines too");
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: a\n"
                           "        drop_lines: 'x*'\n")),
              HasSubstr("rules.yaml:5: collectors.logs.filters[0].drop_lines: matches every "
                        "line (it matches the empty string); to drop a whole stream use "
                        "drop_stream: true"));
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: a\n"
                           "        keep_lines: '^|ERROR'\n")),
              HasSubstr("rules.yaml:5: collectors.logs.filters[0].keep_lines: matches every line"));
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: all\n"
                           "        drop_stream: true\n")),
              HasSubstr("rules.yaml:4: collectors.logs.filters[0]: rule \"all\": drop_stream "
                        "without a match would drop every line of the node"));
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - drop_lines: x\n")),
              HasSubstr("rules.yaml:4: collectors.logs.filters[0]: a rule needs a name"));
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: 'a b'\n"
                           "        drop_lines: x\n")),
              HasSubstr("rules.yaml:4: collectors.logs.filters[0].name: must be 1-64 letters"));
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: a\n"
                           "        drop_lines: x\n"
                           "        match: {namespace: [x]}\n")),
              HasSubstr("rules.yaml:6: collectors.logs.filters[0].match.namespace: unknown key"));
  EXPECT_THAT(errorOf(logs("    filters:\n"
                           "      - name: a\n"
                           "        drop: x\n")),
              HasSubstr("rules.yaml:5: collectors.logs.filters[0].drop: unknown key"));
  EXPECT_THAT(errorOf(logs("    filters: {name: a}\n")),
              HasSubstr("rules.yaml:3: collectors.logs.filters: expected a list of rules"));
  // ^$ drops empty lines only: it does not match every line, so it is a valid rule.
  EXPECT_EQ(parsed(logs("    filters:\n"
                        "      - name: blank\n"
                        "        drop_lines: '^\\s*$'\n"))
                .logs.filters.size(),
            1U);
}

TEST(ConfigRules, RedactionErrorsNameFileLineAndField) {
  EXPECT_EQ(errorOf(logs("    redaction:\n"
                         "      builtin: [jwt, jwts]\n")),
            "rules.yaml:4: collectors.logs.redaction.builtin[1]: no built-in rule \"jwts\" "
            "(known: private_key, aws_secret_access_key, secret_pair, url_credentials, "
            "basic_auth, bearer_token, jwt, aws_access_key_id)");
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      builtin: [jwt, jwt]\n")),
              HasSubstr("collectors.logs.redaction.builtin[1]: \"jwt\" is listed twice"));
  EXPECT_EQ(errorOf(logs("    redaction:\n"
                         "      rules:\n"
                         "        - name: maybe\n"
                         "          pattern: '(secret)?'\n")),
            "rules.yaml:6: collectors.logs.redaction.rules[0].pattern: matches the empty "
            "string: a redaction pattern must match the secret itself");
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      rules:\n"
                           "        - name: jwt\n"
                           "          pattern: x\n")),
              HasSubstr("rules.yaml:5: collectors.logs.redaction.rules[0].name: \"jwt\" is a "
                        "built-in rule's name"));
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      rules:\n"
                           "        - name: a\n"
                           "          pattern: x\n"
                           "        - name: a\n"
                           "          pattern: y\n")),
              HasSubstr("rules.yaml:7: collectors.logs.redaction.rules[1].name: duplicate rule "
                        "name \"a\" (first used on line 5)"));
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      rules:\n"
                           "        - name: a\n")),
              HasSubstr("rules.yaml:5: collectors.logs.redaction.rules[0]: rule \"a\" has no "
                        "pattern"));
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      rules:\n"
                           "        - name: a\n"
                           "          pattern: '[a-'\n")),
              HasSubstr("rules.yaml:6: collectors.logs.redaction.rules[0].pattern: not a valid "
                        "RE2 regular expression"));
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      enable: true\n")),
              HasSubstr("rules.yaml:4: collectors.logs.redaction.enable: unknown key"));
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      enabled: yes please\n")),
              HasSubstr("rules.yaml:4: collectors.logs.redaction.enabled: expected true or false"));
  // Backreferences are not RE2 (linear time): refused, with RE2's reason.
  EXPECT_THAT(errorOf(logs("    redaction:\n"
                           "      rules:\n"
                           "        - name: a\n"
                           "          pattern: '(a)\\1'\n")),
              HasSubstr("not a valid RE2 regular expression: invalid escape sequence"));
}

}  // namespace
}  // namespace nodewarden
