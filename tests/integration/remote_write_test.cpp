// Remote write end to end: the real agent binary on the v2 cgroupfs+Docker fixture node sends
// every cycle to the real Prometheus (2.42, --web.enable-remote-write-receiver, scraping nothing),
// and Prometheus' query API must hold the same series, labels and values the agent serves on
// /metrics. Then an outage: Prometheus starts only after several cycles were spooled, and every
// cycle of the outage must arrive afterwards, in order.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "exporters/remote_write/write_request_encoder.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/prometheus_server.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::ChildProcess;
using testing::PrometheusServer;

const fs::path kFixtures = NODEWARDEN_FIXTURES;

template <class Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(250ms);
  }
  return pred();
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class RemoteWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(NODEWARDEN_PROMETHEUS)) GTEST_SKIP() << "prometheus not installed";
    dir_ = fs::temp_directory_path() /
           ("nodewarden-rw-it-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    agent_port_ = testing::freeLoopbackPort();
    prom_port_ = testing::freeLoopbackPort();
    ASSERT_GT(agent_port_, 0);
    ASSERT_GT(prom_port_, 0);
  }
  void TearDown() override {
    agent_.stop(5s);
    if (prometheus_) prometheus_->stop();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::expected<void, std::string> startPrometheus() {
    testing::PrometheusServerOptions o;
    o.binary = NODEWARDEN_PROMETHEUS;
    o.dir = dir_ / "prometheus";
    o.port = prom_port_;
    // Scrapes nothing: every series it holds came by remote write.
    o.config_yaml = "global:\n  evaluation_interval: 1m\n";
    o.flags = {"--web.enable-remote-write-receiver"};
    auto p = PrometheusServer::start(o);
    if (!p) return std::unexpected(p.error());
    prometheus_ = std::make_unique<PrometheusServer>(std::move(*p));
    return {};
  }

  void startAgent() {
    const fs::path node = kFixtures / "cgroup/v2-cgroupfs-docker";
    std::ofstream(dir_ / "config.yaml")
        << "collectors:\n  pods:\n    kubelet: false\n    apiserver: false\n"
        << "  logs:\n    enabled: false\n  journal:\n    enabled: false\n"
        << "  jobs:\n    enabled: false\n"
        << "remote_write:\n  url: http://127.0.0.1:" << prom_port_ << "/api/v1/write\n"
        << "  max_samples_per_send: 50\n";  // several requests per cycle
    testing::SpawnOptions o;
    o.output = dir_ / "agent.log";
    auto child = ChildProcess::start(
        {NODEWARDEN_BINARY, "run", "--config", (dir_ / "config.yaml").string(), "--listen",
         "127.0.0.1:" + std::to_string(agent_port_), "--cgroup-root",
         (node / "sys/fs/cgroup").string(), "--proc-root", "/proc", "--state-dir",
         (dir_ / "state").string(), "--runtime-state-dir", (dir_ / "runtime").string(),
         "--interval", "1s", "--node-name", "fixture-node"},
        o);
    ASSERT_TRUE(child.has_value()) << child.error();
    agent_ = std::move(*child);
    const bool ready = waitFor(
        [&] {
          auto r = testing::httpGet(agentUrl() + "/readyz", 1s);
          return !agent_.running() || (r && r->status == 200);
        },
        30s);
    ASSERT_TRUE(ready && agent_.running()) << slurp(dir_ / "agent.log");
  }

  std::string agentUrl() const { return "http://127.0.0.1:" + std::to_string(agent_port_); }

  std::string agentMetrics() {
    auto r = testing::httpGet(agentUrl() + "/metrics", 5s);
    return r && r->status == 200 ? r->body : std::string();
  }

  // The value of an unlabelled series on the agent's /metrics, or -1.
  double agentValue(const std::string& name) {
    const std::string body = agentMetrics();
    std::istringstream lines(body);
    ExpositionSample s;
    for (std::string line; std::getline(lines, line);) {
      if (parseExpositionLine(line, s) && s.name == name && s.labels.empty()) return s.value;
    }
    return -1;
  }

  Json query(const std::string& promql) {
    auto body = prometheus_->query(promql);
    if (!body) return Json::array();
    auto j = Json::parse(*body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success") return Json::array();
    return j["data"]["result"];
  }

  std::string diagnostics() {
    return "--- agent log ---\n" + slurp(dir_ / "agent.log") + "\n--- prometheus ---\n" +
           (prometheus_ ? prometheus_->logTail() : std::string("(not started)"));
  }

  fs::path dir_;
  int agent_port_ = 0;
  int prom_port_ = 0;
  ChildProcess agent_;
  std::unique_ptr<PrometheusServer> prometheus_;
};

std::string selector(const ExpositionSample& s) {
  std::string out = s.name + "{";
  for (const auto& [k, v] : s.labels) {
    out += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\",";
  }
  return out + "}";
}

TEST_F(RemoteWriteTest, PrometheusHoldsTheSameSeriesAsMetrics) {
  ASSERT_TRUE(startPrometheus().has_value());
  startAgent();
  // The container series of the fixture node arrive.
  ASSERT_TRUE(waitFor([&] { return !query("container_cpu_usage_seconds_total").empty(); }, 30s))
      << diagnostics();

  // Every container_cpu_usage_seconds_total and container_memory_working_set_bytes series of
  // /metrics is in Prometheus with exactly its labels (plus nothing) and its value: the fixture's
  // cgroup files do not change, so the values are the same in every cycle.
  std::istringstream lines(agentMetrics());
  ExpositionSample s;
  int compared = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!parseExpositionLine(line, s)) continue;
    if (s.name != "container_cpu_usage_seconds_total" &&
        s.name != "container_memory_working_set_bytes") {
      continue;
    }
    const Json result = query(selector(s));
    ASSERT_EQ(result.size(), 1U) << selector(s) << "\n" << result.dump();
    const Json& metric = result[0]["metric"];
    // Empty label values are absent in Prometheus, as they are after a scrape.
    std::size_t non_empty = 0;
    for (const auto& [k, v] : s.labels) {
      if (v.empty()) continue;
      ++non_empty;
      EXPECT_EQ(metric.value(k, "<absent>"), v) << k;
    }
    EXPECT_EQ(metric.size(), non_empty + 1) << metric.dump();  // + __name__
    EXPECT_DOUBLE_EQ(std::stod(result[0]["value"][1].get<std::string>()), s.value) << selector(s);
    ++compared;
  }
  EXPECT_GE(compared, 4) << "the fixture node has containers and pods";

  // A container series keeps its cgroup id (the fixture's container aaa...1), and the agent's
  // own metrics come along.
  EXPECT_FALSE(query("container_cpu_usage_seconds_total{id=~\".*/a+1\"}").empty());
  ASSERT_TRUE(waitFor(
      [&] { return !query("nodewarden_remote_write_samples_sent_total > 0").empty(); }, 15s))
      << diagnostics();
  EXPECT_FALSE(query("nodewarden_collection_cycles_total").empty());
  EXPECT_GT(agentValue("nodewarden_remote_write_requests_sent_total"), 0);
  EXPECT_EQ(agentValue("nodewarden_remote_write_requests_failed_total"), 0)
      << "nothing refused: no out-of-order or malformed sample";
}

TEST_F(RemoteWriteTest, CyclesOfAnOutageArriveAfterwardsInOrder) {
  startAgent();  // Prometheus is not there yet: connection refused
  ASSERT_TRUE(waitFor([&] { return agentValue("nodewarden_collection_cycles_total") >= 4; }, 30s))
      << diagnostics();
  EXPECT_GT(agentValue("nodewarden_remote_write_spool_requests"), 0) << "spooled while down";
  EXPECT_EQ(agentValue("nodewarden_remote_write_samples_sent_total"), 0);
  ASSERT_TRUE(startPrometheus().has_value());
  const double outage_cycles = agentValue("nodewarden_collection_cycles_total");
  // The cycle counter's samples, one per cycle with the cycle's timestamp, arrive: those of the
  // outage first, then the new ones.
  Json result;
  ASSERT_TRUE(waitFor(
      [&] {
        result = query("nodewarden_collection_cycles_total[10m]");
        return result.size() == 1 && result[0]["values"].size() >= outage_cycles + 2;
      },
      60s))
      << result.dump() << diagnostics();
  const double cycles = agentValue("nodewarden_collection_cycles_total");
  // 1, 2, 3, ... with no gap, from the first cycle (during the outage) on.
  const Json& values = result[0]["values"];
  ASSERT_GE(values.size(), 4U);
  double previous_ts = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double ts = values[i][0].get<double>();
    const double v = std::stod(values[i][1].get<std::string>());
    EXPECT_EQ(v, static_cast<double>(i + 1)) << "cycle missing or repeated at sample " << i;
    EXPECT_GT(ts, previous_ts);
    previous_ts = ts;
  }
  EXPECT_GE(static_cast<double>(values.size()) + 2, cycles)
      << "all but the cycles still in flight arrived";
  EXPECT_EQ(agentValue("nodewarden_remote_write_requests_failed_total") -
                agentValue("nodewarden_remote_write_requests_retried_total"),
            0)
      << "connection refused was retried, never dropped";
}

TEST_F(RemoteWriteTest, ARestartSendsWhatTheStoppedAgentSpooled) {
  startAgent();  // the receiver is down for the first agent's whole life
  ASSERT_TRUE(waitFor([&] { return agentValue("nodewarden_collection_cycles_total") >= 3; }, 30s))
      << diagnostics();
  const double first_life = agentValue("nodewarden_collection_cycles_total");
  agent_.stop(5s);  // SIGTERM: queued cycles are spooled, nothing was sent
  ASSERT_FALSE(fs::is_empty(dir_ / "state/spool/remote_write"));

  ASSERT_TRUE(startPrometheus().has_value());
  startAgent();  // same state dir
  // The first life's cycles (counter 1, 2, ... up to at least first_life) arrive, then the new
  // life's, whose counter starts again at 1: the samples' timestamps keep increasing throughout.
  Json result;
  ASSERT_TRUE(waitFor(
      [&] {
        result = query("nodewarden_collection_cycles_total[10m]");
        return result.size() == 1 && result[0]["values"].size() >= first_life + 2;
      },
      60s))
      << result.dump() << diagnostics();
  const Json& values = result[0]["values"];
  std::size_t i = 0;
  for (; i < values.size() && std::stod(values[i][1].get<std::string>()) == double(i + 1); ++i) {
  }
  EXPECT_GE(static_cast<double>(i), first_life)
      << "every cycle of the first life, in order: " << values.dump();
  ASSERT_LT(i, values.size());
  EXPECT_EQ(std::stod(values[i][1].get<std::string>()), 1.0) << "then the second life's first";
  for (std::size_t k = 1; k < values.size(); ++k) {
    EXPECT_GT(values[k][0].get<double>(), values[k - 1][0].get<double>());
  }
}

}  // namespace
}  // namespace nodewarden
