// Tests for agent/config: defaults, the fixtures in tests/fixtures/config, every error kind with
// its exact field and line, durations and the validation ranges.
//
// What a reader gets wrong: line numbers here are the 1-based lines of the fixture files (comments
// included); editing a fixture means updating the line it is asserted with.
#include "agent/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace nodewarden {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;

const std::filesystem::path kFixtures = std::filesystem::path(NODEWARDEN_FIXTURES) / "config";

ConfigError parseError(const std::string& yaml, const std::string& file = "test.yaml") {
  const auto result = parseConfig(yaml, file);
  EXPECT_FALSE(result.has_value()) << "parsed without error:\n" << yaml;
  return result.has_value() ? ConfigError{} : result.error();
}

// --- Defaults and whole files -------------------------------------------------------------------

TEST(ConfigDefaults, AreValid) { EXPECT_TRUE(validateConfig(Config{}).has_value()); }

TEST(ConfigDefaults, EmptyDocumentsGiveDefaults) {
  for (const std::string text : {"", "\n", "# only a comment\n", "---\n", "---\n...\n"}) {
    const auto config = parseConfig(text, "empty.yaml");
    ASSERT_TRUE(config.has_value()) << "text: " << text << " error: " << config.error().message();
    EXPECT_EQ(*config, Config{}) << "text: " << text;
  }
}

