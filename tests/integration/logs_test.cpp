// The log path end to end with the real binary: writers append numbered CRI lines to kubelet's
// log layout while the test rotates the files, takes the destination down, kills the agent with
// SIGKILL, or fills the spool; a fake Loki receives. After each, every line 1..N of every stream
// must have arrived, in order per stream, with no line missing and no duplicate beyond what Loki
// itself removes (an identical timestamp and line).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/fakes/fake_kubelet.h"
#include "tests/fakes/fake_loki.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/loopback_certificate.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::Labels;
using nodewarden::LogEntry;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::FakeLoki;
using nodewarden::testing::FakeLokiAnswer;
using nodewarden::testing::FakeLokiOptions;
using nodewarden::testing::SpawnOptions;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One container's log as kubelet lays it out, written the way a runtime does: whole records
// appended; rotated kubelet's way (rename, then a new file) or copytruncate.
class ContainerLog {
 public:
  ContainerLog(const fs::path& log_root, std::string ns, std::string pod, std::string uid,
               std::string container)
      : ns_(std::move(ns)), pod_(std::move(pod)), container_(std::move(container)) {
    dir_ = log_root / (ns_ + "_" + pod_ + "_" + uid) / container_;
    fs::create_directories(dir_);
    open();
  }
  [[nodiscard]] const fs::path& file() const { return file_; }
  [[nodiscard]] Labels stream(const std::string& node) const {
    return {{"container", container_},
            {"namespace", ns_},
            {"node", node},
            {"pod", pod_},
            {"stream", "stdout"}};
  }

  // Appends line n ("<container> line <n>"); every 7th line is split into two partial records.
  void write(int n) {
    const std::string ts = timestamp(n);
    const std::string msg = container_ + " line " + std::to_string(n);
    if (n % 7 == 0) {
      const auto half = msg.size() / 2;
      out_ << ts << " stdout P " << msg.substr(0, half) << "\n";
      out_ << ts << " stdout F " << msg.substr(half) << "\n";
    } else {
      out_ << ts << " stdout F " << msg << "\n";
    }
    out_.flush();
  }

  // Appends msg as record n of `stream`, split into a P and an F record at split_at (0: whole).
  void writeText(int n, const std::string& msg, const std::string& stream = "stdout",
                 std::size_t split_at = 0) {
    const std::string ts = timestamp(n);
    if (split_at > 0 && split_at < msg.size()) {
      out_ << ts << " " << stream << " P " << msg.substr(0, split_at) << "\n";
      out_ << ts << " " << stream << " F " << msg.substr(split_at) << "\n";
    } else {
      out_ << ts << " " << stream << " F " << msg << "\n";
    }
    out_.flush();
  }

  // kubelet: 0.log -> 0.log.<stamp>, then a new 0.log. Returns the rotated file.
  fs::path rotateRename() {
    out_.close();
    const fs::path rotated = file_.string() + "." + std::to_string(++rotations_);
    fs::rename(file_, rotated);
    open();
    return rotated;
  }

  // copytruncate: copy to `copy`, then truncate in place (the writer keeps appending to the same
  // inode, at offset 0 again: the file was opened with O_APPEND).
  void rotateCopyTruncate(const fs::path& copy) {
    out_.flush();
    fs::copy_file(file_, copy);
    fs::resize_file(file_, 0);
  }

 private:
  void open() {
    file_ = dir_ / "0.log";
    out_.open(file_, std::ios::app);
  }
  static std::string timestamp(int n) {
    // Distinct, increasing timestamps: 2026-11-21T10:00:00 plus n microseconds.
    char buf[64];
    std::snprintf(buf, sizeof buf, "2026-11-21T10:%02d:%02d.%06dZ", (n / 60000000) % 60,
                  (n / 1000000) % 60, n % 1000000);
    return buf;
  }
  std::string ns_, pod_, container_;
  fs::path dir_, file_;
  std::ofstream out_;
  int rotations_ = 0;
};

struct Check {
  bool ok = true;
  std::string why;
};

