// libFuzzer target for the log rules engines (pipeline/log_redaction.h, pipeline/log_filter.h):
// every line of the input goes through the default redaction (all built-ins, the private key
// block followed across lines of one stream) and through filters with patterns, as the agent runs
// them; an input that starts with "#rule " is also compiled as a custom redaction pattern and a
// filter pattern (RE2 must refuse or accept it, never crash or run away), skipped when it matches
// the empty string as the config reader refuses it.
//
// What a reader gets wrong: this checks more than "no crash". A second pass over a redacted line
// must leave it as it is (a marker is never taken for a secret), and the prefilter must let
// through every line a built-in would change: for each built-in the prefilter rules out, that
// built-in alone with the prefilter bypassed must change nothing.
#include <prometheus/registry.h>
#include <re2/re2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/log_filter.h"
#include "pipeline/log_redaction.h"

namespace {

using namespace nodewarden;

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

class Capture final : public LogSink {
 public:
  bool accept(const Labels&, const LogEntry& entry, const LogCheckpoint&) override {
    last = entry.line;
    ++taken;
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return true; }
  std::string last;
  std::size_t taken = 0;
};

struct Engines {
  Engines() {
    auto r = LineRedactor::create(LogRedactionOptions{});
    check(r.has_value());
    redactor = std::move(*r);
    auto stage = RedactionStage::create(LogRedactionOptions{}, nullptr, registry);
    check(stage.has_value());
    redaction = std::move(*stage);
    redaction->setNext(redacted);
    LogSelector team_a;
    team_a.namespaces = {"team-a"};
    auto f = FilterStage::create(
        {{"debug", team_a, LogFilterRule::Action::kDropLines, R"(\bDEBUG\b)"},
         {"errors", {}, LogFilterRule::Action::kKeepLines, R"(ERROR|WARN|\tat |^\S)"}},
        nullptr, registry);
    check(f.has_value());
    filter = std::move(*f);
    filter->setNext(filtered);
    // Each built-in alone: which rule changed a line, with the prefilter's bit for it.
    for (const auto& builtin : builtinRedactions()) {
      LogRedactionOptions only;
      only.builtin = {std::string(builtin.name)};
      auto one = LineRedactor::create(only);
      check(one.has_value());
      (*one)->setPrefilter(false);
      alone.push_back(std::move(*one));
    }
  }
  prometheus::Registry registry;
  std::unique_ptr<LineRedactor> redactor;
  std::vector<std::unique_ptr<LineRedactor>> alone;
  std::unique_ptr<RedactionStage> redaction;
  std::unique_ptr<FilterStage> filter;
  Capture redacted;
  Capture filtered;
};

Engines& engines() {
  static Engines e;
  return e;
}

void oneLine(Engines& e, std::string_view line, std::uint64_t stream) {
  std::string out;
  RedactionResult result;
  const bool changed = e.redactor->redact(line, 0, false, out, result);
  check(changed == (result.total > 0));
  if (changed) {
    // Markers are never taken for secrets: a second pass leaves the line as it is.
    std::string again;
    RedactionResult second;
    if (e.redactor->redact(out, 0, false, again, second)) check(again == out);
  }
  // The prefilter rules a built-in out only where the built-in's pattern, run on the line
  // regardless, would change nothing.
  const std::uint32_t bits = LineRedactor::prefilter(line);
  for (std::size_t i = 0; i < e.alone.size(); ++i) {
    if ((bits >> i & 1U) != 0) continue;
    std::string scratch;
    RedactionResult r;
    check(!e.alone[i]->redact(line, 0, false, scratch, r));
  }

  LogEntry entry{1, std::string(line), {}};
  const Labels labels = {{"container", "app"},
                         {"namespace", (stream & 1U) != 0 ? "team-a" : "team-b"}};
  check(e.redaction->acceptStream(labels, entry, LogCheckpoint{}, stream));
  check(e.filter->acceptStream(labels, entry, LogCheckpoint{}, stream));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Engines& e = engines();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.starts_with("#rule ")) {
    const auto eol = input.find('\n');
    const std::string pattern(input.substr(6, eol == std::string_view::npos ? eol : eol - 6));
    input = eol == std::string_view::npos ? std::string_view{} : input.substr(eol + 1);
    LogRedactionOptions custom;
    custom.rules.push_back({"custom", pattern, {}, ""});
    prometheus::Registry registry;
    RE2::Options options;
    options.set_log_errors(false);
    const RE2 probe(pattern, options);
    if (!probe.ok() || RE2::PartialMatch("", probe)) return 0;
    if (auto r = LineRedactor::create(custom)) {
      std::string out;
      RedactionResult result;
      std::string_view rest = input;
      while (!rest.empty()) {
        const auto nl = rest.find('\n');
        (*r)->redact(rest.substr(0, nl), 1, false, out, result);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      }
    }
    if (auto f = FilterStage::create({{"f", {}, LogFilterRule::Action::kDropLines, pattern}},
                                     nullptr, registry)) {
      LogStreamInfo info;
      (*f)->decide(info, input);
    }
  }
  std::uint64_t stream = 1;
  while (!input.empty()) {
    const auto nl = input.find('\n');
    oneLine(e, input.substr(0, nl), stream);
    stream = stream % 3 + 1;
    input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
  }
  return 0;
}
