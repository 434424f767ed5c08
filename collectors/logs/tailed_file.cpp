// TailedFile: reading, record splitting, partial-line joining and end-of-file handling of one
// followed container log file.
//
// What a reader gets wrong: when the sink is full the file is the buffer. Nothing read past the
// last consumed record is kept: read_offset_ goes back to consumed_ and the bytes are read again on
// the next poll, so memory per file stays at one incomplete record. A .gz file cannot be read again
// from an offset, so there the bytes not handled are given back to its GzipReader instead, and its
// end is final: decoded to the end (or to the damage), it is finished like a deleted file.
#include "collectors/logs/tailed_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "collectors/logs/gzip_reader.h"

namespace nodewarden::logs {
namespace {

constexpr std::uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr std::uint64_t kFnvPrime = 1099511628211ULL;
// Room for a record's non-message bytes (CRI prefix, Docker's JSON keys and escapes).
constexpr std::size_t kRecordOverheadBytes = 4096;
// The reused entry's line buffer is let go when a line made it grow past this.
constexpr std::size_t kKeptLineCapacity = 16 * 1024;

std::size_t index(LogStream s) { return s == LogStream::kStdout ? 0 : 1; }
LogStream streamAt(std::size_t i) { return i == 0 ? LogStream::kStdout : LogStream::kStderr; }

// Hashes the first n bytes of fd; false if fewer could be read.
bool hashPrefix(int fd, std::uint32_t n, std::uint64_t& hash) {
  std::array<char, kFingerprintMaxBytes> buf;
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  hash = kFnvOffset;
  for (std::size_t i = 0; i < n; ++i) {
    hash ^= static_cast<unsigned char>(buf[i]);
    hash *= kFnvPrime;
  }
  return true;
}

// The labels every line of a file has, from its path and the node (streamLabels()).
bool isFileLabel(std::string_view name) {
  return name == "container" || name == "namespace" || name == "node" || name == "pod" ||
         name == "stream";
}

Labels streamLabels(const DiscoveredFile& where, const std::string& node, LogStream s) {
  // Sorted by name.
  Labels labels{{"container", where.container},
                {"namespace", where.namespace_name},
                {"node", node},
                {"pod", where.pod_name},
                {"stream", streamName(s)}};
  return labels;
}

}  // namespace

void fingerprintFile(int fd, std::uint64_t size, std::uint32_t limit, FileIdentity& identity) {
  const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(size, limit));
  std::uint64_t hash = 0;
  if (hashPrefix(fd, n, hash)) {
    identity.fingerprint = hash;
    identity.fingerprint_bytes = n;
  }
}