// Every n in 1..count exactly once after removing identical (timestamp, line) duplicates, and in
// increasing order.
Check verifyStream(const std::vector<LogEntry>& got, const std::string& container, int count) {
  std::set<std::pair<std::int64_t, std::string>> seen;
  int expect = 1;
  const std::string prefix = container + " line ";
  for (const auto& e : got) {
    if (!seen.insert({e.timestamp_ns, e.line}).second) continue;  // Loki drops exact duplicates
    if (!e.line.starts_with(prefix)) return {false, "foreign line: " + e.line};
    const int n = std::stoi(e.line.substr(prefix.size()));
    if (n != expect) {
      return {false, container + ": expected line " + std::to_string(expect) + ", got " +
                         std::to_string(n) + " (" + std::to_string(seen.size()) +
                         " unique so far)"};
    }
    ++expect;
  }
  if (expect != count + 1) {
    return {false, container + ": " + std::to_string(expect - 1) + " of " + std::to_string(count) +
                       " lines arrived"};
  }
  return {};
}

class LogsEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::mt19937_64 rng{std::random_device{}()};
    base_ = fs::temp_directory_path() / ("nodewarden-logs-" + std::to_string(rng()));
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

  void writeConfig(const std::string& extra) {
    std::ofstream(base_ / "config.yaml") << "interval: 1s\n"
                                            "node_name: test-node\n"
                                            "collectors:\n"
                                            "  cgroup:\n    enabled: false\n"
                                            "  node:\n    enabled: false\n"
                                            "  journal:\n    enabled: false\n"
                                            "  logs:\n    batch_wait: 100ms\n"
                                            "    rescan_interval: 500ms\n"
                                         << extra;
  }

  void startAgent(const std::vector<std::string>& extra = {}) {
    if (!fs::exists(base_ / "config.yaml")) writeConfig("");
    SpawnOptions o;
    o.output = base_ / "agent.log";
    std::vector<std::string> args{NODEWARDEN_BINARY, "run",
                                  "--config",        (base_ / "config.yaml").string(),
                                  "--listen",        "127.0.0.1:" + std::to_string(port_),
                                  "--log-root",      log_root_.string(),
                                  "--state-dir",     (base_ / "state").string(),
                                  "--loki-url",      loki_->pushUrl()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto child = ChildProcess::start(args, o);
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

  void expectAll(const std::vector<ContainerLog*>& logs, int count) {
    const std::size_t want = logs.size() * static_cast<std::size_t>(count);
    loki_->waitForEntries(want, 60s);
    // The count above includes what Loki would drop as duplicates (lines read again after a
    // kill), and the multiline stage holds each stream's last line for its flush_timeout: wait
    // until every stream is whole, or the deadline.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      bool whole = true;
      for (auto* log : logs) {
        const auto labels = log->stream("test-node");
        whole = whole && verifyStream(loki_->entries(labels), labels[0].second, count).ok;
      }
      if (whole || std::chrono::steady_clock::now() > deadline) break;
      loki_->waitForEntries(std::numeric_limits<std::size_t>::max(), 100ms);
    }
    for (auto* log : logs) {
      const auto labels = log->stream("test-node");
      const auto got = loki_->entries(labels);
      const std::string container = labels[0].second;
      const Check c = verifyStream(got, container, count);
      EXPECT_TRUE(c.ok) << c.why;
    }
  }

  // The agent's own counter, from its /metrics; -1 when not found.
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

// kubelet's rotation (rename, new file; the oldest rotated file deleted while the agent may still
// be reading it) at a rate the agent cannot read as fast as it is written: every file must be
// drained through its open descriptor, in order.
TEST_F(LogsEndToEnd, RenameRotationFasterThanTheAgentReads) {
  ContainerLog a(log_root_, "spark", "driver-0", "11111111-2222-3333-4444-555555555551", "driver");
  ContainerLog b(log_root_, "kafka", "consumer-1", "11111111-2222-3333-4444-555555555552",
                 "consumer");
  startAgent();
  ASSERT_TRUE(waitReady());
  constexpr int kLines = 20000;
  std::vector<fs::path> rotated_a, rotated_b;
  for (int n = 1; n <= kLines; ++n) {
    a.write(n);
    b.write(n);
    if (n % 2500 == 0) rotated_a.push_back(a.rotateRename());
    if (n % 4000 == 0) rotated_b.push_back(b.rotateRename());
    // kubelet keeps a couple of rotated files and deletes the oldest, read or not.
    for (auto* r : {&rotated_a, &rotated_b}) {
      if (r->size() > 2) {
        fs::remove(r->front());
        r->erase(r->begin());
      }
    }
    // A runtime writes in bursts; a file lives for tens of milliseconds here.
    if (n % 100 == 0) std::this_thread::sleep_for(1ms);
  }
  expectAll({&a, &b}, kLines);
}

// copytruncate (logrotate's way; the copy goes elsewhere): the live file shrinks to 0 under the
// agent, which starts again from its beginning. What was written between the agent's last read
// and the truncation exists only in the copy, so the writer truncates only once the agent has
// read everything; every line must then arrive once.
TEST_F(LogsEndToEnd, CopyTruncateRotation) {
  ContainerLog a(log_root_, "kafka", "consumer-3", "11111111-2222-3333-4444-555555555558",
                 "consumer");
  startAgent();
  ASSERT_TRUE(waitReady());
  constexpr int kLines = 6000;
  for (int n = 1; n <= kLines; ++n) {
    a.write(n);
    if (n % 1500 == 0) {
      ASSERT_TRUE(loki_->waitForEntries(static_cast<std::size_t>(n), 30s))
          << "caught up to " << n << ", got " << loki_->entryCount();
      a.rotateCopyTruncate(base_ / ("copy" + std::to_string(n)));
    }
  }
  expectAll({&a}, kLines);
  std::set<std::pair<std::int64_t, std::string>> unique;
  const auto got = loki_->entries(a.stream("test-node"));
  for (const auto& e : got) unique.insert({e.timestamp_ns, e.line});
  EXPECT_EQ(unique.size(), got.size()) << "no line sent twice";
}

// More pods than collectors.logs.max_open_files: the files take turns with the descriptors
// (idle ones give theirs back), so the fifth pod's lines arrive too, and the wait is counted.
TEST_F(LogsEndToEnd, MorePodsThanTheHandleBudgetAreAllRead) {
  writeConfig("    max_open_files: 4\n");
  std::vector<std::unique_ptr<ContainerLog>> pods;
  for (int p = 0; p < 5; ++p) {
    pods.push_back(std::make_unique<ContainerLog>(
        log_root_, "ns", "pod-" + std::to_string(p),
        "11111111-2222-3333-4444-55555555570" + std::to_string(p), "c" + std::to_string(p)));
  }
  startAgent();
  ASSERT_TRUE(waitReady());
  constexpr int kLines = 150;
  for (int n = 1; n <= kLines; ++n) {
    for (auto& pod : pods) pod->write(n);
    if (n % 30 == 0) std::this_thread::sleep_for(50ms);  // a few bursts, not one
  }
  std::vector<ContainerLog*> all;
  for (auto& pod : pods) all.push_back(pod.get());
  expectAll(all, kLines);
  EXPECT_GE(agentMetric("nodewarden_log_file_deferrals_total"), 1.0);
  EXPECT_GE(agentMetric("nodewarden_log_file_descriptor_yields_total"), 1.0);
  EXPECT_GE(
      agentMetric("nodewarden_errors_total{component=\"logs\",reason=\"fd_budget_exhausted\"}"),
      1.0);
  EXPECT_LE(agentMetric("nodewarden_log_open_files"), 4.0);
}

// copytruncate with the copy beside the live file under a rotated name (logrotate's 0.log.1, here
// kubelet's stamp), taken while the writer was between the P and the F of a line: the copy ends
// in that P. The F went to the live file and the agent read the line whole before the
// truncation. The copy must not be read again from its start, and its P never shipped alone
// (it used to be: "consumer " next to "consumer line 1498").
TEST_F(LogsEndToEnd, CopyTruncateCopyInTheLogDirectoryIsNotReadAgain) {
  ContainerLog a(log_root_, "kafka", "consumer-4", "11111111-2222-3333-4444-555555555561",
                 "consumer");
  startAgent();
  ASSERT_TRUE(waitReady());
  constexpr int kCut = 1498;  // a multiple of 7: written as a P and an F record
  constexpr int kLines = 3000;
  for (int n = 1; n <= kCut; ++n) a.write(n);
  ASSERT_TRUE(loki_->waitForEntries(kCut, 30s)) << loki_->entryCount();
  std::string text = slurp(a.file());
  text.erase(text.rfind('\n', text.size() - 2) + 1);  // without the last record, the F
  ASSERT_TRUE(text.ends_with(" stdout P consumer \n")) << text.substr(text.size() - 80);
  std::ofstream(a.file().string() + ".20261121-101010") << text;
  fs::resize_file(a.file(), 0);
  for (int n = kCut + 1; n <= kLines; ++n) a.write(n);
  expectAll({&a}, kLines);
  std::set<std::pair<std::int64_t, std::string>> unique;
  const auto got = loki_->entries(a.stream("test-node"));
  for (const auto& e : got) unique.insert({e.timestamp_ns, e.line});
  EXPECT_EQ(unique.size(), got.size()) << "no line sent twice";
}

TEST_F(LogsEndToEnd, DestinationDownThenBack) {
  ContainerLog a(log_root_, "airflow", "worker-0", "11111111-2222-3333-4444-555555555553",
                 "worker");
  loki_->answer(FakeLokiAnswer::withStatus(500));
  startAgent();
  constexpr int kLines = 5000;
  for (int n = 1; n <= kLines / 2; ++n) a.write(n);
  ASSERT_TRUE(loki_->waitForRequests(3, 20s)) << "the agent kept retrying";
  loki_->answer(FakeLokiAnswer::hangFor(1500ms), 1);
  for (int n = kLines / 2 + 1; n <= kLines; ++n) a.write(n);
  expectAll({&a}, kLines);
  // Unacknowledged for seconds, the batches held in memory were written to the spool's files.
  EXPECT_GT(agentMetric("nodewarden_log_spool_written_bytes_total"), 0.0);
}

TEST_F(LogsEndToEnd, KillNineAtRandomMomentsAndRestart) {
  ContainerLog a(log_root_, "spark", "exec-1", "11111111-2222-3333-4444-555555555554", "executor");
  constexpr int kLines = 12000;
  std::mt19937 rng(42);
  int written = 0;
  for (int round = 0; round < 4; ++round) {
    startAgent();
    const int upto = kLines * (round + 1) / 4;
    while (written < upto) a.write(++written);
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 700));
    ::kill(agent_.pid(), SIGKILL);
    agent_.stop(2s);
  }
  startAgent();
  expectAll({&a}, kLines);
}

