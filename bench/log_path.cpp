// bench_log_path: what the agent's log path costs per byte of container logs, side by side with
// the least any shipper must do (the floor) and with Fluent Bit's published figure:
//
//   floor         pread() every file in 64 KiB chunks + snappy-compress the bytes
//   parse         LogTailer::poll into a sink that only counts (discovery, reading, CRI parsing,
//                 joining partial records, building entries; no batching)
//   full          LogTailer -> the agent's default stages (MultilineStage, RateLimitStage) ->
//                 LogTenantRouter (one tenant) -> LogBatcher (push body) -> Spool -> LogShipper ->
//                 LokiExporter (protobuf + snappy over HTTP) -> FakeLoki, until every line is
//                 acknowledged; the spool, the batcher and the positions file set as the agent sets
//                 them (logSpoolOptions, kLogCommitInterval: fdatasync and positions once a
//                 second). A line the rate limit drops marks the run incomplete: the defaults must
//                 let the whole corpus through.
//   parse+ratelimit  parse with a RateLimitStage (the defaults) before the counting sink
//   full-nofsync  the same with SpoolOptions::fsync = false (the spool's fsync cost)
//   full-json     "full" with loki.encoding: json (the batcher writes JSON entries, the body is
//                 gzipped once and spooled and sent as it is: exporters/loki/loki_json_body)
//   rules         the log rules alone, per rule kind, over the corpus's lines in memory (read once
//                 by the tailer): each redaction built-in, all of them, custom patterns, filters
//                 (CPU ns per line through the stage; no batching, nothing sent)
//   fluent-bit    only when env FLUENT_BIT names a binary: tail + cri multiline parser + loki
//   output
//                 to the same receiver (its CPU from /proc/<pid>/stat when every line arrived)
//
// What a reader gets wrong: the receiver runs in a forked child process, so its decoding is not
// in the figures (CLOCK_PROCESS_CPUTIME_ID of this process = every agent-side thread: tailer,
// batcher, spool, shipper, libcurl); on 2 shared cores it still competes for CPU, which shows in
// wall time, not in CPU seconds. The corpus is written just before the runs and stays in the page
// cache, so the floor is a memory copy plus snappy, not disk reads. Figures, never pass/fail.
// The process uses the agent's malloc settings (pipeline/allocator.h) unless --malloc=glibc:
// with glibc's dynamic thresholds the full path costs less than it does in the agent.
//
//   parse-multiline  the same into the multiline stage (agent defaults) into a sink that checks
//                 its joins: the corpus's stack traces one entry each, every other line alone
//
// The full runs put the agent's default log stages in front of the tenant router, as
// makeLogStages() does with a default config: multiline (unless --multiline=off), the rate limit
// and redaction with every built-in rule; --stages=none leaves them all out.
//
// usage: bench_log_path [--mib=300] [--pods=8] [--rounds=3] [--tmp=DIR] [--malloc=agent|glibc]
//                       [--multiline=on|off] [--stages=default|none]
//                       [--only=floor,parse,parse+ratelimit,parse-multiline,full,full-nofsync,
//                              full-json,fluent-bit,rules]
#include <fcntl.h>
#include <signal.h>
#include <snappy.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/log_corpus.h"
#include "collectors/logs/log_tailer.h"
#include "exporters/loki/loki_exporter.h"
#include "pipeline/allocator.h"
#include "pipeline/log_batcher.h"
#include "pipeline/log_filter.h"
#include "pipeline/log_multiline.h"
#include "pipeline/log_rate_limit.h"
#include "pipeline/log_record.h"
#include "pipeline/log_redaction.h"
#include "pipeline/log_shipper.h"
#include "pipeline/log_stage.h"
#include "pipeline/log_tenant_router.h"
#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"
#include "tests/fakes/fake_loki.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::ErrorReporter;
using nodewarden::Labels;
using nodewarden::LogCheckpoint;
using nodewarden::LogEntry;
using nodewarden::SelfMetrics;

constexpr std::size_t kTickReadBudget = 8 << 20;  // the agent's per-tick budget (log_pipeline.cpp)
constexpr double kFluentBitReference = 31.6;      // MiB per CPU-second, from the issue
constexpr double kTarget = 64.0;                  // MiB per CPU-second
// The issue's Fluent Bit figure on the JSON comparison (its Loki output sends JSON), and the JSON
// path's target: twice that.
constexpr double kFluentBitJsonReference = 31.1;
constexpr double kJsonTarget = 2 * kFluentBitJsonReference;
constexpr double kMiB = 1024.0 * 1024.0;
bool g_default_stages = true;  // --stages=default|none

// Lives in a MAP_SHARED page: the receiver child counts, this process reads.
struct ReceiverShared {
  std::atomic<std::uint64_t> entries{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<int> port{0};  // > 0 once listening, -1 on failure
};

// The receiver's and Fluent Bit's pids and the temp dir, for the signal thread's clean-up.
std::atomic<pid_t> g_receiver{0};
std::atomic<pid_t> g_fluent_bit{0};
fs::path g_tmp;  // set before the signal thread starts, never changed after

double monotonicSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double tv(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
}

struct Cost {
  double cpu_s = 0;
  double user_s = 0;
  double sys_s = 0;
  double wall_s = 0;
  double reader_s = -1;            // full runs: the reading thread's share of cpu_s (tail, batch,
                                   // encode, compress, spool append); the rest is the shipper's
  std::uint64_t lines = 0;         // lines delivered / acknowledged / received
  double spool_written_mib = -1;   // full runs: bytes the spool wrote to its files
  double sent_mib = -1;            // full runs: line bytes acknowledged
  std::uint64_t rate_limited = 0;  // full runs: lines the default rate limit dropped (must be 0)
  std::string note;                // empty when the run did all its work
};

class Meter {
 public:
  Meter() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    user0_ = tv(ru.ru_utime);
    sys0_ = tv(ru.ru_stime);
    cpu0_ = processCpuSeconds();
    wall0_ = monotonicSeconds();
  }
  [[nodiscard]] Cost stop() const {
    Cost c;
    c.wall_s = monotonicSeconds() - wall0_;
    c.cpu_s = processCpuSeconds() - cpu0_;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    c.user_s = tv(ru.ru_utime) - user0_;
    c.sys_s = tv(ru.ru_stime) - sys0_;
    return c;
  }

 private:
  double cpu0_ = 0, wall0_ = 0, user0_ = 0, sys0_ = 0;
};

// ---- the receiver child ----------------------------------------------------------------------