TEST(ConfigDefaults, EmptySectionsGiveDefaults) {
  const auto config = parseConfig("paths:\ncollectors:\n  cgroup: {}\n  node:\n", "t.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(*config, Config{});
}

TEST(ConfigDefaults, DefaultConfigYamlParsesToDefaults) {
  const auto config = parseConfig(defaultConfigYaml(), "<defaults>");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(*config, Config{});
}

// configYaml writes what parses back to the same config: every field of the fixture that sets
// them all, and strings that need quotes (an IPv6 listen address, a header with ": ").
TEST(ConfigYaml, RoundTripsAConfigThatDiffersEverywhere) {
  auto config = loadConfigFile(kFixtures / "valid.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  config->remote_write.headers = {"X-Scope-OrgID: team-a", "X-Quote: \"q\" \\ back"};
  config->kubernetes.pod_labels = {"app.kubernetes.io/name", "team"};
  const std::string yaml = configYaml(*config);
  const auto parsed = parseConfig(yaml, "<printed>");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message() << "\n" << yaml;
  EXPECT_EQ(changedConfigKeys(*parsed, *config), std::vector<std::string>{}) << yaml;
  EXPECT_NE(changedConfigKeys(*config, Config{}).size(), 0U);
}

// The DaemonSet's file is generated: the committed copy is what deployConfigYaml() writes.
TEST(ConfigYaml, DeployFileIsGenerated) {
  const auto path =
      std::filesystem::path(NODEWARDEN_FIXTURES) / "../../deploy/config/nodewarden.yaml";
  std::ifstream in(path);
  const std::string committed((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(committed, deployConfigYaml())
      << "regenerate: build/ci/agent/nodewarden config --deploy > deploy/config/nodewarden.yaml";
}

// The embedded YAML documents every setting: its leaves are exactly the schema's fields.
TEST(ConfigDefaults, DefaultConfigYamlNamesEveryField) {
  std::set<std::string> leaves;
  std::function<void(const YAML::Node&, const std::string&)> walk = [&](const YAML::Node& node,
                                                                        const std::string& path) {
    for (const auto& entry : node) {
      const std::string key =
          path.empty() ? entry.first.Scalar() : path + "." + entry.first.Scalar();
      if (entry.second.IsMap()) {
        walk(entry.second, key);
      } else {
        leaves.insert(key);
      }
    }
  };
  walk(YAML::Load(defaultConfigYaml()), "");
  const std::set<std::string> expected = {"listen",
                                          "tls.cert_file",
                                          "tls.key_file",
                                          "tls.client_ca_file",
                                          "node_name",
                                          "interval",
                                          "log_level",
                                          "paths.cgroup_root",
                                          "paths.proc_root",
                                          "paths.log_root",
                                          "paths.state_dir",
                                          "collectors.cgroup.enabled",
                                          "collectors.cgroup.max_depth",
                                          "collectors.cgroup.root_search_interval",
                                          "collectors.cgroup.run_delay",
                                          "collectors.cgroup.aggregates",
                                          "collectors.cgroup.process_stats",
                                          "collectors.cgroup.fd_scan_interval",
                                          "collectors.cgroup.max_fd_scan_processes",
                                          "collectors.node.enabled",
                                          "collectors.pods.runtime_state",
                                          "collectors.pods.kubelet",
                                          "collectors.pods.apiserver",
                                          "kubernetes.kubelet_url",
                                          "kubernetes.apiserver_url",
                                          "kubernetes.token_file",
                                          "kubernetes.ca_file",
                                          "kubernetes.kubelet_insecure_skip_verify",
                                          "kubernetes.pod_labels",
                                          "paths.runtime_state_dirs",
                                          "collectors.logs.enabled",
                                          "collectors.logs.max_line_bytes",
                                          "collectors.logs.max_open_files",
                                          "collectors.logs.rescan_interval",
                                          "collectors.logs.read_compressed",
                                          "collectors.logs.max_streams",
                                          "collectors.logs.batch_bytes",
                                          "collectors.logs.batch_wait",
                                          "collectors.logs.multiline.enabled",
                                          "collectors.logs.multiline.builtin",
                                          "collectors.logs.multiline.flush_timeout",
                                          "collectors.logs.multiline.max_lines",
                                          "collectors.logs.multiline.rules",
                                          "collectors.logs.filters",
                                          "collectors.logs.rate_limit.enabled",
                                          "collectors.logs.rate_limit.lines_per_second",
                                          "collectors.logs.rate_limit.bytes_per_second",
                                          "collectors.logs.rate_limit.burst",
                                          "collectors.logs.rate_limit.max_streams",
                                          "collectors.logs.rate_limit.overrides",
                                          "collectors.logs.redaction.enabled",
                                          "collectors.logs.redaction.builtin",
                                          "collectors.logs.redaction.rules",
                                          "collectors.journal.enabled",
                                          "collectors.journal.dir",
                                          "collectors.journal.units",
                                          "collectors.jobs.enabled",
                                          "collectors.jobs.poll_interval",
                                          "collectors.jobs.status_wait",
                                          "collectors.jobs.retention",
                                          "collectors.jobs.max_recent",
                                          "collectors.pods.kubelet_refresh_interval",
                                          "collectors.pods.unknown_image",
                                          "loki.url",
                                          "loki.tenant",
                                          "loki.tenants.pod_label",
                                          "loki.tenants.max",
                                          "loki.tenants.idle_timeout",
                                          "loki.encoding",
                                          "loki.bearer_token_file",
                                          "loki.username",
                                          "loki.password_file",
                                          "loki.ca_file",
                                          "loki.insecure_skip_verify",
                                          "loki.timeout",
                                          "loki.local_file_max_bytes",
                                          "remote_write.url",
                                          "remote_write.bearer_token_file",
                                          "remote_write.username",
                                          "remote_write.password_file",
                                          "remote_write.ca_file",
                                          "remote_write.insecure_skip_verify",
                                          "remote_write.timeout",
                                          "remote_write.headers",
                                          "remote_write.max_samples_per_send",
                                          "remote_write.spool_max_bytes",
                                          "spool.max_bytes",
                                          "spool.segment_bytes",
                                          "detector.enabled",
                                          "detector.windows.short",
                                          "detector.windows.mid",
                                          "detector.windows.long",
                                          "detector.metrics_windows",
                                          "detector.max_containers",
                                          "detector.recommendation.half_life",
                                          "detector.recommendation.memory_peak_interval",
                                          "detector.recommendation.cpu_percentile",
                                          "detector.recommendation.memory_percentile",
                                          "detector.recommendation.margin",
                                          "detector.noisy_neighbor.baseline_half_life",
                                          "detector.noisy_neighbor.victim_z",
                                          "detector.noisy_neighbor.victim_min_stall",
                                          "detector.noisy_neighbor.memory_victim_min_stall",
                                          "detector.noisy_neighbor.self_throttle_ratio",
                                          "detector.noisy_neighbor.victim_k",
                                          "detector.noisy_neighbor.victim_n",
                                          "detector.noisy_neighbor.onset_min_stall.cpu",
                                          "detector.noisy_neighbor.onset_min_stall.memory",
                                          "detector.noisy_neighbor.onset_min_stall.io",
                                          "detector.noisy_neighbor.correlation_window",
                                          "detector.noisy_neighbor.episode_lead",
                                          "detector.noisy_neighbor.antagonist_threshold",
                                          "placement.enabled",
                                          "placement.dry_run",
                                          "placement.condition_type",
                                          "placement.annotation_key",
                                          "placement.taint_key",
                                          "placement.on_score",
                                          "placement.off_score",
                                          "placement.on_hold",
                                          "placement.off_hold",
                                          "placement.min_taint_duration",
                                          "placement.max_backoff",
                                          "placement.timeout"};
  EXPECT_EQ(leaves, expected);
}

TEST(ConfigDetector, ParsesNumbersAndSections) {
  const auto c = parseConfig(R"(detector:
  windows: {short: 5s, mid: 30s, long: 10m}
  recommendation: {cpu_percentile: 0.95, margin: 0.2}
  noisy_neighbor: {victim_k: 2, victim_n: 4, antagonist_threshold: 0.5}
placement: {enabled: true, on_score: 0.4, off_score: 0.2}
)",
                             "t.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->detector.windows[0], std::chrono::seconds(5));
  EXPECT_EQ(c->detector.windows[2], std::chrono::minutes(10));
  EXPECT_DOUBLE_EQ(c->detector.cpu_percentile, 0.95);
  EXPECT_DOUBLE_EQ(c->detector.margin, 0.2);
  EXPECT_EQ(c->detector.victim_k, 2);
  EXPECT_DOUBLE_EQ(c->detector.antagonist_threshold, 0.5);
  EXPECT_TRUE(c->placement.enabled);
  EXPECT_DOUBLE_EQ(c->placement.on_score, 0.4);
  EXPECT_TRUE(validateConfig(*c).has_value());
}

TEST(ConfigDetector, RejectsNonNumbersAndBadRanges) {
  auto bad = parseConfig("detector:\n  recommendation:\n    margin: lots\n", "t.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "detector.recommendation.margin");
  EXPECT_EQ(bad.error().line, 3);
  EXPECT_NE(bad.error().reason.find("expected a number"), std::string::npos);

  const auto invalid = [](const char* yaml) {
    auto c = parseConfig(yaml, "t.yaml");  // parsing validates too
    EXPECT_FALSE(c.has_value()) << yaml;
    return c.has_value() ? ConfigError{} : c.error();
  };
  EXPECT_EQ(invalid("detector: {noisy_neighbor: {victim_k: 6, victim_n: 5}}").field,
            "detector.noisy_neighbor.victim_k");
  EXPECT_EQ(invalid("detector: {windows: {short: 2m, mid: 1m}}").field, "detector.windows");
  EXPECT_EQ(invalid("detector: {metrics_windows: [mid, hourly]}").field,
            "detector.metrics_windows[1]");
  EXPECT_EQ(invalid("detector: {recommendation: {cpu_percentile: 1.5}}").field,
            "detector.recommendation.cpu_percentile");
  EXPECT_EQ(invalid("placement: {on_score: 0.2, off_score: 0.5}").field, "placement.off_score");
  EXPECT_EQ(invalid("detector: {enabled: false}\nplacement: {enabled: true}").field,
            "placement.enabled");
  EXPECT_EQ(invalid("placement: {taint_key: \"bad key!\"}").field, "placement.taint_key");
  EXPECT_EQ(invalid("interval: 1s\ndetector: {windows: {long: 2h}}").field,
            "detector.windows.long");
}

TEST(ConfigSizes, ByteSizesWithUnits) {
  EXPECT_EQ(parseByteSize("65536").value(), 65536U);
  EXPECT_EQ(parseByteSize("256KiB").value(), 256U * 1024);
  EXPECT_EQ(parseByteSize("1MiB").value(), 1U << 20);
  EXPECT_EQ(parseByteSize("2GiB").value(), 2ULL << 30);
  EXPECT_FALSE(parseByteSize("").has_value());
  EXPECT_FALSE(parseByteSize("1MB").has_value());
  EXPECT_FALSE(parseByteSize("-1").has_value());
  EXPECT_FALSE(parseByteSize("1.5MiB").has_value());
  EXPECT_FALSE(parseByteSize("99999999999999999999").has_value());
  EXPECT_FALSE(parseByteSize("20000000TiB").has_value());
}

TEST(ConfigSizes, LogSettingsParseAndAreChecked) {
  auto c = parseConfig(
      "collectors:\n  logs:\n    batch_bytes: 2MiB\n    read_compressed: true\n"
      "  journal:\n    units: [a.service]\n"
      "loki:\n  url: http://127.0.0.1:3100/loki/api/v1/push\n  encoding: json\n",
      "t.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->logs.batcher.batch_bytes, 2U << 20);
  EXPECT_TRUE(c->logs.tailer.read_compressed);
  EXPECT_EQ(c->journal.units, std::vector<std::string>{"a.service"});
  EXPECT_EQ(c->loki.encoding, "json");
  auto bad = parseConfig("loki:\n  encoding: xml\n", "t.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "loki.encoding");
  EXPECT_EQ(bad.error().line, 2);
  bad = parseConfig("collectors:\n  journal:\n    units: kubelet.service\n", "t.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "collectors.journal.units");
  bad = parseConfig("spool:\n  max_bytes: lots\n", "t.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "spool.max_bytes");
  bad = parseConfig("loki:\n  url: ftp://x\n", "t.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "loki.url");
}

TEST(ConfigRemoteWrite, ParsesEveryKey) {
  const auto c = parseConfig(
      "remote_write:\n"
      "  url: https://mimir.example:443/api/v1/push\n"
      "  username: agent\n"
      "  password_file: /etc/nodewarden/rw-password\n"
      "  ca_file: /etc/ssl/rw-ca.pem\n"
      "  insecure_skip_verify: true\n"
      "  timeout: 5s\n"
      "  headers: [\"X-Scope-OrgID: team-a\"]\n"
      "  max_samples_per_send: 500\n"
      "  spool_max_bytes: 64MiB\n",
      "t.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->remote_write.url, "https://mimir.example:443/api/v1/push");
  EXPECT_EQ(c->remote_write.username, "agent");
  EXPECT_EQ(c->remote_write.password_file, "/etc/nodewarden/rw-password");
  EXPECT_EQ(c->remote_write.ca_file, "/etc/ssl/rw-ca.pem");
  EXPECT_TRUE(c->remote_write.insecure_skip_verify);
  EXPECT_EQ(c->remote_write.timeout, seconds(5));
  EXPECT_EQ(c->remote_write.headers, std::vector<std::string>{"X-Scope-OrgID: team-a"});
  EXPECT_EQ(c->remote_write.max_samples_per_send, 500);
  EXPECT_EQ(c->remote_write.spool_max_bytes, 64ULL << 20);
  // Off by default.
  EXPECT_TRUE(Config{}.remote_write.url.empty());
  EXPECT_EQ(Config{}.remote_write.max_samples_per_send, 2000);
}

TEST(ConfigRemoteWrite, RejectsBadValuesNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {"remote_write:\n  url: ftp://x/api/v1/write\n", "remote_write.url"},
      {"remote_write:\n  timeout: 10ms\n", "remote_write.timeout"},
      {"remote_write:\n  max_samples_per_send: 0\n", "remote_write.max_samples_per_send"},
      {"remote_write:\n  spool_max_bytes: 1KiB\n", "remote_write.spool_max_bytes"},
      {"remote_write:\n  username: a\n  password_file: /p\n  bearer_token_file: /t\n",
       "remote_write.username"},
      {"remote_write:\n  username: a\n", "remote_write.password_file"},
      {"remote_write:\n  headers: [\"no colon here\"]\n", "remote_write.headers"},
      {"remote_write:\n  headers: [\": empty name\"]\n", "remote_write.headers"},
      {"remote_write:\n  max_samples_per_send: lots\n", "remote_write.max_samples_per_send"},
      {"remote_write:\n  urll: http://x\n", "remote_write.urll"},
  };
  for (const auto& [yaml, field] : cases) {
    const auto error = parseError(yaml);
    EXPECT_EQ(error.field, field) << yaml << " -> " << error.message();
    EXPECT_FALSE(error.reason.empty()) << yaml;
  }
}

// The DaemonSet's config documents every default and differs in one key: the kubelet source is
// off, since the base RBAC grants no kubelet access (deploy/kubernetes/overlays/kubelet does).
TEST(ConfigDefaults, DeployExampleParsesToDefaults) {
  const auto config = loadConfigFile(std::filesystem::path(NODEWARDEN_FIXTURES) /
                                     "../../deploy/config/nodewarden.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  Config expected;
  expected.pods.kubelet = false;
  EXPECT_EQ(*config, expected);
}

TEST(ConfigFile, ValidFixtureSetsEveryField) {
  const auto config = loadConfigFile(kFixtures / "valid.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(config->listen, "[::1]:9100");
  EXPECT_EQ(config->node_name, "worker-1");
  EXPECT_EQ(config->interval, milliseconds(90'000));
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->paths.cgroup_root, "/host/sys/fs/cgroup");
  EXPECT_EQ(config->paths.proc_root, "/host/proc");
  EXPECT_EQ(config->paths.log_root, "/host/var/log/pods");
  EXPECT_EQ(config->paths.state_dir, "/tmp/nodewarden-state");
  EXPECT_TRUE(config->cgroup.enabled);  // written as "yes", which yaml-cpp reads as a bool
  EXPECT_EQ(config->cgroup.max_depth, 12);
  EXPECT_EQ(config->cgroup.root_search_interval, minutes(2));
  EXPECT_FALSE(config->node.enabled);
}

TEST(ConfigFile, PartialFileKeepsOtherDefaults) {
  const auto config = parseConfig("collectors:\n  node:\n    enabled: off\n", "t.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  Config expected;
  expected.node.enabled = false;
  EXPECT_EQ(*config, expected);
}

// --- Fixture errors -----------------------------------------------------------------------------

TEST(ConfigFile, UnknownKeyFixture) {
  const std::string file = (kFixtures / "unknown_key.yaml").string();
  const auto config = loadConfigFile(file);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().file, file);
  EXPECT_EQ(config.error().line, 6);
  EXPECT_EQ(config.error().field, "collectors.cgroup.max_dept");
  EXPECT_EQ(config.error().reason, "unknown key \"max_dept\" (did you mean \"max_depth\"?)");
  EXPECT_EQ(config.error().message(),
            file +
                ":6: collectors.cgroup.max_dept: unknown key \"max_dept\" (did you mean "
                "\"max_depth\"?)");
}

TEST(ConfigFile, BadDurationFixture) {
  const auto config = loadConfigFile(kFixtures / "bad_duration.yaml");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().line, 5);
  EXPECT_EQ(config.error().field, "collectors.cgroup.root_search_interval");
  EXPECT_THAT(config.error().reason, HasSubstr("invalid duration \"60\": missing unit"));
}

TEST(ConfigFile, WrongTypeFixture) {
  const auto config = loadConfigFile(kFixtures / "wrong_type.yaml");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().line, 6);
  EXPECT_EQ(config.error().field, "collectors.cgroup.max_depth");
  EXPECT_EQ(config.error().reason, "expected an integer, found \"8.5\"");
}

TEST(ConfigFile, SyntaxErrorFixture) {
  const std::string file = (kFixtures / "syntax_error.yaml").string();
  const auto config = loadConfigFile(file);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().file, file);
  EXPECT_EQ(config.error().line, 4);
  EXPECT_EQ(config.error().field, "");
  EXPECT_EQ(config.error().reason, "invalid YAML: illegal map value");
  EXPECT_EQ(config.error().message(), file + ":4: invalid YAML: illegal map value");
}

TEST(ConfigFile, MissingFileNamesFileAndReason) {
  const std::string file = (kFixtures / "does_not_exist.yaml").string();
  const auto config = loadConfigFile(file);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().file, file);
  EXPECT_EQ(config.error().line, 0);
  EXPECT_EQ(config.error().reason,
            "cannot open: " + std::error_code(ENOENT, std::generic_category()).message());
  EXPECT_EQ(config.error().message(), file + ": " + config.error().reason);
}

TEST(ConfigFile, DirectoryIsUnreadable) {
  const auto config = loadConfigFile(kFixtures);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().reason,
            "cannot read: " + std::error_code(EISDIR, std::generic_category()).message());
}

// --- Keys ---------------------------------------------------------------------------------------

TEST(ConfigKeys, UnknownTopLevelKeyWithSuggestion) {
  const ConfigError error = parseError("listen: 0.0.0.0:9465\nintervall: 5s\n");
  EXPECT_EQ(error.file, "test.yaml");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.field, "intervall");
  EXPECT_EQ(error.reason, "unknown key \"intervall\" (did you mean \"interval\"?)");
}

TEST(ConfigKeys, UnknownKeyWithoutNearMatchListsKnownKeys) {
  const ConfigError error = parseError("paths:\n  tmpdir: /x\n");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.field, "paths.tmpdir");
  EXPECT_EQ(error.reason,
            "unknown key \"tmpdir\" (known keys: cgroup_root, proc_root, log_root, state_dir, "
            "runtime_state_dirs)");
}

TEST(ConfigKeys, KeyAtTheWrongLevelPointsToItsSection) {
  const ConfigError error = parseError("cgroup_root: /host/sys/fs/cgroup\n");
  EXPECT_EQ(error.line, 1);
  EXPECT_EQ(error.field, "cgroup_root");
  EXPECT_EQ(error.reason, "unknown key \"cgroup_root\" (did you mean \"paths.cgroup_root\"?)");
}

TEST(ConfigKeys, EditDistanceOfThreeIsNotSuggested) {
  const ConfigError error = parseError("collectors:\n  node:\n    enbl: true\n");
  EXPECT_EQ(error.line, 3);
  EXPECT_EQ(error.field, "collectors.node.enbl");
  EXPECT_EQ(error.reason, "unknown key \"enbl\" (known keys: enabled)");
}

TEST(ConfigKeys, DuplicateKey) {
  const ConfigError error = parseError("interval: 5s\nlog_level: info\ninterval: 10s\n");
  EXPECT_EQ(error.line, 3);
  EXPECT_EQ(error.field, "interval");
  EXPECT_EQ(error.reason, "duplicate key (first set on line 1)");
}

TEST(ConfigKeys, NonScalarKey) {
  const ConfigError error = parseError("paths:\n  ? [a, b]\n  : /x\n");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.field, "paths");
  EXPECT_THAT(error.reason, HasSubstr("keys must be plain names"));
}

// --- Documents ----------------------------------------------------------------------------------

TEST(ConfigDocument, SequenceAtTopLevel) {
  const ConfigError error = parseError("- listen\n- interval\n");
  EXPECT_EQ(error.line, 1);
  EXPECT_EQ(error.field, "");
  EXPECT_EQ(error.reason, "the top level must be a mapping of settings, found a list");
  EXPECT_EQ(error.message(),
            "test.yaml:1: the top level must be a mapping of settings, found a list");
}

TEST(ConfigDocument, ScalarAtTopLevel) {
  const ConfigError error = parseError("# comment\nlisten\n");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.reason, "the top level must be a mapping of settings, found a scalar");
}

TEST(ConfigDocument, SeveralDocuments) {
  const ConfigError error = parseError("interval: 5s\n---\ninterval: 6s\n");
  EXPECT_EQ(error.line, 3);
  EXPECT_EQ(error.reason, "expected one YAML document, found 2");
}

TEST(ConfigDocument, SyntaxErrorLine) {
  const ConfigError error = parseError("listen: 0.0.0.0:9465\ninterval: [10s\nlog_level: info\n");
  EXPECT_EQ(error.field, "");
  EXPECT_GE(error.line, 2);  // yaml-cpp reports where it noticed: the unclosed list's end
  EXPECT_THAT(error.reason, HasSubstr("invalid YAML: end of sequence flow not found"));
}

TEST(ConfigDocument, UndefinedAlias) {
  const ConfigError error = parseError("listen: *address\n");
  EXPECT_EQ(error.line, 1);
  EXPECT_THAT(error.reason, HasSubstr("invalid YAML"));
}

// --- Types --------------------------------------------------------------------------------------

struct TypeCase {
  std::string yaml;
  int line;
  std::string field;
  std::string reason;
};

class ConfigTypes : public ::testing::TestWithParam<TypeCase> {};

TEST_P(ConfigTypes, RejectedWithFieldLineAndReason) {
  const TypeCase& test = GetParam();
  const ConfigError error = parseError(test.yaml);
  EXPECT_EQ(error.line, test.line);
  EXPECT_EQ(error.field, test.field);
  EXPECT_EQ(error.reason, test.reason);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigTypes,
    ::testing::Values(
        TypeCase{"listen:\n  host: 0.0.0.0\n", 1, "listen", "expected a string, found a mapping"},
        TypeCase{"node_name: [a, b]\n", 1, "node_name", "expected a string, found a list"},
        TypeCase{"log_level: info\nnode_name:\n", 2, "node_name",
                 "expected a string, found nothing (null)"},
        TypeCase{"paths:\n  proc_root: {a: 1}\n", 2, "paths.proc_root",
                 "expected a path, found a mapping"},
        TypeCase{"paths: /host\n", 1, "paths",
                 "expected a mapping of settings, found a scalar \"/host\""},
        TypeCase{"collectors:\n  - cgroup\n", 1, "collectors",
                 "expected a mapping of settings, found a list"},
        TypeCase{"interval: {s: 10}\n", 1, "interval",
                 "expected a duration such as \"10s\", found a mapping"},
        TypeCase{"interval: 10\n", 1, "interval",
                 "invalid duration \"10\": missing unit (use h, m, s or ms, e.g. \"10s\")"},
        TypeCase{"collectors:\n  cgroup:\n    max_depth: eight\n", 3, "collectors.cgroup.max_depth",
                 "expected an integer, found \"eight\""},
        TypeCase{"collectors:\n  cgroup:\n    max_depth: \"8\"\n", 3, "collectors.cgroup.max_depth",
                 "expected an integer, found the quoted string \"8\""},
        TypeCase{"collectors:\n  cgroup:\n    max_depth: 99999999999\n", 3,
                 "collectors.cgroup.max_depth", "expected an integer, found \"99999999999\""},
        TypeCase{"collectors:\n  cgroup:\n    max_depth:\n", 3, "collectors.cgroup.max_depth",
                 "expected an integer, found nothing (null)"},
        TypeCase{"collectors:\n  node:\n    enabled: maybe\n", 3, "collectors.node.enabled",
                 "expected true or false, found \"maybe\""},
        TypeCase{"collectors:\n  node:\n    enabled: 1\n", 3, "collectors.node.enabled",
                 "expected true or false, found \"1\""},
        TypeCase{"collectors:\n  node:\n    enabled: \"true\"\n", 3, "collectors.node.enabled",
                 "expected true or false, found the quoted string \"true\""},
        TypeCase{"collectors:\n  cgroup:\n    enabled: [true]\n", 3, "collectors.cgroup.enabled",
                 "expected true or false, found a list"}));

TEST(ConfigTypesAccepted, YamlBoolSpellings) {
  for (const std::string word : {"true", "True", "yes", "on", "y"}) {
    const auto config = parseConfig("collectors:\n  node:\n    enabled: " + word + "\n", "t");
    ASSERT_TRUE(config.has_value()) << word << ": " << config.error().message();
    EXPECT_TRUE(config->node.enabled) << word;
  }
  for (const std::string word : {"false", "no", "off", "n"}) {
    const auto config = parseConfig("collectors:\n  node:\n    enabled: " + word + "\n", "t");
    ASSERT_TRUE(config.has_value()) << word << ": " << config.error().message();
    EXPECT_FALSE(config->node.enabled) << word;
  }
}

TEST(ConfigTypesAccepted, QuotedAndPlainStrings) {
  const auto config = parseConfig("node_name: \"\"\nlisten: '127.0.0.1:80'\n", "t");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(config->node_name, "");
  EXPECT_EQ(config->listen, "127.0.0.1:80");
}

// --- Range errors found while parsing carry the file's line
// ---------------------------------------

TEST(ConfigRangesInFile, PointAtTheirLine) {
  struct Case {
    std::string yaml;
    int line;
    std::string field;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"listen: 0.0.0.0:9465\ninterval: 500ms\n", 2, "interval",
       "must be between 1s and 1h, got 500ms"},
      {"log_level: verbose\n", 1, "log_level",
       "unknown log level \"verbose\" (expected trace, debug, info, warn or error)"},
      {"listen: 9465\n", 1, "listen",
       "missing port in \"9465\" (expected host:port, e.g. 0.0.0.0:9465 or [::1]:9465)"},
      {"paths:\n  log_root: \"\"\n", 2, "paths.log_root", "must not be empty"},
      {"collectors:\n  cgroup:\n    max_depth: 33\n", 3, "collectors.cgroup.max_depth",
       "must be between 1 and 32, got 33"},
      {"collectors:\n  cgroup:\n\n    root_search_interval: 0s\n", 4,
       "collectors.cgroup.root_search_interval", "must be at least 1s, got 0s"},
  };
  for (const Case& test : cases) {
    const ConfigError error = parseError(test.yaml, "f.yaml");
    EXPECT_EQ(error.file, "f.yaml") << test.yaml;
    EXPECT_EQ(error.line, test.line) << test.yaml;
    EXPECT_EQ(error.field, test.field) << test.yaml;
    EXPECT_EQ(error.reason, test.reason) << test.yaml;
  }
}

// The tailer's and the batcher's counts are std::size_t in their options; the file still reads
// them as integers, and a negative one is a range error like any other, at its line.
TEST(ConfigRangesInFile, CountsKeptUnsignedReadAsIntegers) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"max_open_files: -1", "must be between 4 and 1048576, got -1"},
      {"max_open_files: 3", "must be between 4 and 1048576, got 3"},
      {"max_streams: -5", "must be between 1 and 1048576, got -5"},
      {"max_streams: 0", "must be between 1 and 1048576, got 0"},
      {"max_streams: many", "expected an integer, found \"many\""},
      {"max_open_files: 99999999999", "expected an integer, found \"99999999999\""},
  };
  for (const auto& [line, reason] : cases) {
    const std::string yaml = "collectors:\n  logs:\n\n    " + line + "\n";
    const ConfigError error = parseError(yaml, "f.yaml");
    EXPECT_EQ(error.line, 4) << line;
    EXPECT_EQ(error.field, "collectors.logs." + line.substr(0, line.find(':'))) << line;
    EXPECT_EQ(error.reason, reason) << line;
  }
  const auto config = parseConfig("collectors:\n  logs:\n    max_open_files: 4\n", "f.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(config->logs.tailer.max_open_files, 4U);
}

