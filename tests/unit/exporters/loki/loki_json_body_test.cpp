// The JSON push body (loki_json_body): the escaper against RFC 8259 and Unicode's well-formed
// table, bodies against an independent gunzip (zlib, the fake's) and nlohmann, the strict decoder
// against its own writer and against damage, and the spool with both encodings: a spool written by
// the batcher with one encoding, read back after a reopen and sent with the other, loses nothing.
#include "exporters/loki/loki_json_body.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <snappy.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "exporters/loki/loki_encoder.h"
#include "exporters/loki/loki_push_body.h"
#include "pipeline/log_batcher.h"
#include "pipeline/spool.h"
#include "tests/fakes/fake_loki.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using testing::gunzip;

std::string jsonQuoted(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

LogBatch twoStreams() {
  LogBatch batch;
  batch.streams.push_back(
      {{{"container", "app"}, {"namespace", "shop"}, {"pod", "web-1"}, {"stream", "stdout"}},
       {{1'700'000'000'123'456'789, "GET / 200", {{"pod_uid", "u-1"}, {"filename", "/a/0.log"}}},
        {1'700'000'001'000'000'000, "tab\there \"quoted\" back\\slash\x01 caf\xc3\xa9", {}}}});
  batch.streams.push_back({{{"job", "backup"}, {"namespace", "ops"}},
                           {{-5, "before the epoch", {{"container_id", "c-9"}}}}});
  return batch;
}

TEST(JsonString, EscapesEveryControlCharacter) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string in(1, static_cast<char>(c));
    std::string want;
    switch (c) {
      case '\b':
        want = R"("\b")";
        break;
      case '\f':
        want = R"("\f")";
        break;
      case '\n':
        want = R"("\n")";
        break;
      case '\r':
        want = R"("\r")";
        break;
      case '\t':
        want = R"("\t")";
        break;
      default: {
        char buf[16];
        std::snprintf(buf, sizeof buf, "\"\\u%04x\"", c);
        want = buf;
      }
    }
    EXPECT_EQ(jsonQuoted(in), want) << "byte " << c;
    EXPECT_EQ(nlohmann::json::parse(jsonQuoted(in)).get<std::string>(), in) << "byte " << c;
  }
  EXPECT_EQ(jsonQuoted("\"\\"), R"("\"\\")");
  // DEL, '/' and printable ASCII need nothing (RFC 8259 section 7).
  EXPECT_EQ(jsonQuoted("\x7f/ az~"), "\"\x7f/ az~\"");
}

TEST(JsonString, ValidUtf8PassesAndEachInvalidByteBecomesReplacement) {
  const std::string fffd = "\xef\xbf\xbd";
  // 2, 3 and 4 byte sequences, the edges of each range.
  for (const std::string ok :
       {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf",
        "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e"}) {
    EXPECT_EQ(jsonQuoted(ok), "\"" + ok + "\"");
  }
  const std::pair<std::string, int> bad[] = {
      {"\xff", 1},              // never in UTF-8
      {"\x80", 1},              // a lone continuation byte
      {"\xc0\xaf", 2},          // overlong '/'
      {"\xc1\xbf", 2},          // overlong
      {"\xe0\x80\xaf", 3},      // overlong, 3 bytes
      {"\xed\xa0\x80", 3},      // a surrogate (U+D800)
      {"\xf0\x80\x80\xaf", 4},  // overlong, 4 bytes
      {"\xf4\x90\x80\x80", 4},  // past U+10FFFF
      {"\xf5\x80\x80\x80", 4},  // no such lead byte
      {"\xe2\x82", 2},          // cut short at the end
      {"\xf0\x9d\x84", 3},      // cut short at the end
  };
  for (const auto& [in, n] : bad) {
    std::string want = "\"";
    for (int i = 0; i < n; ++i) want += fffd;
    want += "\"";
    EXPECT_EQ(jsonQuoted(in), want)
        << nlohmann::json(std::vector<std::uint8_t>(in.begin(), in.end()));
  }
  // Cut short before a good byte: the good byte is kept.
  EXPECT_EQ(jsonQuoted("\xe2\x82x"), "\"" + fffd + fffd + "x\"");
  // Whatever the bytes, the result is JSON that a strict parser (nlohmann checks UTF-8) takes.
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string in(rng() % 40, '\0');
    for (auto& c : in) c = static_cast<char>(rng());
    const std::string out = jsonQuoted(in);
    EXPECT_LE(out.size(), jsonStringBound(in.size()));
    EXPECT_TRUE(nlohmann::json::accept(out)) << out;
  }
}

