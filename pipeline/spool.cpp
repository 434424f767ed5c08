// The durable spool: segment files of checksummed zstd records, an index in memory, and an `ack`
// file holding the highest acknowledged sequence. One implementation for every record type (log
// batches, remote-write requests): a record type only brings its SpoolCodec (payload encoding,
// unit count, whether the payload is stored uncompressed), defined below next to the
// instantiations. This file manages segments and the ack (what is written where and when, what
// recovery makes of what it finds); the bytes of a record and of the ack are spool_format's, the
// file I/O (lock, append, read back, replace, cut) spool_files'.
//
// On disk, in options.dir:
//   <first-seq, 20 digits>.seg  records back to back (header layout: spool_format.h), each
//     followed by Codec::encode(batch): version 5, one zstd frame of it; version 6, the bytes as
//     they are (both lengths equal). Version 6 is for batches that carry their Loki push body,
//     which is snappy-compressed already: compressing it again would cost CPU for little. "Units
//     before it" is the sum of the unit counts of every record this spool wrote to its files
//     before this one (batches held in memory and acknowledged unwritten do not count): what lets
//     recovery count exactly what a missing or damaged piece of the files held (see "Damage"
//     below). Older agents wrote versions 1 to 4, without that field; they are still read.
//   ack   the acknowledged-through sequence, the units acknowledged, the last fdatasync'ed
//         sequence and units, and ranges of units counted lost (spool_format.h), replaced
//         atomically (ack.tmp, rename). Durably (fsync of ack.tmp before the rename and of the
//         directory after it) when a segment file goes (before its unlink), at recovery and at
//         close: an ack that a
//         power loss takes back, or leaves short, only re-sends batches of segments still on disk
//         that were delivered already (the same bytes, which Loki drops as duplicates; a kill of
//         the process loses nothing, the kernel has the file), while a segment removed under a
//         stale ack could let sequences repeat, or look like damage. In between it is rewritten
//         (renamed, not fsync'ed) when a record on disk is acknowledged, so a kill re-sends none;
//         for records acknowledged while held in memory (never written) at most once per
//         ack_write_interval.
//   Records are fdatasync'ed as they are appended, or (sync_each_append off) when the producer
//   calls sync() and when their segment closes; a power loss may then cut records appended
//   since, which recovery treats as a torn tail.
//   The directory itself is flock()ed while a Spool has it open.
//
// Damage: recovery walks the records of every segment in order and expects each one's "units
// before it" to continue the last good one's (or, before the first, the ack's units
// acknowledged). A shortfall is what is missing in between (a damaged record, a segment cut
// short, zeroed, emptied, deleted, unreadable or not a file) and is counted lost, exactly, once:
// its range goes into the ack, and a later recovery that finds the same gap does not count it
// again. After the last good record, the ack's units fdatasync'ed say how many the files must
// hold; anything past them (a record a crash cut short, whose batch its producer still has) is a
// torn tail, reported and cut but not counted. Only records of the older versions, which lack
// the field, fall back to what a damaged header that checks out says, or to counting bytes of
// unknown content (SpoolDamage).
//
// What a reader gets wrong: acknowledging does not rewrite segments. A record is acknowledged
// when its sequence is at or below the one in `ack`; a segment file is deleted once none of its
// records is pending (and it is no longer the one being appended to). Dropping the oldest segment
// when full advances `ack` past it too, so sequences never repeat across restarts. Batches appended
// by this process are kept in memory besides (RecordRef::cached, bounded by cache_bytes) and
// front() hands those out as they were appended; a record is decoded from disk only after a restart
// or when the cache was full when it was appended. The header has
// its own crc so that a flipped length never sends recovery on a wild jump: a record whose header
// does not check out is garbage, and recovery looks for the next magic whose record checks out.
#include "pipeline/spool.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "pipeline/spool_files.h"
#include "pipeline/spool_format.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using namespace spool_format;
using spool_files::errnoText;
using spool_files::MappedFile;
using spool_files::segmentName;
using spool_files::UniqueFd;

// Batches kept for their body buffers (takeSpareLocked): the one being sent and the one before.
constexpr std::size_t kMaxRetired = 2;
constexpr std::string_view kAckName = "ack";
constexpr std::string_view kAckTmpName = "ack.tmp";
constexpr std::string_view kComponent = "spool";

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct ZstdCCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// What the spool needs to know of a record type. Every record type has a `sequence` member the
// spool sets.
template <class Record>
struct SpoolCodec;

template <>
struct SpoolCodec<LogBatch> {
  static constexpr std::string_view kUnit = "lines";
  static constexpr bool kStores = true;
  static std::string encode(const LogBatch& b) { return encodeLogBatch(b); }
  // A stored record's payload is head + body; the body is written from the batch itself.
  static std::string storedHead(const LogBatch& b) { return encodeLogBatchHead(b); }
  static std::string_view storedBody(const LogBatch& b) { return b.encoded_body; }
  // spare: a recycled buffer for a stored body (see takeSpareBody).
  static std::expected<LogBatch, std::string> decode(std::string_view p, std::string spare) {
    return decodeLogBatch(p, std::move(spare));
  }
  static std::string takeBody(LogBatch& b) { return std::move(b.encoded_body); }
  // A Loki push body is snappy-compressed already: stored as it is.
  static bool stored(const LogBatch& b) { return !b.encoded_body.empty(); }
  // A push body's entries are not counted one by one: the batch's own count stands for them.
  static std::uint64_t units(const LogBatch& b) {
    std::uint64_t lines = stored(b) ? b.lines : 0;
    for (const auto& stream : b.streams) {
      lines += stream.entries.size();
    }
    return lines;
  }
};

template <>
struct SpoolCodec<MetricWriteBatch> {
  static constexpr std::string_view kUnit = "samples";
  static constexpr bool kStores = false;
  static std::string encode(const MetricWriteBatch& b) { return encodeMetricWriteBatch(b); }
  static std::expected<MetricWriteBatch, std::string> decode(std::string_view p, std::string) {
    return decodeMetricWriteBatch(p);
  }
  // The request is kept as plain protobuf (snappy is applied when it is sent): zstd shrinks it
  // far more on disk than snappy would.
  static bool stored(const MetricWriteBatch&) { return false; }
  static std::uint64_t units(const MetricWriteBatch& b) { return b.samples; }
};

template <class Record>
class DiskSpool final : public BasicSpool<Record> {
  using Codec = SpoolCodec<Record>;

 public:
  DiskSpool(SpoolOptions options, ErrorReporter& errors)
      : options_(std::move(options)),
        errors_(errors),
        cctx_(ZSTD_createCCtx()),
        dctx_(ZSTD_createDCtx()) {}
  // A clean close leaves nothing deferred: the ack and the appends are made durable.
  // The ack last, so that it says how many units the files hold (recovery counts a shortfall).
  ~DiskSpool() override {
    std::lock_guard lock(mu_);
    if (auto w = writeHeldLocked(); !w) errors_.report(kComponent, "append_failed", w.error());
    syncActiveLocked();
    writeAckLocked();
  }
  DiskSpool(const DiskSpool&) = delete;
  DiskSpool& operator=(const DiskSpool&) = delete;

