// The spool's on-disk format (spool.cpp keeps the files; this says what their bytes mean): the
// record header of every version the spool reads (1 to 6; 5 and 6 are written), the ack file
// (versions 1 and 2; 2 is written), their checksums, and the bounds a header must keep to be
// believed. Shared by the spool and its fuzz target and corpus writer (tests/fuzz/), so that
// they cannot drift apart.
//
// A record: a header, then `compressed` payload bytes (Codec::encode(batch): one zstd frame of it,
// or the bytes as they are for a "stored" record). The header, little-endian:
//   versions 5, 6 (52 bytes): magic "NWSR" | version u8 | 3 zero bytes | sequence u64 |
//     uncompressed length u32 | compressed length u32 | unit count u32 (lines, samples) |
//     append wall time ms i64 | units before it u64 | payload checksum u32 | crc32 of the 48
//     header bytes before it u32
//   versions 1 to 4 (44 bytes, older agents): the same without "units before it"
// Versions 1, 3, 5 are zstd; 2, 4, 6 stored. Versions 1 and 2 check the payload with crc32, the
// others with the low 32 bits of its XXH3-64.
// The ack file: "NWAK" | version u8 | flags u8 (1: acknowledged units known) | 2 zero bytes |
//   acknowledged-through sequence u64 | units acknowledged u64 | last fdatasync'ed sequence u64 |
//   units fdatasync'ed u64 | range count u32 | that many [from u64, to u64) ranges of units
//   counted lost | crc32 u32 (version 2); version 1 (older agents): the sequence, then the crc32
//   of the 16 bytes before it.
//
// What a reader gets wrong: a header that parses is not yet a record. parseHeader() checks the
// header's own crc and its plausibility (so a flipped length never sends recovery on a wild
// jump); only parseRecord() also checks the payload against its checksum. What the fields mean
// for recovery (units before it, the ack's ranges) is the spool's business (spool.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace nodewarden::spool_format {

inline constexpr std::array<char, 4> kRecordMagic = {'N', 'W', 'S', 'R'};
// Versions 1 to 4 are read (older agents wrote them); 5 and 6 are written.
inline constexpr std::uint8_t kRecordVersionCrc = 1;        // zstd, crc32 of the payload
inline constexpr std::uint8_t kRecordVersionStoredCrc = 2;  // stored as is, crc32
inline constexpr std::uint8_t kRecordVersionXxh = 3;        // zstd, XXH3 of the payload
inline constexpr std::uint8_t kRecordVersionStoredXxh = 4;  // stored as is, XXH3
inline constexpr std::uint8_t kRecordVersion = 5;           // zstd, XXH3, units before it
inline constexpr std::uint8_t kRecordVersionStored = 6;     // stored as is, XXH3, units before it
inline constexpr std::size_t kLegacyHeaderBytes = 44;       // versions 1 to 4
inline constexpr std::size_t kHeaderBytes = 52;             // versions 5 and 6
// Where the fields every version has sit in a header.
inline constexpr std::size_t kSequenceAt = 8;
inline constexpr std::size_t kUncompressedAt = 16;
inline constexpr std::size_t kCompressedAt = 20;
inline constexpr std::size_t kUnitsAt = 24;
inline constexpr std::size_t kAppendMsAt = 28;
inline constexpr std::size_t kUnitsBeforeAt = 36;  // versions 5 and 6

inline constexpr std::array<char, 4> kAckMagic = {'N', 'W', 'A', 'K'};
inline constexpr std::uint8_t kAckVersionLegacy = 1;  // the acknowledged sequence only
inline constexpr std::uint8_t kAckVersion = 2;
inline constexpr std::size_t kLegacyAckBytes = 20;
inline constexpr std::size_t kAckFixedBytes = 48;    // version 2 without its ranges
inline constexpr std::size_t kAckRangesOffset = 44;  // then the crc
// Ranges of units counted lost an ack holds at most (the spool merges more away).
inline constexpr std::size_t kMaxCountedRanges = 64;
inline constexpr std::size_t kMaxAckBytes = kAckFixedBytes + 16 * kMaxCountedRanges;

