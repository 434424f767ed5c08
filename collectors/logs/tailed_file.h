// TailedFile: one followed container log file: its open descriptor and identity, the position
// read and the position that may be committed, the incomplete last record, and the partial lines
// of each stream.
//
// What a reader gets wrong: there are three offsets. read_offset_ is where the next pread()
// starts; consumed_ is just past the last record fully handled; the checkpoint handed to the sink
// is lower still while a stream has a partial line open (the start of its first record), because a
// restart must re-read that line from its beginning. Entries of the other stream between the two
// are replayed after a crash, identically, which Loki deduplicates. A compressed rotated file
// (.gz) has the same three, as offsets in its decompressed stream; its identity and fingerprint
// are the .gz file's own.
//
// A TailedFile may be parked: no descriptor (the handle budget), everything else kept. Its
// incomplete last record is then read again from consumed_, never its whole lines.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/logs/checkpoint_store.h"
#include "collectors/logs/container_log_parser.h"
#include "collectors/logs/gzip_reader.h"
#include "collectors/logs/log_discovery.h"
#include "collectors/logs/log_tailer.h"
#include "pipeline/log_record.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::logs {

inline constexpr std::uint32_t kFingerprintMaxBytes = 1024;

// FNV-1a 64 of the first min(size, limit) bytes of fd; the identity's fingerprint fields.
void fingerprintFile(int fd, std::uint64_t size, std::uint32_t limit, FileIdentity& identity);
// Whether the first identity.fingerprint_bytes bytes of fd still hash to identity.fingerprint.
bool fingerprintMatches(int fd, const FileIdentity& identity);
// FNV-1a 64 of bytes, as fingerprintFile() hashes a file's first bytes.
std::uint64_t fingerprintOf(std::string_view bytes);
// The fingerprint of fd's first record (through its newline, within kFingerprintMaxBytes) into
// head's fingerprint fields. False if there is no whole first record yet.
bool fingerprintHead(int fd, FileIdentity& head);

// What a read or a drain needs from the tailer, passed down instead of stored.
struct TailContext {
  LogSink& sink;
  ErrorReporter& errors;
  LogTailerStats& stats;
  std::span<char> chunk;  // the tailer's reused read buffer
  std::string& scratch;   // the Docker parser's reused unescape buffer
  // Where the content a copytruncate replaced had been delivered up to (its identity and safe
  // offset): the copy kubelet or logrotate made of it is read from there, not from its start.
  std::vector<StoredPosition>& replaced;
};

class TailedFile {
 public:
  enum class Status : std::uint8_t {
    kMore,     // read something; there may be more
    kEof,      // nothing more to read now
    kBlocked,  // the sink is full: stop polling
  };

  // Takes ownership of fd. start: the offset to read from (a checkpoint, 0, or the end). With
  // gzip (a .gz file, whose reader reads fd), offsets and size are of the decompressed stream
  // (size: what the trailer says, a hint for the lag), and start is reached by decoding.
  TailedFile(int fd, std::string key, const DiscoveredFile& where, const FileIdentity& identity,
             std::uint64_t start, std::uint64_t size, std::uint64_t seq, const std::string& node,
             std::size_t max_line_bytes, std::unique_ptr<GzipReader> gzip = nullptr);
  ~TailedFile();
  TailedFile(const TailedFile&) = delete;
  TailedFile& operator=(const TailedFile&) = delete;

  // Reads at most max_bytes (one chunk) and hands the whole lines in it to the sink.
  Status readChunk(TailContext& ctx, std::size_t max_bytes, std::size_t& bytes_read);
  // At the end of a file that will not grow (deleted, or superseded by a newer file of its
  // container): hands out the incomplete last record and every open partial line.
  Status finish(TailContext& ctx);
  // Hands the line the sink refused to the sink again. False if still refused.
  bool deliverHeld(TailContext& ctx);

  // A position of this file is durable. False if it cannot belong to the current content.
  bool commit(const LogCheckpoint& checkpoint);
  // Fully read, everything handed out, and everything handed out committed.
  [[nodiscard]] bool releasable() const {
    return finished_ && !held_ && committed_ >= needs_commit_to_;
  }

  // A listing saw this file (maybe under a new name after rotation).
  void seenAt(const DiscoveredFile& where);