TEST_F(LogsEndToEnd, SpoolFullPausesReadingInsteadOfLosingLines) {
  ContainerLog a(log_root_, "kafka", "consumer-2", "11111111-2222-3333-4444-555555555555",
                 "consumer");
  writeConfig("    batch_bytes: 16KiB\nspool:\n  max_bytes: 256KiB\n  segment_bytes: 64KiB\n");
  loki_->answer(FakeLokiAnswer::withStatus(503));
  startAgent();
  constexpr int kLines = 40000;  // about 1.3 MB of lines: five times the spool
  for (int n = 1; n <= kLines; ++n) a.write(n);
  std::this_thread::sleep_for(3s);
  loki_->answer(FakeLokiAnswer::ok());
  expectAll({&a}, kLines);
  EXPECT_EQ(agentMetric("nodewarden_log_spool_lost_lines"), 0.0);
  EXPECT_EQ(slurp(base_ / "agent.log").find("full_dropped_oldest"), std::string::npos);
}

// --loki-tenant sets loki.tenant: every push carries it as X-Scope-OrgID, and a Loki that
// requires that tenant accepts every line (it answers 401 to a push without it).
TEST_F(LogsEndToEnd, LokiTenantFlagIsSentAsScopeOrgId) {
  loki_.reset();
  FakeLokiOptions options;
  options.tenant = "team-a";
  auto loki = FakeLoki::start(options);
  ASSERT_TRUE(loki.has_value()) << loki.error();
  loki_ = std::move(*loki);
  ContainerLog a(log_root_, "ns", "pod-t", "11111111-2222-3333-4444-555555555560", "app");
  startAgent({"--loki-tenant", "team-a"});
  constexpr int kLines = 200;
  for (int n = 1; n <= kLines; ++n) a.write(n);
  expectAll({&a}, kLines);
  const auto reqs = loki_->requests();
  ASSERT_FALSE(reqs.empty());
  for (const auto& r : reqs) {
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.header("X-Scope-OrgID"), "team-a");
  }
}

