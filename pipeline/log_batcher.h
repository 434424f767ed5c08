// LogBatcher: the LogSink collectors write into. Groups entries by stream into one LogBatch,
// closes it by size or age, appends it to the spool, and tells the sources that their positions
// may be committed once the batches up to them are acknowledged by the destination or synced in
// the spool.
//
// What a reader gets wrong about commits: a kill -9 sends twice the lines of batches that were
// delivered (or written to the spool's files) but whose positions were not committed, since they
// are read again. So every commit_interval the positions of the acknowledged batches are
// committed without any sync, and the spool is synced only when a batch after them is on disk,
// has waited commit_grace, or at flush(true): a kill then repeats at most one commit interval of
// lines plus the batch in flight (bench/README.md, bench_kill9_duplicates).
//
// What a reader gets wrong: hasRoom() is the backpressure. It turns false when the open batch is
// at its memory budget or the spool cannot take another batch; collectors then stop reading and
// the log files themselves are the buffer. A full batch also waits while the destination is
// taking batches but the spool's memory is full (waitingForConsumer()): written to disk, it would
// only be read back a moment later. Nothing is dropped here except entries of a stream
// past the per-node stream cap, which are counted. With an encoder (the destination's
// LogBatchEncoder) a closed batch is spooled as the body it wrote, encoded here once for the whole
// path.
#pragma once

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline/log_batch_encoder.h"
#include "pipeline/log_record.h"
#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"

namespace nodewarden {

// The agent's commit_interval (and its benchmarks').
inline constexpr std::chrono::milliseconds kLogCommitInterval{1000};
// The agent's commit_grace: a push is usually answered well within it.
inline constexpr std::chrono::milliseconds kLogCommitGrace{250};

// Also part of the config's collectors.logs.* section (agent/config.h): batch_bytes, batch_wait
// and max_streams are keys; the agent sets the spool's bound, the encoder and the commit timing.
struct LogBatcherOptions {
  std::size_t batch_bytes = 1 << 20;                // close a batch at this many line bytes
  std::chrono::milliseconds batch_wait{1000};       // or when its first entry is this old
  std::size_t max_streams = 10000;                  // distinct label sets per batch window
  std::uint64_t spool_headroom_bytes = 4ULL << 20;  // keep this much of the spool free
  std::uint64_t spool_max_bytes = 512ULL << 20;     // the spool's bound (SpoolOptions::max_bytes)
  // The destination's own encoding (LogExporter::batchEncoder()): entries are encoded as they
  // are accepted and a batch is spooled as its body. Empty: batches keep their entries.
  std::shared_ptr<LogBatchEncoder> encoder;
  // Sources' positions are committed (on_durable) at most this often, and at flush(true); 0:
  // after every batch. A commit covers every batch the spool has acknowledged (no sync needed),
  // and every batch appended when it syncs the spool. What a crash takes back is read again from
  // the files: the same entries, which Loki drops as duplicates.
  std::chrono::milliseconds commit_interval{0};
  // A due commit syncs the spool (which writes the batches it holds in memory) for batches not
  // yet acknowledged only once the oldest of them was appended this long ago, or at once when one
  // of them is on disk already (it would be sent again besides being read again): the destination
  // usually acknowledges a batch within that, and then nothing is written. Until then the commit
  // covers the acknowledged batches and the rest wait (checked at every flush). 0: never waits.
  std::chrono::milliseconds commit_grace{0};
  // The clock of batch_wait, commit_interval and commit_grace; empty: steady_clock (tests inject
  // one).
  std::function<std::chrono::steady_clock::time_point()> now;
};

class LogBatcher final : public LogSink {
 public:
  using Clock = std::chrono::steady_clock;
  // on_durable receives the latest checkpoint of each source whose batches are acknowledged or
  // durably in the spool: after every batch, or once per commit_interval.
  using OnDurable = std::function<void(const std::vector<LogCheckpoint>&)>;

  LogBatcher(LogBatcherOptions options, Spool& spool, OnDurable on_durable,
             prometheus::Registry& registry, ErrorReporter& errors);

  bool accept(const Labels& labels, const LogEntry& entry,
              const LogCheckpoint& checkpoint) override;
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& checkpoint,
                    std::uint64_t stream_id) override;
  [[nodiscard]] bool hasRoom() const override;

  // Closes the open batch if it is full or old enough (or always, with force), and commits the
  // positions of spooled batches when commit_interval has passed (all of them, after a sync, with
  // force; see commit_grace). Returns whether a batch went to the spool. The lines and bytes read
  // counters are brought up to date here (not per line): callers flush every tick.
  bool flush(bool force = false);

