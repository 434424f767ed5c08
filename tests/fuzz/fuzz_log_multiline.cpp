// libFuzzer target for the multiline stage (pipeline/log_multiline.h): every line of the input
// (its first byte chooses the stream, the source, a refusal and a clock step) goes through the
// built-in rules and, on one stream, a custom start rule, with small bounds.
//
// What a reader gets wrong: this checks more than "no crash". Every line comes out exactly once,
// in order per stream (split the entries at "\n"); no entry has more than max_lines lines or more
// than max_bytes bytes unless it is one line; a refused line is offered again and never lost; and
// the checkpoint passed with an entry never passes the start of a line of its source that is
// still held (a crash must read held lines again).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/log_multiline.h"

namespace {

using namespace nodewarden;

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

struct Line {
  std::string text;
  std::string source;
  std::uint64_t start = 0;
};

class CheckingSink final : public LogSink {
 public:
  bool accept(const Labels& l, const LogEntry& e, const LogCheckpoint& cp) override {
    return acceptStream(l, e, cp, 0);
  }
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& cp,
                    std::uint64_t) override {
    if (refuse) return false;
    auto& expected = pending[labels];
    std::size_t lines = 0;
    std::size_t from = 0;
    for (;;) {
      const std::size_t nl = entry.line.find('\n', from);
      const std::string_view part =
          std::string_view(entry.line)
              .substr(from, nl == std::string::npos ? std::string::npos : nl - from);
      check(!expected.empty());
      check(expected.front().text == part);
      held[expected.front().source].erase(
          held[expected.front().source].find(expected.front().start));
      expected.pop_front();
      ++lines;
      if (nl == std::string::npos) break;
      from = nl + 1;
    }
    check(lines <= max_lines);
    check(lines == 1 || entry.line.size() <= max_bytes);
    // No line of this source still held starts before the position passed on.
    const auto& still = held[cp.source];
    check(still.empty() || cp.offset <= *still.begin());
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return !refuse; }

  bool refuse = false;
  std::size_t max_lines = 0;
  std::size_t max_bytes = 0;
  std::map<Labels, std::deque<Line>> pending;                // accepted, not passed on, per stream
  std::map<std::string, std::multiset<std::uint64_t>> held;  // their start offsets, per source
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static prometheus::Registry registry;
  MultilineOptions o;
  o.max_lines = 2 + data[0] % 8;
  o.max_bytes = 16 + (data[0] >> 3) * 8;
  o.flush_timeout = std::chrono::milliseconds(1000);
  o.jvm = (data[0] & 1) == 0;
  MultilineRule custom;
  custom.match.namespaces = {"custom"};
  if ((data[0] & 2) != 0) {
    custom.start = "^[0-9]{4}-";
  } else {
    custom.continue_pattern = "^\\s";
  }
  o.rules.push_back(custom);
  auto stage = MultilineStage::create(o, nullptr, registry);
  check(stage.has_value());
  CheckingSink sink;
  sink.max_lines = o.max_lines;
  sink.max_bytes = o.max_bytes;
  (*stage)->setNext(sink);

  const std::vector<Labels> streams = {
      {{"namespace", "a"}, {"stream", "stdout"}},
      {{"namespace", "a"}, {"stream", "stderr"}},
      {{"namespace", "custom"}, {"stream", "stdout"}},
  };
  const std::string sources[2] = {"/f/0.log", "/f/0.log.1"};
  std::map<std::string, std::uint64_t> offsets;
  auto now = LogStage::Clock::time_point{} + std::chrono::hours(1);
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t pos = 0;
  std::int64_t ts = 0;
  while (pos <= input.size()) {
    const std::size_t nl = input.find('\n', pos);
    const std::string_view raw =
        input.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? input.size() + 1 : nl + 1;
    const auto control = static_cast<std::uint8_t>(raw.empty() ? 0 : raw[0]);
    const std::string_view text = raw.empty() ? raw : raw.substr(1);
    const Labels& labels = streams[control % 3];
    const std::string& source = sources[(control >> 2) & 1];
    LogEntry entry;
    entry.timestamp_ns = ++ts;
    entry.line.assign(text);
    LogCheckpoint cp;
    cp.source = source;
    const std::uint64_t start = offsets[source];
    cp.offset = start + text.size() + 1;
    sink.pending[labels].push_back(Line{std::string(text), source, start});
    sink.held[source].insert(start);
    sink.refuse = (control & 0x10) != 0;
    bool taken = (*stage)->acceptStream(labels, entry, cp, 1 + control % 3);
    if (!taken) {
      sink.refuse = false;  // the tailer offers the line again once there is room
      taken = (*stage)->acceptStream(labels, entry, cp, 1 + control % 3);
      check(taken);
    }
    offsets[source] = cp.offset;
    if ((control & 0x20) != 0) now += std::chrono::milliseconds(600);
    if ((control & 0x40) != 0) {
      sink.refuse = (control & 0x80) != 0;
      (void)(*stage)->flushDue(now, false);
      sink.refuse = false;
    }
  }
  sink.refuse = false;
  check((*stage)->flushDue(now, true));
  for (const auto& [labels, rest] : sink.pending) check(rest.empty());
  check((*stage)->heldStreams() == 0);
  return 0;
}
