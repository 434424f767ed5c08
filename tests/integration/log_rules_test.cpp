// The log rules end to end with the real binary: a container's lines carrying secrets arrive at
// the fake Loki masked by the default redaction, a filter's dropped lines never arrive while the
// others do, and the agent's /metrics counts both per rule.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "tests/fakes/fake_loki.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::Labels;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::FakeLoki;
using nodewarden::testing::SpawnOptions;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class LogRulesEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::mt19937_64 rng{std::random_device{}()};
    base_ = fs::temp_directory_path() / ("nodewarden-rules-" + std::to_string(rng()));
    log_root_ = base_ / "var/log/pods";
    fs::create_directories(log_root_);
    auto loki = FakeLoki::start();
    ASSERT_TRUE(loki.has_value()) << loki.error();
    loki_ = std::move(*loki);
    port_ = nodewarden::testing::freeLoopbackPort();
  }
  void TearDown() override {
    agent_.stop(3s);
    loki_.reset();
    if (HasFailure()) std::fprintf(stderr, "agent log:\n%s\n", slurp(base_ / "agent.log").c_str());
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  // A container's CRI log file with the given lines (stdout), timestamps increasing.
  void writeLog(const std::string& ns, const std::string& pod, const std::string& container,
                const std::vector<std::string>& lines) {
    const fs::path dir =
        log_root_ /
        (ns + "_" + pod + "_11111111-2222-3333-4444-" + std::to_string(100000000000 + ++pods_)) /
        container;
    fs::create_directories(dir);
    std::ofstream out(dir / "0.log", std::ios::app);
    int n = 0;
    for (const auto& line : lines) {
      char ts[64];
      std::snprintf(ts, sizeof ts, "2026-11-21T10:00:00.%06dZ", ++n);
      out << ts << " stdout F " << line << "\n";
    }
  }

  static Labels stream(const std::string& ns, const std::string& pod,
                       const std::string& container) {
    return {{"container", container},
            {"namespace", ns},
            {"node", "test-node"},
            {"pod", pod},
            {"stream", "stdout"}};
  }

  void startAgent(const std::string& logs_extra) {
    std::ofstream(base_ / "config.yaml") << "interval: 1s\n"
                                            "node_name: test-node\n"
                                            "collectors:\n"
                                            "  cgroup:\n    enabled: false\n"
                                            "  node:\n    enabled: false\n"
                                            "  journal:\n    enabled: false\n"
                                            "  logs:\n    batch_wait: 100ms\n"
                                            "    rescan_interval: 500ms\n"
                                         << logs_extra;
    SpawnOptions o;
    o.output = base_ / "agent.log";
    auto child = ChildProcess::start(
        {NODEWARDEN_BINARY, "run", "--config", (base_ / "config.yaml").string(), "--listen",
         "127.0.0.1:" + std::to_string(port_), "--log-root", log_root_.string(), "--state-dir",
         (base_ / "state").string(), "--loki-url", loki_->pushUrl()},
        o);
    ASSERT_TRUE(child.has_value()) << child.error();
    agent_ = std::move(*child);
  }

  // The agent's own series, from its /metrics; -1 when not found.
  double agentMetric(const std::string& series) {
    auto m = nodewarden::testing::httpGet("http://127.0.0.1:" + std::to_string(port_) + "/metrics");
    if (!m || m->status != 200) return -1;
    const auto at = m->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(m->body.substr(at + series.size() + 2));
  }

  // Polls until the series has the value (the counters are published on the agent's tick).
  bool waitMetric(const std::string& series, double want) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (agentMetric(series) == want) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  fs::path base_, log_root_;
  int port_ = 0;
  int pods_ = 0;
  std::unique_ptr<FakeLoki> loki_;
  ChildProcess agent_;
};

std::vector<std::string> linesOf(const std::vector<nodewarden::LogEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.line);
  return out;
}

