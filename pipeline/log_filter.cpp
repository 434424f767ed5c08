#include "pipeline/log_filter.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <re2/re2.h>

namespace nodewarden {

struct FilterStage::Compiled {
  LogFilterRule rule;
  std::unique_ptr<RE2> re;  // null for kDropStream
};

std::expected<std::unique_ptr<FilterStage>, std::string> FilterStage::create(
    const std::vector<LogFilterRule>& rules, const ContainerMetadata* metadata,
    prometheus::Registry& registry) {
  if (rules.size() > kMaxFilterRules) {
    return std::unexpected("more than " + std::to_string(kMaxFilterRules) + " filter rules");
  }
  std::vector<Compiled> compiled;
  for (const auto& rule : rules) {
    Compiled c{rule, nullptr};
    if (rule.action != LogFilterRule::Action::kDropStream) {
      RE2::Options options;
      options.set_log_errors(false);
      c.re = std::make_unique<RE2>(rule.pattern, options);
      if (!c.re->ok()) return std::unexpected(rule.name + ": " + c.re->error());
    }
    compiled.push_back(std::move(c));
  }
  return std::unique_ptr<FilterStage>(new FilterStage(std::move(compiled), metadata, registry));
}

FilterStage::FilterStage(std::vector<Compiled> rules, const ContainerMetadata* metadata,
                         prometheus::Registry& registry)
    : rules_(std::move(rules)), resolver_(metadata) {
  auto& lines = prometheus::BuildCounter()
                    .Name("nodewarden_log_lines_filtered_total")
                    .Help("Log lines dropped by a collectors.logs.filters rule, by rule.")
                    .Register(registry);
  auto& bytes = prometheus::BuildCounter()
                    .Name("nodewarden_log_bytes_filtered_total")
                    .Help("Bytes of log lines dropped by a collectors.logs.filters rule, by rule.")
                    .Register(registry);
  for (const auto& c : rules_) {
    lines_.push_back(&lines.Add({{"rule", c.rule.name}}));
    bytes_.push_back(&bytes.Add({{"rule", c.rule.name}}));
  }
}

FilterStage::~FilterStage() = default;

FilterStage::StreamRules FilterStage::decideStream(const LogStreamInfo& info) const {
  StreamRules out;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    if (!rules_[i].rule.match.matches(info)) continue;
    if (rules_[i].rule.action == LogFilterRule::Action::kDropStream) {
      // Every line goes with this rule; the rules after it never see one.
      out.drop = static_cast<int>(i);
      return out;
    }
    out.lines |= std::uint64_t{1} << i;
  }
  return out;
}

int FilterStage::decideLine(const StreamRules& stream, std::string_view line) const {
  if (stream.drop >= 0) return stream.drop;
  const re2::StringPiece text(line.data(), line.size());
  for (std::uint64_t m = stream.lines; m != 0; m &= m - 1) {
    const auto i = static_cast<std::size_t>(__builtin_ctzll(m));
    const bool found = RE2::PartialMatch(text, *rules_[i].re);
    if (found == (rules_[i].rule.action == LogFilterRule::Action::kDropLines)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

int FilterStage::decide(const LogStreamInfo& info, std::string_view line) const {
  return decideLine(decideStream(info), line);
}

bool FilterStage::accept(const Labels& labels, const LogEntry& entry,
                         const LogCheckpoint& checkpoint) {
  return acceptStream(labels, entry, checkpoint, 0);
}

bool FilterStage::acceptStream(const Labels& labels, const LogEntry& entry,
                               const LogCheckpoint& checkpoint, std::uint64_t stream_id) {
  const StreamRules* stream = memo_.find(stream_id, resolver_.generation());
  if (stream == nullptr)
    stream = &memo_.put(stream_id, decideStream(resolver_.resolve(labels, entry)));
  const int drop = decideLine(*stream, entry.line);
  if (drop < 0) return next_->acceptStream(labels, entry, checkpoint, stream_id);
  // Consumed: the line is where the rule sends it (nowhere), and counted there.
  lines_[static_cast<std::size_t>(drop)]->Increment();
  bytes_[static_cast<std::size_t>(drop)]->Increment(static_cast<double>(entry.line.size()));
  return true;
}

}  // namespace nodewarden
