// Parsers for the cgroup interface files nodewarden reads, v1 and v2, each following the kernel's
// documentation (Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/{memory,cpuacct,blkio}.rst,
// scheduler/sched-bwc.rst, accounting/psi.rst). All take the file's bytes and allocate nothing.
//
// What a reader gets wrong: "garbled" is decided per value, not per file. A flat-keyed file with
// one bad line still yields its good keys; the bad line is reported so it can be counted.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "collectors/common/line_reader.h"
#include "pipeline/snapshot.h"

namespace nodewarden::cgroup {

enum class ParseError { kEmpty, kNotANumber, kMalformed, kTooManyDevices };
const char* parseErrorName(ParseError e);

// Unsigned decimal, surrounding whitespace allowed, nothing else. Overflow is an error.
std::expected<std::uint64_t, ParseError> parseU64(std::string_view text);

// A file holding one unsigned number (cpuacct.usage, memory.current, cpu.shares, ...).
std::expected<std::uint64_t, ParseError> parseSingleValue(std::string_view content);

// "key value" lines (cpu.stat, memory.stat, memory.events, memory.oom_control). Calls
// on_value(key, value) for every well-formed line; returns the number of malformed lines. When
// on_value returns bool, false stops the scan (the caller has every key it wants).
template <typename OnValue>
int parseFlatKeyed(std::string_view content, OnValue&& on_value) {
  int bad = 0;
  LineReader lines(content);
  std::string_view line;
  while (lines.next(line)) {
    if (line.empty()) continue;
    const auto sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0) {
      ++bad;
      continue;
    }
    auto v = parseU64(line.substr(sp + 1));
    if (!v) {
      ++bad;
      continue;
    }
    if constexpr (std::is_same_v<decltype(on_value(line.substr(0, sp), *v)), bool>) {
      if (!on_value(line.substr(0, sp), *v)) break;
    } else {
      on_value(line.substr(0, sp), *v);
    }
  }
  return bad;
}

// v1 memory.limit_in_bytes: the kernel's "unlimited" is PAGE_COUNTER_MAX pages, a number near
// 2^63; like cAdvisor, anything above 2^62 is reported as 0 (no limit).
std::expected<std::uint64_t, ParseError> parseV1MemoryLimit(std::string_view content);

// v2 memory.max / memory.swap.max: "max" or a number; "max" is reported as 0 (no limit).
std::expected<std::uint64_t, ParseError> parseV2MemoryMax(std::string_view content);

// v1 cpu.cfs_quota_us: -1 means no quota (nullopt).
std::expected<std::optional<std::uint64_t>, ParseError> parseV1CpuQuota(std::string_view content);

// v2 cpu.max: "$MAX $PERIOD" where $MAX may be "max" (no quota: nullopt).
struct CpuMax {
  std::optional<std::uint64_t> quota_us;
  std::uint64_t period_us = 0;
};
std::expected<CpuMax, ParseError> parseCpuMax(std::string_view content);

// v2 cpu.weight [1, 10000] converted to v1 shares [2, 262144] the way cAdvisor and runc map them
// back, so container_spec_cpu_shares means the same on both hierarchies.
std::uint64_t cpuWeightToShares(std::uint64_t weight);

// PSI: "some avg10=.. avg60=.. avg300=.. total=N" and an optional "full ..." line.
std::expected<PsiTotals, ParseError> parsePressure(std::string_view content);

// v2 io.stat: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=.." per line.
std::expected<std::uint8_t, ParseError> parseIoStat(std::string_view content,
                                                    std::span<IoDeviceStat> out);

// v1 blkio.throttle.io_service_bytes / io_serviced: "MAJ:MIN Read N" ... "Total N" lines. Fills
// read_bytes/write_bytes (bytes == true) or reads/writes into the devices already in out[0, count),
// adding devices as they appear. Returns the new device count.
std::expected<std::uint8_t, ParseError> parseBlkioThrottle(std::string_view content, bool bytes,
                                                           std::span<IoDeviceStat> out,
                                                           std::uint8_t count);

// /proc/<tid>/schedstat: "<on-cpu ns> <run_delay ns> <timeslices>" (sched-stats.rst); the
// second field.
std::expected<std::uint64_t, ParseError> parseSchedstatRunDelay(std::string_view content);

}  // namespace nodewarden::cgroup
