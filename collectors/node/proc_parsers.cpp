// Strict, allocation-free parsers for /proc/stat, /proc/meminfo, /proc/pressure/* and
// /proc/loadavg; the formats and the kernel documents they follow are in proc_parsers.h.
//
// What a reader gets wrong: from_chars is used on whole fields and must consume all of it. A field
// like "12x" or "-1" is rejected instead of read as 12 or wrapped, and unsigned overflow is an
// error, so a garbled file can only ever produce an error, never a plausible wrong number.
#include "collectors/node/proc_parsers.h"

#include <array>
#include <charconv>
#include <limits>
#include <system_error>

#include "collectors/common/line_reader.h"

namespace nodewarden {
namespace {

using Result = std::expected<void, ProcParseError>;

constexpr bool isDigit(char c) { return c >= '0' && c <= '9'; }
constexpr bool isMeminfoKeyChar(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '(' ||
         c == ')';
}

// Every /proc file here is a sequence of '\n'-terminated lines; anything else is a short read.
Result checkWholeLines(std::string_view text) {
  if (text.empty()) {
    return std::unexpected(ProcParseError::kEmpty);
  }
  if (text.back() != '\n') {
    return std::unexpected(ProcParseError::kTruncated);
  }
  return {};
}

// A whole field as an unsigned decimal: digits only, no sign, no trailing bytes.
std::expected<std::uint64_t, ProcParseError> toU64(std::string_view field) {
  if (field.empty() || !isDigit(field.front())) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  std::uint64_t value = 0;
  const char* end = field.data() + field.size();
  const auto [ptr, ec] = std::from_chars(field.data(), end, value);
  if (ec == std::errc::result_out_of_range) {
    return std::unexpected(ProcParseError::kOutOfRange);
  }
  if (ec != std::errc() || ptr != end) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  return value;
}

// The kernel's fixed-point "%lu.%02lu" (load averages, PSI averages): digits '.' digits.
bool isFixedPoint(std::string_view field) {
  const std::size_t dot = field.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot + 1 == field.size()) {
    return false;
  }
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (i != dot && !isDigit(field[i])) {
      return false;
    }
  }
  return true;
}

std::expected<double, ProcParseError> toFixedPoint(std::string_view field) {
  if (!isFixedPoint(field)) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  double value = 0;
  const char* end = field.data() + field.size();
  const auto [ptr, ec] = std::from_chars(field.data(), end, value, std::chars_format::fixed);
  if (ec == std::errc::result_out_of_range) {
    return std::unexpected(ProcParseError::kOutOfRange);
  }
  if (ec != std::errc() || ptr != end) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  return value;
}

// "<key> <number>" with nothing after the number.
Result readSingleValue(FieldReader& fields, std::uint64_t& into) {
  std::string_view field;
  if (!fields.next(field)) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  auto value = toU64(field);
  if (!value) {
    return std::unexpected(value.error());
  }
  if (!fields.atEnd()) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  into = *value;
  return {};
}

// One "cpu" / "cpuN" line after its key: user nice system idle [iowait irq softirq steal guest
// guest_nice]. Kernels since 2.6.33 print all ten; columns past the tenth are validated, not kept.
Result readCpuColumns(FieldReader& fields, CpuTimes& times) {
  constexpr std::uint8_t kMinColumns = 4;
  std::string_view field;
  std::size_t seen = 0;
  while (fields.next(field)) {
    auto value = toU64(field);
    if (!value) {
      return std::unexpected(value.error());
    }
    if (seen < times.ticks.size()) {
      times.ticks[seen] = *value;
    }
    ++seen;
  }
  if (seen < kMinColumns) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  times.columns = static_cast<std::uint8_t>(seen < times.ticks.size() ? seen : times.ticks.size());
  return {};
}

}  // namespace

std::string_view procParseErrorName(ProcParseError error) {
  switch (error) {
    case ProcParseError::kEmpty:
      return "empty";
    case ProcParseError::kTruncated:
      return "truncated";
    case ProcParseError::kMalformed:
      return "malformed";
    case ProcParseError::kOutOfRange:
      return "out_of_range";
    case ProcParseError::kDuplicate:
      return "duplicate";
  }
  return "unknown";
}

