// Filtering: rules that drop whole streams, or lines matching (or not matching) an RE2 pattern, of
// the streams a LogSelector picks (namespace, pod, container, stdout/stderr, pod labels). Every
// dropped line is counted under the rule that dropped it (nodewarden_log_lines_filtered_total and
// nodewarden_log_bytes_filtered_total, label rule), never silently lost.
//
// What a reader gets wrong: the selector is decided once per stream (StreamMemo, by the stream
// number the reader gives) and only the patterns run per line; a stream the metadata does not know
// yet matches no selector with pod_labels, and is decided again when the metadata learns its pod.
// Rules apply in order and the first one that drops a line counts it; a line no rule drops goes
// on unchanged (not copied).
//
// What a reader gets wrong about positions: a dropped line is consumed (accept() returns true), so
// its file's position moves on with the next line of that file that is kept. A file whose every
// line is dropped keeps its last committed position: after a restart its lines are read, dropped
// and counted again.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/log_selector.h"
#include "pipeline/log_stage.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace re2 {
class RE2;
}  // namespace re2

namespace nodewarden {

struct LogFilterRule {
  enum class Action : std::uint8_t {
    kDropStream,  // every line of the matching streams
    kDropLines,   // the lines that match pattern
    kKeepLines,   // the lines that do not match pattern
  };
  std::string name;  // unique; the counters' rule label
  LogSelector match;
  Action action = Action::kDropLines;
  std::string pattern;  // RE2 syntax, unanchored (a line matches when part of it does); empty for
                        // kDropStream
  bool operator==(const LogFilterRule&) const = default;
};

inline constexpr std::size_t kMaxFilterRules = 64;

class FilterStage final : public LogStage {
 public:
  // Errors name the rule and RE2's reason (the config reader checks the rules already).
  static std::expected<std::unique_ptr<FilterStage>, std::string> create(
      const std::vector<LogFilterRule>& rules, const ContainerMetadata* metadata,
      prometheus::Registry& registry);
  ~FilterStage() override;

  bool accept(const Labels& labels, const LogEntry& entry,
              const LogCheckpoint& checkpoint) override;
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& checkpoint,
                    std::uint64_t stream_id) override;

  // What the rules decide for one line of a stream: the index of the rule that drops it, or -1.
  // For the benchmark and the fuzzer; acceptStream() uses the same decision.
  int decide(const LogStreamInfo& info, std::string_view line) const;

 private:
  struct Compiled;
  // What the selectors decided for one stream: the rule that drops all of it (or -1), and the
  // rules whose patterns run on its lines (a bit per rule).
  struct StreamRules {
    int drop = -1;
    std::uint64_t lines = 0;
  };
  FilterStage(std::vector<Compiled> rules, const ContainerMetadata* metadata,
              prometheus::Registry& registry);
  StreamRules decideStream(const LogStreamInfo& info) const;
  int decideLine(const StreamRules& stream, std::string_view line) const;

  std::vector<Compiled> rules_;
  LogStreamResolver resolver_;
  StreamMemo<StreamRules> memo_;
  std::vector<prometheus::Counter*> lines_;
  std::vector<prometheus::Counter*> bytes_;
};

}  // namespace nodewarden
