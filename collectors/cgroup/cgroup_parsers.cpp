#include "collectors/cgroup/cgroup_parsers.h"

#include <charconv>

namespace nodewarden::cgroup {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// Steps to the next line that is not blank and takes its first field into first: every line of
// io.stat, blkio.throttle.* and *.pressure starts with what it is about.
bool nextLine(LineReader& lines, FieldReader& fields, std::string_view& first) {
  std::string_view line;
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    fields = FieldReader(line);
    return fields.next(first);
  }
  return false;
}

std::expected<std::pair<std::uint32_t, std::uint32_t>, ParseError> parseDevice(
    std::string_view dev) {
  const auto colon = dev.find(':');
  if (colon == std::string_view::npos) return std::unexpected(ParseError::kMalformed);
  auto maj = parseU64(dev.substr(0, colon));
  auto min = parseU64(dev.substr(colon + 1));
  if (!maj || !min || *maj > UINT32_MAX || *min > UINT32_MAX) {
    return std::unexpected(ParseError::kMalformed);
  }
  return std::pair{static_cast<std::uint32_t>(*maj), static_cast<std::uint32_t>(*min)};
}

IoDeviceStat* findOrAddDevice(std::span<IoDeviceStat> out, std::uint8_t& count, std::uint32_t maj,
                              std::uint32_t min) {
  for (std::uint8_t i = 0; i < count; ++i) {
    if (out[i].major == maj && out[i].minor == min) return &out[i];
  }
  if (count >= out.size()) return nullptr;
  IoDeviceStat& d = out[count++];
  d = IoDeviceStat{};
  d.major = maj;
  d.minor = min;
  return &d;
}

}  // namespace

const char* parseErrorName(ParseError e) {
  switch (e) {
    case ParseError::kEmpty:
      return "empty";
    case ParseError::kNotANumber:
      return "not_a_number";
    case ParseError::kMalformed:
      return "malformed";
    case ParseError::kTooManyDevices:
      return "too_many_devices";
  }
  return "unknown";
}

std::expected<std::uint64_t, ParseError> parseU64(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::unexpected(ParseError::kEmpty);
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size()) {
    return std::unexpected(ParseError::kNotANumber);
  }
  return v;
}

std::expected<std::uint64_t, ParseError> parseSingleValue(std::string_view content) {
  return parseU64(content);
}

std::expected<std::uint64_t, ParseError> parseV1MemoryLimit(std::string_view content) {
  auto v = parseU64(content);
  if (!v) return v;
  return *v > (std::uint64_t{1} << 62) ? 0 : *v;
}

std::expected<std::uint64_t, ParseError> parseV2MemoryMax(std::string_view content) {
  const auto t = trim(content);
  if (t == "max") return 0;
  return parseU64(t);
}

std::expected<std::optional<std::uint64_t>, ParseError> parseV1CpuQuota(std::string_view content) {
  const auto t = trim(content);
  if (t == "-1") return std::optional<std::uint64_t>{};
  auto v = parseU64(t);
  if (!v) return std::unexpected(v.error());
  return std::optional<std::uint64_t>{*v};
}

std::expected<CpuMax, ParseError> parseCpuMax(std::string_view content) {
  const std::string_view text = trim(content);
  if (text.empty()) return std::unexpected(ParseError::kEmpty);
  FieldReader fields(text);
  std::string_view max_tok;
  std::string_view period_tok;
  fields.next(max_tok);
  if (!fields.next(period_tok) || !fields.atEnd()) return std::unexpected(ParseError::kMalformed);
  CpuMax out;
  auto period = parseU64(period_tok);
  if (!period) return std::unexpected(period.error());
  out.period_us = *period;
  if (max_tok != "max") {
    auto q = parseU64(max_tok);
    if (!q) return std::unexpected(q.error());
    out.quota_us = *q;
  }
  return out;
}

std::uint64_t cpuWeightToShares(std::uint64_t weight) {
  // Inverse of runc's ConvertCPUSharesToCgroupV2Value: weight = 1 + ((shares - 2) * 9999) / 262142.
  if (weight == 0) return 0;
  return 2 + ((weight - 1) * 262142) / 9999;
}

