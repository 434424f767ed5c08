// Payload layout: "NWMB" | samples u64 LE | timestamp ms i64 LE | request bytes.
#include "pipeline/metric_write_batch.h"

#include <array>
#include <cstring>

namespace nodewarden {
namespace {

constexpr std::array<char, 4> kMagic = {'N', 'W', 'M', 'B'};
constexpr std::size_t kFixedBytes = 4 + 8 + 8;

void putU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

std::uint64_t getU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

}  // namespace

std::string encodeMetricWriteBatch(const MetricWriteBatch& batch) {
  std::string out;
  out.reserve(kFixedBytes + batch.request.size());
  out.append(kMagic.data(), kMagic.size());
  putU64(out, batch.samples);
  putU64(out, static_cast<std::uint64_t>(batch.timestamp_ms));
  out.append(batch.request);
  return out;
}

std::expected<MetricWriteBatch, std::string> decodeMetricWriteBatch(std::string_view bytes) {
  if (bytes.size() < kFixedBytes || std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    return std::unexpected("not a remote-write record");
  }
  MetricWriteBatch batch;
  batch.samples = getU64(bytes.data() + 4);
  batch.timestamp_ms = static_cast<std::int64_t>(getU64(bytes.data() + 12));
  batch.request.assign(bytes.substr(kFixedBytes));
  return batch;
}

}  // namespace nodewarden