Result parseProcStat(std::string_view text, NodeSample& out) {
  if (auto ok = checkWholeLines(text); !ok) {
    return ok;
  }
  // Bits of the keys seen, so that a file cut at a line boundary (no partial line to betray it)
  // still fails: every kernel since 2.6 prints all of these.
  enum : unsigned {
    kSeenCpuTotal = 1U << 0,
    kSeenIntr = 1U << 1,
    kSeenCtxt = 1U << 2,
    kSeenBtime = 1U << 3,
    kSeenProcesses = 1U << 4,
    kSeenRunning = 1U << 5,
    kSeenBlocked = 1U << 6,
  };
  constexpr unsigned kRequired =
      kSeenIntr | kSeenCtxt | kSeenBtime | kSeenProcesses | kSeenRunning | kSeenBlocked;
  unsigned seen = 0;
  std::uint64_t interrupts = 0;
  std::uint64_t context_switches = 0;
  std::uint64_t boot_time = 0;
  std::uint64_t forks = 0;
  std::uint64_t running = 0;
  std::uint64_t blocked = 0;

  struct SingleValueKey {
    std::string_view key;
    unsigned bit;
    std::uint64_t* into;
  };
  const std::array<SingleValueKey, 5> singles{{
      {"ctxt", kSeenCtxt, &context_switches},
      {"btime", kSeenBtime, &boot_time},
      {"processes", kSeenProcesses, &forks},
      {"procs_running", kSeenRunning, &running},
      {"procs_blocked", kSeenBlocked, &blocked},
  }};

  auto once = [&seen](unsigned bit) -> Result {
    if ((seen & bit) != 0) {
      return std::unexpected(ProcParseError::kDuplicate);
    }
    seen |= bit;
    return {};
  };

  out.cpus.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    FieldReader fields(line);
    std::string_view key;
    if (!fields.next(key)) {
      return std::unexpected(ProcParseError::kMalformed);
    }
    if (key.starts_with("cpu")) {
      const std::string_view id = key.substr(3);
      CpuTimes times;
      if (id.empty()) {
        if (auto ok = once(kSeenCpuTotal); !ok) {
          return ok;
        }
      } else {
        const auto cpu = toU64(id);
        if (!cpu) {
          return std::unexpected(cpu.error());
        }
        if (*cpu > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
          return std::unexpected(ProcParseError::kOutOfRange);
        }
        times.cpu = static_cast<int>(*cpu);
        // The kernel prints online cpus in ascending order; anything else (a repeat) would make
        // two series with the same labels.
        if (!out.cpus.empty() && out.cpus.back().cpu >= times.cpu) {
          return std::unexpected(ProcParseError::kDuplicate);
        }
      }
      if (auto ok = readCpuColumns(fields, times); !ok) {
        return ok;
      }
      if (times.cpu >= 0) {
        out.cpus.push_back(times);
      }
      continue;
    }

    if (key == "intr") {
      // "intr <total> <per-irq counts...>": only the total is kept, the rest may be thousands of
      // columns and is not validated.
      std::string_view first;
      if (!fields.next(first)) {
        return std::unexpected(ProcParseError::kMalformed);
      }
      auto total = toU64(first);
      if (!total) {
        return std::unexpected(total.error());
      }
      interrupts = *total;
      if (auto ok = once(kSeenIntr); !ok) {
        return ok;
      }
      continue;
    }
    // Other keys (softirq, and page/swap/disk_io on ancient kernels) are not exported.
    for (const auto& single : singles) {
      if (key != single.key) {
        continue;
      }
      if (auto ok = once(single.bit); !ok) {
        return ok;
      }
      if (auto ok = readSingleValue(fields, *single.into); !ok) {
        return ok;
      }
      break;
    }
  }
  if ((seen & kRequired) != kRequired) {
    return std::unexpected(ProcParseError::kTruncated);
  }
  out.interrupts = interrupts;
  out.context_switches = context_switches;
  out.boot_time_s = boot_time;
  out.forks = forks;
  out.procs_running = running;
  out.procs_blocked = blocked;
  return {};
}

