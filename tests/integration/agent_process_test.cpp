// The real nodewarden binary as an operator meets it: subcommands, exit codes, config errors,
// JSON logs, the HTTP endpoints (with gzip) on a fixture node, a clean stop on SIGTERM, and the pod
// metadata series with the API server (FakeApiServer) or the kubelet (FakeKubelet) as source, and
// when a new pod's series appear: held until a source names it, never exported anonymous first.
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
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/fake_apiserver.h"
#include "tests/fakes/fake_kubelet.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/loopback_certificate.h"
#include "tests/support/node_builder.h"

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

// `nodewarden run` on the v2 cgroupfs+Docker fixture node, with its state (and an empty runtime
// state directory) under dir, collecting every second; extra flags appended.
std::vector<std::string> fixtureRunArgs(const fs::path& config, int port, const fs::path& dir,
                                        std::vector<std::string> extra = {}) {
  const fs::path node = kFixtures / "cgroup/v2-cgroupfs-docker";
  std::vector<std::string> args = {NODEWARDEN_BINARY,
                                   "run",
                                   "--config",
                                   config.string(),
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(port),
                                   "--cgroup-root",
                                   (node / "sys/fs/cgroup").string(),
                                   "--log-root",
                                   (node / "var/log/pods").string(),
                                   "--proc-root",
                                   "/proc",
                                   "--state-dir",
                                   (dir / "state").string(),
                                   "--runtime-state-dir",
                                   (dir / "runtime").string(),
                                   "--interval",
                                   "1s",
                                   "--node-name",
                                   "fixture-node"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
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

// --print-config prints the configuration in effect: the file's values and the flags' over the
// defaults, not the built-in defaults.
TEST(AgentCli, PrintConfigPrintsTheConfigInEffect) {
  const auto file = tempPath("print-config.yaml");
  std::ofstream(file) << "interval: 30s\ndetector:\n  noisy_neighbor:\n    victim_z: 4.5\n";
  auto r = runAgent({"run", "--config", file.string(), "--listen", "127.0.0.1:9", "--node-name",
                     "print-node", "--print-config"});
  fs::remove(file);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\ninterval: 30s\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\n    victim_z: 4.5\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\nlisten: 127.0.0.1:9\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\nnode_name: print-node\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("\ninterval: 10s"), std::string::npos) << r.output;
}

// `config` prints the documented defaults; `config --deploy` the DaemonSet's committed config.
TEST(AgentCli, ConfigPrintsTheDefaultsAndTheDeployFile) {
  auto r = runAgent({"config"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\ninterval: 10s\n"), std::string::npos) << r.output;
  r = runAgent({"config", "--deploy"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, slurp(kFixtures / "../../deploy/config/nodewarden.yaml"));
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

TEST(AgentCli, TlsNeedsBothFilesAndReadableOnes) {
  auto r = runAgent({"run", "--tls-cert-file", "/etc/hostname", "--cgroup-root", "/nonexistent"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("tls.key_file"), std::string::npos) << r.output;
  r = runAgent({"run", "--tls-cert-file", "/nonexistent/cert.pem", "--tls-key-file",
                "/nonexistent/key.pem"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("tls.cert_file"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/cert.pem"), std::string::npos) << r.output;
}

// TLS on the agent's own listener, as a cluster without the sidecar runs it: the agent's
// /healthz and /metrics over HTTPS, verified against its certificate; plain HTTP gets nothing.
TEST(AgentWithTls, ServesHttpsWithTheConfiguredCertificate) {
  const fs::path dir = tempPath("tls");
  fs::remove_all(dir);
  auto cert = nodewarden::testing::makeLoopbackCertificate(dir / "cert");
  ASSERT_TRUE(cert.has_value()) << cert.error();
  fs::create_directories(dir / "runtime");
  const fs::path config = dir / "config.yaml";
  std::ofstream(config) << "tls:\n  cert_file: " << cert->certificate
                        << "\n  key_file: " << cert->key << "\n";
  const int port = nodewarden::testing::freeLoopbackPort();
  SpawnOptions o;
  o.output = dir / "run.log";
  auto child = ChildProcess::start(fixtureRunArgs(config, port, dir), o);
  ASSERT_TRUE(child.has_value()) << child.error();
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  long status = 0;
  std::string body;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    CURL* c = curl_easy_init();
    body.clear();
    auto append = +[](char* p, size_t s, size_t n, void* ud) {
      static_cast<std::string*>(ud)->append(p, s * n);
      return s * n;
    };
    curl_easy_setopt(c, CURLOPT_URL, (url + "/readyz").c_str());
    curl_easy_setopt(c, CURLOPT_CAINFO, cert->certificate.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (status == 200) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 200) << slurp(o.output);
  EXPECT_EQ(body, "ready\n");
  auto plain = httpGet("http://127.0.0.1:" + std::to_string(port) + "/healthz", 2s);
  EXPECT_TRUE(!plain || plain->status != 200) << "plain HTTP must not be served on the TLS port";
  child->stop(2s);
  fs::remove_all(dir);
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
      std::string(63, 'a') +
      "1\",image=\"unknown\",namespace=\"spark\",pod=\"driver-0\"} 20.123456\n";
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
  // /metrics/cadvisor: the same container series and cAdvisor's machine_* gauges, without the
  // node_* and the agent's own series (a scrape filed under job="kubelet" reads it).
  auto c = httpGet(base_ + "/metrics/cadvisor");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, 200);
  EXPECT_NE(c->body.find(want), std::string::npos) << c->body.substr(0, 2000);
  EXPECT_NE(c->body.find("\nmachine_cpu_cores "), std::string::npos);
  EXPECT_NE(c->body.find("\nmachine_memory_bytes "), std::string::npos);
  EXPECT_EQ(c->body.find("node_cpu_seconds_total{"), std::string::npos);
  EXPECT_EQ(c->body.find("nodewarden_"), std::string::npos);
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

// promtool's verdict on an exposition: empty when it is valid.
std::string promtoolComplaints(const std::string& exposition) {
  const auto file = tempPath("metrics.txt");
  std::ofstream(file) << exposition;
  const auto out = tempPath("promtool.txt");
  const std::string cmd =
      "/usr/bin/promtool check metrics < " + file.string() + " > " + out.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string said = slurp(out);
  fs::remove(file);
  fs::remove(out);
  // promtool exits 3 for lint-only findings (e.g. counters without _total, kept for cAdvisor
  // compatibility); 1 means the exposition itself is invalid.
  const bool ok = WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3);
  return ok && said.find("error") == std::string::npos ? std::string() : said;
}

TEST_F(AgentOnFixtureNode, ExpositionPassesPromtool) {
  if (!fs::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  auto m = httpGet(base_ + "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(promtoolComplaints(m->body), "");
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

// Query values of 1 KiB and more used to be dropped, so a long filter returned everything.
TEST_F(AgentOnFixtureNode, ALongFilterMatchesNothingAndAnUnreadableOneIs400) {
  auto all = httpGet(base_ + "/signals");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->status, 200) << all->body;
  ASSERT_NE(all->body.find("\"pod\":\"driver-0\""), std::string::npos) << all->body.substr(0, 500);
  const std::string long_value(1100, 'x');
  auto filtered = httpGet(base_ + "/signals?pod=" + long_value);
  ASSERT_TRUE(filtered);
  EXPECT_EQ(filtered->status, 200);
  EXPECT_EQ(filtered->body.find("driver-0"), std::string::npos) << filtered->body.substr(0, 500);
  auto ns = httpGet(base_ + "/signals?namespace=" + std::string(4000, 'n'));
  ASSERT_TRUE(ns);
  EXPECT_EQ(ns->status, 200);
  EXPECT_EQ(ns->body.find("driver-0"), std::string::npos);

  auto outcome = httpGet(base_ + "/jobs?outcome=" + std::string(1024, 'x'));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 400) << outcome->body;
  for (const std::string target : {"/signals?pod=%zz", "/jobs?namespace=ab%4"}) {
    auto bad = httpGet(base_ + target);
    ASSERT_TRUE(bad) << target;
    EXPECT_EQ(bad->status, 400) << target;
    EXPECT_NE(bad->body.find("malformed percent-escape"), std::string::npos) << bad->body;
  }
}

// Idle connections are held without a thread each, and shown: nodewarden_http_connections.
TEST_F(AgentOnFixtureNode, IdleConnectionsDoNotStallScrapesAndAreCounted) {
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    idle.push_back(fd);
  }
  bool seen = false;
  const auto deadline = std::chrono::steady_clock::now() + 4s;  // within the 5 s head timeout
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    auto m = httpGet(base_ + "/metrics", 2s);
    ASSERT_TRUE(m) << "a scrape with 8 idle connections open must answer";
    const auto at = m->body.find("\nnodewarden_http_connections ");
    ASSERT_NE(at, std::string::npos);
    seen = std::stod(m->body.substr(at + 29)) >= 8;
    if (!seen) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(seen);
  for (const int fd : idle) ::close(fd);
}

TEST_F(AgentOnFixtureNode, ASecondAgentOnTheSamePortFailsToStartWithAMessage) {
  auto r = runAgent(
      {"run", "--listen", "127.0.0.1:" + std::to_string(port_), "--cgroup-root", "/nonexistent"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cannot listen"), std::string::npos) << r.output;
}

// --- pod metadata from the API server ------------------------------------------------------------

// A core/v1 Pod of the fixture node, owned by `owner_kind`/`owner_name`.
nlohmann::json fixturePod(const std::string& uid, const std::string& ns, const std::string& name,
                          const std::string& owner_kind, const std::string& owner_name,
                          const std::string& qos, nlohmann::json labels) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"uid", uid},
            {"namespace", ns},
            {"name", name},
            {"labels", std::move(labels)},
            {"ownerReferences", nlohmann::json::array({{{"apiVersion", "apps/v1"},
                                                        {"kind", owner_kind},
                                                        {"name", owner_name},
                                                        {"uid", owner_name + "-uid"},
                                                        {"controller", true}}})}}},
          {"spec", {{"nodeName", "fixture-node"}}},
          {"status", {{"phase", "Running"}, {"qosClass", qos}}}};
}

// The value of the series whose exposition line starts with `series` (name and labels, exactly).
std::optional<double> sample(const std::string& body, const std::string& series) {
  const std::string head = series + " ";
  for (std::size_t at = body.find(head); at != std::string::npos; at = body.find(head, at + 1)) {
    if (at != 0 && body[at - 1] != '\n') continue;
    return std::stod(body.substr(at + head.size(), body.find('\n', at) - at - head.size()));
  }
  return std::nullopt;
}

class AgentWithApiServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake = nodewarden::testing::FakeApiServer::start();
    ASSERT_TRUE(fake.has_value()) << fake.error();
    api_ = std::move(*fake);
    // The fixture node's three pods; the Job's CronJob is named unlike the naming rule's answer,
    // so the series show that the API server was asked.
    api_->putPod(fixturePod("11111111-2222-3333-4444-555555555551", "spark", "driver-0",
                            "StatefulSet", "driver", "Burstable",
                            {{"app.kubernetes.io/name", "spark"}, {"team", "data"}}));
    api_->putPod(
        fixturePod("11111111-2222-3333-4444-555555555552", "kafka", "consumer-7", "ReplicaSet",
                   "consumer-5d8f7c9b6", "Guaranteed",
                   {{"app.kubernetes.io/name", "consumer"}, {"pod-template-hash", "5d8f7c9b6"}}));
    api_->putPod(fixturePod("11111111-2222-3333-4444-555555555553", "airflow", "worker-x", "Job",
                            "etl-28504320", "BestEffort", {{"job-name", "etl-28504320"}}));
    api_->putJob({{"apiVersion", "batch/v1"},
                  {"kind", "Job"},
                  {"metadata",
                   {{"namespace", "airflow"},
                    {"name", "etl-28504320"},
                    {"ownerReferences", nlohmann::json::array({{{"apiVersion", "batch/v1"},
                                                                {"kind", "CronJob"},
                                                                {"name", "airflow-nightly-etl"},
                                                                {"uid", "c-uid"},
                                                                {"controller", true}}})}}}});

    state_ = tempPath("meta-state");
    fs::create_directories(state_ / "runtime");  // the runtime's state: present, empty
    const fs::path config = state_ / "config.yaml";
    // These pods' statuses list no containers, so nothing tells their images: the containers'
    // series wait out the hold (one kubelet refresh interval, kept short here) and are then
    // exported with the names known.
    std::ofstream(config) << "collectors:\n  pods:\n    kubelet: false\n"
                          << "    kubelet_refresh_interval: 2s\n"
                          << "  journal:\n    enabled: false\n"
                          << "kubernetes:\n  apiserver_url: " << api_->url() << "\n"
                          << "  pod_labels: [app.kubernetes.io/name, team]\n";
    port_ = nodewarden::testing::freeLoopbackPort();
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    SpawnOptions o;
    o.output = state_ / "run.log";
    auto child = ChildProcess::start(fixtureRunArgs(config, port_, state_), o);
    ASSERT_TRUE(child.has_value()) << child.error();
    agent_ = std::move(*child);
  }
  void TearDown() override {
    agent_.stop(2s);
    std::error_code ignored;
    fs::remove_all(state_, ignored);
  }

  // /metrics once `series` is in it (bounded); empty when it never came.
  std::string metricsWith(const std::string& series) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = httpGet(base_ + "/metrics", 2s);
      if (m && m->status == 200 && m->body.find(series) != std::string::npos) return m->body;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "no " << series << " in /metrics; agent log:\n" << slurp(state_ / "run.log");
    return {};
  }

  std::unique_ptr<nodewarden::testing::FakeApiServer> api_;
  fs::path state_;
  int port_ = 0;
  std::string base_;
  ChildProcess agent_;
};

TEST_F(AgentWithApiServer, PodInfoLabelsAndSourceHealthBesideUnchangedContainerSeries) {
  const std::string airflow =
      "nodewarden_pod_info{cronjob=\"airflow-nightly-etl\",job_name=\"etl-28504320\","
      "namespace=\"airflow\",owner_kind=\"Job\",owner_name=\"etl-28504320\",pod=\"worker-x\","
      "qos_class=\"BestEffort\",uid=\"11111111-2222-3333-4444-555555555553\","
      "workload=\"airflow-nightly-etl\",workload_kind=\"CronJob\"}";
  const std::string body = metricsWith(airflow);
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(sample(body, airflow), 1.0);
  EXPECT_EQ(sample(body,
                   "nodewarden_pod_info{cronjob=\"\",job_name=\"\",namespace=\"kafka\","
                   "owner_kind=\"ReplicaSet\",owner_name=\"consumer-5d8f7c9b6\",pod=\"consumer-7\","
                   "qos_class=\"Guaranteed\",uid=\"11111111-2222-3333-4444-555555555552\","
                   "workload=\"consumer\",workload_kind=\"Deployment\"}"),
            1.0);
  EXPECT_EQ(sample(body,
                   "nodewarden_pod_info{cronjob=\"\",job_name=\"\",namespace=\"spark\","
                   "owner_kind=\"StatefulSet\",owner_name=\"driver\",pod=\"driver-0\","
                   "qos_class=\"Burstable\",uid=\"11111111-2222-3333-4444-555555555551\","
                   "workload=\"driver\",workload_kind=\"StatefulSet\"}"),
            1.0);
  EXPECT_EQ(sample(body,
                   "nodewarden_pod_labels{label_app_kubernetes_io_name=\"spark\","
                   "label_team=\"data\",namespace=\"spark\",pod=\"driver-0\","
                   "uid=\"11111111-2222-3333-4444-555555555551\"}"),
            1.0);
  EXPECT_EQ(sample(body,
                   "nodewarden_pod_labels{label_app_kubernetes_io_name=\"consumer\","
                   "namespace=\"kafka\",pod=\"consumer-7\","
                   "uid=\"11111111-2222-3333-4444-555555555552\"}"),
            1.0);
  EXPECT_EQ(sample(body,
                   "nodewarden_pod_labels{namespace=\"airflow\",pod=\"worker-x\","
                   "uid=\"11111111-2222-3333-4444-555555555553\"}"),
            1.0);
  EXPECT_EQ(body.find("label_pod_template_hash"), std::string::npos) << "not allow-listed";

  EXPECT_EQ(sample(body, "nodewarden_metadata_source_synced{source=\"apiserver\"}"), 1.0);
  EXPECT_EQ(sample(body, "nodewarden_metadata_source_synced{source=\"runtime\"}"), 1.0);
  EXPECT_EQ(sample(body, "nodewarden_metadata_pods{source=\"apiserver\"}"), 3.0);
  EXPECT_EQ(sample(body, "nodewarden_metadata_pods{source=\"runtime\"}"), 0.0);
  const auto staleness =
      sample(body, "nodewarden_metadata_source_staleness_seconds{source=\"apiserver\"}");
  ASSERT_TRUE(staleness.has_value());
  EXPECT_GE(*staleness, 0.0);
  EXPECT_LT(*staleness, 30.0);
  EXPECT_EQ(body.find("nodewarden_metadata_source_staleness_seconds{source=\"runtime\"}"),
            std::string::npos);
  EXPECT_EQ(body.find("{source=\"kubelet\"}"), std::string::npos) << "the kubelet source is off";

  // The container series are as they were without any of this: cAdvisor's labels only.
  const std::string spark_driver =
      "container_cpu_usage_seconds_total{container=\"spark-driver\",id=\"/"
      "kubepods/burstable/pod11111111-2222-3333-4444-555555555551/" +
      std::string(63, 'a') + "1\",image=\"unknown\",namespace=\"spark\",pod=\"driver-0\"}";
  EXPECT_EQ(sample(metricsWith(spark_driver), spark_driver), 20.123456);

  if (fs::exists("/usr/bin/promtool")) {
    EXPECT_EQ(promtoolComplaints(body), "");
  }

  bool asked = false;
  for (const auto& r : api_->requests()) {
    asked = asked || r.path == "/apis/batch/v1/namespaces/airflow/jobs/etl-28504320";
  }
  EXPECT_TRUE(asked);
}

// The API server goes away: collection goes on, the pods keep what was known, staleness grows.
TEST_F(AgentWithApiServer, AnApiServerOutageNeverStopsCollection) {
  const std::string body = metricsWith("workload=\"airflow-nightly-etl\"");
  ASSERT_FALSE(body.empty());
  const auto cycles_before = sample(body, "nodewarden_collection_cycles_total");
  ASSERT_TRUE(cycles_before.has_value());
  const auto staleness_before =
      sample(body, "nodewarden_metadata_source_staleness_seconds{source=\"apiserver\"}");
  ASSERT_TRUE(staleness_before.has_value());
  api_.reset();
  std::this_thread::sleep_for(3500ms);
  auto after = httpGet(base_ + "/metrics");
  ASSERT_TRUE(after);
  const auto cycles_after = sample(after->body, "nodewarden_collection_cycles_total");
  ASSERT_TRUE(cycles_after.has_value());
  EXPECT_GE(*cycles_after, *cycles_before + 2) << "cycles go on at the 1 s interval";
  EXPECT_NE(after->body.find("workload=\"airflow-nightly-etl\""), std::string::npos);
  EXPECT_EQ(sample(after->body, "nodewarden_metadata_source_synced{source=\"apiserver\"}"), 1.0);
  const auto staleness =
      sample(after->body, "nodewarden_metadata_source_staleness_seconds{source=\"apiserver\"}");
  ASSERT_TRUE(staleness.has_value());
  EXPECT_GE(*staleness, *staleness_before + 2.0) << "no event since the API server went away";
  auto ready = httpGet(base_ + "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
}

// The kubelet alone (no API server): owners from /pods, the CronJob by the naming rule, and the
// kubelet source's health.
TEST(AgentWithKubelet, PodInfoFromTheKubeletAndItsSourceHealth) {
  const fs::path dir = tempPath("kubelet");
  fs::create_directories(dir / "runtime");
  const auto pki = nodewarden::testing::makeLoopbackCertificate(dir);
  ASSERT_TRUE(pki.has_value()) << pki.error();
  nlohmann::json list = {
      {"kind", "PodList"}, {"apiVersion", "v1"}, {"items", nlohmann::json::array()}};
  list["items"].push_back(fixturePod("11111111-2222-3333-4444-555555555553", "airflow", "worker-x",
                                     "Job", "etl-28504320", "BestEffort",
                                     {{"job-name", "etl-28504320"}, {"team", "data"}}));
  list["items"].push_back(fixturePod("11111111-2222-3333-4444-555555555552", "kafka", "consumer-7",
                                     "DaemonSet", "consumer", "Guaranteed",
                                     nlohmann::json::object()));
  nodewarden::testing::FakeKubeletOptions ko;
  ko.token = "node-agent-token";
  ko.certificate_file = pki->certificate;
  ko.key_file = pki->key;
  ko.pod_list = list.dump();
  auto kubelet = nodewarden::testing::FakeKubelet::start(ko);
  ASSERT_TRUE(kubelet.has_value()) << kubelet.error();
  std::ofstream(dir / "token") << "node-agent-token\n";
  std::ofstream(dir / "config.yaml") << "collectors:\n  pods:\n    apiserver: false\n"
                                     << "  journal:\n    enabled: false\n"
                                     << "kubernetes:\n  kubelet_url: " << (*kubelet)->url()
                                     << "\n  token_file: " << (dir / "token").string()
                                     << "\n  kubelet_insecure_skip_verify: true\n";
  const int port = nodewarden::testing::freeLoopbackPort();
  SpawnOptions o;
  o.output = dir / "run.log";
  auto agent = ChildProcess::start(
      fixtureRunArgs(dir / "config.yaml", port, dir, {"--pod-label", "team"}), o);
  ASSERT_TRUE(agent.has_value()) << agent.error();

  const std::string airflow =
      "nodewarden_pod_info{cronjob=\"etl\",job_name=\"etl-28504320\",namespace=\"airflow\","
      "owner_kind=\"Job\",owner_name=\"etl-28504320\",pod=\"worker-x\",qos_class=\"BestEffort\","
      "uid=\"11111111-2222-3333-4444-555555555553\",workload=\"etl\",workload_kind=\"CronJob\"}";
  std::string body;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && body.find(airflow) == std::string::npos) {
    std::this_thread::sleep_for(100ms);
    auto m = httpGet("http://127.0.0.1:" + std::to_string(port) + "/metrics", 2s);
    if (m && m->status == 200) body = m->body;
  }
  EXPECT_EQ(sample(body, airflow), 1.0) << slurp(dir / "run.log");
  EXPECT_EQ(sample(body,
                   "nodewarden_pod_info{cronjob=\"\",job_name=\"\",namespace=\"kafka\","
                   "owner_kind=\"DaemonSet\",owner_name=\"consumer\",pod=\"consumer-7\","
                   "qos_class=\"Guaranteed\",uid=\"11111111-2222-3333-4444-555555555552\","
                   "workload=\"consumer\",workload_kind=\"DaemonSet\"}"),
            1.0);
  EXPECT_EQ(sample(body,
                   "nodewarden_pod_labels{label_team=\"data\",namespace=\"airflow\","
                   "pod=\"worker-x\",uid=\"11111111-2222-3333-4444-555555555553\"}"),
            1.0);
  EXPECT_EQ(body.find("pod=\"driver-0\",qos_class"), std::string::npos)
      << "a pod the kubelet does not list has no info";
  EXPECT_EQ(sample(body, "nodewarden_metadata_source_synced{source=\"kubelet\"}"), 1.0);
  EXPECT_EQ(sample(body, "nodewarden_metadata_pods{source=\"kubelet\"}"), 2.0);
  const auto staleness =
      sample(body, "nodewarden_metadata_source_staleness_seconds{source=\"kubelet\"}");
  ASSERT_TRUE(staleness.has_value());
  EXPECT_GE(*staleness, 0.0);
  EXPECT_LT(*staleness, 30.0);
  EXPECT_EQ(body.find("{source=\"apiserver\"}"), std::string::npos) << "the API server is off";
  agent->stop(2s);
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}

// --- when a new pod's series appear
// ---------------------------------------------------------------

// Every line of the exposition that mentions `needle`.
std::vector<std::string> linesWith(const std::string& body, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

// Two pods start on a real node (NodeBuilder's cgroups) that the kubelet does not list yet, and no
// log directory names them. Their series are held, not exported anonymous; one is then listed and
// appears named well within the hold (the kubelet is asked again at once, not at its next refresh),
// never with empty names; the other is never listed and appears after the hold with what is known.
TEST(AgentWithKubelet, NewPodsAreHeldUntilNamedNeverExportedAnonymous) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  const fs::path dir = tempPath("names");
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  fs::create_directories(dir);
  const auto pki = nodewarden::testing::makeLoopbackCertificate(dir);
  ASSERT_TRUE(pki.has_value()) << pki.error();
  nodewarden::testing::FakeKubeletOptions ko;
  ko.token = "node-agent-token";
  ko.certificate_file = pki->certificate;
  ko.key_file = pki->key;
  auto kubelet = nodewarden::testing::FakeKubelet::start(ko);
  ASSERT_TRUE(kubelet.has_value()) << kubelet.error();
  std::ofstream(dir / "token") << "node-agent-token\n";
  constexpr auto kHold = 8s;  // the kubelet's refresh interval: the least a pod no source lists
                              // is held (two fetches asked for since are in long before)
  std::ofstream(dir / "config.yaml")
      << "collectors:\n  pods:\n    apiserver: false\n    runtime_state: false\n"
      << "    kubelet_refresh_interval: 8s\n"
      << "  journal:\n    enabled: false\n  logs:\n    enabled: false\n"
      << "  jobs:\n    enabled: false\n  node:\n    enabled: false\n"
      << "kubernetes:\n  kubelet_url: " << (*kubelet)->url()
      << "\n  token_file: " << (dir / "token").string()
      << "\n  kubelet_insecure_skip_verify: true\n";
  auto node = nodewarden::testing::NodeBuilder::create();
  ASSERT_TRUE(node.has_value()) << node.error();

  const int port = nodewarden::testing::freeLoopbackPort();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  SpawnOptions o;
  o.output = dir / "run.log";
  auto agent = ChildProcess::start(
      {NODEWARDEN_BINARY, "run", "--config", (dir / "config.yaml").string(), "--listen",
       "127.0.0.1:" + std::to_string(port), "--cgroup-root", "/sys/fs/cgroup", "--proc-root",
       "/proc", "--log-root", (dir / "no-logs/pods").string(), "--state-dir",
       (dir / "state").string(), "--interval", "1s", "--node-name", "test-node"},
      o);
  ASSERT_TRUE(agent.has_value()) << agent.error();
  const auto metrics = [&] {
    auto m = httpGet(base + "/metrics", 2s);
    return m && m->status == 200 ? m->body : std::string();
  };
  // Polls /metrics until done(body) (bounded); every body seen is checked by each(body).
  const auto poll = [&](auto done, auto each, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string body;
    while (std::chrono::steady_clock::now() < deadline) {
      body = metrics();
      if (!body.empty()) each(body);
      if (!body.empty() && done(body)) return body;
      std::this_thread::sleep_for(100ms);
    }
    return std::string();
  };
  const auto nothing = [](const std::string&) {};
  const std::string cycles = "nodewarden_collection_cycles_total";
  const std::string first =
      poll([&](const std::string& b) { return sample(b, cycles).has_value(); }, nothing, 20s);
  ASSERT_FALSE(first.empty()) << slurp(dir / "run.log");

  const auto made_at = std::chrono::steady_clock::now();
  auto job =
      (*node)->addPod("batch", "short-job-x7k2p", "", nodewarden::testing::PodQos::kBurstable);
  ASSERT_TRUE(job.has_value()) << job.error();
  auto job_main = (*job)->addContainer(nodewarden::testing::containerSpec("main"));
  ASSERT_TRUE(job_main.has_value()) << job_main.error();
  auto stray =
      (*node)->addPod("batch", "never-listed-q8w4n", "", nodewarden::testing::PodQos::kBestEffort);
  ASSERT_TRUE(stray.has_value()) << stray.error();
  ASSERT_TRUE((*stray)->addContainer(nodewarden::testing::containerSpec("main")).has_value());
  const std::string job_uid = (*job)->uid();
  const std::string stray_uid = (*stray)->uid();

  // Found and held: collected (counted) but not one of their series exported. Three cycles after
  // they were made they have been found (other kubepods trees on this host, another test's, may
  // be counted too, hence the lower bounds).
  const double made_at_cycle = *sample(metrics(), cycles);
  const std::string held = "nodewarden_metadata_unnamed_cgroups{state=\"held\"}";
  const std::string body = poll(
      [&](const std::string& b) { return sample(b, cycles) >= made_at_cycle + 3; }, nothing, 10s);
  ASSERT_FALSE(body.empty()) << slurp(dir / "run.log");
  EXPECT_TRUE(linesWith(body, job_uid).empty()) << linesWith(body, job_uid)[0];
  EXPECT_TRUE(linesWith(body, stray_uid).empty());
  EXPECT_GE(sample(body, held), 4.0) << "the two pods and their containers";

  // The kubelet lists the Job's pod: it is named within a few cycles, long before the next
  // scheduled fetch and the end of the hold, and no series of it ever shows without its names.
  nlohmann::json pod = {
      {"metadata", {{"name", "short-job-x7k2p"}, {"namespace", "batch"}, {"uid", job_uid}}},
      {"spec", {{"nodeName", "test-node"}}},
      {"status",
       {{"phase", "Running"},
        {"qosClass", "Burstable"},
        {"containerStatuses",
         nlohmann::json::array(
             {{{"name", "main"},
               {"containerID", "containerd://" + (*job_main)->id()},
               {"image", "registry.example/job:1"},
               {"restartCount", 0},
               {"state", {{"running", {{"startedAt", "2026-12-07T00:00:00Z"}}}}}}})}}}};
  (*kubelet)->setPodList(
      nlohmann::json{{"kind", "PodList"}, {"apiVersion", "v1"}, {"items", {pod}}}.dump());
  const auto listed_at = std::chrono::steady_clock::now();
  std::size_t anonymous = 0;
  const std::string job_body = poll(
      [&](const std::string& b) {
        for (const auto& l : linesWith(b, (*job_main)->id())) {
          if (l.starts_with("container_cpu_usage_seconds_total{container=\"main\"") &&
              l.find("image=\"registry.example/job:1\",namespace=\"batch\",pod=\"short-job-"
                     "x7k2p\"}") != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      [&](const std::string& b) {
        for (const auto& l : linesWith(b, job_uid)) {
          if (l.find("pod=\"short-job-x7k2p\"") == std::string::npos) ++anonymous;
        }
      },
      kHold);
  const auto named_after = std::chrono::steady_clock::now() - listed_at;
  ASSERT_FALSE(job_body.empty()) << "not named within the hold\n" << slurp(dir / "run.log");
  EXPECT_EQ(anonymous, 0U) << "a series of the pod was exported without its names";
  EXPECT_LT(named_after, 5s) << "named at the next scheduled fetch, not at once";
  std::cout << "named " << std::chrono::duration<double>(named_after).count()
            << " s after the kubelet listed it\n";
  EXPECT_GE(sample(job_body, held), 2.0) << "the unlisted pod is still held";
  EXPECT_TRUE(linesWith(job_body, stray_uid).empty());

  // The pod no source lists: exported once the hold is over, with what is known (no names).
  const std::string stray_body =
      poll([&](const std::string& b) { return !linesWith(b, stray_uid).empty(); }, nothing, 20s);
  ASSERT_FALSE(stray_body.empty()) << "held for ever\n" << slurp(dir / "run.log");
  // The hold counts from the cycle that found the cgroups (its start may precede their mkdir by
  // that cycle's duration, hence the margin).
  EXPECT_GE(std::chrono::steady_clock::now() - made_at, kHold - 1s) << "released too early";
  for (const auto& l : linesWith(stray_body, stray_uid)) {
    // pod="" ends the labels, or comes before a series' own label that sorts after it (scope).
    const auto at = l.find(",namespace=\"\",pod=\"\"");
    ASSERT_NE(at, std::string::npos) << l;
    const char next = l[at + std::string_view(",namespace=\"\",pod=\"\"").size()];
    EXPECT_TRUE(next == '}' || next == ',') << l;
  }
  EXPECT_GE(sample(stray_body, "nodewarden_metadata_unnamed_cgroups{state=\"exported\"}"), 2.0);
  agent->stop(2s);
  node->reset();
  fs::remove_all(dir, ignored);
}

}  // namespace