  // Gives the descriptor back (the handle budget is needed elsewhere) and keeps everything else:
  // identity, offsets, the partial lines in the joiners, a refused line. The incomplete last record
  // is dropped and read again from consumed_ after reopen(). size: the file's size now.
  void park(std::uint64_t size, std::int64_t mtime_ns);
  // Takes fd, opened by the tailer on the file's current path and checked to be this inode.
  void reopen(int fd);
  [[nodiscard]] bool parked() const { return fd_ < 0; }
  // Parked, and a listing or a stat says the file changed since (grew, or was truncated).
  [[nodiscard]] bool changedSinceParked() const {
    return parked() && (listed_size_ != parked_size_ || listed_mtime_ns_ != parked_mtime_ns_);
  }
  // The size and modification time the file has now under path(), if it is still this inode (a
  // parked file, whose directory was written to).
  void statPath();
  // A stream has a partial line open, or the last record read has no newline yet: what follows
  // in the file may still complete it.
  [[nodiscard]] bool hasPending() const {
    return open_[0] || open_[1] || consumed_ < read_offset_ ||
           (parked() && consumed_ < parked_size_);
  }

  [[nodiscard]] const std::string& key() const { return key_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const std::string& containerDir() const { return container_dir_; }
  [[nodiscard]] const FileIdentity& identity() const { return identity_; }
  // The identity with the fingerprint of the first record only: what any copy of the file that
  // holds a whole record starts with, however short (fingerprint_bytes 0: not known yet).
  [[nodiscard]] const FileIdentity& head() const { return head_; }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] bool deleted() const { return deleted_; }
  // Listed under a rotated name (<restart>.log.<suffix>): kubelet deletes the oldest of those.
  [[nodiscard]] bool rotated() const { return !rotated_suffix_.empty(); }
  // A .gz file: it never grows, so its end is final.
  [[nodiscard]] bool compressed() const { return gzip_ != nullptr; }
  [[nodiscard]] bool finished() const { return finished_; }
  [[nodiscard]] bool hasHeld() const { return held_.has_value(); }
  [[nodiscard]] std::uint64_t consumed() const { return consumed_; }
  [[nodiscard]] std::uint64_t readOffset() const { return read_offset_; }
  [[nodiscard]] std::uint64_t knownSize() const {
    return size_ > read_offset_ ? size_ : read_offset_;
  }
  [[nodiscard]] bool eofThisPoll() const { return eof_this_poll_; }
  void startPoll() { eof_this_poll_ = false; }
  void setEofThisPoll() { eof_this_poll_ = true; }
  // Read order within a container: older restarts first, rotated before live, then discovery.
  [[nodiscard]] bool readsBefore(const TailedFile& other) const;

 private:
  enum class Outcome : std::uint8_t { kConsumed, kNotConsumed, kConsumedThenRefused };
  Status checkEof(TailContext& ctx);
  Status readCompressed(TailContext& ctx, std::size_t want, std::size_t& bytes_read);
  // stopped: where in data the records not handled start (data.size() when all were).
  Outcome processData(TailContext& ctx, std::string_view data, std::uint64_t base,
                      std::size_t& stopped);
  Outcome processRecord(TailContext& ctx, std::string_view record, std::uint64_t end);
  bool emit(TailContext& ctx, LogStream stream, std::uint64_t offset);
  [[nodiscard]] std::uint64_t safeOffset() const;
  void resetContent();

 public:
  using Clock = std::chrono::steady_clock;
  // The pod's metadata answered: sets the `job` stream label (or leaves it out) and the
  // allow-listed pod labels (name, value), for the lines from now on. A file opened before the
  // metadata source listed its pod gets them late, not never. complete: the answer came from the
  // Pod object (kubelet, API server), so it is final; a partial one (names only, from the
  // runtime's state) is asked for again.
  void setPodMetadata(std::string_view job, const Labels& pod_labels, bool complete,
                      Clock::time_point now);
  // Whether to ask the pod metadata now: at every poll until it answers, then once per `every`
  // while the answer is partial, never once it is complete.
  [[nodiscard]] bool wantsPodMetadata(Clock::time_point now, Clock::duration every) const {
    if (pod_complete_) return false;
    return !pod_answered_at_ || now - *pod_answered_at_ >= every;
  }
  [[nodiscard]] const std::string& podUid() const { return pod_uid_; }

