// WriteRequestEncoder: turns one collection cycle's Prometheus text exposition (exactly what
// /metrics serves: the cAdvisor-named container series, the node series, the detector's and the
// agent's own nodewarden_* series) into remote-write 1.0 requests: prometheus.WriteRequest
// protobufs, each series with its labels sorted by name (__name__ included) and one sample at the
// cycle's collection time, at most max_samples_per_send samples per request.
//
// What a reader gets wrong: the input is the rendered exposition, not the snapshot, on purpose:
// one renderer decides names, labels and values, so a dashboard shows the same series whether
// Prometheus scraped /metrics or received them by remote write. The requests are not compressed
// here (the spool keeps them zstd-compressed; the exporter snappy-compresses each one as it is
// sent).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/metric_write_batch.h"

namespace nodewarden {

// One line of the exposition, parsed: `name{label="value",...} value [timestamp]`.
struct ExpositionSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped, in the line's order
  double value = 0;
};

// Parses a sample line (comments and blank lines are not samples). False when the line does not
// follow the text format 0.0.4.
bool parseExpositionLine(std::string_view line, ExpositionSample& out);

class WriteRequestEncoder {
 public:
  explicit WriteRequestEncoder(std::size_t max_samples_per_send);
  ~WriteRequestEncoder();
  WriteRequestEncoder(const WriteRequestEncoder&) = delete;
  WriteRequestEncoder& operator=(const WriteRequestEncoder&) = delete;

  // Starts a cycle: every sample until finish() gets this timestamp.
  void begin(std::int64_t timestamp_ms);
  // Feeds exposition text in chunks of any size (a line may span chunks).
  void add(std::string_view chunk);
  // Ends the cycle and returns its requests, in exposition order.
  std::vector<MetricWriteBatch> finish();

  // Sample lines of the last cycle that did not parse (left out), and the first of them.
  [[nodiscard]] std::uint64_t skippedLines() const { return skipped_; }
  [[nodiscard]] const std::string& firstSkipped() const { return first_skipped_; }

 private:
  struct Request;
  void line(std::string_view text);
  void flushRequest();

  std::size_t max_samples_;
  std::int64_t timestamp_ms_ = 0;
  std::string partial_;  // a line cut by the end of a chunk
  ExpositionSample sample_;
  std::unique_ptr<Request> request_;
  std::vector<MetricWriteBatch> batches_;
  std::uint64_t skipped_ = 0;
  std::string first_skipped_;
};

}  // namespace nodewarden
