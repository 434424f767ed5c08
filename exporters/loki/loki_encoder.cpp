// LokiPushEncoder: LogBatch → PushRequest (protobuf + snappy) or JSON (+ gzip).
//
// The protobuf form is written by hand in the wire format (protobuf encoding spec, "Message
// Structure"): every message is a length-delimited field of its parent, so a first pass computes
// each stream's size and a second writes the bytes into a buffer of exactly the right size. It
// follows what the generated code for push.proto writes: fields in number order, proto3 scalars
// and strings omitted when 0 or empty, the timestamp sub-message always present.
#include "exporters/loki/loki_encoder.h"

#include <snappy.h>
#include <zlib.h>

#include <bit>
#include <cassert>
#include <cstring>
#include <nlohmann/json.hpp>

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

// Loki's Timestamp: seconds and non-negative nanos, as protobuf requires.
struct Timestamp {
  std::int64_t seconds;
  std::int32_t nanos;
};

Timestamp splitTimestamp(std::int64_t ns) {
  constexpr std::int64_t kNsPerSecond = 1'000'000'000;
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

char* putEntry(char* p, const LogEntry& entry) {
  const Timestamp ts = splitTimestamp(entry.timestamp_ns);
  p = putHeader(p, kStreamEntries, entrySize(entry, ts));
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

// The PushRequest for `batch` into `out` (replacing it). labels and sizes are scratch space.
void writePushRequest(const LogBatch& batch, std::string& out, std::vector<std::string>& labels,
                      std::vector<std::uint64_t>& sizes) {
  const std::size_t streams = batch.streams.size();
  if (labels.size() < streams) labels.resize(streams);
  sizes.resize(streams);
  std::size_t total = 0;
  for (std::size_t i = 0; i < streams; ++i) {
    const auto& stream = batch.streams[i];
    labels[i].clear();
    appendLokiLabels(labels[i], stream.labels);
    std::size_t n = stringFieldSize(labels[i].size());
    for (const auto& entry : stream.entries) {
      n += fieldSize(entrySize(entry, splitTimestamp(entry.timestamp_ns)));
    }
    sizes[i] = n;
    total += fieldSize(n);
  }
  // resize() of a reused buffer only fills what it grows by; every byte is written below.
  out.resize(total);
  char* p = out.data();
  for (std::size_t i = 0; i < streams; ++i) {
    p = putHeader(p, kPushStreams, sizes[i]);
    p = putString(p, kStreamLabels, labels[i]);
    for (const auto& entry : batch.streams[i].entries) p = putEntry(p, entry);
  }
  assert(p == out.data() + out.size());  // both passes use the same sizes
}

}  // namespace

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

std::string LokiPushEncoder::protobufBytes(const LogBatch& batch) {
  std::string out;
  std::vector<std::string> labels;
  std::vector<std::uint64_t> sizes;
  writePushRequest(batch, out, labels, sizes);
  return out;
}

std::string LokiPushEncoder::jsonText(const LogBatch& batch) {
  using nlohmann::json;
  json streams = json::array();
  for (const auto& stream : batch.streams) {
    json labels = json::object();
    for (const auto& [name, value] : stream.labels) labels[name] = value;
    json values = json::array();
    for (const auto& entry : stream.entries) {
      json value = json::array({std::to_string(entry.timestamp_ns), entry.line});
      if (!entry.metadata.empty()) {
        json metadata = json::object();
        for (const auto& [name, v] : entry.metadata) metadata[name] = v;
        value.push_back(std::move(metadata));
      }
      values.push_back(std::move(value));
    }
    streams.push_back(json{{"stream", std::move(labels)}, {"values", std::move(values)}});
  }
  // Log lines are not always UTF-8: replace invalid bytes with U+FFFD instead of throwing.
  return json{{"streams", std::move(streams)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::expected<std::string, std::string> gzipCompress(std::string_view data) {
  z_stream zs{};
  // 15 window bits + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return std::unexpected("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 32, '\0');
  // zlib's API is not const-correct; it never writes through next_in.
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const auto written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::unexpected("gzip: deflate did not finish");
  out.resize(written);
  return out;
}

std::expected<LokiPushBody, std::string> LokiPushEncoder::encode(const LogBatch& batch) {
  LokiPushBody body;
  if (encoding_ == LokiEncoding::kProtobuf) {
    writePushRequest(batch, scratch_, labels_, sizes_);
    compressed_.resize(snappy::MaxCompressedLength(scratch_.size()));
    std::size_t n = 0;
    snappy::RawCompress(scratch_.data(), scratch_.size(), compressed_.data(), &n);
    compressed_.resize(n);
    body.bytes = compressed_;
    body.content_type = "application/x-protobuf";
    return body;
  }
  scratch_ = jsonText(batch);
  auto gz = gzipCompress(scratch_);
  if (!gz) return std::unexpected(gz.error());
  compressed_ = std::move(*gz);
  body.bytes = compressed_;
  body.content_type = "application/json";
  body.content_encoding = "gzip";
  return body;
}

}  // namespace nodewarden
