// Parsers for the node-wide /proc files NodeCollector reads: /proc/stat, /proc/meminfo,
// /proc/pressure/{cpu,memory,io} and /proc/loadavg. Text in, caller-owned structs out; nothing is
// allocated once the output vectors have reached their steady-state size.
//
// What a reader gets wrong: these parsers are strict on purpose. Every line the kernel writes ends
// in '\n', so text that does not is a short read and is rejected rather than parsed up to the cut
// (a cut number would be a wrong number, not a missing one). On error the output is unspecified:
// the caller must mark the section absent, never export what is left in it.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/snapshot.h"

namespace nodewarden {

enum class ProcParseError : std::uint8_t {
  kEmpty,       // no bytes at all
  kTruncated,   // last line has no '\n', or a field every kernel prints is missing
  kMalformed,   // a line or a value that is not in the documented format
  kOutOfRange,  // a number that does not fit its type (or overflows after unit conversion)
  kDuplicate,   // a key the kernel prints once appears twice
};

// Stable lower_snake name for logs and error details.
[[nodiscard]] std::string_view procParseErrorName(ProcParseError error);

// /proc/stat (Documentation/filesystems/proc.rst, "1.7 Miscellaneous kernel statistics in
// /proc/stat"). Fills out.cpus with the per-cpu lines (the aggregate "cpu" line is skipped) and
// context_switches (ctxt), boot_time_s (btime), forks (processes), interrupts (first number of
// intr), procs_running and procs_blocked. All of those are required. A cpu line needs the four
// columns every kernel prints (user nice system idle); up to ten are kept, later ones ignored.
// Does not touch out.has_stat or the other sections.
[[nodiscard]] std::expected<void, ProcParseError> parseProcStat(std::string_view text,
                                                                NodeSample& out);

// /proc/meminfo (proc.rst, "meminfo"): "Key:   value[ kB]" lines. Values with the kB unit are
// converted to bytes (x1024); values without a unit (HugePages_Total, _Free, _Rsvd, _Surp) are
// page counts and kept as printed. Overwrites out in place, reusing its strings, and resizes it to
// the number of keys read.
using MeminfoEntries = std::vector<std::pair<std::string, std::uint64_t>>;
[[nodiscard]] std::expected<void, ProcParseError> parseMeminfo(std::string_view text,
                                                               MeminfoEntries& out);

// /proc/pressure/{cpu,memory,io} (Documentation/accounting/psi.rst):
//   some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
// total is in microseconds. "some" is required; "full" is absent from /proc/pressure/cpu before
// 5.13 (and all zeros at system level after), so out.has_full says whether it was printed.
[[nodiscard]] std::expected<void, ProcParseError> parsePressure(std::string_view text,
                                                                PsiTotals& out);

// /proc/loadavg (proc.rst, "loadavg"): "0.20 0.18 0.12 1/80 11206".
struct LoadAverages {
  double load1 = 0;
  double load5 = 0;
  double load15 = 0;
};
[[nodiscard]] std::expected<LoadAverages, ProcParseError> parseLoadavg(std::string_view text);

}  // namespace nodewarden
