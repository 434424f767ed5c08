// LokiPushEncoder: LogBatch → PushRequest (protobuf + snappy) or JSON (+ gzip).
//
// Both forms are written by this folder's writers (loki_push_body, loki_json_body); a batch that
// already carries its push body (encoded by the batcher) is sent as it is when it is of this
// encoding, and decoded only when it is of the other.
#include "exporters/loki/loki_encoder.h"

namespace nodewarden {

std::string LokiPushEncoder::protobufBytes(const LogBatch& batch) {
  LokiPushWriter writer;
  return std::string(writer.protobuf(batch));
}

std::string LokiPushEncoder::jsonText(const LogBatch& batch) {
  LokiJsonWriter writer;
  return std::string(writer.text(batch));
}

std::expected<LokiPushBody, std::string> LokiPushEncoder::encode(const LogBatch& batch) {
  const bool json = encoding_ == LokiEncoding::kJson;
  LokiPushBody body;
  body.content_type = json ? "application/json" : "application/x-protobuf";
  if (json) body.content_encoding = "gzip";
  const LogBatch* entries = &batch;
  LogBatch expanded;
  if (!batch.encoded_body.empty()) {
    if (isLokiJsonBody(batch.encoded_body) == json) {
      body.bytes = batch.encoded_body;
      return body;
    }
    auto streams = decodeLokiBody(batch.encoded_body);
    if (!streams) return std::unexpected(streams.error());
    expanded.streams = std::move(*streams);
    entries = &expanded;
  }
  if (json) {
    json_writer_.body(*entries, compressed_);
  } else {
    writer_.body(*entries, compressed_);
  }
  body.bytes = compressed_;
  return body;
}

}  // namespace nodewarden
