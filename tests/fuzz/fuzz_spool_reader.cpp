// libFuzzer target for the spool's readers: decodeLogBatch on raw bytes, and Spool::open (recovery)
// on a directory holding one segment file made of the input, then reading everything back.
//
// The first input byte picks the mode (the rest is the data):
//   0  decodeLogBatch(data)
//   1  data is a segment file, as is
//   2  data is a segment file whose record headers get their magic, version and both crcs fixed
//      up, so the fuzzer explores lengths, sequences and zstd frames instead of crc32 collisions
//   3  data is a LogBatch payload, wrapped in one valid zstd record
//
// What a reader gets wrong: this checks more than "no crash". Whatever a damaged directory holds,
// open must succeed (a bad spool file never stops the agent), recovery must leave only records
// that read back in increasing sequence order, and a new append must then work and come back the
// same after a reopen; anything else traps.
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"

namespace {

namespace fs = std::filesystem;
using namespace nodewarden;

// The record header, as spool.cpp documents it.
constexpr std::size_t kHeaderBytes = 44;

void check(bool invariant) {
  if (!invariant) {
    __builtin_trap();
  }
}

void putU32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    p[i] = static_cast<char>(v >> (8 * i));
  }
}

std::uint32_t getU32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

std::uint32_t crcOf(const char* p, std::size_t n) {
  return static_cast<std::uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(p), static_cast<uInt>(n)));
}

void fixHeader(char* h) {
  std::memcpy(h, "NWSR", 4);
  h[4] = 1;
  h[5] = h[6] = h[7] = 0;
  putU32(h + 40, crcOf(h, 40));
}

// Mode 2: make every header in the chain check out.
void fixUpRecords(std::string& file) {
  std::size_t offset = 0;
  while (offset + kHeaderBytes <= file.size()) {
    char* h = file.data() + offset;
    const std::uint32_t compressed = getU32(h + 20);
    const bool whole = compressed <= file.size() - offset - kHeaderBytes;
    if (whole) {
      putU32(h + 36, crcOf(h + kHeaderBytes, compressed));
    }
    fixHeader(h);
    if (!whole) {
      break;
    }
    offset += kHeaderBytes + compressed;
  }
}

// Mode 3: one valid record around an arbitrary payload.
std::string wrapPayload(std::string_view payload) {
  std::string record(kHeaderBytes + ZSTD_compressBound(payload.size()), '\0');
  const std::size_t n = ZSTD_compress(record.data() + kHeaderBytes, record.size() - kHeaderBytes,
                                      payload.data(), payload.size(), 1);
  check(ZSTD_isError(n) == 0U);
  record.resize(kHeaderBytes + n);
  char* h = record.data();
  h[8] = 1;  // sequence 1 (little-endian u64)
  putU32(h + 16, static_cast<std::uint32_t>(payload.size()));
  putU32(h + 20, static_cast<std::uint32_t>(n));
  putU32(h + 24, 1);  // lines
  putU32(h + 36, crcOf(h + kHeaderBytes, n));
  fixHeader(h);
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
  Fixture() : errors(registry) {
    spdlog::set_level(spdlog::level::off);  // recovery reports on almost every input
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

void checkSpool(const std::string& file) {
  static Fixture fixture;
  const fs::path dir = fixture.base / "run";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  const fs::path segment = dir / "00000000000000000001.seg";
  {
    std::ofstream out(segment, std::ios::binary);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
    check(out.good());
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
    check(spool.bytes() <= file.size());
    check(spool.batches() <= file.size() / kHeaderBytes);
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
  auto front = (*reopened)->front();
  check(front != nullptr && front->sequence == last && front->lines == 1 &&
        front->streams.size() == 1 && front->streams[0].entries[0].line == "line");
  reopened->reset();
  fs::remove_all(dir, ec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      checkCodec(rest);
      break;
    case 1:
      checkSpool(std::string(rest));
      break;
    case 2: {
      std::string file(rest);
      fixUpRecords(file);
      checkSpool(file);
      break;
    }
    default:
      checkCodec(rest);
      checkSpool(wrapPayload(rest));
      break;
  }
  return 0;
}
