// JSON log lines for spdlog: a formatter plus the setup of the default logger.
//
// What a reader gets wrong: the formatter must never produce invalid JSON, whatever the message
// holds, because a single bad line makes jq and most log shippers drop or mangle it. Hence the
// UTF-8 check, not just quote escaping.
#include "agent/json_log.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstdint>

namespace nodewarden {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8
constexpr std::string_view kHexDigits = "0123456789abcdef";

void append(spdlog::memory_buf_t& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

// Length of the well-formed UTF-8 sequence at s[i] (Unicode 15, table 3-7), or 0 if it is not one.
std::size_t validUtf8Length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  if (byte(i + 1) < second_min || byte(i + 1) > second_max) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

std::string_view levelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

}  // namespace

std::expected<spdlog::level::level_enum, std::string> parseLogLevel(std::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  return std::unexpected(
      fmt::format("unknown log level \"{}\" (expected trace, debug, info, warn or error)", name));
}

void appendJsonEscaped(std::string_view s, spdlog::memory_buf_t& out) {
  std::size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run that needs no escaping in one go.
    std::size_t run = i;
    while (run < s.size()) {
      const auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++run;
    }
    append(out, s.substr(i, run - i));
    i = run;
    if (i == s.size()) break;

    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t length = validUtf8Length(s, i);
      if (length == 0) {
        append(out, kReplacementCharacter);
        ++i;
      } else {
        append(out, s.substr(i, length));
        i += length;
      }
      continue;
    }
    switch (c) {
      case '"':
        append(out, "\\\"");
        break;
      case '\\':
        append(out, "\\\\");
        break;
      case '\n':
        append(out, "\\n");
        break;
      case '\r':
        append(out, "\\r");
        break;
      case '\t':
        append(out, "\\t");
        break;
      case '\b':
        append(out, "\\b");
        break;
      case '\f':
        append(out, "\\f");
        break;
      default:
        append(out, "\\u00");
        out.push_back(kHexDigits[c >> 4]);
        out.push_back(kHexDigits[c & 0xF]);
        break;
    }
    ++i;
  }
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  using std::chrono::seconds;

  const auto since_epoch = msg.time.time_since_epoch();
  const auto whole_seconds = std::chrono::floor<seconds>(since_epoch);
  const auto millis = duration_cast<milliseconds>(since_epoch - whole_seconds).count();
  const std::time_t second = static_cast<std::time_t>(whole_seconds.count());
  if (second != cached_second_) {
    std::tm utc{};
    gmtime_r(&second, &utc);
    fmt::format_to_n(cached_prefix_.data(), cached_prefix_.size(),
                     "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", utc.tm_year + 1900, utc.tm_mon + 1,
                     utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    cached_second_ = second;
  }

  append(dest, "{\"ts\":\"");
  append(dest, std::string_view(cached_prefix_.data(), cached_prefix_.size()));
  const std::array<char, 5> fraction = {'.', static_cast<char>('0' + millis / 100),
                                        static_cast<char>('0' + millis / 10 % 10),
                                        static_cast<char>('0' + millis % 10), 'Z'};
  append(dest, std::string_view(fraction.data(), fraction.size()));
  append(dest, "\",\"level\":\"");
  append(dest, levelName(msg.level));
  append(dest, "\",\"msg\":\"");
  appendJsonEscaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  append(dest, "\"}\n");
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

void setupJsonLogging(std::string_view level, spdlog::sink_ptr sink) {
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(std::make_unique<JsonLogFormatter>());
  auto logger = std::make_shared<spdlog::logger>("nodewarden", std::move(sink));
  const auto parsed = parseLogLevel(level);
  logger->set_level(parsed.value_or(spdlog::level::info));
  spdlog::set_default_logger(logger);
  if (!parsed) spdlog::warn("{}; logging at info", parsed.error());
}

}  // namespace nodewarden
