// bench_kill9_duplicates: how many lines the real agent sends twice per `kill -9` and restart, at
// a given line rate, with and without a Loki outage just before the kill; and that it loses none.
//
// Writers append numbered CRI lines (distinct timestamps) to N container logs at RATE lines per
// second each, rotating them kubelet's way (rename, new file; the oldest rotated file deleted).
// The agent ships to a FakeLoki in this process, which counts every entry it accepts. K times:
// the agent runs for a random while (or a random while, then Loki answers 500 for OUTAGE ms, then
// a random moment after it is back), is killed with SIGKILL and started again on the same state
// directory. The kill's duplicates are the entries accepted twice between just before the kill
// and the moment every stream has arrived up to what was written when the agent came back (a
// stream arrives in order, so by then whatever the restart re-sent or re-read has arrived). At the
// end the writers stop and every line must arrive: lost lines are printed (they must be 0).
//
// What a reader gets wrong: a duplicate here is an exact one (same timestamp, same line), which
// Loki drops on ingestion; it costs bandwidth and ingestion work, never correctness. The figure in
// seconds is duplicates / (files x rate): how many seconds of the node's lines a kill sends again.
// The agent's bound is one commit interval of lines plus the batch in flight (kLogCommitInterval +
// kLogCommitGrace + batch_wait at a rate whose batches close on age). Figures, never pass/fail.
//
// usage: bench_kill9_duplicates [--agent=PATH] [--files=3] [--rate=2000] [--kills=8]
//                               [--mode=both|plain|outage] [--outage-ms=3000]
//                               [--rotate-lines=5000] [--seed=N] [--tmp=DIR] [--verbose]
//   --verbose: per kill and stream, the lines sent twice, in seconds before the kill
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pipeline/log_batcher.h"
#include "tests/fakes/fake_loki.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nodewarden::Labels;
using nodewarden::LogEntry;
using nodewarden::testing::ChildProcess;
using nodewarden::testing::FakeLoki;
using nodewarden::testing::FakeLokiAnswer;

// ~120-byte lines: the number first, so the receiver finds it without parsing the rest.
constexpr std::string_view kFiller =
    " level=info msg=\"consumer committed offset\" topic=events partition=7 lag=42 worker=3";

// One container's log: whole records appended, kubelet's rename rotation, a few rotated files kept.
class ContainerLog {
 public:
  ContainerLog(const fs::path& root, int index, int keep_rotated)
      : name_("c" + std::to_string(index)), keep_rotated_(keep_rotated) {
    dir_ = root /
           ("bench_pod-" + std::to_string(index) + "_00000000-0000-0000-0000-" +
            std::to_string(100000000000 + index)) /
           name_;
    fs::create_directories(dir_);
    out_.open(dir_ / "0.log", std::ios::app);
  }
  [[nodiscard]] const std::string& name() const { return name_; }

  void write(long n) {
    char ts[64];
    // Distinct, increasing timestamps: n microseconds after a fixed second.
    std::snprintf(ts, sizeof ts, "2026-11-21T10:%02ld:%02ld.%06ldZ", (n / 60000000) % 60,
                  (n / 1000000) % 60, n % 1000000);
    out_ << ts << " stdout F " << name_ << " line " << n << kFiller << '\n';
  }
  void flush() { out_.flush(); }
  void rotate() {
    out_.close();
    const fs::path rotated = dir_ / ("0.log." + std::to_string(++rotations_));
    fs::rename(dir_ / "0.log", rotated);
    rotated_.push_back(rotated);
    if (static_cast<int>(rotated_.size()) > keep_rotated_) {
      std::error_code ec;
      fs::remove(rotated_.front(), ec);
      rotated_.erase(rotated_.begin());
    }
    out_.open(dir_ / "0.log", std::ios::app);
  }

 private:
  std::string name_;
  int keep_rotated_;
  fs::path dir_;
  std::ofstream out_;
  std::vector<fs::path> rotated_;
  int rotations_ = 0;
};

