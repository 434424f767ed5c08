// Loki JSON push body: LogBatch streams <-> {"streams":[...]} (+ gzip), and the batcher's
// LokiJsonBatchEncoder made of them.
//
// The escaper is table-driven (RFC 8259 section 7): runs of bytes that need nothing are copied at
// once, and only `"`, `\`, control bytes and bytes of 0x80 and above look further. UTF-8 is
// checked as Unicode's "well-formed byte sequences" table says (no overlong forms, no surrogates,
// nothing past U+10FFFF); each byte that starts no such sequence becomes U+FFFD.
//
// What a reader gets wrong: gzip here is libdeflate's whole-buffer compressor, not zlib's stream,
// so a body's pieces (the batcher's chunks) are joined into one uncompressed buffer first. That
// copy costs far less than the compression it feeds, and libdeflate at level 1 is about 1.5x
// zlib's level 1 and compresses better. The decoder is a SAX handler with a fixed state machine
// (no document tree: a batch is decoded without a copy per value), strict about the shape.
#include "exporters/loki/loki_json_body.h"

#include <libdeflate.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "exporters/loki/loki_push_body.h"

namespace nodewarden {
namespace {

constexpr char kHex[] = "0123456789abcdef";
// deflate cannot expand more than about 1032:1.
constexpr std::size_t kMaxDeflateRatio = 1032;
constexpr std::size_t kGzipMinBytes = 20;  // header 10, the least deflate stream 2, trailer 8

// 0: written as it is; 1: escaped (ASCII); 2: the start of a UTF-8 sequence to check.
constexpr std::array<std::uint8_t, 256> kClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = 1;
  t['"'] = 1;
  t['\\'] = 1;
  for (int c = 0x80; c < 0x100; ++c) t[static_cast<std::size_t>(c)] = 2;
  return t;
}();

// The short escape of an ASCII byte that has one, else 0 (then \u00XX).
constexpr std::array<char, 128> kShort = [] {
  std::array<char, 128> t{};
  t['"'] = '"';
  t['\\'] = '\\';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  return t;
}();

bool continuation(unsigned char c) { return (c & 0xc0) == 0x80; }

// The length of the well-formed UTF-8 sequence at p (Unicode 15, table 3-7), or 0.
std::size_t utf8Length(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = *p;
  const auto left = static_cast<std::size_t>(end - p);
  if (c >= 0xc2 && c <= 0xdf) return left >= 2 && continuation(p[1]) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (left < 3 || !continuation(p[2])) return 0;
    const unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
    const unsigned char hi = c == 0xed ? 0x9f : 0xbf;
    return p[1] >= lo && p[1] <= hi ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (left < 4 || !continuation(p[2]) || !continuation(p[3])) return 0;
    const unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
    return p[1] >= lo && p[1] <= hi ? 4 : 0;
  }
  return 0;
}

// Appends what write() puts in at most `bound` bytes.
template <class Write>
void appendBounded(std::string& out, std::size_t bound, Write write) {
  const std::size_t at = out.size();
  out.resize(at + bound);
  char* end = write(out.data() + at);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

void appendLabelsObject(std::string& out, const Labels& labels) {
  out.push_back('{');
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out.push_back(',');
    first = false;
    appendJsonString(out, name);
    out.push_back(':');
    appendJsonString(out, value);
  }
  out.push_back('}');
}

constexpr std::string_view kOpen = R"({"streams":[)";
constexpr std::string_view kClose = "]}";

// ---- decoding ----

// nlohmann's SAX interface: a state per place in {"streams":[{"stream":{..},"values":[[..]]}]}.
class PushSax {
 public:
  enum class At {
    kRoot,
    kRootKey,
    kStreams,
    kStreamItem,
    kStreamKey,
    kLabels,
    kLabelKey,
    kLabelValue,
    kValues,
    kValueItem,
    kTimestamp,
    kLine,
    kMetadataOrEnd,
    kMetadataKey,
    kMetadataValue,
    kValueEnd,
    kDone,
  };
  using json = nlohmann::json;

  std::vector<LogBatch::Stream> streams;
  std::string error;

  [[nodiscard]] bool done() const { return at_ == At::kDone; }

