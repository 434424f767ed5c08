// The real nodewarden binary through what happens to a running agent on a node: a state dir it
// cannot use (read-only, an `ack` that is a directory, a `spool` that is a file) and signals
// (SIGHUP reloads the config; SIGUSR1, SIGUSR2, SIGALRM and SIGPIPE are ignored).
//
// What a reader gets wrong: none of these may end the process. Each test waits for the event it
// checks (a counter on /metrics, /readyz's answer, lines at the fake Loki) within a deadline; a
// process that died fails the test at once rather than at the deadline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "tests/fakes/fake_loki.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::FakeLoki;
using nodewarden::testing::httpGet;
using nodewarden::testing::SpawnOptions;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const fs::path kFixtureNode = fs::path(NODEWARDEN_FIXTURES) / "cgroup/v2-cgroupfs-docker";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// The agent on the v2 fixture node (its cgroups and pod log layout are files), with a config file
// of the test's and its state under dir/state.
class RunningAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::mt19937_64 rng{std::random_device{}()};
    dir_ = fs::temp_directory_path() / ("nodewarden-lifecycle-" + std::to_string(rng()));
    fs::create_directories(dir_ / "runtime");
    fs::create_directories(dir_ / "state");
    port_ = nodewarden::testing::freeLoopbackPort();
    base_ = "http://127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    agent_.stop(3s);
    if (HasFailure()) std::fprintf(stderr, "agent log:\n%s\n", log().c_str());
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Everything the agent needs is in the file (no flags), so that a reload sees every key.
  std::string baseConfig() const {
    return "listen: 127.0.0.1:" + std::to_string(port_) +
           "\n"
           "interval: 1s\n"
           "node_name: fixture-node\n"
           "paths:\n"
           "  cgroup_root: " +
           (kFixtureNode / "sys/fs/cgroup").string() + "\n  log_root: " + logRoot().string() +
           "\n  proc_root: /proc\n  state_dir: " + (dir_ / "state").string() +
           "\n  runtime_state_dirs: [" + (dir_ / "runtime").string() +
           "]\n"
           "collectors:\n"
           "  journal:\n    enabled: false\n"
           "  pods:\n    kubelet: false\n    apiserver: false\n"
           "  logs:\n    batch_wait: 100ms\n    rescan_interval: 500ms\n";
  }
  virtual fs::path logRoot() const { return kFixtureNode / "var/log/pods"; }

  void writeConfig(const std::string& text) { std::ofstream(dir_ / "config.yaml") << text; }

  void startAgent() {
    SpawnOptions o;
    o.output = dir_ / "agent.log";
    auto child = ChildProcess::start(
        {NODEWARDEN_BINARY, "run", "--config", (dir_ / "config.yaml").string()}, o);
    ASSERT_TRUE(child.has_value()) << child.error();
    agent_ = std::move(*child);
  }

  std::string log() const { return slurp(dir_ / "agent.log"); }

  // Polls until check(response) holds, with the agent alive throughout; false at the deadline or
  // when the agent exited.
  bool waitFor(const std::string& path,
               const std::function<bool(const nodewarden::testing::HttpResponse&)>& check,
               std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!agent_.running()) {
        ADD_FAILURE() << "the agent exited: "
                      << nodewarden::testing::describeWaitStatus(agent_.exitStatus().value_or(0));
        return false;
      }
      auto r = httpGet(base_ + path, 2s);
      if (r && check(*r)) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // /metrics once series has at least value `at_least`; its body, or empty at the deadline.
  std::string metricsWhen(const std::string& series, double at_least,
                          std::chrono::milliseconds timeout = 20s) {
    std::string body;
    const bool ok = waitFor(
        "/metrics",
        [&](const auto& r) {
          body = r.body;
          const auto v = sample(r.body, series);
          return r.status == 200 && v && *v >= at_least;
        },
        timeout);
    EXPECT_TRUE(ok) << series << " never reached " << at_least;
    return ok ? body : std::string();
  }

  void signal(int sig) { ASSERT_EQ(::kill(agent_.pid(), sig), 0) << std::strerror(errno); }

  fs::path dir_;
  int port_ = 0;
  std::string base_;
  ChildProcess agent_;
};

// --- An unusable state dir
// ------------------------------------------------------------------------