TEST_F(LogsEndToEnd, RejectedBatchIsDroppedAndNeverResent) {
  ContainerLog a(log_root_, "ns", "pod-4", "11111111-2222-3333-4444-555555555556", "app");
  loki_->answer(FakeLokiAnswer::withStatus(400), 1);
  startAgent();
  for (int n = 1; n <= 10; ++n) a.write(n);
  ASSERT_TRUE(loki_->waitForRequests(1, 20s));
  std::this_thread::sleep_for(1500ms);
  for (int n = 11; n <= 20; ++n) a.write(n);
  ASSERT_TRUE(loki_->waitForEntries(1, 20s));
  std::this_thread::sleep_for(1s);
  const auto reqs = loki_->requests();
  ASSERT_GE(reqs.size(), 2U);
  EXPECT_EQ(reqs[0].status, 400);
  for (std::size_t i = 1; i < reqs.size(); ++i) EXPECT_NE(reqs[i].status, 400);
  // The rejected lines never came back; the later ones all did.
  const auto got = loki_->entries(a.stream("test-node"));
  for (const auto& e : got) {
    const int n = std::stoi(e.line.substr(std::string("app line ").size()));
    EXPECT_GT(n, 0);
  }
  EXPECT_FALSE(got.empty());
  EXPECT_LE(got.size(), 20U);
  EXPECT_GE(agentMetric("nodewarden_log_lines_dropped_total{reason=\"rejected\"}"), 1.0);
}