std::expected<PsiTotals, ParseError> parsePressure(std::string_view content) {
  PsiTotals out;
  if (trim(content).empty()) return std::unexpected(ParseError::kEmpty);
  LineReader lines(content);
  FieldReader fields({});
  std::string_view kind;
  while (nextLine(lines, fields, kind)) {
    if (kind != "some" && kind != "full") return std::unexpected(ParseError::kMalformed);
    bool found_total = false;
    std::string_view tok;
    while (fields.next(tok)) {
      if (tok.starts_with("total=")) {
        auto v = parseU64(tok.substr(6));
        if (!v) return std::unexpected(v.error());
        if (kind == "some") {
          out.some_us = *v;
          out.has_some = true;
        } else {
          out.full_us = *v;
          out.has_full = true;
        }
        found_total = true;
      }
    }
    if (!found_total) return std::unexpected(ParseError::kMalformed);
  }
  if (!out.has_some) return std::unexpected(ParseError::kMalformed);
  return out;
}

std::expected<std::uint8_t, ParseError> parseIoStat(std::string_view content,
                                                    std::span<IoDeviceStat> out) {
  std::uint8_t count = 0;
  LineReader lines(content);
  FieldReader fields({});
  std::string_view tok;
  while (nextLine(lines, fields, tok)) {
    auto dev = parseDevice(tok);
    if (!dev) return std::unexpected(dev.error());
    IoDeviceStat* d = findOrAddDevice(out, count, dev->first, dev->second);
    if (d == nullptr) return std::unexpected(ParseError::kTooManyDevices);
    while (fields.next(tok)) {
      const auto eq = tok.find('=');
      if (eq == std::string_view::npos) return std::unexpected(ParseError::kMalformed);
      auto v = parseU64(tok.substr(eq + 1));
      if (!v) return std::unexpected(v.error());
      const auto key = tok.substr(0, eq);
      if (key == "rbytes")
        d->read_bytes = *v;
      else if (key == "wbytes")
        d->write_bytes = *v;
      else if (key == "rios")
        d->reads = *v;
      else if (key == "wios")
        d->writes = *v;
      // dbytes, dios and keys added by later kernels are not exported.
    }
  }
  return count;
}

std::expected<std::uint8_t, ParseError> parseBlkioThrottle(std::string_view content, bool bytes,
                                                           std::span<IoDeviceStat> out,
                                                           std::uint8_t count) {
  LineReader lines(content);
  FieldReader fields({});
  std::string_view first;
  while (nextLine(lines, fields, first)) {
    if (first == "Total") continue;  // the sum over devices; per-device lines carry the data
    auto dev = parseDevice(first);
    if (!dev) return std::unexpected(dev.error());
    std::string_view op;
    const bool has_op = fields.next(op);
    auto v = parseU64(fields.rest());  // the value is the rest of the line
    if (!has_op || !v) return std::unexpected(ParseError::kMalformed);
    if (op != "Read" && op != "Write") continue;  // Sync, Async, Discard, Total
    IoDeviceStat* d = findOrAddDevice(out, count, dev->first, dev->second);
    if (d == nullptr) return std::unexpected(ParseError::kTooManyDevices);
    const bool read = op == "Read";
    if (bytes) {
      (read ? d->read_bytes : d->write_bytes) = *v;
    } else {
      (read ? d->reads : d->writes) = *v;
    }
  }
  return count;
}

std::expected<std::uint64_t, ParseError> parseSchedstatRunDelay(std::string_view content) {
  while (!content.empty() && (content.back() == '\n' || content.back() == ' ')) {
    content.remove_suffix(1);
  }
  if (content.empty()) return std::unexpected(ParseError::kEmpty);
  const std::size_t first = content.find(' ');
  if (first == std::string_view::npos) return std::unexpected(ParseError::kMalformed);
  std::string_view rest = content.substr(first + 1);
  const std::size_t second = rest.find(' ');
  if (second == std::string_view::npos) return std::unexpected(ParseError::kMalformed);
  if (!parseU64(content.substr(0, first))) return std::unexpected(ParseError::kNotANumber);
  return parseU64(rest.substr(0, second));
}

}  // namespace nodewarden::cgroup
