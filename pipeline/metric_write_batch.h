// MetricWriteBatch: one Prometheus remote-write request as it waits in the metric spool: the
// serialized prometheus.WriteRequest (protobuf, not yet snappy-compressed) and how many samples it
// carries.
//
// What a reader gets wrong: the bytes are the request itself, built once per collection cycle by
// the remote-write encoder; the spool and the sender never look inside, so a replay after a
// restart sends exactly what would have been sent before it.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace nodewarden {

struct MetricWriteBatch {
  std::string request;            // a serialized prometheus.WriteRequest
  std::uint64_t samples = 0;      // samples in it (for the counters and the spool's loss count)
  std::int64_t timestamp_ms = 0;  // the collection time of its samples
  std::uint64_t sequence = 0;     // assigned by the spool on append
  bool operator==(const MetricWriteBatch&) const = default;
};

// The spool's record payload for a MetricWriteBatch (samples, timestamp, then the request bytes).
// decode rejects a payload too short for its fixed fields.
std::string encodeMetricWriteBatch(const MetricWriteBatch& batch);
std::expected<MetricWriteBatch, std::string> decodeMetricWriteBatch(std::string_view bytes);

}  // namespace nodewarden
