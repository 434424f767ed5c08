// The agent's one RFC 3339 parser (RFC 3339 section 5.6, date-time):
// YYYY-MM-DD(T|t)hh:mm:ss[.f+](Z|z|(+|-)hh:mm) turned into its fields. Two thin results read
// them: the CRI and Docker log parsers' int64 nanoseconds (logs::parseRfc3339Nano) and
// Kubernetes' metav1.Time at second precision (pods::parseRfc3339).
//
// What a reader gets wrong: the two results accept different sets on purpose, and the fields say
// enough for each to decide. The log path follows Go's time.Parse as kubelet writes and reads
// CRI timestamps: at most nine fraction digits, no leap second, and only what fits int64
// nanoseconds (1677-09-21 .. 2262-04-11). metav1.Time keeps whole seconds of any four-digit year
// (the Job outcome state file round-trips years 1000-9999), ignores the fraction whatever its
// length, and reads :60 as the next minute's first second. Header-only and inline because the
// CRI parser calls it once per log line; the last second parsed is remembered per thread, since
// log lines come many per second and differ only after it.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace nodewarden::rfc3339 {

struct Fields {
  // Seconds since 1970-01-01T00:00:00 of the written date and time, before the zone offset.
  std::int64_t local_seconds = 0;
  std::int32_t offset_seconds = 0;    // +hh:mm east of UTC; UTC = local_seconds - offset_seconds
  std::int32_t nanos = 0;             // the fraction's first nine digits, as nanoseconds
  std::uint32_t fraction_digits = 0;  // how many digits the fraction had (0: none)
  bool leap_second = false;           // the seconds field was 60
};

namespace detail {

constexpr std::int64_t kSecondsPerDay = 86'400;

constexpr bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Exactly `count` decimal digits at text[pos]; false if any is missing or not a digit.
inline bool readDigits(std::string_view text, std::size_t pos, std::size_t count, int& value) {
  if (pos + count > text.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const char c = text[pos + i];
    if (!isDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  value = v;
  return true;
}

constexpr bool isLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

constexpr int daysInMonth(int y, int m) {
  constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && isLeapYear(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant, "chrono-Compatible
// Low-Level Date Algorithms", days_from_civil).
constexpr std::int64_t daysFromCivil(int y, int m, int d) {
  const std::int64_t year = y - (m <= 2 ? 1 : 0);
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const std::int64_t yoe = year - era * 400;
  const std::int64_t mp = m > 2 ? m - 3 : m + 9;
  const std::int64_t doy = (153 * mp + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// The first 19 bytes (date and time to the second) of the last valid timestamp this thread
// parsed, and what they meant.
struct LastSecond {
  std::array<char, 19> text{};
  std::int64_t seconds = 0;
  bool leap = false;
  bool valid = false;
};

// YYYY-MM-DD(T|t)hh:mm:ss of text (at least 19 bytes) into seconds since the epoch, local time.
[[gnu::always_inline]] inline bool parseDateTime(std::string_view text, std::int64_t& seconds,
                                                 bool& leap) {
  thread_local LastSecond last;
  if (last.valid && std::memcmp(last.text.data(), text.data(), last.text.size()) == 0) {
    seconds = last.seconds;
    leap = last.leap;
    return true;
  }
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!readDigits(text, 0, 4, year) || text[4] != '-' || !readDigits(text, 5, 2, month) ||
      text[7] != '-' || !readDigits(text, 8, 2, day) || (text[10] != 'T' && text[10] != 't') ||
      !readDigits(text, 11, 2, hour) || text[13] != ':' || !readDigits(text, 14, 2, minute) ||
      text[16] != ':' || !readDigits(text, 17, 2, second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return false;
  }
  last.seconds =
      daysFromCivil(year, month, day) * kSecondsPerDay + hour * 3600 + minute * 60 + second;
  last.leap = second == 60;
  std::memcpy(last.text.data(), text.data(), last.text.size());
  last.valid = true;
  seconds = last.seconds;
  leap = last.leap;
  return true;
}

}  // namespace detail

// The fields of an RFC 3339 date-time, or nullopt when text is not one (a field out of range,
// e.g. April 31 or hour 24, included; the whole text must be the date-time).
[[gnu::always_inline]] inline std::optional<Fields> parse(std::string_view text) {
  using detail::isDigit;
  if (text.size() < 20) return std::nullopt;
  Fields out;
  if (!detail::parseDateTime(text, out.local_seconds, out.leap_second)) return std::nullopt;
  std::size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    std::int32_t nanos = 0;
    std::uint32_t digits = 0;
    while (pos < text.size() && isDigit(text[pos])) {
      if (digits < 9) nanos = nanos * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (std::uint32_t d = digits; d < 9; ++d) nanos *= 10;
    out.nanos = nanos;
    out.fraction_digits = digits;
  }
  if (pos >= text.size()) return std::nullopt;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    int hour = 0;
    int minute = 0;
    if (!detail::readDigits(text, pos + 1, 2, hour) || pos + 3 >= text.size() ||
        text[pos + 3] != ':' || !detail::readDigits(text, pos + 4, 2, minute) || hour > 23 ||
        minute > 59) {
      return std::nullopt;
    }
    out.offset_seconds = (hour * 3600 + minute * 60) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  return out;
}

}  // namespace nodewarden::rfc3339