std::uint64_t fingerprintOf(std::string_view bytes) {
  std::uint64_t hash = kFnvOffset;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

bool fingerprintHead(int fd, FileIdentity& head) {
  std::array<char, kFingerprintMaxBytes> buf;
  ssize_t n = -1;
  do {
    n = ::pread(fd, buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  const void* nl = std::memchr(buf.data(), '\n', static_cast<std::size_t>(n));
  if (nl == nullptr) return false;
  const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data()) + 1;
  head.fingerprint = fingerprintOf(std::string_view(buf.data(), len));
  head.fingerprint_bytes = static_cast<std::uint32_t>(len);
  return true;
}

bool fingerprintMatches(int fd, const FileIdentity& identity) {
  if (identity.fingerprint_bytes > kFingerprintMaxBytes) return false;
  std::uint64_t hash = 0;
  return hashPrefix(fd, identity.fingerprint_bytes, hash) && hash == identity.fingerprint;
}

void TailedFile::setPodMetadata(std::string_view job, const Labels& pod_labels, bool complete,
                                Clock::time_point now) {
  pod_answered_at_ = now;
  pod_complete_ = complete;
  for (auto& labels : labels_) {
    // What streamLabels() made stays; what an earlier answer added is replaced.
    std::erase_if(labels, [](const auto& l) { return !isFileLabel(l.first); });
    if (!job.empty()) labels.emplace_back("job", std::string(job));
    labels.insert(labels.end(), pod_labels.begin(), pod_labels.end());
    std::sort(labels.begin(), labels.end());  // by name; names are unique
  }
  stream_ids_ = {newLogStreamId(), newLogStreamId()};  // other labels: other numbers
}

TailedFile::TailedFile(int fd, std::string key, const DiscoveredFile& where,
                       const FileIdentity& identity, std::uint64_t start, std::uint64_t size,
                       std::uint64_t seq, const std::string& node, std::size_t max_line_bytes,
                       std::unique_ptr<GzipReader> gzip)
    : fd_(fd),
      gzip_(std::move(gzip)),
      key_(std::move(key)),
      path_(where.path),
      open_path_(where.path),
      container_dir_(where.container_dir),
      pod_uid_(where.pod_uid),
      container_id_(where.container_id),
      restart_(where.restart),
      rotated_suffix_(where.rotated_suffix),
      seq_(seq),
      max_line_bytes_(max_line_bytes),
      max_record_bytes_(2 * max_line_bytes + kRecordOverheadBytes),
      identity_(identity),
      labels_{streamLabels(where, node, LogStream::kStdout),
              streamLabels(where, node, LogStream::kStderr)},
      read_offset_(start),
      consumed_(start),
      size_(size),
      joiners_{PartialJoiner(max_line_bytes), PartialJoiner(max_line_bytes)},
      committed_(start) {
  // Sorted by name, as Labels are; "truncated" is added per line when it applies.
  entry_.metadata.reserve(4);
  if (!container_id_.empty()) entry_.metadata.emplace_back("container_id", container_id_);
  entry_.metadata.emplace_back("filename", open_path_);
  entry_.metadata.emplace_back("pod_uid", pod_uid_);
  base_metadata_ = entry_.metadata.size();
  checkpoint_.source = key_;
  head_.device = identity_.device;
  head_.inode = identity_.inode;
  if (!gzip_) fingerprintHead(fd_, head_);
}

TailedFile::~TailedFile() {
  if (fd_ >= 0) ::close(fd_);
}

void TailedFile::seenAt(const DiscoveredFile& where) {
  path_ = where.path;
  restart_ = where.restart;
  rotated_suffix_ = where.rotated_suffix;
  if (!gzip_) size_ = std::max(size_, where.size);  // a listing's size of a .gz is compressed
  listed_size_ = where.size;
  listed_mtime_ns_ = where.mtime_ns;
}

void TailedFile::park(std::uint64_t size, std::int64_t mtime_ns) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  // The incomplete last record is read again after reopen(); the partial lines stay in their
  // joiners, so nothing handed out is handed out twice and nothing is skipped.
  read_offset_ = consumed_;
  carry_.clear();
  carry_.shrink_to_fit();
  carry_overflow_ = false;
  if (!held_) entry_.line = std::string();
  parked_size_ = listed_size_ = size;
  parked_mtime_ns_ = listed_mtime_ns_ = mtime_ns;
}

void TailedFile::reopen(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void TailedFile::statPath() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return;
  if (static_cast<std::uint64_t>(st.st_ino) != identity_.inode ||
      static_cast<std::uint64_t>(st.st_dev) != identity_.device) {
    return;  // the name holds another file now: a listing will say where this one went
  }
  listed_size_ = static_cast<std::uint64_t>(st.st_size);
  listed_mtime_ns_ = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

bool TailedFile::readsBefore(const TailedFile& other) const {
  if (restart_ != other.restart_) return restart_ < other.restart_;
  const bool live = rotated_suffix_.empty();
  const bool other_live = other.rotated_suffix_.empty();
  if (live != other_live) return other_live;
  if (rotated_suffix_ != other.rotated_suffix_) return rotated_suffix_ < other.rotated_suffix_;
  return seq_ < other.seq_;
}

TailedFile::Status TailedFile::readChunk(TailContext& ctx, std::size_t max_bytes,
                                         std::size_t& bytes_read) {
  bytes_read = 0;
  if (finished_ || fd_ < 0) return Status::kEof;
  const std::size_t want = std::min(max_bytes, ctx.chunk.size());
  if (want == 0) return Status::kEof;
  if (gzip_) return readCompressed(ctx, want, bytes_read);
  // copytruncate that grew back past our position before we looked (a fast writer): the size
  // check at EOF cannot see it, but the file's first bytes are no longer the ones we hashed.
  if (read_offset_ > 0 && identity_.fingerprint_bytes > 0 && !fingerprintMatches(fd_, identity_)) {
    ++ctx.stats.truncations;
    ctx.errors.report("logs", "file_truncated", path_ + " (content replaced)");
    ctx.replaced.push_back(
        StoredPosition{path_, head_.fingerprint_bytes > 0 ? head_ : identity_, safeOffset()});
    resetContent();
    struct stat st {};
    if (::fstat(fd_, &st) == 0) {
      size_ = static_cast<std::uint64_t>(st.st_size);
      fingerprintFile(fd_, size_, kFingerprintMaxBytes, identity_);
    }
  }
  ssize_t n = -1;
  do {
    n = ::pread(fd_, ctx.chunk.data(), want, static_cast<off_t>(read_offset_));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ctx.errors.report("logs", "read_error", path_ + ": " + std::strerror(errno));
    return Status::kEof;
  }
  if (n == 0) return checkEof(ctx);

  bytes_read = static_cast<std::size_t>(n);
  ctx.stats.bytes_read += bytes_read;
  const std::uint64_t base = read_offset_;
  read_offset_ += bytes_read;
  size_ = std::max(size_, read_offset_);
  if (identity_.fingerprint_bytes < kFingerprintMaxBytes &&
      read_offset_ > identity_.fingerprint_bytes) {
    fingerprintFile(fd_, read_offset_, kFingerprintMaxBytes, identity_);
  }
  if (head_.fingerprint_bytes == 0) fingerprintHead(fd_, head_);
  std::size_t stopped = 0;
  const Outcome out =
      processData(ctx, std::string_view(ctx.chunk.data(), bytes_read), base, stopped);
  if (out == Outcome::kConsumed) return Status::kMore;
  // Forget what was read past the last consumed record; it is read again next poll.
  read_offset_ = consumed_;
  carry_.clear();
  carry_overflow_ = false;
  return Status::kBlocked;
}

TailedFile::Status TailedFile::readCompressed(TailContext& ctx, std::size_t want,
                                              std::size_t& bytes_read) {
  if (stream_ended_) return Status::kEof;
  const auto damaged = [&](const std::string& why) {
    ++ctx.stats.compressed_corrupt;
    ctx.errors.report("logs", "compressed_corrupt", path_ + ": " + why);
    stream_ended_ = true;
    return Status::kEof;
  };
  if (gzip_->position() < read_offset_) {
    // Opened at a position: what is before it was delivered already (from the plain file it was
    // compressed from, or before a restart). The chunk is free to decode it into.
    if (auto skipped = gzip_->skip(read_offset_ - gzip_->position(), ctx.chunk); !skipped) {
      return damaged(skipped.error());
    }
    if (gzip_->position() < read_offset_) {
      // Shorter than the position: nothing in it was not delivered.
      stream_ended_ = true;
      return Status::kEof;
    }
  }
  const auto n = gzip_->read(ctx.chunk.first(want));
  if (!n) return damaged(n.error());
  if (*n == 0) {
    stream_ended_ = true;
    return Status::kEof;
  }
  bytes_read = *n;
  ctx.stats.bytes_read += bytes_read;
  const std::uint64_t base = read_offset_;
  read_offset_ += bytes_read;
  size_ = std::max(size_, read_offset_);
  const std::string_view data(ctx.chunk.data(), bytes_read);
  std::size_t stopped = 0;
  const Outcome out = processData(ctx, data, base, stopped);
  if (out == Outcome::kConsumed) return Status::kMore;
  // The stream does not go back: what was not handled is decoded already and handed out again by
  // the next read, after the record carried so far (carry_ stays).
  gzip_->unread(data.substr(stopped));
  read_offset_ = base + stopped;
  return Status::kBlocked;
}

TailedFile::Status TailedFile::checkEof(TailContext& ctx) {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return Status::kEof;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < read_offset_) {
    // copytruncate: the same inode starts over. Whatever was not read before the truncation is
    // gone; the pending partial lines belong to the old content.
    ++ctx.stats.truncations;
    ctx.errors.report("logs", "file_truncated", path_);
    ctx.replaced.push_back(
        StoredPosition{path_, head_.fingerprint_bytes > 0 ? head_ : identity_, safeOffset()});
    resetContent();
    size_ = size;
    fingerprintFile(fd_, size, kFingerprintMaxBytes, identity_);
    return Status::kMore;
  }
  size_ = size;
  if (st.st_nlink == 0) deleted_ = true;
  return Status::kEof;
}

void TailedFile::resetContent() {
  read_offset_ = 0;
  high_water_ = 0;
  consumed_ = 0;
  carry_.clear();
  carry_overflow_ = false;
  format_ = LogFormat::kUnknown;
  joiners_ = {PartialJoiner(max_line_bytes_), PartialJoiner(max_line_bytes_)};
  open_ = {};
  overlong_ = {};
  held_.reset();
  committed_ = 0;
  needs_commit_to_ = 0;
  identity_.fingerprint = 0;
  identity_.fingerprint_bytes = 0;
  head_.fingerprint = 0;
  head_.fingerprint_bytes = 0;
}

TailedFile::Outcome TailedFile::processData(TailContext& ctx, std::string_view data,
                                            std::uint64_t base, std::size_t& stopped) {
  stopped = data.size();
  std::size_t pos = 0;
  while (pos < data.size()) {
    const char* nl =
        static_cast<const char*>(std::memchr(data.data() + pos, '\n', data.size() - pos));
    const std::size_t stop =
        nl != nullptr ? static_cast<std::size_t>(nl - data.data()) : data.size();
    const bool continuing = consumed_ < base + pos;  // a record started in an earlier read
    if (continuing || nl == nullptr) {
      // Keep at most max_record_bytes_ of one record; the rest is skipped up to its newline.
      const std::size_t room =
          max_record_bytes_ > carry_.size() ? max_record_bytes_ - carry_.size() : 0;
      const std::size_t take = std::min(room, stop - pos);
      carry_.append(data.substr(pos, take));
      if (take < stop - pos) carry_overflow_ = true;
      if (nl == nullptr) return Outcome::kConsumed;
      const Outcome out = processRecord(ctx, carry_, base + stop + 1);
      if (out == Outcome::kNotConsumed) {
        stopped = stop;  // the record is in carry_ up to its newline
        return out;
      }
      carry_.clear();
      carry_overflow_ = false;
      if (out == Outcome::kConsumedThenRefused) {
        stopped = stop + 1;
        return out;
      }
    } else {
      const Outcome out = processRecord(ctx, data.substr(pos, stop - pos), base + stop + 1);
      if (out != Outcome::kConsumed) {
        stopped = out == Outcome::kNotConsumed ? pos : stop + 1;
        return out;
      }
    }
    pos = stop + 1;
  }
  return Outcome::kConsumed;
}

void TailedFile::badRecord(TailContext& ctx, std::string_view reason) {
  ++ctx.stats.bad_records;
  ctx.errors.report("logs", "bad_record",
                    path_ + " at " + std::to_string(consumed_) + ": " + std::string(reason));
}

TailedFile::Outcome TailedFile::processRecord(TailContext& ctx, std::string_view record,
                                              std::uint64_t end) {
  if (!ctx.sink.hasRoom()) return Outcome::kNotConsumed;
  const std::uint64_t start = consumed_;
  if (format_ == LogFormat::kUnknown) {
    format_ = detectFormat(record);
    if (format_ == LogFormat::kUnknown) {
      badRecord(ctx, "unknown format");
      consumed_ = end;
      return Outcome::kConsumed;
    }
  }
  auto parsed =
      format_ == LogFormat::kCri ? parseCriLine(record) : parseDockerLine(record, ctx.scratch);
  if (!parsed) {
    badRecord(ctx, carry_overflow_ ? "record over the size limit"
                                   : std::string_view(lineErrorName(parsed.error())));
    consumed_ = end;
    return Outcome::kConsumed;
  }
  const std::size_t s = index(parsed->stream);
  if (!open_[s]) {
    partial_start_[s] = start;
    overlong_[s] = false;
  }
  if (carry_overflow_) overlong_[s] = true;
  consumed_ = end;
  if (!joiners_[s].add(*parsed)) {
    open_[s] = true;
    return Outcome::kConsumed;
  }
  open_[s] = false;
  return emit(ctx, parsed->stream, safeOffset()) ? Outcome::kConsumed
                                                 : Outcome::kConsumedThenRefused;
}

std::uint64_t TailedFile::safeOffset() const {
  std::uint64_t offset = consumed_;
  for (std::size_t s = 0; s < 2; ++s) {
    if (open_[s]) offset = std::min(offset, partial_start_[s]);
  }
  return offset;
}

bool TailedFile::emit(TailContext& ctx, LogStream stream, std::uint64_t offset) {
  const std::size_t s = index(stream);
  const PartialJoiner& joiner = joiners_[s];
  const bool truncated = joiner.truncated() || overlong_[s];
  entry_.timestamp_ns = joiner.timestampNs();
  entry_.line.assign(joiner.line());
  entry_.metadata.resize(base_metadata_);
  if (truncated) entry_.metadata.emplace_back("truncated", "true");
  checkpoint_.file = identity_;
  checkpoint_.offset = offset;
  const bool accepted = ctx.sink.acceptStream(labels_[s], entry_, checkpoint_, stream_ids_[s]);
  // A rare long line does not keep its buffer for the rest of the file's life.
  if (entry_.line.capacity() > kKeptLineCapacity) entry_.line = std::string();
  if (!accepted) {
    // The line stays in its joiner (nothing is added to it until it is delivered).
    held_ = Held{stream, offset};
    return false;
  }
  held_.reset();
  overlong_[s] = false;
  needs_commit_to_ = offset;
  ++ctx.stats.lines_read;
  if (truncated) ++ctx.stats.lines_truncated;
  return true;
}

bool TailedFile::deliverHeld(TailContext& ctx) {
  if (!held_) return true;
  if (!ctx.sink.hasRoom()) return false;
  return emit(ctx, held_->stream, held_->offset);
}

TailedFile::Status TailedFile::finish(TailContext& ctx) {
  if (finished_) return Status::kEof;
  if (!deliverHeld(ctx)) return Status::kBlocked;
  if (consumed_ < read_offset_) {
    // The last record has no newline and never will: take it as it is.
    const Outcome out = processRecord(ctx, carry_, read_offset_);
    if (out == Outcome::kNotConsumed) return Status::kBlocked;
    carry_.clear();
    carry_overflow_ = false;
    if (out == Outcome::kConsumedThenRefused) return Status::kBlocked;
  }
  for (std::size_t s = 0; s < 2; ++s) {
    if (!open_[s]) continue;
    if (!ctx.sink.hasRoom()) return Status::kBlocked;
    // The rest of the line will never come: hand out what there is.
    joiners_[s].flush();
    open_[s] = false;
    ++ctx.stats.partials_flushed;
    if (!emit(ctx, streamAt(s), safeOffset())) return Status::kBlocked;
  }
  finished_ = true;
  return Status::kEof;
}

bool TailedFile::commit(const LogCheckpoint& checkpoint) {
  // Past what this content has consumed: a late commit from before a copytruncate.
  if (checkpoint.offset > consumed_) return false;
  committed_ = std::max(committed_, checkpoint.offset);
  return true;
}

}  // namespace nodewarden::logs