  std::expected<void, std::string> recover();

  std::expected<std::uint64_t, std::string> append(const Record& batch) override {
    return appendRecord(batch, nullptr);
  }
  std::expected<std::uint64_t, std::string> append(Record&& batch) override {
    return appendRecord(batch, &batch);
  }
  std::expected<void, std::string> sync() override {
    std::lock_guard lock(mu_);
    if (auto w = writeHeldLocked(); !w) return std::unexpected(w.error());
    syncActiveLocked();
    if (!sync_error_.empty()) return std::unexpected(std::exchange(sync_error_, {}));
    return {};
  }
  std::shared_ptr<const Record> front() override;
  void acknowledge(std::uint64_t sequence) override;
  [[nodiscard]] std::uint64_t acknowledgedThrough() const override {
    std::lock_guard lock(mu_);
    return acked_;
  }
  std::string takeSpareBody() override {
    std::lock_guard lock(mu_);
    return takeSpareLocked();
  }

  [[nodiscard]] std::uint64_t bytes() const override {
    std::lock_guard lock(mu_);
    return bytes_;
  }
  [[nodiscard]] std::uint64_t heldBatches() const override {
    std::lock_guard lock(mu_);
    return held_;
  }
  [[nodiscard]] std::uint64_t heldBytes() const override {
    std::lock_guard lock(mu_);
    return held_bytes_;
  }
  [[nodiscard]] std::uint64_t writtenBytes() const override {
    std::lock_guard lock(mu_);
    return written_bytes_;
  }
  [[nodiscard]] bool waitForConsumer(std::uint64_t next_bytes) const override;
  [[nodiscard]] std::uint64_t batches() const override {
    std::lock_guard lock(mu_);
    return records_.size();
  }
  [[nodiscard]] std::uint64_t lostUnits() const override {
    std::lock_guard lock(mu_);
    return lost_units_;
  }
  [[nodiscard]] SpoolDamage damage() const override {
    std::lock_guard lock(mu_);
    SpoolDamage d = damage_;
    d.all_lost_units = lost_units_;
    return d;
  }
  [[nodiscard]] std::uint64_t cachedBytes() const override {
    std::lock_guard lock(mu_);
    return cached_bytes_;
  }
  [[nodiscard]] std::chrono::milliseconds oldestAge() const override {
    std::lock_guard lock(mu_);
    if (records_.empty()) {
      return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(
        std::max<std::int64_t>(0, nowMs() - records_.front().append_ms));
  }

 private:
  struct Segment {
    fs::path path;
    std::uint64_t bytes = 0;    // file size
    std::uint64_t pending = 0;  // records in records_
    bool unreadable = false;    // left on disk untouched, outside the index and the bound
    bool not_a_file = false;    // a directory or anything else under a segment's name: the same
  };
  // Recovery's account of the records between the last good one and the next (recover()).
  struct ChainScan {
    // units_before the next record should carry; unknown after an older record (versions 1-4)
    // or when the ack did not say where the pending records start.
    std::optional<std::uint64_t> expected;
    std::uint64_t header_units = 0;   // damaged records whose headers checked out (no chain)
    std::uint64_t unknown_bytes = 0;  // damaged bytes with no header that checks out
    std::uint64_t highest_units = 0;  // end of the furthest record with units_before
    std::string damage;               // where, for the report; empty when nothing is damaged
    std::string_view reason;          // the first kind of damage seen since the last good record
    bool damaged_bytes = false;       // a damaged record (not only a file that could not be read)
    void note(std::string_view kind, const std::string& what) {
      if (reason.empty()) reason = kind;
      context(what);
    }
    // Worth saying if something turns out lost, not damage in itself (an empty segment).
    void context(const std::string& what) {
      if (!damage.empty()) damage += "; ";
      damage += what;
    }
  };
  // Where one unacknowledged record is; records_ is in sequence order.
  // RecordRef::segment of a batch held in memory, not written yet (defer_writes).
  static constexpr std::uint64_t kHeld = UINT64_MAX;
  struct RecordRef {
    std::uint64_t sequence = 0;
    std::uint64_t segment = 0;  // key in segments_, or kHeld
    std::uint64_t offset = 0;   // of the header
    std::uint32_t compressed = 0;
    std::uint32_t uncompressed = 0;
    std::uint32_t units = 0;
    std::int64_t append_ms = 0;
    // The batch as appended by this process (its sequence set), while the cache had room for it;
    // counted in cached_bytes_ as `uncompressed`.
    std::shared_ptr<Record> cached;  // handed out as const (front()); see takeSpareLocked
    // Written records of versions 5 and 6 (all this process writes): the units before it.
    std::optional<std::uint64_t> units_before;
    std::size_t header_bytes = kHeaderBytes;
  };

  std::expected<void, std::string> readAckLocked();
  // durable: fsync the file before and the directory after the rename (see the file comment).
  bool writeAckLocked(bool durable = true);
  void syncDirLocked();
  // fdatasync of the active segment when appends to it were not synced; a failure is kept in
  // sync_error_ for the next sync().
  void syncActiveLocked();
  void scanSegmentLocked(std::uint64_t key, std::uint64_t& last_sequence, ChainScan& chain);
  // Counts the damage chain has gathered against the next good record (nullptr: the end of the
  // spool) and reports it.
  void settleDamageLocked(ChainScan& chain, const RecordHeader* next, const std::string& where);
  // Counts the units in [from, to) not counted before (counted_) and records them as counted.
  std::uint64_t countLostRangeLocked(std::uint64_t from, std::uint64_t to);
  [[nodiscard]] bool countedLocked(std::uint64_t units_before) const;
  // Returns whether a segment file went with the record.
  bool popFrontLocked();
  void removeSegmentLocked(std::uint64_t key);
  void dropOldestSegmentLocked();
  std::expected<std::uint64_t, std::string> appendRecord(const Record& batch, Record* owned);
  // Where writeRecordLocked put a record.
  struct Placement {
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;
    std::uint32_t compressed = 0;
    std::uint32_t uncompressed = 0;
    std::uint64_t units_before = 0;
  };
  // Writes one record at the end of the active segment (opening one, and dropping the oldest
  // segments to stay under max_bytes, as needed); counts it in its segment and in bytes_.
  std::expected<Placement, std::string> writeRecordLocked(const Record& batch,
                                                          std::uint64_t sequence,
                                                          std::int64_t append_ms);
  // Writes the held batches, oldest first; on a failure the rest stay held, in order.
  std::expected<void, std::string> writeHeldLocked();
  void popRecordLocked();
  void retireLocked(std::shared_ptr<Record> batch);
  std::string takeSpareLocked();
  // reason: the errors_total reason of a failure.
  std::expected<Record, std::string> readRecordLocked(const RecordRef& ref,
                                                      std::string_view& reason);
  static std::expected<Record, std::string> finishRecord(const RecordRef& ref, const fs::path& path,
                                                         std::string_view payload,
                                                         std::string spare);
  // key: the sequence of the first record it will hold (its file name).
  std::expected<void, std::string> openSegmentLocked(std::uint64_t key);

  const SpoolOptions options_;
  ErrorReporter& errors_;
  UniqueFd dir_fd_;  // flock()ed for the spool's lifetime; fsync()ed after creates and renames

  // Everything below is guarded by mu_: the batcher appends from one thread while the exporter
  // reads and acknowledges from another.
  mutable std::mutex mu_;
  std::unique_ptr<ZSTD_CCtx, ZstdCCtxFree> cctx_;
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxFree> dctx_;
  std::map<std::uint64_t, Segment> segments_;  // by first sequence (the file name)
  std::deque<RecordRef> records_;              // unacknowledged, oldest first
  std::optional<std::uint64_t> active_;        // the segment appended to, when open
  UniqueFd active_fd_;
  std::uint64_t acked_ = 0;  // every sequence <= acked_ is acknowledged (or dropped)
  std::uint64_t next_sequence_ = 1;
  std::uint64_t bytes_ = 0;
  std::uint64_t lost_units_ = 0;
  SpoolDamage damage_;  // the part of lost_units_ that damage on disk took, and unknown bytes
  // Units of the records written to the files, in order (RecordHeader::units_before): of all of
  // them (the next record's units_before), of those fdatasync'ed, of those acknowledged or
  // dropped. The ack file keeps the last two, so that recovery knows how many units the files
  // must still hold and can count exactly what a damaged or missing piece of them held.
  std::uint64_t written_units_ = 0;
  std::uint64_t synced_units_ = 0;
  std::uint64_t acked_units_ = 0;
  // acked_units_ is only a lower bound until a chained record is acknowledged when the ack file
  // was missing or damaged at start (recovery then cannot count a gap before the first record).
  bool acked_units_known_ = true;
  std::uint64_t written_sequence_ = 0;  // the last record written, and the last fdatasync'ed
  std::uint64_t synced_sequence_ = 0;
  // Ranges [from, to) of units counted lost by a recovery, above acked_units_, kept in the ack
  // file: a restart before they are passed finds the same gap and must not count it again.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> counted_;
  // The sequence front() last handed out: the batch the consumer may be sending right now.
  std::uint64_t handed_out_ = 0;
  // That batch's units when a full spool dropped it while it was out: counted as lost only if the
  // consumer moves on without acknowledging it (it gave up); acknowledged, it was delivered, and
  // counting it lost as well would count the same units twice (sent and dropped).
  std::uint64_t dropped_out_units_ = 0;
  std::uint64_t cached_bytes_ = 0;  // sum of `uncompressed` over records_ with `cached`
  // The last held_ records of records_ are held in memory, not written (defer_writes): they are
  // always the newest, so the files keep sequence order.
  std::uint64_t held_ = 0;
  std::uint64_t held_bytes_ = 0;     // their records' size on disk, once written
  std::uint64_t written_bytes_ = 0;  // records written by this process
  std::optional<std::chrono::steady_clock::time_point> last_ack_;  // by the consumer
  // records_.front() read back from disk (it was not cached), while it stays the front.
  std::shared_ptr<Record> front_cache_;
  // Stored-body batches the spool let go of (cached or read back), newest last, at most
  // kMaxRetired: their bodies' buffers are taken by takeSpareLocked once nobody else holds them.
  std::deque<std::shared_ptr<Record>> retired_;
  std::string write_buffer_;
  std::string read_buffer_;
  std::string payload_buffer_;
  bool active_unsynced_ = false;  // appends to the active segment since its last fdatasync
  std::string sync_error_;        // a deferred fdatasync that failed, for the next sync()
  bool ack_dirty_ = false;        // acked_ is ahead of the ack file (ack_write_interval)
  std::optional<std::chrono::steady_clock::time_point> ack_written_;  // by this process
};

template <class Record>
void DiskSpool<Record>::syncActiveLocked() {
  if (active_unsynced_) {
    active_unsynced_ = false;
    if (options_.fsync && active_fd_.valid() && ::fdatasync(active_fd_.get()) != 0) {
      const fs::path path = options_.dir / segmentName(*active_);
      sync_error_ = errnoText("fdatasync", path, errno);
      errors_.report(kComponent, "fsync_failed", sync_error_);
      return;
    }
  }
  // Every other segment was synced when it closed.
  synced_units_ = written_units_;
  synced_sequence_ = written_sequence_;
}

template <class Record>
void DiskSpool<Record>::syncDirLocked() {
  if (options_.fsync && ::fsync(dir_fd_.get()) != 0) {
    errors_.report(kComponent, "fsync_failed", errnoText("fsync", options_.dir, errno));
  }
}

// Sets acked_ and the units the ack file holds (see writeAckLocked); a missing or damaged file
// leaves acked_ at 0 and the units unknown.
template <class Record>
std::expected<void, std::string> DiskSpool<Record>::readAckLocked() {
  const fs::path path = options_.dir / kAckName;
  acked_units_known_ = false;
  std::array<char, kMaxAckBytes + 1> buf{};
  const auto size = spool_files::readPrefix(path, buf.data(), buf.size());
  if (!size) {
    return std::unexpected(size.error());
  }
  if (!*size) {
    return {};  // no ack file
  }
  const auto ack = parseAck(buf.data(), **size);
  if (!ack) {
    // A bug, a damaged disk, or a power loss that kept the rename of an ack written without
    // fsync but not its bytes (see the file comment). Starting from zero replays what is still
    // spooled: acknowledged records of segments not yet removed are sent again (duplicates,
    // which Loki drops), never lost.
    errors_.report(kComponent, "corrupt_ack", path.string());
    return {};
  }
  acked_ = ack->acked_sequence;
  if (ack->version == kAckVersionLegacy) {
    return {};  // written by an older agent: no units, and no records that carry them yet
  }
  acked_units_known_ = ack->acked_units_known;
  acked_units_ = ack->acked_units;
  synced_sequence_ = ack->synced_sequence;
  synced_units_ = std::max(acked_units_, ack->synced_units);
  counted_ = ack->counted;
  return {};
}

// The ack file (spool_format.h): what is acknowledged, what is fdatasync'ed, and the ranges of
// units counted lost that recovery may find again.
template <class Record>
bool DiskSpool<Record>::writeAckLocked(bool durable) {
  // Ranges below what is acknowledged can never be found again.
  std::erase_if(counted_, [this](const auto& r) { return r.second <= acked_units_; });
  AckState ack;
  ack.acked_sequence = acked_;
  ack.acked_units_known = acked_units_known_;
  ack.acked_units = acked_units_;
  ack.synced_sequence = synced_sequence_;
  ack.synced_units = std::max(synced_units_, acked_units_);
  ack.counted = counted_;
  std::array<char, kMaxAckBytes> buf;  // filled by writeAck
  const std::size_t size = writeAck(ack, buf);
  if (auto r = spool_files::replaceFile(options_.dir / kAckTmpName, options_.dir / kAckName,
                                        {buf.data(), size}, durable && options_.fsync);
      !r) {
    errors_.report(kComponent, "ack_write_failed", r.error());
    return false;
  }
  if (durable) syncDirLocked();
  ack_dirty_ = false;
  ack_written_ = std::chrono::steady_clock::now();
  return true;
}

template <class Record>
std::uint64_t DiskSpool<Record>::countLostRangeLocked(std::uint64_t from, std::uint64_t to) {
  if (from >= to) return 0;
  std::uint64_t counted_before = 0;
  for (const auto& [a, b] : counted_) {
    const std::uint64_t lo = std::max(a, from);
    const std::uint64_t hi = std::min(b, to);
    if (lo < hi) counted_before += hi - lo;
  }
  counted_.emplace_back(from, to);
  std::sort(counted_.begin(), counted_.end());
  // Overlapping and touching ranges merge. Past the bound the lowest goes: should that gap be
  // found again it would be counted twice, which is better than a merge that could swallow units
  // not lost (a record found there would be skipped as counted).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> merged;
  for (const auto& r : counted_) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  if (merged.size() > kMaxCountedRanges) {
    merged.erase(merged.begin(),
                 merged.begin() + static_cast<std::ptrdiff_t>(merged.size() - kMaxCountedRanges));
  }
  counted_ = std::move(merged);
  return (to - from) - counted_before;
}

template <class Record>
bool DiskSpool<Record>::countedLocked(std::uint64_t units_before) const {
  return std::any_of(counted_.begin(), counted_.end(), [&](const auto& r) {
    return r.first <= units_before && units_before < r.second;
  });
}

// Indexes the valid, unacknowledged records of one segment; skips damaged bytes, cuts a damaged
// tail off, and gathers what they held in chain (settleDamageLocked counts it).
template <class Record>
void DiskSpool<Record>::scanSegmentLocked(std::uint64_t key, std::uint64_t& last_sequence,
                                          ChainScan& chain) {
  Segment& seg = segments_.at(key);
  const std::string name = seg.path.filename().string();
  if (seg.not_a_file) {
    errors_.report(kComponent, "not_a_file",
                   seg.path.string() + " is not a regular file; left as it is");
    chain.note("not_a_file", name + " is not a regular file");
    return;
  }
  auto mapped = MappedFile::open(seg.path);
  if (!mapped) {
    errors_.report(kComponent, "unreadable_segment", mapped.error());
    chain.note("unreadable_segment", name + " cannot be read");
    seg.unreadable = true;
    return;
  }
  const char* data = (*mapped)->data();
  const std::size_t size = (*mapped)->size();
  seg.bytes = size;
  if (size == 0) chain.context(name + " is empty");
  std::size_t offset = 0;
  std::optional<std::size_t> cut;  // where a damaged tail starts
  while (offset < size) {
    const std::string where = name + " at " + std::to_string(offset);
    if (auto h = parseRecord(data + offset, size - offset)) {
      settleDamageLocked(chain, &*h, where);
      if (h->sequence > acked_ && h->sequence <= last_sequence) {
        // Checks out but out of order (a copied or replayed file): not replayable in order.
        errors_.report(kComponent, "out_of_order",
                       seg.path.string() + ": sequence " + std::to_string(h->sequence) +
                           " out of order, " + std::to_string(h->units) + " " +
                           std::string(Codec::kUnit) + " lost");
        lost_units_ += h->units;
        damage_.units += h->units;
      } else {
        if (h->units_before) {
          chain.expected = *h->units_before + h->units;
          chain.highest_units = std::max(chain.highest_units, *chain.expected);
        } else {
          chain.expected.reset();  // an older record: where the next one starts is unknown
        }
        // A record an earlier recovery counted lost (its file could not be read then) stays lost.
        if (h->sequence > acked_ && !(h->units_before && countedLocked(*h->units_before))) {
          records_.push_back(RecordRef{h->sequence, key, offset, h->compressed, h->uncompressed,
                                       h->units, h->append_ms, nullptr, h->units_before,
                                       h->headerBytes()});
          ++seg.pending;
        }
        last_sequence = std::max(last_sequence, h->sequence);
      }
      offset += h->recordBytes();
      continue;
    }
    // Damaged, or cut short. A header that still checks out says how many units its record held
    // (used when the records around do not say it: settleDamageLocked).
    std::optional<std::size_t> next;  // where the good data resumes, if it does
    const auto intact = parseHeader(data + offset, size - offset);
    if (intact) {
      // A damaged payload behind a sound header: the next record is where the header says.
      const std::size_t end = offset + intact->headerBytes() + intact->compressed;
      if (intact->compressed < size - offset - intact->headerBytes() &&
          parseRecord(data + end, size - end)) {
        next = end;
      }
    }
    for (std::size_t p = offset + 1; !next && p + kLegacyHeaderBytes <= size; ++p) {
      const void* hit = std::memchr(data + p, kRecordMagic[0], size - p);
      if (hit == nullptr) {
        break;
      }
      p = static_cast<std::size_t>(static_cast<const char*>(hit) - data);
      if (parseRecord(data + p, size - p)) {
        next = p;
        break;
      }
    }
    const std::size_t bad = next.value_or(size) - offset;
    if (intact) {
      if (intact->sequence > acked_) chain.header_units += intact->units;
    } else {
      chain.unknown_bytes += bad;
    }
    // A record that runs past the end of its file was cut short; anything else fails its checksum.
    const bool cut_short =
        intact && !next && intact->compressed > size - offset - intact->headerBytes();
    chain.damaged_bytes = true;
    chain.note(cut_short ? "truncated" : "checksum",
               where + ": " + std::to_string(bad) +
                   (cut_short ? " bytes of a record cut short" : " bytes fail their checksum"));
    if (!next) {
      cut = offset;
      break;
    }
    offset = *next;
  }
  mapped->reset();
  if (cut) {
    if (auto r = spool_files::truncateFile(seg.path, *cut, options_.fsync); r) {
      seg.bytes = *cut;
    } else {
      // Left as it is: the index ends before the tail, and the file is never appended to again.
      errors_.report(kComponent, "truncate_failed", r.error());
    }
  }
}

// What was lost between the last good record and next: with records of versions 5 and 6 on both
// sides (or the ack's acknowledged units before the first), exactly the units between them that
// are not acknowledged; at the end of the spool (next == nullptr), the units the ack says were
// fdatasync'ed and are not there (past those, a damaged tail is a write a crash cut short: its
// batch was never durable, so its producer still has it). Without those numbers (older records),
// what the damaged headers that checked out said, and the damaged bytes as of unknown content.
template <class Record>
void DiskSpool<Record>::settleDamageLocked(ChainScan& chain, const RecordHeader* next,
                                           const std::string& where) {
  std::uint64_t lost = 0;
  std::uint64_t unknown = 0;
  if (chain.expected && (next == nullptr || next->units_before)) {
    const std::uint64_t from = std::max(*chain.expected, acked_units_);
    lost = countLostRangeLocked(from, next != nullptr ? *next->units_before : synced_units_);
  } else if (next != nullptr && next->sequence > acked_ + 1) {
    lost = chain.header_units;
    unknown = chain.unknown_bytes;
  }
  // Damaged bytes are reported here, with what they held; a file that could not be read at all
  // was reported when it was found, and needs no second report unless something was lost.
  if (lost > 0 || unknown > 0 || chain.damaged_bytes) {
    lost_units_ += lost;
    damage_.units += lost;
    damage_.unknown_bytes += unknown;
    std::string_view reason = chain.reason;
    if (reason.empty()) reason = "sequence_gap";  // whole records missing, no damaged bytes
    if (next == nullptr && lost == 0 && unknown == 0 && chain.damaged_bytes) reason = "torn_tail";
    std::string detail = (next != nullptr ? "before " + where : where) + ": " +
                         (chain.damage.empty() ? "records missing" : chain.damage) + "; " +
                         std::to_string(lost) + " " + std::string(Codec::kUnit) + " lost";
    if (unknown > 0) detail += ", and " + std::to_string(unknown) + " bytes of unknown records";
    errors_.report(kComponent, reason, detail);
  }
  chain.header_units = 0;
  chain.unknown_bytes = 0;
  chain.damaged_bytes = false;
  chain.damage.clear();
  chain.reason = {};
}

template <class Record>
std::expected<void, std::string> DiskSpool<Record>::recover() {
  std::lock_guard lock(mu_);
  auto dir = spool_files::lockDirectory(options_.dir);
  if (!dir) {
    return std::unexpected(dir.error());
  }
  dir_fd_ = std::move(*dir);
  if (!cctx_ || !dctx_) {
    return std::unexpected("zstd: out of memory");
  }
  std::error_code ec;
  fs::remove(options_.dir / kAckTmpName, ec);
  if (auto r = readAckLocked(); !r) {
    return r;
  }

  std::uint64_t highest_name = 0;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto key = spool_files::parseSegmentName(it->path().filename().native(), kMaxSequence);
    if (!key) continue;
    std::error_code type_ec;
    Segment seg{it->path(), 0, 0};
    seg.not_a_file = !it->is_regular_file(type_ec);
    segments_.emplace(*key, std::move(seg));
    highest_name = std::max(highest_name, *key);
  }
  if (ec) {
    return std::unexpected("list " + options_.dir.string() + ": " + ec.message());
  }

