// Writes the seed corpus of fuzz_spool_reader (tests/fuzz/corpus/spool): inputs for each of its
// modes, made from segments and ack files the spool itself wrote, with the records also converted
// to every older version (1 and 2 with crc32, 3 and 4 with XXH3: 44-byte headers without the units
// before the record). Run by hand when the record format changes:
//   make_spool_corpus <source>/tests/fuzz/corpus/spool
//
// What a reader gets wrong: the files start with the fuzz target's mode byte; they are not
// segment files as they are.
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/loki/loki_push_body.h"
#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"
#include "pipeline/spool_format.h"

namespace {

namespace fs = std::filesystem;
using namespace nodewarden;

LogBatch makeBatch(int id, int lines, bool body) {
  LogBatch batch;
  LogBatch::Stream s;
  s.labels = {{"namespace", "ns"}, {"pod", "pod-" + std::to_string(id)}};
  for (int i = 0; i < lines; ++i) {
    LogEntry e;
    e.timestamp_ns = 1'700'000'000'000'000'000 + id * 1000 + i;
    e.line = "batch " + std::to_string(id) + " line " + std::to_string(i);
    e.metadata = {{"pod_uid", "uid"}};
    batch.bytes += e.line.size();
    s.entries.push_back(std::move(e));
  }
  batch.lines = static_cast<std::size_t>(lines);
  batch.streams.push_back(std::move(s));
  LogCheckpoint cp;
  cp.source = "/var/log/pods/ns_pod_uid/app/0.log";
  cp.file = {1, 2, 3, 4};
  cp.offset = 99;
  batch.checkpoints.push_back(std::move(cp));
  if (body) {
    LokiPushWriter().body(batch, batch.encoded_body);
    batch.streams.clear();
  }
  return batch;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void writeSeed(const fs::path& dir, const std::string& name, char mode, const std::string& data) {
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.put(mode);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Records of versions 5 and 6 rewritten as 1 and 2 (crc32) or 3 and 4 (XXH3).
std::string toOlderVersion(const std::string& segment, bool xxh3) {
  namespace format = spool_format;
  std::string out;
  for (std::size_t at = 0; at < segment.size();) {
    auto h = format::parseRecord(segment.data() + at, segment.size() - at);
    if (!h) break;
    const std::string_view payload(segment.data() + at + h->headerBytes(), h->compressed);
    at += h->recordBytes();
    h->version = static_cast<std::uint8_t>(h->version - (xxh3 ? 2 : 4));
    h->units_before.reset();
    h->payload_crc = format::payloadChecksum(h->version, payload);
    std::string header(h->headerBytes(), '\0');
    format::writeHeader(*h, header.data());
    out += header;
    out += payload;
  }
  return out;
}

// Mode 4's framing of one file.
std::string dirEntry(unsigned char kind, const std::string& bytes) {
  std::string out(1, static_cast<char>(kind));
  out.push_back(static_cast<char>(bytes.size() & 0xff));
  out.push_back(static_cast<char>((bytes.size() >> 8) & 0xff));
  return out + bytes.substr(0, 0xffff);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  fs::create_directories(out);
  std::string tmpl = (fs::temp_directory_path() / "spool-corpus-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return 1;
  const fs::path tmp = tmpl;
  prometheus::Registry registry;
  ErrorReporter errors(registry);

  // One segment with zstd records and stored push bodies.
  SpoolOptions o;
  o.dir = tmp / "one";
  o.fsync = false;
  {
    auto spool = Spool::open(o, errors).value();
    for (int i = 1; i <= 4; ++i) {
      if (!spool->append(makeBatch(i, i + 1, i % 2 == 0))) return 1;
    }
  }
  std::string segment;
  for (const auto& e : fs::directory_iterator(o.dir)) {
    if (e.path().extension() == ".seg") segment = readFile(e.path());
  }
  writeSeed(out, "segment-v5-v6", 1, segment);
  writeSeed(out, "fixup-v5-v6", 2, segment);
  writeSeed(out, "segment-v1-v2", 1, toOlderVersion(segment, false));
  writeSeed(out, "fixup-v1-v2", 2, toOlderVersion(segment, false));
  writeSeed(out, "segment-v3-v4", 1, toOlderVersion(segment, true));
  writeSeed(out, "fixup-v3-v4", 2, toOlderVersion(segment, true));
  writeSeed(out, "codec-zstd", 0, encodeLogBatch(makeBatch(7, 3, false)));
  writeSeed(out, "codec-body", 0, encodeLogBatch(makeBatch(8, 3, true)));
  writeSeed(out, "wrap", 3, encodeLogBatch(makeBatch(9, 2, false)));

  // A directory: one record per segment, the first acknowledged, and the ack file; then the same
  // with the middle segment missing (a gap recovery counts from its neighbours).
  SpoolOptions many = o;
  many.dir = tmp / "many";
  many.segment_bytes = 1;
  {
    auto spool = Spool::open(many, errors).value();
    for (int i = 1; i <= 4; ++i) {
      if (!spool->append(makeBatch(i, 2, i % 2 == 1))) return 1;
    }
    spool->acknowledge(spool->front()->sequence);
  }
  std::string whole = dirEntry(0, readFile(many.dir / "ack"));
  std::string gap = whole;
  for (unsigned char seq = 2; seq <= 4; ++seq) {
    std::string name = std::to_string(seq);
    name.insert(0, 20 - name.size(), '0');
    const std::string entry = dirEntry(seq, readFile(many.dir / (name + ".seg")));
    whole += entry;
    if (seq != 3) gap += entry;
  }
  writeSeed(out, "directory", 4, whole);
  writeSeed(out, "directory-gap", 4, gap);
  fs::remove_all(tmp);
  return 0;
}
