// RateLimitStage: per-stream token buckets (lines per second and bytes per second, each with a
// burst) so that one pod writing far more than any normal workload cannot starve the node's log
// path. A stream is one label set: a container's stdout or its stderr, a journal unit. What is
// dropped is counted per pod (nodewarden_log_lines_rate_limited_total{namespace,pod} and the
// bytes), logged once per episode, and told in the stream itself by a marker line:
//
//   nodewarden: dropped 1234 lines (567 KiB) of this stream over 10s: rate limit 1000 lines/s
//
// stamped with the last dropped line's time and carrying nodewarden_marker="rate_limit" (with
// dropped_lines and dropped_bytes) in its structured metadata.
//
// What a reader gets wrong: the buckets refill on the lines' own timestamps, not on the time the
// agent reads them. CRI and Docker records carry the time the runtime received the line (the
// journal, the time journald did), which the pod cannot set; so the rate measured is the rate the
// pod wrote at. After an agent restart or an outage the tailer reads hours of a pod's lines in
// seconds: a limit on the read rate would drop that backlog although the pod wrote it at a normal
// rate, and the more the agent fell behind (during a flood, too) the more it would drop. With the
// lines' times a backlog passes whole when it was written within the limits, and a flood is cut
// the same whether it is read live or hours later. Limiting by wall time for recent lines only was
// rejected for that reason: a flood that makes the agent lag turns its own lines into "old" ones.
// The guards, since a timestamp is only as good as the node's clock:
//   - a line dated more than kFutureSlack after the node's clock counts as written now;
//   - a line older than its stream's clock (interleaved rotated files, a clock stepped back)
//     refills nothing: the clock never moves back, so alternating times cannot refill a bucket;
//   - a stream clock more than kFutureSlack ahead of the node's clock (the clock was stepped back)
//     is set back to the line's time, so the stream is not starved until the old time comes again;
//   - a line without a timestamp counts as written now.
//
// What a reader gets wrong about markers: a marker is not written for every refused line. The
// dropped lines of a stream are summed, and the marker goes out when lines pass again at least
// kEpisodeQuiet (stream time) after the last drop, during a long flood every kMarkerInterval, and
// from flushDue() when no line of the stream was dropped for kEpisodeQuiet of wall time (the flood
// ended with nothing after it) or at force. A marker the next sink refuses is kept and offered
// again (before the next line of its stream, or at flushDue): never lost while the agent runs. It
// carries the checkpoint of its stream's latest line, so dropped lines are consumed: their
// positions are committed once the marker is durable (a marker still held at a kill -9 is lost
// with its count; the lines themselves were consumed).
//
// What a reader gets wrong about cost: a stream's bucket is found by its stream number
// (LogSink::acceptStream) in a small map, the last two remembered; labels are looked at only for
// a new number (and every line of the journal, which does not number its streams). Nothing is
// allocated per line. Buckets of streams that sent nothing for kIdleSweeps sweeps are removed
// (a fresh bucket is full, so this only forgives), at most max_streams are kept, and a pod's
// counters are removed with the last bucket of the pod.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/container_metadata.h"
#include "pipeline/log_record.h"
#include "pipeline/log_selector.h"
#include "pipeline/log_stage.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

// A burst: either seconds of the rates (capacity = rate x seconds) or explicit counts.
struct RateLimitBurst {
  std::chrono::milliseconds duration{5000};  // used when lines and bytes are both 0
  double lines = 0;
  std::uint64_t bytes = 0;
  [[nodiscard]] bool explicitCounts() const { return lines > 0 || bytes > 0; }
  bool operator==(const RateLimitBurst&) const = default;
};

// Streams a selector matches get these limits instead of the defaults; what is not set is the
// default's. A rate of 0 means no limit of that kind.
struct RateLimitOverride {
  LogSelector match;
  std::optional<double> lines_per_second;
  std::optional<std::uint64_t> bytes_per_second;
  std::optional<RateLimitBurst> burst;
  bool operator==(const RateLimitOverride&) const = default;
};

// collectors.logs.rate_limit. The defaults let through any normal pod (and every benchmark
// corpus, whose streams write about 36,000 lines and 7 MiB per second of their timestamps) and cut
// a runaway one: a pod looping on a print writes hundreds of thousands of lines per second.
struct RateLimitOptions {
  bool enabled = true;
  double lines_per_second = 50000;            // 0: no line limit
  std::uint64_t bytes_per_second = 10 << 20;  // 0: no byte limit
  RateLimitBurst burst;
  std::vector<RateLimitOverride> overrides;  // the first that matches a stream wins
  // Streams with a bucket at most; past it a new stream is not limited (and counted as an error).
  std::size_t max_streams = 16384;
  bool operator==(const RateLimitOptions&) const = default;
};

