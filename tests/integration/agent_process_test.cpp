// The real nodewarden binary as an operator meets it: subcommands, exit codes, config errors,
// JSON logs, the HTTP endpoints (with gzip) on a fixture node, and a clean stop on SIGTERM.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/http_client.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::httpGet;
using nodewarden::testing::SpawnOptions;
using namespace std::chrono_literals;

const fs::path kFixtures = NODEWARDEN_FIXTURES;

struct Result {
  int exit_code = -1;
  std::string output;
};

fs::path tempPath(const std::string& what) {
  return fs::temp_directory_path() /
         ("nodewarden-agent-test-" + std::to_string(::getpid()) + "-" + what);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the agent to completion with stdout and stderr in one file.
Result runAgent(std::vector<std::string> args) {
  args.insert(args.begin(), NODEWARDEN_BINARY);
  SpawnOptions o;
  o.output = tempPath("out.txt");
  fs::remove(o.output);
  auto child = ChildProcess::start(args, o);
  EXPECT_TRUE(child.has_value());
  Result r;
  if (!child) return r;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (child->running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  auto status = child->stop(1s);
  if (status && WIFEXITED(*status)) r.exit_code = WEXITSTATUS(*status);
  r.output = slurp(o.output);
  fs::remove(o.output);
  return r;
}

TEST(AgentCli, VersionPrintsTheVersion) {
  auto r = runAgent({"version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "nodewarden 0.1.0\n");
}

TEST(AgentCli, CheckConfigAcceptsAValidFile) {
  auto r = runAgent({"check-config", (kFixtures / "config/valid.yaml").string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos);
}

TEST(AgentCli, CheckConfigNamesFileLineAndFieldOfAnUnknownKey) {
  const auto file = (kFixtures / "config/unknown_key.yaml").string();
  auto r = runAgent({"check-config", file});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find(file + ":6"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("max_dept"), std::string::npos) << r.output;
}

TEST(AgentCli, CheckConfigOfAMissingFileSaysWhy) {
  auto r = runAgent({"check-config", "/nonexistent/nodewarden.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("/nonexistent/nodewarden.yaml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("No such file"), std::string::npos) << r.output;
}

TEST(AgentCli, RunWithABadConfigStopsWithExitCode2AndOneJsonLine) {
  const auto file = (kFixtures / "config/bad_duration.yaml").string();
  auto r = runAgent({"run", "--config", file, "--listen", "127.0.0.1:9"});
  EXPECT_EQ(r.exit_code, 2);
  std::istringstream lines(r.output);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["level"], "error");
    EXPECT_NE(j["msg"].get<std::string>().find(file), std::string::npos) << line;
    ++n;
  }
  EXPECT_EQ(n, 1) << r.output;
}

TEST(AgentCli, FlagsAreValidatedLikeTheFile) {
  const std::string listen = "127.0.0.1:" + std::to_string(nodewarden::testing::freeLoopbackPort());
  auto r = runAgent({"run", "--interval", "500ms", "--listen", listen});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("interval"), std::string::npos) << r.output;
  r = runAgent({"run", "--interval", "ten", "--listen", listen});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--interval"), std::string::npos) << r.output;
  r = runAgent({"run", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
}

// A response's body and headers through libcurl, asking for gzip.
struct GzipResponse {
  long status = 0;
  std::string headers;
  std::string body;  // decoded by libcurl
};

GzipResponse getGzip(const std::string& url) {
  GzipResponse r;
  CURL* c = curl_easy_init();
  auto append = +[](char* p, size_t s, size_t n, void* ud) {
    static_cast<std::string*>(ud)->append(p, s * n);
    return s * n;
  };
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(c);
  return r;
}

class AgentOnFixtureNode : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = nodewarden::testing::freeLoopbackPort();
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    const fs::path node = kFixtures / "cgroup/v2-cgroupfs-docker";
    SpawnOptions o;
    o.output = tempPath("run.log");
    fs::remove(o.output);
    log_ = o.output;
    auto child = ChildProcess::start(
        {NODEWARDEN_BINARY, "run", "--listen", "127.0.0.1:" + std::to_string(port_),
         "--cgroup-root", (node / "sys/fs/cgroup").string(), "--log-root",
         (node / "var/log/pods").string(), "--proc-root", "/proc", "--state-dir",
         tempPath("state").string(), "--interval", "1s", "--node-name", "fixture-node"},
        o);
    ASSERT_TRUE(child.has_value()) << child.error();
    agent_ = std::move(*child);
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = httpGet(base_ + "/readyz", 1s);
      if (r && r->status == 200) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "agent not ready: " << slurp(log_);
  }
  void TearDown() override {
    agent_.stop(2s);
    fs::remove(log_);
  }
  int port_ = 0;
  std::string base_;
  fs::path log_;
  ChildProcess agent_;
};

TEST_F(AgentOnFixtureNode, ServesHealthAndMetricsUnderCadvisorNames) {
  auto h = httpGet(base_ + "/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = httpGet(base_ + "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  const std::string want =
      "container_cpu_usage_seconds_total{container=\"spark-driver\",id=\"/kubepods/burstable/"
      "pod11111111-2222-3333-4444-555555555551/" +
      std::string(63, 'a') + "1\",image=\"\",namespace=\"spark\",pod=\"driver-0\"} 20.123456\n";
  EXPECT_NE(m->body.find(want), std::string::npos) << m->body.substr(0, 2000);
  EXPECT_NE(m->body.find("container_memory_working_set_bytes{container=\"spark-driver\""),
            std::string::npos);
  EXPECT_NE(m->body.find("container_spec_memory_limit_bytes{container=\"\",id=\"/kubepods/pod"),
            std::string::npos)
      << "pod-level series carry container=\"\"";
  EXPECT_NE(m->body.find("nodewarden_build_info{"), std::string::npos);
  EXPECT_NE(m->body.find("nodewarden_collection_duration_seconds{collector=\"cgroup\"}"),
            std::string::npos);
  EXPECT_NE(m->body.find("nodewarden_cgroups{kind=\"container\"} 3"), std::string::npos);
  EXPECT_NE(m->body.find("node_cpu_seconds_total{"), std::string::npos);
  auto missing = httpGet(base_ + "/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(AgentOnFixtureNode, MetricsAreGzippedWhenAsked) {
  auto r = getGzip(base_ + "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("Content-Encoding: gzip"), std::string::npos) << r.headers;
  EXPECT_NE(r.body.find("container_memory_usage_bytes{"), std::string::npos);
  auto plain = httpGet(base_ + "/metrics");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->body.find('\x1f'), std::string::npos) << "plain when not asked";
}

TEST_F(AgentOnFixtureNode, ExpositionPassesPromtool) {
  if (!fs::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  auto m = httpGet(base_ + "/metrics");
  ASSERT_TRUE(m);
  const auto file = tempPath("metrics.txt");
  std::ofstream(file) << m->body;
  const auto out = tempPath("promtool.txt");
  const std::string cmd =
      "/usr/bin/promtool check metrics < " + file.string() + " > " + out.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string said = slurp(out);
  // promtool exits 3 for lint-only findings (e.g. counters without _total, kept for cAdvisor
  // compatibility); 1 means the exposition itself is invalid.
  EXPECT_TRUE(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3)) << said;
  EXPECT_EQ(said.find("error"), std::string::npos) << said;
  fs::remove(file);
  fs::remove(out);
}

TEST_F(AgentOnFixtureNode, LogsAreJsonLinesAndSigtermStopsWithin2s) {
  const auto start = std::chrono::steady_clock::now();
  auto status = agent_.stop(5s);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << nodewarden::testing::describeWaitStatus(*status);
  EXPECT_LT(took, 2s);
  std::istringstream lines(slurp(log_));
  std::string line;
  int n = 0;
  bool saw_stop = false;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);  // throws (fails the test) on a non-JSON line
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg"));
    saw_stop = saw_stop || j["msg"] == "stopped";
    ++n;
  }
  EXPECT_GE(n, 3);
  EXPECT_TRUE(saw_stop);
}

TEST_F(AgentOnFixtureNode, ASecondAgentOnTheSamePortFailsToStartWithAMessage) {
  auto r = runAgent(
      {"run", "--listen", "127.0.0.1:" + std::to_string(port_), "--cgroup-root", "/nonexistent"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cannot listen"), std::string::npos) << r.output;
}

}  // namespace
