// Spool: the durable, bounded, on-disk queue of records between a producer and an exporter: log
// batches between the batcher and the log shipper (Spool), remote-write requests between the
// encoder and the remote-write sender (MetricSpool). One implementation for both, in three units:
// spool.cpp manages segments and the ack (appends, the index, acknowledgement, drops when full,
// recovery and its damage accounting); spool_format.h is the bytes (record header versions 1 to
// 6, the ack file, their checksums), shared with the fuzz target; spool_files.h the file I/O.
// Segment files of checksummed records under a directory (zstd-compressed, or a batch's Loki push
// body stored as it is); appended with fsync (or synced on request); read oldest first; removed
// when acknowledged. A record's units are what its batch counts: a log batch's lines, a write
// request's samples.
//
// What a reader gets wrong: the spool is on the normal path, not only when the destination is
// down. Every batch is appended (and its source positions then committed) before it is sent, so
// a restart replays exactly what was not acknowledged, in order. When the byte bound is reached
// the oldest segment is dropped and its units are counted as lost. Batches appended by this process
// are also kept in memory (up to cache_bytes) so that sending them never reads back what was just
// written; the disk is read only on replay after a restart or when the sender is that far behind.
// With defer_writes (the log spool) an appended batch that fits in that memory is not written at
// all until sync(): one the destination acknowledged before then never touches the disk, and
// sync() writes the rest before the producer commits its positions, so what a crash takes is
// still only what the producer can read again. With a healthy destination the disk is then
// written about once a second (the batches in flight at the commit), not for every byte shipped.
// Whether a record counts as lost or delivered is decided in spool.cpp alone: spool_format only
// says whether bytes check out, and spool_files only does the I/O it is told to.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "pipeline/log_record.h"
#include "pipeline/metric_write_batch.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

// Also the config's spool.* section (agent/config.h), which sets max_bytes and segment_bytes.
struct SpoolOptions {
  std::filesystem::path dir;               // e.g. <state-dir>/spool/loki
  std::uint64_t max_bytes = 512ULL << 20;  // bound on the segment files' total size
  // A segment is closed past this size; open() lowers it to max_bytes / 4 (see there).
  std::uint64_t segment_bytes = 16ULL << 20;
  int zstd_level = 3;
  // Batches appended by this process are kept in memory, up to this many encoded (uncompressed
  // payload) bytes, so front() hands them out without reading the disk. 0 disables the cache.
  std::uint64_t cache_bytes = 4ULL << 20;
  bool fsync = true;  // tests of crash behaviour keep it on
  // false: an append is written but not fdatasync'ed; sync() makes every append before it durable
  // (a segment is synced when it closes). For a producer that can redo its appends, as the log
  // batcher can: it syncs before it commits its sources' positions.
  bool sync_each_append = true;
  // For batches acknowledged while held in memory (defer_writes: never written, so a restart
  // cannot send them again) the ack file is rewritten at most this often (0: on every
  // acknowledge). The acknowledgement of a batch on disk is written at once (renamed, not
  // fsync'ed): a kill re-sends none that was delivered, a power loss may (the same records; Loki
  // drops exact duplicates). Always when a segment file goes or the spool closes.
  std::chrono::milliseconds ack_write_interval{0};
  // Appends that fit in cache_bytes are held in memory, unwritten, until sync() (or until a later
  // append does not fit, or the spool closes): see the file comment. Needs sync_each_append off;
  // only batches stored as they are (Loki push bodies) are held.
  bool defer_writes = false;
  // With defer_writes, waitForConsumer() asks the producer to wait rather than make the spool
  // write while the consumer acknowledged a batch within this long and the oldest batch is not
  // older: a destination that takes what it is given is waited for, one that stalls is written
  // ahead of.
  std::chrono::milliseconds hold_wait{1000};
};

// What damage to the spool's files took, since the spool was opened (recovery included): every
// unit (line, sample) of a record that can no longer be read is counted once, from the record's
// own header or from the records around it (see spool.cpp); only damage to records written by
// older agents (record versions 1 to 4) can leave the number unknown, and then the damaged bytes
// are counted instead.
struct SpoolDamage {
  std::uint64_t units = 0;           // a part of BasicSpool::lostUnits()
  std::uint64_t unknown_bytes = 0;   // bytes of damaged records whose unit count is unknown
  std::uint64_t all_lost_units = 0;  // lostUnits() at the same moment (damage or a full spool)
};

// Publishes a spool's damage() as counters that only grow: the units into units_dropped (the
// owner's "dropped" family, reason="spool_corrupt"), the unknown bytes into
// nodewarden_spool_unknown_lost_bytes_total{spool=<spool>}. The owner calls update() with its
// other spool gauges; recovery's count arrives with the first call.
class SpoolDamageCounters {
 public:
  SpoolDamageCounters(prometheus::Family<prometheus::Counter>& units_dropped,
                      prometheus::Registry& registry, const std::string& spool);
  void update(const SpoolDamage& now);

 private:
  prometheus::Counter& units_;
  prometheus::Counter& unknown_bytes_;
  SpoolDamage seen_;
};

// The options of the log spool (<state-dir>/spool/logs), shared by the agent and its benchmarks:
// base (the config's spool.* section, whose sizes are kept) with dir and the log path's tuning.
SpoolOptions logSpoolOptions(std::filesystem::path dir, SpoolOptions base = {});