pid_t startReceiver(ReceiverShared* shared) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: no threads were started before the fork; SIGINT/SIGTERM/SIGHUP are blocked (inherited).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  nodewarden::testing::FakeLokiOptions options;
  options.on_entry = [shared](const Labels&, const LogEntry& entry) {
    shared->entries.fetch_add(1, std::memory_order_relaxed);
    shared->bytes.fetch_add(entry.line.size(), std::memory_order_relaxed);
  };
  auto fake = nodewarden::testing::FakeLoki::start(options);
  if (!fake) {
    std::fprintf(stderr, "receiver: %s\n", fake.error().c_str());
    shared->port.store(-1);
    _exit(1);
  }
  shared->port.store((*fake)->port());
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  const timespec period{0, 200'000'000};
  while (sigtimedwait(&set, nullptr, &period) < 0) {
    // The fake keeps every entry; forget them so its memory stays bounded (counted above).
    if ((*fake)->entryCount() > 200'000) (*fake)->clear();
  }
  fake->reset();
  _exit(0);
}

// ---- the runs -------------------------------------------------------------------------------

// --multiline=off: the full path without the multiline stage (as with collectors.logs.multiline
// disabled); on by default, as in the agent.
bool g_multiline = true;

// The stage as the agent builds it (agent/log_pipeline.cpp: the defaults, max_line_bytes).
std::unique_ptr<nodewarden::MultilineStage> makeMultiline(prometheus::Registry& registry) {
  nodewarden::MultilineOptions mo;
  mo.max_bytes = nodewarden::logs::LogTailerOptions{}.max_line_bytes;
  auto stage = nodewarden::MultilineStage::create(mo, nullptr, registry);
  return stage ? std::move(*stage) : nullptr;
}

struct Corpus {
  fs::path dir;
  nodewarden::bench::LogCorpusStats stats;
};

Cost runFloor(const Corpus& corpus, std::uint64_t& compressed) {
  constexpr std::size_t kChunk = 64 * 1024;
  std::vector<char> in(kChunk);
  std::vector<char> out(snappy::MaxCompressedLength(kChunk));
  const Meter meter;
  std::string note;
  for (const auto& file : corpus.stats.files) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      note = "open " + file.string() + ": " + std::strerror(errno);
      break;
    }
    off_t off = 0;
    for (;;) {
      const ssize_t n = ::pread(fd, in.data(), kChunk, off);
      if (n <= 0) break;
      std::size_t out_len = 0;
      snappy::RawCompress(in.data(), static_cast<std::size_t>(n), out.data(), &out_len);
      compressed += out_len;
      off += n;
    }
    ::close(fd);
  }
  Cost c = meter.stop();
  c.lines = corpus.stats.lines;
  c.note = note;
  return c;
}

class CountingSink final : public nodewarden::LogSink {
 public:
  bool accept(const Labels&, const LogEntry& entry, const LogCheckpoint&) override {
    ++lines;
    bytes += entry.line.size();
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return true; }
  std::uint64_t lines = 0;
  std::uint64_t bytes = 0;
};

// What the multiline stage made of the corpus: its stack traces ("Exception in thread ..." and
// 4-12 "\tat" frames on stderr) must come out as one entry each, every other line alone.
class JoinCheckingSink final : public nodewarden::LogSink {
 public:
  bool accept(const Labels&, const LogEntry& entry, const LogCheckpoint&) override {
    ++entries;
    const std::string_view line = entry.line;
    const bool trace = line.starts_with("Exception in thread ");
    if (line.starts_with("\tat ")) ++frames_alone;
    if (line.find('\n') == std::string_view::npos) {
      if (trace) ++traces_unjoined;
      if (!trace && !line.starts_with("\tat ")) ++plain;
      return true;
    }
    if (!trace) {
      ++false_joins;  // a line that is no trace header got a neighbour
      return true;
    }
    ++traces;
    std::size_t at = line.find('\n');
    while (at != std::string_view::npos) {
      const std::size_t next = line.find('\n', at + 1);
      const std::string_view part = line.substr(
          at + 1, next == std::string_view::npos ? std::string_view::npos : next - at - 1);
      if (part.starts_with("\tat ")) {
        ++frames_joined;
      } else {
        ++false_joins;  // a plain line joined to a trace
      }
      at = next;
    }
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return true; }
  std::uint64_t entries = 0, plain = 0, traces = 0, frames_joined = 0, false_joins = 0,
                frames_alone = 0, traces_unjoined = 0;
};

nodewarden::logs::LogTailerOptions tailerOptions(const Corpus& corpus) {
  nodewarden::logs::LogTailerOptions to;
  to.log_root = corpus.dir;
  to.node_name = "bench-node";
  return to;
}

// with_rate_limit: the lines go through a RateLimitStage with the defaults before the counting
// sink (parse+ratelimit): the difference to parse is the stage's cost per line.
Cost runParse(const Corpus& corpus, bool with_rate_limit = false) {
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CountingSink sink;
  std::unique_ptr<nodewarden::RateLimitStage> stage;
  nodewarden::LogSink* head = &sink;
  if (with_rate_limit) {
    stage = std::make_unique<nodewarden::RateLimitStage>(nodewarden::RateLimitOptions{}, nullptr,
                                                         self.registry(), errors);
    stage->setNext(sink);
    head = stage.get();
  }
  const Meter meter;
  nodewarden::logs::LogTailer tailer(tailerOptions(corpus), errors);
  int idle = 0;
  while (sink.lines < corpus.stats.lines && idle < 50) {
    if (stage) stage->flushDue(nodewarden::LogStage::Clock::now(), false);
    if (tailer.poll(*head, kTickReadBudget) == 0) {
      ++idle;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } else {
      idle = 0;
    }
  }
  Cost c = meter.stop();
  c.lines = sink.lines;
  if (stage) c.rate_limited = stage->droppedLines();
  if (sink.lines != corpus.stats.lines) {
    c.note = "delivered " + std::to_string(sink.lines) + " of " +
             std::to_string(corpus.stats.lines) + " lines";
  }
  return c;
}