// The log path (to the fake Loki, from a pod log the test writes), remote write (to the same fake)
// and Job outcomes, all in a state dir the test breaks before the start and mends while the agent
// runs.
class UnusableStateDir : public RunningAgent {
 protected:
  void SetUp() override {
    RunningAgent::SetUp();
    auto loki = FakeLoki::start();
    ASSERT_TRUE(loki.has_value()) << loki.error();
    loki_ = std::move(*loki);
    auto rw = FakeLoki::start();  // remote write's samples count as its entries: a fake of its own
    ASSERT_TRUE(rw.has_value()) << rw.error();
    remote_write_ = std::move(*rw);
    const fs::path container =
        logRoot() / "spark_driver-0_11111111-2222-3333-4444-555555555551" / "driver";
    fs::create_directories(container);
    log_file_ = container / "0.log";
  }
  void TearDown() override {
    RunningAgent::TearDown();
    loki_.reset();
    remote_write_.reset();
  }
  fs::path logRoot() const override { return dir_ / "pods"; }

  void writeLines(int from, int to) {
    std::ofstream out(log_file_, std::ios::app);
    for (int n = from; n <= to; ++n) {
      out << "2026-11-21T10:00:00." << 100000 + n << "Z stdout F line " << n << "\n";
    }
  }

  void startWithLokiAndRemoteWrite() {
    writeConfig(baseConfig() + "loki:\n  url: " + loki_->pushUrl() +
                "\nremote_write:\n  url: " + remote_write_->remoteWriteUrl() + "\n");
    startAgent();
  }

  // The agent keeps serving with the log path down: /healthz and /metrics 200, collection cycles
  // going on, /readyz 503 naming the component and why, the error counted.
  void expectDegradedButServing(const std::vector<std::string>& components,
                                const std::string& reason) {
    std::string readyz;
    ASSERT_TRUE(waitFor("/readyz",
                        [&](const auto& r) {
                          readyz = r.body;
                          bool all = r.status == 503;
                          for (const auto& c : components)
                            all = all && r.body.find(c + ": ") != std::string::npos;
                          return all && r.body.find("first collection") == std::string::npos;
                        }))
        << "last /readyz: " << readyz;
    EXPECT_THAT(readyz, HasSubstr(reason));
    const auto health = httpGet(base_ + "/healthz");
    ASSERT_TRUE(health.has_value());
    EXPECT_EQ(health->status, 200) << "liveness must not restart the agent for its state dir";
    const std::string body = metricsWhen("nodewarden_collection_cycles_total", 2);
    EXPECT_THAT(body, HasSubstr("container_cpu_usage_seconds_total{"));
    for (const auto& c : components) {
      const auto errors = sample(
          body, "nodewarden_errors_total{component=\"" + c + "\",reason=\"state_dir_unusable\"}");
      EXPECT_TRUE(errors && *errors >= 1) << c;
    }
    EXPECT_EQ(loki_->entryCount(), 0U);
  }

  // Once the state dir is mended: /readyz 200 again, and every line (also those written while it
  // was down) at the fake Loki.
  void expectRecovered() {
    std::string readyz;
    EXPECT_TRUE(waitFor(
        "/readyz",
        [&](const auto& r) {
          readyz = r.body;
          return r.status == 200;
        },
        40s))
        << "last /readyz: " << readyz;
    writeLines(11, 20);
    EXPECT_TRUE(loki_->waitForEntries(20, 20s)) << loki_->entryCount() << " of 20 lines";
    EXPECT_THAT(log(), HasSubstr("the state dir is usable now; started"));
  }

  std::unique_ptr<FakeLoki> loki_;
  std::unique_ptr<FakeLoki> remote_write_;
  fs::path log_file_;
};

TEST_F(UnusableStateDir, AckThatIsADirectory) {
  fs::create_directories(dir_ / "state/spool/logs/ack");
  writeLines(1, 10);
  startWithLokiAndRemoteWrite();
  expectDegradedButServing({"logs"}, "ack: Is a directory");
  fs::remove(dir_ / "state/spool/logs/ack");
  expectRecovered();
}

TEST_F(UnusableStateDir, SpoolThatIsAFile) {
  std::ofstream(dir_ / "state/spool") << "not a directory\n";
  writeLines(1, 10);
  startWithLokiAndRemoteWrite();
  expectDegradedButServing({"logs", "remote_write"}, "Not a directory");
  EXPECT_THAT(log(), HasSubstr((dir_ / "state/spool").string()));
  fs::remove(dir_ / "state/spool");
  expectRecovered();
}

