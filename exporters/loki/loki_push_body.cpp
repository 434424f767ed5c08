// Loki push body: LogBatch streams <-> PushRequest protobuf (+ snappy), and the batcher's
// LokiBatchEncoder made of them.
//
// The protobuf is written by hand in the wire format (protobuf encoding spec, "Message
// Structure"): every message is a length-delimited field of its parent, so a first pass computes
// each stream's size and a second writes the bytes into a buffer of exactly the right size.
//
// What a reader gets wrong: the decoder skips fields it does not know (of any valid wire type), as
// generated code does, but every length it reads is checked against the bytes left before it is
// used; a body from the spool passed its record checksum, so a failure here is a bug, not damage.
#include "exporters/loki/loki_push_body.h"

#include <snappy.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstring>
#include <utility>

#include "exporters/loki/loki_json_body.h"

namespace nodewarden {
namespace {

// Tags: field number << 3 | wire type (0 varint, 2 length-delimited), from push.proto.
constexpr char kPushStreams = 0x0a;       // PushRequest.streams = 1
constexpr char kStreamLabels = 0x0a;      // StreamAdapter.labels = 1
constexpr char kStreamEntries = 0x12;     // StreamAdapter.entries = 2
constexpr char kEntryTimestamp = 0x0a;    // EntryAdapter.timestamp = 1
constexpr char kEntryLine = 0x12;         // EntryAdapter.line = 2
constexpr char kEntryMetadata = 0x1a;     // EntryAdapter.structuredMetadata = 3
constexpr char kPairName = 0x0a;          // LabelPairAdapter.name = 1
constexpr char kPairValue = 0x12;         // LabelPairAdapter.value = 2
constexpr char kTimestampSeconds = 0x08;  // google.protobuf.Timestamp.seconds = 1
constexpr char kTimestampNanos = 0x10;    // google.protobuf.Timestamp.nanos = 2
constexpr std::int64_t kNsPerSecond = 1'000'000'000;

// Loki's Timestamp: seconds and non-negative nanos, as protobuf requires.
struct Timestamp {
  std::int64_t seconds;
  std::int32_t nanos;
};

Timestamp splitTimestamp(std::int64_t ns) {
  std::int64_t seconds = ns / kNsPerSecond;
  std::int64_t nanos = ns % kNsPerSecond;
  if (nanos < 0) {
    nanos += kNsPerSecond;
    --seconds;
  }
  return {seconds, static_cast<std::int32_t>(nanos)};
}

std::size_t varintSize(std::uint64_t v) {
  return static_cast<std::size_t>(std::bit_width(v | 1U) + 6) / 7;
}

// A length-delimited field: tag, length, payload.
std::size_t fieldSize(std::size_t payload) { return 1 + varintSize(payload) + payload; }
// A string field, omitted when empty (proto3).
std::size_t stringFieldSize(std::size_t n) { return n == 0 ? 0 : fieldSize(n); }

char* putVarint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

char* putHeader(char* p, char tag, std::size_t payload) {
  *p++ = tag;
  return putVarint(p, payload);
}

char* putString(char* p, char tag, std::string_view s) {
  if (s.empty()) return p;
  p = putHeader(p, tag, s.size());
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// int64 and int32 are varints of their two's complement (10 bytes when negative).
std::size_t timestampSize(const Timestamp& ts) {
  return (ts.seconds == 0 ? 0 : 1 + varintSize(static_cast<std::uint64_t>(ts.seconds))) +
         (ts.nanos == 0 ? 0 : 1 + varintSize(static_cast<std::uint64_t>(ts.nanos)));
}

std::size_t pairSize(const std::pair<std::string, std::string>& pair) {
  return stringFieldSize(pair.first.size()) + stringFieldSize(pair.second.size());
}

std::size_t entrySize(const LogEntry& entry, const Timestamp& ts) {
  std::size_t n = fieldSize(timestampSize(ts)) + stringFieldSize(entry.line.size());
  for (const auto& pair : entry.metadata) n += fieldSize(pairSize(pair));
  return n;
}

// payload: entrySize(entry, ts), when the caller has it already.
char* putEntry(char* p, const LogEntry& entry, const Timestamp& ts, std::size_t payload) {
  p = putHeader(p, kStreamEntries, payload);
  p = putHeader(p, kEntryTimestamp, timestampSize(ts));
  if (ts.seconds != 0) {
    *p++ = kTimestampSeconds;
    p = putVarint(p, static_cast<std::uint64_t>(ts.seconds));
  }
  if (ts.nanos != 0) {
    *p++ = kTimestampNanos;
    p = putVarint(p, static_cast<std::uint64_t>(ts.nanos));
  }
  p = putString(p, kEntryLine, entry.line);
  for (const auto& pair : entry.metadata) {
    p = putHeader(p, kEntryMetadata, pairSize(pair));
    p = putString(p, kPairName, pair.first);
    p = putString(p, kPairValue, pair.second);
  }
  return p;
}

char* putEntry(char* p, const LogEntry& entry) {
  const Timestamp ts = splitTimestamp(entry.timestamp_ns);
  return putEntry(p, entry, ts, entrySize(entry, ts));
}

void appendLokiLabels(std::string& out, const Labels& labels) {
  out.push_back('{');
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ", ";
    first = false;
    out += name;
    out.push_back('=');
    appendQuotedLabelValue(out, value);
  }
  out.push_back('}');
}

// ---- decoding ----

class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : rest_(bytes) {}
  [[nodiscard]] bool done() const { return rest_.empty(); }

  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) return false;
      const auto b = static_cast<std::uint8_t>(rest_.front());
      rest_.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  // The next field's number and wire type; for wire type 2 also its bytes (consumed), for the
  // others the value is read by the caller (varint) or skipped here (fixed64, fixed32).
  bool field(std::uint32_t& number, std::uint32_t& type, std::string_view& bytes,
             std::uint64_t& value) {
    std::uint64_t tag = 0;
    if (!varint(tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) return false;
    number = static_cast<std::uint32_t>(tag >> 3);
    type = static_cast<std::uint32_t>(tag & 7);
    switch (type) {
      case 0:
        return varint(value);
      case 1:
        return skip(8);
      case 5:
        return skip(4);
      case 2: {
        std::uint64_t n = 0;
        if (!varint(n) || n > rest_.size()) return false;
        bytes = rest_.substr(0, static_cast<std::size_t>(n));
        rest_.remove_prefix(static_cast<std::size_t>(n));
        return true;
      }
      default:
        return false;
    }
  }

 private:
  bool skip(std::size_t n) {
    if (n > rest_.size()) return false;
    rest_.remove_prefix(n);
    return true;
  }
  std::string_view rest_;
};

bool readPair(std::string_view bytes, std::pair<std::string, std::string>& pair) {
  WireReader in(bytes);
  while (!in.done()) {
    std::uint32_t number = 0, type = 0;
    std::string_view s;
    std::uint64_t v = 0;
    if (!in.field(number, type, s, v)) return false;
    if (type != 2) continue;
    if (number == 1) pair.first.assign(s);
    if (number == 2) pair.second.assign(s);
  }
  return true;
}

bool readTimestamp(std::string_view bytes, std::int64_t& ns) {
  WireReader in(bytes);
  std::int64_t seconds = 0;
  std::int64_t nanos = 0;
  while (!in.done()) {
    std::uint32_t number = 0, type = 0;
    std::string_view s;
    std::uint64_t v = 0;
    if (!in.field(number, type, s, v)) return false;
    if (type != 0) continue;
    if (number == 1) seconds = static_cast<std::int64_t>(v);
    if (number == 2) nanos = static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
  }
  // Modular, like the split it undoes: any int64 round-trips.
  ns = static_cast<std::int64_t>(static_cast<std::uint64_t>(seconds) * kNsPerSecond +
                                 static_cast<std::uint64_t>(nanos));
  return true;
}

bool readEntry(std::string_view bytes, LogEntry& entry) {
  WireReader in(bytes);
  while (!in.done()) {
    std::uint32_t number = 0, type = 0;
    std::string_view s;
    std::uint64_t v = 0;
    if (!in.field(number, type, s, v)) return false;
    if (type != 2) continue;
    if (number == 1 && !readTimestamp(s, entry.timestamp_ns)) return false;
    if (number == 2) entry.line.assign(s);
    if (number == 3 && !readPair(s, entry.metadata.emplace_back())) return false;
  }
  return true;
}

std::expected<LogBatch::Stream, std::string> readStream(std::string_view bytes) {
  WireReader in(bytes);
  LogBatch::Stream stream;
  while (!in.done()) {
    std::uint32_t number = 0, type = 0;
    std::string_view s;
    std::uint64_t v = 0;
    if (!in.field(number, type, s, v)) return std::unexpected("malformed stream");
    if (type != 2) continue;
    if (number == 1) {
      auto labels = parseLokiLabelSelector(s);
      if (!labels) return std::unexpected("stream labels: " + labels.error());
      stream.labels = std::move(*labels);
    } else if (number == 2 && !readEntry(s, stream.entries.emplace_back())) {
      return std::unexpected("malformed entry");
    }
  }
  return stream;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// A Go string literal starting at s[i] == '"'; i ends just past the closing quote.
std::expected<std::string, std::string> unquote(std::string_view s, std::size_t& i) {
  std::string out;
  ++i;
  while (i < s.size() && s[i] != '"') {
    if (s[i] != '\\') {
      out.push_back(s[i++]);
      continue;
    }
    if (++i >= s.size()) break;
    const char c = s[i++];
    switch (c) {
      case '"':
      case '\\':
        out.push_back(c);
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'x':
      case 'u': {
        const std::size_t digits = c == 'x' ? 2 : 4;
        if (s.size() - i < digits) return std::unexpected("short escape");
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < digits; ++k) {
          const int d = hexDigit(s[i + k]);
          if (d < 0) return std::unexpected("bad escape");
          v = v * 16 + static_cast<std::uint32_t>(d);
        }
        i += digits;
        if (c == 'x') {
          out.push_back(static_cast<char>(v));
        } else {
          appendUtf8(out, v);
        }
        break;
      }
      default:
        return std::unexpected(std::string("unknown escape \\") + c);
    }
  }
  if (i >= s.size()) return std::unexpected("unterminated value");
  ++i;
  return out;
}

}  // namespace

