// The Loki push body: a LogBatch's streams as Loki's PushRequest protobuf (grafana/loki
// pkg/push/push.proto, see exporters/loki/push.proto) compressed with snappy's block format, the
// exact body of POST /loki/api/v1/push with Content-Type application/x-protobuf. When the
// destination is Loki's protobuf API, the Loki exporter hands the batcher a LokiBatchEncoder
// (pipeline/log_batch_encoder.h): each batch is encoded into this body once, as its lines come;
// the spool stores those bytes as they are (LogBatch::encoded_body) and the exporter sends them as
// they are, so no stage after the batcher decodes, copies or compresses the entries again.
//
// What a reader gets wrong: the body is the batch's only copy of its entries (`streams` is empty
// then). Whatever needs the entries one by one (splitting a batch Loki refused as too large, a
// JSON or file destination after a restart found such batches in the spool, tests) decodes it with
// LokiBatchEncoder::decodeBody() or expandLokiBody(); that is a cold path. The protobuf is written
// by hand in the wire format (fields in number order, proto3 rules: scalars and strings omitted
// when 0 or empty, the timestamp message always present), byte for byte what the generated
// SerializeToString writes. pipeline/ never sees this format: only this folder and the tests do.
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/log_batch_encoder.h"
#include "pipeline/log_record.h"

namespace nodewarden {

// {a="b", c="d"}: labels in the given order (LogBatch keeps them sorted), values escaped.
std::string formatLokiLabels(const Labels& labels);
// Appends `value` as a double-quoted Go string literal: \" \\ \n \r \t and \xNN for other
// control bytes; everything else (UTF-8 included) as is.
void appendQuotedLabelValue(std::string& out, std::string_view value);
// The inverse of formatLokiLabels (the escapes it writes, \uXXXX besides); fails on anything else.
std::expected<Labels, std::string> parseLokiLabelSelector(std::string_view selector);

// One StreamAdapter.entries field (tag, length, EntryAdapter) of an entry: what a stream's part
// of a push body is made of, for a writer that encodes entries as they come. Measured once, then
// written into exactly size() bytes; the entry must outlive it.
class LokiEntryField {
 public:
  explicit LokiEntryField(const LogEntry& entry);
  [[nodiscard]] std::size_t size() const { return size_; }
  char* write(char* out) const;  // returns out + size()

 private:
  const LogEntry& entry_;
  std::int64_t seconds_;
  std::int32_t nanos_;
  std::size_t payload_;  // the EntryAdapter's bytes
  std::size_t size_;
};

// Appends entry's field to out.
void appendLokiEntryField(std::string& out, const LogEntry& entry);

// Writes push bodies; its buffers are reused, so a steady stream of batches allocates nothing here
// but each body itself (of exactly its size) and snappy's working memory per piece.
//
// What a reader gets wrong: the body is snappy's block format (a length, then literal and copy
// elements), but not byte for byte what snappy::Compress makes of the joined PushRequest: each
// piece is compressed on its own (RawCompress, less its own length) and the elements are joined
// under the total length. Copies then never reach back past their piece, which every decoder
// accepts; no piece is copied together first.
class LokiPushWriter {
 public:
  // The uncompressed PushRequest of batch.streams, valid until the next call.
  std::string_view protobuf(const LogBatch& batch);
  // The snappy-compressed PushRequest of batch.streams into out (replacing it).
  void body(const LogBatch& batch, std::string& out);
  // The same for streams whose entries are encoded already (LokiEntryField, back to back).
  void body(std::span<const EncodedLogStream> streams, std::string& out);

 private:
  void compress(std::size_t total, std::string& out);  // pieces_ (total bytes) into out
  std::string scratch_;
  std::string compressed_;
  std::vector<std::string> labels_;       // each stream's selector
  std::vector<std::uint64_t> sizes_;      // each stream's encoded size
  std::vector<std::string_view> pieces_;  // what compress() reads, in order
};

// The streams of an uncompressed PushRequest / of a snappy-compressed one. Rejects anything
// malformed with a reason (never trusts a length).
std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiPushRequest(
    std::string_view protobuf);
std::expected<std::vector<LogBatch::Stream>, std::string> decodeLokiPushBody(std::string_view body);

// Moves batch.encoded_body (of either encoding) back into batch.streams (nothing happens without
// a body).
std::expected<void, std::string> expandLokiBody(LogBatch& batch);

// The batcher's hook for Loki's protobuf API (LokiExporter::batchEncoder): entries as
// LokiEntryField, bodies by LokiPushWriter. One per batcher (its buffers are reused, so it is not
// for two threads); decodeBody() has no state and serves any thread. It reads the JSON API's
// bodies too (loki_json_body.h, decodeLokiBody): the agent decodes every spooled body with this
// one, whichever encoding wrote it.
class LokiBatchEncoder final : public LogBatchEncoder {
 public:
  std::size_t encodeEntry(const LogEntry& entry, std::span<char> room, std::string& spill) override;
  void encodeBody(std::span<const EncodedLogStream> streams, std::string& out) override;
  [[nodiscard]] std::expected<std::vector<LogBatch::Stream>, std::string> decodeBody(
      std::string_view body) const override;

 private:
  LokiPushWriter writer_;
};

}  // namespace nodewarden
