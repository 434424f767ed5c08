// JSON logging: the agent's own log as one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-21T23:59:59.123Z","level":"info","msg":"collector started"}
// so that the node's log pipeline (and our own Loki exporter) can parse it without a regex.
//
// What a reader gets wrong: callers keep using spdlog::info(...) with fmt placeholders; the JSON
// is made by a spdlog formatter on the sink, after fmt has produced the text. The message may hold
// anything (paths, peer replies, bytes from log files): it is escaped, and invalid UTF-8 is
// replaced with U+FFFD, so every line is valid JSON.
#pragma once

#include <spdlog/common.h>
#include <spdlog/formatter.h>

#include <array>
#include <ctime>
#include <expected>
#include <memory>
#include <string>
#include <string_view>

namespace nodewarden {

// Accepts exactly the config's names: trace, debug, info, warn, error.
std::expected<spdlog::level::level_enum, std::string> parseLogLevel(std::string_view name);

// Replaces spdlog's default logger with one that writes JSON lines at the given level to sink
// (default: a thread-safe stderr sink). An unknown level falls back to info and says so in the log;
// validateConfig rejects unknown levels before this is called.
void setupJsonLogging(std::string_view level, spdlog::sink_ptr sink = nullptr);

// Appends s to out as the inside of a JSON string (RFC 8259 section 7): quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced with U+FFFD.
void appendJsonEscaped(std::string_view s, spdlog::memory_buf_t& out);

// Formats one record as {"ts":...,"level":...,"msg":...} and a newline. Not thread-safe by itself:
// spdlog calls a sink's formatter under the sink's lock.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  // "YYYY-MM-DDTHH:MM:SS" of cached_second_, so gmtime runs once a second, not once a line.
  std::time_t cached_second_ = -1;
  std::array<char, 19> cached_prefix_{};
};

}  // namespace nodewarden