// --- kubernetes.pod_labels ---------------------------------------------------------------------

TEST(ConfigPodLabels, AListOfLabelKeys) {
  auto config = parseConfig(
      "kubernetes:\n  pod_labels:\n    - app.kubernetes.io/name\n    - team\n", "t.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(config->kubernetes.pod_labels,
            (std::vector<std::string>{"app.kubernetes.io/name", "team"}));
  config = parseConfig("kubernetes:\n  pod_labels: [app, \"example.com/tier\"]\n", "t.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message();
  EXPECT_EQ(config->kubernetes.pod_labels, (std::vector<std::string>{"app", "example.com/tier"}));
  EXPECT_TRUE(Config{}.kubernetes.pod_labels.empty());
}

TEST(ConfigPodLabels, ABadKeyIsNamedAtItsOwnLine) {
  const ConfigError error =
      parseError("kubernetes:\n  pod_labels:\n    - app\n    - team name\n", "f.yaml");
  EXPECT_EQ(error.line, 4);
  EXPECT_EQ(error.field, "kubernetes.pod_labels[1]");
  EXPECT_EQ(error.message(),
            "f.yaml:4: kubernetes.pod_labels[1]: \"team name\" is not a Kubernetes label key: the "
            "name part \"team name\" may hold only letters, digits, '-', '_' and '.'");
  const ConfigError prefix =
      parseError("kubernetes:\n  pod_labels:\n    - App.io/name\n", "f.yaml");
  EXPECT_EQ(prefix.line, 3);
  EXPECT_EQ(prefix.field, "kubernetes.pod_labels[0]");
  EXPECT_THAT(prefix.reason, HasSubstr("the prefix \"App.io\" is not a DNS subdomain"));
}

TEST(ConfigPodLabels, TwiceOrTheSameLabelNameIsRefused) {
  ConfigError error = parseError("kubernetes:\n  pod_labels: [app, team, app]\n", "f.yaml");
  EXPECT_EQ(error.line, 2);  // a flow list's items are on its line
  EXPECT_EQ(error.field, "kubernetes.pod_labels[2]");
  EXPECT_EQ(error.reason, "\"app\" is listed twice");
  error = parseError(
      "kubernetes:\n  pod_labels:\n    - app.kubernetes.io/name\n    - app-kubernetes-io-name\n",
      "f.yaml");
  EXPECT_EQ(error.line, 4);
  EXPECT_EQ(error.field, "kubernetes.pod_labels[1]");
  EXPECT_EQ(error.reason,
            "\"app-kubernetes-io-name\" and \"app.kubernetes.io/name\" both become the label "
            "name app_kubernetes_io_name; list only one of them");
}

TEST(ConfigPodLabels, NotAListIsAnError) {
  const ConfigError error = parseError("kubernetes:\n  pod_labels: app\n", "f.yaml");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.field, "kubernetes.pod_labels");
  EXPECT_EQ(error.reason, "expected a list of strings, found \"app\"");
}