  ChainScan chain;
  if (acked_units_known_) chain.expected = acked_units_;
  std::uint64_t last_sequence = acked_;
  for (auto& [key, seg] : segments_) {
    scanSegmentLocked(key, last_sequence, chain);
  }
  settleDamageLocked(chain, nullptr, "the end of the spool");
  // The segment a crash left unsynced is made durable now that its records count as written.
  for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
    if (it->second.not_a_file || it->second.unreadable) continue;
    if (options_.fsync) spool_files::syncFile(it->second.path);
    break;
  }
  written_units_ = std::max({acked_units_, synced_units_, chain.highest_units});
  for (const auto& range : counted_) written_units_ = std::max(written_units_, range.second);
  synced_units_ = written_units_;
  // Every unit below written_units_ is now pending in an indexed record, acknowledged, or in
  // counted_: what this recovery could not count (the records around did not say, older records)
  // goes there uncounted, so that a later recovery, knowing more, does not count it after all.
  std::uint64_t covered = acked_units_;
  for (const RecordRef& ref : records_) {
    if (!ref.units_before) continue;
    countLostRangeLocked(covered, *ref.units_before);
    covered = std::max(covered, *ref.units_before + ref.units);
  }
  countLostRangeLocked(covered, written_units_);
  // Past every sequence seen, every segment name and the last one written durably, so a new
  // segment never collides and sequences never repeat.
  next_sequence_ = std::max({last_sequence, highest_name, synced_sequence_}) + 1;
  written_sequence_ = synced_sequence_ = next_sequence_ - 1;
  // Durably, before a segment goes: what this recovery counted lost must not be counted again.
  // (The consumer's first acknowledgement is still written at once: ack_write_interval.)
  writeAckLocked();
  ack_written_.reset();
  // Segments with nothing pending (acknowledged, empty, or cut to nothing) go; the survivors are
  // only read from now on. What is not a readable file stays as it is, outside the index.
  for (auto it = segments_.begin(); it != segments_.end();) {
    const auto next = std::next(it);
    if (it->second.unreadable || it->second.not_a_file) {
      segments_.erase(it);
    } else if (it->second.pending == 0) {
      removeSegmentLocked(it->first);
    } else {
      bytes_ += it->second.bytes;
    }
    it = next;
  }
  return {};
}

