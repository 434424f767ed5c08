// Redaction: secrets in log lines (cloud keys, tokens, passwords, private keys) replaced by a
// marker naming the rule that found them (`<redacted:jwt>`) before a line leaves the node. Built-in
// rules (on by default) and custom RE2 patterns; every replacement counted per rule
// (nodewarden_log_redactions_total{rule}).
//
// What a reader gets wrong: this runs on every line, so the common line (no secret) must cost
// almost nothing. A line is first scanned once for the few bytes a built-in rule needs (':' and '='
// of a `key: value` pair or a URL, 'J' of "eyJ", 'I' of "AKIA", 'B' of "Bearer" and "-----BEGIN"),
// sixteen bytes at a time; only the rules whose literal context is then found run their RE2 on the
// line, and only a line that changes is copied (the entry is passed on as it came otherwise). So a
// bearer token outside an Authorization header is found after "Bearer" or "BEARER", not "bearer".
// Custom rules have no such prefilter: each one runs its RE2 over every line of the streams it
// applies to (bench_log_path --only=rules prints what each costs).
//
// What a reader gets wrong about capture groups: with groups in a pattern, only what the groups
// capture is replaced (the secret part: `password=<redacted:secret_pair>` keeps the key); without
// groups the whole match is. A private key printed over several lines (one entry per line, not
// joined) is followed per stream: the lines after a `-----BEGIN ... PRIVATE KEY-----` line that
// look like key material are replaced whole, up to the END line.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
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

// A built-in rule: its name (the marker's and the counter's) and what it masks, for the README and
// `nodewarden config`.
struct BuiltinRedaction {
  std::string_view name;
  std::string_view masks;
};
// In the order they run.
std::span<const BuiltinRedaction> builtinRedactions();
std::vector<std::string> builtinRedactionNames();

struct LogRedactionRule {
  std::string name;
  std::string pattern;      // RE2 syntax; with capturing groups only their text is replaced
  LogSelector match;        // the streams it applies to; empty: all
  std::string replacement;  // empty: "<redacted:NAME>"
  bool operator==(const LogRedactionRule&) const = default;
};

// collectors.logs.redaction (agent/config_rules.cpp reads and writes it).
struct LogRedactionOptions {
  bool enabled = true;
  std::vector<std::string> builtin = builtinRedactionNames();  // the built-ins that run
  std::vector<LogRedactionRule> rules;                         // custom, after the built-ins
  bool operator==(const LogRedactionOptions&) const = default;
};

inline constexpr std::size_t kMaxRedactionRules = 64;

// What a redaction pass did to one line: replacements per rule (built-ins first, then the custom
// rules in their order) and what the line means for a private key printed over several lines.
struct RedactionResult {
  enum class KeyBlock : std::uint8_t { kNone, kOpen, kContinue, kClose, kAbort };
  bool changed = false;
  KeyBlock block = KeyBlock::kNone;
  std::uint32_t total = 0;
  std::array<std::uint32_t, 8 + kMaxRedactionRules> counts{};
};

// The rules of one configuration, compiled: a line in, the redacted line out. No labels, no
// state: the stage keeps the per-stream state (open key blocks, which custom rules apply).
class LineRedactor {
 public:
  // Errors name the rule and RE2's reason (rules are checked at config time already).
  static std::expected<std::unique_ptr<LineRedactor>, std::string> create(
      const LogRedactionOptions& options);
  ~LineRedactor();
  LineRedactor(const LineRedactor&) = delete;
  LineRedactor& operator=(const LineRedactor&) = delete;

  // Redacts line into out (reused; only written when something changed). custom: bit i set when
  // custom rule i applies to the line's stream. in_key_block: the stream is inside a private key
  // printed over several lines. Returns result.changed.
  bool redact(std::string_view line, std::uint64_t custom, bool in_key_block, std::string& out,
              RedactionResult& result);

  // Every rule's name, in the order of RedactionResult::counts.
  [[nodiscard]] std::vector<std::string> ruleNames() const;
  [[nodiscard]] std::size_t customRules() const { return custom_.size(); }
  [[nodiscard]] const LogRedactionRule& customRule(std::size_t i) const {
    return custom_options_[i];
  }

  // For the benchmark: the built-ins a line's prefilter lets through (bit i:
  // builtinRedactions()[i]).
  [[nodiscard]] static std::uint32_t prefilter(std::string_view line);
  // For the fuzzer: off, every enabled built-in's pattern runs on every line (what the prefilter
  // rules out must then change nothing).
  void setPrefilter(bool on) { prefilter_on_ = on; }

  struct Rule;

 private:
  LineRedactor();
  std::vector<std::unique_ptr<Rule>> builtin_;  // the enabled ones, by built-in index (or null)
  std::uint32_t builtin_mask_ = 0;
  std::vector<std::unique_ptr<Rule>> custom_;
  std::vector<LogRedactionRule> custom_options_;
  bool private_key_ = false;
  bool prefilter_on_ = true;
  std::string rule_marker_private_key_ = "<redacted:private_key>";
  std::string tmp_;    // the other buffer of a line that more than one rule changes
  std::string again_;  // the next pass's output (redact())
  bool redactOnce(std::string_view line, std::uint64_t custom, bool in_key_block, std::string& out,
                  RedactionResult& result);
};

// The stage: redacts every entry's line with the configured rules, counts per rule, follows
// private keys printed over several lines per stream.
class RedactionStage final : public LogStage {
 public:
  static std::expected<std::unique_ptr<RedactionStage>, std::string> create(
      const LogRedactionOptions& options, const ContainerMetadata* metadata,
      prometheus::Registry& registry);
  ~RedactionStage() override;

  bool accept(const Labels& labels, const LogEntry& entry,
              const LogCheckpoint& checkpoint) override;
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& checkpoint,
                    std::uint64_t stream_id) override;

 private:
  RedactionStage(std::unique_ptr<LineRedactor> redactor, const ContainerMetadata* metadata,
                 prometheus::Registry& registry);
  std::uint64_t customRulesFor(const Labels& labels, const LogEntry& entry,
                               std::uint64_t stream_id);

  std::unique_ptr<LineRedactor> redactor_;
  LogStreamResolver resolver_;
  StreamMemo<std::uint64_t> custom_memo_;
  std::uint64_t all_custom_ = 0;                // bit per custom rule
  bool custom_by_stream_ = false;               // some custom rule has a selector
  std::vector<prometheus::Counter*> counters_;  // per rule, as LineRedactor::ruleNames()
  // Streams inside a private key printed over several lines: key -> lines so far. The key is the
  // stream number, or a hash of the labels for an entry without one.
  std::unordered_map<std::uint64_t, std::uint32_t> key_blocks_;
  std::string scratch_;
  LogEntry changed_;
  RedactionResult result_;
};

}  // namespace nodewarden