  bool null() { return fail("a null"); }
  bool boolean(bool /*v*/) { return fail("a boolean"); }
  bool number_integer(json::number_integer_t /*v*/) { return fail("a number"); }
  bool number_unsigned(json::number_unsigned_t /*v*/) { return fail("a number"); }
  bool number_float(json::number_float_t /*v*/, const json::string_t& /*s*/) {
    return fail("a number");
  }
  bool binary(json::binary_t& /*v*/) { return fail("binary"); }

  bool string(json::string_t& s) {
    switch (at_) {
      case At::kLabelValue:
        streams.back().labels.back().second = std::move(s);
        return to(At::kLabelKey);
      case At::kTimestamp: {
        auto& ns = streams.back().entries.back().timestamp_ns;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), ns);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size()) {
          return fail("a timestamp that is not nanoseconds");
        }
        return to(At::kLine);
      }
      case At::kLine:
        streams.back().entries.back().line = std::move(s);
        return to(At::kMetadataOrEnd);
      case At::kMetadataValue:
        streams.back().entries.back().metadata.back().second = std::move(s);
        return to(At::kMetadataKey);
      default:
        return fail("a string");
    }
  }

  bool key(json::string_t& k) {
    switch (at_) {
      case At::kRootKey:
        if (k != "streams" || seen_streams_) return fail("key '" + k + "' at the top");
        seen_streams_ = true;
        return to(At::kStreams);
      case At::kStreamKey:
        if (k == "stream" && !seen_labels_) {
          seen_labels_ = true;
          return to(At::kLabels);
        }
        if (k == "values" && !seen_values_) {
          seen_values_ = true;
          return to(At::kValues);
        }
        return fail("key '" + k + "' in a stream");
      case At::kLabelKey:
        streams.back().labels.emplace_back(std::move(k), std::string());
        return to(At::kLabelValue);
      case At::kMetadataKey:
        streams.back().entries.back().metadata.emplace_back(std::move(k), std::string());
        return to(At::kMetadataValue);
      default:
        return fail("a key");
    }
  }

  bool start_object(std::size_t /*n*/) {
    switch (at_) {
      case At::kRoot:
        return to(At::kRootKey);
      case At::kStreamItem:
        streams.emplace_back();
        seen_labels_ = seen_values_ = false;
        return to(At::kStreamKey);
      case At::kLabels:
        return to(At::kLabelKey);
      case At::kMetadataOrEnd:
        return to(At::kMetadataKey);
      default:
        return fail("an object");
    }
  }

  bool end_object() {
    switch (at_) {
      case At::kRootKey:
        if (!seen_streams_) return fail("no streams");
        return to(At::kDone);
      case At::kStreamKey:
        if (!seen_labels_ || !seen_values_) return fail("a stream without stream or values");
        return to(At::kStreamItem);
      case At::kLabelKey:
        return to(At::kStreamKey);
      case At::kMetadataKey:
        return to(At::kValueEnd);
      default:
        return fail("an object's end");
    }
  }

  bool start_array(std::size_t /*n*/) {
    switch (at_) {
      case At::kStreams:
        return to(At::kStreamItem);
      case At::kValues:
        return to(At::kValueItem);
      case At::kValueItem:
        streams.back().entries.emplace_back();
        return to(At::kTimestamp);
      default:
        return fail("an array");
    }
  }

  bool end_array() {
    switch (at_) {
      case At::kStreamItem:
        return to(At::kRootKey);
      case At::kValueItem:
        return to(At::kStreamKey);
      case At::kMetadataOrEnd:
      case At::kValueEnd:
        return to(At::kValueItem);
      default:
        return fail("an array's end");
    }
  }

  bool parse_error(std::size_t position, const std::string& /*token*/,
                   const nlohmann::detail::exception& e) {
    if (error.empty()) error = "at byte " + std::to_string(position) + ": " + e.what();
    return false;
  }

 private:
  bool to(At next) {
    at_ = next;
    return true;
  }
  bool fail(const std::string& what) {
    if (error.empty()) error = "unexpected " + what;
    return false;
  }
  At at_ = At::kRoot;
  bool seen_streams_ = false;
  bool seen_labels_ = false;
  bool seen_values_ = false;
};

}  // namespace