// Uncompressed payload limit: a record (a log batch, a write request) is a few MiB at most; this
// only bounds what a damaged (but checksum-valid) header can make the reader allocate.
inline constexpr std::uint64_t kMaxPayloadBytes = 256ULL << 20;
// zstd cannot expand more than this: a 128 KiB block takes at least 4 bytes (an RLE block).
inline constexpr std::uint64_t kMaxZstdRatio = 32768;
// Sequences (and segment names) above this are damage, not history (2^63 batches is 290,000
// years at a million a second); the bound keeps next-sequence arithmetic from wrapping. Only a
// damaged record whose checksums still match could bring a spool near it, and then appends fail.
inline constexpr std::uint64_t kMaxSequence = 1ULL << 63;
// The same for a count of units (2^32 records of 2^32 units each at most).
inline constexpr std::uint64_t kMaxUnits = 1ULL << 63;

// ---- little-endian fields ----
inline void putU32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline void putU64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline std::uint32_t getU32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}
inline std::uint64_t getU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

// zlib's crc32 (headers, the ack, the payloads of versions 1 and 2), of any length.
std::uint32_t crc32Of(std::string_view bytes);
// The low 32 bits of the XXH3-64 of head + body (several times faster than crc32, and a payload
// is checked on every read back); a stored record's payload comes in two pieces.
std::uint32_t xxh3Of(std::string_view head, std::string_view body = {});

constexpr bool isRecordVersion(std::uint8_t version) {
  return version >= kRecordVersionCrc && version <= kRecordVersionStored;
}
constexpr std::size_t headerBytes(std::uint8_t version) {
  return version >= kRecordVersion ? kHeaderBytes : kLegacyHeaderBytes;
}

struct RecordHeader {
  std::uint8_t version = kRecordVersion;
  std::uint64_t sequence = 0;
  std::uint32_t uncompressed = 0;
  std::uint32_t compressed = 0;
  std::uint32_t units = 0;  // lines of a log batch, samples of a write request
  std::int64_t append_ms = 0;
  // Versions 5 and 6: the units of every record this spool wrote to disk before this one (what
  // lets recovery count exactly what a gap in the files held). Older versions: unknown.
  std::optional<std::uint64_t> units_before;
  std::uint32_t payload_crc = 0;  // XXH3 (versions 3 to 6) or crc32 (1, 2) of the payload

  // The payload is not compressed (record version 2, 4 or 6).
  [[nodiscard]] bool stored() const {
    return version == kRecordVersionStored || version == kRecordVersionStoredXxh ||
           version == kRecordVersionStoredCrc;
  }
  // An older record (version 1 or 2): crc32 of the payload.
  [[nodiscard]] bool crc32Payload() const {
    return version == kRecordVersionCrc || version == kRecordVersionStoredCrc;
  }
  [[nodiscard]] std::size_t headerBytes() const { return spool_format::headerBytes(version); }
  [[nodiscard]] std::size_t recordBytes() const { return headerBytes() + compressed; }
};

// The checksum a record of this version keeps of its payload (head + body).
std::uint32_t payloadChecksum(std::uint8_t version, std::string_view head,
                              std::string_view body = {});

// Writes h as a header of h.version (any of 1 to 6; units_before must be set for 5 and 6) into
// out, which has room for h.headerBytes(), its own crc included.
void writeHeader(const RecordHeader& h, char* out);
// Sets the crc of the header of this version at p from the bytes before it.
void sealHeader(char* p, std::uint8_t version);

// A header that checks out at the start of [p, p + n): magic, version, reserved bytes, its own
// crc, plausible lengths (within the bounds above, equal for a stored payload).
std::optional<RecordHeader> parseHeader(const char* p, std::size_t n);
// A whole record at the start of [p, p + n): a header that checks out and a payload whose
// checksum matches.
std::optional<RecordHeader> parseRecord(const char* p, std::size_t n);

struct AckState {
  std::uint8_t version = kAckVersion;
  std::uint64_t acked_sequence = 0;  // every sequence up to it acknowledged (or dropped)
  // Version 2 only (version 1 leaves them as they are here):
  bool acked_units_known = false;
  std::uint64_t acked_units = 0;
  std::uint64_t synced_sequence = 0;
  std::uint64_t synced_units = 0;
  // [from, to) ranges of units counted lost, at most kMaxCountedRanges.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> counted;
};

// Writes state as an ack of version 2 into out; returns its size. state.counted must hold at most
// kMaxCountedRanges ranges.
std::size_t writeAck(const AckState& state, std::array<char, kMaxAckBytes>& out);
// The ack in [p, p + n) (the whole file), or nullopt when it does not check out (magic, version,
// size, crc, a plausible sequence). The numbers are clamped to kMaxSequence and kMaxUnits; empty
// ranges are dropped and the rest sorted.
std::optional<AckState> parseAck(const char* p, std::size_t n);

}  // namespace nodewarden::spool_format