// The tailer into the multiline stage into JoinCheckingSink: the stage's own cost is this run's
// CPU minus parse's, and the join counts say whether plain lines stayed alone.
Cost runParseMultiline(const Corpus& corpus) {
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  JoinCheckingSink sink;
  auto stage = makeMultiline(self.registry());
  Cost c;
  if (!stage) {
    c.note = "no multiline stage";
    return c;
  }
  stage->setNext(sink);
  const Meter meter;
  nodewarden::logs::LogTailer tailer(tailerOptions(corpus), errors);
  int idle = 0;
  std::uint64_t read = 0;
  while (read < corpus.stats.lines && idle < 50) {
    const std::size_t n = tailer.poll(*stage, kTickReadBudget);
    stage->flushDue(nodewarden::LogStage::Clock::now(), false);
    read = tailer.stats().lines_read;
    if (n == 0) {
      ++idle;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } else {
      idle = 0;
    }
  }
  stage->flushDue(nodewarden::LogStage::Clock::now(), true);
  c = meter.stop();
  c.lines = sink.entries;
  const std::uint64_t in = tailer.stats().lines_read;
  const std::uint64_t trace_lines = sink.traces + sink.frames_joined;
  std::printf(
      "multiline: %llu lines in, %llu entries out; plain lines in %llu, out alone %llu; %llu "
      "traces joined (%llu frames), false joins %llu, frames left alone %llu, traces not joined "
      "%llu\n",
      static_cast<unsigned long long>(in), static_cast<unsigned long long>(sink.entries),
      static_cast<unsigned long long>(in - trace_lines - sink.frames_alone - sink.traces_unjoined),
      static_cast<unsigned long long>(sink.plain), static_cast<unsigned long long>(sink.traces),
      static_cast<unsigned long long>(sink.frames_joined),
      static_cast<unsigned long long>(sink.false_joins),
      static_cast<unsigned long long>(sink.frames_alone),
      static_cast<unsigned long long>(sink.traces_unjoined));
  if (in != corpus.stats.lines || sink.false_joins != 0 || sink.frames_alone != 0 ||
      sink.traces_unjoined != 0) {
    c.note = "joins wrong or lines missing";
  }
  return c;
}

double counterValue(const prometheus::Registry& registry, std::string_view name) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    double sum = 0;
    for (const auto& m : family.metric) sum += m.counter.value;
    return sum;
  }
  return -1;
}

// The stages the agent puts in front of the batcher with a default config (agent/log_pipeline.cpp,
// makeLogStages()) after multiline and the rate limit: redaction with every built-in rule; no
// filters.
std::vector<std::unique_ptr<nodewarden::LogStage>> defaultStages(prometheus::Registry& registry) {
  std::vector<std::unique_ptr<nodewarden::LogStage>> stages;
  if (!g_default_stages) return stages;
  if (auto redaction = nodewarden::RedactionStage::create({}, nullptr, registry)) {
    stages.push_back(std::move(*redaction));
  }
  return stages;
}

// The agent's wiring (agent/log_pipeline.cpp), driven by a loop instead of the event loop: the
// tailer writes into the tenant router (one tenant, the agent's default without loki.tenants),
// whose path is the batcher, the spool and the shipper.
struct TenantParts final : nodewarden::LogTenantPath {
  std::unique_ptr<nodewarden::Spool> spool;
  std::unique_ptr<nodewarden::LokiExporter> exporter;
  std::unique_ptr<nodewarden::LogBatcher> batch;
  std::unique_ptr<nodewarden::LogShipper> shipper;
  ~TenantParts() override {
    if (shipper) shipper->stop(std::chrono::milliseconds(2000));
  }
  nodewarden::LogBatcher& batcher() override { return *batch; }
  void notifyShipper() override { shipper->notify(); }
  [[nodiscard]] bool drained() const override { return spool->batches() == 0; }
};

struct FullPath {
  TenantParts* parts = nullptr;  // owned by the router
  std::unique_ptr<nodewarden::LogTenantRouter> router;
  std::unique_ptr<nodewarden::logs::LogTailer> tailer;
  // The stages the agent puts before the batcher by default (agent/log_pipeline.cpp).
  std::unique_ptr<nodewarden::LogStageChain> stages;
};