TEST(ConfigPodLabels, ValidateChecksKeysSetByFlags) {
  Config config;
  config.kubernetes.pod_labels = {"app", "bad key"};
  const auto result = validateConfig(config);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().field, "kubernetes.pod_labels[1]");
  EXPECT_EQ(result.error().line, 0);
  config.kubernetes.pod_labels = {"app", "app.kubernetes.io/name"};
  EXPECT_TRUE(validateConfig(config).has_value());
}

// --- Durations ----------------------------------------------------------------------------------

TEST(ParseDuration, Accepted) {
  const std::vector<std::pair<std::string, milliseconds>> cases = {
      {"500ms", milliseconds(500)},
      {"10s", seconds(10)},
      {"1m30s", seconds(90)},
      {"2h", hours(2)},
      {"1.5s", milliseconds(1500)},
      {"0s", milliseconds(0)},
      {"0.001s", milliseconds(1)},
      {"1.5m", seconds(90)},
      {"0.25h", minutes(15)},
      {"2.50s", milliseconds(2500)},
      {"1h2m3s4ms", milliseconds(3'723'004)},
      {"90m", minutes(90)},
      {"1000ms", seconds(1)},
      {"9223372036854775807ms", milliseconds(9223372036854775807)},
      {"2562047788015h12m55s807ms", milliseconds(9223372036854775807)},
  };
  for (const auto& [text, expected] : cases) {
    const auto parsed = parseDuration(text);
    ASSERT_TRUE(parsed.has_value()) << text << ": " << parsed.error();
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(ParseDuration, Rejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "invalid duration \"\": empty (write e.g. \"10s\")"},
      {"10", "invalid duration \"10\": missing unit (use h, m, s or ms, e.g. \"10s\")"},
      {"1.5", "invalid duration \"1.5\": missing unit (use h, m, s or ms, e.g. \"10s\")"},
      {"-5s", "invalid duration \"-5s\": must not be negative"},
      {"+5s", "invalid duration \"+5s\": expected a number at \"+5s\""},
      {"5d", "invalid duration \"5d\": unknown unit \"d\" (use h, m, s or ms)"},
      {"5S", "invalid duration \"5S\": unknown unit \"S\" (use h, m, s or ms)"},
      {"5us", "invalid duration \"5us\": unknown unit \"us\" (use h, m, s or ms)"},
      {"10 s", "invalid duration \"10 s\": expected a unit at \" s\""},
      {" 10s", "invalid duration \" 10s\": expected a number at \" 10s\""},
      {"s", "invalid duration \"s\": expected a number at \"s\""},
      {"1m30", "invalid duration \"1m30\": missing unit (use h, m, s or ms, e.g. \"10s\")"},
      {"30s1m", "invalid duration \"30s1m\": units must go from largest to smallest, each once"},
      {"1s1s", "invalid duration \"1s1s\": units must go from largest to smallest, each once"},
      {"1.s", "invalid duration \"1.s\": expected digits after \".\""},
      {".5s", "invalid duration \".5s\": expected a number at \".5s\""},
      {"1.5ms", "invalid duration \"1.5ms\": finer than a millisecond"},
      {"0.0001s", "invalid duration \"0.0001s\": finer than a millisecond"},
      {"1.000000001h", "invalid duration \"1.000000001h\": finer than a millisecond"},
      {"9223372036854775808ms", "invalid duration \"9223372036854775808ms\": too large"},
      {"2562047788016h", "invalid duration \"2562047788016h\": too large"},
      {"99999999999999999999999s", "invalid duration \"99999999999999999999999s\": too large"},
      {"2562047788015h12m55s808ms", "invalid duration \"2562047788015h12m55s808ms\": too large"},
  };
  for (const auto& [text, expected] : cases) {
    const auto parsed = parseDuration(text);
    ASSERT_FALSE(parsed.has_value()) << text << " parsed as " << parsed->count() << "ms";
    EXPECT_EQ(parsed.error(), expected) << text;
  }
}

