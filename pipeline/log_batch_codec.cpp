// The spool's record payload: LogBatch <-> a compact, versioned binary form.
//
// Layout (version 1): one version byte, then
//   streams:     count, each { labels: count, each {name, value}; entries: count, each
//                { timestamp: zigzag delta from the previous entry of the stream; line;
//                  metadata: count, each {name, value} } }
//   checkpoints: count, each { source; device; inode; fingerprint; fingerprint_bytes; offset;
//                journal_cursor }
//   bytes, lines
// Counts and integers are LEB128 varints; strings are a varint length then the bytes.
// Version 2, for a batch that carries its encoded body (LogBatch::encoded_body, a Loki push body
// today: exporters/loki) instead of streams:
//   checkpoints (as in version 1), bytes, lines, then the push body (the rest of the payload).
//
// What a reader gets wrong: the sequence is not in the payload (the spool assigns it and keeps it
// in the record header), and decode trusts nothing: every count is checked against the bytes left
// (each element needs at least one byte per field) before anything is reserved, so a hostile
// length costs an error, never a huge allocation.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/spool.h"

namespace nodewarden {
namespace {

constexpr std::uint8_t kCodecVersion = 1;
constexpr std::uint8_t kCodecVersionLokiBody = 2;
// The fewest bytes one element of each kind takes in the encoding (one byte per field).
constexpr std::size_t kMinLabelBytes = 2;
constexpr std::size_t kMinStreamBytes = 2;
constexpr std::size_t kMinEntryBytes = 3;
constexpr std::size_t kMinCheckpointBytes = 7;
// Vectors grow as elements actually parse; a count only reserves this many up front, so a count
// that the rest of the input does not back costs nothing.
constexpr std::size_t kMaxReserve = 256;

template <typename T>
void reserveFor(std::vector<T>& v, std::size_t n) {
  v.reserve(n < kMaxReserve ? n : kMaxReserve);
}

void putVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void putString(std::string& out, std::string_view s) {
  putVarint(out, s.size());
  out.append(s);
}

void putLabels(std::string& out, const Labels& labels) {
  putVarint(out, labels.size());
  for (const auto& [name, value] : labels) {
    putString(out, name);
    putString(out, value);
  }
}

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}

  [[nodiscard]] std::size_t left() const { return rest_.size(); }
  [[nodiscard]] std::string_view rest() const { return rest_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] bool ok() const { return error_.empty(); }

  bool fail(std::string reason) {
    if (error_.empty()) {
      error_ = std::move(reason);
    }
    return false;
  }

  bool byte(std::uint8_t& v) {
    if (rest_.empty()) {
      return fail("truncated");
    }
    v = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return true;
  }

  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      std::uint8_t b = 0;
      if (!byte(b)) {
        return false;
      }
      // The tenth byte holds bit 63 only.
      if (shift == 63 && b > 1) {
        return fail("varint overflows 64 bits");
      }
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return true;
      }
    }
    return fail("varint longer than 10 bytes");
  }

  // A count of elements that each take at least min_bytes: bounded by what is left.
  bool count(std::size_t& n, std::size_t min_bytes, std::string_view what) {
    std::uint64_t v = 0;
    if (!varint(v)) {
      return false;
    }
    if (v > left() / min_bytes) {
      return fail(std::string("absurd ").append(what).append(" count"));
    }
    n = static_cast<std::size_t>(v);
    return true;
  }

  bool string(std::string& s) {
    std::uint64_t n = 0;
    if (!varint(n)) {
      return false;
    }
    if (n > left()) {
      return fail("string longer than the input");
    }
    s.assign(rest_.substr(0, static_cast<std::size_t>(n)));
    rest_.remove_prefix(static_cast<std::size_t>(n));
    return true;
  }

  bool labels(Labels& labels) {
    std::size_t n = 0;
    if (!count(n, kMinLabelBytes, "label")) {
      return false;
    }
    reserveFor(labels, n);
    for (std::size_t i = 0; i < n; ++i) {
      auto& [name, value] = labels.emplace_back();
      if (!string(name) || !string(value)) {
        return false;
      }
    }
    return true;
  }

 private:
  std::string_view rest_;
  std::string error_;
};

bool readEntry(Reader& in, std::int64_t& previous_ns, LogEntry& entry) {
  std::uint64_t delta = 0;
  if (!in.varint(delta)) {
    return false;
  }
  // Modular arithmetic, the inverse of encode's: any int64 pair round-trips.
  entry.timestamp_ns = static_cast<std::int64_t>(static_cast<std::uint64_t>(previous_ns) +
                                                 static_cast<std::uint64_t>(unzigzag(delta)));
  previous_ns = entry.timestamp_ns;
  return in.string(entry.line) && in.labels(entry.metadata);
}

bool readStream(Reader& in, LogBatch::Stream& stream) {
  if (!in.labels(stream.labels)) {
    return false;
  }
  std::size_t n = 0;
  if (!in.count(n, kMinEntryBytes, "entry")) {
    return false;
  }
  reserveFor(stream.entries, n);
  std::int64_t previous_ns = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!readEntry(in, previous_ns, stream.entries.emplace_back())) {
      return false;
    }
  }
  return true;
}