TEST_F(LogRulesEndToEnd, SecretsArriveMaskedByDefault) {
  writeLog("etl", "airflow-worker-0", "worker",
           {
               "connecting to postgresql://airflow:Pa55w0rd@db:5432/airflow",
               "jdbc:postgresql://db:5432/app?user=etl&password=hunter2&ssl=true",
               R"({"level":"info","msg":"login","password":"s3cret","user":"bob"})",
               "GET /api Authorization: Bearer abc.def-ghi",
               "using key AKIAIOSFODNN7EXAMPLE",
               "-----BEGIN RSA PRIVATE KEY-----",
               "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2t7Hc6bnbKxEoqjwqL5Vxbb",
               "-----END RSA PRIVATE KEY-----",
               "an ordinary line 123e4567-e89b-12d3-a456-426614174000",
           });
  startAgent("");
  ASSERT_TRUE(loki_->waitForEntries(9, 30s)) << loki_->entryCount();
  EXPECT_EQ(
      linesOf(loki_->entries(stream("etl", "airflow-worker-0", "worker"))),
      (std::vector<std::string>{
          "connecting to postgresql://airflow:<redacted:url_credentials>@db:5432/airflow",
          "jdbc:postgresql://db:5432/app?user=etl&password=<redacted:secret_pair>&ssl=true",
          R"({"level":"info","msg":"login","password":"<redacted:secret_pair>","user":"bob"})",
          "GET /api Authorization: Bearer <redacted:bearer_token>",
          "using key <redacted:aws_access_key_id>",
          "<redacted:private_key>",
          "<redacted:private_key>",
          "<redacted:private_key>",
          "an ordinary line 123e4567-e89b-12d3-a456-426614174000",
      }));
  EXPECT_TRUE(waitMetric("nodewarden_log_redactions_total{rule=\"private_key\"}", 3));
  EXPECT_EQ(agentMetric("nodewarden_log_redactions_total{rule=\"secret_pair\"}"), 2);
  EXPECT_EQ(agentMetric("nodewarden_log_redactions_total{rule=\"jwt\"}"), 0);
}

TEST_F(LogRulesEndToEnd, FilteredLinesDoNotArriveAndAreCounted) {
  writeLog("team-a", "api-0", "app", {"DEBUG cache miss", "INFO served /a", "DEBUG cache hit"});
  writeLog("team-b", "api-0", "app", {"DEBUG cache miss", "INFO served /b"});
  writeLog("team-a", "api-0", "istio-proxy", {"GET / 200", "GET /x 404"});
  writeLog("team-c", "worker-0", "worker", {"INFO tick", "ERROR boom", "INFO tock"});
  startAgent(
      "    filters:\n"
      "      - name: team-a-debug\n"
      "        match: {namespaces: [team-a]}\n"
      "        drop_lines: '\\bDEBUG\\b'\n"
      "      - name: mesh\n"
      "        match: {containers: [istio-proxy]}\n"
      "        drop_stream: true\n"
      "      - name: errors-only\n"
      "        match: {namespaces: [team-c]}\n"
      "        keep_lines: ERROR\n"
      "    redaction:\n"
      "      enabled: false\n");
  // 1 + 2 + 1 lines are kept; wait for them, then for the counters, which the agent publishes
  // after the lines it dropped were read (all four files are read in the same polls).
  ASSERT_TRUE(loki_->waitForEntries(4, 30s)) << loki_->entryCount();
  EXPECT_TRUE(waitMetric("nodewarden_log_lines_filtered_total{rule=\"team-a-debug\"}", 2));
  EXPECT_TRUE(waitMetric("nodewarden_log_lines_filtered_total{rule=\"mesh\"}", 2));
  EXPECT_TRUE(waitMetric("nodewarden_log_lines_filtered_total{rule=\"errors-only\"}", 2));
  EXPECT_EQ(agentMetric("nodewarden_log_bytes_filtered_total{rule=\"mesh\"}"), 9 + 10);
  EXPECT_EQ(linesOf(loki_->entries(stream("team-a", "api-0", "app"))),
            (std::vector<std::string>{"INFO served /a"}));
  EXPECT_EQ(linesOf(loki_->entries(stream("team-b", "api-0", "app"))),
            (std::vector<std::string>{"DEBUG cache miss", "INFO served /b"}));
  EXPECT_TRUE(loki_->entries(stream("team-a", "api-0", "istio-proxy")).empty());
  EXPECT_EQ(linesOf(loki_->entries(stream("team-c", "worker-0", "worker"))),
            (std::vector<std::string>{"ERROR boom"}));
  EXPECT_EQ(loki_->entryCount(), 4U) << "nothing dropped arrived";
}

TEST_F(LogRulesEndToEnd, ABadRuleStopsTheAgentAtStartWithFileLineAndField) {
  std::ofstream(base_ / "config.yaml") << "collectors:\n"
                                          "  logs:\n"
                                          "    filters:\n"
                                          "      - name: broken\n"
                                          "        drop_lines: 'a(b'\n";
  SpawnOptions o;
  o.output = base_ / "check.log";
  auto child =
      ChildProcess::start({NODEWARDEN_BINARY, "check-config", (base_ / "config.yaml").string()}, o);
  ASSERT_TRUE(child.has_value()) << child.error();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (child->running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(child->exitStatus().has_value()) << "check-config did not exit";
  EXPECT_NE(*child->exitStatus(), 0);
  EXPECT_NE(slurp(base_ / "check.log")
                .find((base_ / "config.yaml").string() +
                      ":5: collectors.logs.filters[0].drop_lines: not a valid RE2 regular "
                      "expression: missing ): a(b"),
            std::string::npos)
      << slurp(base_ / "check.log");
}

}  // namespace