// The kubelet's /pods (over TLS, with the service-account token) names the pod's Job: its lines
// carry job="<name>" from the first one on, while a pod that is no Job's has no job label.
TEST_F(LogsEndToEnd, JobPodsLinesCarryTheJobLabelFromTheKubelet) {
  const auto pki = nodewarden::testing::makeLoopbackCertificate(base_ / "pki");
  ASSERT_TRUE(pki.has_value()) << pki.error();
  nodewarden::testing::FakeKubeletOptions ko;
  ko.token = "node-agent-token";
  ko.certificate_file = pki->certificate;
  ko.key_file = pki->key;
  ko.pod_list = slurp(fs::path(NODEWARDEN_FIXTURES) / "kubelet/podlist_jobs.json");
  auto kubelet = nodewarden::testing::FakeKubelet::start(ko);
  ASSERT_TRUE(kubelet.has_value()) << kubelet.error();
  std::ofstream(base_ / "token") << "node-agent-token\n";
  writeConfig("kubernetes:\n  kubelet_url: " + (*kubelet)->url() + "\n  token_file: " +
              (base_ / "token").string() + "\n  kubelet_insecure_skip_verify: true\n");
  // In podlist_jobs.json: analytics/nightly-report-28504320-7xk2p, owned by Job
  // nightly-report-28504320.
  ContainerLog job(log_root_, "analytics", "nightly-report-28504320-7xk2p",
                   "57471fdd-e841-4f2d-a0d1-79af5f0f7ebd", "report");
  ContainerLog web(log_root_, "web", "frontend-0", "11111111-2222-3333-4444-555555555559", "nginx");
  for (int n = 1; n <= 50; ++n) {
    job.write(n);
    web.write(n);
  }
  startAgent();
  ASSERT_TRUE(loki_->waitForEntries(100, 30s)) << loki_->entryCount();
  Labels job_stream = job.stream("test-node");
  job_stream.insert(job_stream.begin() + 1, {"job", "nightly-report-28504320"});
  const Check c = verifyStream(loki_->entries(job_stream), "report", 50);
  EXPECT_TRUE(c.ok) << c.why;
  EXPECT_EQ(loki_->entries(job.stream("test-node")).size(), 0U) << "no line without the label";
  EXPECT_EQ(loki_->entries(web.stream("test-node")).size(), 50U);
  bool authorized = false;
  for (const auto& r : (*kubelet)->requests()) {
    authorized = authorized || r.authorization == "Bearer node-agent-token";
  }
  EXPECT_TRUE(authorized);
}

