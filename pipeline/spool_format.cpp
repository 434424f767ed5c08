// The spool's record header and ack file, encoded and checked (the layout is in spool_format.h).
//
// What a reader gets wrong: parseHeader() rejects more than damage: a header whose numbers could
// not have been written (sequence 0, a payload past the limits, a stored payload whose lengths
// differ) is garbage as well, so that recovery looks for the next record instead of trusting it.
#include "pipeline/spool_format.h"

#include <xxhash.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

namespace nodewarden::spool_format {
namespace {

std::uint32_t crc32More(uLong crc, std::string_view bytes) {
  const char* p = bytes.data();
  std::size_t n = bytes.size();
  // zlib takes uInt lengths; feed large buffers in pieces.
  while (n > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(n, 1U << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(p), chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace

std::uint32_t crc32Of(std::string_view bytes) { return crc32More(0, bytes); }

std::uint32_t xxh3Of(std::string_view head, std::string_view body) {
  if (body.empty()) return static_cast<std::uint32_t>(XXH3_64bits(head.data(), head.size()));
  if (head.empty()) return static_cast<std::uint32_t>(XXH3_64bits(body.data(), body.size()));
  // The streaming state is opaque (allocated by the library): one per thread, made once.
  struct StateFree {
    void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
  };
  thread_local std::unique_ptr<XXH3_state_t, StateFree> state(XXH3_createState());
  if (!state) throw std::bad_alloc();
  XXH3_64bits_reset(state.get());
  XXH3_64bits_update(state.get(), head.data(), head.size());
  XXH3_64bits_update(state.get(), body.data(), body.size());
  return static_cast<std::uint32_t>(XXH3_64bits_digest(state.get()));
}

std::uint32_t payloadChecksum(std::uint8_t version, std::string_view head, std::string_view body) {
  if (version == kRecordVersionCrc || version == kRecordVersionStoredCrc) {
    return crc32More(crc32More(0, head), body);
  }
  return xxh3Of(head, body);
}

void sealHeader(char* p, std::uint8_t version) {
  const std::size_t crc_at = headerBytes(version) - 4;
  putU32(p + crc_at, crc32Of({p, crc_at}));
}

void writeHeader(const RecordHeader& h, char* out) {
  std::memcpy(out, kRecordMagic.data(), kRecordMagic.size());
  out[4] = static_cast<char>(h.version);
  out[5] = out[6] = out[7] = 0;
  putU64(out + kSequenceAt, h.sequence);
  putU32(out + kUncompressedAt, h.uncompressed);
  putU32(out + kCompressedAt, h.compressed);
  putU32(out + kUnitsAt, h.units);
  putU64(out + kAppendMsAt, static_cast<std::uint64_t>(h.append_ms));
  const std::size_t crc_at = h.headerBytes() - 4;
  if (h.version >= kRecordVersion) putU64(out + kUnitsBeforeAt, h.units_before.value_or(0));
  putU32(out + crc_at - 4, h.payload_crc);
  sealHeader(out, h.version);
}

std::optional<RecordHeader> parseHeader(const char* p, std::size_t n) {
  if (n < kLegacyHeaderBytes || std::memcmp(p, kRecordMagic.data(), kRecordMagic.size()) != 0 ||
      p[5] != 0 || p[6] != 0 || p[7] != 0) {
    return std::nullopt;
  }
  const auto version = static_cast<std::uint8_t>(p[4]);
  if (!isRecordVersion(version)) {
    return std::nullopt;
  }
  const std::size_t header_bytes = headerBytes(version);
  const std::size_t crc_at = header_bytes - 4;
  if (n < header_bytes || getU32(p + crc_at) != crc32Of({p, crc_at})) {
    return std::nullopt;
  }
  RecordHeader h;
  h.version = version;
  h.sequence = getU64(p + kSequenceAt);
  h.uncompressed = getU32(p + kUncompressedAt);
  h.compressed = getU32(p + kCompressedAt);
  h.units = getU32(p + kUnitsAt);
  h.append_ms = static_cast<std::int64_t>(getU64(p + kAppendMsAt));
  if (version >= kRecordVersion) h.units_before = getU64(p + kUnitsBeforeAt);
  h.payload_crc = getU32(p + crc_at - 4);
  if (h.sequence == 0 || h.sequence > kMaxSequence || h.uncompressed > kMaxPayloadBytes ||
      h.uncompressed > std::uint64_t{h.compressed} * kMaxZstdRatio ||
      (h.stored() && h.uncompressed != h.compressed) ||
      (h.units_before && *h.units_before > kMaxUnits - h.units)) {
    return std::nullopt;
  }
  return h;
}

std::optional<RecordHeader> parseRecord(const char* p, std::size_t n) {
  auto h = parseHeader(p, n);
  if (!h || h->compressed > n - h->headerBytes() ||
      payloadChecksum(h->version, {p + h->headerBytes(), h->compressed}) != h->payload_crc) {
    return std::nullopt;
  }
  return h;
}

std::size_t writeAck(const AckState& state, std::array<char, kMaxAckBytes>& out) {
  out.fill(0);
  std::memcpy(out.data(), kAckMagic.data(), kAckMagic.size());
  out[4] = static_cast<char>(kAckVersion);
  out[5] = static_cast<char>(state.acked_units_known ? 1 : 0);
  putU64(out.data() + 8, state.acked_sequence);
  putU64(out.data() + 16, state.acked_units);
  putU64(out.data() + 24, state.synced_sequence);
  putU64(out.data() + 32, state.synced_units);
  putU32(out.data() + 40, static_cast<std::uint32_t>(state.counted.size()));
  std::size_t size = kAckRangesOffset;
  for (const auto& [from, to] : state.counted) {
    putU64(out.data() + size, from);
    putU64(out.data() + size + 8, to);
    size += 16;
  }
  putU32(out.data() + size, crc32Of({out.data(), size}));
  return size + 4;
}

std::optional<AckState> parseAck(const char* p, std::size_t n) {
  if (n < kLegacyAckBytes || std::memcmp(p, kAckMagic.data(), kAckMagic.size()) != 0) {
    return std::nullopt;
  }
  const auto version = static_cast<std::uint8_t>(p[4]);
  bool good = false;
  if (version == kAckVersionLegacy) {
    good = n == kLegacyAckBytes && getU32(p + 16) == crc32Of({p, 16});
  } else if (version == kAckVersion && n >= kAckFixedBytes) {
    const std::uint32_t ranges = getU32(p + 40);
    good = ranges <= kMaxCountedRanges && n == kAckFixedBytes + 16 * std::size_t{ranges} &&
           getU32(p + n - 4) == crc32Of({p, n - 4});
  }
  if (!good || getU64(p + 8) > kMaxSequence) {
    return std::nullopt;
  }
  AckState state;
  state.version = version;
  state.acked_sequence = getU64(p + 8);
  if (version == kAckVersionLegacy) {
    return state;
  }
  const auto flags = static_cast<std::uint8_t>(p[5]);
  state.acked_units_known = (flags & 1U) != 0;
  state.acked_units = std::min(getU64(p + 16), kMaxUnits);
  state.synced_sequence = std::min(getU64(p + 24), kMaxSequence);
  state.synced_units = std::min(getU64(p + 32), kMaxUnits);
  const std::uint32_t ranges = getU32(p + 40);
  for (std::uint32_t i = 0; i < ranges; ++i) {
    const char* range = p + kAckRangesOffset + 16 * std::size_t{i};
    const std::uint64_t from = getU64(range);
    const std::uint64_t to = std::min(getU64(range + 8), kMaxUnits);
    if (from < to) state.counted.emplace_back(from, to);
  }
  std::sort(state.counted.begin(), state.counted.end());
  return state;
}

}  // namespace nodewarden::spool_format