template <class Record>
void DiskSpool<Record>::removeSegmentLocked(std::uint64_t key) {
  auto it = segments_.find(key);
  if (it == segments_.end()) {
    return;
  }
  if (active_ == key) {
    active_.reset();
    active_fd_.reset();
    active_unsynced_ = false;  // nothing of it is pending
  }
  // Its records are acknowledged; an ack file behind that would make recovery take the missing
  // file for damage.
  if (ack_dirty_) writeAckLocked();
  if (::unlink(it->second.path.c_str()) != 0 && errno != ENOENT) {
    errors_.report(kComponent, "unlink_failed", errnoText("unlink", it->second.path, errno));
  }
  segments_.erase(it);
}

// Forgets the front record; its segment goes once nothing in it is pending and it is not being
// appended to (and the ack is written, durably, first). Otherwise the caller persists acked_.
template <class Record>
bool DiskSpool<Record>::popFrontLocked() {
  const std::uint64_t sequence = records_.front().sequence;
  const std::uint64_t segment = records_.front().segment;
  popRecordLocked();
  acked_ = std::max(acked_, sequence);
  auto it = segments_.find(segment);
  if (it != segments_.end() && --it->second.pending == 0 && active_ != segment) {
    // The ack first: a segment gone under an older ack would look like damage to recovery.
    writeAckLocked();
    bytes_ -= it->second.bytes;
    removeSegmentLocked(segment);
    return true;
  }
  return false;
}