// kubernetes.pod_labels: the listed labels a pod has (from the kubelet's /pods) are stream labels
// of its lines, sanitized, from the first line on; a pod without them gets none.
TEST_F(LogsEndToEnd, AllowListedPodLabelsAreStreamLabels) {
  const std::string pki = (base_ / "pki").string();
  fs::create_directories(pki);
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + pki +
      "/key.pem -out " + pki + "/cert.pem -days 1 -subj /CN=127.0.0.1 " +
      "-addext subjectAltName=IP:127.0.0.1 > " + pki + "/openssl.log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(pki + "/openssl.log");
  nodewarden::testing::FakeKubeletOptions ko;
  ko.token = "node-agent-token";
  ko.certificate_file = pki + "/cert.pem";
  ko.key_file = pki + "/key.pem";
  ko.pod_list = slurp(fs::path(NODEWARDEN_FIXTURES) / "kubelet/podlist_workloads.json");
  auto kubelet = nodewarden::testing::FakeKubelet::start(ko);
  ASSERT_TRUE(kubelet.has_value()) << kubelet.error();
  std::ofstream(base_ / "token") << "node-agent-token\n";
  writeConfig("kubernetes:\n  kubelet_url: " + (*kubelet)->url() +
              "\n  token_file: " + (base_ / "token").string() +
              "\n  kubelet_insecure_skip_verify: true\n"
              "  pod_labels: [app, app.kubernetes.io/name]\n");
  // In podlist_workloads.json: shop/checkout-... has app=checkout; monitoring/node-exporter-...
  // has app.kubernetes.io/name=node-exporter.
  ContainerLog checkout(log_root_, "shop", "checkout-6d8f9c7b5-x2x9q",
                        "a3a13f8e-917d-4e01-af8b-4d3e59403d34", "checkout");
  ContainerLog exporter(log_root_, "monitoring", "node-exporter-8wz5k",
                        "5930b7ac-5812-443a-abfc-2c49c2f0d045", "node-exporter");
  ContainerLog other(log_root_, "web", "frontend-0", "11111111-2222-3333-4444-555555555559",
                     "nginx");
  for (int n = 1; n <= 30; ++n) {
    checkout.write(n);
    exporter.write(n);
    other.write(n);
  }
  startAgent();
  ASSERT_TRUE(loki_->waitForEntries(90, 30s)) << loki_->entryCount();
  Labels checkout_stream = checkout.stream("test-node");
  checkout_stream.insert(checkout_stream.begin(), {"app", "checkout"});
  Check c = verifyStream(loki_->entries(checkout_stream), "checkout", 30);
  EXPECT_TRUE(c.ok) << c.why;
  Labels exporter_stream = exporter.stream("test-node");
  exporter_stream.insert(exporter_stream.begin(), {"app_kubernetes_io_name", "node-exporter"});
  c = verifyStream(loki_->entries(exporter_stream), "node-exporter", 30);
  EXPECT_TRUE(c.ok) << c.why;
  EXPECT_EQ(loki_->entries(checkout.stream("test-node")).size(), 0U) << "no line without them";
  EXPECT_EQ(loki_->entries(other.stream("test-node")).size(), 30U);
}

TEST_F(LogsEndToEnd, TooLargeIsSplitAndEverythingArrives) {
  ContainerLog a(log_root_, "ns", "pod-5", "11111111-2222-3333-4444-555555555557", "app");
  loki_->setMaxEntriesPerRequest(50);
  startAgent();
  constexpr int kLines = 2000;
  for (int n = 1; n <= kLines; ++n) a.write(n);
  expectAll({&a}, kLines);
  bool saw413 = false;
  for (const auto& r : loki_->requests()) saw413 = saw413 || r.status == 413;
  EXPECT_TRUE(saw413);
}