TEST(LokiJsonWriter, BodyIsGzippedJsonOfTheStreams) {
  std::string body;
  LokiJsonWriter().body(twoStreams(), body);
  ASSERT_TRUE(isLokiJsonBody(body));
  const auto text = gunzip(body);  // zlib: an independent decoder
  ASSERT_TRUE(text.has_value()) << text.error();
  EXPECT_EQ(nlohmann::json::parse(*text), nlohmann::json::parse(R"({"streams": [
    {"stream": {"container": "app", "namespace": "shop", "pod": "web-1", "stream": "stdout"},
     "values": [["1700000000123456789", "GET / 200", {"pod_uid": "u-1", "filename": "/a/0.log"}],
                ["1700000001000000000", "tab\there \"quoted\" back\\slash\u0001 café"]]},
    {"stream": {"job": "backup", "namespace": "ops"},
     "values": [["-5", "before the epoch", {"container_id": "c-9"}]]}]})"));
  // Metadata only where there is some: the second entry is a pair.
  EXPECT_EQ(nlohmann::json::parse(*text)["streams"][0]["values"][1].size(), 2u);
}

TEST(LokiJsonWriter, RoundTripsThroughTheDecoder) {
  std::string body;
  LokiJsonWriter().body(twoStreams(), body);
  const auto streams = decodeLokiJsonBody(body);
  ASSERT_TRUE(streams.has_value()) << streams.error();
  EXPECT_EQ(*streams, twoStreams().streams);
  // Loki's decoder (the agent's, for spooled bodies) reads it too.
  const auto via_loki = LokiBatchEncoder().decodeBody(body);
  ASSERT_TRUE(via_loki.has_value()) << via_loki.error();
  EXPECT_EQ(*via_loki, twoStreams().streams);
  LogBatch empty;
  LokiJsonWriter().body(empty, body);
  EXPECT_EQ(gunzip(body).value(), R"({"streams":[]})");
  EXPECT_TRUE(decodeLokiJsonBody(body).value().empty());
}

// The batcher's way: entries into chunk-sized rooms (some too small: the spill), the stream's
// bytes then cut into pieces anywhere, the body of the pieces.
TEST(LokiJsonBatchEncoder, EntriesCutAcrossPiecesMakeTheSameBody) {
  LokiJsonBatchEncoder encoder;
  const LogBatch batch = twoStreams();
  std::vector<std::string> encoded;
  for (const auto& stream : batch.streams) {
    std::string bytes;
    for (const auto& entry : stream.entries) {
      std::array<char, 4096> room{};
      std::string spill;
      const std::size_t n = encoder.encodeEntry(entry, room, spill);
      ASSERT_LE(n, room.size());
      bytes.append(room.data(), n);
      // With a room too small the entry is in the spill.
      std::array<char, 8> small{};
      const std::size_t m = encoder.encodeEntry(entry, small, spill);
      ASSERT_GT(m, small.size());
      EXPECT_EQ(spill.substr(0, m), std::string(room.data(), n));
    }
    encoded.push_back(bytes);
  }
  for (std::size_t cut = 1; cut < encoded[0].size(); cut += 7) {
    std::vector<std::string_view> pieces;
    const std::string_view a = encoded[0];
    pieces.push_back(a.substr(0, cut));
    pieces.push_back(a.substr(cut));
    pieces.push_back(encoded[1]);
    const EncodedLogStream streams[] = {
        {&batch.streams[0].labels, std::span<const std::string_view>(pieces).subspan(0, 2)},
        {&batch.streams[1].labels, std::span<const std::string_view>(pieces).subspan(2, 1)}};
    std::string body;
    encoder.encodeBody(streams, body);
    const auto decoded = encoder.decodeBody(body);
    ASSERT_TRUE(decoded.has_value()) << decoded.error();
    EXPECT_EQ(*decoded, batch.streams) << "cut at " << cut;
  }
}

