#include "bench/log_corpus.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <system_error>

namespace nodewarden::bench {
namespace {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool chance(unsigned percent) { return below(100) < percent; }

 private:
  std::uint64_t s_;
};

constexpr std::array<std::string_view, 48> kWords = {
    "request",   "partition", "offset",   "commit",     "segment",   "shuffle",    "executor",
    "task",      "stage",     "batch",    "records",    "flushed",   "upstream",   "timeout",
    "retrying",  "connected", "consumer", "group",      "rebalance", "lease",      "renewed",
    "bucket",    "object",    "uploaded", "checkpoint", "snapshot",  "compaction", "level",
    "bytes",     "rows",      "schema",   "column",     "parquet",   "written",    "reading",
    "watermark", "window",    "late",     "dropped",    "cache",     "hit",        "miss",
    "evicted",   "node",      "pod",      "ready",      "scheduled", "queue"};

constexpr std::array<std::string_view, 8> kApps = {
    "ingest-worker", "spark-executor", "api-gateway",       "kafka-connect",
    "etl-scheduler", "trino-worker",   "flink-taskmanager", "redis-cache"};
constexpr std::array<std::string_view, 4> kNamespaces = {"default", "data-ingest", "spark-jobs",
                                                         "monitoring"};

constexpr std::array<std::string_view, 8> kFrames = {
    "org.apache.spark.sql.execution.datasources.FileFormatWriter$.executeTask(FileFormatWriter."
    "scala",
    "org.apache.spark.scheduler.ResultTask.runTask(ResultTask.scala",
    "org.apache.spark.executor.Executor$TaskRunner.$anonfun$run$3(Executor.scala",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java",
    "org.apache.kafka.clients.consumer.internals.ConsumerCoordinator.onJoinComplete("
    "ConsumerCoordinator.java",
    "com.example.ingest.pipeline.PartitionWriter.flushSegment(PartitionWriter.java",
    "io.netty.channel.AbstractChannelHandlerContext.invokeChannelRead("
    "AbstractChannelHandlerContext."
    "java",
    "org.apache.hadoop.fs.s3a.S3AFileSystem.getFileStatus(S3AFileSystem.java"};

// Go's time.RFC3339Nano as containerd writes it: UTC, trailing zeros of the fraction trimmed.
void appendTimestamp(std::string& out, std::int64_t ns) {
  const std::int64_t secs = ns / 1'000'000'000;
  auto frac = static_cast<std::uint32_t>(ns % 1'000'000'000);
  const std::int64_t days = secs / 86400;
  const std::int64_t sod = secs % 86400;
  // Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil inverse).
  const std::int64_t z = days + 719468;
  const std::int64_t era = z / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[48];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld",
                        static_cast<long long>(y), static_cast<long long>(m),
                        static_cast<long long>(d), static_cast<long long>(sod / 3600),
                        static_cast<long long>(sod / 60 % 60), static_cast<long long>(sod % 60));
  out.append(buf, static_cast<std::size_t>(n));
  if (frac != 0) {
    int digits = 9;
    while (frac % 10 == 0) {
      frac /= 10;
      --digits;
    }
    n = std::snprintf(buf, sizeof buf, ".%0*u", digits, frac);
    out.append(buf, static_cast<std::size_t>(n));
  }
  out += 'Z';
}

void appendWords(std::string& out, Rng& rng, std::size_t until) {
  while (out.size() < until) {
    if (!out.empty() && out.back() != ' ' && out.back() != '"') out += ' ';
    out += kWords[rng.below(kWords.size())];
    if (rng.chance(15)) {
      out += '=';
      out += std::to_string(rng.below(100000));
    }
  }
  out.resize(until);
}

// 80..320 bytes (mean 200), and 5% up to 400.
std::size_t targetLength(Rng& rng) {
  if (rng.chance(5)) return 320 + rng.below(81);
  return 80 + rng.below(121) + rng.below(121);
}

struct Line {
  std::string text;
  bool err = false;
};

class FileWriter {
 public:
  FileWriter(Rng& rng, std::int64_t start_ns, std::string_view app, LogCorpusStats& stats)
      : rng_(rng), now_ns_(start_ns), app_(app), stats_(stats) {}

  // One logical line, or a whole stack trace.
  void writeSome(std::string& out) {
    if (rng_.chance(2)) {
      writeStackTrace(out);
      return;
    }
    Line line = makeLine();
    // 6% of these calls: stack traces and interleaved lines dilute it to 5% of all lines.
    if (rng_.chance(6)) {
      writePartial(out, line);
    } else {
      writeRecord(out, line.err, 'F', line.text);
      countLine(line);
    }
  }