Result parseMeminfo(std::string_view text, MeminfoEntries& out) {
  if (auto ok = checkWholeLines(text); !ok) {
    return ok;
  }
  constexpr std::uint64_t kKiB = 1024;
  std::size_t count = 0;
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (line.empty()) {
      continue;  // some vendor kernels (CentOS 6, 3.10.90) print blank lines; node_exporter skips
    }
    const std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
      return std::unexpected(ProcParseError::kMalformed);
    }
    const std::string_view key = line.substr(0, colon);
    for (const char c : key) {
      if (!isMeminfoKeyChar(c)) {
        return std::unexpected(ProcParseError::kMalformed);
      }
    }
    FieldReader fields(line.substr(colon + 1));
    std::string_view number;
    if (!fields.next(number)) {
      return std::unexpected(ProcParseError::kMalformed);
    }
    auto value = toU64(number);
    if (!value) {
      return std::unexpected(value.error());
    }
    std::uint64_t bytes = *value;
    std::string_view unit;
    if (fields.next(unit)) {
      if (unit != "kB" || !fields.atEnd()) {
        return std::unexpected(ProcParseError::kMalformed);
      }
      if (bytes > std::numeric_limits<std::uint64_t>::max() / kKiB) {
        return std::unexpected(ProcParseError::kOutOfRange);
      }
      bytes *= kKiB;
    }
    // ~60 short keys: a linear scan is cheaper than any set, and repeats would export twice.
    for (std::size_t i = 0; i < count; ++i) {
      if (out[i].first == key) {
        return std::unexpected(ProcParseError::kDuplicate);
      }
    }
    if (count < out.size()) {
      auto& slot = out[count];
      if (slot.first != key) {
        slot.first.assign(key);  // reuses the string's capacity
      }
      slot.second = bytes;
    } else {
      out.emplace_back(std::string(key), bytes);
    }
    ++count;
  }
  if (count == 0) {
    return std::unexpected(ProcParseError::kEmpty);
  }
  out.resize(count);
  return {};
}

Result parsePressure(std::string_view text, PsiTotals& out) {
  if (auto ok = checkWholeLines(text); !ok) {
    return ok;
  }
  PsiTotals totals;
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    FieldReader fields(line);
    std::string_view kind;
    if (!fields.next(kind)) {
      return std::unexpected(ProcParseError::kMalformed);
    }
    bool* has = nullptr;
    std::uint64_t* total_us = nullptr;
    if (kind == "some") {
      has = &totals.has_some;
      total_us = &totals.some_us;
    } else if (kind == "full") {
      has = &totals.has_full;
      total_us = &totals.full_us;
    } else {
      return std::unexpected(ProcParseError::kMalformed);
    }
    if (*has) {
      return std::unexpected(ProcParseError::kDuplicate);
    }
    bool have_total = false;
    std::string_view token;
    while (fields.next(token)) {
      const std::size_t eq = token.find('=');
      if (eq == 0 || eq == std::string_view::npos) {
        return std::unexpected(ProcParseError::kMalformed);
      }
      const std::string_view name = token.substr(0, eq);
      const std::string_view value = token.substr(eq + 1);
      if (name == "total") {
        if (have_total) {
          return std::unexpected(ProcParseError::kDuplicate);
        }
        auto us = toU64(value);
        if (!us) {
          return std::unexpected(us.error());
        }
        *total_us = *us;
        have_total = true;
      } else if (name.starts_with("avg") && !isFixedPoint(value)) {
        return std::unexpected(ProcParseError::kMalformed);
      }
    }
    if (!have_total) {
      return std::unexpected(ProcParseError::kMalformed);
    }
    *has = true;
  }
  if (!totals.has_some) {
    return std::unexpected(ProcParseError::kTruncated);
  }
  out = totals;
  return {};
}

std::expected<LoadAverages, ProcParseError> parseLoadavg(std::string_view text) {
  if (auto ok = checkWholeLines(text); !ok) {
    return std::unexpected(ok.error());
  }
  LineReader lines(text);
  std::string_view line;
  lines.next(line);
  std::string_view extra;
  if (lines.next(extra)) {
    return std::unexpected(ProcParseError::kMalformed);  // the file is exactly one line
  }
  FieldReader fields(line);
  std::array<double, 3> loads{};
  for (double& load : loads) {
    std::string_view field;
    if (!fields.next(field)) {
      return std::unexpected(ProcParseError::kTruncated);
    }
    auto value = toFixedPoint(field);
    if (!value) {
      return std::unexpected(value.error());
    }
    load = *value;
  }
  // "running/total" and the last pid are not exported, but a file that gets them wrong is not
  // the documented format, so its load averages are not trusted either.
  std::string_view tasks;
  std::string_view last_pid;
  if (!fields.next(tasks) || !fields.next(last_pid)) {
    return std::unexpected(ProcParseError::kTruncated);
  }
  const std::size_t slash = tasks.find('/');
  if (slash == std::string_view::npos || !toU64(tasks.substr(0, slash)) ||
      !toU64(tasks.substr(slash + 1)) || !toU64(last_pid) || !fields.atEnd()) {
    return std::unexpected(ProcParseError::kMalformed);
  }
  return LoadAverages{loads[0], loads[1], loads[2]};
}

}  // namespace nodewarden