// Removes records_.front() from the index and from memory (segments and acked_ are the caller's).
template <class Record>
void DiskSpool<Record>::popRecordLocked() {
  if (records_.front().segment != kHeld && records_.front().units_before) {
    acked_units_ = std::max(acked_units_, *records_.front().units_before + records_.front().units);
    acked_units_known_ = true;
  }
  if (records_.front().segment == kHeld) {
    --held_;
    held_bytes_ -= kHeaderBytes + records_.front().compressed;
  }
  if (records_.front().cached) {
    cached_bytes_ -= records_.front().uncompressed;
    retireLocked(std::move(records_.front().cached));
  }
  records_.pop_front();
  retireLocked(std::move(front_cache_));  // leaves front_cache_ empty
}

template <class Record>
void DiskSpool<Record>::retireLocked(std::shared_ptr<Record> batch) {
  if constexpr (Codec::kStores) {
    if (!batch || !Codec::stored(*batch)) return;
    retired_.push_back(std::move(batch));
    if (retired_.size() > kMaxRetired) retired_.pop_front();
  }
}

// A retired batch's body buffer, once the spool holds the only reference: front() hands batches
// out as const, the spool keeps them as its own (non-const) objects, and a retired one can no
// longer be handed out, so nobody can reach it any more. The fence pairs with the release of the
// last other reference, so the sender's reads of the body happen before it is reused.
template <class Record>
std::string DiskSpool<Record>::takeSpareLocked() {
  if constexpr (Codec::kStores) {
    for (auto it = retired_.begin(); it != retired_.end(); ++it) {
      if (it->use_count() != 1) continue;
      std::atomic_thread_fence(std::memory_order_acquire);
      std::string body = Codec::takeBody(**it);
      retired_.erase(it);
      body.clear();
      return body;
    }
  }
  return {};
}