// What the receiver accepted, per container: how often each line number arrived.
class Tally {
 public:
  explicit Tally(std::size_t files) : files_(files) {}
  void add(const Labels& stream, const LogEntry& entry) {
    std::string_view container;
    for (const auto& [k, v] : stream) {
      if (k == "container") container = v;
    }
    const std::string_view line = entry.line;
    const auto at = line.find(" line ");
    if (container.size() < 2 || at == std::string_view::npos) return;
    const std::size_t file = std::strtoul(std::string(container.substr(1)).c_str(), nullptr, 10);
    const long n = std::strtol(std::string(line.substr(at + 6, 20)).c_str(), nullptr, 10);
    if (file >= files_.size() || n <= 0) return;
    std::lock_guard lock(mu_);
    File& f = files_[file];
    if (f.count.size() <= static_cast<std::size_t>(n)) f.count.resize(n + 1 + (n >> 1), 0);
    if (f.count[n]++ != 0) {
      ++duplicates_;
      f.dup_min = std::min(f.dup_min, n);
      f.dup_max = std::max(f.dup_max, n);
    } else {
      ++unique_;
    }
    while (f.prefix + 1 < static_cast<long>(f.count.size()) && f.count[f.prefix + 1] != 0) {
      ++f.prefix;
    }
  }
  [[nodiscard]] std::uint64_t duplicates() const {
    std::lock_guard lock(mu_);
    return duplicates_;
  }
  [[nodiscard]] std::uint64_t unique() const {
    std::lock_guard lock(mu_);
    return unique_;
  }
  // The smallest and largest line number of each stream sent again since the last call.
  std::vector<std::pair<long, long>> takeDuplicateRanges() {
    std::lock_guard lock(mu_);
    std::vector<std::pair<long, long>> out;
    for (auto& f : files_) {
      out.emplace_back(f.dup_max == 0 ? 0 : f.dup_min, f.dup_max);
      f.dup_min = std::numeric_limits<long>::max();
      f.dup_max = 0;
    }
    return out;
  }
  // Every stream has every line 1..upto[i].
  [[nodiscard]] bool complete(const std::vector<long>& upto) const {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < files_.size(); ++i) {
      if (files_[i].prefix < upto[i]) return false;
    }
    return true;
  }

 private:
  struct File {
    std::vector<std::uint32_t> count;
    long prefix = 0;  // every line 1..prefix arrived
    long dup_min = std::numeric_limits<long>::max();
    long dup_max = 0;
  };
  mutable std::mutex mu_;
  std::vector<File> files_;
  std::uint64_t duplicates_ = 0;
  std::uint64_t unique_ = 0;
};

// Appends rate lines per second to every log, in 10 ms steps, rotating every rotate_lines lines.
class Writers {
 public:
  Writers(const fs::path& root, int files, int rate, long rotate_lines)
      : rate_(rate), rotate_lines_(rotate_lines) {
    for (int i = 0; i < files; ++i) logs_.push_back(std::make_unique<ContainerLog>(root, i, 5));
    written_.assign(static_cast<std::size_t>(files), 0);
  }
  ~Writers() { stop(); }
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::vector<long> written() const {
    std::lock_guard lock(mu_);
    return written_;
  }

