// libFuzzer target for the spool's readers: decodeLogBatch on raw bytes, and Spool::open (recovery)
// on a directory holding one segment file made of the input, then reading everything back.
//
// The first input byte picks the mode (the rest is the data):
//   0  decodeLogBatch(data)
//   1  data is a segment file, as is
//   2  data is a segment file whose record headers get their magic and checksums fixed up (the
//      version byte kept within 1..6: crc32 or XXH3 payloads, 44- or 52-byte headers), so the
//      fuzzer explores lengths, sequences, unit counts and zstd frames instead of checksums
//   3  data is a LogBatch payload, wrapped in one valid record of the current version (5, zstd)
//   4  data is a whole spool directory: files of [kind u8][length u16 LE][bytes], kind 0 the ack
//      file, any other kind a segment whose first sequence is that number (checksums of segment
//      records fixed up as in mode 2, the ack's too when its version byte says 2)
// The seed corpus (tests/fuzz/corpus/spool) holds segments of every record version, written by
// the spool and converted (make_spool_corpus.cpp), and directories with an ack file.
//
// What a reader gets wrong: this checks more than "no crash". Whatever a damaged directory holds,
// open must succeed (a bad spool file never stops the agent), recovery must leave only records
// that read back in increasing sequence order, what damage took is part of what was lost, a new
// append must then work and come back the same after a reopen, and that reopen must count no
// loss again (damage is counted once); anything else traps.
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"
#include "pipeline/spool_format.h"

namespace {

namespace fs = std::filesystem;
using namespace nodewarden;
using namespace nodewarden::spool_format;

void check(bool invariant, int line = __builtin_LINE()) {
  if (!invariant) {
    std::fprintf(stderr, "fuzz_spool_reader: invariant at line %d does not hold\n", line);
    __builtin_trap();
  }
}

// Sets magic, a version in 1..6 (the byte there, if it is one), the payload checksum (when the
// payload is all there) and the header crc. Returns the header's size.
std::size_t fixHeader(char* h, std::size_t available) {
  std::memcpy(h, kRecordMagic.data(), kRecordMagic.size());
  auto version = static_cast<std::uint8_t>(h[4]);
  if (!isRecordVersion(version)) version = static_cast<std::uint8_t>(1 + version % 6);
  h[4] = static_cast<char>(version);
  h[5] = h[6] = h[7] = 0;
  const std::size_t header = headerBytes(version);
  const std::uint32_t compressed = getU32(h + kCompressedAt);
  if (compressed <= available - header) {
    putU32(h + header - 8, payloadChecksum(version, {h + header, compressed}));
  }
  sealHeader(h, version);
  return header;
}

// Mode 2: make every header in the chain check out.
void fixUpRecords(std::string& file) {
  std::size_t offset = 0;
  while (offset + kHeaderBytes <= file.size()) {
    char* h = file.data() + offset;
    const std::size_t header = fixHeader(h, file.size() - offset);
    const std::uint32_t compressed = getU32(h + kCompressedAt);
    if (compressed > file.size() - offset - header) {
      break;
    }
    offset += header + compressed;
  }
}

// Mode 3: one valid record (version 5: zstd, XXH3, units before it) around an arbitrary payload.
std::string wrapPayload(std::string_view payload) {
  std::string record(kHeaderBytes + ZSTD_compressBound(payload.size()), '\0');
  const std::size_t n = ZSTD_compress(record.data() + kHeaderBytes, record.size() - kHeaderBytes,
                                      payload.data(), payload.size(), 1);
  check(ZSTD_isError(n) == 0U);
  record.resize(kHeaderBytes + n);
  RecordHeader h;
  h.version = kRecordVersion;
  h.sequence = 1;
  h.uncompressed = static_cast<std::uint32_t>(payload.size());
  h.compressed = static_cast<std::uint32_t>(n);
  h.units = 1;
  h.units_before = 0;
  h.payload_crc = payloadChecksum(h.version, {record.data() + kHeaderBytes, n});
  writeHeader(h, record.data());
  return record;
}

void checkCodec(std::string_view data) {
  auto batch = decodeLogBatch(data);
  if (!batch) {
    check(!batch.error().empty());
    return;
  }
  // Canonical varints are never longer than the input's, and the encoding round-trips.
  const std::string again = encodeLogBatch(*batch);
  check(again.size() <= data.size());
  auto twice = decodeLogBatch(again);
  check(twice.has_value() && *twice == *batch);
}

struct Fixture {
  // NODEWARDEN_FUZZ_LOG=1 logs every report (to see why an input traps).
  Fixture() : errors(registry, std::chrono::seconds(0)) {
    if (std::getenv("NODEWARDEN_FUZZ_LOG") == nullptr) {
      spdlog::set_level(spdlog::level::off);  // recovery reports on almost every input
    }
    std::string tmpl = (fs::temp_directory_path() / "fuzz-spool-XXXXXX").string();
    check(::mkdtemp(tmpl.data()) != nullptr);
    base = tmpl;
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  prometheus::Registry registry;
  ErrorReporter errors;
  fs::path base;
};

// files: name -> bytes, written into a fresh spool directory.
void checkSpool(const std::vector<std::pair<std::string, std::string>>& files) {
  static Fixture fixture;
  const fs::path dir = fixture.base / "run";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  std::size_t total = 0;
  for (const auto& [name, bytes] : files) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    check(out.good());
    total += bytes.size();
  }
  SpoolOptions options;
  options.dir = dir;
  options.fsync = false;
  options.max_bytes = 1 << 20;
  options.segment_bytes = 64 << 10;