template <class Record>
void DiskSpool<Record>::dropOldestSegmentLocked() {
  auto it = segments_.begin();
  const std::uint64_t key = it->first;
  std::uint64_t batches = 0;
  std::uint64_t units = 0;
  std::uint64_t out_units = 0;  // of the batch being sent, if it is among them
  while (!records_.empty() && records_.front().segment == key) {
    (records_.front().sequence == handed_out_ ? out_units : units) += records_.front().units;
    acked_ = std::max(acked_, records_.front().sequence);
    popRecordLocked();
    ++batches;
  }
  // Dropped counts as acknowledged: a restart must not bring them back, nor reuse their numbers,
  // nor take the missing file for damage. The ack goes first.
  if (batches > 0) writeAckLocked();
  bytes_ -= it->second.bytes;
  removeSegmentLocked(key);
  if (batches > 0) {
    lost_units_ += units;
    dropped_out_units_ += out_units;
    errors_.report(
        kComponent, "full_dropped_oldest",
        "dropped " + std::to_string(batches) + " batches, " + std::to_string(units) + " " +
            std::string(Codec::kUnit) + " to stay under max_bytes" +
            (out_units > 0 ? " (and the one being sent, " + std::to_string(out_units) + " " +
                                 std::string(Codec::kUnit) + ", lost only if it is not delivered)"
                           : std::string()));
  }
}

template <class Record>
std::expected<void, std::string> DiskSpool<Record>::openSegmentLocked(std::uint64_t key) {
  if (active_) {
    const std::uint64_t old = *active_;
    syncActiveLocked();  // its appends are durable before the next segment's
    active_.reset();
    active_fd_.reset();
    if (auto it = segments_.find(old); it != segments_.end() && it->second.pending == 0) {
      // Acknowledgements between segments were not fsync'ed (see the file comment): this one is,
      // before the segment goes.
      writeAckLocked();
      bytes_ -= it->second.bytes;
      removeSegmentLocked(old);
    } else {
      // Not durably (a kill keeps it): the units fdatasync'ed move on with every closed segment,
      // so that recovery after a crash counts damage past them, even while nothing is
      // acknowledged (the destination is down and the spool grows).
      writeAckLocked(false);
    }
  }
  const fs::path path = options_.dir / segmentName(key);
  auto fd = spool_files::createSegment(path);
  if (!fd) {
    return std::unexpected(fd.error());
  }
  // The file must be in the directory durably before its records count as appended.
  syncDirLocked();
  segments_.emplace(key, Segment{path, 0, 0});
  active_ = key;
  active_fd_ = std::move(*fd);
  return {};
}

// owned: the same batch when the caller gave it up (append(Record&&)); it is moved into the cache
// (or held) only once the append succeeded.
template <class Record>
std::expected<std::uint64_t, std::string> DiskSpool<Record>::appendRecord(const Record& batch,
                                                                          Record* owned) {
  std::lock_guard lock(mu_);
  if (next_sequence_ > kMaxSequence) {
    return std::unexpected("spool: sequence numbers exhausted");
  }
  // Unit numbers (RecordHeader::units_before) past kMaxUnits would not read back. A writer
  // starting at 0 needs 2^62 lines to get here; only files that claimed such numbers (crafted or
  // damaged yet checking out) bring a spool this far, and it then refuses like a spool out of
  // sequences instead of writing records its next open would drop.
  if (written_units_ >= kMaxUnits / 2) {
    return std::unexpected("spool: unit numbers exhausted");
  }
  const std::uint64_t sequence = next_sequence_;
  const std::int64_t append_ms = nowMs();
  const auto keep = [&](std::uint32_t uncompressed) {
    auto copy = owned != nullptr ? std::make_shared<Record>(std::move(*owned))
                                 : std::make_shared<Record>(batch);
    copy->sequence = sequence;
    cached_bytes_ += uncompressed;
    return copy;
  };
  if constexpr (Codec::kStores) {
    // Held: it fits in memory, and the limits a write would check are checked now, so that
    // writing it later cannot fail for its size.
    if (options_.defer_writes && !options_.sync_each_append && Codec::stored(batch)) {
      const std::uint64_t payload_bytes =
          Codec::storedHead(batch).size() + Codec::storedBody(batch).size();
      if (payload_bytes > kMaxPayloadBytes || kHeaderBytes + payload_bytes > options_.max_bytes) {
        // Not held; the write below says why it fails.
      } else if (cached_bytes_ + payload_bytes <= options_.cache_bytes) {
        const auto size = static_cast<std::uint32_t>(payload_bytes);
        const auto units =
            static_cast<std::uint32_t>(std::min<std::uint64_t>(Codec::units(batch), UINT32_MAX));
        // Its units_before is set when it is written.
        records_.push_back(RecordRef{sequence, kHeld, 0, size, size, units, append_ms, keep(size),
                                     std::nullopt, kHeaderBytes});
        ++held_;
        held_bytes_ += kHeaderBytes + payload_bytes;
        ++next_sequence_;
        return sequence;
      }
    }
  }
  // Written now: what is held goes first, so the files stay in sequence order.
  if (auto w = writeHeldLocked(); !w) {
    return std::unexpected(w.error());
  }
  auto placed = writeRecordLocked(batch, sequence, append_ms);
  if (!placed) {
    return std::unexpected(placed.error());
  }
  const auto units =
      static_cast<std::uint32_t>(std::min<std::uint64_t>(Codec::units(batch), UINT32_MAX));
  std::shared_ptr<Record> cached;
  // When the cache is full the newest batch is the one left out: the oldest are sent first.
  if (cached_bytes_ + placed->uncompressed <= options_.cache_bytes) {
    cached = keep(placed->uncompressed);  // moves from batch when it is owned
  }
  records_.push_back(RecordRef{sequence, placed->segment, placed->offset, placed->compressed,
                               placed->uncompressed, units, append_ms, std::move(cached),
                               placed->units_before, kHeaderBytes});
  ++next_sequence_;
  return sequence;
}

template <class Record>
std::expected<void, std::string> DiskSpool<Record>::writeHeldLocked() {
  while (held_ > 0) {
    // Only written records leave from the front while this runs (a full spool's drops), so the
    // oldest held one stays at this distance from the end.
    const std::size_t i = records_.size() - held_;
    const RecordRef& ref = records_[i];
    auto placed = writeRecordLocked(*ref.cached, ref.sequence, ref.append_ms);
    if (!placed) {
      return std::unexpected(placed.error());
    }
    RecordRef& written = records_[records_.size() - held_];
    held_bytes_ -= kHeaderBytes + written.compressed;
    written.segment = placed->segment;
    written.offset = placed->offset;
    written.units_before = placed->units_before;
    // `uncompressed` stays: it is what cached_bytes_ counts.
    written.compressed = placed->compressed;
    --held_;
  }
  return {};
}

