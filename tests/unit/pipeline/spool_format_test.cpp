// The spool's record format (pipeline/spool_format.h) on its own: a header of every version the
// spool reads goes round trip, a record whose payload or header fails its checksum is refused, a
// header cut short is refused, and the ack round-trips in both versions.
//
// What a reader gets wrong: the expected bytes are written out here field by field, not produced
// by the code under test, so a change of layout fails this test instead of reading its own output
// back (records already on disk would no longer be read).
#include "pipeline/spool_format.h"

#include <gtest/gtest.h>
#include <zlib.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace nodewarden::spool_format {
namespace {

void le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

std::uint32_t zlibCrc(std::string_view s) {
  return static_cast<std::uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

// A whole record of this version around payload, its bytes laid out by hand.
std::string handRecord(std::uint8_t version, std::uint64_t sequence, std::string_view payload,
                       std::uint32_t units, std::int64_t append_ms, std::uint64_t units_before) {
  std::string h = "NWSR";
  h.push_back(static_cast<char>(version));
  h.append(3, '\0');
  le(h, sequence, 8);
  le(h, payload.size(), 4);  // uncompressed: as stored, or a zstd frame's content (not checked)
  le(h, payload.size(), 4);
  le(h, units, 4);
  le(h, static_cast<std::uint64_t>(append_ms), 8);
  if (version >= 5) le(h, units_before, 8);
  le(h,
     version <= 2 ? zlibCrc(payload)
                  : static_cast<std::uint32_t>(XXH3_64bits(payload.data(), payload.size())),
     4);
  le(h, zlibCrc(h), 4);
  return h + std::string(payload);
}

class RecordVersion : public ::testing::TestWithParam<int> {};

TEST_P(RecordVersion, RoundTripsAndMatchesTheLayout) {
  const auto version = static_cast<std::uint8_t>(GetParam());
  const std::string payload = "payload bytes of some record";
  const std::string hand = handRecord(version, 42, payload, 7, 1'700'000'000'123, 1000);

  RecordHeader h;
  h.version = version;
  h.sequence = 42;
  h.uncompressed = static_cast<std::uint32_t>(payload.size());
  h.compressed = static_cast<std::uint32_t>(payload.size());
  h.units = 7;
  h.append_ms = 1'700'000'000'123;
  if (version >= kRecordVersion) h.units_before = 1000;
  h.payload_crc = payloadChecksum(version, payload);
  std::string written(h.headerBytes(), '\0');
  writeHeader(h, written.data());
  EXPECT_EQ(written + payload, hand);
  EXPECT_EQ(h.headerBytes(), version >= 5 ? 52U : 44U);

  const auto parsed = parseRecord(hand.data(), hand.size());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->version, version);
  EXPECT_EQ(parsed->sequence, 42U);
  EXPECT_EQ(parsed->compressed, payload.size());
  EXPECT_EQ(parsed->uncompressed, payload.size());
  EXPECT_EQ(parsed->units, 7U);
  EXPECT_EQ(parsed->append_ms, 1'700'000'000'123);
  EXPECT_EQ(parsed->units_before, version >= 5 ? std::optional<std::uint64_t>(1000) : std::nullopt);
  EXPECT_EQ(parsed->stored(), version % 2 == 0);
  EXPECT_EQ(parsed->crc32Payload(), version <= 2);
  EXPECT_EQ(parsed->recordBytes(), hand.size());
  // A head and a body checksum the same as the payload in one piece.
  EXPECT_EQ(payloadChecksum(version, "payload bytes", " of some record"), h.payload_crc);
}

TEST_P(RecordVersion, APayloadThatFailsItsChecksumIsRefused) {
  const auto version = static_cast<std::uint8_t>(GetParam());
  std::string record = handRecord(version, 3, "some payload", 2, 0, 0);
  ASSERT_TRUE(parseRecord(record.data(), record.size()).has_value());
  record.back() ^= 0x01;
  EXPECT_FALSE(parseRecord(record.data(), record.size()).has_value());
  // The header alone still checks out (recovery then knows where the next record starts).
  const auto header = parseHeader(record.data(), record.size());
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->units, 2U);
}

TEST_P(RecordVersion, AHeaderThatFailsItsChecksumIsRefused) {
  const auto version = static_cast<std::uint8_t>(GetParam());
  const std::string good = handRecord(version, 3, "some payload", 2, 0, 0);
  for (std::size_t at = 0; at < headerBytes(version); ++at) {
    std::string record = good;
    record[at] ^= 0x10;
    EXPECT_FALSE(parseHeader(record.data(), record.size()).has_value()) << at;
  }
}

TEST_P(RecordVersion, ATruncatedHeaderOrPayloadIsRefused) {
  const auto version = static_cast<std::uint8_t>(GetParam());
  const std::string record = handRecord(version, 3, "some payload", 2, 0, 0);
  for (std::size_t n = 0; n < headerBytes(version); ++n) {
    EXPECT_FALSE(parseHeader(record.data(), n).has_value()) << n;
  }
  EXPECT_TRUE(parseHeader(record.data(), headerBytes(version)).has_value());
  EXPECT_FALSE(parseRecord(record.data(), record.size() - 1).has_value());
}

INSTANTIATE_TEST_SUITE_P(SpoolFormat, RecordVersion, ::testing::Range(1, 7));