LokiEntryField::LokiEntryField(const LogEntry& entry) : entry_(entry) {
  const Timestamp ts = splitTimestamp(entry.timestamp_ns);
  seconds_ = ts.seconds;
  nanos_ = ts.nanos;
  payload_ = entrySize(entry, ts);
  size_ = fieldSize(payload_);
}

char* LokiEntryField::write(char* out) const {
  [[maybe_unused]] char* end = putEntry(out, entry_, Timestamp{seconds_, nanos_}, payload_);
  assert(end == out + size_);
  return out + size_;
}

void appendLokiEntryField(std::string& out, const LogEntry& entry) {
  const LokiEntryField field(entry);
  const std::size_t at = out.size();
  // resize(), not resize_and_overwrite(): with GCC 12's libstdc++ the latter asked for a wrong,
  // huge capacity when growing a non-empty string here (std::bad_alloc).
  out.resize(at + field.size());
  field.write(out.data() + at);
}

void appendQuotedLabelValue(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char ch : value) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
      }
    }
  }
  out.push_back('"');
}

std::string formatLokiLabels(const Labels& labels) {
  std::string out;
  appendLokiLabels(out, labels);
  return out;
}

std::expected<Labels, std::string> parseLokiLabelSelector(std::string_view s) {
  std::size_t i = 0;
  const auto skipSpace = [&] {
    while (i < s.size() && s[i] == ' ') ++i;
  };
  if (s.empty() || s[0] != '{') return std::unexpected("no '{'");
  ++i;
  Labels labels;
  skipSpace();
  if (i < s.size() && s[i] == '}') {
    if (i + 1 != s.size()) return std::unexpected("bytes after '}'");
    return labels;
  }
  for (;;) {
    skipSpace();
    const std::size_t start = i;
    while (i < s.size() && s[i] != '=' && s[i] != ' ') ++i;
    if (i == start || i >= s.size()) return std::unexpected("no label name");
    std::string name(s.substr(start, i - start));
    skipSpace();
    if (i >= s.size() || s[i] != '=') return std::unexpected("no '=' after " + name);
    ++i;
    skipSpace();
    if (i >= s.size() || s[i] != '"') return std::unexpected("no value for " + name);
    auto value = unquote(s, i);
    if (!value) return std::unexpected(name + ": " + value.error());
    labels.emplace_back(std::move(name), std::move(*value));
    skipSpace();
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i + 1 == s.size() && s[i] == '}') return labels;
    return std::unexpected("no '}' at the end");
  }
}

