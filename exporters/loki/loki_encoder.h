// LokiPushEncoder: turns a LogBatch into the body of one POST /loki/api/v1/push, either as
// Loki's protobuf PushRequest compressed with snappy (the block format, as Promtail and Alloy
// send it) or as its JSON form compressed with gzip (exporters/loki/loki_json_body).
//
// What a reader gets wrong: the two encodings spell stream labels differently. Protobuf carries
// them as one LogQL selector string, {a="b", c="d"}, whose values are quoted Go-style (a `"` or
// `\` or control character in a value must be escaped or Loki rejects the whole request with
// 400); JSON carries them as an object. Timestamps are nanoseconds since the epoch in both, as a
// Timestamp message in protobuf and as a decimal string in JSON. The protobuf body is written
// directly in the wire format by exporters/loki/loki_push_body (the same bytes the generated
// SerializeToString writes; the tests check it against the generated classes), usually once, by
// the batcher through the exporter's LokiBatchEncoder (LokiJsonBatchEncoder for JSON): a batch
// that carries its push body (LogBatch::encoded_body) is sent as it is when the body is of this
// encoding, and decoded and encoded again when it is of the other (a spool written before a
// restart with the other config).
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/loki/loki_json_body.h"
#include "exporters/loki/loki_push_body.h"
#include "pipeline/log_record.h"

namespace nodewarden {

enum class LokiEncoding { kProtobuf, kJson };

// One request body and the headers that describe it. `bytes` points into the encoder's buffer: it
// is valid until the encoder's next encode() (the buffer is reused across batches).
struct LokiPushBody {
  std::string_view bytes;
  std::string_view content_type;      // application/x-protobuf or application/json
  std::string_view content_encoding;  // empty (snappy is implied by protobuf) or gzip
};

class LokiPushEncoder {
 public:
  explicit LokiPushEncoder(LokiEncoding encoding) : encoding_(encoding) {}

  [[nodiscard]] LokiEncoding encoding() const { return encoding_; }
  // The compressed body, valid until the next encode() (or, when it is the batch's own push body,
  // while the batch lives). Fails only when a push body of the other encoding does not decode.
  std::expected<LokiPushBody, std::string> encode(const LogBatch& batch);

  // The uncompressed forms, for tests and the fake receiver's round trips.
  static std::string protobufBytes(const LogBatch& batch);
  static std::string jsonText(const LogBatch& batch);

 private:
  LokiEncoding encoding_;
  // Reused across batches, so that a steady stream of batches allocates nothing here.
  LokiPushWriter writer_;
  LokiJsonWriter json_writer_;
  std::string compressed_;  // the body handed out
};

}  // namespace nodewarden