template <class Record>
bool DiskSpool<Record>::waitForConsumer(std::uint64_t next_bytes) const {
  std::lock_guard lock(mu_);
  if (!options_.defer_writes || records_.empty() || !last_ack_) return false;
  if (cached_bytes_ + next_bytes <= options_.cache_bytes) return false;  // it would be held
  const auto now = std::chrono::steady_clock::now();
  if (now - *last_ack_ >= options_.hold_wait) return false;  // the consumer stalls
  const auto age = std::chrono::milliseconds(nowMs() - records_.front().append_ms);
  return age < options_.hold_wait;  // the oldest batch is not waiting too long
}

template <class Record>
std::expected<typename DiskSpool<Record>::Placement, std::string>
DiskSpool<Record>::writeRecordLocked(const Record& batch, std::uint64_t sequence,
                                     std::int64_t append_ms) {
  // A payload that is compressed already (a Loki push body) is stored as it is: its head goes
  // through write_buffer_, its body is written from the batch (no copy of the body here).
  const bool stored = Codec::stored(batch);
  std::string payload;
  std::string_view body;
  if constexpr (Codec::kStores) {
    if (stored) {
      payload = Codec::storedHead(batch);
      body = Codec::storedBody(batch);
    }
  }
  if (!stored) payload = Codec::encode(batch);
  const std::size_t payload_bytes = payload.size() + body.size();
  if (payload_bytes > kMaxPayloadBytes) {
    return std::unexpected("batch of " + std::to_string(payload_bytes) +
                           " encoded bytes exceeds the spool's record limit");
  }
  std::size_t compressed = payload_bytes;
  if (stored) {
    write_buffer_.resize(kHeaderBytes + payload.size());
    std::memcpy(write_buffer_.data() + kHeaderBytes, payload.data(), payload.size());
  } else {
    const std::size_t bound = ZSTD_compressBound(payload.size());
    write_buffer_.resize(kHeaderBytes + bound);
    compressed = ZSTD_compressCCtx(cctx_.get(), write_buffer_.data() + kHeaderBytes, bound,
                                   payload.data(), payload.size(), options_.zstd_level);
    if (ZSTD_isError(compressed) != 0U) {
      return std::unexpected(std::string("zstd: ") + ZSTD_getErrorName(compressed));
    }
  }
  const std::uint64_t record_bytes = kHeaderBytes + compressed;
  if (record_bytes > options_.max_bytes) {
    return std::unexpected("batch of " + std::to_string(record_bytes) +
                           " bytes on disk exceeds the spool's max_bytes " +
                           std::to_string(options_.max_bytes));
  }
  const std::uint64_t units = Codec::units(batch);
  RecordHeader h;
  h.version = stored ? kRecordVersionStored : kRecordVersion;
  h.sequence = sequence;
  h.uncompressed = static_cast<std::uint32_t>(payload_bytes);
  h.compressed = static_cast<std::uint32_t>(compressed);
  h.units = static_cast<std::uint32_t>(std::min<std::uint64_t>(units, UINT32_MAX));
  h.append_ms = append_ms;
  h.units_before = written_units_;
  h.payload_crc = payloadChecksum(
      h.version, {write_buffer_.data() + kHeaderBytes, compressed - body.size()}, body);
  writeHeader(h, write_buffer_.data());

  while (!segments_.empty() && bytes_ + record_bytes > options_.max_bytes) {
    dropOldestSegmentLocked();
  }
  if (!active_ || segments_.at(*active_).bytes + record_bytes > options_.segment_bytes) {
    if (auto r = openSegmentLocked(sequence); !r) {
      return std::unexpected(r.error());
    }
  }
  Segment& seg = segments_.at(*active_);
  // One writev() for the whole record (header and head, then a stored body), so a crash leaves
  // at most one torn record at the tail.
  int err = spool_files::appendAll(active_fd_.get(),
                                   {write_buffer_.data(), record_bytes - body.size()}, body);
  const char* failed = err != 0 ? "write" : nullptr;
  if (failed == nullptr && options_.fsync && options_.sync_each_append &&
      ::fdatasync(active_fd_.get()) != 0) {
    err = errno;
    failed = "fdatasync";
  }
  if (failed != nullptr) {
    // Undo the partial record; if even that fails, never append to this file again (recovery
    // cuts the torn tail).
    if (::ftruncate(active_fd_.get(), static_cast<off_t>(seg.bytes)) != 0 || err == EIO) {
      const std::uint64_t key = *active_;
      syncActiveLocked();  // the earlier appends to it, or an error for the next sync()
      active_.reset();
      active_fd_.reset();
      if (seg.pending == 0) {
        bytes_ -= seg.bytes;
        removeSegmentLocked(key);
      }
    }
    return std::unexpected(errnoText(failed, options_.dir / segmentName(h.sequence), err));
  }
  const Placement placed{*active_, seg.bytes, h.compressed, h.uncompressed, written_units_};
  written_units_ += h.units;
  written_sequence_ = sequence;
  if (options_.sync_each_append) {
    synced_units_ = written_units_;
    synced_sequence_ = sequence;
  } else {
    active_unsynced_ = true;
  }
  written_bytes_ += record_bytes;
  ++seg.pending;
  seg.bytes += record_bytes;
  bytes_ += record_bytes;
  return placed;
}

template <class Record>
std::expected<Record, std::string> DiskSpool<Record>::readRecordLocked(const RecordRef& ref,
                                                                       std::string_view& reason) {
  const fs::path& path = segments_.at(ref.segment).path;
  reason = "unreadable_segment";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return std::unexpected(errnoText("open", path, errno));
  }
  const std::size_t record_bytes = ref.header_bytes + ref.compressed;
  read_buffer_.resize(record_bytes);
  if (const int err = spool_files::readAt(fd.get(), read_buffer_.data(), record_bytes, ref.offset);
      err != 0) {
    if (err < 0) reason = "truncated";
    return std::unexpected(err < 0 ? path.string() + ": record cut short"
                                   : errnoText("read", path, err));
  }
  // Checked again: the disk may have changed under us since recovery.
  reason = "checksum";
  const auto h = parseRecord(read_buffer_.data(), read_buffer_.size());
  if (!h || h->sequence != ref.sequence || h->compressed != ref.compressed) {
    return std::unexpected(path.string() + ": record " + std::to_string(ref.sequence) +
                           " no longer checks out");
  }
  const char* frame = read_buffer_.data() + h->headerBytes();
  reason = "undecodable";
  if (h->stored()) {
    return finishRecord(ref, path, std::string_view(frame, h->compressed), takeSpareLocked());
  }
  const unsigned long long content = ZSTD_getFrameContentSize(frame, h->compressed);
  if (content != h->uncompressed) {
    return std::unexpected(path.string() + ": record " + std::to_string(ref.sequence) +
                           ": zstd frame size does not match the header");
  }
  payload_buffer_.resize(h->uncompressed);
  const std::size_t n = ZSTD_decompressDCtx(dctx_.get(), payload_buffer_.data(),
                                            payload_buffer_.size(), frame, h->compressed);
  if (ZSTD_isError(n) != 0U || n != h->uncompressed) {
    return std::unexpected(path.string() + ": record " + std::to_string(ref.sequence) + ": zstd " +
                           (ZSTD_isError(n) != 0U ? ZSTD_getErrorName(n) : "size mismatch"));
  }
  return finishRecord(ref, path, payload_buffer_, {});
}