  std::uint64_t last = 0;
  {
    auto opened = Spool::open(options, fixture.errors);
    check(opened.has_value());
    Spool& spool = **opened;
    check(spool.bytes() <= total);
    check(spool.batches() <= total / kLegacyHeaderBytes);
    const std::uint64_t indexed = spool.batches();
    std::uint64_t read = 0;
    while (auto batch = spool.front()) {
      check(batch->sequence > last);
      last = batch->sequence;
      spool.acknowledge(batch->sequence);
      ++read;
    }
    check(read <= indexed);
    check(spool.batches() == 0);
    check(spool.oldestAge().count() == 0);
    const SpoolDamage damage = spool.damage();
    check(damage.units <= spool.lostUnits() && damage.all_lost_units == spool.lostUnits());

    LogBatch batch;
    batch.streams.push_back({{{"pod", "p"}}, {{1, "line", {}}}});
    batch.lines = 1;
    batch.bytes = 4;
    auto seq = spool.append(batch);
    if (!seq) {
      // Only when a record that checks out claimed the very last sequence (spool.cpp), whether
      // or not its payload then decoded.
      check(seq.error().find("exhausted") != std::string::npos);
      return;
    }
    check(*seq > last);
    last = *seq;
  }
  auto reopened = Spool::open(options, fixture.errors);
  check(reopened.has_value());
  // Everything damaged was counted and let go by the first open: nothing is counted twice.
  check((*reopened)->lostUnits() == 0 && (*reopened)->damage().unknown_bytes == 0);
  auto front = (*reopened)->front();
  check(front != nullptr && front->sequence == last && front->lines == 1 &&
        front->streams.size() == 1 && front->streams[0].entries[0].line == "line");
  reopened->reset();
  fs::remove_all(dir, ec);
}

void checkSegment(const std::string& file) { checkSpool({{"00000000000000000001.seg", file}}); }

// Mode 4: [kind u8][length u16 LE][bytes] files, fixed up to check out.
void checkDirectory(std::string_view data) {
  std::vector<std::pair<std::string, std::string>> files;
  while (data.size() >= 3 && files.size() < 8) {
    const auto kind = static_cast<unsigned char>(data[0]);
    const std::size_t length = std::min<std::size_t>(
        data.size() - 3, static_cast<unsigned char>(data[1]) |
                             (std::size_t{static_cast<unsigned char>(data[2])} << 8));
    std::string bytes(data.substr(3, length));
    data.remove_prefix(3 + length);
    if (kind == 0) {
      // The ack, version 2: its crc is the last four bytes.
      if (bytes.size() >= kAckFixedBytes && bytes[4] == kAckVersion) {
        std::memcpy(bytes.data(), kAckMagic.data(), kAckMagic.size());
        putU32(bytes.data() + bytes.size() - 4, crc32Of({bytes.data(), bytes.size() - 4}));
      }
      files.emplace_back("ack", std::move(bytes));
      continue;
    }
    fixUpRecords(bytes);
    std::string name = std::to_string(kind);
    name.insert(0, 20 - name.size(), '0');
    files.emplace_back(name + ".seg", std::move(bytes));
  }
  checkSpool(files);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      checkCodec(rest);
      break;
    case 1:
      checkSegment(std::string(rest));
      break;
    case 2: {
      std::string file(rest);
      fixUpRecords(file);
      checkSegment(file);
      break;
    }
    case 3:
      checkCodec(rest);
      checkSegment(wrapPayload(rest));
      break;
    default:
      checkDirectory(rest);
      break;
  }
  return 0;
}