// Record: LogBatch or MetricWriteBatch (the instantiations in spool.cpp); "batch" below is one
// record, and its units are a log batch's lines or a write request's samples.
template <class Record>
class BasicSpool {
 public:
  // Opens (creating) the directory and recovers what is there: damaged records are skipped and
  // what they held is counted lost (damage()); a torn tail record (a crash mid-append) is cut
  // off, and counted only if the spool had made it durable (then it is damage, not a torn write).
  static std::expected<std::unique_ptr<BasicSpool>, std::string> open(SpoolOptions options,
                                                                      ErrorReporter& errors);
  virtual ~BasicSpool() = default;

  // Appends (durably, unless sync_each_append is off or the batch is held: defer_writes) and
  // returns the batch's sequence number (increasing across restarts). May drop the oldest segments
  // to stay under max_bytes.
  // Thread-safe.
  virtual std::expected<std::uint64_t, std::string> append(const Record& batch) = 0;
  // The same, but the batch is moved into the in-memory cache instead of copied when it is
  // appended; on failure it is left untouched (so the caller can try again).
  virtual std::expected<std::uint64_t, std::string> append(Record&& batch) = 0;

  // With defer_writes: true when an append of about this many stored bytes would not fit in memory
  // and the consumer is taking batches (see SpoolOptions::hold_wait), so the producer had better
  // wait for it (the files it reads are the buffer) than make the spool write. Thread-safe.
  [[nodiscard]] virtual bool waitForConsumer(std::uint64_t next_bytes) const = 0;

  // Makes every batch appended so far durable (a no-op with sync_each_append). Fails when that, or
  // an earlier deferred sync (of a segment that closed), failed: the caller must not treat those
  // appends as durable. Thread-safe.
  virtual std::expected<void, std::string> sync() = 0;

  // The oldest batch not yet acknowledged (with its sequence), or nullptr when empty. Shared, not
  // copied: the batch is immutable and stays valid after acknowledge(). Thread-safe.
  virtual std::shared_ptr<const Record> front() = 0;

  // Removes the batch with this sequence (which must be the front). Thread-safe.
  virtual void acknowledge(std::uint64_t sequence) = 0;
  // Every batch with a sequence up to this one is acknowledged (or was dropped when full, and
  // counted); batches appended later have higher sequences. Thread-safe.
  [[nodiscard]] virtual std::uint64_t acknowledgedThrough() const = 0;

  // An empty string with the capacity of a stored body (a Loki push body) of a batch the spool
  // has let go of and nobody holds any more, or a plain empty string. A producer writes its next
  // body into it: a body freed on the sender's thread and allocated anew on the producer's costs
  // a fresh mapping and its page faults per batch (bodies are above the agent's mmap threshold).
  // The spool keeps at most two such batches. Thread-safe.
  virtual std::string takeSpareBody() = 0;

  [[nodiscard]] virtual std::uint64_t bytes() const = 0;  // on disk
  // Batches appended but held in memory, not yet written (defer_writes), and the bytes they will
  // take on disk: a producer that keeps the spool under its bound counts them with bytes().
  [[nodiscard]] virtual std::uint64_t heldBatches() const = 0;
  [[nodiscard]] virtual std::uint64_t heldBytes() const = 0;
  // Bytes of records this process has written to segment files (a self-metric: with defer_writes
  // a healthy destination keeps it far below what was shipped).
  [[nodiscard]] virtual std::uint64_t writtenBytes() const = 0;
  [[nodiscard]] virtual std::uint64_t batches() const = 0;  // not acknowledged
  // Units (lines, samples) dropped when full, or corrupt. A batch dropped while front() had handed
  // it out counts only if it is not acknowledged: front() asked again first means it was not sent.
  [[nodiscard]] virtual std::uint64_t lostUnits() const = 0;
  // The part of that, and more, that damage on disk took (not a full spool).
  [[nodiscard]] virtual SpoolDamage damage() const = 0;
  // Encoded bytes of the appended batches held in memory for front(), at most cache_bytes (a batch
  // read back from disk for front() is held besides, one at a time).
  [[nodiscard]] virtual std::uint64_t cachedBytes() const = 0;
  // Age of the oldest unacknowledged batch (0 when empty).
  [[nodiscard]] virtual std::chrono::milliseconds oldestAge() const = 0;
};

using Spool = BasicSpool<LogBatch>;
using MetricSpool = BasicSpool<MetricWriteBatch>;

extern template class BasicSpool<LogBatch>;
extern template class BasicSpool<MetricWriteBatch>;

// The spool's record payload: a LogBatch in a compact binary form (exported for the fuzz target
// and tests). decode rejects anything malformed with a reason.
std::string encodeLogBatch(const LogBatch& batch);
// A batch with a Loki push body: its encoding up to the body (encodeLogBatch = head + body).
std::string encodeLogBatchHead(const LogBatch& batch);
std::expected<LogBatch, std::string> decodeLogBatch(std::string_view bytes);
// The same; a push body is copied into body_buffer's capacity (the spool's recycled buffers).
std::expected<LogBatch, std::string> decodeLogBatch(std::string_view bytes,
                                                    std::string body_buffer);

}  // namespace nodewarden