template <class Record>
std::expected<Record, std::string> DiskSpool<Record>::finishRecord(const RecordRef& ref,
                                                                   const fs::path& path,
                                                                   std::string_view payload,
                                                                   std::string spare) {
  auto batch = Codec::decode(payload, std::move(spare));
  if (!batch) {
    return std::unexpected(path.string() + ": record " + std::to_string(ref.sequence) + ": " +
                           batch.error());
  }
  batch->sequence = ref.sequence;
  return batch;
}

template <class Record>
std::shared_ptr<const Record> DiskSpool<Record>::front() {
  std::lock_guard lock(mu_);
  // Asking for the front again without acknowledging what was handed out: if a full spool
  // dropped that batch meanwhile, it was not delivered after all.
  lost_units_ += std::exchange(dropped_out_units_, 0);
  while (!records_.empty()) {
    handed_out_ = records_.front().sequence;
    if (records_.front().cached) {
      return records_.front().cached;
    }
    if (front_cache_ && front_cache_->sequence == records_.front().sequence) {
      return front_cache_;
    }
    std::string_view reason;
    auto batch = readRecordLocked(records_.front(), reason);
    if (batch) {
      front_cache_ = std::make_shared<Record>(std::move(*batch));
      return front_cache_;
    }
    // Unreadable: skip it as if acknowledged, and count its units.
    errors_.report(kComponent, reason,
                   batch.error() + ", " + std::to_string(records_.front().units) + " " +
                       std::string(Codec::kUnit) + " lost");
    lost_units_ += records_.front().units;
    damage_.units += records_.front().units;
    if (!popFrontLocked()) writeAckLocked();
  }
  return nullptr;
}

template <class Record>
void DiskSpool<Record>::acknowledge(std::uint64_t sequence) {
  std::lock_guard lock(mu_);
  if (sequence == handed_out_) {
    dropped_out_units_ = 0;  // delivered (or dropped by the consumer, which counts it itself)
  }
  if (records_.empty() || records_.front().sequence != sequence) {
    // Below the front: acknowledged already, or dropped while it was being sent. Above: a bug in
    // the caller; acknowledging more than was sent would lose batches, so nothing happens.
    if (!records_.empty() && sequence > records_.front().sequence) {
      errors_.report(kComponent, "ack_not_front",
                     "acknowledged " + std::to_string(sequence) + " while the front is " +
                         std::to_string(records_.front().sequence));
    }
    return;
  }
  last_ack_ = std::chrono::steady_clock::now();
  // Durable only when a segment file went: see the file comment. A record on disk at once (a
  // kill would send it again), one held in memory at most once per ack_write_interval.
  const bool on_disk = records_.front().segment != kHeld;
  if (popFrontLocked()) return;  // a segment went: the ack was written durably
  if (on_disk || options_.ack_write_interval.count() == 0 || !ack_written_ ||
      std::chrono::steady_clock::now() - *ack_written_ >= options_.ack_write_interval) {
    writeAckLocked(false);
  } else {
    ack_dirty_ = true;
  }
}

}  // namespace

template <class Record>
std::expected<std::unique_ptr<BasicSpool<Record>>, std::string> BasicSpool<Record>::open(
    SpoolOptions options, ErrorReporter& errors) {
  if (options.dir.empty()) {
    return std::unexpected("spool: no directory");
  }
  if (options.max_bytes <= kHeaderBytes) {
    return std::unexpected("spool: max_bytes " + std::to_string(options.max_bytes) +
                           " is too small");
  }
  if (options.segment_bytes == 0) {
    return std::unexpected("spool: segment_bytes must be positive");
  }
  if (options.zstd_level < ZSTD_minCLevel() || options.zstd_level > ZSTD_maxCLevel()) {
    return std::unexpected("spool: zstd_level " + std::to_string(options.zstd_level) +
                           " is out of range");
  }
  // Acknowledged records leave with their segment, and the segment being appended to stays: one
  // bigger than max_bytes would hold acknowledged bytes up to the bound, and a producer that waits
  // for room (LogBatcher::hasRoom) would wait for ever. A quarter of the bound keeps at most that
  // much acknowledged data on disk.
  options.segment_bytes = std::min(options.segment_bytes, options.max_bytes / 4);
  auto spool = std::make_unique<DiskSpool<Record>>(std::move(options), errors);
  if (auto r = spool->recover(); !r) {
    return std::unexpected("spool: " + r.error());
  }
  return spool;
}

template class BasicSpool<LogBatch>;
template class BasicSpool<MetricWriteBatch>;

SpoolDamageCounters::SpoolDamageCounters(prometheus::Family<prometheus::Counter>& units_dropped,
                                         prometheus::Registry& registry, const std::string& spool)
    : units_(units_dropped.Add({{"reason", "spool_corrupt"}})),
      unknown_bytes_(prometheus::BuildCounter()
                         .Name("nodewarden_spool_unknown_lost_bytes_total")
                         .Help("Bytes of damaged spool records whose line or sample count is "
                               "unknown (records written by older agents), by spool.")
                         .Register(registry)
                         .Add({{"spool", spool}})) {}

void SpoolDamageCounters::update(const SpoolDamage& now) {
  units_.Increment(static_cast<double>(now.units - seen_.units));
  unknown_bytes_.Increment(static_cast<double>(now.unknown_bytes - seen_.unknown_bytes));
  seen_ = now;
}

SpoolOptions logSpoolOptions(std::filesystem::path dir, SpoolOptions base) {
  SpoolOptions so = std::move(base);
  so.dir = std::move(dir);
  // zstd's fastest level: the spool is written once and usually read back from memory, and log
  // text still shrinks 4-8x (level 3 cost 18% of the log path's CPU for little more).
  so.zstd_level = 1;
  // Batches for Loki are spooled as their snappy body (about half a MiB for a 1 MiB batch). The
  // cache is also what defer_writes holds unwritten: a few bodies, so the shipper always has the
  // next one in memory while the reader waits for it (Spool::waitForConsumer) rather than have
  // the spool write ahead. Peak RSS under a 1 GiB backlog stays under 32 MiB (bench/README.md).
  so.cache_bytes = 3 << 20;
  // The lines of a batch can be read again from their files until the batcher commits their
  // positions, and it syncs the spool before it does (LogBatcherOptions::commit_interval): one
  // fdatasync per commit instead of one per batch.
  so.sync_each_append = false;
  // A batch the destination acknowledges before the next commit never touches the disk; one it
  // has not is written then (at most once a second), or at once while the destination stalls.
  so.defer_writes = true;
  so.ack_write_interval = std::chrono::seconds(1);
  return so;
}

}  // namespace nodewarden