bool readCheckpoint(Reader& in, LogCheckpoint& cp) {
  std::uint64_t fingerprint_bytes = 0;
  if (!in.string(cp.source) || !in.varint(cp.file.device) || !in.varint(cp.file.inode) ||
      !in.varint(cp.file.fingerprint) || !in.varint(fingerprint_bytes)) {
    return false;
  }
  if (fingerprint_bytes > std::numeric_limits<std::uint32_t>::max()) {
    return in.fail("fingerprint_bytes out of range");
  }
  cp.file.fingerprint_bytes = static_cast<std::uint32_t>(fingerprint_bytes);
  return in.varint(cp.offset) && in.string(cp.journal_cursor);
}

void putCheckpoints(std::string& out, const std::vector<LogCheckpoint>& checkpoints) {
  putVarint(out, checkpoints.size());
  for (const auto& cp : checkpoints) {
    putString(out, cp.source);
    putVarint(out, cp.file.device);
    putVarint(out, cp.file.inode);
    putVarint(out, cp.file.fingerprint);
    putVarint(out, cp.file.fingerprint_bytes);
    putVarint(out, cp.offset);
    putString(out, cp.journal_cursor);
  }
}

bool readCheckpoints(Reader& in, std::vector<LogCheckpoint>& checkpoints) {
  std::size_t n = 0;
  if (!in.count(n, kMinCheckpointBytes, "checkpoint")) return false;
  reserveFor(checkpoints, n);
  for (std::size_t i = 0; i < n; ++i) {
    if (!readCheckpoint(in, checkpoints.emplace_back())) return false;
  }
  return true;
}

}  // namespace

std::string encodeLogBatchHead(const LogBatch& batch) {
  std::string out;
  out.reserve(64 + 64 * batch.checkpoints.size());
  out.push_back(static_cast<char>(kCodecVersionLokiBody));
  putCheckpoints(out, batch.checkpoints);
  putVarint(out, batch.bytes);
  putVarint(out, batch.lines);
  return out;
}

std::string encodeLogBatch(const LogBatch& batch) {
  std::string out;
  if (!batch.encoded_body.empty()) {
    out = encodeLogBatchHead(batch);
    out.append(batch.encoded_body);
    return out;
  }
  std::size_t estimate = 16;
  for (const auto& stream : batch.streams) {
    estimate += 8;
    for (const auto& entry : stream.entries) {
      estimate += entry.line.size() + 8;
    }
  }
  out.reserve(estimate);
  out.push_back(static_cast<char>(kCodecVersion));
  putVarint(out, batch.streams.size());
  for (const auto& stream : batch.streams) {
    putLabels(out, stream.labels);
    putVarint(out, stream.entries.size());
    std::int64_t previous_ns = 0;
    for (const auto& entry : stream.entries) {
      const auto delta = static_cast<std::int64_t>(static_cast<std::uint64_t>(entry.timestamp_ns) -
                                                   static_cast<std::uint64_t>(previous_ns));
      putVarint(out, zigzag(delta));
      previous_ns = entry.timestamp_ns;
      putString(out, entry.line);
      putLabels(out, entry.metadata);
    }
  }
  putCheckpoints(out, batch.checkpoints);
  putVarint(out, batch.bytes);
  putVarint(out, batch.lines);
  return out;
}

std::expected<LogBatch, std::string> decodeLogBatch(std::string_view bytes) {
  return decodeLogBatch(bytes, std::string());
}

std::expected<LogBatch, std::string> decodeLogBatch(std::string_view bytes,
                                                    std::string body_buffer) {
  Reader in(bytes);
  std::uint8_t version = 0;
  if (!in.byte(version)) {
    return std::unexpected("empty log batch");
  }
  if (version != kCodecVersion && version != kCodecVersionLokiBody) {
    return std::unexpected("unknown log batch version " + std::to_string(version));
  }
  LogBatch batch;
  bool ok = true;
  if (version == kCodecVersion) {
    std::size_t n = 0;
    ok = in.count(n, kMinStreamBytes, "stream");
    if (ok) {
      reserveFor(batch.streams, n);
      for (std::size_t i = 0; i < n; ++i) {
        if (!readStream(in, batch.streams.emplace_back())) {
          ok = false;
          break;
        }
      }
    }
  }
  ok = ok && readCheckpoints(in, batch.checkpoints);
  std::uint64_t total_bytes = 0;
  std::uint64_t lines = 0;
  ok = ok && in.varint(total_bytes) && in.varint(lines);
  if (!ok) {
    return std::unexpected("malformed log batch: " + in.error());
  }
  if (version == kCodecVersionLokiBody) {
    if (in.left() == 0) return std::unexpected("malformed log batch: no push body");
    batch.encoded_body = std::move(body_buffer);
    // With room for a somewhat bigger body next time (see LokiPushWriter::compress).
    if (batch.encoded_body.capacity() < in.left())
      batch.encoded_body.reserve(in.left() + in.left() / 4);
    batch.encoded_body.assign(in.rest());
  } else if (in.left() != 0) {
    return std::unexpected("malformed log batch: " + std::to_string(in.left()) + " trailing bytes");
  }
  batch.bytes = static_cast<std::size_t>(total_bytes);
  batch.lines = static_cast<std::size_t>(lines);
  return batch;
}

}  // namespace nodewarden