 private:
  void run() {
    const auto start = Clock::now();
    long done = 0;  // per file
    while (!stop_) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const long due = static_cast<long>(elapsed * rate_);
      for (long n = done + 1; n <= due; ++n) {
        for (auto& log : logs_) {
          log->write(n);
          if (n % rotate_lines_ == 0) log->rotate();
        }
      }
      for (auto& log : logs_) log->flush();
      if (due > done) {
        std::lock_guard lock(mu_);
        for (auto& w : written_) w = due;
        done = due;
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  int rate_;
  long rotate_lines_;
  std::vector<std::unique_ptr<ContainerLog>> logs_;
  mutable std::mutex mu_;
  std::vector<long> written_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Options {
  fs::path agent = NODEWARDEN_AGENT_BINARY;
  int files = 3;
  int rate = 2000;
  int kills = 8;
  std::string mode = "both";
  int outage_ms = 3000;
  long rotate_lines = 5000;
  unsigned seed = std::random_device{}();
  fs::path tmp = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
  bool verbose = false;  // per kill, which lines of each stream came twice
};

class Run {
 public:
  Run(Options o, fs::path work) : o_(std::move(o)), work_(std::move(work)), rng_(o_.seed) {}

  int main() {
    nodewarden::testing::FakeLokiOptions lo;
    lo.on_entry = [this](const Labels& s, const LogEntry& e) { tally_.add(s, e); };
    auto loki = FakeLoki::start(lo);
    if (!loki) return fail("fake Loki: " + loki.error());
    loki_ = std::move(*loki);
    fs::create_directories(work_ / "pods");
    std::ofstream(work_ / "config.yaml") << "node_name: bench-node\n"
                                            "collectors:\n"
                                            "  cgroup:\n    enabled: false\n"
                                            "  node:\n    enabled: false\n"
                                            "  journal:\n    enabled: false\n"
                                            "  logs:\n    enabled: true\n"
                                            "    rescan_interval: 1s\n";
    writers_ = std::make_unique<Writers>(work_ / "pods", o_.files, o_.rate, o_.rotate_lines);
    if (!startAgent()) return 1;
    writers_->start();

    const double per_second = static_cast<double>(o_.files) * o_.rate;
    // The batches delivered since the last commit (the first appended up to commit_grace before
    // it) plus the one in flight, each at most batch_wait (1 s, the agent's default) of lines.
    const double bound_s =
        std::chrono::duration<double>(nodewarden::kLogCommitInterval + nodewarden::kLogCommitGrace)
            .count() +
        1.0;
    std::printf(
        "bench_kill9_duplicates: %s, %d files x %d lines/s, %d kills (%s, outage %d ms), "
        "seed %u\n",
        o_.agent.c_str(), o_.files, o_.rate, o_.kills, o_.mode.c_str(), o_.outage_ms, o_.seed);
    std::printf(
        "  bound: commit interval + commit grace + one batch (batch_wait 1 s) = %.2f s = %.0f "
        "lines\n",
        bound_s, bound_s * per_second);
    std::printf("  %-4s %-7s %-22s %10s %9s\n", "kill", "mode", "kill at", "duplicates", "seconds");
    std::map<std::string, std::vector<std::uint64_t>> by_mode;
    for (int k = 1; k <= o_.kills; ++k) {
      const bool outage = o_.mode == "outage" || (o_.mode == "both" && k % 2 == 0);
      std::string when;
      if (outage) {
        sleepRandom(1000, 2000);
        loki_->answer(FakeLokiAnswer::withStatus(500));
        std::this_thread::sleep_for(std::chrono::milliseconds(o_.outage_ms));
        loki_->answer(FakeLokiAnswer::ok());
        const int after = sleepRandom(0, 2500);
        when = std::to_string(after) + " ms after the outage";
      } else {
        const int after = sleepRandom(1500, 4000);
        when = std::to_string(after) + " ms after start";
      }
      const std::uint64_t before = tally_.duplicates();
      tally_.takeDuplicateRanges();
      ::kill(agent_.pid(), SIGKILL);
      const std::vector<long> at_kill = writers_->written();
      agent_.stop(5s);
      if (!startAgent()) return 1;
      // Everything written when the agent came back has arrived: the restart's re-sends and
      // re-reads came before it (each stream arrives in order).
      const std::vector<long> mark = writers_->written();
      if (!waitComplete(mark, 120s))
        return fail("the lines written before the restart did not all arrive");
      const std::uint64_t dups = tally_.duplicates() - before;
      by_mode[outage ? "outage" : "plain"].push_back(dups);
      std::printf("  %-4d %-7s %-22s %10llu %9.2f", k, outage ? "outage" : "plain", when.c_str(),
                  static_cast<unsigned long long>(dups), static_cast<double>(dups) / per_second);
      if (o_.verbose) {
        // Per stream, the lines sent again, in seconds before the kill (written then).
        const auto ranges = tally_.takeDuplicateRanges();
        for (std::size_t i = 0; i < ranges.size(); ++i) {
          if (ranges[i].second == 0) continue;
          std::printf("  c%zu: -%.2f..-%.2f s", i,
                      static_cast<double>(at_kill[i] - ranges[i].first) / o_.rate,
                      static_cast<double>(at_kill[i] - ranges[i].second) / o_.rate);
        }
      }
      std::printf("\n");
      std::fflush(stdout);
    }
    writers_->stop();
    const std::vector<long> written = writers_->written();
    std::uint64_t total = 0;
    for (long w : written) total += static_cast<std::uint64_t>(w);
    waitComplete(written, 120s);
    const std::uint64_t lost = total - std::min(total, tally_.unique());
    for (auto& [mode, v] : by_mode) {
      std::sort(v.begin(), v.end());
      const std::uint64_t median = v[v.size() / 2];
      std::printf("  %-7s kills %zu: duplicates per kill median %llu (%.2f s), max %llu (%.2f s)\n",
                  mode.c_str(), v.size(), static_cast<unsigned long long>(median),
                  static_cast<double>(median) / per_second,
                  static_cast<unsigned long long>(v.back()),
                  static_cast<double>(v.back()) / per_second);
    }
    std::printf("  lines written %llu, arrived %llu, lost %llu, duplicates in all %llu\n",
                static_cast<unsigned long long>(total),
                static_cast<unsigned long long>(tally_.unique()),
                static_cast<unsigned long long>(lost),
                static_cast<unsigned long long>(tally_.duplicates()));
    agent_.stop(5s);
    return lost == 0 ? 0 : 1;
  }

 private:
  int fail(const std::string& why) {
    std::fprintf(stderr, "bench_kill9_duplicates: %s (agent log: %s)\n", why.c_str(),
                 (work_ / "agent.log").c_str());
    keep_ = true;
    return 1;
  }
  int sleepRandom(int lo_ms, int hi_ms) {
    const int ms = std::uniform_int_distribution<int>(lo_ms, hi_ms)(rng_);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  }
  bool startAgent() {
    const int port = nodewarden::testing::freeLoopbackPort();
    nodewarden::testing::SpawnOptions so;
    so.output = work_ / "agent.log";
    auto child = ChildProcess::start(
        {o_.agent.string(), "run", "--config", (work_ / "config.yaml").string(), "--listen",
         "127.0.0.1:" + std::to_string(port), "--log-root", (work_ / "pods").string(),
         "--state-dir", (work_ / "state").string(), "--loki-url", loki_->pushUrl()},
        so);
    if (!child) {
      fail("start " + o_.agent.string() + ": " + child.error());
      return false;
    }
    agent_ = std::move(*child);
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline) {
      auto r =
          nodewarden::testing::httpGet("http://127.0.0.1:" + std::to_string(port) + "/readyz", 1s);
      if (r && r->status == 200) return true;
      if (!agent_.running()) break;
      std::this_thread::sleep_for(20ms);
    }
    fail("the agent did not become ready");
    return false;
  }
  bool waitComplete(const std::vector<long>& upto, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (tally_.complete(upto)) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

 public:
  bool keep_ = false;

 private:
  Options o_;
  fs::path work_;
  std::mt19937 rng_;
  Tally tally_{static_cast<std::size_t>(o_.files)};
  std::unique_ptr<FakeLoki> loki_;
  std::unique_ptr<Writers> writers_;
  ChildProcess agent_;
};

int usage() {
  std::fprintf(stderr,
               "usage: bench_kill9_duplicates [--agent=PATH] [--files=3] [--rate=2000] "
               "[--kills=8] [--mode=both|plain|outage] [--outage-ms=3000] [--rotate-lines=5000] "
               "[--seed=N] [--tmp=DIR] [--verbose]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string_view prefix) -> std::optional<std::string> {
      if (a.substr(0, prefix.size()) != prefix) return std::nullopt;
      return std::string(a.substr(prefix.size()));
    };
    if (auto v = value("--agent=")) {
      o.agent = *v;
    } else if (auto v1 = value("--files=")) {
      o.files = std::atoi(v1->c_str());
    } else if (auto v2 = value("--rate=")) {
      o.rate = std::atoi(v2->c_str());
    } else if (auto v3 = value("--kills=")) {
      o.kills = std::atoi(v3->c_str());
    } else if (auto v4 = value("--mode=")) {
      o.mode = *v4;
    } else if (auto v5 = value("--outage-ms=")) {
      o.outage_ms = std::atoi(v5->c_str());
    } else if (auto v6 = value("--rotate-lines=")) {
      o.rotate_lines = std::atol(v6->c_str());
    } else if (auto v7 = value("--seed=")) {
      o.seed = static_cast<unsigned>(std::strtoul(v7->c_str(), nullptr, 10));
    } else if (auto v8 = value("--tmp=")) {
      o.tmp = *v8;
    } else if (a == "--verbose") {
      o.verbose = true;
    } else {
      return usage();
    }
  }
  if (o.files <= 0 || o.rate <= 0 || o.kills <= 0 || o.outage_ms < 0 || o.rotate_lines <= 0 ||
      (o.mode != "both" && o.mode != "plain" && o.mode != "outage")) {
    return usage();
  }
  // libcurl in the agent must not send 127.0.0.1 through a proxy from the environment.
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
  std::string tmpl = (o.tmp / "nodewarden-kill9-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path work = tmpl;
  int rc = 0;
  bool keep = false;
  {
    Run run(o, work);
    rc = run.main();
    keep = run.keep_;
  }
  std::error_code ec;
  if (!keep) fs::remove_all(work, ec);
  return rc;
}
