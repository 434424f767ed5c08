// libFuzzer target for RateLimitStage (pipeline/log_rate_limit.h): the input chooses the limits
// (and one override), then a sequence of lines (stream, timestamp step forwards or backwards, a
// missing or far-future timestamp, size), refusals by the next sink, ticks, forced flushes and
// jumps of the node's clock.
//
// What a reader gets wrong: this checks the accounting, not only "no crash". Every line the stage
// took (accept returned true) either reached the next sink or was counted as dropped, never both
// and never neither: lines out + counted drops = lines in. A line the stage refused must leave no
// trace (it is offered again). And once the next sink takes everything and a forced flush ran, the
// markers' dropped_lines add up to the counted drops: no marker lost, none told twice.
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/log_rate_limit.h"

namespace {

using namespace nodewarden;

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool empty() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint16_t word() { return static_cast<std::uint16_t>(byte() | (byte() << 8)); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

class CountingSink final : public LogSink {
 public:
  bool accept(const Labels& /*labels*/, const LogEntry& entry,
              const LogCheckpoint& /*checkpoint*/) override {
    if (refuse) return false;
    const std::string_view told = labelValue(entry.metadata, "dropped_lines");
    if (labelValue(entry.metadata, "nodewarden_marker") == "rate_limit") {
      check(!told.empty());
      const std::uint64_t n = std::stoull(std::string(told));
      check(n > 0);
      marker_lines += n;
    } else {
      ++lines;
    }
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return !refuse; }
  bool refuse = false;
  std::uint64_t lines = 0;
  std::uint64_t marker_lines = 0;
};

Labels streamLabels(std::size_t i) {
  if (i >= 6) {  // the journal: no stream numbers
    return {{"node", "n"}, {"source", "journal"}, {"unit", i == 6 ? "kubelet" : "containerd"}};
  }
  return {{"container", "c"},
          {"namespace", "ns" + std::to_string(i % 3)},
          {"node", "n"},
          {"pod", "p" + std::to_string(i / 2)},
          {"stream", i % 2 == 0 ? "stdout" : "stderr"}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  Input in(data, size);
  RateLimitOptions options;
  options.lines_per_second = in.byte() % 64;  // 0: no line limit
  options.bytes_per_second = static_cast<std::uint64_t>(in.byte()) * 16;
  options.burst.duration = std::chrono::milliseconds(100 + 50 * (in.byte() % 64));
  if (const std::uint8_t b = in.byte(); b % 4 == 0) options.burst.lines = b / 4 + 1;
  if (const std::uint8_t b = in.byte(); b % 2 == 0) {
    RateLimitOverride o;
    o.match.namespaces = {"ns" + std::to_string(b % 3)};
    o.lines_per_second = b % 7;
    options.overrides.push_back(o);
  }
  options.max_streams = 16 + in.byte() % 8;

  prometheus::Registry registry;
  ErrorReporter errors(registry);
  std::int64_t wall = 1'796'000'000LL * 1'000'000'000LL;
  RateLimitStage stage(options, nullptr, registry, errors, [&wall] { return wall; });
  CountingSink sink;
  stage.setNext(sink);
  auto now = LogStage::Clock::time_point{} + std::chrono::hours(1000);
  stage.flushDue(now, false);

  std::int64_t ts[8];
  for (auto& t : ts) t = wall - 3'600'000'000'000LL;
  std::uint64_t lines_in = 0;
  std::uint64_t extra_streams = 0;
  LogEntry entry;
  entry.metadata = {{"pod_uid", "u"}};
  LogCheckpoint checkpoint;
  checkpoint.source = "f";
  while (!in.empty()) {
    const std::uint8_t op = in.byte();
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {  // a line
        const std::size_t s = in.byte() % 8;
        const auto step = static_cast<std::int16_t>(in.word());
        ts[s] += static_cast<std::int64_t>(step) * 1'000'000;  // -32 s .. +32 s, in ms
        entry.timestamp_ns = op % 3 == 2 && (op & 0x40) != 0 ? 0 : ts[s];
        if ((op & 0x80) != 0 && op % 3 == 1) entry.timestamp_ns = wall + 10'000'000'000'000LL;
        entry.line.assign(in.byte() * 3U, 'x');
        ++checkpoint.offset;
        const Labels labels = streamLabels(s);
        const std::uint64_t id = s >= 6 ? 0 : s + 1;
        const std::uint64_t before_out = sink.lines;
        const std::uint64_t before_dropped = stage.droppedLines();
        const bool taken = stage.acceptStream(labels, entry, checkpoint, id);
        if (taken) {
          ++lines_in;
          check(sink.lines - before_out + (stage.droppedLines() - before_dropped) == 1);
        } else {
          check(sink.refuse);
          check(sink.lines == before_out && stage.droppedLines() == before_dropped);
        }
        break;
      }
      case 3:
        sink.refuse = !sink.refuse;
        break;
      case 4:
        now += std::chrono::milliseconds(in.byte() * 50);
        stage.flushDue(now, false);
        break;
      case 5:
        stage.flushDue(now, true);
        break;
      case 6:  // the node's clock jumps
        wall += static_cast<std::int64_t>(static_cast<std::int16_t>(in.word())) * 1'000'000'000LL;
        break;
      case 7: {  // a stream seen once (bounded memory)
        const Labels labels{{"namespace", "x"}, {"pod", "p" + std::to_string(extra_streams++)}};
        entry.timestamp_ns = wall;
        entry.line = "y";
        if (stage.acceptStream(labels, entry, checkpoint, 1000 + extra_streams)) ++lines_in;
        break;
      }
      default:
        break;
    }
    check(stage.streams() <= options.max_streams);
    check(sink.lines + stage.droppedLines() == lines_in);
    check(sink.marker_lines <= stage.droppedLines());
  }
  sink.refuse = false;
  check(stage.flushDue(now, true));
  check(stage.pendingMarkers() == 0);
  check(sink.lines + stage.droppedLines() == lines_in);
  check(sink.marker_lines == stage.droppedLines());
  return 0;
}
