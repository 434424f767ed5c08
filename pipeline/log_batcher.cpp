#include "pipeline/log_batcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <span>

namespace nodewarden {
namespace {

// Encoded entries live in chunks of snappy's block size (each is compressed where it is, as one
// block). Chunks are kept from one batch to the next up to this many batch sizes, or twice the
// last batch's encoded bytes plus one per stream, whichever is more (the encoded entries are
// ~1.6x the line bytes on the benchmark's corpus): a steady stream of batches then allocates
// nothing and touches no fresh page here. (Per-stream buffers that grew by doubling drifted to
// the busiest stream's size, and a fresh mapping per batch cost its page faults.)
constexpr std::size_t kChunkBytes = 64 << 10;
constexpr std::size_t kFreeChunkBatches = 4;

}  // namespace

LogBatcher::LogBatcher(LogBatcherOptions options, Spool& spool, OnDurable on_durable,
                       prometheus::Registry& registry, ErrorReporter& errors)
    : options_(options), spool_(spool), on_durable_(std::move(on_durable)), errors_(errors) {
  auto& lines = prometheus::BuildCounter()
                    .Name("nodewarden_log_lines_read_total")
                    .Help("Log lines read from every source and handed to the log pipeline.")
                    .Register(registry);
  lines_in_ = &lines.Add({});
  bytes_in_ = &prometheus::BuildCounter()
                   .Name("nodewarden_log_bytes_read_total")
                   .Help("Bytes of log lines handed to the log pipeline.")
                   .Register(registry)
                   .Add({});
  auto& dropped = prometheus::BuildCounter()
                      .Name("nodewarden_log_lines_dropped_total")
                      .Help("Log lines dropped, by reason.")
                      .Register(registry);
  dropped_stream_cap_ = &dropped.Add({{"reason", "stream_limit"}});
  batches_ = &prometheus::BuildCounter()
                  .Name("nodewarden_log_batches_spooled_total")
                  .Help("Log batches written to the spool.")
                  .Register(registry)
                  .Add({});
}

bool LogBatcher::hasRoom() const {
  if (batch_.bytes >= options_.batch_bytes) return false;  // flush() first
  // Only this batcher's appends make the spool bigger (the shipper and a full spool's drops
  // shrink it), so a spool found with room keeps it until the next append: asked once per batch,
  // not under the spool's lock for every line.
  if (spool_room_) return true;
  const std::uint64_t limit = options_.spool_max_bytes > options_.spool_headroom_bytes
                                  ? options_.spool_max_bytes - options_.spool_headroom_bytes
                                  : 0;
  // Batches the spool holds in memory take their room on disk when they are written.
  spool_room_ = spool_.bytes() + spool_.heldBytes() < limit;
  return spool_room_;
}

void LogBatcher::publishCounts() {
  if (unpublished_lines_ == 0) return;
  lines_in_->Increment(static_cast<double>(unpublished_lines_));
  bytes_in_->Increment(static_cast<double>(unpublished_bytes_));
  unpublished_lines_ = unpublished_bytes_ = 0;
}

std::uint64_t newLogStreamId() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

bool LogBatcher::accept(const Labels& labels, const LogEntry& entry,
                        const LogCheckpoint& checkpoint) {
  return acceptStream(labels, entry, checkpoint, 0);
}

bool LogBatcher::acceptStream(const Labels& labels, const LogEntry& entry,
                              const LogCheckpoint& checkpoint, std::uint64_t stream_id) {
  if (!hasRoom()) return false;
  std::size_t stream = last_stream_;
  // By number first (a file's stdout and stderr alternate: the last two are remembered), by
  // labels for the first line of a number in this batch or for a collector without numbers.
  if (stream_id != 0 && stream_id == recent_ids_[0]) {
    stream = recent_streams_[0];
  } else if (stream_id != 0 && stream_id == recent_ids_[1]) {
    stream = recent_streams_[1];
    std::swap(recent_ids_[0], recent_ids_[1]);
    std::swap(recent_streams_[0], recent_streams_[1]);
  } else if (stream >= batch_.streams.size() || batch_.streams[stream].labels != labels) {
    auto it = stream_index_.find(labels);
    if (it == stream_index_.end()) {
      if (stream_index_.size() >= options_.max_streams) {
        // The entry is consumed (its position may be committed with the next batch): counted,
        // not silently lost.
        dropped_stream_cap_->Increment();
        errors_.report("logs", "stream_limit",
                       "more than " + std::to_string(options_.max_streams) + " streams in a batch");
        return true;
      }
      it = stream_index_.emplace(labels, batch_.streams.size()).first;
      batch_.streams.push_back(LogBatch::Stream{labels, {}});
      if (options_.encoder) encoded_.emplace_back();
    }
    stream = it->second;
  }
  last_stream_ = stream;
  if (stream_id != 0 && stream_id != recent_ids_[0]) {
    recent_ids_[1] = recent_ids_[0];
    recent_streams_[1] = recent_streams_[0];
    recent_ids_[0] = stream_id;
    recent_streams_[0] = stream;
  }
  if (batch_.lines == 0) first_entry_ = now();
  batch_.bytes += entry.line.size();
  batch_.lines += 1;
  ++unpublished_lines_;
  unpublished_bytes_ += entry.line.size();
  if (options_.encoder) {
    encode(encoded_[stream], entry);
  } else {
    batch_.streams[stream].entries.push_back(entry);
  }
  std::size_t cp = last_checkpoint_;
  if (cp >= batch_.checkpoints.size() || batch_.checkpoints[cp].source != checkpoint.source) {
    auto it = checkpoint_index_.find(checkpoint.source);
    if (it == checkpoint_index_.end()) {
      it = checkpoint_index_.emplace(checkpoint.source, batch_.checkpoints.size()).first;
      batch_.checkpoints.push_back(checkpoint);
    }
    cp = last_checkpoint_ = it->second;
  }
  // The same source: its position moves (the source string is equal already).
  LogCheckpoint& latest = batch_.checkpoints[cp];
  latest.file = checkpoint.file;
  latest.offset = checkpoint.offset;
  if (latest.journal_cursor != checkpoint.journal_cursor)
    latest.journal_cursor = checkpoint.journal_cursor;
  return true;
}

bool LogBatcher::holdsSource(std::string_view source) const {
  const auto in = [&](const std::vector<LogCheckpoint>& checkpoints) {
    return std::ranges::any_of(checkpoints,
                               [&](const LogCheckpoint& cp) { return cp.source == source; });
  };
  if (in(batch_.checkpoints)) return true;
  return std::ranges::any_of(pending_, [&](const PendingBatch& p) { return in(p.checkpoints); });
}

std::unique_ptr<char[]> LogBatcher::takeChunk() {
  if (free_chunks_.empty()) return std::make_unique_for_overwrite<char[]>(kChunkBytes);
  auto chunk = std::move(free_chunks_.back());
  free_chunks_.pop_back();
  return chunk;
}

void LogBatcher::encode(EncodedStream& stream, const LogEntry& entry) {
  if (stream.chunks.empty() || stream.last_used == kChunkBytes) {
    stream.chunks.push_back(takeChunk());
    stream.last_used = 0;
  }
  const std::span<char> room(stream.chunks.back().get() + stream.last_used,
                             kChunkBytes - stream.last_used);
  const std::size_t size = options_.encoder->encodeEntry(entry, room, field_scratch_);
  if (size <= room.size()) {
    stream.last_used += size;
    return;
  }
  // Across chunks: written whole once (into field_scratch_), then copied (one entry per chunk at
  // most, or a long line).
  std::string_view rest(field_scratch_.data(), size);
  while (!rest.empty()) {
    if (stream.last_used == kChunkBytes) {
      stream.chunks.push_back(takeChunk());
      stream.last_used = 0;
    }
    const std::size_t n = std::min(rest.size(), kChunkBytes - stream.last_used);
    std::memcpy(stream.chunks.back().get() + stream.last_used, rest.data(), n);
    stream.last_used += n;
    rest.remove_prefix(n);
  }
  // A rare long line does not keep its scratch for good.
  if (field_scratch_.size() > kChunkBytes) field_scratch_ = std::string();
}

bool LogBatcher::flush(bool force) {
  publishCounts();
  bool appended = false;
  if (batch_.lines != 0 || !batch_.checkpoints.empty()) {
    const bool due = force || batch_.bytes >= options_.batch_bytes ||
                     now() - first_entry_ >= options_.batch_wait;
    // Not forced: while the destination takes batches, one that does not fit in the spool's
    // memory waits for it (it would be written and read back) rather than go to disk.
    waiting_ = due && !force && spool_.waitForConsumer(batch_.bytes);
    if (due && !waiting_) appended = appendToSpool();
  } else {
    waiting_ = false;
  }
  commitPositions(force);
  return appended;
}

void LogBatcher::commitPositions(bool force) {
  if (pending_.empty()) return;
  const Clock::time_point at = now();
  if (!force && committed_at_ && at - *committed_at_ < options_.commit_interval) return;
  // Acknowledged (or dropped, and counted, by the spool): their lines are where they are going,
  // and reading them again after a crash would only send them twice.
  const std::uint64_t acknowledged = spool_.acknowledgedThrough();
  std::size_t count = 0;
  while (count < pending_.size() && pending_[count].sequence <= acknowledged) ++count;
  const std::size_t unacknowledged = pending_.size() - count;
  bool sync = force && unacknowledged > 0;
  if (!sync && unacknowledged > 0) {
    // The spool holds its newest batches in memory; fewer held than unacknowledged here (asked
    // after acknowledgedThrough, so acknowledgements in between only lower the count held) means
    // one of ours is on disk: a crash would send it again besides reading its lines again.
    const bool on_disk = spool_.heldBatches() < unacknowledged;
    sync = on_disk || at - pending_[count].appended >= options_.commit_grace;
  }
  if (sync) {
    if (auto synced = spool_.sync(); synced) {
      count = pending_.size();
    } else {
      // Reported by the spool too; the rest wait for a sync that succeeds (their lines stay in
      // their files until then).
      errors_.report("spool", "sync_failed", synced.error());
    }
  }
  // Nothing to commit: due still, so the next flush looks again (an acknowledgement, the grace).
  if (count > 0) commitFirst(count, at);
}

void LogBatcher::commitFirst(std::size_t count, Clock::time_point at) {
  // A later batch's position of a source supersedes an earlier one (batches are in read order).
  std::vector<LogCheckpoint> latest;
  commit_index_.clear();
  for (std::size_t i = 0; i < count; ++i) {
    for (auto& cp : pending_[i].checkpoints) {
      const auto [it, added] = commit_index_.try_emplace(cp.source, latest.size());
      if (added) {
        latest.push_back(std::move(cp));
      } else {
        latest[it->second] = std::move(cp);
      }
    }
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
  committed_at_ = at;
  if (on_durable_) on_durable_(latest);
}

bool LogBatcher::appendToSpool() {
  // The spool keeps the batch it is given in memory for sending; moving it saves a copy. The
  // checkpoints are copied first: they are committed after the batch is gone from here.
  std::vector<LogCheckpoint> checkpoints = batch_.checkpoints;
  std::expected<std::uint64_t, std::string> seq;
  if (options_.encoder && !batch_.streams.empty()) {
    // The entries go to the spool as the body the destination receives; batch_ stays as it is
    // until the append succeeded.
    chunk_views_.clear();
    for (const auto& es : encoded_) {
      for (std::size_t c = 0; c < es.chunks.size(); ++c) {
        chunk_views_.emplace_back(es.chunks[c].get(),
                                  c + 1 == es.chunks.size() ? es.last_used : kChunkBytes);
      }
    }
    encoded_streams_.clear();
    std::size_t first = 0;
    for (std::size_t i = 0; i < batch_.streams.size(); ++i) {
      const std::size_t n = encoded_[i].chunks.size();
      encoded_streams_.push_back(
          {&batch_.streams[i].labels,
           std::span<const std::string_view>(chunk_views_).subspan(first, n)});
      first += n;
    }
    LogBatch encoded;
    encoded.checkpoints = checkpoints;
    encoded.bytes = batch_.bytes;
    encoded.lines = batch_.lines;
    // A buffer of an earlier body: the one the spool did not keep, or one it has let go of.
    encoded.encoded_body = spare_body_.capacity() > std::string().capacity()
                               ? std::move(spare_body_)
                               : spool_.takeSpareBody();
    spare_body_ = std::string();
    options_.encoder->encodeBody(encoded_streams_, encoded.encoded_body);
    seq = spool_.append(std::move(encoded));
    // The spool moves a batch it keeps in memory and leaves one it does not (or could not take)
    // as it was: then the body's buffer serves the next batch.
    if (encoded.encoded_body.capacity() > spare_body_.capacity()) {
      spare_body_ = std::move(encoded.encoded_body);
    }
  } else {
    seq = spool_.append(std::move(batch_));
  }
  if (!seq) {
    // The spool could not take it (disk error, or a batch larger than the spool): the entries are
    // not committed either, so the sources read them again after a restart. Keep the batch and
    // try again on the next flush rather than lose it now.
    if (!spool_failed_) spdlog::error("log spool append failed: {}", seq.error());
    spool_failed_ = true;
    errors_.report("spool", "append_failed", seq.error());
    return false;
  }
  spool_failed_ = false;
  spool_room_ = false;  // asked again before the next line
  batches_->Increment();
  // The chunks go back for the next batch, as many as it may need.
  std::size_t chunks = 0;
  for (const auto& es : encoded_) chunks += es.chunks.size();
  const std::size_t keep = std::max(kFreeChunkBatches * options_.batch_bytes / kChunkBytes,
                                    2 * chunks + encoded_.size());
  for (auto& es : encoded_) {
    for (auto& chunk : es.chunks) {
      if (free_chunks_.size() < keep) free_chunks_.push_back(std::move(chunk));
    }
  }
  encoded_.clear();
  batch_ = LogBatch{};
  pending_.push_back(PendingBatch{*seq, now(), std::move(checkpoints)});
  stream_index_.clear();
  checkpoint_index_.clear();
  last_stream_ = last_checkpoint_ = 0;
  recent_ids_ = {0, 0};
  return true;
}

}  // namespace nodewarden