char* writeJsonString(char* out, std::string_view s) {
  *out++ = '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    const unsigned char* const run = p;
    while (p < end && kClass[*p] == 0) ++p;
    if (p != run) {
      std::memcpy(out, run, static_cast<std::size_t>(p - run));
      out += p - run;
    }
    if (p == end) break;
    const unsigned char c = *p;
    if (c < 0x80) {
      *out++ = '\\';
      if (const char e = kShort[c]; e != 0) {
        *out++ = e;
      } else {
        *out++ = 'u';
        *out++ = '0';
        *out++ = '0';
        *out++ = kHex[c >> 4];
        *out++ = kHex[c & 0xf];
      }
      ++p;
      continue;
    }
    const std::size_t n = utf8Length(p, end);
    if (n == 0) {
      // U+FFFD for this byte; the next one is looked at afresh.
      *out++ = '\xef';
      *out++ = '\xbf';
      *out++ = '\xbd';
      ++p;
      continue;
    }
    std::memcpy(out, p, n);
    out += n;
    p += n;
  }
  *out++ = '"';
  return out;
}

void appendJsonString(std::string& out, std::string_view s) {
  appendBounded(out, jsonStringBound(s.size()), [&](char* p) { return writeJsonString(p, s); });
}

bool isLokiJsonBody(std::string_view body) {
  return body.size() >= 2 && static_cast<unsigned char>(body[0]) == 0x1f &&
         static_cast<unsigned char>(body[1]) == 0x8b;
}

std::size_t lokiJsonEntryBound(const LogEntry& entry) {
  // ["<20 digits>",<line>,{...}],
  std::size_t n = 2 + 20 + 2 + jsonStringBound(entry.line.size()) + 2;
  if (!entry.metadata.empty()) {
    n += 3;
    for (const auto& [name, value] : entry.metadata) {
      n += jsonStringBound(name.size()) + jsonStringBound(value.size()) + 2;
    }
  }
  return n;
}

char* writeLokiJsonEntry(char* out, const LogEntry& entry) {
  *out++ = '[';
  *out++ = '"';
  out = std::to_chars(out, out + 20, entry.timestamp_ns).ptr;
  *out++ = '"';
  *out++ = ',';
  out = writeJsonString(out, entry.line);
  if (!entry.metadata.empty()) {
    *out++ = ',';
    *out++ = '{';
    bool first = true;
    for (const auto& [name, value] : entry.metadata) {
      if (!first) *out++ = ',';
      first = false;
      out = writeJsonString(out, name);
      *out++ = ':';
      out = writeJsonString(out, value);
    }
    *out++ = '}';
  }
  *out++ = ']';
  *out++ = ',';
  return out;
}

void LokiJsonWriter::FreeCompressor::operator()(libdeflate_compressor* c) const {
  libdeflate_free_compressor(c);
}

// Level 1: the profile of the JSON path was half zlib at its default level; this is the one
// setting that moves it most (see bench/README.md, "Log path").
LokiJsonWriter::LokiJsonWriter() : compressor_(libdeflate_alloc_compressor(1)) {
  // Only out of memory makes it null; as with any allocation that fails, the agent cannot go on.
  if (!compressor_) std::abort();
}

std::string_view LokiJsonWriter::text(const LogBatch& batch) {
  scratch_.clear();
  scratch_ += kOpen;
  for (std::size_t i = 0; i < batch.streams.size(); ++i) {
    const auto& stream = batch.streams[i];
    if (i != 0) scratch_.push_back(',');
    scratch_ += R"({"stream":)";
    appendLabelsObject(scratch_, stream.labels);
    scratch_ += R"(,"values":[)";
    for (const auto& entry : stream.entries) {
      appendBounded(scratch_, lokiJsonEntryBound(entry),
                    [&](char* p) { return writeLokiJsonEntry(p, entry); });
    }
    if (scratch_.back() == ',') scratch_.pop_back();  // the last entry's
    scratch_ += "]}";
  }
  scratch_ += kClose;
  return scratch_;
}

void LokiJsonWriter::body(const LogBatch& batch, std::string& out) {
  text(batch);
  compress(out);
}

void LokiJsonWriter::body(std::span<const EncodedLogStream> streams, std::string& out) {
  std::size_t total = kOpen.size() + kClose.size();
  for (const auto& stream : streams) {
    total += 32;
    for (const auto piece : stream.entries) total += piece.size();
  }
  scratch_.clear();
  scratch_.reserve(total);
  scratch_ += kOpen;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    if (i != 0) scratch_.push_back(',');
    scratch_ += R"({"stream":)";
    appendLabelsObject(scratch_, *streams[i].labels);
    scratch_ += R"(,"values":[)";
    for (const auto piece : streams[i].entries) scratch_ += piece;
    if (scratch_.back() == ',') scratch_.pop_back();  // the last entry's
    scratch_ += "]}";
  }
  scratch_ += kClose;
  compress(out);
}

