// LokiPushEncoder: LogBatch → PushRequest (protobuf + snappy) or JSON (+ gzip).
#include "exporters/loki/loki_encoder.h"

#include <snappy.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include "exporters/loki/push.pb.h"

namespace nodewarden {
namespace {

// Loki's Timestamp: seconds and non-negative nanos, as protobuf requires.
void setTimestamp(google::protobuf::Timestamp& ts, std::int64_t ns) {
  constexpr std::int64_t kNsPerSecond = 1'000'000'000;
  std::int64_t seconds = ns / kNsPerSecond;
  std::int64_t nanos = ns % kNsPerSecond;
  if (nanos < 0) {
    nanos += kNsPerSecond;
    --seconds;
  }
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<std::int32_t>(nanos));
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
  return out;
}

namespace {

void fillRequest(const LogBatch& batch, logproto::PushRequest& request) {
  request.mutable_streams()->Reserve(static_cast<int>(batch.streams.size()));
  for (const auto& stream : batch.streams) {
    logproto::StreamAdapter* out = request.add_streams();
    out->set_labels(formatLokiLabels(stream.labels));
    out->mutable_entries()->Reserve(static_cast<int>(stream.entries.size()));
    for (const auto& entry : stream.entries) {
      logproto::EntryAdapter* e = out->add_entries();
      setTimestamp(*e->mutable_timestamp(), entry.timestamp_ns);
      e->set_line(entry.line);
      for (const auto& [name, value] : entry.metadata) {
        logproto::LabelPairAdapter* pair = e->add_structuredmetadata();
        pair->set_name(name);
        pair->set_value(value);
      }
    }
  }
}

}  // namespace

std::string LokiPushEncoder::protobufBytes(const LogBatch& batch) {
  logproto::PushRequest request;
  fillRequest(batch, request);
  return request.SerializeAsString();
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
    logproto::PushRequest request;
    fillRequest(batch, request);
    request.SerializeToString(&scratch_);
    snappy::Compress(scratch_.data(), scratch_.size(), &body.bytes);
    body.content_type = "application/x-protobuf";
    return body;
  }
  scratch_ = jsonText(batch);
  auto gz = gzipCompress(scratch_);
  if (!gz) return std::unexpected(gz.error());
  body.bytes = std::move(*gz);
  body.content_type = "application/json";
  body.content_encoding = "gzip";
  return body;
}

}  // namespace nodewarden
