// Parsers for the two container log formats kubelet's runtimes write under /var/log/pods, and the
// re-joining of partial lines. No regular expressions; nothing allocated per line in the common
// case.
//
//   CRI (containerd, CRI-O):  <RFC3339Nano timestamp> <stdout|stderr> <P|F> <message>\n
//                             (kubernetes/cri-api, pkg/kubelet/kuberuntime/logs)
//   Docker json-file:         {"log":"<message, JSON-escaped, with its \n>","stream":"stdout",
//                              "time":"<RFC3339Nano>"}\n   (a log without a trailing \n is partial)
//
// What a reader gets wrong: a "line" of the file is not a log line. The runtime splits long lines
// into partial records (CRI tag P, Docker: no trailing newline), per stream, and stdout and stderr
// interleave; joining has to happen per (file, stream).
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace nodewarden::logs {

enum class LogFormat : std::uint8_t { kUnknown, kCri, kDocker };
enum class LogStream : std::uint8_t { kStdout, kStderr };
const char* streamName(LogStream s);

enum class LineError : std::uint8_t { kEmpty, kBadTimestamp, kBadStream, kBadTag, kBadJson };
const char* lineErrorName(LineError e);

struct ParsedLine {
  std::int64_t timestamp_ns = 0;  // UTC nanoseconds since the epoch
  LogStream stream = LogStream::kStdout;
  bool partial = false;      // more of this log line follows in a later record
  std::string_view message;  // without the trailing newline; views the input or scratch
};

// Parses RFC 3339 timestamps with optional fraction (1 to 9 digits) and a zone (Z, z, +hh:mm or
// -hh:mm, converted to UTC). Out-of-range fields, leap seconds and times outside int64 nanoseconds
// are kBadTimestamp.
std::expected<std::int64_t, LineError> parseRfc3339Nano(std::string_view text);

// One record of a CRI log file, without its trailing '\n'.
std::expected<ParsedLine, LineError> parseCriLine(std::string_view record);

// One record of a Docker json-file log, without its trailing '\n'. The unescaped message is written
// to scratch (reused) and message views it.
std::expected<ParsedLine, LineError> parseDockerLine(std::string_view record, std::string& scratch);

// Which format a file is in, from its first record.
LogFormat detectFormat(std::string_view first_record);

// Re-joins partial records of one stream of one file into whole log lines, capped at max_bytes:
// beyond it the rest of the line is discarded and the line is marked truncated. The cut is moved
// back (by at most 3 bytes) to the start of a UTF-8 sequence it would split, so a valid line stays
// valid; bytes that are not UTF-8 are passed through unchanged (Loki stores lines as bytes).
class PartialJoiner {
 public:
  explicit PartialJoiner(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  // Feeds one parsed record. Returns true when a whole line is complete; line() then holds it
  // (valid until the next add or flush), with the timestamp of its first record.
  bool add(const ParsedLine& record);
  // Ends a pending line as if its last record had been final (a rotated file that ended mid-line,
  // a container that exited without a newline). Returns true, with line() holding it, if one was
  // pending.
  bool flush();
  [[nodiscard]] std::string_view line() const { return line_; }
  [[nodiscard]] std::int64_t timestampNs() const { return timestamp_ns_; }
  [[nodiscard]] bool truncated() const { return truncated_; }
  // A line has been started and not finished (its records so far may all have been empty).
  [[nodiscard]] bool pending() const { return !complete_; }
  [[nodiscard]] std::size_t pendingBytes() const { return complete_ ? 0 : line_.size(); }

 private:
  std::size_t max_bytes_;
  std::string line_;
  std::int64_t timestamp_ns_ = 0;
  bool truncated_ = false;
  bool complete_ = true;
};

}  // namespace nodewarden::logs