void LokiJsonWriter::compress(std::string& out) {
  const std::size_t bound = libdeflate_gzip_compress_bound(compressor_.get(), scratch_.size());
  if (compressed_.size() < bound) compressed_.resize(bound);
  const std::size_t n = libdeflate_gzip_compress(compressor_.get(), scratch_.data(),
                                                 scratch_.size(), compressed_.data(), bound);
  // libdeflate guarantees that the bound is enough.
  if (n == 0) std::abort();
  // As LokiPushWriter::compress: room for a slightly bigger body next time.
  if (out.capacity() < n) out.reserve(n + n / 4);
  out.assign(compressed_.data(), n);
  // A rare huge batch does not keep its buffers for good.
  if (scratch_.capacity() > kMaxKeptBytes) scratch_ = std::string();
  if (compressed_.capacity() > kMaxKeptBytes) compressed_ = std::string();
}

std::expected<std::string, std::string> gunzipBody(std::string_view body) {
  if (body.size() < kGzipMinBytes || !isLokiJsonBody(body)) {
    return std::unexpected("push body is not gzip");
  }
  // ISIZE, the last four bytes (RFC 1952): the size modulo 2^32, so only a hint, checked below.
  const auto* tail = reinterpret_cast<const unsigned char*>(body.data() + body.size() - 4);
  const std::size_t size = std::size_t{tail[0]} | std::size_t{tail[1]} << 8 |
                           std::size_t{tail[2]} << 16 | std::size_t{tail[3]} << 24;
  if (size > kMaxJsonBodyBytes || size > body.size() * kMaxDeflateRatio) {
    return std::unexpected("gzip body states an implausible size " + std::to_string(size));
  }
  struct Free {
    void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
  };
  const std::unique_ptr<libdeflate_decompressor, Free> d(libdeflate_alloc_decompressor());
  if (!d) return std::unexpected("gzip: out of memory");
  std::string out(size, '\0');
  std::size_t in_used = 0;
  std::size_t out_used = 0;
  const auto rc = libdeflate_gzip_decompress_ex(d.get(), body.data(), body.size(), out.data(),
                                                out.size(), &in_used, &out_used);
  if (rc != LIBDEFLATE_SUCCESS) return std::unexpected("gzip body does not decompress");
  if (in_used != body.size() || out_used != size) {
    return std::unexpected("gzip body has trailing bytes or a wrong size");
  }
  return out;
}

std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiJsonText(
    std::string_view json) {
  PushSax sax;
  const bool ok = nlohmann::json::sax_parse(json, &sax, nlohmann::json::input_format_t::json,
                                            /*strict=*/true);
  if (!ok || !sax.done()) {
    return std::unexpected("JSON push body: " + (sax.error.empty() ? "incomplete" : sax.error));
  }
  return std::move(sax.streams);
}

std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiJsonBody(
    std::string_view body) {
  auto text = gunzipBody(body);
  if (!text) return std::unexpected(text.error());
  return decodeLokiJsonText(*text);
}

std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiBody(std::string_view body) {
  return isLokiJsonBody(body) ? decodeLokiJsonBody(body) : decodeLokiPushBody(body);
}

std::size_t LokiJsonBatchEncoder::encodeEntry(const LogEntry& entry, std::span<char> room,
                                              std::string& spill) {
  const std::size_t bound = lokiJsonEntryBound(entry);
  if (bound <= room.size()) {
    return static_cast<std::size_t>(writeLokiJsonEntry(room.data(), entry) - room.data());
  }
  // The bound is six times the line (every byte a \u00XX): most entries near a chunk's end still
  // fit, and are copied there.
  if (spill.size() < bound) spill.resize(bound);
  const auto n = static_cast<std::size_t>(writeLokiJsonEntry(spill.data(), entry) - spill.data());
  if (n <= room.size()) std::memcpy(room.data(), spill.data(), n);
  return n;
}

void LokiJsonBatchEncoder::encodeBody(std::span<const EncodedLogStream> streams, std::string& out) {
  writer_.body(streams, out);
}

std::expected<std::vector<LogBatch::Stream>, std::string> LokiJsonBatchEncoder::decodeBody(
    std::string_view body) const {
  return decodeLokiBody(body);
}

}  // namespace nodewarden
