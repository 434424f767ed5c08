// MultilineStage: the log path's first stage. Joins the lines of one stack trace (JVM, Python, Go
// panics, or a custom rule's start/continue pattern) into one entry, per stream, after the tailer
// joined CRI/Docker partial records. The entry keeps its first line's timestamp and metadata; its
// lines are joined with "\n".
//
// What a reader gets wrong: a JVM trace's header is the line before its first `\tat` frame, which
// can be any line (a logback message, `java.lang.X: msg`). So the last line of every stream is
// held until the next line of that stream shows whether it continues, or until flush_timeout has
// passed since the first flushDue() that saw it held. Everything held is bounded: a group is passed
// on before it would pass max_bytes or max_lines (what follows starts the next entry, nothing is
// lost), and after flush_timeout.
//
// What a reader gets wrong about positions: while a group of a source (a file) is held, every
// other entry of that source (the file's other stream) is passed on with the checkpoint the source
// had before the group's first line (LogStage's rule), so a crash reads the held lines again. A
// group that a rotation split keeps the checkpoint of the file it started in; the newer file's
// position moves with its next entry.
//
// Built-in rules are byte checks on a line's first bytes, not regular expressions; custom rules
// are RE2 patterns chosen per stream by a LogSelector (the first rule that matches wins; a stream
// a custom rule chooses gets no built-in rule).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline/container_metadata.h"
#include "pipeline/log_selector.h"
#include "pipeline/log_stage.h"

namespace re2 {
class RE2;
}

namespace nodewarden {

// collectors.logs.multiline.rules[]: exactly one of start and continue_pattern is set.
struct MultilineRule {
  LogSelector match;
  std::string start;             // a line matching it starts an entry; others continue it
  std::string continue_pattern;  // a line matching it continues the previous one
  bool operator==(const MultilineRule&) const = default;
};

// collectors.logs.multiline.*
struct MultilineOptions {
  bool enabled = true;
  bool jvm = true;
  bool python = true;
  bool go = true;
  std::chrono::milliseconds flush_timeout{1000};
  std::size_t max_lines = 1000;
  std::vector<MultilineRule> rules;
  // collectors.logs.max_line_bytes: a joined entry is never longer (set by the agent).
  std::size_t max_bytes = 256 << 10;
  bool operator==(const MultilineOptions&) const = default;
};

// The built-in rules' line checks, exposed for tests and the benchmark.
namespace multiline {
// `\tat pkg.Class.method(File.java:12)` (any indentation).
bool isJvmFrame(std::string_view line);
// A line that continues a JVM trace: a frame, `Caused by: `, `Suppressed: `, `... N more`, ...
bool isJvmContinuation(std::string_view line);
// `XxxError: msg`, `pkg.XxxException`, `KeyboardInterrupt`: the last line of a Python traceback.
bool isPythonExceptionLine(std::string_view line);
// `goroutine 1 [running]:`
bool isGoroutineHeader(std::string_view line);
}  // namespace multiline

class MultilineStage final : public LogStage {
 public:
  // metadata (optional) gives selectors their pod labels. Fails on a rule RE2 cannot compile
  // (the config reader checked them already).
  static std::expected<std::unique_ptr<MultilineStage>, std::string> create(
      MultilineOptions options, const ContainerMetadata* metadata, prometheus::Registry& registry);
  ~MultilineStage() override;

  bool accept(const Labels& labels, const LogEntry& entry,
              const LogCheckpoint& checkpoint) override {
    return acceptStream(labels, entry, checkpoint, 0);
  }
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& checkpoint,
                    std::uint64_t stream_id) override;
  bool flushDue(Clock::time_point now, bool force) override;

  // Streams holding a line or a group now.
  [[nodiscard]] std::size_t heldStreams() const { return held_.size(); }

  enum class Kind : std::uint8_t { kPlain, kJvm, kPython, kGo, kCustom };
  enum class Phase : std::uint8_t {
    kNone,
    kPyBody,       // after `Traceback ...:` or a `  File` line
    kPyAfterEnd,   // after the `XxxError: ...` line: a chained traceback may follow
    kPyChainText,  // after `During handling of the above exception ...`
    kGoHeader,     // after `panic: ` / `fatal error: `
    kGoStack,      // in a `goroutine N [...]:` block
    kGoDone,       // after `exit status N`
  };

 private:
  struct Rule;
  struct Source;
  struct Hold;
  struct Stream;
  MultilineStage(MultilineOptions options, const ContainerMetadata* metadata,
                 prometheus::Registry& registry);

  Stream& streamFor(const Labels& labels, std::uint64_t stream_id);
  Source& sourceFor(const std::string& key);
  const Rule* ruleFor(Stream& stream, const Labels& labels, const LogEntry& entry);
  // Passes the stream's group on; false (and nothing changed) when the next sink refused.
  bool passGroup(Stream& stream);
  // Passes an entry of source on with its checkpoint lowered below the other held groups.
  // checkpoint, or an earlier position of its source while another stream holds lines of it.
  const LogCheckpoint& clamp(const Source& source, const Stream* except,
                             const LogCheckpoint& checkpoint);
  void startGroup(Stream& stream, Source& source, const LogEntry& entry,
                  const LogCheckpoint& checkpoint, std::uint64_t stream_id);
  void appendLine(Stream& stream, Source& source, std::string_view line,
                  const LogCheckpoint& checkpoint);
  void hold(Stream& stream, Source& source);
  void release(Stream& stream);
  // Forgets streams and sources idle since the last sweep (labels change, files come and go).
  void sweep(Clock::time_point now);
  bool flushHeld(Clock::time_point now, bool force);
  void publish();

  MultilineOptions options_;
  LogStreamResolver resolver_;
  std::vector<std::unique_ptr<Rule>> rules_;
  std::unique_ptr<Rule> builtin_;
  std::map<Labels, std::unique_ptr<Stream>> streams_;
  std::unordered_map<std::uint64_t, Stream*> by_id_;
  Stream* last_stream_ = nullptr;
  std::uint64_t last_id_ = 0;
  std::unordered_map<std::string, std::unique_ptr<Source>> sources_;
  Source* last_source_ = nullptr;
  std::vector<Stream*> held_;  // streams with a group, in no order
  LogCheckpoint scratch_cp_;
  Clock::time_point last_sweep_{};

  std::uint64_t joined_[5] = {};  // by Kind
  std::uint64_t timeouts_ = 0, by_bytes_ = 0, by_lines_ = 0;
  prometheus::Counter* joined_counters_[5] = {};
  prometheus::Counter* timeout_counter_ = nullptr;
  prometheus::Counter* bytes_counter_ = nullptr;
  prometheus::Counter* lines_counter_ = nullptr;
};

}  // namespace nodewarden