// --- validateConfig ranges ----------------------------------------------------------------------

struct ValidateCase {
  std::string name;
  std::function<void(Config&)> change;
  std::string field;  // empty: valid
};

class ConfigValidate : public ::testing::TestWithParam<ValidateCase> {};

TEST_P(ConfigValidate, Range) {
  Config config;
  GetParam().change(config);
  const auto result = validateConfig(config);
  if (GetParam().field.empty()) {
    EXPECT_TRUE(result.has_value()) << result.error().message();
  } else {
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().field, GetParam().field);
    EXPECT_EQ(result.error().file, "");
    EXPECT_EQ(result.error().line, 0);
    EXPECT_EQ(result.error().message(), GetParam().field + ": " + result.error().reason);
  }
}

ValidateCase listenCase(std::string name, std::string listen, bool valid) {
  return {std::move(name), [listen](Config& c) { c.listen = listen; }, valid ? "" : "listen"};
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigValidate,
    ::testing::Values(
        ValidateCase{"IntervalOneSecond", [](Config& c) { c.interval = seconds(1); }, ""},
        ValidateCase{"IntervalOneHour", [](Config& c) { c.interval = hours(1); }, ""},
        ValidateCase{"IntervalBelow", [](Config& c) { c.interval = milliseconds(999); },
                     "interval"},
        ValidateCase{"IntervalAbove", [](Config& c) { c.interval = hours(1) + milliseconds(1); },
                     "interval"},
        ValidateCase{"IntervalNegative", [](Config& c) { c.interval = seconds(-10); }, "interval"},
        listenCase("ListenIpv4", "127.0.0.1:9465", true),
        listenCase("ListenHostName", "localhost:1", true),
        listenCase("ListenPortMax", "0.0.0.0:65535", true),
        listenCase("ListenIpv6", "[::1]:9465", true),
        listenCase("ListenIpv6Any", "[::]:9465", true),
        listenCase("ListenPortZero", "0.0.0.0:0", false),
        listenCase("ListenPortTooBig", "0.0.0.0:65536", false),
        listenCase("ListenPortNotNumber", "0.0.0.0:http", false),
        listenCase("ListenPortEmpty", "0.0.0.0:", false),
        listenCase("ListenPortSigned", "0.0.0.0:+80", false),
        listenCase("ListenNoPort", "0.0.0.0", false), listenCase("ListenNoHost", ":9465", false),
        listenCase("ListenEmpty", "", false),
        listenCase("ListenIpv6Unbracketed", "::1:9465", false),
        listenCase("ListenIpv6NoPort", "[::1]", false),
        listenCase("ListenIpv6Unterminated", "[::1:9465", false),
        listenCase("ListenIpv6EmptyHost", "[]:9465", false),
        listenCase("ListenSpace", "local host:9465", false),
        ValidateCase{"MaxDepthOne", [](Config& c) { c.cgroup.max_depth = 1; }, ""},
        ValidateCase{"MaxDepth32", [](Config& c) { c.cgroup.max_depth = 32; }, ""},
        ValidateCase{"MaxDepthZero", [](Config& c) { c.cgroup.max_depth = 0; },
                     "collectors.cgroup.max_depth"},
        ValidateCase{"MaxDepth33", [](Config& c) { c.cgroup.max_depth = 33; },
                     "collectors.cgroup.max_depth"},
        ValidateCase{"RootSearchOneSecond",
                     [](Config& c) { c.cgroup.root_search_interval = seconds(1); }, ""},
        ValidateCase{"RootSearchLong", [](Config& c) { c.cgroup.root_search_interval = hours(24); },
                     ""},
        ValidateCase{"RootSearchBelow",
                     [](Config& c) { c.cgroup.root_search_interval = milliseconds(999); },
                     "collectors.cgroup.root_search_interval"},
        ValidateCase{"LogLevelTrace", [](Config& c) { c.log_level = "trace"; }, ""},
        ValidateCase{"LogLevelDebug", [](Config& c) { c.log_level = "debug"; }, ""},
        ValidateCase{"LogLevelWarn", [](Config& c) { c.log_level = "warn"; }, ""},
        ValidateCase{"LogLevelError", [](Config& c) { c.log_level = "error"; }, ""},
        ValidateCase{"LogLevelWarning", [](Config& c) { c.log_level = "warning"; }, "log_level"},
        ValidateCase{"LogLevelUpper", [](Config& c) { c.log_level = "INFO"; }, "log_level"},
        ValidateCase{"LogLevelEmpty", [](Config& c) { c.log_level = ""; }, "log_level"},
        ValidateCase{"CgroupRootEmpty", [](Config& c) { c.paths.cgroup_root.clear(); },
                     "paths.cgroup_root"},
        ValidateCase{"ProcRootEmpty", [](Config& c) { c.paths.proc_root.clear(); },
                     "paths.proc_root"},
        ValidateCase{"LogRootEmpty", [](Config& c) { c.paths.log_root.clear(); }, "paths.log_root"},
        ValidateCase{"StateDirEmpty", [](Config& c) { c.paths.state_dir.clear(); },
                     "paths.state_dir"},
        ValidateCase{"JobsPollFast", [](Config& c) { c.jobs.poll_interval = milliseconds(100); },
                     ""},
        ValidateCase{"JobsPollTooFast", [](Config& c) { c.jobs.poll_interval = milliseconds(99); },
                     "collectors.jobs.poll_interval"},
        ValidateCase{"JobsStatusWaitZero", [](Config& c) { c.jobs.status_wait = seconds(0); },
                     "collectors.jobs.status_wait"},
        ValidateCase{"JobsRetentionDays", [](Config& c) { c.jobs.retention = hours(24 * 30); }, ""},
        ValidateCase{"JobsRetentionTooLong",
                     [](Config& c) { c.jobs.retention = hours(24 * 30) + seconds(1); },
                     "collectors.jobs.retention"},
        ValidateCase{"JobsMaxRecentZero", [](Config& c) { c.jobs.max_recent = 0; },
                     "collectors.jobs.max_recent"},
        ValidateCase{"KubeletRefreshTooFast",
                     [](Config& c) { c.pods.kubelet_source.refresh_interval = milliseconds(500); },
                     "collectors.pods.kubelet_refresh_interval"}),
    [](const ::testing::TestParamInfo<ValidateCase>& param) { return param.param.name; });