TEST_F(UnusableStateDir, ReadOnlyEmptyStateDir) {
  // Root writes through permission bits: a read-only mount is what stops it.
  const fs::path state = dir_ / "state";
  if (::mount("tmpfs", state.c_str(), "tmpfs", MS_RDONLY, "size=8m") != 0) {
    GTEST_SKIP() << "cannot mount a read-only tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    fs::path at;
    ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
  } unmount{state};
  writeLines(1, 10);
  startWithLokiAndRemoteWrite();
  expectDegradedButServing({"jobs", "logs", "remote_write"}, "Read-only file system");
  ASSERT_EQ(::mount("tmpfs", state.c_str(), "tmpfs", MS_REMOUNT, "size=8m"), 0)
      << std::strerror(errno);
  expectRecovered();
  // The remote-write spool came up too: samples reached its fake.
  ASSERT_TRUE(remote_write_->waitForRequests(1, 20s));
  const auto sent = remote_write_->requests().front();
  EXPECT_EQ(sent.status, 204) << sent.error;
  EXPECT_GT(sent.entries, 0U) << "samples";
  // Stopped before the mount goes, so the agent's last commit lands where it can be written.
  agent_.stop(3s);
}

// --- Signals
// --------------------------------------------------------------------------------------

class AgentSignals : public RunningAgent {
 protected:
  void start(const std::string& extra = "") {
    writeConfig(baseConfig() + extra);
    startAgent();
    ASSERT_TRUE(waitFor("/readyz", [](const auto& r) { return r.status == 200; }));
  }
  std::string signalSeries(const std::string& name) const {
    return "nodewarden_signals_received_total{signal=\"" + name + "\"}";
  }
  std::string reloads(const std::string& result) const {
    return "nodewarden_config_reloads_total{result=\"" + result + "\"}";
  }
};