class RateLimitStage final : public LogStage {
 public:
  // The node's clock in ns since the epoch (the lines' timestamps are): the guards' reference.
  using WallClock = std::function<std::int64_t()>;
  // Stream time: a marker goes out when lines pass this long after the last drop ...
  static constexpr std::int64_t kEpisodeQuietNs = 1'000'000'000;
  // ... or, during a flood that does not stop, this often.
  static constexpr std::int64_t kMarkerIntervalNs = 10'000'000'000;
  static constexpr std::int64_t kFutureSlackNs = 60'000'000'000;
  // flushDue() looks for idle buckets this often; a bucket untouched for kIdleSweeps is removed.
  static constexpr std::chrono::seconds kSweepInterval{30};
  static constexpr int kIdleSweeps = 10;

  // metadata (may be null) gives the pod labels that overrides may select on. wall: the node's
  // clock (tests inject one); empty: the system clock. The end of an episode and the sweeps go by
  // flushDue()'s `now` (a drop is stamped with the last one: no clock is read per line).
  RateLimitStage(RateLimitOptions options, const ContainerMetadata* metadata,
                 prometheus::Registry& registry, ErrorReporter& errors, WallClock wall = {});
  ~RateLimitStage() override;

  bool accept(const Labels& labels, const LogEntry& entry,
              const LogCheckpoint& checkpoint) override;
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& checkpoint,
                    std::uint64_t stream_id) override;
  bool flushDue(Clock::time_point now, bool force) override;

  // For tests and the benchmark.
  [[nodiscard]] std::size_t streams() const;
  [[nodiscard]] std::size_t podSeries() const;
  [[nodiscard]] std::uint64_t droppedLines() const { return dropped_lines_; }
  [[nodiscard]] std::uint64_t droppedBytes() const { return dropped_bytes_; }
  [[nodiscard]] std::size_t pendingMarkers() const;

 private:
  struct Bucket;
  struct PodSeries;
  Bucket* find(const Labels& labels, const LogEntry& entry, std::uint64_t stream_id);
  Bucket* create(const Labels& labels, const LogEntry& entry, std::string key);
  void configure(Bucket& bucket, const Labels& labels, const LogEntry& entry, bool fresh);
  std::int64_t lineTime(std::int64_t timestamp_ns);
  bool emitMarker(Bucket& bucket);
  void sweep();
  void publish();
  void releasePod(Bucket& bucket);
  void forgetIds();
  std::int64_t wallNow() const;

  RateLimitOptions options_;
  LogStreamResolver resolver_;
  prometheus::Family<prometheus::Counter>& lines_family_;
  prometheus::Family<prometheus::Counter>& bytes_family_;
  ErrorReporter& errors_;
  WallClock wall_;

  // Buckets by the stream's labels (serialized); stable addresses (node-based map).
  std::unordered_map<std::string, std::unique_ptr<Bucket>> buckets_;
  // Stream number -> bucket; cleared whenever a bucket is removed or the metadata moves.
  std::unordered_map<std::uint64_t, Bucket*> by_id_;
  std::uint64_t generation_ = 0;    // the metadata's, at the last flushDue()
  std::uint64_t config_epoch_ = 1;  // moves when streams must look at the overrides again
  bool unresolved_ = false;         // a stream's pod was not known to the metadata
  bool selects_pod_labels_ = false;
  bool cap_swept_ = false;  // at max_streams, idle streams were looked for since the last sweep
  std::uint64_t recent_ids_[2] = {0, 0};
  Bucket* recent_buckets_[2] = {nullptr, nullptr};
  std::string key_scratch_;
  std::unordered_map<std::string, std::unique_ptr<PodSeries>> pods_;  // "namespace/pod"
  // Buckets with drops not yet told by a marker, or in an episode (for its end).
  std::vector<Bucket*> pending_;
  std::int64_t wall_cache_ns_ = 0;  // the node's clock at the last flushDue()
  Clock::time_point tick_now_;      // flushDue()'s last `now`
  Clock::time_point last_sweep_;
  std::uint64_t dropped_lines_ = 0;
  std::uint64_t dropped_bytes_ = 0;
  LogEntry marker_;  // reused
};

// The marker's text, e.g. "nodewarden: dropped 1234 lines (567 KiB) of this stream over 10s: rate
// limit 1000 lines/s". limits names what was exceeded ("1000 lines/s", "1 MiB/s", or both).
std::string rateLimitMarkerText(std::uint64_t lines, std::uint64_t bytes, std::int64_t period_ns,
                                const std::string& limits);

}  // namespace nodewarden
