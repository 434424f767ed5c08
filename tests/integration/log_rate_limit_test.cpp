// collectors.logs.rate_limit end to end with the real binary and the fake Loki: a pod flooding
// its stdout far above its limit is cut, and a marker line in its stream says how many lines were
// dropped; a quiet pod next to it loses nothing; and a pod's backlog of two hours, written at a
// normal rate and read at once by an agent that starts only now, arrives whole.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "pipeline/log_selector.h"
#include "tests/fakes/fake_loki.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::Labels;
using nodewarden::LogEntry;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::FakeLoki;
using nodewarden::testing::SpawnOptions;
using namespace std::chrono_literals;

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kS = 1000 * kMs;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// RFC 3339 with nanoseconds, UTC, as containerd writes it.
std::string rfc3339(std::int64_t ns) {
  const std::time_t secs = ns / kS;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(ns % kS));
  return buf;
}

std::int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One container's CRI log under kubelet's layout; lines "<pod> line <n>" at chosen times.
class PodLog {
 public:
  PodLog(const fs::path& root, std::string ns, std::string pod, const std::string& uid)
      : ns_(std::move(ns)), pod_(std::move(pod)) {
    const fs::path dir = root / (ns_ + "_" + pod_ + "_" + uid) / "app";
    fs::create_directories(dir);
    out_.open(dir / "0.log", std::ios::app);
  }
  void write(int n, std::int64_t ts) {
    out_ << rfc3339(ts) << " stdout F " << pod_ << " line " << n << "\n";
  }
  void flush() { out_.flush(); }
  [[nodiscard]] Labels stream() const {
    return {{"container", "app"},
            {"namespace", ns_},
            {"node", "test-node"},
            {"pod", pod_},
            {"stream", "stdout"}};
  }

 private:
  std::string ns_, pod_;
  std::ofstream out_;
};

class RateLimitEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::mt19937_64 rng{std::random_device{}()};
    base_ = fs::temp_directory_path() / ("nodewarden-ratelimit-" + std::to_string(rng()));
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
  void startAgent() {
    std::ofstream(base_ / "config.yaml") << "interval: 1s\n"
                                            "node_name: test-node\n"
                                            "collectors:\n"
                                            "  cgroup:\n    enabled: false\n"
                                            "  node:\n    enabled: false\n"
                                            "  journal:\n    enabled: false\n"
                                            "  logs:\n"
                                            "    batch_wait: 100ms\n"
                                            "    rescan_interval: 500ms\n"
                                            "    rate_limit:\n"
                                            "      burst: 1s\n"
                                            "      overrides:\n"
                                            "        - match: {namespaces: [batch]}\n"
                                            "          lines_per_second: 100\n";
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
  bool waitReady() {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r =
          nodewarden::testing::httpGet("http://127.0.0.1:" + std::to_string(port_) + "/readyz", 1s);
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  double agentMetric(const std::string& series) {
    auto m = nodewarden::testing::httpGet("http://127.0.0.1:" + std::to_string(port_) + "/metrics");
    if (!m || m->status != 200) return -1;
    const auto at = m->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(m->body.substr(at + series.size() + 2));
  }

  fs::path base_, log_root_;
  int port_ = 0;
  std::unique_ptr<FakeLoki> loki_;
  ChildProcess agent_;
};

// Lines 1..count in order, none missing.
void expectWhole(const std::vector<LogEntry>& got, const std::string& pod, int count) {
  ASSERT_EQ(got.size(), static_cast<std::size_t>(count)) << pod;
  for (int n = 1; n <= count; ++n) {
    ASSERT_EQ(got[static_cast<std::size_t>(n - 1)].line, pod + " line " + std::to_string(n));
  }
}

TEST_F(RateLimitEndToEnd, FloodingPodIsCutWithAMarkerAndItsNeighboursLoseNothing) {
  const std::int64_t now = nowNs();
  // Two hours ago, 3000 lines at 25 per second (the limit of its namespace is 100 per second),
  // written while no agent ran: read at once, nothing may be dropped.
  PodLog backlog(log_root_, "batch", "etl-backlog", "11111111-2222-3333-4444-555555555571");
  for (int n = 1; n <= 3000; ++n) backlog.write(n, now - 2 * 3600 * kS + n * 40 * kMs);
  backlog.flush();
  startAgent();
  ASSERT_TRUE(waitReady());

  // Live: the flooding pod writes 5000 lines within 50 ms of its clock, 100x its limit; the quiet
  // pod beside it (a namespace with the generous defaults) 300 lines at 50 per second.
  PodLog spam(log_root_, "batch", "spammer", "11111111-2222-3333-4444-555555555572");
  PodLog quiet(log_root_, "web", "frontend", "11111111-2222-3333-4444-555555555573");
  const std::int64_t start = nowNs() - 10 * kS;
  constexpr int kFlood = 5000;
  for (int n = 1; n <= kFlood; ++n) spam.write(n, start + n * 10'000);
  for (int n = 1; n <= 300; ++n) quiet.write(n, start + n * 20 * kMs);
  spam.flush();
  quiet.flush();

  // A marker comes once the flood has been quiet for a second. The multiline stage before the rate
  // limit holds each stream's last line up to its flush timeout, so the flood's last line may reach
  // the limit after that first marker and be told by a second one: wait until the markers account
  // for every line of the flood.
  const std::regex text(
      R"(nodewarden: dropped (\d+) lines? \((\d+) K?i?B\) of this stream over [0-9.]+m?s: rate limit 100 lines/s)");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::vector<LogEntry> flood;
  std::vector<const LogEntry*> markers;
  std::uint64_t dropped = 0;
  std::size_t passed = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    flood = loki_->entries(spam.stream());
    markers.clear();
    dropped = 0;
    for (const auto& e : flood) {
      if (nodewarden::labelValue(e.metadata, "nodewarden_marker") != "rate_limit") continue;
      markers.push_back(&e);
      std::smatch m;
      ASSERT_TRUE(std::regex_match(e.line, m, text)) << e.line;
      dropped += std::stoull(m[1].str());
      EXPECT_EQ(nodewarden::labelValue(e.metadata, "dropped_lines"), m[1].str());
    }
    passed = flood.size() - markers.size();
    if (!markers.empty() && dropped + passed >= static_cast<std::uint64_t>(kFlood)) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(markers.empty()) << "no marker line in the flooding pod's stream; got "
                                << flood.size() << " entries";
  EXPECT_LE(markers.size(), 2U);
  // 100 lines of burst and 100 per second over its 50 ms.
  EXPECT_GE(passed, 100U);
  EXPECT_LE(passed, 106U);
  EXPECT_EQ(dropped + passed, static_cast<std::size_t>(kFlood));
  const LogEntry* marker = markers.back();
  EXPECT_EQ(nodewarden::labelValue(marker->metadata, "pod_uid"),
            "11111111-2222-3333-4444-555555555572");
  // The last marker bears the last dropped line's time: the flood's last line was dropped.
  EXPECT_EQ(marker->timestamp_ns, start + kFlood * 10'000);
  // What passed is the flood's beginning, in order.
  for (std::size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(flood[i].line, "spammer line " + std::to_string(i + 1));
  }

  ASSERT_TRUE(loki_->waitForEntries(3000 + 300 + flood.size(), 30s)) << loki_->entryCount();
  expectWhole(loki_->entries(quiet.stream()), "frontend", 300);
  expectWhole(loki_->entries(backlog.stream()), "etl-backlog", 3000);

  // Counted per pod; the pods that lost nothing have no series.
  const auto counted = [&] {
    return agentMetric(
        R"(nodewarden_log_lines_rate_limited_total{namespace="batch",pod="spammer"})");
  };
  const auto counter_deadline = std::chrono::steady_clock::now() + 10s;
  while (counted() != static_cast<double>(dropped) &&
         std::chrono::steady_clock::now() < counter_deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(counted(), static_cast<double>(dropped));
  EXPECT_EQ(
      agentMetric(R"(nodewarden_log_lines_rate_limited_total{namespace="web",pod="frontend"})"),
      -1);
  EXPECT_NE(slurp(base_ / "agent.log").find("log rate limit: dropping lines of stream"),
            std::string::npos);
}

}  // namespace
