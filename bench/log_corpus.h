// LogCorpus: writes a synthetic kubelet container-log tree for the log path benchmarks:
// <dir>/<namespace>_<pod>_<uid>/<container>/0.log in CRI format (containerd's
// "<RFC3339Nano> <stdout|stderr> <P|F> <message>"), with a mix of messages shaped like real
// workloads: klog lines, JSON records, access logs and stack traces, 80 to 400 bytes each (about
// 200 on average).
//
// What a reader gets wrong: "lines" and "records" differ. 5% of the log lines are split into two
// or three partial (P) records, and a third of those have a record of the other stream between
// their parts (as a runtime interleaves stdout and stderr), so a reader that joins per (file,
// stream) must deliver exactly `lines` entries. Output is deterministic for a given seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace nodewarden::bench {

struct LogCorpusOptions {
  std::filesystem::path dir;           // created if missing; existing 0.log files are replaced
  std::uint64_t bytes = 300ULL << 20;  // total file bytes to write (met to within one record)
  std::size_t pods = 8;                // every other pod has a second (sidecar) container
  std::uint64_t seed = 1;
  std::int64_t start_ns = 1795000000LL * 1'000'000'000LL;  // 2026-11-18, UTC
};

struct LogCorpusStats {
  std::vector<std::filesystem::path> files;
  std::uint64_t bytes = 0;          // file bytes
  std::uint64_t records = 0;        // CRI records (newline-terminated lines of the files)
  std::uint64_t lines = 0;          // log lines once partial records are joined
  std::uint64_t line_bytes = 0;     // bytes of the joined log lines (without newlines)
  std::uint64_t partial_lines = 0;  // log lines written as more than one record
  std::uint64_t stderr_lines = 0;
};

std::expected<LogCorpusStats, std::string> writeLogCorpus(const LogCorpusOptions& options);

}  // namespace nodewarden::bench