  // When data was last read (or the file opened). Bytes past any read before also set lastGrowth:
  // reading the incomplete last record again after reopen() is not growth, so a rotated file's
  // partial_grace counts from when the file last grew, not from when it last got a descriptor.
  void noteData(Clock::time_point t) {
    last_data_ = t;
    at_end_since_.reset();
    if (read_offset_ > high_water_) {
      high_water_ = read_offset_;
      last_growth_ = t;
    }
  }
  [[nodiscard]] Clock::time_point lastData() const { return last_data_; }
  [[nodiscard]] Clock::time_point lastGrowth() const { return last_growth_; }
  // Opened (or reopened): growth is counted from now on, never before its first descriptor.
  void noteOpened(Clock::time_point t) {
    last_data_ = t;
    at_end_since_.reset();
    if (high_water_ == 0 && last_growth_ == Clock::time_point{}) last_growth_ = t;
  }
  // A read found the end of the file. Idle means at the end for a while: a file the sink had no
  // room for is behind, not idle.
  void noteAtEnd(Clock::time_point t) {
    if (!at_end_since_) at_end_since_ = t;
  }
  [[nodiscard]] bool idleFor(Clock::time_point now, Clock::duration d) const {
    return at_end_since_ && now - *at_end_since_ >= d;
  }
  // When it got its current descriptor: how long it has held it.
  void setFdSince(Clock::time_point t) { fd_since_ = t; }
  [[nodiscard]] Clock::time_point fdSince() const { return fd_since_; }
  // It is gone from the disk (found missing while it had no descriptor): its end is final.
  void markDeleted() { deleted_ = true; }
  // Where a restart would read from: before the first record of every open partial line.
  [[nodiscard]] std::uint64_t deliveredOffset() const { return safeOffset(); }

 private:
  void badRecord(TailContext& ctx, std::string_view reason);

  int fd_;
  std::unique_ptr<GzipReader> gzip_;  // set for a .gz file
  std::string key_;
  std::string path_;       // where a listing last saw it
  std::string open_path_;  // where it was opened: the entries' filename
  std::string container_dir_;
  std::string pod_uid_;
  std::string container_id_;  // empty when no kubelet link names it
  std::uint32_t restart_;
  std::string rotated_suffix_;
  std::uint64_t seq_;
  std::size_t max_line_bytes_;
  std::size_t max_record_bytes_;  // the carry bound; beyond it a record's rest is skipped
  FileIdentity identity_;
  FileIdentity head_;
  std::array<Labels, 2> labels_;  // per stream, sorted by name
  std::array<std::uint64_t, 2> stream_ids_{newLogStreamId(), newLogStreamId()};  // of labels_
  std::optional<Clock::time_point> pod_answered_at_;  // the pod metadata's last answer
  bool pod_complete_ = false;                         // ... and it came from the Pod object

  std::uint64_t read_offset_;
  std::uint64_t consumed_;
  std::uint64_t size_;
  // While parked: the size and mtime when the descriptor was given back, and the latest a listing
  // or stat saw; a difference means there is something to read again.
  std::uint64_t parked_size_ = 0;
  std::int64_t parked_mtime_ns_ = 0;
  std::uint64_t listed_size_ = 0;
  std::int64_t listed_mtime_ns_ = 0;
  std::string carry_;  // the first bytes of the record starting at consumed_
  bool carry_overflow_ = false;
  LogFormat format_ = LogFormat::kUnknown;
  std::array<PartialJoiner, 2> joiners_;
  std::array<bool, 2> open_{};                    // a partial line is pending
  std::array<std::uint64_t, 2> partial_start_{};  // offset of its first record
  std::array<bool, 2> overlong_{};                // one of its records was cut at the carry bound

  struct Held {
    LogStream stream;
    std::uint64_t offset;
  };
  std::optional<Held> held_;  // a completed line the sink refused; still in its joiner

  // What emit() hands to the sink, reused line after line: the file's metadata is set once and
  // the line's buffer keeps its capacity, so a line costs no allocation here.
  LogEntry entry_;
  std::size_t base_metadata_ = 0;  // entry_.metadata's pairs that every line of the file has
  LogCheckpoint checkpoint_;

  std::uint64_t committed_;
  std::uint64_t needs_commit_to_ = 0;
  bool deleted_ = false;
  bool stream_ended_ = false;  // a .gz file decoded to its end or its damage
  bool finished_ = false;
  bool eof_this_poll_ = false;
  Clock::time_point last_data_{};
  Clock::time_point last_growth_{};
  std::uint64_t high_water_ = 0;  // the furthest offset of the current content ever read
  std::optional<Clock::time_point> at_end_since_;
  Clock::time_point fd_since_{};
};

}  // namespace nodewarden::logs