TEST(LokiJsonDecoder, RejectsWhatTheWriterNeverMakes) {
  const char* const bad[] = {
      "",
      "[]",
      "{}",
      R"({"streams":{}})",
      R"({"streams":[],"streams":[]})",
      R"({"streams":[],"x":1})",
      R"({"streams":[{"stream":{}}]})",
      R"({"streams":[{"values":[]}]})",
      R"({"streams":[{"stream":{"a":1},"values":[]}]})",
      R"({"streams":[{"stream":{},"values":[[1,"x"]]}]})",
      R"({"streams":[{"stream":{},"values":[["12x","x"]]}]})",
      R"({"streams":[{"stream":{},"values":[["99999999999999999999","x"]]}]})",
      R"({"streams":[{"stream":{},"values":[["1"]]}]})",
      R"({"streams":[{"stream":{},"values":[["1","x",{},{}]]}]})",
      R"({"streams":[{"stream":{},"values":[["1","x",{"k":null}]]}]})",
      R"({"streams":[{"stream":{},"values":[["1","x"]]}]} trailing)",
      R"({"streams":[{"stream":{},"values":[["1","x)",
      "{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"\xff\"]]}]}",
  };
  for (const char* text : bad) {
    EXPECT_FALSE(decodeLokiJsonText(text).has_value()) << text;
  }
  // Whitespace and key order are JSON's business, not a reason to refuse.
  const auto ok = decodeLokiJsonText(
      R"( { "streams" : [ { "values" : [ [ "7" , "x" , { "k" : "v" } ] ] , "stream" : { "a" : "b" } } ] } )");
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(*ok, (std::vector<LogBatch::Stream>{{{{"a", "b"}}, {{7, "x", {{"k", "v"}}}}}}));
}

TEST(LokiJsonDecoder, RejectsDamagedGzip) {
  std::string body;
  LokiJsonWriter().body(twoStreams(), body);
  EXPECT_FALSE(decodeLokiJsonBody(body.substr(0, body.size() - 1)).has_value());
  EXPECT_FALSE(decodeLokiJsonBody(body + "x").has_value());
  std::string flipped = body;
  flipped[body.size() / 2] = static_cast<char>(flipped[body.size() / 2] ^ 0x55);
  EXPECT_FALSE(decodeLokiJsonBody(flipped).has_value());
  // A stated size no deflate stream of this length can have: refused before any allocation.
  std::string huge = body;
  huge[huge.size() - 1] = '\x7f';
  const auto r = gunzipBody(huge);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("implausible"), std::string::npos) << r.error();
  EXPECT_FALSE(decodeLokiJsonBody("\x1f\x8b").has_value());
}

// Whatever a damaged body holds (bytes flipped, cut, repeated; in the JSON text and in the gzip),
// the decoder either refuses it with a reason or returns streams that the writer writes back to
// the same streams. Deterministic (a fixed seed); tests/fuzz/fuzz_loki_body explores further.
TEST(LokiJsonDecoder, DamagedBodiesAreRefusedOrDecodeToWhatTheWriterTakesBack) {
  const std::string text(LokiPushEncoder::jsonText(twoStreams()));
  std::string gz;
  LokiJsonWriter writer;
  writer.body(twoStreams(), gz);
  std::mt19937 rng(3);
  int decoded = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string damaged = round % 2 == 0 ? text : gz;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !damaged.empty(); ++e) {
      const std::size_t at = rng() % damaged.size();
      switch (rng() % 3) {
        case 0:
          damaged[at] = static_cast<char>(rng());
          break;
        case 1:
          damaged.erase(at, 1 + rng() % 8);
          break;
        default:
          damaged.insert(at, damaged.substr(at, 1 + rng() % 8));
      }
    }
    const auto streams = round % 2 == 0 ? decodeLokiJsonText(damaged) : decodeLokiJsonBody(damaged);
    if (!streams) {
      EXPECT_FALSE(streams.error().empty());
      continue;
    }
    ++decoded;
    LogBatch again;
    again.streams = *streams;
    std::string body;
    writer.body(again, body);
    EXPECT_EQ(decodeLokiJsonBody(body).value(), *streams) << damaged;
  }
  EXPECT_GT(decoded, 0);  // some damage (inside a line) still decodes
}