Cost runFull(const Corpus& corpus, const fs::path& state, bool fsync, const std::string& url,
             const ReceiverShared& receiver, double timeout_s,
             nodewarden::LokiEncoding encoding = nodewarden::LokiEncoding::kProtobuf) {
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  auto& reg = self.registry();
  const std::uint64_t received0 = receiver.entries.load();
  const std::uint64_t expected = corpus.stats.lines;
  const Meter meter;
  const double reader0 = threadCpuSeconds();
  Cost c;

  FullPath p;
  FullPath* pp = &p;
  p.router = std::make_unique<nodewarden::LogTenantRouter>(
      nodewarden::LogTenantRouterOptions{}, nullptr,
      [&](const std::string&, nodewarden::LogBatcher::OnDurable on_durable)
          -> std::expected<std::unique_ptr<nodewarden::LogTenantPath>, std::string> {
        auto parts = std::make_unique<TenantParts>();
        nodewarden::SpoolOptions so = nodewarden::logSpoolOptions(state / "spool" / "logs");
        so.fsync = fsync;
        auto spool = nodewarden::Spool::open(so, errors);
        if (!spool) return std::unexpected("spool: " + spool.error());
        parts->spool = std::move(*spool);
        nodewarden::LokiExporterOptions lo;
        lo.url = url;
        lo.no_proxy = "*";  // never through a proxy from the environment
        lo.encoding = encoding;
        auto exporter = nodewarden::LokiExporter::create(lo);
        if (!exporter) return std::unexpected("loki: " + exporter.error());
        parts->exporter = std::move(*exporter);
        nodewarden::LogBatcherOptions bo;
        bo.spool_headroom_bytes = 2 * bo.batch_bytes;         // as the agent sets it
        bo.encoder = parts->exporter->batchEncoder();         // as the agent sets it
        bo.commit_interval = nodewarden::kLogCommitInterval;  // as the agent sets it
        bo.commit_grace = nodewarden::kLogCommitGrace;        // as the agent sets it
        parts->batch = std::make_unique<nodewarden::LogBatcher>(bo, *parts->spool,
                                                                std::move(on_durable), reg, errors);
        parts->shipper = std::make_unique<nodewarden::LogShipper>(
            nodewarden::LogShipperOptions{}, *parts->spool, *parts->exporter, reg, errors);
        pp->parts = parts.get();
        return parts;
      },
      [pp](const std::vector<LogCheckpoint>& cps) {
        if (pp->tailer) pp->tailer->commit(cps);
      },
      reg, errors);
  if (auto opened = p.router->open({}); !opened) {
    c.note = opened.error();
    return c;
  }
  auto to = tailerOptions(corpus);
  to.checkpoint_file = state / "checkpoints" / "logs.json";
  p.tailer = std::make_unique<nodewarden::logs::LogTailer>(to, errors);
  // The stages the agent puts before the router by default (agent/log_pipeline.cpp).
  std::vector<std::unique_ptr<nodewarden::LogStage>> stages;
  nodewarden::MultilineStage* stage = nullptr;
  if (g_multiline) {
    auto multiline = makeMultiline(reg);
    if (!multiline) {
      c.note = "no multiline stage";
      return c;
    }
    stage = multiline.get();
    stages.push_back(std::move(multiline));
  }
  auto rate_limit_stage = std::make_unique<nodewarden::RateLimitStage>(
      nodewarden::RateLimitOptions{}, nullptr, reg, errors);
  const nodewarden::RateLimitStage* rate_limit = rate_limit_stage.get();
  stages.push_back(std::move(rate_limit_stage));
  for (auto& redaction : defaultStages(reg)) stages.push_back(std::move(redaction));
  if (!g_default_stages) {
    stages.clear();
    stage = nullptr;
    rate_limit = nullptr;
  }
  p.stages = std::make_unique<nodewarden::LogStageChain>(std::move(stages), *p.router);
  nodewarden::LogSink& head = p.stages->head();
  p.parts->shipper->start();

  const double deadline = monotonicSeconds() + timeout_s;
  bool all_read = false;
  for (;;) {
    // Once every line is read the files are left alone while the shipper drains the spool: the
    // agent looks at them again on its next tick (200 ms), not every 2 ms as this loop waits.
    const std::size_t n = all_read ? 0 : p.tailer->poll(head, kTickReadBudget);
    const auto now = nodewarden::LogStage::Clock::now();
    p.stages->flushDue(now, false);
    p.router->flush();  // wakes the shipper when a batch went to the spool
    all_read = p.tailer->stats().lines_read >= expected;
    bool held = false;
    if (all_read) {
      held = !p.stages->flushDue(now, true) || (stage != nullptr && stage->heldStreams() != 0);
      p.router->flush(true);
    }
    if (all_read && !held && p.parts->batch->pendingBytes() == 0 &&
        p.parts->spool->batches() == 0) {
      break;
    }
    if (monotonicSeconds() > deadline) {
      c.note = "timed out";
      break;
    }
    if (n == 0 || all_read) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double reader_s = threadCpuSeconds() - reader0;
  c.rate_limited = rate_limit != nullptr ? rate_limit->droppedLines() : 0;
  p.parts->shipper->stop(std::chrono::milliseconds(2000));
  const Cost m = meter.stop();
  const double sent = counterValue(reg, "nodewarden_log_lines_sent_total");
  // Joined lines arrive as part of one entry.
  const double joined =
      stage != nullptr ? counterValue(reg, "nodewarden_log_multiline_joined_lines_total") : 0;
  const std::uint64_t expected_entries = expected - static_cast<std::uint64_t>(joined);
  c.sent_mib = counterValue(reg, "nodewarden_log_bytes_sent_total") / (1 << 20);
  c.spool_written_mib = static_cast<double>(p.parts->spool->writtenBytes()) / (1 << 20);
  p.tailer.reset();
  p.stages.reset();
  p.router.reset();

  c.cpu_s = m.cpu_s;
  c.user_s = m.user_s;
  c.sys_s = m.sys_s;
  c.wall_s = m.wall_s;
  c.reader_s = reader_s;
  c.lines = sent < 0 ? 0 : static_cast<std::uint64_t>(sent);
  // Every acknowledged entry was counted by the receiver before it answered.
  const std::uint64_t got = receiver.entries.load() - received0;
  if (c.note.empty() && c.rate_limited != 0) {
    c.note = "the default rate limit dropped " + std::to_string(c.rate_limited) + " lines";
  }
  if (c.note.empty() && (c.lines != expected_entries || got != expected_entries)) {
    c.note = "sent " + std::to_string(c.lines) + ", receiver got " + std::to_string(got) + " of " +
             std::to_string(expected_entries) + " entries";
  }
  std::error_code ec;
  fs::remove_all(state, ec);
  return c;
}

// ---- the rules alone -------------------------------------------------------------------------

// The corpus's entries as the tailer hands them on (labels, stream numbers, lines), kept in memory
// so each rule kind is timed on the same lines with nothing else running.
struct RuleCorpus {
  std::vector<Labels> labels;
  struct Line {
    std::size_t labels;
    std::uint64_t stream;
    LogEntry entry;
  };
  std::vector<Line> lines;
  std::uint64_t bytes = 0;
};

class CollectingSink final : public nodewarden::LogSink {
 public:
  CollectingSink(RuleCorpus& out, std::size_t max_lines) : out_(out), max_(max_lines) {}
  bool accept(const Labels& labels, const LogEntry& entry, const LogCheckpoint& cp) override {
    return acceptStream(labels, entry, cp, 0);
  }
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint&,
                    std::uint64_t stream) override {
    if (out_.lines.size() >= max_) return false;
    auto it = std::find(out_.labels.begin(), out_.labels.end(), labels);
    if (it == out_.labels.end()) it = out_.labels.insert(out_.labels.end(), labels);
    out_.lines.push_back({static_cast<std::size_t>(it - out_.labels.begin()), stream, entry});
    out_.bytes += entry.line.size();
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return out_.lines.size() < max_; }

 private:
  RuleCorpus& out_;
  std::size_t max_;
};

// Counts what a stage passes on, and how many of those lines it changed.
class CountingStageSink final : public nodewarden::LogSink {
 public:
  bool accept(const Labels&, const LogEntry& entry, const LogCheckpoint&) override {
    ++lines;
    changed += entry.line.data() != expected_ ? 1 : 0;
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return true; }
  void expect(const std::string& line) { expected_ = line.data(); }
  std::uint64_t lines = 0;
  std::uint64_t changed = 0;

 private:
  const char* expected_ = nullptr;
};

// A stage that passes everything on: the hand-off's own cost, for reference.
class PassStage final : public nodewarden::LogStage {
 public:
  bool accept(const Labels& labels, const LogEntry& entry, const LogCheckpoint& cp) override {
    return next_->accept(labels, entry, cp);
  }
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& cp,
                    std::uint64_t stream) override {
    return next_->acceptStream(labels, entry, cp, stream);
  }
};

double median(std::vector<double> v);

struct RuleRun {
  std::string kind;
  double ns_per_line = 0;
  double mib_per_s = 0;
  std::uint64_t passed = 0;
  std::uint64_t changed = 0;
};