// loki.encoding: json. Every line arrives exactly as written, JSON's special characters and a
// line that is not UTF-8 included (Loki's JSON API takes only UTF-8: the byte becomes U+FFFD), in
// gzipped JSON bodies; batches Loki refuses as too large are split from their JSON bodies.
TEST_F(LogsEndToEnd, JsonEncodingDeliversEveryLineExactly) {
  writeConfig("loki:\n  encoding: json\n");
  ContainerLog a(log_root_, "ns", "pod-j", "11111111-2222-3333-4444-555555555561", "app");
  const fs::path raw_dir = log_root_ / "ns_pod-r_11111111-2222-3333-4444-555555555562" / "raw";
  fs::create_directories(raw_dir);
  loki_->setMaxEntriesPerRequest(50);
  startAgent();
  constexpr int kLines = 3000;
  for (int n = 1; n <= kLines; ++n) a.write(n);
  // Written by hand: quotes, backslashes, a tab, control bytes, UTF-8, and one split into partials.
  std::vector<std::string> want;
  {
    std::ofstream raw(raw_dir / "0.log");
    for (int n = 1; n <= 100; ++n) {
      std::string line = "n=" + std::to_string(n) +
                         " \"quoted\" back\\slash\ttab \x01\x1f\x7f "
                         "caf\xc3\xa9 \xf0\x9f\x93\x9c {\"json\":[1,2]}";
      char ts[64];
      std::snprintf(ts, sizeof ts, "2026-11-21T11:00:00.%06dZ", n);
      if (n % 10 == 0) {
        raw << ts << " stdout P " << line.substr(0, 9) << "\n";
        raw << ts << " stdout F " << line.substr(9) << "\n";
      } else {
        raw << ts << " stdout F " << line << "\n";
      }
      want.push_back(line);
    }
    raw << "2026-11-21T11:00:01.000000Z stdout F not utf-8: \xff\xfe end\n";
    want.emplace_back("not utf-8: \xef\xbf\xbd\xef\xbf\xbd end");
  }
  expectAll({&a}, kLines);
  const Labels raw_stream{{"container", "raw"},
                          {"namespace", "ns"},
                          {"node", "test-node"},
                          {"pod", "pod-r"},
                          {"stream", "stdout"}};
  ASSERT_TRUE(loki_->waitForEntries(kLines + want.size(), 30s));
  std::vector<std::string> got;
  std::set<std::pair<std::int64_t, std::string>> seen;
  for (const auto& e : loki_->entries(raw_stream)) {
    if (seen.insert({e.timestamp_ns, e.line}).second) got.push_back(e.line);
  }
  EXPECT_EQ(got, want);
  bool saw413 = false;
  for (const auto& r : loki_->requests()) {
    saw413 = saw413 || r.status == 413;
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.content_encoding, "gzip");
    EXPECT_TRUE(r.error.empty() || r.status == 413) << r.error;
  }
  EXPECT_TRUE(saw413);
}

// A spool written with one encoding, the agent restarted with the other: the batches spooled
// before are sent in the new encoding, and no line is lost or sent undecodable.
TEST_F(LogsEndToEnd, EncodingChangedAcrossRestartsLosesNothing) {
  ContainerLog a(log_root_, "ns", "pod-e", "11111111-2222-3333-4444-555555555563", "app");
  constexpr int kPerRun = 2000;
  int written = 0;
  std::size_t before = 0;
  for (const std::string encoding : {"protobuf", "json", "protobuf", "json"}) {
    writeConfig("loki:\n  encoding: " + encoding + "\n");
    loki_->answer(FakeLokiAnswer::ok());
    startAgent();
    // What the last run spooled in the other encoding arrives, sent in this one.
    if (written > 0) expectAll({&a}, written);
    if (written < 3 * kPerRun) {
      // Loki goes down: the next lines are spooled in this encoding when the agent stops.
      loki_->answer(FakeLokiAnswer::withStatus(503));
      const auto sent = loki_->requests().size();
      for (int n = 0; n < kPerRun; ++n) a.write(++written);
      ASSERT_TRUE(loki_->waitForRequests(sent + 2, 20s)) << "the agent kept retrying";
    }
    agent_.stop(5s);
    const std::string type = encoding == "json" ? "application/json" : "application/x-protobuf";
    const auto reqs = loki_->requests();
    for (std::size_t i = before; i < reqs.size(); ++i) {
      EXPECT_EQ(reqs[i].content_type, type) << encoding << " run, request " << i;
      EXPECT_NE(reqs[i].status, 400) << reqs[i].error;
    }
    before = reqs.size();
  }
  EXPECT_EQ(written, 3 * kPerRun);
}

}  // namespace