  [[nodiscard]] std::size_t pendingBytes() const { return batch_.bytes; }
  // A position of this source is in the open batch or in a spooled batch whose positions were
  // not committed yet: another batcher must not commit positions of it before this one did (the
  // tenant router moves a source between batchers only once this is false).
  [[nodiscard]] bool holdsSource(std::string_view source) const;
  // No open batch and no position waiting to be committed.
  [[nodiscard]] bool empty() const {
    return batch_.lines == 0 && batch_.checkpoints.empty() && pending_.empty();
  }
  // The last flush() kept a batch that was due instead of appending it: the spool holds what fits
  // in memory and its consumer is taking batches (Spool::waitForConsumer), so the lines wait in
  // their files rather than the spool writes them. Callers flush again soon (milliseconds).
  [[nodiscard]] bool waitingForConsumer() const { return waiting_; }

 private:
  bool appendToSpool();
  void publishCounts();
  [[nodiscard]] Clock::time_point now() const {
    return options_.now ? options_.now() : Clock::now();
  }
  // When a commit is due (the first, commit_interval since the last, or force): hands on_durable
  // the positions of the acknowledged batches, or of every batch after a sync of the spool (see
  // commit_grace). A failed sync commits the acknowledged ones only.
  void commitPositions(bool force);
  // Hands on_durable the latest position of each source in the first count pending_ batches.
  void commitFirst(std::size_t count, Clock::time_point at);

  LogBatcherOptions options_;
  Spool& spool_;
  OnDurable on_durable_;
  ErrorReporter& errors_;
  LogBatch batch_;  // with an encoder its streams hold labels only, the entries are in encoded_
  // A stream's entries encoded for the body, in chunks of kChunkBytes (all full but the last):
  // no buffer ever grows, and the chunks go back to free_chunks_ when the batch is spooled.
  struct EncodedStream {
    std::vector<std::unique_ptr<char[]>> chunks;
    std::size_t last_used = 0;  // bytes written in chunks.back()
  };
  void encode(EncodedStream& stream, const LogEntry& entry);
  std::unique_ptr<char[]> takeChunk();
  std::vector<EncodedStream> encoded_;  // per stream of batch_
  std::vector<std::unique_ptr<char[]>> free_chunks_;
  std::string field_scratch_;                      // an entry that does not fit its chunk's rest
  std::vector<std::string_view> chunk_views_;      // the pieces of the body being written
  std::vector<EncodedLogStream> encoded_streams_;  // what the encoder makes the body of
  // The last batch's push body when the spool did not keep it in memory: the next body is written
  // into its capacity (no fresh allocation and page faults per batch). Else the spool gives one
  // back (Spool::takeSpareBody).
  std::string spare_body_;
  std::map<Labels, std::size_t> stream_index_;           // labels -> index in batch_.streams
  std::map<std::string, std::size_t> checkpoint_index_;  // source -> index in batch_.checkpoints
  // The stream and the checkpoint of the previous entry: the next one is most often the same.
  std::size_t last_stream_ = 0;
  std::size_t last_checkpoint_ = 0;
  // The streams of the last two stream numbers seen in this batch (acceptStream), newest first.
  std::array<std::uint64_t, 2> recent_ids_{0, 0};
  std::array<std::size_t, 2> recent_streams_{0, 0};
  Clock::time_point first_entry_{};
  // Batches spooled and not yet committed, in sequence order: each one's positions.
  struct PendingBatch {
    std::uint64_t sequence = 0;
    Clock::time_point appended;
    std::vector<LogCheckpoint> checkpoints;
  };
  std::deque<PendingBatch> pending_;
  std::unordered_map<std::string, std::size_t> commit_index_;  // source -> index, in commitFirst
  std::optional<Clock::time_point> committed_at_;              // the last commit
  bool spool_failed_ = false;
  bool waiting_ = false;  // the last flush() kept a due batch: the spool's consumer is taking them
  mutable bool spool_room_ = false;  // the spool had room when last asked, with no append since
  std::uint64_t unpublished_lines_ = 0;
  std::uint64_t unpublished_bytes_ = 0;
  prometheus::Counter* lines_in_ = nullptr;
  prometheus::Counter* bytes_in_ = nullptr;
  prometheus::Counter* dropped_stream_cap_ = nullptr;
  prometheus::Counter* batches_ = nullptr;
};

}  // namespace nodewarden
