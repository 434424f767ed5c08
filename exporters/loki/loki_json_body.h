// The Loki JSON push body: a LogBatch's streams as the JSON form of POST /loki/api/v1/push
// ({"streams":[{"stream":{labels},"values":[["<ns>","<line>",{metadata}?],...]},...]}), gzipped
// (Content-Encoding: gzip) with libdeflate at its fastest level. When the destination is Loki's
// JSON API the exporter hands the batcher a LokiJsonBatchEncoder, the JSON twin of the protobuf
// LokiBatchEncoder (loki_push_body.h): each entry is written as JSON once, as its line comes; the
// batch is closed as one gzip body (LogBatch::encoded_body), the spool stores it as it is (it is
// compressed already, so no zstd) and the exporter posts it as it is.
//
// What a reader gets wrong: a spool may hold bodies of both kinds (written with one encoding,
// read after a restart with the other), and its records do not say which encoder wrote a body.
// The bytes do: a JSON body is a gzip member (1f 8b 08 ...), which no protobuf body can start
// with (a snappy block starts with its length's varint, and a varint byte 0x1f followed by 0x8b
// would make the first element a copy, which snappy forbids: there is nothing to copy from yet).
// decodeLokiBody() reads either, so both encoders' decodeBody() do, and the exporter re-encodes
// only a body of the other kind. Log lines need not be UTF-8: invalid bytes are written as U+FFFD
// (one per byte, as Go's encoding/json does), so Loki never rejects a batch over one line.
#pragma once

#include <cstddef>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/log_batch_encoder.h"
#include "pipeline/log_record.h"

struct libdeflate_compressor;

namespace nodewarden {

// The most bytes appendJsonString/writeJsonString may write for n input bytes (quotes included):
// a control byte becomes \u00XX.
constexpr std::size_t jsonStringBound(std::size_t n) { return 6 * n + 2; }
// Writes `s` as a double-quoted JSON string (RFC 8259: `"` `\` and control bytes escaped, \b \f
// \n \r \t short; invalid UTF-8 as U+FFFD) at out, which has room for jsonStringBound(s.size())
// bytes; returns the end.
char* writeJsonString(char* out, std::string_view s);
void appendJsonString(std::string& out, std::string_view s);

// Whether a push body is the gzipped JSON form (else it is snappy-compressed protobuf).
bool isLokiJsonBody(std::string_view body);

// Writes JSON push bodies; its buffers and its compressor are reused, so a steady stream of
// batches allocates nothing here but each body itself.
class LokiJsonWriter {
 public:
  LokiJsonWriter();
  // The uncompressed JSON of batch.streams, valid until the next call.
  std::string_view text(const LogBatch& batch);
  // The gzipped JSON of batch.streams into out (replacing it).
  void body(const LogBatch& batch, std::string& out);
  // The same for streams whose entries are encoded already (LokiJsonEntry's bytes back to back:
  // each entry ends with a comma, which the last one of a stream loses here).
  void body(std::span<const EncodedLogStream> streams, std::string& out);

 private:
  void compress(std::string& out);  // scratch_ into out
  // Buffers past this (a batch far above the default batch_bytes) are let go after use.
  static constexpr std::size_t kMaxKeptBytes = 8 << 20;
  struct FreeCompressor {
    void operator()(libdeflate_compressor* c) const;
  };
  std::unique_ptr<libdeflate_compressor, FreeCompressor> compressor_;
  std::string scratch_;
  std::string compressed_;
};

// Writes one entry as its JSON value followed by a comma: ["<ns>","<line>",{"k":"v"}],
// (metadata only when there is some). The most bytes it can take, then the write: returns the end.
std::size_t lokiJsonEntryBound(const LogEntry& entry);
char* writeLokiJsonEntry(char* out, const LogEntry& entry);

// The streams of an uncompressed JSON push request / of a gzipped one. Strict: only the shape
// the writer makes (any JSON whitespace allowed), every string valid UTF-8; anything else is
// rejected with a reason. The gzip member's stated size is trusted only up to kMaxJsonBodyBytes
// and deflate's largest ratio.
inline constexpr std::size_t kMaxJsonBodyBytes = 256 << 20;
std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiJsonText(std::string_view json);
std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiJsonBody(std::string_view body);
// gunzip of one gzip member, bounded as above.
std::expected<std::string, std::string> gunzipBody(std::string_view body);

// Either kind of push body (isLokiJsonBody decides).
std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiBody(std::string_view body);

// The batcher's hook for Loki's JSON API (LokiExporter::batchEncoder with the json encoding). One
// per batcher (its buffers are reused); decodeBody() reads both kinds of body and has no state.
class LokiJsonBatchEncoder final : public LogBatchEncoder {
 public:
  std::size_t encodeEntry(const LogEntry& entry, std::span<char> room, std::string& spill) override;
  void encodeBody(std::span<const EncodedLogStream> streams, std::string& out) override;
  [[nodiscard]] std::expected<std::vector<LogBatch::Stream>, std::string> decodeBody(
      std::string_view body) const override;

 private:
  LokiJsonWriter writer_;
};

}  // namespace nodewarden