TEST(ConfigValidateReasons, AreSpecific) {
  Config config;
  config.listen = "0.0.0.0:70000";
  EXPECT_EQ(validateConfig(config).error().reason,
            "port must be a number from 1 to 65535, got \"70000\"");
  config.listen = "::1:9465";
  EXPECT_EQ(validateConfig(config).error().reason,
            "an IPv6 address must be in brackets, e.g. [::1]:9465, got \"::1:9465\"");
  config = Config{};
  config.interval = minutes(61) + seconds(1) + milliseconds(5);
  EXPECT_EQ(validateConfig(config).error().reason, "must be between 1s and 1h, got 1h1m1s5ms");
}

// --- ConfigError::message -----------------------------------------------------------------------

TEST(ConfigErrorMessage, OmitsUnknownParts) {
  EXPECT_EQ((ConfigError{"a.yaml", 3, "interval", "bad"}).message(), "a.yaml:3: interval: bad");
  EXPECT_EQ((ConfigError{"a.yaml", 0, "interval", "bad"}).message(), "a.yaml: interval: bad");
  EXPECT_EQ((ConfigError{"a.yaml", 3, "", "bad"}).message(), "a.yaml:3: bad");
  EXPECT_EQ((ConfigError{"a.yaml", 0, "", "bad"}).message(), "a.yaml: bad");
  EXPECT_EQ((ConfigError{"", 0, "interval", "bad"}).message(), "interval: bad");
  EXPECT_EQ((ConfigError{"", 7, "interval", "bad"}).message(), "line 7: interval: bad");
  EXPECT_EQ((ConfigError{"", 0, "", "bad"}).message(), "bad");
}

}  // namespace
}  // namespace nodewarden

