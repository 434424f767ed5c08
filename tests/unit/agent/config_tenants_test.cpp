// loki.tenants in the config file: what it reads, what it refuses (with FILE:LINE: FIELD: REASON),
// and that what `nodewarden config` writes reads back to the same value.
#include "agent/config_tenants.h"

#include <gtest/gtest.h>

#include <string>

#include "agent/config.h"

namespace nodewarden {
namespace {

std::string errorOf(const std::string& yaml) {
  const auto config = parseConfig(yaml, "t.yaml");
  return config ? std::string("<parsed>") : config.error().message();
}

TEST(ConfigTenants, ReadsTheMapTheLabelTheCapAndTheIdleTimeout) {
  const auto config = parseConfig(
      "loki:\n"
      "  tenant: platform\n"
      "  tenants:\n"
      "    namespaces: {team-a: a, team-b: \"b.prod\"}\n"
      "    pod_label: loki-tenant\n"
      "    max: 8\n"
      "    idle_timeout: 90s\n",
      "t.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(config->loki.tenant, "platform");
  const LogTenantOptions& t = config->loki.tenants;
  EXPECT_EQ(t.namespaces,
            (std::map<std::string, std::string>{{"team-a", "a"}, {"team-b", "b.prod"}}));
  EXPECT_EQ(t.pod_label, "loki-tenant");
  EXPECT_EQ(t.max_tenants, 8);
  EXPECT_EQ(t.idle_timeout, std::chrono::seconds(90));
  EXPECT_TRUE(t.configured());
}

TEST(ConfigTenants, DefaultsSendEverythingToLokiTenant) {
  const auto config = parseConfig("loki:\n  tenant: platform\n", "t.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_FALSE(config->loki.tenants.configured());
  EXPECT_EQ(config->loki.tenants, LogTenantOptions{});
  const auto empty = parseConfig("loki:\n  tenants:\n", "t.yaml");
  ASSERT_TRUE(empty.has_value()) << empty.error().message();
  EXPECT_FALSE(empty->loki.tenants.configured());
}

TEST(ConfigTenants, RefusesWhatLokiWouldRefuseWithFileLineFieldReason) {
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    namespaces:\n      team-a: \"a|b\"\n"),
            "t.yaml:4: loki.tenants.namespaces.team-a: a tenant is made of letters, digits and "
            "!-_.*'() (Loki refuses others), found '|'");
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    namespaces: {x: \"..\"}\n"),
            "t.yaml:3: loki.tenants.namespaces.x: a tenant must not be . or ..");
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    namespaces: {x: \"" + std::string(151, 'a') + "\"}\n"),
            "t.yaml:3: loki.tenants.namespaces.x: a tenant is at most 150 characters, this one "
            "has 151");
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    namespaces: {x: \"\"}\n"),
            "t.yaml:3: loki.tenants.namespaces.x: a tenant must not be empty");
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    namespaces: {x: \"a b\"}\n"),
            "t.yaml:3: loki.tenants.namespaces.x: a tenant is made of letters, digits and "
            "!-_.*'() (Loki refuses others), found byte 32");
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    max: 0\n"),
            "t.yaml:3: loki.tenants.max: must be between 1 and 1000, got 0");
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    idle_timeout: 1s\n"),
            "t.yaml:3: loki.tenants.idle_timeout: must be between 10s and 24h, got 1s");
  EXPECT_EQ(errorOf("loki:\n  tenants:\n    namespace: {}\n"),
            "t.yaml:3: loki.tenants.namespace: unknown key (known here: namespaces, pod_label, "
            "max, idle_timeout)");
  EXPECT_EQ(errorOf("loki:\n  tenants: team-a\n"),
            "t.yaml:2: loki.tenants: expected a mapping, found \"team-a\"");
}

TEST(ConfigTenants, WhatIsWrittenReadsBackEqualAndAChangeIsNamed) {
  auto config = parseConfig(
      "loki:\n  tenants:\n    namespaces: {team-a: a, \"b\": \"x!*'()\"}\n    pod_label: "
      "\"example.com/tenant\"\n    max: 3\n    idle_timeout: 2m\n",
      "t.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  const std::string yaml = configYaml(*config);
  const auto back = parseConfig(yaml, "<printed>");
  ASSERT_TRUE(back.has_value()) << back.error().message() << "\n" << yaml;
  EXPECT_EQ(back->loki.tenants, config->loki.tenants);
  EXPECT_EQ(changedConfigKeys(*back, *config), std::vector<std::string>{});
  Config other = *config;
  other.loki.tenants.namespaces["team-c"] = "c";
  EXPECT_EQ(changedConfigKeys(*config, other), std::vector<std::string>{"loki.tenants"});
  // The defaults' file reads back too.
  const auto defaults = parseConfig(defaultConfigYaml(), "<defaults>");
  ASSERT_TRUE(defaults.has_value()) << defaults.error().message();
  EXPECT_EQ(defaults->loki.tenants, LogTenantOptions{});
}

}  // namespace
}  // namespace nodewarden
