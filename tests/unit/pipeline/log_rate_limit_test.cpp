// RateLimitStage with an injected node clock and chosen line timestamps: the flood read live and
// the same number of lines read at once as a backlog, bursts, overrides by selector, the marker's
// text, labels and refusal by the next sink, the per-pod counters and the bound on streams.
#include "pipeline/log_rate_limit.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "tests/support/map_metadata.h"

namespace nodewarden {
namespace {

using namespace std::chrono_literals;
using Clock = LogStage::Clock;

constexpr std::int64_t kS = 1'000'000'000;
constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kT0 = 1'796'000'000 * kS;  // 2026-12-01

struct Received {
  Labels labels;
  LogEntry entry;
  LogCheckpoint checkpoint;
};

// The next sink: records what it takes; refuses while `refuse` is set.
class RecordingSink final : public LogSink {
 public:
  bool accept(const Labels& labels, const LogEntry& entry,
              const LogCheckpoint& checkpoint) override {
    if (refuse) return false;
    got.push_back({labels, entry, checkpoint});
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return !refuse; }
  [[nodiscard]] std::vector<Received> markers() const {
    std::vector<Received> out;
    for (const auto& r : got) {
      if (labelValue(r.entry.metadata, "nodewarden_marker") == "rate_limit") out.push_back(r);
    }
    return out;
  }
  [[nodiscard]] std::size_t lines() const { return got.size() - markers().size(); }
  std::vector<Received> got;
  bool refuse = false;
};

Labels streamLabels(const std::string& ns, const std::string& pod, const std::string& stream) {
  return {
      {"container", "app"}, {"namespace", ns}, {"node", "n1"}, {"pod", pod}, {"stream", stream}};
}

class RateLimitTest : public ::testing::Test {
 protected:
  void make(RateLimitOptions options, const ContainerMetadata* metadata = nullptr) {
    stage_ = std::make_unique<RateLimitStage>(std::move(options), metadata, registry_, errors_,
                                              [this] { return wall_ns_; });
    stage_->setNext(sink_);
    stage_->flushDue(now_, false);
  }
  // One line of `bytes` bytes at ts; the checkpoint's offset counts lines.
  bool line(const Labels& labels, std::int64_t ts, std::size_t bytes = 50, std::uint64_t id = 7,
            const std::string& uid = "uid-1") {
    entry_.timestamp_ns = ts;
    entry_.line.assign(bytes, 'x');
    entry_.metadata = {{"filename", "/var/log/pods/x/app/0.log"}, {"pod_uid", uid}};
    checkpoint_.source = "/var/log/pods/x/app/0.log";
    ++checkpoint_.offset;
    return stage_->acceptStream(labels, entry_, checkpoint_, id);
  }
  bool tick(std::chrono::milliseconds step, bool force = false) {
    now_ += step;
    return stage_->flushDue(now_, force);
  }
  double counter(const std::string& name, const std::string& ns, const std::string& pod) {
    for (const auto& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const auto& m : family.metric) {
        std::string got_ns, got_pod;
        for (const auto& l : m.label) {
          if (l.name == "namespace") got_ns = l.value;
          if (l.name == "pod") got_pod = l.value;
        }
        if (got_ns == ns && got_pod == pod) return m.counter.value;
      }
    }
    return -1;
  }

  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  RecordingSink sink_;
  std::unique_ptr<RateLimitStage> stage_;
  std::int64_t wall_ns_ = kT0 + 3600 * kS;
  Clock::time_point now_ = Clock::time_point{} + 1000h;
  LogEntry entry_;
  LogCheckpoint checkpoint_;
};

RateLimitOptions limit(double lines_per_second, std::uint64_t bytes_per_second = 0,
                       std::chrono::milliseconds burst = 1s) {
  RateLimitOptions o;
  o.lines_per_second = lines_per_second;
  o.bytes_per_second = bytes_per_second;
  o.burst.duration = burst;
  return o;
}

// A pod writing 100x its limit for 2 s of its own time, read as it writes: the burst and then the
// rate pass, the rest is dropped and counted, and everything taken is accounted for.
TEST_F(RateLimitTest, FloodReadLiveIsCutToTheRatePlusTheBurst) {
  make(limit(100));
  const auto labels = streamLabels("batch", "spammer", "stdout");
  constexpr int kLines = 20000;
  for (int i = 0; i < kLines; ++i) {
    wall_ns_ = kT0 + i * 100'000;  // 10,000 lines/s, read live
    ASSERT_TRUE(line(labels, kT0 + i * 100'000));
  }
  // 100 lines of burst, then 100 per second for 2 s.
  EXPECT_GE(sink_.lines(), 295U);
  EXPECT_LE(sink_.lines(), 301U);
  EXPECT_EQ(sink_.lines() + stage_->droppedLines(), static_cast<std::uint64_t>(kLines));
  EXPECT_EQ(stage_->droppedBytes(), stage_->droppedLines() * 50);
}

// The same number of lines, written at half the limit over 400 s, read at once an hour later
// (an agent restart): nothing is dropped, because the buckets go by the lines' own times.
TEST_F(RateLimitTest, BacklogWrittenAtANormalRateIsReadWhole) {
  make(limit(100));
  wall_ns_ = kT0 + 3600 * kS;
  const auto labels = streamLabels("batch", "steady", "stdout");
  constexpr int kLines = 20000;
  for (int i = 0; i < kLines; ++i) ASSERT_TRUE(line(labels, kT0 + i * 20 * kMs));  // 50 lines/s
  EXPECT_EQ(sink_.lines(), static_cast<std::size_t>(kLines));
  EXPECT_EQ(stage_->droppedLines(), 0U);
  tick(5s, true);
  EXPECT_TRUE(sink_.markers().empty());
}

// A flood that happened while the agent was down is cut as it would have been live.
TEST_F(RateLimitTest, FloodReadAsABacklogIsCutTheSame) {
  make(limit(100));
  wall_ns_ = kT0 + 3600 * kS;
  const auto labels = streamLabels("batch", "spammer", "stdout");
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(line(labels, kT0 + i * 100'000));
  EXPECT_GE(sink_.lines(), 295U);
  EXPECT_LE(sink_.lines(), 301U);
}

TEST_F(RateLimitTest, BurstInLinesLetsThatManyThroughAtOnce) {
  RateLimitOptions o = limit(10);
  o.burst.lines = 50;
  make(o);
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(line(labels, kT0));
  EXPECT_EQ(sink_.lines(), 50U);
  EXPECT_EQ(stage_->droppedLines(), 10U);
  // 1 s later the rate has put 10 back.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(line(labels, kT0 + kS));
  EXPECT_EQ(sink_.lines(), 60U);
}

TEST_F(RateLimitTest, BytesPerSecondLimitsBigLinesAndTheMarkerSaysSo) {
  make(limit(0, 1024));  // 1 KiB/s, burst 1 s, no line limit
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(line(labels, kT0, 100));
  EXPECT_EQ(sink_.lines(), 10U);
  EXPECT_EQ(stage_->droppedBytes(), 2000U);
  ASSERT_TRUE(tick(2s));
  const auto markers = sink_.markers();
  ASSERT_EQ(markers.size(), 1U);
  EXPECT_EQ(markers[0].entry.line,
            "nodewarden: dropped 20 lines (2 KiB) of this stream over 0ms: rate limit 1 KiB/s");
}

// A line longer than the whole byte burst passes when the bucket is full, not never.
TEST_F(RateLimitTest, LineLongerThanTheBurstPassesOnAFullBucket) {
  make(limit(0, 100));
  const auto labels = streamLabels("a", "p", "stdout");
  ASSERT_TRUE(line(labels, kT0, 1000));
  ASSERT_TRUE(line(labels, kT0, 1000));
  EXPECT_EQ(sink_.lines(), 1U);
  ASSERT_TRUE(line(labels, kT0 + 2 * kS, 1000));
  EXPECT_EQ(sink_.lines(), 2U);
}

TEST_F(RateLimitTest, OverrideBySelectorLimitsOnlyTheStreamsItMatches) {
  RateLimitOptions o = limit(1000);
  RateLimitOverride noisy;
  noisy.match.namespaces = {"noisy"};
  noisy.lines_per_second = 10;
  o.overrides.push_back(noisy);
  RateLimitOverride exempt;
  exempt.match.pods = {"ingest-0"};
  exempt.lines_per_second = 0;  // no limit
  o.overrides.push_back(exempt);
  make(o);
  const auto loud = streamLabels("noisy", "chatty", "stdout");
  const auto quiet = streamLabels("default", "web", "stdout");
  const auto ingest = streamLabels("default", "ingest-0", "stdout");
  for (int i = 0; i <= 500; ++i) {
    ASSERT_TRUE(line(loud, kT0 + i * kMs, 50, 1));
    ASSERT_TRUE(line(quiet, kT0 + i * kMs, 50, 2));
    ASSERT_TRUE(line(ingest, kT0, 50, 3));
  }
  std::map<std::string, int> per_pod;
  for (const auto& r : sink_.got) ++per_pod[std::string(labelValue(r.labels, "pod"))];
  // Burst 10 + 0.5 s at 10/s (and no marker: no line passed a second after a drop).
  EXPECT_GE(per_pod["chatty"], 14);
  EXPECT_LE(per_pod["chatty"], 15);
  EXPECT_EQ(per_pod["web"], 501);
  EXPECT_EQ(per_pod["ingest-0"], 501);
}

// An override on pod labels applies once the metadata knows the pod (here from the start), and to
// a pod it learns later at the tick after.
TEST_F(RateLimitTest, OverrideByPodLabelFollowsTheMetadata) {
  testing::MapMetadata metadata;
  PodIdentity known;
  known.labels = {{"team", "etl"}};
  metadata.pods["uid-known"] = known;
  RateLimitOptions o = limit(1000);
  RateLimitOverride etl;
  etl.match.pod_labels = {{"team", "etl"}};
  etl.lines_per_second = 5;
  o.overrides.push_back(etl);
  make(o, &metadata);
  const auto a = streamLabels("ns", "known", "stdout");
  const auto b = streamLabels("ns", "late", "stdout");
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(line(a, kT0, 10, 1, "uid-known"));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(line(b, kT0, 10, 2, "uid-late"));
  EXPECT_EQ(sink_.got.size(), 5U + 20U);
  metadata.pods["uid-late"] = known;
  ASSERT_TRUE(tick(200ms));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(line(b, kT0 + 10 * kS, 10, 2, "uid-late"));
  std::size_t late = 0;
  for (const auto& r : sink_.got) late += labelValue(r.labels, "pod") == "late" ? 1 : 0;
  EXPECT_EQ(late, 20U + 5U);  // its bucket now holds at most the override's burst
}

// The marker: in the same stream, when lines flow again, with the last dropped line's time, its
// metadata and the agent's mark; its checkpoint is a position the stream had reached.
TEST_F(RateLimitTest, MarkerGoesIntoTheSameStreamWhenLinesFlowAgain) {
  make(limit(100));
  const auto labels = streamLabels("batch", "spammer", "stderr");
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(line(labels, kT0 + i * 1000));  // 1000 lines in 1 ms
  ASSERT_EQ(stage_->droppedLines(), 900U);
  // Lines within the rate, soon after: the episode may go on, no marker yet.
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(line(labels, kT0 + i * 100 * kMs));
  EXPECT_EQ(sink_.lines(), 105U);
  EXPECT_TRUE(sink_.markers().empty());
  // Quiet for a while, then a line: the marker goes right before it.
  ASSERT_TRUE(line(labels, kT0 + 5 * kS));
  const auto markers = sink_.markers();
  ASSERT_EQ(markers.size(), 1U);
  const Received& m = markers[0];
  EXPECT_EQ(m.labels, labels);
  EXPECT_EQ(m.entry.line,
            "nodewarden: dropped 900 lines (44 KiB) of this stream over 0.9ms: rate limit 100 "
            "lines/s");
  EXPECT_EQ(m.entry.timestamp_ns, kT0 + 999 * 1000);
  EXPECT_EQ(labelValue(m.entry.metadata, "nodewarden_marker"), "rate_limit");
  EXPECT_EQ(labelValue(m.entry.metadata, "dropped_lines"), "900");
  EXPECT_EQ(labelValue(m.entry.metadata, "dropped_bytes"), "45000");
  EXPECT_EQ(labelValue(m.entry.metadata, "pod_uid"), "uid-1");
  EXPECT_TRUE(std::ranges::is_sorted(m.entry.metadata));
  // Right before the line that brought it, with the position of the stream's line before that.
  ASSERT_GE(sink_.got.size(), 2U);
  EXPECT_EQ(labelValue(sink_.got[sink_.got.size() - 2].entry.metadata, "nodewarden_marker"),
            "rate_limit");
  EXPECT_EQ(sink_.got.back().checkpoint.offset, 1006U);
  EXPECT_EQ(m.checkpoint.offset, 1005U);
}

// A flood after which nothing comes: the marker goes out from flushDue once the stream was quiet
// for a second, and at once when forced.
TEST_F(RateLimitTest, MarkerAtTheEndOfTheEpisodeFromFlushDue) {
  make(limit(10));
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(line(labels, kT0));
  ASSERT_TRUE(tick(200ms));
  EXPECT_TRUE(sink_.markers().empty());
  ASSERT_TRUE(tick(1s));
  ASSERT_EQ(sink_.markers().size(), 1U);
  EXPECT_EQ(labelValue(sink_.markers()[0].entry.metadata, "dropped_lines"), "90");
  EXPECT_EQ(stage_->pendingMarkers(), 0U);

  for (int i = 0; i < 100; ++i) ASSERT_TRUE(line(labels, kT0 + 100 * kS));
  ASSERT_TRUE(tick(0ms, true));
  EXPECT_EQ(sink_.markers().size(), 2U);
}

// A flood that does not stop is told every 10 s of its time, not only at its end.
TEST_F(RateLimitTest, LongFloodIsToldEveryTenSeconds) {
  make(limit(10));
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 30000; ++i) ASSERT_TRUE(line(labels, kT0 + i * kMs));  // 1000/s for 30 s
  EXPECT_GE(sink_.markers().size(), 2U);
  EXPECT_LE(sink_.markers().size(), 3U);
  ASSERT_TRUE(tick(0ms, true));
  std::uint64_t told = 0;
  for (const auto& m : sink_.markers()) {
    told += std::stoull(std::string(labelValue(m.entry.metadata, "dropped_lines")));
  }
  EXPECT_EQ(told, stage_->droppedLines());
  EXPECT_EQ(sink_.lines() + stage_->droppedLines(), 30000U);
}

// The next sink refuses the marker: the line that would follow it is refused too (offered again
// by its reader), nothing is counted twice, and the marker goes out when there is room.
TEST_F(RateLimitTest, MarkerRespectsTheNextSinksRefusal) {
  make(limit(10));
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(line(labels, kT0));
  ASSERT_EQ(stage_->droppedLines(), 20U);
  sink_.refuse = true;
  EXPECT_FALSE(line(labels, kT0 + 5 * kS));
  EXPECT_FALSE(line(labels, kT0 + 5 * kS));  // the same line again
  EXPECT_FALSE(tick(2s));
  EXPECT_EQ(stage_->pendingMarkers(), 1U);
  sink_.refuse = false;
  ASSERT_TRUE(line(labels, kT0 + 5 * kS));
  ASSERT_EQ(sink_.markers().size(), 1U);
  EXPECT_EQ(labelValue(sink_.markers()[0].entry.metadata, "dropped_lines"), "20");
  EXPECT_EQ(sink_.lines(), 11U);
  EXPECT_EQ(stage_->droppedLines(), 20U);
}

TEST_F(RateLimitTest, MarkerRefusedAtFlushDueIsKeptAndSentLater) {
  make(limit(10));
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(line(labels, kT0));
  sink_.refuse = true;
  EXPECT_FALSE(tick(2s));
  EXPECT_FALSE(tick(2s, true));
  EXPECT_TRUE(sink_.markers().empty());
  sink_.refuse = false;
  EXPECT_TRUE(tick(200ms));
  ASSERT_EQ(sink_.markers().size(), 1U);
  EXPECT_TRUE(tick(2s, true));
  EXPECT_EQ(sink_.markers().size(), 1U);
}

// A refused line must find the bucket as it was: offered again, it passes.
TEST_F(RateLimitTest, RefusedLineTakesNoTokens) {
  make(limit(10));
  const auto labels = streamLabels("a", "p", "stdout");
  sink_.refuse = true;
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(line(labels, kT0));
  sink_.refuse = false;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(line(labels, kT0));
  EXPECT_EQ(sink_.lines(), 10U);
  EXPECT_EQ(stage_->droppedLines(), 0U);
}

TEST_F(RateLimitTest, DropsAreCountedPerPodAndTheSeriesGoWithThePod) {
  make(limit(10));
  const auto a_out = streamLabels("ns", "a", "stdout");
  const auto a_err = streamLabels("ns", "a", "stderr");
  const auto b = streamLabels("ns", "b", "stdout");
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(line(a_out, kT0, 10, 1));
    ASSERT_TRUE(line(a_err, kT0, 10, 2));
    ASSERT_TRUE(line(b, kT0, 10, 3));
  }
  ASSERT_TRUE(tick(200ms));
  EXPECT_EQ(counter("nodewarden_log_lines_rate_limited_total", "ns", "a"), 40);
  EXPECT_EQ(counter("nodewarden_log_bytes_rate_limited_total", "ns", "a"), 400);
  EXPECT_EQ(counter("nodewarden_log_lines_rate_limited_total", "ns", "b"), 20);
  EXPECT_EQ(stage_->podSeries(), 2U);
  // Pod b keeps writing (within its limit); pod a is gone: after the idle sweeps its series go.
  for (int s = 0; s <= RateLimitStage::kIdleSweeps + 1; ++s) {
    ASSERT_TRUE(line(b, kT0 + (s + 1) * 100 * kS, 10, 3));
    ASSERT_TRUE(tick(RateLimitStage::kSweepInterval));
  }
  EXPECT_EQ(counter("nodewarden_log_lines_rate_limited_total", "ns", "a"), -1);
  EXPECT_EQ(counter("nodewarden_log_lines_rate_limited_total", "ns", "b"), 20);
  EXPECT_EQ(stage_->podSeries(), 1U);
  EXPECT_EQ(stage_->streams(), 1U);
}

// 100,000 streams, each with one line: the stage keeps at most max_streams buckets, passes the
// rest unlimited (counted as an error), and forgets idle ones.
TEST_F(RateLimitTest, ManyStreamsStayWithinTheBound) {
  RateLimitOptions o = limit(10);
  o.max_streams = 1000;
  make(o);
  for (int i = 0; i < 100000; ++i) {
    ASSERT_TRUE(line(streamLabels("ns", "pod-" + std::to_string(i), "stdout"), kT0, 10,
                     static_cast<std::uint64_t>(i + 1)));
  }
  EXPECT_LE(stage_->streams(), 1000U);
  EXPECT_EQ(sink_.lines(), 100000U);
  EXPECT_GE(errors_.count("logs", "rate_limit_streams"), 1);
  for (int s = 0; s <= RateLimitStage::kIdleSweeps; ++s) {
    ASSERT_TRUE(tick(RateLimitStage::kSweepInterval));
  }
  EXPECT_EQ(stage_->streams(), 0U);
}

// The journal numbers no streams: its units are streams by their labels.
TEST_F(RateLimitTest, JournalUnitsAreStreamsOfTheirOwn) {
  make(limit(10));
  const Labels kubelet{{"node", "n1"}, {"source", "journal"}, {"unit", "kubelet.service"}};
  const Labels containerd{{"node", "n1"}, {"source", "journal"}, {"unit", "containerd.service"}};
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(line(kubelet, kT0, 10, 0));
    ASSERT_TRUE(line(containerd, kT0, 10, 0));
  }
  EXPECT_EQ(sink_.lines(), 20U);
  EXPECT_EQ(stage_->streams(), 2U);
  ASSERT_TRUE(tick(2s));
  EXPECT_EQ(sink_.markers().size(), 2U);
  EXPECT_EQ(counter("nodewarden_log_lines_rate_limited_total", "", ""), 40);
}

// Timestamps are the node's clock's: a line far in the future counts as written now, and a
// clock stepped back does not starve the stream until the old time comes again.
TEST_F(RateLimitTest, FutureTimestampsCountAsNow) {
  make(limit(10));
  wall_ns_ = kT0;
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(line(labels, kT0));
  // Hours ahead: would refill the bucket if believed.
  ASSERT_TRUE(line(labels, kT0 + 5 * 3600 * kS));
  EXPECT_EQ(sink_.lines(), 10U);
  EXPECT_EQ(stage_->droppedLines(), 1U);
}

TEST_F(RateLimitTest, AlternatingTimestampsDoNotRefill) {
  make(limit(10));
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(line(labels, kT0 + 30 * kS));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(line(labels, i % 2 == 0 ? kT0 : kT0 + 30 * kS));
  EXPECT_EQ(sink_.lines(), 10U);
}

TEST_F(RateLimitTest, ClockSteppedBackIsFollowed) {
  make(limit(10));
  wall_ns_ = kT0 + 3600 * kS;
  const auto labels = streamLabels("a", "p", "stdout");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(line(labels, kT0 + 3600 * kS));
  wall_ns_ = kT0;  // stepped back an hour
  ASSERT_TRUE(tick(200ms));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(line(labels, kT0 + i * 100 * kMs));  // 10 lines/s
  EXPECT_GE(sink_.lines(), 10U + 98U);
}

TEST_F(RateLimitTest, MarkerText) {
  EXPECT_EQ(rateLimitMarkerText(1234, 567 * 1024, 10 * kS, "1000 lines/s"),
            "nodewarden: dropped 1234 lines (567 KiB) of this stream over 10s: rate limit 1000 "
            "lines/s");
  EXPECT_EQ(rateLimitMarkerText(1, 10, 2500 * kMs, "1 MiB/s"),
            "nodewarden: dropped 1 line (10 B) of this stream over 2.5s: rate limit 1 MiB/s");
  EXPECT_EQ(rateLimitMarkerText(5, 3 << 20, 3725 * kS, "5 lines/s and 1 MiB/s"),
            "nodewarden: dropped 5 lines (3 MiB) of this stream over 1h2m5s: rate limit 5 lines/s "
            "and 1 MiB/s");
}

}  // namespace
}  // namespace nodewarden
