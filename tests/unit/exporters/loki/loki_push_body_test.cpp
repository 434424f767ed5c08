// Loki push body: streams -> PushRequest + snappy -> streams gives the same batch back, for
// every shape of entry the pipeline produces; the selector parser takes back what the writer
// escapes and refuses what it does not write. (The bytes against the generated protobuf classes
// are checked in tests/unit/exporters/loki.)
//
// What a reader gets wrong: the decoder serves the cold paths (413 splits, another destination
// after a restart), so a mismatch here is a silent change of what Loki receives after a replay.
#include "exporters/loki/loki_push_body.h"

#include <gtest/gtest.h>
#include <snappy.h>

#include <span>
#include <string>
#include <vector>

namespace nodewarden {
namespace {

LogBatch variedStreams() {
  LogBatch batch;
  batch.streams.push_back(
      {{{"container", "app"}, {"namespace", "shop"}, {"pod", "web-1"}, {"stream", "stdout"}},
       {{1'700'000'000'123'456'789, "GET / 200", {{"filename", "/a/0.log"}, {"pod_uid", "u-1"}}},
        {1'700'000'001'000'000'000, "", {}},
        {-1'500'000'001, std::string("bin\0ary\xff", 8), {{"truncated", "true"}}},
        {0, "epoch", {{"", ""}, {"k", ""}}}}});
  batch.streams.push_back(
      {{{"msg", std::string("say \"hi\" C:\\dir\nnext\ttab\r") + '\x01' + '\x7f' + "ünïcode"}},
       {{42, std::string(300, 'x'), {{"container_id", "c-9"}}}}});
  batch.streams.push_back({{}, {{7, "no labels at all", {}}}});
  return batch;
}

TEST(LokiPushBody, RoundTripsEveryShape) {
  const LogBatch batch = variedStreams();
  LokiPushWriter writer;
  std::string body;
  writer.body(batch, body);
  std::string raw;
  ASSERT_TRUE(snappy::Uncompress(body.data(), body.size(), &raw));
  EXPECT_EQ(raw, writer.protobuf(batch));
  const auto streams = decodeLokiPushBody(body);
  ASSERT_TRUE(streams.has_value()) << streams.error();
  EXPECT_EQ(*streams, batch.streams);
}

TEST(LokiPushBody, ExpandMovesTheBodyBackIntoStreams) {
  const LogBatch original = variedStreams();
  LogBatch batch;
  LokiPushWriter().body(original, batch.encoded_body);
  batch.lines = 6;
  ASSERT_TRUE(expandLokiBody(batch).has_value());
  EXPECT_TRUE(batch.encoded_body.empty());
  EXPECT_EQ(batch.streams, original.streams);
  EXPECT_EQ(batch.lines, 6U);
  EXPECT_TRUE(expandLokiBody(batch).has_value());  // nothing to do
  EXPECT_EQ(batch.streams, original.streams);
}

TEST(LokiPushBody, WriterReusesItsBuffersAcrossBatches) {
  LokiPushWriter writer;
  const std::string big(writer.protobuf(variedStreams()));
  LogBatch small;
  small.streams.push_back({{{"a", "b"}}, {{1'000'000'002, "x", {}}}});
  EXPECT_EQ(writer.protobuf(small), std::string("\x0a\x14\x0a\x07{a=\"b\"}\x12\x09\x0a\x04\x08\x01"
                                                "\x10\x02\x12\x01x",
                                                22));
  EXPECT_EQ(writer.protobuf(variedStreams()), big);
  EXPECT_EQ(writer.protobuf(LogBatch{}), "");
}

// The batcher's path: entries encoded per stream as they arrive, in pieces cut anywhere (inside
// a field too), the body compressed piece by piece without joining them first. It must be valid
// snappy that decompresses to exactly the PushRequest of the same batch written whole, also when
// pieces are empty, tiny, or longer than snappy's 64 KiB blocks.
TEST(LokiPushBody, EncodedStreamsInPiecesGiveThePushRequestOfTheWholeBatch) {
  LogBatch batch = variedStreams();
  LogBatch::Stream big{{{"pod", "big"}}, {}};
  for (int i = 0; i < 3000; ++i) {
    big.entries.push_back({1'700'000'000'000'000'000 + i,
                           std::string(40 + (i * 37) % 300, 'a' + i % 26),
                           {{"filename", "/var/log/pods/x/0.log"}}});
  }
  batch.streams.insert(batch.streams.begin() + 1, big);
  std::vector<std::string> encoded(batch.streams.size());
  for (std::size_t i = 0; i < batch.streams.size(); ++i) {
    for (const auto& entry : batch.streams[i].entries) appendLokiEntryField(encoded[i], entry);
  }
  ASSERT_GT(encoded[1].size(), 3U * 65536);
  LokiPushWriter writer;
  std::string whole;
  writer.body(batch, whole);
  std::string expected;
  ASSERT_TRUE(snappy::Uncompress(whole.data(), whole.size(), &expected));
  EXPECT_EQ(expected, writer.protobuf(batch));

  // Cut points: whole streams, a few bytes, odd sizes, exactly 64 KiB, more than 64 KiB.
  for (const std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{1000},
                                std::size_t{65536}, std::size_t{70001}}) {
    SCOPED_TRACE(cut);
    std::vector<std::vector<std::string_view>> pieces(encoded.size());
    std::vector<EncodedLogStream> streams;
    for (std::size_t i = 0; i < encoded.size(); ++i) {
      std::string_view rest = encoded[i];
      if (i == 0) pieces[i].emplace_back();  // an empty piece
      while (!rest.empty()) {
        const std::size_t n = cut == 0 ? rest.size() : std::min(cut, rest.size());
        pieces[i].push_back(rest.substr(0, n));
        rest.remove_prefix(n);
      }
      streams.push_back({&batch.streams[i].labels, pieces[i]});
    }
    std::string body;
    for (int again = 0; again < 2; ++again) {  // again with the writer's buffers in use
      writer.body(streams, body);
      ASSERT_TRUE(snappy::IsValidCompressedBuffer(body.data(), body.size()));
      std::string raw;
      ASSERT_TRUE(snappy::Uncompress(body.data(), body.size(), &raw));
      EXPECT_EQ(raw, expected);
      auto decoded = decodeLokiPushBody(body);
      ASSERT_TRUE(decoded.has_value()) << decoded.error();
      EXPECT_EQ(*decoded, batch.streams);
    }
    // In pieces of a block or more (as the batcher cuts them), it compresses as well as snappy
    // does the whole, within a tenth (tiny pieces cannot: each is compressed on its own).
    if (cut == 0 || cut >= 65536) {
      EXPECT_LT(body.size(), whole.size() + whole.size() / 10);
    }
  }

  LogBatch one;
  one.streams.push_back({{{"a", "b"}}, {{1'000'000'002, "x", {}}}});
  std::string one_encoded;
  appendLokiEntryField(one_encoded, one.streams[0].entries[0]);
  const std::vector<std::string_view> one_pieces{one_encoded};
  const EncodedLogStream one_stream{&one.streams[0].labels, one_pieces};
  std::string body;
  writer.body(std::span(&one_stream, 1), body);
  auto decoded = decodeLokiPushBody(body);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_EQ(*decoded, one.streams);
  // No stream at all: an empty PushRequest.
  writer.body(std::span<const EncodedLogStream>(), body);
  decoded = decodeLokiPushBody(body);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_TRUE(decoded->empty());
}

TEST(LokiPushBody, RejectsMalformedBodies) {
  EXPECT_FALSE(decodeLokiPushBody("not snappy at all").has_value());
  std::string raw(LokiPushWriter().protobuf(variedStreams()));
  for (std::size_t cut = 1; cut < raw.size(); cut += 7) {
    // A cut inside a length-delimited field is always caught; one at a field boundary is not
    // (protobuf has no end marker), which the spool's checksum covers.
    const auto r = decodeLokiPushRequest(std::string_view(raw).substr(0, cut));
    if (r.has_value()) {
      EXPECT_LE(r->size(), 3U);
    }
  }
  EXPECT_FALSE(decodeLokiPushRequest(std::string("\x0a\x05\x0a\x03{a", 7)).has_value());
  EXPECT_FALSE(decodeLokiPushRequest(std::string("\x0a\xff\xff\xff\xff\x0f", 6)).has_value());
}

TEST(LokiPushBody, SelectorParserTakesBackWhatTheWriterEscapes) {
  for (const Labels& labels :
       {Labels{}, Labels{{"a", "b"}, {"c", "d"}}, Labels{{"pod", ""}},
        Labels{{"msg", std::string("q\"b\\n\nr\rt\t") + '\x00' + '\x1f' + '\x7f' + "é"}}}) {
    const auto parsed = parseLokiLabelSelector(formatLokiLabels(labels));
    ASSERT_TRUE(parsed.has_value()) << parsed.error();
    EXPECT_EQ(*parsed, labels);
  }
  EXPECT_EQ(*parseLokiLabelSelector(R"({a="\u00fc\x41"})"), (Labels{{"a",
                                                                     "\xc3\xbc"
                                                                     "A"}}));
  for (const char* bad : {"", "a", "{", "{a}", R"({a="b")", R"({a=b})", R"({a="\q"})",
                          R"({a="b"} )", R"({a="b",})", R"({="b"})", "{} x"}) {
    EXPECT_FALSE(parseLokiLabelSelector(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace nodewarden
