// encodeLogBatch/decodeLogBatch: round trips, and rejection of every kind of malformed input.
//
// What a reader gets wrong: "rejects" here means an error value, quickly, for every prefix of a
// valid encoding and for counts and lengths the input cannot back; the fuzz target covers the
// rest of the input space.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "pipeline/spool.h"

namespace nodewarden {
namespace {

LogBatch richBatch() {
  LogBatch batch;
  LogBatch::Stream a;
  a.labels = {{"container", "app"}, {"namespace", "default"}, {"pod", "web-1"}};
  a.entries.push_back({1'700'000'000'123'456'789, "hello world", {{"pod_uid", "1234-abcd"}}});
  a.entries.push_back({1'700'000'000'000'000'000, "earlier line", {}});  // out of order
  a.entries.push_back({std::numeric_limits<std::int64_t>::min(), "", {}});
  a.entries.push_back({std::numeric_limits<std::int64_t>::max(),
                       std::string("bin\0\xff\x80", 6),
                       {{"", ""}, {"k", std::string(300, 'v')}}});
  LogBatch::Stream b;
  b.labels = {{"stream", "stderr"}};
  b.entries.push_back({-5, std::string(100'000, 'x'), {}});
  LogBatch::Stream empty;
  batch.streams = {a, b, empty};
  LogCheckpoint file;
  file.source = "/var/log/pods/default_web-1_uid/app/0.log";
  file.file = {std::numeric_limits<std::uint64_t>::max(), 42, 0xdeadbeefcafef00dULL,
               std::numeric_limits<std::uint32_t>::max()};
  file.offset = 123456789;
  LogCheckpoint journal;
  journal.source = "journal";
  journal.journal_cursor = "s=abc;i=1f;b=def;m=12;t=5f;x=9";
  batch.checkpoints = {file, journal};
  batch.bytes = 100'000 + 11 + 12 + 6;
  batch.lines = 5;
  return batch;
}

TEST(LogBatchCodec, RoundTripsEveryField) {
  const LogBatch batch = richBatch();
  const std::string bytes = encodeLogBatch(batch);
  auto decoded = decodeLogBatch(bytes);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_EQ(*decoded, batch);
  EXPECT_EQ(encodeLogBatch(*decoded), bytes);
}

TEST(LogBatchCodec, RoundTripsABatchThatCarriesItsPushBody) {
  LogBatch batch = richBatch();
  batch.streams.clear();
  batch.encoded_body = std::string("\xff\0 opaque push body", 20);
  const std::string bytes = encodeLogBatch(batch);
  EXPECT_EQ(bytes[0], '\x02');
  EXPECT_EQ(bytes.substr(bytes.size() - batch.encoded_body.size()),
            batch.encoded_body);  // as it is
  auto decoded = decodeLogBatch(bytes);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_EQ(*decoded, batch);
  // Without the body it is malformed; every shorter cut of the fields before it too.
  const std::size_t fields = bytes.size() - batch.encoded_body.size();
  for (std::size_t n = 0; n <= fields; ++n) {
    EXPECT_FALSE(decodeLogBatch(std::string_view(bytes).substr(0, n)).has_value()) << n;
  }
}

TEST(LogBatchCodec, RoundTripsAnEmptyBatch) {
  const LogBatch batch;
  const std::string bytes = encodeLogBatch(batch);
  auto decoded = decodeLogBatch(bytes);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_EQ(*decoded, batch);
}

TEST(LogBatchCodec, LeavesTheSequenceToTheSpool) {
  LogBatch batch = richBatch();
  batch.sequence = 77;
  auto decoded = decodeLogBatch(encodeLogBatch(batch));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->sequence, 0U);
  decoded->sequence = 77;
  EXPECT_EQ(*decoded, batch);
}

TEST(LogBatchCodec, IsCompact) {
  LogBatch batch;
  LogBatch::Stream s;
  s.labels = {{"pod", "p"}};
  for (int i = 0; i < 100; ++i) {
    s.entries.push_back({1'700'000'000'000'000'000 + i * 1000, "0123456789", {}});
  }
  batch.streams.push_back(s);
  // 10 bytes of line plus about 4 of overhead each: timestamps are deltas within a stream.
  EXPECT_LT(encodeLogBatch(batch).size(), 100U * 15 + 32);
}

TEST(LogBatchCodec, RejectsEveryTruncation) {
  const std::string bytes = encodeLogBatch(richBatch());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decodeLogBatch(std::string_view(bytes).substr(0, n)).has_value()) << n;
  }
}

TEST(LogBatchCodec, RejectsTrailingBytes) {
  std::string bytes = encodeLogBatch(richBatch());
  bytes.push_back('\0');
  auto decoded = decodeLogBatch(bytes);
  ASSERT_FALSE(decoded.has_value());
  EXPECT_NE(decoded.error().find("trailing"), std::string::npos) << decoded.error();
}

TEST(LogBatchCodec, RejectsAnUnknownVersion) {
  std::string bytes = encodeLogBatch(richBatch());
  bytes[0] = 3;  // 1: streams, 2: a Loki push body
  EXPECT_FALSE(decodeLogBatch(bytes).has_value());
  EXPECT_FALSE(decodeLogBatch("").has_value());
}

TEST(LogBatchCodec, RejectsCountsAndLengthsTheInputCannotHold) {
  // One stream count of 2^62: refused before anything is reserved.
  const std::string huge_streams = std::string("\x01") + "\x80\x80\x80\x80\x80\x80\x80\x80\x40";
  EXPECT_FALSE(decodeLogBatch(huge_streams).has_value());
  // One stream, no labels, 5 entries announced but 4 bytes left.
  EXPECT_FALSE(decodeLogBatch(std::string("\x01\x01\x00\x05\x00\x00\x00\x00", 8)).has_value());
  // A line claiming 1 MiB in a 10-byte input.
  EXPECT_FALSE(
      decodeLogBatch(std::string("\x01\x01\x00\x01\x00\x80\x80\x40\x00\x00", 10)).has_value());
  // Checkpoint count larger than the rest could ever hold (7 bytes each at least).
  EXPECT_FALSE(
      decodeLogBatch(std::string("\x01\x00\x02\x00\x00\x00\x00\x00\x00\x00", 10)).has_value());
}

TEST(LogBatchCodec, RejectsMalformedVarints) {
  // Eleven bytes of continuation.
  EXPECT_FALSE(decodeLogBatch(std::string("\x01") + std::string(11, '\x80')).has_value());
  // A tenth byte with more than bit 63.
  std::string overflow("\x01\x00\x00", 3);      // no streams, no checkpoints
  overflow += std::string(9, '\xff') + "\x02";  // bytes: 2^64 or more
  overflow += '\x00';
  EXPECT_FALSE(decodeLogBatch(overflow).has_value());
  // The largest value that fits is fine.
  std::string fits("\x01\x00\x00", 3);
  fits += std::string(9, '\xff') + "\x01";
  fits += '\x00';
  auto decoded = decodeLogBatch(fits);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_EQ(decoded->bytes, std::numeric_limits<std::size_t>::max());
}

TEST(LogBatchCodec, RejectsFingerprintBytesBeyond32Bits) {
  LogBatch batch;
  LogCheckpoint cp;
  cp.source = "s";
  batch.checkpoints.push_back(cp);
  std::string bytes = encodeLogBatch(batch);
  // version, 0 streams, 1 checkpoint, "s", device, inode, fingerprint, then fingerprint_bytes.
  const std::size_t at = 1 + 1 + 1 + 2 + 1 + 1 + 1;
  ASSERT_EQ(bytes[at], '\0');
  bytes.replace(at, 1, std::string("\x80\x80\x80\x80\x10", 5));  // 2^32
  EXPECT_FALSE(decodeLogBatch(bytes).has_value());
}

TEST(LogBatchCodec, SurvivesEverySingleByteCorruption) {
  const std::string good = encodeLogBatch(richBatch());
  for (std::size_t i = 0; i < good.size(); i += 7) {
    for (const unsigned char v : {0x00, 0x7f, 0x80, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(v);
      auto decoded = decodeLogBatch(bad);  // either outcome; never a crash or a huge allocation
      if (decoded) {
        EXPECT_EQ(decodeLogBatch(encodeLogBatch(*decoded)).value(), *decoded);
      }
    }
  }
}

}  // namespace
}  // namespace nodewarden
