// RemoteWritePipeline: Prometheus remote write as the agent runs it. After every collection cycle
// the agent hands over the cycle (its collection time and a way to render its exposition); the
// pipeline's encoder thread renders it exactly as /metrics would, encodes it into remote-write
// requests (WriteRequestEncoder), appends them to the metric spool in <state-dir>/spool/
// remote_write, and the sender thread (MetricSender) posts them in order.
//
// What a reader gets wrong: nothing here runs on the collection thread except enqueue(), which
// only moves a small struct into a bounded queue; when the encoder is that far behind, the oldest
// queued cycle is dropped and its loss counted (reason "queue_full"). Once a request is in the
// spool it survives restarts and outages until the destination accepts it or the spool's byte
// bound pushes it out (counted as "spool_full").
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/http_destination.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

struct Config;

// remote_write.*: every cycle's series (the same as /metrics). Off with no url. The config
// section binds to this struct (agent/config.cpp's schema table); create() turns it into the
// exporter's options (reading the password file), the encoder's batch size and the spool's bound.
struct RemoteWriteConfig : HttpDestinationConfig {
  std::chrono::milliseconds timeout{30000};
  std::vector<std::string> headers;  // "Name: value", e.g. "X-Scope-OrgID: team-a"
  int max_samples_per_send = 2000;
  std::uint64_t spool_max_bytes = 256ULL << 20;
};

struct MetricCycle {
  std::int64_t timestamp_ms = 0;  // the collection time: every sample's timestamp
  // Writes the cycle's exposition through the sink, in chunks; called on the encoder thread.
  std::function<void(const std::function<void(std::string_view)>& sink)> render;
};

class RemoteWritePipeline {
 public:
  // Takes what the config decides (URL, credentials, headers); the errors are config errors. The
  // state dir is not touched here: open() does that.
  static std::expected<std::unique_ptr<RemoteWritePipeline>, std::string> create(
      const Config& config, SelfMetrics& self, ErrorReporter& errors);
  ~RemoteWritePipeline();
  RemoteWritePipeline(const RemoteWritePipeline&) = delete;
  RemoteWritePipeline& operator=(const RemoteWritePipeline&) = delete;

  // Opens the spool in <state-dir>/spool/remote_write. Fails while the state dir is unusable, with
  // the path and the reason; the agent calls it again later. A no-op once it succeeded.
  std::expected<void, std::string> open();
  [[nodiscard]] bool isOpen() const;
  // Starts the encoder and the sender; after open(). start(), enqueue() and stop() are called from
  // one thread (the agent's loop, then its shutdown).
  void start();
  // Never blocks on encoding or sending. Before start() the cycle is dropped and counted.
  void enqueue(MetricCycle cycle);
  // Encodes what is queued (so it is in the spool for the next start), then stops sending.
  void stop();

 private:
  RemoteWritePipeline();
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden
