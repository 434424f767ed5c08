// Loki tenants end to end with the real binary: two namespaces mapped to two tenants
// (loki.tenants.namespaces), the fake Loki answering one tenant 429 and then 500 for a while. The
// other tenant's lines must keep arriving meanwhile, and once the refused tenant is answered again
// every one of its lines arrives, in order, with no loss and no duplicate beyond what Loki removes
// (an identical timestamp and line). Also: a restart with batches waiting in a tenant's own spool
// directory, and an upgrade from a spool written before tenants existed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/fakes/fake_loki.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::Labels;
using nodewarden::LogEntry;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::FakeLoki;
using nodewarden::testing::FakeLokiAnswer;
using nodewarden::testing::SpawnOptions;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One container's CRI log in kubelet's layout; line n is "<container> line <n>", every 7th split
// into a P and an F record.
class ContainerLog {
 public:
  ContainerLog(const fs::path& log_root, std::string ns, std::string pod, std::string uid,
               std::string container)
      : ns_(std::move(ns)), pod_(std::move(pod)), container_(std::move(container)) {
    const fs::path dir = log_root / (ns_ + "_" + pod_ + "_" + uid) / container_;
    fs::create_directories(dir);
    out_.open(dir / "0.log", std::ios::app);
  }
  [[nodiscard]] Labels stream(const std::string& node) const {
    return {{"container", container_},
            {"namespace", ns_},
            {"node", node},
            {"pod", pod_},
            {"stream", "stdout"}};
  }
  void write(int from, int to) {
    for (int n = from; n <= to; ++n) {
      char ts[64];
      std::snprintf(ts, sizeof ts, "2026-11-21T10:%02d:%02d.%06dZ", (n / 60000000) % 60,
                    (n / 1000000) % 60, n % 1000000);
      const std::string msg = container_ + " line " + std::to_string(n);
      if (n % 7 == 0) {
        const auto half = msg.size() / 2;
        out_ << ts << " stdout P " << msg.substr(0, half) << "\n";
        out_ << ts << " stdout F " << msg.substr(half) << "\n";
      } else {
        out_ << ts << " stdout F " << msg << "\n";
      }
    }
    out_.flush();
  }
  [[nodiscard]] const std::string& container() const { return container_; }

 private:
  std::string ns_, pod_, container_;
  std::ofstream out_;
};

// "" when every n in 1..count is there exactly once after removing identical (timestamp, line)
// duplicates, in increasing order; else why not.
std::string verifyStream(const std::vector<LogEntry>& got, const std::string& container,
                         int count) {
  std::set<std::pair<std::int64_t, std::string>> seen;
  int expect = 1;
  const std::string prefix = container + " line ";
  for (const auto& e : got) {
    if (!seen.insert({e.timestamp_ns, e.line}).second) continue;  // Loki drops exact duplicates
    if (!e.line.starts_with(prefix)) return "foreign line: " + e.line;
    const int n = std::stoi(e.line.substr(prefix.size()));
    if (n != expect) {
      return container + ": expected line " + std::to_string(expect) + ", got " + std::to_string(n);
    }
    ++expect;
  }
  if (expect != count + 1) {
    return container + ": " + std::to_string(expect - 1) + " of " + std::to_string(count) +
           " lines arrived";
  }
  return "";
}

class LogTenants : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::mt19937_64 rng{std::random_device{}()};
    base_ = fs::temp_directory_path() / ("nodewarden-tenants-" + std::to_string(rng()));
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

  // tenants: the loki.tenants block (indented under loki:), empty for none.
  void startAgent(const std::string& default_tenant, const std::string& tenants) {
    std::ofstream(base_ / "config.yaml") << "interval: 1s\n"
                                            "node_name: test-node\n"
                                            "collectors:\n"
                                            "  cgroup:\n    enabled: false\n"
                                            "  node:\n    enabled: false\n"
                                            "  journal:\n    enabled: false\n"
                                            "  logs:\n    batch_wait: 100ms\n"
                                            "    rescan_interval: 500ms\n"
                                            "loki:\n"
                                            "  tenant: \""
                                         << default_tenant << "\"\n"
                                         << tenants;
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

  std::string metrics() {
    auto m = nodewarden::testing::httpGet("http://127.0.0.1:" + std::to_string(port_) + "/metrics");
    return m && m->status == 200 ? m->body : "";
  }
  // A series' value from /metrics; -1 when not there.
  double agentMetric(const std::string& series) {
    const std::string body = metrics();
    const auto at = body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(body.substr(at + series.size() + 2));
  }
  bool waitMetricAbove(const std::string& series, double value, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (agentMetric(series) > value) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::vector<LogEntry> tenantEntries(const std::string& tenant, const ContainerLog& log) {
    const auto streams = loki_->tenantStreams(tenant);
    const auto it = streams.find(log.stream("test-node"));
    return it == streams.end() ? std::vector<LogEntry>{} : it->second;
  }

  static constexpr const char* kTwoTenants =
      "  tenants:\n"
      "    namespaces: {team-a: a, team-b: b}\n";

  fs::path base_, log_root_;
  int port_ = 0;
  std::unique_ptr<FakeLoki> loki_;
  ChildProcess agent_;
};

// Tenant a is answered 429, then 500; b's lines keep arriving all along (within seconds of being
// written, while a has none), then a catches up with nothing lost.
TEST_F(LogTenants, OneTenantRefusedNeverHoldsBackAnother) {
  ContainerLog a(log_root_, "team-a", "spark-0", "11111111-2222-3333-4444-555555555501", "driver");
  ContainerLog b(log_root_, "team-b", "kafka-0", "11111111-2222-3333-4444-555555555502", "broker");
  loki_->answerTenant("a", FakeLokiAnswer::tooManyRequests(1s));
  startAgent("", kTwoTenants);
  a.write(1, 2000);
  b.write(1, 2000);
  ASSERT_TRUE(loki_->waitForTenantEntries("b", 2000, 20s)) << loki_->tenantEntryCount("b");
  EXPECT_EQ(loki_->tenantEntryCount("a"), 0U);
  EXPECT_TRUE(waitMetricAbove(
      "nodewarden_log_send_backoff_seconds{destination=\"loki\",tenant=\"a\"}", 0, 10s));
  // a now answers 500: b still flows, with a delay of a batch, not of a's retries.
  loki_->answerTenant("a", FakeLokiAnswer::withStatus(500));
  a.write(2001, 3000);
  b.write(2001, 3000);
  const auto written = std::chrono::steady_clock::now();
  ASSERT_TRUE(loki_->waitForTenantEntries("b", 3000, 20s)) << loki_->tenantEntryCount("b");
  EXPECT_LT(std::chrono::steady_clock::now() - written, 10s);
  EXPECT_EQ(loki_->tenantEntryCount("a"), 0U);
  // a's lines waited in its own spool directory.
  EXPECT_TRUE(fs::is_directory(base_ / "state/spool/logs/tenants/t-a"));
  loki_->answerTenant("a", FakeLokiAnswer::ok());
  ASSERT_TRUE(loki_->waitForTenantEntries("a", 3000, 60s)) << loki_->tenantEntryCount("a");
  EXPECT_EQ(verifyStream(tenantEntries("a", a), a.container(), 3000), "");
  EXPECT_EQ(verifyStream(tenantEntries("b", b), b.container(), 3000), "");
  // Nothing crossed over, and nothing went without a tenant.
  EXPECT_TRUE(tenantEntries("b", a).empty());
  EXPECT_TRUE(tenantEntries("a", b).empty());
  EXPECT_EQ(loki_->tenantEntryCount(""), 0U);
  EXPECT_GE(agentMetric("nodewarden_log_lines_sent_total{destination=\"loki\",tenant=\"b\"}"),
            3000);
  EXPECT_EQ(agentMetric("nodewarden_log_spool_lost_lines"), 0.0);
}

// Batches spooled for a refused tenant survive a restart in its directory and are sent after it.
TEST_F(LogTenants, ATenantsSpooledBatchesAreSentAfterARestart) {
  ContainerLog a(log_root_, "team-a", "airflow-0", "11111111-2222-3333-4444-555555555511", "task");
  ContainerLog b(log_root_, "team-b", "api-0", "11111111-2222-3333-4444-555555555512", "api");
  loki_->answerTenant("a", FakeLokiAnswer::withStatus(503));
  startAgent("", kTwoTenants);
  a.write(1, 500);
  b.write(1, 500);
  ASSERT_TRUE(loki_->waitForTenantEntries("b", 500, 20s));
  // a's 500 lines are in its spool (committed positions follow the spool's sync within a second).
  ASSERT_TRUE(waitMetricAbove("nodewarden_log_spool_batches{tenant=\"a\"}", 0, 10s));
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(agent_.stop(5s).has_value());
  bool segments = false;
  for (const auto& e : fs::directory_iterator(base_ / "state/spool/logs/tenants/t-a")) {
    segments = segments || e.path().extension() == ".seg";
  }
  EXPECT_TRUE(segments);
  loki_->answerTenant("a", FakeLokiAnswer::ok());
  a.write(501, 600);
  startAgent("", kTwoTenants);
  ASSERT_TRUE(loki_->waitForTenantEntries("a", 600, 60s)) << loki_->tenantEntryCount("a");
  EXPECT_EQ(verifyStream(tenantEntries("a", a), a.container(), 600), "");
  EXPECT_EQ(verifyStream(tenantEntries("b", b), b.container(), 500), "");
}

// A spool written by an agent without tenants (spool/logs) is the default tenant's: after the
// upgrade its batches go out under the default tenant, and new lines under their own tenants.
TEST_F(LogTenants, AnUntenantedSpoolIsSentAsTheDefaultTenantsAfterTheUpgrade) {
  ContainerLog a(log_root_, "team-a", "etl-0", "11111111-2222-3333-4444-555555555521", "etl");
  loki_->answer(FakeLokiAnswer::withStatus(503));
  startAgent("platform", "");
  a.write(1, 400);
  ASSERT_TRUE(waitMetricAbove("nodewarden_log_spool_batches", 0, 10s));
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(agent_.stop(5s).has_value());
  EXPECT_FALSE(fs::exists(base_ / "state/spool/logs/tenants"));
  loki_->answer(FakeLokiAnswer::ok());
  a.write(401, 500);
  startAgent("platform", kTwoTenants);
  ASSERT_TRUE(loki_->waitForEntries(500, 60s)) << loki_->entryCount();
  std::this_thread::sleep_for(1s);
  // Lines 1..400 were spooled for the default tenant; those read after the upgrade are a's.
  auto platform = tenantEntries("platform", a);
  auto own = tenantEntries("a", a);
  EXPECT_GE(platform.size(), 400U);
  EXPECT_GE(own.size(), 100U);
  std::vector<LogEntry> all = platform;
  all.insert(all.end(), own.begin(), own.end());
  EXPECT_EQ(verifyStream(all, a.container(), 500), "");
  EXPECT_EQ(loki_->tenantEntryCount(""), 0U);
}

}  // namespace