// --- TLS on the listener -------------------------------------------------------------------------

namespace nodewarden {
namespace {

TEST(ConfigTls, BothReadableFilesAreAccepted) {
  // Any readable files pass here; what is in them is checked when the listener loads them.
  const auto c =
      parseConfig("tls:\n  cert_file: /etc/hostname\n  key_file: /etc/hostname\n", "t.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->tls.cert_file, "/etc/hostname");
  EXPECT_EQ(c->tls.key_file, "/etc/hostname");
  EXPECT_TRUE(c->tls.client_ca_file.empty());
}

TEST(ConfigTls, OneFileWithoutTheOtherNamesTheMissingOneAndItsLine) {
  auto e = parseError("listen: 0.0.0.0:9465\ntls:\n  cert_file: /etc/hostname\n");
  EXPECT_EQ(e.field, "tls.key_file");
  EXPECT_NE(e.reason.find("both or neither"), std::string::npos) << e.message();
  e = parseError("tls:\n  key_file: /etc/hostname\n");
  EXPECT_EQ(e.field, "tls.cert_file");
  EXPECT_EQ(e.line, 0) << "the missing key has no line of its own";
  e = parseError("tls:\n  client_ca_file: /etc/hostname\n");
  EXPECT_EQ(e.field, "tls.client_ca_file");
  EXPECT_EQ(e.line, 2);
}

TEST(ConfigTls, AnUnreadableFileIsAStartupErrorNamingFileLineAndField) {
  const auto e = parseError("tls:\n  cert_file: /etc/hostname\n  key_file: /nonexistent/tls.key\n",
                            "agent.yaml");
  EXPECT_EQ(e.message(),
            "agent.yaml:3: tls.key_file: cannot read \"/nonexistent/tls.key\": No such file or "
            "directory");
}

}  // namespace
}  // namespace nodewarden