std::string_view LokiPushWriter::protobuf(const LogBatch& batch) {
  const std::size_t streams = batch.streams.size();
  if (labels_.size() < streams) labels_.resize(streams);
  sizes_.resize(streams);
  std::size_t total = 0;
  for (std::size_t i = 0; i < streams; ++i) {
    const auto& stream = batch.streams[i];
    labels_[i].clear();
    appendLokiLabels(labels_[i], stream.labels);
    std::size_t n = stringFieldSize(labels_[i].size());
    for (const auto& entry : stream.entries) {
      n += fieldSize(entrySize(entry, splitTimestamp(entry.timestamp_ns)));
    }
    sizes_[i] = n;
    total += fieldSize(n);
  }
  // resize() of a reused buffer only fills what it grows by; every byte is written below.
  scratch_.resize(total);
  char* p = scratch_.data();
  for (std::size_t i = 0; i < streams; ++i) {
    p = putHeader(p, kPushStreams, sizes_[i]);
    p = putString(p, kStreamLabels, labels_[i]);
    for (const auto& entry : batch.streams[i].entries) p = putEntry(p, entry);
  }
  assert(p == scratch_.data() + scratch_.size());  // both passes use the same sizes
  return scratch_;
}

void LokiPushWriter::body(const LogBatch& batch, std::string& out) {
  const std::string_view whole = protobuf(batch);
  pieces_.assign(1, whole);
  compress(whole.size(), out);
}