TEST(SpoolFormat, ImplausibleHeadersAreRefusedThoughTheirCrcChecksOut) {
  const auto refused = [](std::string record) {
    sealHeader(record.data(), static_cast<std::uint8_t>(record[4]));
    return !parseHeader(record.data(), record.size()).has_value();
  };
  const std::string good = handRecord(kRecordVersionStored, 1, "abc", 1, 0, 0);
  EXPECT_FALSE(refused(good));
  std::string zero_sequence = good;
  zero_sequence.replace(kSequenceAt, 8, std::string(8, '\0'));
  EXPECT_TRUE(refused(zero_sequence));
  std::string unequal = good;  // a stored payload whose lengths differ
  unequal[kUncompressedAt] = 4;
  EXPECT_TRUE(refused(unequal));
  std::string version7 = good;
  version7[4] = 7;
  EXPECT_FALSE(parseHeader(version7.data(), version7.size()).has_value());
  std::string reserved = good;
  reserved[6] = 1;
  EXPECT_TRUE(refused(reserved));
  std::string too_big = handRecord(kRecordVersion, 1, "abc", 1, 0, 0);  // zstd: 32768x at most
  std::string big;
  le(big, 3 * kMaxZstdRatio + 1, 4);
  too_big.replace(kUncompressedAt, 4, big);
  EXPECT_TRUE(refused(too_big));
  std::string units_past = handRecord(kRecordVersion, 1, "abc", 1, 0, kMaxUnits + 1);
  EXPECT_TRUE(refused(units_past));
  // A record must also end within the bound: the spool counts on from its end.
  EXPECT_FALSE(refused(handRecord(kRecordVersion, 1, "abc", 1, 0, kMaxUnits - 1)));
  EXPECT_TRUE(refused(handRecord(kRecordVersion, 1, "abc", 2, 0, kMaxUnits - 1)));
}

TEST(SpoolFormat, AckRoundTripsWithItsRanges) {
  AckState state;
  state.acked_sequence = 17;
  state.acked_units_known = true;
  state.acked_units = 300;
  state.synced_sequence = 20;
  state.synced_units = 360;
  state.counted = {{310, 320}, {330, 335}};
  std::array<char, kMaxAckBytes> buf{};
  const std::size_t size = writeAck(state, buf);
  ASSERT_EQ(size, kAckFixedBytes + 2 * 16);

  std::string hand = "NWAK";
  hand += std::string("\x02\x01\0\0", 4);
  for (std::uint64_t v : {17, 300, 20, 360}) le(hand, v, 8);
  le(hand, 2, 4);
  for (std::uint64_t v : {310, 320, 330, 335}) le(hand, v, 8);
  le(hand, zlibCrc(hand), 4);
  EXPECT_EQ(std::string(buf.data(), size), hand);

  const auto parsed = parseAck(buf.data(), size);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->version, kAckVersion);
  EXPECT_EQ(parsed->acked_sequence, 17U);
  EXPECT_TRUE(parsed->acked_units_known);
  EXPECT_EQ(parsed->acked_units, 300U);
  EXPECT_EQ(parsed->synced_sequence, 20U);
  EXPECT_EQ(parsed->synced_units, 360U);
  EXPECT_EQ(parsed->counted, state.counted);
}

TEST(SpoolFormat, AckOfVersionOneIsReadAsTheSequenceOnly) {
  std::string ack = "NWAK";
  ack += std::string("\x01\0\0\0", 4);
  le(ack, 9, 8);
  le(ack, zlibCrc(ack), 4);
  const auto parsed = parseAck(ack.data(), ack.size());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->version, kAckVersionLegacy);
  EXPECT_EQ(parsed->acked_sequence, 9U);
  EXPECT_FALSE(parsed->acked_units_known);
  EXPECT_TRUE(parsed->counted.empty());
}

TEST(SpoolFormat, AckThatFailsItsChecksumOrIsCutShortIsRefused) {
  AckState state;
  state.acked_sequence = 5;
  state.counted = {{1, 2}};
  std::array<char, kMaxAckBytes> buf{};
  const std::size_t size = writeAck(state, buf);
  ASSERT_TRUE(parseAck(buf.data(), size).has_value());
  for (std::size_t n = 0; n < size; ++n) {
    EXPECT_FALSE(parseAck(buf.data(), n).has_value()) << n;
  }
  for (std::size_t at = 0; at < size; ++at) {
    auto flipped = buf;
    flipped[at] ^= 0x04;
    EXPECT_FALSE(parseAck(flipped.data(), size).has_value()) << at;
  }
}

TEST(SpoolFormat, AckNumbersAreClampedAndEmptyRangesDropped) {
  AckState state;
  state.acked_sequence = 5;
  state.acked_units = ~std::uint64_t{0};
  state.synced_sequence = ~std::uint64_t{0};
  state.counted = {{50, 40}, {30, 35}, {10, 20}};
  std::array<char, kMaxAckBytes> buf{};
  const auto parsed = parseAck(buf.data(), writeAck(state, buf));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->acked_units, kMaxUnits);
  EXPECT_EQ(parsed->synced_sequence, kMaxSequence);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> sorted = {{10, 20}, {30, 35}};
  EXPECT_EQ(parsed->counted, sorted);
  // A sequence past the bound is damage, not history.
  state.acked_sequence = kMaxSequence + 1;
  EXPECT_FALSE(parseAck(buf.data(), writeAck(state, buf)).has_value());
}

}  // namespace
}  // namespace nodewarden::spool_format