namespace {

std::vector<std::string> fixtureLines(const std::string& name) {
  std::ifstream in(std::string(NODEWARDEN_FIXTURES) + "/logs/multiline/" + name);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string joinLines(const std::vector<std::string>& lines, std::size_t first, std::size_t last) {
  std::string out;
  for (std::size_t i = first; i <= last; ++i) out += (i > first ? "\n" : "") + lines[i];
  return out;
}

// A stream's entries in arrival order without Loki's exact duplicates.
std::vector<std::string> uniqueLines(const std::vector<LogEntry>& got) {
  std::set<std::pair<std::int64_t, std::string>> seen;
  std::vector<std::string> out;
  for (const auto& e : got) {
    if (seen.insert({e.timestamp_ns, e.line}).second) out.push_back(e.line);
  }
  return out;
}

}  // namespace

// Real JVM and Python traces (tests/fixtures/logs/multiline) written by a "runtime" into a CRI
// file: frames split into P/F records, the JVM trace cut by a kubelet rotation in its middle,
// the Python traceback on stderr of the same file interleaved with it. Loki must get each trace
// as one entry with its first line's timestamp, and every plain line alone.
TEST_F(LogsEndToEnd, StackTracesAreJoinedAcrossPartialsAndRotation) {
  writeConfig("    multiline:\n      flush_timeout: 5s\n");
  ContainerLog log(log_root_, "spark", "driver-0", "uid-ml", "driver");
  startAgent();
  ASSERT_TRUE(waitReady());
  const auto jvm = fixtureLines("jvm_trace.txt");
  const auto py = fixtureLines("python_traceback.txt");
  ASSERT_EQ(jvm.size(), 29U);
  ASSERT_GT(py.size(), 20U);
  int n = 0;
  int header_record = 0;
  std::size_t p = 0;
  for (std::size_t i = 0; i < jvm.size(); ++i) {
    // Every third line of the JVM trace as two partial records.
    log.writeText(++n, jvm[i], "stdout", i % 3 == 0 ? jvm[i].size() / 2 : 0);
    if (i == 2) header_record = n;
    if (i == 8) log.rotateRename();   // inside the first trace, after a frame
    if (i == 20) log.rotateRename();  // inside the second
    // The other stream of the same file, interleaved (its partials too).
    for (int k = 0; k < 2 && p < py.size(); ++k, ++p) {
      log.writeText(++n, py[p], "stderr", p % 4 == 1 ? 3 : 0);
    }
  }
  for (; p < py.size(); ++p) log.writeText(++n, py[p], "stderr");
  log.writeText(++n, "stdout done");
  log.writeText(++n, "stderr done", "stderr");

  const std::vector<std::string> want_out = {
      jvm[0], jvm[1], joinLines(jvm, 2, 14), jvm[15], joinLines(jvm, 16, 28), "stdout done"};
  const std::vector<std::string> want_err = {py[0], py[1], joinLines(py, 2, py.size() - 1),
                                             "stderr done"};
  Labels out = log.stream("test-node");
  Labels err = out;
  err.back().second = "stderr";
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline &&
         (uniqueLines(loki_->entries(out)).size() < want_out.size() ||
          uniqueLines(loki_->entries(err)).size() < want_err.size())) {
    loki_->waitForEntries(1000000, 100ms);
  }
  EXPECT_EQ(uniqueLines(loki_->entries(out)), want_out);
  EXPECT_EQ(uniqueLines(loki_->entries(err)), want_err);
  // The joined entry carries its first line's timestamp (record n: 10:00:00.<n microseconds>).
  for (const auto& e : loki_->entries(out)) {
    if (e.line.starts_with("java.lang.RuntimeException")) {
      EXPECT_EQ(e.timestamp_ns % 1000000000, header_record * 1000);
    }
  }
  EXPECT_GE(agentMetric("nodewarden_log_multiline_joined_lines_total{rule=\"jvm\"}"), 24);
  EXPECT_GE(agentMetric("nodewarden_log_multiline_joined_lines_total{rule=\"python\"}"),
            static_cast<double>(py.size() - 3));
}