TEST_F(AgentSignals, Usr1Usr2AlrmAndPipeAreLoggedOnceAndIgnored) {
  start();
  for (int round = 1; round <= 2; ++round) {
    for (auto [sig, name] : {std::pair{SIGUSR1, "SIGUSR1"}, std::pair{SIGUSR2, "SIGUSR2"},
                             std::pair{SIGALRM, "SIGALRM"}}) {
      signal(sig);
      ASSERT_FALSE(metricsWhen(signalSeries(name), round).empty());
    }
  }
  signal(SIGPIPE);
  // The process is still there and still collecting after all of them.
  const auto before = sample(metricsWhen("nodewarden_collection_cycles_total", 1),
                             "nodewarden_collection_cycles_total");
  ASSERT_TRUE(before.has_value());
  EXPECT_FALSE(metricsWhen("nodewarden_collection_cycles_total", *before + 2).empty());
  const std::string text = log();
  for (const char* name : {"SIGUSR1", "SIGUSR2", "SIGALRM"}) {
    EXPECT_EQ(count(text, std::string(name) + " received and ignored"), 1U) << name;
  }
  // And SIGTERM still stops it cleanly.
  const auto status = agent_.stop(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << nodewarden::testing::describeWaitStatus(*status);
  EXPECT_THAT(log(), HasSubstr("SIGTERM received, shutting down"));
}

// Destroying the agent's signal_set put SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM back to SIG_DFL while
// the shutdown still joined threads, so a SIGHUP then (a config reload racing a rollout) killed a
// clean shutdown. Signals are sent at a steady pace from SIGTERM until the process is gone; every
// one of them must be ignored.
TEST_F(AgentSignals, SignalsDuringShutdownDoNotEndItUncleanly) {
  start();
  signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  int sent = 0;
  while (agent_.running() && std::chrono::steady_clock::now() < deadline) {
    for (int sig : {SIGHUP, SIGUSR1, SIGUSR2, SIGALRM}) {
      if (::kill(agent_.pid(), sig) == 0) ++sent;
    }
    std::this_thread::sleep_for(200us);  // the pace of the senders, not a wait for the agent
  }
  ASSERT_FALSE(agent_.running()) << "the agent did not stop within 10 s";
  const auto status = agent_.exitStatus();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << nodewarden::testing::describeWaitStatus(*status) << " after " << sent << " signals";
  EXPECT_THAT(log(), HasSubstr("stopped"));
}

// A changed detector option takes effect: the memory recommendation of a container of the fixture
// node (whose working set never changes) is its percentile times 1 + margin.
TEST_F(AgentSignals, SighupAppliesADetectorOptionAtOnce) {
  start("detector:\n  recommendation:\n    margin: 0.15\n");
  const std::string series =
      "nodewarden_container_recommended_memory_bytes{namespace=\"spark\",pod=\"driver-0\","
      "container=\"spark-driver\",node=\"fixture-node\"}";
  const std::string body = metricsWhen(series, 1);
  ASSERT_FALSE(body.empty()) << "no recommendation";
  const double before = *sample(body, series);
  writeConfig(baseConfig() + "detector:\n  recommendation:\n    margin: 1.0\n");
  signal(SIGHUP);
  ASSERT_FALSE(metricsWhen(reloads("success"), 1).empty());
  // The next cycle's recommendation: 2 / 1.15 of the one before.
  std::optional<double> after;
  ASSERT_TRUE(waitFor("/metrics",
                      [&](const auto& r) {
                        after = sample(r.body, series);
                        return after && *after > before * 1.5;
                      }))
      << "before " << before << ", after " << after.value_or(-1);
  EXPECT_NEAR(*after / before, 2.0 / 1.15, 0.01);
  EXPECT_THAT(log(), HasSubstr("applied detector.recommendation.margin"));
  EXPECT_THAT(log(), Not(HasSubstr("needs a restart")));
}

TEST_F(AgentSignals, SighupAppliesTheLogLevel) {
  start();
  signal(SIGUSR1);
  ASSERT_FALSE(metricsWhen(signalSeries("SIGUSR1"), 1).empty());
  EXPECT_THAT(log(), HasSubstr("SIGUSR1 received and ignored")) << "at info, logged";
  writeConfig(baseConfig() + "log_level: warn\n");
  signal(SIGHUP);
  ASSERT_FALSE(metricsWhen(reloads("success"), 1).empty());
  signal(SIGUSR2);
  ASSERT_FALSE(metricsWhen(signalSeries("SIGUSR2"), 1).empty());
  EXPECT_THAT(log(), Not(HasSubstr("SIGUSR2 received"))) << "at warn, an info line is not logged";
}

TEST_F(AgentSignals, SighupWithABrokenFileKeepsTheRunningConfig) {
  start();
  writeConfig(baseConfig() + "detector:\n  windows:\n    short: ten\n");
  signal(SIGHUP);
  ASSERT_FALSE(metricsWhen(reloads("failure"), 1).empty());
  const std::string text = log();
  EXPECT_THAT(text, HasSubstr("config reload failed, the running config stays"));
  // FILE:LINE: FIELD: REASON, as at start.
  const int line = static_cast<int>(count(baseConfig(), "\n")) + 3;
  EXPECT_THAT(text, HasSubstr((dir_ / "config.yaml").string() + ":" + std::to_string(line) +
                              ": detector.windows.short"));
  const auto before = sample(metricsWhen("nodewarden_collection_cycles_total", 1),
                             "nodewarden_collection_cycles_total");
  ASSERT_TRUE(before.has_value());
  EXPECT_FALSE(metricsWhen("nodewarden_collection_cycles_total", *before + 2).empty());
  const auto ready = httpGet(base_ + "/readyz");
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->status, 200);
}

TEST_F(AgentSignals, SighupNamesWhatNeedsARestartAndKeepsItsRunningValue) {
  start();
  const int other_port = nodewarden::testing::freeLoopbackPort();
  std::string changed = baseConfig();
  changed.replace(changed.find(std::to_string(port_)), std::to_string(port_).size(),
                  std::to_string(other_port));
  changed.replace(changed.find("interval: 1s"), 12, "interval: 2s");
  writeConfig(changed);
  signal(SIGHUP);
  ASSERT_FALSE(metricsWhen(reloads("success"), 1).empty());
  EXPECT_THAT(log(), HasSubstr("config reload: changed but needs a restart to take effect: listen, "
                               "interval (the running values stay until then)"));
  const auto old_port = httpGet(base_ + "/healthz");
  ASSERT_TRUE(old_port.has_value());
  EXPECT_EQ(old_port->status, 200) << "still on the port it started with";
  EXPECT_FALSE(httpGet("http://127.0.0.1:" + std::to_string(other_port) + "/healthz", 500ms));
}

}  // namespace
