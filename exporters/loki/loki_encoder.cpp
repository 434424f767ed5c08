// LokiPushEncoder: LogBatch → PushRequest (protobuf + snappy) or JSON (+ gzip).
//
// The protobuf form is loki_push_body's writer; a batch that already carries its push
// body (encoded by the batcher) is sent as it is, and decoded only for the JSON form.
#include "exporters/loki/loki_encoder.h"

#include <snappy.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

namespace nodewarden {

std::string LokiPushEncoder::protobufBytes(const LogBatch& batch) {
  LokiPushWriter writer;
  return std::string(writer.protobuf(batch));
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
    body.content_type = "application/x-protobuf";
    if (!batch.encoded_body.empty()) {
      body.bytes = batch.encoded_body;
      return body;
    }
    writer_.body(batch, compressed_);
    body.bytes = compressed_;
    return body;
  }
  if (!batch.encoded_body.empty()) {
    LogBatch expanded;
    expanded.encoded_body = batch.encoded_body;
    if (auto ok = expandLokiBody(expanded); !ok) return std::unexpected(ok.error());
    scratch_ = jsonText(expanded);
  } else {
    scratch_ = jsonText(batch);
  }
  auto gz = gzipCompress(scratch_);
  if (!gz) return std::unexpected(gz.error());
  compressed_ = std::move(*gz);
  body.bytes = compressed_;
  body.content_type = "application/json";
  body.content_encoding = "gzip";
  return body;
}

}  // namespace nodewarden