void LokiPushWriter::body(std::span<const EncodedLogStream> streams, std::string& out) {
  if (labels_.size() < streams.size()) labels_.resize(streams.size());
  sizes_.resize(streams.size());
  std::size_t heads = 0;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    labels_[i].clear();
    appendLokiLabels(labels_[i], *streams[i].labels);
    std::size_t entries = 0;
    for (const auto piece : streams[i].entries) entries += piece.size();
    sizes_[i] = stringFieldSize(labels_[i].size()) + entries;
    heads += fieldSize(sizes_[i]) - entries;
  }
  // Each stream's field header and labels go to scratch_ (small); its entries are compressed
  // where they are, so the batch is never copied into one uncompressed PushRequest.
  scratch_.resize(heads);
  pieces_.clear();
  std::size_t total = 0;
  char* p = scratch_.data();
  for (std::size_t i = 0; i < streams.size(); ++i) {
    char* const head = p;
    p = putHeader(p, kPushStreams, sizes_[i]);
    p = putString(p, kStreamLabels, labels_[i]);
    pieces_.emplace_back(head, static_cast<std::size_t>(p - head));
    total += static_cast<std::size_t>(p - head);
    for (const auto piece : streams[i].entries) {
      pieces_.push_back(piece);
      total += piece.size();
    }
  }
  assert(p == scratch_.data() + scratch_.size());
  compress(total, out);
}