TEST(LokiPushBodyKinds, NoProtobufBodyLooksLikeJson) {
  std::string protobuf;
  LokiPushWriter().body(twoStreams(), protobuf);
  EXPECT_FALSE(isLokiJsonBody(protobuf));
  // A protobuf of exactly 31 bytes is the one whose snappy body starts with 0x1f: its next byte is
  // a literal's tag, never 0x8b.
  LogBatch small;
  for (int n = 0; n < 40; ++n) {
    small.streams = {{{{"a", "b"}}, {{1, std::string(static_cast<std::size_t>(n), 'x'), {}}}}};
    LokiPushWriter().body(small, protobuf);
    EXPECT_FALSE(isLokiJsonBody(protobuf)) << n;
    EXPECT_EQ(decodeLokiBody(protobuf).value(), small.streams);
  }
}

// A protobuf body whose snappy length says gigabytes (found by fuzz_loki_body): refused before
// snappy allocates it.
TEST(LokiPushBodyKinds, ProtobufBodyWithAnImplausibleLengthIsRefused) {
  const std::string body("\xff\xff\xff\xff\x09\x00\x5d\xcc\x5d\x5d\x5d\x5d\x5d\x5d\x5d\x00\x16\x7d",
                         18);
  const auto r = decodeLokiBody(body);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("implausible"), std::string::npos) << r.error();
}

TEST(LokiPushEncoder, BodyOfTheOtherEncodingIsDecodedAndSentInThisOne) {
  LogBatch json_spooled;
  LokiJsonWriter().body(twoStreams(), json_spooled.encoded_body);
  LogBatch protobuf_spooled;
  LokiPushWriter().body(twoStreams(), protobuf_spooled.encoded_body);

  LokiPushEncoder json(LokiEncoding::kJson);
  auto same = json.encode(json_spooled);
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->bytes.data(), json_spooled.encoded_body.data());  // as it is
  EXPECT_EQ(same->content_type, "application/json");
  EXPECT_EQ(same->content_encoding, "gzip");
  auto converted = json.encode(protobuf_spooled);
  ASSERT_TRUE(converted.has_value()) << converted.error();
  EXPECT_EQ(converted->content_encoding, "gzip");
  EXPECT_EQ(decodeLokiJsonBody(converted->bytes).value(), twoStreams().streams);

  LokiPushEncoder protobuf(LokiEncoding::kProtobuf);
  auto as_is = protobuf.encode(protobuf_spooled);
  ASSERT_TRUE(as_is.has_value());
  EXPECT_EQ(as_is->bytes.data(), protobuf_spooled.encoded_body.data());
  auto back = protobuf.encode(json_spooled);
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(back->content_type, "application/x-protobuf");
  EXPECT_TRUE(back->content_encoding.empty());
  EXPECT_FALSE(isLokiJsonBody(back->bytes));
  EXPECT_EQ(decodeLokiPushBody(back->bytes).value(), twoStreams().streams);
}

// ---- the spool, written with one encoding and read with the other ----

class JsonSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nodewarden-json-spool-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<Spool> openSpool() {
    SpoolOptions so;
    so.dir = dir_ / "spool";
    so.fsync = false;
    auto spool = Spool::open(so, errors_);
    EXPECT_TRUE(spool.has_value()) << spool.error();
    return spool ? std::move(*spool) : nullptr;
  }

  // Lines of three streams through a batcher with this encoder into a fresh spool, which is
  // then closed. Returns what went in, stream by stream in first-seen order.
  std::vector<LogBatch::Stream> writeWith(std::shared_ptr<LogBatchEncoder> encoder) {
    auto spool = openSpool();
    LogBatcherOptions o;
    o.encoder = std::move(encoder);
    o.batch_bytes = 64 << 20;
    LogBatcher batcher(o, *spool, nullptr, registry_, errors_);
    std::vector<LogBatch::Stream> want(3);
    std::mt19937 rng(11);
    for (int n = 0; n < 3000; ++n) {
      auto& s = want[static_cast<std::size_t>(n % 3)];
      s.labels = {{"namespace", "ns"}, {"pod", "p" + std::to_string(n % 3)}};
      // Long lines (past a 64 KiB chunk now and then), quotes, control bytes, valid UTF-8.
      std::string line = "line " + std::to_string(n) + " \"q\" \\ \t\x01 \xc3\xa9 ";
      line.append(n % 500 == 0 ? 70'000 : rng() % 300, static_cast<char>('a' + n % 26));
      LogEntry entry{1'700'000'000'000'000'000 + n, line, {}};
      if (n % 5 == 0) entry.metadata = {{"trace_id", std::to_string(n)}};
      s.entries.push_back(entry);
      LogCheckpoint cp;
      cp.source = "/var/log/pods/" + std::to_string(n % 3);
      cp.offset = static_cast<std::uint64_t>(n);
      EXPECT_TRUE(batcher.accept(s.labels, entry, cp));
    }
    EXPECT_TRUE(batcher.flush(true));
    return want;
  }

  // The one batch in the reopened spool, and the segment files' bytes.
  std::shared_ptr<const LogBatch> readBack(std::string& files) {
    auto spool = openSpool();
    auto batch = spool->front();
    for (const auto& f : fs::directory_iterator(dir_ / "spool")) {
      if (f.path().extension() != ".seg") continue;
      std::ifstream in(f.path(), std::ios::binary);
      files.append(std::istreambuf_iterator<char>(in), {});
    }
    return batch;
  }

  fs::path dir_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
};

TEST_F(JsonSpoolTest, JsonBodiesAreStoredAsTheyAreAndSentWithEitherEncoding) {
  const auto want = writeWith(std::make_shared<LokiJsonBatchEncoder>());
  std::string files;
  const auto batch = readBack(files);
  ASSERT_NE(batch, nullptr);
  ASSERT_TRUE(isLokiJsonBody(batch->encoded_body));
  EXPECT_EQ(batch->lines, 3000u);
  // Not compressed again: the gzip body is in the segment file byte for byte.
  EXPECT_NE(files.find(batch->encoded_body), std::string::npos);

  LokiPushEncoder json(LokiEncoding::kJson);
  const auto same = json.encode(*batch);
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->bytes.data(), batch->encoded_body.data());
  EXPECT_EQ(decodeLokiJsonBody(same->bytes).value(), want);

  // Restarted with protobuf: the same entries, as protobuf.
  LokiPushEncoder protobuf(LokiEncoding::kProtobuf);
  const auto other = protobuf.encode(*batch);
  ASSERT_TRUE(other.has_value()) << other.error();
  EXPECT_EQ(decodeLokiPushBody(other->bytes).value(), want);
  // The shipper's decoder for splitting (the agent hands it Loki's) reads it.
  LogBatch copy = *batch;
  ASSERT_TRUE(expandLokiBody(copy).has_value());
  EXPECT_EQ(copy.streams, want);
}

TEST_F(JsonSpoolTest, ProtobufSpoolIsSentAsJsonAfterARestartWithJson) {
  const auto want = writeWith(std::make_shared<LokiBatchEncoder>());
  std::string files;
  const auto batch = readBack(files);
  ASSERT_NE(batch, nullptr);
  ASSERT_FALSE(batch->encoded_body.empty());
  ASSERT_FALSE(isLokiJsonBody(batch->encoded_body));
  LokiPushEncoder json(LokiEncoding::kJson);
  const auto body = json.encode(*batch);
  ASSERT_TRUE(body.has_value()) << body.error();
  EXPECT_EQ(body->content_encoding, "gzip");
  const auto text = gunzip(body->bytes);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(decodeLokiJsonText(*text).value(), want);
  EXPECT_EQ(LokiJsonBatchEncoder().decodeBody(batch->encoded_body).value(), want);
}

}  // namespace
}  // namespace nodewarden
