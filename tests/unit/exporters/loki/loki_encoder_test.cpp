// LokiPushEncoder: golden bytes for the protobuf form, round trips through the generated classes
// (after snappy) and through nlohmann (after gunzip), and Loki's label-selector escaping.
#include "exporters/loki/loki_encoder.h"

#include <gtest/gtest.h>
#include <snappy.h>

#include <cstdint>
#include <nlohmann/json.hpp>

#include "exporters/loki/push.pb.h"
#include "tests/fakes/fake_loki.h"

namespace nodewarden {
namespace {

using testing::gunzip;
using testing::parseLokiLabels;

LogBatch twoStreams() {
  LogBatch batch;
  batch.streams.push_back(
      {{{"container", "app"}, {"namespace", "shop"}, {"pod", "web-1"}, {"stream", "stdout"}},
       {{1'700'000'000'123'456'789, "GET / 200", {{"pod_uid", "u-1"}, {"filename", "/a/0.log"}}},
        {1'700'000'001'000'000'000, "GET /cart 200", {}}}});
  batch.streams.push_back({{{"job", "backup"}, {"namespace", "ops"}},
                           {{1'700'000'002'000'000'001, "done", {{"container_id", "c-9"}}}}});
  return batch;
}

TEST(LokiLabels, FormatsAsASelector) {
  EXPECT_EQ(formatLokiLabels({{"a", "b"}, {"c", "d"}}), R"({a="b", c="d"})");
  EXPECT_EQ(formatLokiLabels({}), "{}");
  EXPECT_EQ(formatLokiLabels({{"pod", ""}}), R"({pod=""})");
}

TEST(LokiLabels, EscapesLikeGoQuote) {
  const std::string value =
      std::string("say \"hi\" C:\\dir\nnext\ttab\r") + '\x01' + '\x7f' + "ünïcode";
  EXPECT_EQ(formatLokiLabels({{"msg", value}}),
            R"({msg="say \"hi\" C:\\dir\nnext\ttab\r\x01\x7fünïcode"})");
  const auto parsed = parseLokiLabels(formatLokiLabels({{"msg", value}, {"z", "\\\""}}));
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(*parsed, (Labels{{"msg", value}, {"z", "\\\""}}));
}

TEST(LokiLabels, ParserRejectsBrokenSelectors) {
  EXPECT_FALSE(parseLokiLabels(R"({a="b")").has_value());
  EXPECT_FALSE(parseLokiLabels(R"({a=b})").has_value());
  EXPECT_FALSE(parseLokiLabels(R"({a="b", a="c"})").has_value());
  EXPECT_FALSE(parseLokiLabels(R"({a="\q"})").has_value());
  EXPECT_EQ(*parseLokiLabels(R"({ b = "2" , a="\u00fc\x41" })"), (Labels{{"a",
                                                                          "\xc3\xbc"
                                                                          "A"},
                                                                         {"b", "2"}}));
}

TEST(LokiPushEncoder, ProtobufGoldenBytes) {
  LogBatch batch;
  batch.streams.push_back({{{"a", "b"}}, {{1'000'000'002, "x", {}}}});
  // PushRequest{streams: [StreamAdapter{labels: "{a=\"b\"}", entries: [EntryAdapter{
  //   timestamp: {seconds: 1, nanos: 2}, line: "x"}]}]}, field by field.
  const std::string expected = std::string(
      "\x0a\x14"                  // streams, 20 bytes
      "\x0a\x07{a=\"b\"}"         // labels
      "\x12\x09"                  // entries, 9 bytes
      "\x0a\x04\x08\x01\x10\x02"  // timestamp {1 s, 2 ns}
      "\x12\x01x",                // line
      22);
  EXPECT_EQ(LokiPushEncoder::protobufBytes(batch), expected);

  LokiPushEncoder encoder(LokiEncoding::kProtobuf);
  const auto body = encoder.encode(batch);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->content_type, "application/x-protobuf");
  EXPECT_EQ(body->content_encoding, "");
  std::string raw;
  ASSERT_TRUE(snappy::Uncompress(body->bytes.data(), body->bytes.size(), &raw));
  EXPECT_EQ(raw, expected);
}

TEST(LokiPushEncoder, ProtobufRoundTripsThroughGeneratedClasses) {
  LokiPushEncoder encoder(LokiEncoding::kProtobuf);
  const LogBatch batch = twoStreams();
  const auto body = encoder.encode(batch);
  ASSERT_TRUE(body.has_value());
  std::string raw;
  ASSERT_TRUE(snappy::Uncompress(body->bytes.data(), body->bytes.size(), &raw));
  logproto::PushRequest request;
  ASSERT_TRUE(request.ParseFromString(raw));
  ASSERT_EQ(request.streams_size(), 2);
  const auto& web = request.streams(0);
  EXPECT_EQ(web.labels(), R"({container="app", namespace="shop", pod="web-1", stream="stdout"})");
  EXPECT_EQ(web.hash(), 0u);
  ASSERT_EQ(web.entries_size(), 2);
  EXPECT_EQ(web.entries(0).timestamp().seconds(), 1'700'000'000);
  EXPECT_EQ(web.entries(0).timestamp().nanos(), 123'456'789);
  EXPECT_EQ(web.entries(0).line(), "GET / 200");
  ASSERT_EQ(web.entries(0).structuredmetadata_size(), 2);
  EXPECT_EQ(web.entries(0).structuredmetadata(0).name(), "pod_uid");
  EXPECT_EQ(web.entries(0).structuredmetadata(0).value(), "u-1");
  EXPECT_EQ(web.entries(0).structuredmetadata(1).name(), "filename");
  EXPECT_EQ(web.entries(1).structuredmetadata_size(), 0);
  EXPECT_EQ(request.streams(1).labels(), R"({job="backup", namespace="ops"})");
  EXPECT_EQ(request.streams(1).entries(0).timestamp().nanos(), 1);

  // And the fake receiver's decoder, which the exporter tests rely on, agrees.
  const auto decoded = testing::decodeLokiPush(body->content_type, "", body->bytes);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_EQ((*decoded)[0].first, batch.streams[0].labels);
  EXPECT_EQ((*decoded)[0].second, batch.streams[0].entries);
  EXPECT_EQ((*decoded)[1].second, batch.streams[1].entries);
}

// The same request built with the generated classes, as the encoder did before it wrote the wire
// format itself: the reference for byte compatibility.
std::string generatedBytes(const LogBatch& batch) {
  logproto::PushRequest request;
  for (const auto& stream : batch.streams) {
    logproto::StreamAdapter* out = request.add_streams();
    out->set_labels(formatLokiLabels(stream.labels));
    for (const auto& entry : stream.entries) {
      logproto::EntryAdapter* e = out->add_entries();
      std::int64_t seconds = entry.timestamp_ns / 1'000'000'000;
      std::int64_t nanos = entry.timestamp_ns % 1'000'000'000;
      if (nanos < 0) {
        nanos += 1'000'000'000;
        --seconds;
      }
      e->mutable_timestamp()->set_seconds(seconds);
      e->mutable_timestamp()->set_nanos(static_cast<std::int32_t>(nanos));
      e->set_line(entry.line);
      for (const auto& [name, value] : entry.metadata) {
        logproto::LabelPairAdapter* pair = e->add_structuredmetadata();
        pair->set_name(name);
        pair->set_value(value);
      }
    }
  }
  return request.SerializeAsString();
}

TEST(LokiPushEncoder, ProtobufBytesEqualTheGeneratedSerializer) {
  LogBatch batch = twoStreams();
  batch.streams.push_back(
      {{{"edge", "cases"}},
       {{0, "epoch: an empty timestamp message", {}},
        {5, "", {{"", ""}, {"only_name", ""}, {"", "only_value"}}},
        {7'000'000'000, "whole seconds", {}},
        {-1'500'000'000, "before the epoch", {}},
        {INT64_MIN, std::string(200, 'a'), {}},
        {INT64_MAX, std::string(20'000, 'b'), {{"k", std::string(300, 'v')}}}}});
  batch.streams.push_back({{}, {}});  // no labels, no entries
  for (int i = 0; i < 50; ++i) {
    batch.streams.push_back({{{"pod", "p-" + std::to_string(i)}, {"q", "\"\n"}},
                             {{i * 123'456'789LL,
                               std::string(static_cast<std::size_t>(i) * 7, 'x'),
                               {{"i", std::to_string(i)}}}}});
  }
  const std::string expected = generatedBytes(batch);
  EXPECT_EQ(LokiPushEncoder::protobufBytes(batch), expected);
  EXPECT_EQ(LokiPushEncoder::protobufBytes(twoStreams()), generatedBytes(twoStreams()));

  // The encoder reuses its buffers: a large batch, a small one, then the large one again.
  LokiPushEncoder encoder(LokiEncoding::kProtobuf);
  const LogBatch small = twoStreams();
  for (const LogBatch* input : std::initializer_list<const LogBatch*>{&batch, &small, &batch}) {
    const auto body = encoder.encode(*input);
    ASSERT_TRUE(body.has_value());
    std::string raw;
    ASSERT_TRUE(snappy::Uncompress(body->bytes.data(), body->bytes.size(), &raw));
    EXPECT_EQ(raw, generatedBytes(*input));
    logproto::PushRequest parsed;
    ASSERT_TRUE(parsed.ParseFromString(raw));
    EXPECT_EQ(parsed.streams_size(), static_cast<int>(input->streams.size()));
  }
}

TEST(LokiPushEncoder, ProtobufCarriesNonUtf8LinesAndTimesBeforeTheEpoch) {
  LogBatch batch;
  const std::string binary("\xff\xfe\x00raw", 6);
  batch.streams.push_back({{{"a", "b"}}, {{-1, binary, {}}}});
  logproto::PushRequest request;
  ASSERT_TRUE(request.ParseFromString(LokiPushEncoder::protobufBytes(batch)));
  EXPECT_EQ(request.streams(0).entries(0).line(), binary);
  EXPECT_EQ(request.streams(0).entries(0).timestamp().seconds(), -1);
  EXPECT_EQ(request.streams(0).entries(0).timestamp().nanos(), 999'999'999);
}

TEST(LokiPushEncoder, EmptyBatchIsAnEmptyRequest) {
  EXPECT_EQ(LokiPushEncoder::protobufBytes(LogBatch{}), "");
  EXPECT_EQ(nlohmann::json::parse(LokiPushEncoder::jsonText(LogBatch{})),
            nlohmann::json::parse(R"({"streams":[]})"));
}

TEST(LokiPushEncoder, JsonGzipGolden) {
  LokiPushEncoder encoder(LokiEncoding::kJson);
  const auto body = encoder.encode(twoStreams());
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->content_type, "application/json");
  EXPECT_EQ(body->content_encoding, "gzip");
  const auto text = gunzip(body->bytes);
  ASSERT_TRUE(text.has_value()) << text.error();
  EXPECT_EQ(nlohmann::json::parse(*text), nlohmann::json::parse(R"({"streams": [
    {"stream": {"container": "app", "namespace": "shop", "pod": "web-1", "stream": "stdout"},
     "values": [["1700000000123456789", "GET / 200", {"pod_uid": "u-1", "filename": "/a/0.log"}],
                ["1700000001000000000", "GET /cart 200"]]},
    {"stream": {"job": "backup", "namespace": "ops"},
     "values": [["1700000002000000001", "done", {"container_id": "c-9"}]]}]})"));
}

TEST(LokiPushEncoder, JsonReplacesInvalidUtf8InsteadOfFailing) {
  LogBatch batch;
  batch.streams.push_back({{{"a", "b"}}, {{5, std::string("ok\xff"), {}}}});
  const auto doc = nlohmann::json::parse(LokiPushEncoder::jsonText(batch));
  EXPECT_EQ(doc["streams"][0]["values"][0][1], "ok\xef\xbf\xbd");  // U+FFFD
}

TEST(LokiPushEncoder, BatchWithItsPushBodyIsSentAsItIs) {
  LogBatch spooled;
  LokiPushWriter().body(twoStreams(), spooled.encoded_body);
  LokiPushEncoder protobuf(LokiEncoding::kProtobuf);
  const auto body = protobuf.encode(spooled);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->bytes.data(), spooled.encoded_body.data());  // the batch's bytes, not a copy
  EXPECT_EQ(body->content_type, "application/x-protobuf");
  std::string raw;
  ASSERT_TRUE(snappy::Uncompress(body->bytes.data(), body->bytes.size(), &raw));
  EXPECT_EQ(raw, generatedBytes(twoStreams()));

  // JSON decodes it back to the same request as from the streams.
  LokiPushEncoder json(LokiEncoding::kJson);
  const auto from_body = json.encode(spooled);
  ASSERT_TRUE(from_body.has_value());
  const std::string from_body_text = gunzip(from_body->bytes).value();
  const auto from_streams = json.encode(twoStreams());
  ASSERT_TRUE(from_streams.has_value());
  EXPECT_EQ(from_body_text, gunzip(from_streams->bytes).value());
}

TEST(LokiPushEncoder, GzipRoundTrips) {
  LogBatch batch;
  batch.streams.push_back({{{"a", "b"}}, {{1, std::string(100'000, 'z'), {}}}});
  std::string gz;
  LokiJsonWriter().body(batch, gz);
  EXPECT_LT(gz.size(), 1000u);
  EXPECT_EQ(gunzip(gz).value(), LokiPushEncoder::jsonText(batch));
}

}  // namespace
}  // namespace nodewarden