 private:
  Line makeLine() {
    Line line;
    const std::size_t len = targetLength(rng_);
    const std::size_t kind = rng_.below(100);
    std::string& s = line.text;
    char buf[160];
    if (kind < 45) {  // klog
      const char level = rng_.chance(8) ? 'E' : (rng_.chance(10) ? 'W' : 'I');
      const long long sod = (now_ns_ / 1'000'000'000) % 86400;
      const int n = std::snprintf(
          buf, sizeof buf, "%c1118 %02lld:%02lld:%02lld.%06lld       1 %s.go:%zu] ", level,
          sod / 3600, sod / 60 % 60, sod % 60, static_cast<long long>(now_ns_ / 1000 % 1'000'000),
          kWords[rng_.below(kWords.size())].data(), 20 + rng_.below(900));
      s.assign(buf, static_cast<std::size_t>(n));
      appendWords(s, rng_, std::max(len, s.size() + 8));
      line.err = level == 'E' || rng_.chance(5);
    } else if (kind < 80) {  // JSON record
      const char* level = rng_.chance(10) ? "warn" : "info";
      int n = std::snprintf(
          buf, sizeof buf, R"({"level":"%s","ts":%lld.%03lld,"caller":"%.*s/%s.go:%zu","msg":")",
          level, static_cast<long long>(now_ns_ / 1'000'000'000),
          static_cast<long long>(now_ns_ / 1'000'000 % 1000), static_cast<int>(app_.size()),
          app_.data(), kWords[rng_.below(kWords.size())].data(), 10 + rng_.below(500));
      s.assign(buf, static_cast<std::size_t>(n));
      n = std::snprintf(
          buf, sizeof buf, R"(","request_id":"%016llx","partition":%zu,"latency_ms":%zu})",
          static_cast<unsigned long long>(rng_.next()), rng_.below(64), rng_.below(2000));
      const std::string_view tail(buf, static_cast<std::size_t>(n));
      const std::size_t words_to =
          len > s.size() + tail.size() + 8 ? len - tail.size() : s.size() + 8;
      appendWords(s, rng_, words_to);
      s += tail;
      line.err = rng_.chance(5);
    } else {  // access log
      const int n = std::snprintf(
          buf, sizeof buf,
          R"(10.%zu.%zu.%zu - - [18/Nov/2026:10:00:00 +0000] "%s /api/v1/namespaces/%s/objects/%zu HTTP/1.1" %d %zu "-" ")",
          rng_.below(256), rng_.below(256), rng_.below(256), rng_.chance(80) ? "GET" : "POST",
          kNamespaces[rng_.below(kNamespaces.size())].data(), rng_.below(100000),
          rng_.chance(95) ? 200 : 503, rng_.below(65536));
      s.assign(buf, static_cast<std::size_t>(n));
      appendWords(s, rng_, std::max(len, s.size() + 8));
      s += '"';
      line.err = rng_.chance(3);
    }
    return line;
  }

  void writeStackTrace(std::string& out) {
    Line head;
    head.err = true;
    head.text = "Exception in thread \"executor-task-" + std::to_string(rng_.below(64)) +
                "\" java.lang.IllegalStateException: ";
    appendWords(head.text, rng_, head.text.size() + 20 + rng_.below(100));
    writeRecord(out, true, 'F', head.text);
    countLine(head);
    const std::size_t frames = 4 + rng_.below(9);
    for (std::size_t i = 0; i < frames; ++i) {
      Line frame;
      frame.err = true;
      frame.text = "\tat ";
      frame.text += kFrames[rng_.below(kFrames.size())];
      frame.text += ':';
      frame.text += std::to_string(40 + rng_.below(2000));
      frame.text += ')';
      writeRecord(out, true, 'F', frame.text);
      countLine(frame);
    }
  }

  // Two or three records; a third of the time a whole line of the other stream comes between
  // the first part and the rest.
  void writePartial(std::string& out, const Line& line) {
    const std::string_view text = line.text;
    const std::size_t parts = rng_.chance(70) ? 2 : 3;
    std::size_t cut1 = 1 + rng_.below(text.size() - 2);
    std::size_t cut2 = text.size();
    if (parts == 3) {
      cut2 = cut1 + 1 + rng_.below(text.size() - cut1 - 1);
      if (cut2 >= text.size()) cut2 = text.size() - 1;
    }
    writeRecord(out, line.err, 'P', text.substr(0, cut1));
    if (rng_.chance(33)) {
      Line other = makeLine();
      other.err = !line.err;
      writeRecord(out, other.err, 'F', other.text);
      countLine(other);
    }
    if (parts == 3 && cut2 > cut1 && cut2 < text.size()) {
      writeRecord(out, line.err, 'P', text.substr(cut1, cut2 - cut1));
      writeRecord(out, line.err, 'F', text.substr(cut2));
    } else {
      writeRecord(out, line.err, 'F', text.substr(cut1));
    }
    countLine(line);
    ++stats_.partial_lines;
  }

  void writeRecord(std::string& out, bool err, char tag, std::string_view message) {
    now_ns_ += 1000 + static_cast<std::int64_t>(rng_.below(40'000));
    const std::size_t before = out.size();
    appendTimestamp(out, now_ns_);
    out += err ? " stderr " : " stdout ";
    out += tag;
    out += ' ';
    out += message;
    out += '\n';
    stats_.bytes += out.size() - before;
    ++stats_.records;
  }

  void countLine(const Line& line) {
    ++stats_.lines;
    stats_.line_bytes += line.text.size();
    if (line.err) ++stats_.stderr_lines;
  }

  Rng& rng_;
  std::int64_t now_ns_;
  std::string_view app_;
  LogCorpusStats& stats_;
};

std::expected<void, std::string> writeAll(int fd, std::string_view data,
                                          const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected("write " + path.string() + ": " + std::strerror(errno));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::string uuid(Rng& rng) {
  char buf[40];
  const std::uint64_t a = rng.next();
  const std::uint64_t b = rng.next();
  std::snprintf(
      buf, sizeof buf, "%08llx-%04llx-4%03llx-a%03llx-%012llx",
      static_cast<unsigned long long>(a >> 32), static_cast<unsigned long long>((a >> 16) & 0xffff),
      static_cast<unsigned long long>(a & 0xfff), static_cast<unsigned long long>(b >> 52),
      static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

}  // namespace

std::expected<LogCorpusStats, std::string> writeLogCorpus(const LogCorpusOptions& options) {
  if (options.pods == 0) return std::unexpected("pods must be at least 1");
  Rng rng(options.seed);
  LogCorpusStats stats;

  struct Target {
    std::filesystem::path file;
    std::string_view app;
    std::uint64_t weight = 0;
  };
  std::vector<Target> targets;
  std::uint64_t weights = 0;
  for (std::size_t p = 0; p < options.pods; ++p) {
    const std::string_view app = kApps[p % kApps.size()];
    char hash[32];
    std::snprintf(hash, sizeof hash, "-%09llx-%05llx",
                  static_cast<unsigned long long>(rng.next() & 0xfffffffffULL),
                  static_cast<unsigned long long>(rng.next() & 0xfffffULL));
    const std::string pod = std::string(app) + hash + std::to_string(p);
    const std::string dir =
        std::string(kNamespaces[p % kNamespaces.size()]) + "_" + pod + "_" + uuid(rng);
    targets.push_back({options.dir / dir / "app" / "0.log", app, 1 + p % 3});
    weights += targets.back().weight;
    if (p % 2 == 1) {
      targets.push_back({options.dir / dir / "istio-proxy" / "0.log", "istio-proxy", 1});
      weights += 1;
    }
  }

  std::string out;
  out.reserve(2 << 20);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    std::error_code ec;
    std::filesystem::create_directories(t.file.parent_path(), ec);
    if (ec) return std::unexpected("mkdir " + t.file.parent_path().string() + ": " + ec.message());
    const int fd = ::open(t.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return std::unexpected("open " + t.file.string() + ": " + std::strerror(errno));
    const std::uint64_t share = options.bytes * t.weight / weights;
    const std::uint64_t start_bytes = stats.bytes;
    FileWriter writer(rng, options.start_ns + static_cast<std::int64_t>(i) * 1000, t.app, stats);
    out.clear();
    while (stats.bytes - start_bytes < share) {
      writer.writeSome(out);
      if (out.size() >= (1 << 20)) {
        if (auto w = writeAll(fd, out, t.file); !w) {
          ::close(fd);
          return std::unexpected(w.error());
        }
        out.clear();
      }
    }
    auto w = writeAll(fd, out, t.file);
    ::close(fd);
    if (!w) return std::unexpected(w.error());
    stats.files.push_back(t.file);
  }
  return stats;
}

}  // namespace nodewarden::bench