// Every line through the stage, rounds times; the median of the reading thread's CPU.
RuleRun timeStage(const std::string& kind, nodewarden::LogStage& stage, const RuleCorpus& corpus,
                  int rounds) {
  CountingStageSink sink;
  stage.setNext(sink);
  const LogCheckpoint cp;
  std::vector<double> cpu;
  for (int r = 0; r < rounds; ++r) {
    sink.lines = sink.changed = 0;
    const double t0 = threadCpuSeconds();
    for (const auto& line : corpus.lines) {
      sink.expect(line.entry.line);
      stage.acceptStream(corpus.labels[line.labels], line.entry, cp, line.stream);
    }
    cpu.push_back(threadCpuSeconds() - t0);
  }
  const double s = median(cpu);
  RuleRun run{kind};
  run.ns_per_line = s * 1e9 / static_cast<double>(corpus.lines.size());
  run.mib_per_s = static_cast<double>(corpus.bytes) / kMiB / s;
  run.passed = sink.lines;
  run.changed = sink.changed;
  return run;
}

void runRules(const Corpus& corpus, int rounds) {
  RuleCorpus lines;
  {
    SelfMetrics self;
    ErrorReporter errors(self.registry());
    CollectingSink sink(lines, 400'000);
    nodewarden::logs::LogTailer tailer(tailerOptions(corpus), errors);
    while (sink.hasRoom() && tailer.poll(sink, kTickReadBudget) != 0) {
    }
  }
  // The same lines with one in a hundred carrying a secret of each kind in turn: the cost of
  // lines that do change (a copy, the rules' RE2 runs).
  RuleCorpus secrets = lines;
  const std::vector<std::string> samples = {
      " password=hunter2",
      " AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      " jdbc:postgresql://etl:Pa55w0rd@db:5432/warehouse",
      " Authorization: Bearer ya29.a0AfH6SMBx3k9vJ2",
      " eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N",
      " key AKIAIOSFODNN7EXAMPLE",
      " -----BEGIN RSA PRIVATE KEY-----MIIEpAIBAAKCAQEA-----END RSA PRIVATE KEY-----",
  };
  for (std::size_t i = 0; i < secrets.lines.size(); i += 100) {
    const std::string& add = samples[(i / 100) % samples.size()];
    secrets.lines[i].entry.line += add;
    secrets.bytes += add.size();
  }
  std::printf(
      "\nrules: %zu lines, %.1f MiB of the corpus in memory, %zu streams; CPU per line "
      "through the stage (median of %d passes)\n",
      lines.lines.size(), static_cast<double>(lines.bytes) / kMiB, lines.labels.size(), rounds);
  std::vector<RuleRun> runs;
  prometheus::Registry registry;
  {
    PassStage pass;
    runs.push_back(timeStage("hand-off only (a stage that passes on)", pass, lines, rounds));
  }
  {
    std::vector<double> cpu;
    std::uint64_t flagged = 0;
    for (int r = 0; r < rounds; ++r) {
      flagged = 0;
      const double t0 = threadCpuSeconds();
      for (const auto& line : lines.lines) {
        flagged += nodewarden::LineRedactor::prefilter(line.entry.line) != 0 ? 1 : 0;
      }
      cpu.push_back(threadCpuSeconds() - t0);
    }
    const double s = median(cpu);
    runs.push_back({"redaction prefilter alone (no stage)",
                    s * 1e9 / static_cast<double>(lines.lines.size()),
                    static_cast<double>(lines.bytes) / kMiB / s, flagged, 0});
  }
  const auto redaction = [&](const std::string& kind, nodewarden::LogRedactionOptions options,
                             const RuleCorpus& on) {
    auto stage = nodewarden::RedactionStage::create(options, nullptr, registry);
    if (!stage) {
      std::printf("  %s: %s\n", kind.c_str(), stage.error().c_str());
      return;
    }
    runs.push_back(timeStage(kind, **stage, on, rounds));
  };
  for (const auto& builtin : nodewarden::builtinRedactions()) {
    nodewarden::LogRedactionOptions only;
    only.builtin = {std::string(builtin.name)};
    redaction("redaction " + std::string(builtin.name) + " alone", only, lines);
  }
  redaction("redaction, all built-ins (the default)", {}, lines);
  redaction("redaction, all built-ins, 1% lines with a secret", {}, secrets);
  for (const std::string pattern : {R"(\b\d{3}-\d{2}-\d{4}\b)", R"(ORD-\d{6})"}) {
    nodewarden::LogRedactionOptions custom;
    custom.builtin.clear();
    custom.rules.push_back({"custom", pattern, {}, ""});
    redaction("redaction, one custom rule " + pattern, custom, lines);
  }
  using Action = nodewarden::LogFilterRule::Action;
  const auto filter = [&](const std::string& kind, const nodewarden::LogFilterRule& rule) {
    auto stage = nodewarden::FilterStage::create({rule}, nullptr, registry);
    if (!stage) {
      std::printf("  %s: %s\n", kind.c_str(), stage.error().c_str());
      return;
    }
    runs.push_back(timeStage(kind, **stage, lines, rounds));
  };
  filter("filter drop_lines \\bDEBUG\\b, every stream",
         {"debug", {}, Action::kDropLines, R"(\bDEBUG\b)"});
  filter("filter keep_lines ERROR|WARN|Exception|\\tat , every stream",
         {"errors", {}, Action::kKeepLines, R"(ERROR|WARN|Exception|\tat )"});
  nodewarden::LogSelector mesh;
  mesh.containers = {"istio-proxy"};
  filter("filter drop_stream istio-proxy", {"mesh", mesh, Action::kDropStream, ""});

  std::printf("%-58s %9s %9s %9s %9s\n", "rule kind", "ns/line", "MiB/s", "passed", "changed");
  for (const auto& r : runs) {
    std::printf("%-58s %9.1f %9.1f %9llu %9llu\n", r.kind.c_str(), r.ns_per_line, r.mib_per_s,
                static_cast<unsigned long long>(r.passed),
                static_cast<unsigned long long>(r.changed));
  }
}

// ---- Fluent Bit (optional) --------------------------------------------------------------------

std::optional<double> procCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // Fields after the comm: state is field 3; utime and stime are fields 14 and 15.
  std::vector<std::string> fields;
  std::size_t i = close + 2;
  while (i < text.size()) {
    const auto sp = text.find(' ', i);
    fields.push_back(text.substr(i, sp == std::string::npos ? std::string::npos : sp - i));
    if (sp == std::string::npos) break;
    i = sp + 1;
  }
  if (fields.size() < 13) return std::nullopt;
  const double ticks = std::stod(fields[11]) + std::stod(fields[12]);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

Cost runFluentBit(const std::string& binary, const Corpus& corpus, const fs::path& work, int port,
                  const ReceiverShared& receiver, double timeout_s) {
  Cost c;
  std::error_code ec;
  fs::create_directories(work, ec);
  const fs::path conf = work / "fluent-bit.conf";
  {
    std::ofstream out(conf);
    out << "[SERVICE]\n    Flush 1\n    Log_Level warn\n\n"
        << "[INPUT]\n    Name tail\n    Path " << corpus.dir.string() << "/*/*/*.log\n"
        << "    multiline.parser cri\n    Read_from_Head On\n    Refresh_Interval 1\n"
        << "    Buffer_Chunk_Size 64k\n    Buffer_Max_Size 512k\n    Mem_Buf_Limit 64MB\n\n"
        << "[OUTPUT]\n    Name loki\n    Match *\n    Host 127.0.0.1\n    Port " << port
        << "\n    Labels job=fluent-bit\n    Label_keys $stream\n    Remove_keys _p,stream,time\n"
        << "    Drop_single_key on\n    Line_format key_value\n";
  }
  const fs::path log = work / "fluent-bit.log";
  const std::uint64_t received0 = receiver.entries.load();
  const double wall0 = monotonicSeconds();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execl(binary.c_str(), binary.c_str(), "-c", conf.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (pid < 0) {
    c.note = std::string("fork: ") + std::strerror(errno);
    return c;
  }
  g_fluent_bit.store(pid);
  const double deadline = wall0 + timeout_s;
  std::optional<double> cpu;
  for (;;) {
    const std::uint64_t got = receiver.entries.load() - received0;
    if (got >= corpus.stats.lines) {
      c.wall_s = monotonicSeconds() - wall0;
      cpu = procCpuSeconds(pid);
      break;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      g_fluent_bit.store(0);
      c.note = "fluent-bit exited early (see " + log.string() + ")";
      c.lines = got;
      return c;
    }
    if (monotonicSeconds() > deadline) {
      c.wall_s = monotonicSeconds() - wall0;
      cpu = procCpuSeconds(pid);
      c.note = "timed out with " + std::to_string(got) + " of " +
               std::to_string(corpus.stats.lines) + " lines";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  c.lines = receiver.entries.load() - received0;
  kill(pid, SIGTERM);
  rusage ru{};
  int status = 0;
  // Fluent Bit's default grace is 5 s; SIGKILL after 15.
  const double kill_at = monotonicSeconds() + 15;
  while (wait4(pid, &status, WNOHANG, &ru) == 0) {
    if (monotonicSeconds() > kill_at) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  g_fluent_bit.store(0);
  c.cpu_s = cpu.value_or(tv(ru.ru_utime) + tv(ru.ru_stime));
  c.user_s = tv(ru.ru_utime);  // until exit (includes its shutdown)
  c.sys_s = tv(ru.ru_stime);
  return c;
}

// ---- report ---------------------------------------------------------------------------------

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  double cpu_s = 0, user_s = 0, sys_s = 0, wall_s = 0, reader_s = -1;
  double spool_written_mib = -1, sent_mib = -1;
  bool complete = true;
};

Summary summarize(const std::vector<Cost>& runs) {
  std::vector<double> cpu, user, sys, wall, reader, written, sent;
  Summary s;
  for (const auto& r : runs) {
    if (r.reader_s >= 0) reader.push_back(r.reader_s);
    if (r.spool_written_mib >= 0) written.push_back(r.spool_written_mib);
    if (r.sent_mib >= 0) sent.push_back(r.sent_mib);
    cpu.push_back(r.cpu_s);
    user.push_back(r.user_s);
    sys.push_back(r.sys_s);
    wall.push_back(r.wall_s);
    if (!r.note.empty()) s.complete = false;
  }
  s.cpu_s = median(cpu);
  s.user_s = median(user);
  s.sys_s = median(sys);
  s.wall_s = median(wall);
  if (!reader.empty()) s.reader_s = median(reader);
  if (!written.empty()) s.spool_written_mib = median(written);
  if (!sent.empty()) s.sent_mib = median(sent);
  return s;
}

std::string fsType(const fs::path& p) {
  struct statfs st {};
  if (statfs(p.c_str(), &st) != 0) return "?";
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0x01021994UL:
      return "tmpfs";
    case 0xEF53UL:
      return "ext4";
    case 0x58465342UL:
      return "xfs";
    case 0x9123683EUL:
      return "btrfs";
    case 0x794c7630UL:
      return "overlayfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(st.f_type));
      return buf;
    }
  }
}

void signalThread(sigset_t set) {
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "bench_log_path: signal %d, cleaning up\n", sig);
  if (const pid_t p = g_fluent_bit.load(); p > 0) kill(p, SIGKILL);
  if (const pid_t p = g_receiver.load(); p > 0) kill(p, SIGKILL);
  std::error_code ec;
  if (!g_tmp.empty()) fs::remove_all(g_tmp, ec);
  _exit(128 + sig);
}

int usage() {
  std::fprintf(
      stderr,
      "usage: bench_log_path [--mib=300] [--pods=8] [--rounds=3] [--tmp=DIR]\n"
      "                      [--malloc=agent|glibc] [--multiline=on|off] [--stages=default|none]\n"
      "                      [--only=floor,parse,parse+ratelimit,parse-multiline,full,"
      "full-nofsync,full-json,fluent-bit,rules]\n"
      "  env FLUENT_BIT=/path/to/fluent-bit adds a Fluent Bit run\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t mib = 300;
  std::size_t pods = 8;
  int rounds = 3;
  fs::path tmp_base = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
  std::vector<std::string> modes = {"floor",           "parse",      "parse+ratelimit",
                                    "parse-multiline", "full",       "full-nofsync",
                                    "full-json",       "fluent-bit", "rules"};
  std::string malloc_mode = "agent";
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string_view prefix) -> std::optional<std::string> {
      if (a.substr(0, prefix.size()) != prefix) return std::nullopt;
      return std::string(a.substr(prefix.size()));
    };
    if (auto v = value("--mib=")) {
      mib = std::strtoull(v->c_str(), nullptr, 10);
    } else if (auto v2 = value("--pods=")) {
      pods = std::strtoul(v2->c_str(), nullptr, 10);
    } else if (auto v3 = value("--rounds=")) {
      rounds = std::atoi(v3->c_str());
    } else if (auto v7 = value("--multiline=")) {
      if (*v7 != "on" && *v7 != "off") return usage();
      g_multiline = *v7 == "on";
    } else if (auto v6 = value("--malloc=")) {
      malloc_mode = *v6;
    } else if (auto v8 = value("--stages=")) {
      if (*v8 != "default" && *v8 != "none") return usage();
      g_default_stages = *v8 == "default";
    } else if (auto v4 = value("--tmp=")) {
      tmp_base = *v4;
    } else if (auto v5 = value("--only=")) {
      modes.clear();
      std::string_view list = *v5;
      while (!list.empty()) {
        const auto comma = list.find(',');
        modes.emplace_back(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      }
    } else {
      return usage();
    }
  }
  if (mib == 0 || pods == 0 || rounds <= 0) return usage();
  if (malloc_mode != "agent" && malloc_mode != "glibc") return usage();
  // Before any thread or child: the receiver inherits it too (its CPU is not in the figures).
  if (malloc_mode == "agent" && !nodewarden::tuneAllocator()) {
    std::fprintf(stderr, "bench_log_path: mallopt refused the agent's settings\n");
    return 1;
  }
  const auto wants = [&](std::string_view m) {
    return std::find(modes.begin(), modes.end(), m) != modes.end();
  };
  const char* fluent_bit_env = std::getenv("FLUENT_BIT");
  const std::string fluent_bit = fluent_bit_env != nullptr ? fluent_bit_env : "";

  // Block the signals before any thread or child exists; the signal thread takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::string templ = (tmp_base / "nodewarden-logpath.XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    std::fprintf(stderr, "bench_log_path: mkdtemp in %s: %s\n", tmp_base.c_str(),
                 std::strerror(errno));
    return 1;
  }
  g_tmp = templ;

  void* page = mmap(nullptr, sizeof(ReceiverShared), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    std::fprintf(stderr, "bench_log_path: mmap: %s\n", std::strerror(errno));
    return 1;
  }
  auto* receiver = new (page) ReceiverShared();
  const pid_t receiver_pid = startReceiver(receiver);
  if (receiver_pid < 0) {
    std::fprintf(stderr, "bench_log_path: fork: %s\n", std::strerror(errno));
    return 1;
  }
  g_receiver.store(receiver_pid);
  std::thread(signalThread, signals).detach();

  int rc = 0;
  auto cleanUp = [&] {
    kill(receiver_pid, SIGTERM);
    rusage ru{};
    int status = 0;
    wait4(receiver_pid, &status, 0, &ru);
    g_receiver.store(0);
    std::error_code ec;
    fs::remove_all(g_tmp, ec);
    std::printf(
        "receiver (child process, not in any figure above): %.2f s CPU (user %.2f, sys "
        "%.2f) over all runs\n",
        tv(ru.ru_utime) + tv(ru.ru_stime), tv(ru.ru_utime), tv(ru.ru_stime));
    std::printf("clean-up: removed %s%s\n", g_tmp.c_str(),
                fs::exists(g_tmp) ? " (FAILED: still there)" : "");
  };

  for (int i = 0; i < 500 && receiver->port.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int port = receiver->port.load();
  if (port <= 0) {
    std::fprintf(stderr, "bench_log_path: the receiver did not start\n");
    cleanUp();
    return 1;
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/loki/api/v1/push";

  utsname un{};
  uname(&un);
  std::printf("bench_log_path: %u cores online, kernel %s, temp dir %s (%s), malloc %s\n",
              static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN)), un.release, g_tmp.c_str(),
              fsType(g_tmp).c_str(),
              malloc_mode == "agent" ? "as the agent's (pipeline/allocator.h)" : "glibc defaults");

  Corpus corpus;
  corpus.dir = g_tmp / "pods";
  {
    nodewarden::bench::LogCorpusOptions co;
    co.dir = corpus.dir;
    co.bytes = mib << 20;
    co.pods = pods;
    const double t0 = monotonicSeconds();
    auto stats = nodewarden::bench::writeLogCorpus(co);
    if (!stats) {
      std::fprintf(stderr, "bench_log_path: corpus: %s\n", stats.error().c_str());
      cleanUp();
      return 1;
    }
    corpus.stats = std::move(*stats);
    const auto& s = corpus.stats;
    std::printf(
        "corpus: %zu files, %.1f MiB, %llu records, %llu lines (%.1f%% split into P records, "
        "%.1f%% stderr), %.0f bytes per line, written in %.1f s (stays in the page cache)\n",
        s.files.size(), static_cast<double>(s.bytes) / kMiB,
        static_cast<unsigned long long>(s.records), static_cast<unsigned long long>(s.lines),
        100.0 * static_cast<double>(s.partial_lines) / static_cast<double>(s.lines),
        100.0 * static_cast<double>(s.stderr_lines) / static_cast<double>(s.lines),
        static_cast<double>(s.line_bytes) / static_cast<double>(s.lines), monotonicSeconds() - t0);
  }
  std::printf("receiver: FakeLoki in child process %d on %s\n", static_cast<int>(receiver_pid),
              url.c_str());
  if (wants("fluent-bit") && fluent_bit.empty()) {
    std::printf("fluent-bit: not run (set FLUENT_BIT=/path/to/fluent-bit; not installed here)\n");
  }

  const double timeout_s = std::max(120.0, static_cast<double>(mib) * 2.0);
  const std::vector<std::string> order = {"floor",           "parse",     "parse+ratelimit",
                                          "parse-multiline", "full",      "full-nofsync",
                                          "full-json",       "fluent-bit"};
  std::map<std::string, std::vector<Cost>> results;
  std::uint64_t compressed = 0;
  for (int r = 1; r <= rounds; ++r) {
    for (const auto& mode : order) {
      if (!wants(mode)) continue;
      Cost c;
      const fs::path state = g_tmp / ("state-" + mode + "-" + std::to_string(r));
      if (mode == "floor") {
        c = runFloor(corpus, compressed);
      } else if (mode == "parse") {
        c = runParse(corpus);
      } else if (mode == "parse+ratelimit") {
        c = runParse(corpus, true);
      } else if (mode == "parse-multiline") {
        c = runParseMultiline(corpus);
      } else if (mode == "full") {
        c = runFull(corpus, state, true, url, *receiver, timeout_s);
      } else if (mode == "full-nofsync") {
        c = runFull(corpus, state, false, url, *receiver, timeout_s);
      } else if (mode == "full-json") {
        c = runFull(corpus, state, true, url, *receiver, timeout_s,
                    nodewarden::LokiEncoding::kJson);
      } else if (mode == "fluent-bit") {
        if (fluent_bit.empty()) continue;
        c = runFluentBit(fluent_bit, corpus, state, port, *receiver, timeout_s);
      }
      std::printf(
          "round %d %-13s cpu %7.3f s (user %7.3f, sys %6.3f)  wall %7.3f s  lines %llu%s%s\n", r,
          mode.c_str(), c.cpu_s, c.user_s, c.sys_s, c.wall_s,
          static_cast<unsigned long long>(c.lines), c.note.empty() ? "" : "  ! ", c.note.c_str());
      std::fflush(stdout);
      if (!c.note.empty()) rc = 1;
      results[mode].push_back(std::move(c));
    }
  }
  if (compressed == 0 && wants("floor")) std::printf("(floor compressed nothing)\n");
  std::printf("full runs: %s\n", g_default_stages
                                     ? "the default log stages (redaction, every built-in rule)"
                                     : "no log stages (--stages=none)");

  const double mib_total = static_cast<double>(corpus.stats.bytes) / kMiB;
  const double gib_total = mib_total / 1024.0;
  const double lines = static_cast<double>(corpus.stats.lines);
  std::printf("\nmedians of %d rounds; %.1f MiB, %llu lines per run (MiB = file bytes read)\n",
              rounds, mib_total, static_cast<unsigned long long>(corpus.stats.lines));
  std::printf("%-13s %8s %8s %7s %8s %11s %8s %10s %10s %8s\n", "mode", "cpu s", "user s", "sys s",
              "wall s", "lines/s", "MiB/s", "MiB/cpu-s", "cpu-s/GiB", "x floor");
  std::map<std::string, Summary> sums;
  for (const auto& mode : order) {
    const auto it = results.find(mode);
    if (it == results.end()) continue;
    const Summary s = summarize(it->second);
    sums[mode] = s;
    const double floor_cpu = sums.contains("floor") ? sums["floor"].cpu_s : 0;
    char xfloor[32] = "-";
    if (floor_cpu > 0) std::snprintf(xfloor, sizeof xfloor, "%.2f", s.cpu_s / floor_cpu);
    std::printf("%-13s %8.3f %8.3f %7.3f %8.3f %11.0f %8.1f %10.1f %10.3f %8s%s\n", mode.c_str(),
                s.cpu_s, s.user_s, s.sys_s, s.wall_s, lines / s.wall_s, mib_total / s.wall_s,
                mib_total / s.cpu_s, s.cpu_s / gib_total, xfloor,
                s.complete ? "" : "  (incomplete runs)");
  }

  std::printf("\n");
  if (sums.contains("floor")) {
    const double f = sums["floor"].cpu_s;
    for (const char* m :
         {"parse", "parse-multiline", "full", "full-nofsync", "full-json", "fluent-bit"}) {
      if (sums.contains(m)) {
        std::printf("%s / floor: %.2f x CPU (target for full: <= 2.00)\n", m, sums[m].cpu_s / f);
      }
    }
  }
  if (sums.contains("parse") && sums.contains("parse-multiline")) {
    const double stage_s = sums["parse-multiline"].cpu_s - sums["parse"].cpu_s;
    std::printf("multiline stage: %+.3f CPU s per run = %+.3f CPU s/GiB = %+.1f ns per line\n",
                stage_s, stage_s / gib_total, stage_s / lines * 1e9);
  }
  std::printf("full path: multiline stage %s (--multiline=)\n", g_multiline ? "on" : "off");
  for (const char* m : {"full", "full-nofsync", "full-json"}) {
    if (!sums.contains(m) || sums[m].reader_s < 0) continue;
    const auto& s = sums[m];
    const double f = sums.contains("floor") ? sums["floor"].cpu_s : 0;
    char xfloor[32] = "";
    if (f > 0) std::snprintf(xfloor, sizeof xfloor, " = %.2f x floor", s.reader_s / f);
    std::printf(
        "%s: reading thread (tail, batch, encode, compress, spool append) %.3f CPU s%s; "
        "shipper and libcurl %.3f CPU s\n",
        m, s.reader_s, xfloor, s.cpu_s - s.reader_s);
    if (s.spool_written_mib >= 0 && s.sent_mib > 0) {
      std::printf(
          "%s: the spool wrote %.1f MiB (stored push bodies) to its files while %.1f MiB of "
          "lines were sent\n",
          m, s.spool_written_mib, s.sent_mib);
    }
  }
  if (sums.contains("parse") && sums.contains("parse+ratelimit")) {
    const double d = sums["parse+ratelimit"].cpu_s - sums["parse"].cpu_s;
    std::printf(
        "rate limit stage (parse+ratelimit - parse): %+.3f CPU s per run, %+.1f ns per line\n", d,
        d * 1e9 / lines);
  }
  for (const char* m : {"parse+ratelimit", "full", "full-nofsync"}) {
    const auto it = results.find(m);
    if (it == results.end()) continue;
    std::uint64_t limited = 0;
    for (const auto& c : it->second) limited += c.rate_limited;
    std::printf("%s: the default rate limit (collectors.logs.rate_limit) dropped %llu lines%s\n", m,
                static_cast<unsigned long long>(limited),
                limited == 0 ? " (none, as it must)" : "");
  }
  if (sums.contains("full") && sums.contains("full-nofsync")) {
    const auto& a = sums["full"];
    const auto& b = sums["full-nofsync"];
    std::printf("spool fsync cost: %+.3f CPU s (%+.3f CPU s/GiB), %+.3f wall s per run\n",
                a.cpu_s - b.cpu_s, (a.cpu_s - b.cpu_s) / gib_total, a.wall_s - b.wall_s);
  }
  if (sums.contains("full-json")) {
    const double v = mib_total / sums["full-json"].cpu_s;
    std::printf(
        "full-json: %.1f MiB per CPU-second = %.2f x Fluent Bit's JSON reference (%.1f), %.2f x "
        "its target (%.1f)\n",
        v, v / kFluentBitJsonReference, kFluentBitJsonReference, v / kJsonTarget, kJsonTarget);
  }
  for (const char* m : {"full", "full-nofsync", "fluent-bit"}) {
    if (!sums.contains(m)) continue;
    const double v = mib_total / sums[m].cpu_s;
    std::printf(
        "%s: %.1f MiB per CPU-second = %.2f x Fluent Bit's reference (%.1f), %.2f x the target "
        "(%.0f)\n",
        m, v, v / kFluentBitReference, kFluentBitReference, v / kTarget, kTarget);
  }
  if (wants("rules")) runRules(corpus, std::max(rounds, 3));
  cleanUp();
  return rc;
}