// snappy of pieces_ (total bytes) into out, through a reused buffer: out gets exactly the
// compressed size. Each piece is compressed where it is (see the header): RawCompress writes the
// piece's own length first, over the last bytes of the piece before (or the room kept for the
// total's length), which are put back after; its elements follow.
void LokiPushWriter::compress(std::size_t total, std::string& out) {
  const std::size_t head = varintSize(total);
  std::size_t bound = head;
  for (const auto piece : pieces_) bound += snappy::MaxCompressedLength(piece.size());
  if (compressed_.size() < bound) compressed_.resize(bound);
  char* const base = compressed_.data();
  std::size_t at = head;
  for (const auto piece : pieces_) {
    if (piece.empty()) continue;
    const std::size_t own = varintSize(piece.size());  // <= head: a piece is part of the total
    std::array<char, 10> kept{};
    std::memcpy(kept.data(), base + at - own, own);
    std::size_t n = 0;
    snappy::RawCompress(piece.data(), piece.size(), base + at - own, &n);
    std::memcpy(base + at - own, kept.data(), own);
    at += n - own;
  }
  putVarint(base, total);
  // out is most often the buffer of an earlier body (LogBatcher, Spool::takeSpareBody): a quarter
  // more than this body lets the next, slightly bigger one fit without a fresh allocation.
  if (out.capacity() < at) out.reserve(at + at / 4);
  out.assign(base, at);
}

std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiPushRequest(
    std::string_view protobuf) {
  WireReader in(protobuf);
  std::vector<LogBatch::Stream> streams;
  while (!in.done()) {
    std::uint32_t number = 0, type = 0;
    std::string_view s;
    std::uint64_t v = 0;
    if (!in.field(number, type, s, v)) return std::unexpected("malformed push request");
    if (number != 1 || type != 2) continue;
    auto stream = readStream(s);
    if (!stream) return std::unexpected(stream.error());
    streams.push_back(std::move(*stream));
  }
  return streams;
}

std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiPushBody(
    std::string_view body) {
  // snappy::Uncompress allocates the length the body states before it reads an element: a damaged
  // length would be allocated whole (gigabytes). No element writes more than 64 bytes from 3, so a
  // length past 32 times the body is damage.
  std::size_t length = 0;
  if (!snappy::GetUncompressedLength(body.data(), body.size(), &length)) {
    return std::unexpected("push body is not snappy");
  }
  if (length > body.size() * 32) return std::unexpected("push body states an implausible size");
  std::string raw;
  if (!snappy::Uncompress(body.data(), body.size(), &raw)) {
    return std::unexpected("push body is not snappy");
  }
  return decodeLokiPushRequest(raw);
}

std::expected<void, std::string> expandLokiBody(LogBatch& batch) {
  return expandEncodedBody(batch, LokiBatchEncoder());
}

std::size_t LokiBatchEncoder::encodeEntry(const LogEntry& entry, std::span<char> room,
                                          std::string& spill) {
  const LokiEntryField field(entry);
  if (field.size() <= room.size()) {
    field.write(room.data());
    return field.size();
  }
  if (spill.size() < field.size()) spill.resize(field.size());
  field.write(spill.data());
  return field.size();
}

void LokiBatchEncoder::encodeBody(std::span<const EncodedLogStream> streams, std::string& out) {
  writer_.body(streams, out);
}

std::expected<std::vector<LogBatch::Stream>, std::string> LokiBatchEncoder::decodeBody(
    std::string_view body) const {
  // Either kind: a spool written with the JSON encoding is read by this decoder too.
  return decodeLokiBody(body);
}

}  // namespace nodewarden
