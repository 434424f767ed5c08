// bench_log_parse: throughput (MiB/s, ns per record) and heap allocations per record of the
// container log parsers plus PartialJoiner, on an in-memory buffer of ~200-byte records shaped
// like containerd's (CRI) and moby's json-file output, one in eight of them partial.
//
// What a reader gets wrong: the figures are not pass/fail and exclude reading the file; the
// number to watch is "allocs/record", which must be 0 after the first pass (buffers are reused).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "bench/alloc_counter.h"
#include "collectors/logs/container_log_parser.h"

namespace {

using namespace nodewarden::logs;

constexpr std::size_t kRecords = 50'000;
constexpr int kRounds = 7;
constexpr std::size_t kMaxLineBytes = 256 * 1024;

// A message of about 200 bytes that varies per record, like an application's access log.
std::string message(std::size_t i) {
  char buf[256];
  const int n = std::snprintf(buf, sizeof buf,
                              "10.%zu.%zu.%zu - - \"GET /api/v1/namespaces/default/pods/web-%zu "
                              "HTTP/1.1\" 200 %zu \"-\" \"kube-probe/1.29\" rt=0.%03zu "
                              "upstream=10.0.0.%zu:8080 req_id=%016zx",
                              i % 256, (i / 7) % 256, (i / 13) % 256, i % 97, 512 + i % 4096,
                              i % 1000, i % 250, i * 2654435761U);
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string timestamp(std::size_t i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "2024-03-01T10:%02zu:%02zu.%09zuZ", (i / 60) % 60, i % 60,
                (i * 7919) % 1'000'000'000);
  return buf;
}

std::string criBuffer() {
  std::string out;
  for (std::size_t i = 0; i < kRecords; ++i) {
    out += timestamp(i);
    out += i % 3 == 0 ? " stderr " : " stdout ";
    out += i % 8 == 0 ? "P " : "F ";
    out += message(i);
    out += '\n';
  }
  return out;
}

std::string dockerBuffer() {
  std::string out;
  for (std::size_t i = 0; i < kRecords; ++i) {
    out += R"({"log":")";
    out += message(i);  // contains '"', escaped below
    out += i % 8 == 0 ? "" : "\\n";
    out += R"(","stream":")";
    out += i % 3 == 0 ? "stderr" : "stdout";
    out += R"(","time":")";
    out += timestamp(i);
    out += "\"}\n";
  }
  return out;
}

std::string escapeQuotesInLog(const std::string& in) {
  // The generated messages carry bare quotes; escape those inside "log" values only.
  std::string out;
  out.reserve(in.size() + in.size() / 8);
  std::size_t begin = 0;
  while (begin < in.size()) {
    const std::size_t end = in.find('\n', begin);
    const std::string_view record(in.data() + begin, end - begin);
    const std::size_t from = 8;  // after {"log":"
    const std::size_t to = record.find(R"(","stream":")");
    out.append(record.substr(0, from));
    for (const char c : record.substr(from, to - from)) {
      if (c == '"') {
        out += '\\';
      }
      out += c;
    }
    out.append(record.substr(to));
    out += '\n';
    begin = end + 1;
  }
  return out;
}

struct Result {
  double best_seconds = 1e9;
  std::uint64_t allocs = 0;  // over all rounds after the first
  std::uint64_t lines = 0;   // whole lines out of the joiners, last round
  std::uint64_t errors = 0;
};

template <typename Parse>
Result run(const std::string& buffer, Parse parse) {
  Result result;
  PartialJoiner joiners[2] = {PartialJoiner(kMaxLineBytes), PartialJoiner(kMaxLineBytes)};
  std::string scratch;
  for (int round = 0; round < kRounds; ++round) {
    const nodewarden::bench::AllocCounter counter;
    std::uint64_t lines = 0;
    std::uint64_t errors = 0;
    std::uint64_t checksum = 0;
    const auto start = std::chrono::steady_clock::now();
    std::size_t begin = 0;
    while (begin < buffer.size()) {
      const std::size_t end = buffer.find('\n', begin);
      const auto parsed = parse(std::string_view(buffer.data() + begin, end - begin), scratch);
      begin = end + 1;
      if (!parsed) {
        ++errors;
        continue;
      }
      PartialJoiner& joiner = joiners[static_cast<int>(parsed->stream)];
      if (joiner.add(*parsed)) {
        ++lines;
        checksum += joiner.line().size() + static_cast<std::uint64_t>(joiner.timestampNs());
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (checksum == 42) {
      std::puts("");  // keeps the loop's results observable
    }
    if (round > 0) {
      result.allocs += counter.count().allocs;
    }
    result.best_seconds = std::min(result.best_seconds, seconds);
    result.lines = lines;
    result.errors = errors;
  }
  return result;
}

void print(const char* name, const std::string& buffer, const Result& r) {
  const double mib = static_cast<double>(buffer.size()) / (1024.0 * 1024.0);
  std::printf(
      "%-7s %6zu records, %5.1f bytes/record: %8.1f MiB/s  %6.1f ns/record  "
      "allocs/record %.3f  lines %llu  errors %llu\n",
      name, kRecords, static_cast<double>(buffer.size()) / kRecords, mib / r.best_seconds,
      r.best_seconds * 1e9 / kRecords,
      static_cast<double>(r.allocs) / static_cast<double>(kRecords * (kRounds - 1)),
      static_cast<unsigned long long>(r.lines), static_cast<unsigned long long>(r.errors));
}

}  // namespace

int main() {
  const std::string cri = criBuffer();
  const std::string docker = escapeQuotesInLog(dockerBuffer());
  print("cri", cri,
        run(cri, [](std::string_view record, std::string&) { return parseCriLine(record); }));
  print("docker", docker, run(docker, [](std::string_view record, std::string& scratch) {
          return parseDockerLine(record, scratch);
        }));
  return 0;
}
