// LogPipeline: the log path as the agent runs it. Container log tailer and journal reader write
// into the batcher; the batcher spools; the shipper sends from the spool to Loki (or to the local
// rolling file when no Loki URL is configured). The agent calls tick() from its event loop.
//
// Starting is two steps. create() takes what the config decides (the destination, its
// credentials) and fails only on those: a config error stops the agent. open() then takes the
// state dir (the spool, the positions files) and fails while it is unusable (read-only, a file
// where a directory belongs, ...): the agent keeps running without the log path and calls open()
// again later. Until open() succeeded, tick() does nothing and submitEvent() refuses.
//
// What a reader gets wrong: the order of shutdown. The open batch is spooled and its positions
// committed first, then the shipper is stopped (a send in flight is cancelled; its batch stays in
// the spool), so a restart loses and repeats nothing Loki would not deduplicate.
//
// What a reader gets wrong about encoding: this is where the batcher gets its encoder, from the
// destination (LogExporter::batchEncoder(): Loki's protobuf API has one), and where the shipper
// and the file destination get Loki's decoder for spooled bodies, whatever the destination is now:
// a body in the spool may have been written for Loki before a restart with another config.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/container_metadata.h"
#include "pipeline/http_destination.h"
#include "pipeline/log_record.h"
#include "pipeline/log_tenant_router.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

struct Config;

// loki.*: the log path's destination, as the config file says it. With no url, logs go to the
// spool and a rolling local file under paths.state_dir. Here, not next to LokiExporterOptions,
// because it configures two exporters and the choice between them: local_file_max_bytes is the
// file exporter's, the rest Loki's (encoding a string, as in the file; create() turns it into the
// LokiEncoding and the password file into the password).
struct LokiConfig : HttpDestinationConfig {
  std::string tenant;        // X-Scope-OrgID of the default tenant ("" sends none)
  LogTenantOptions tenants;  // other tenants by namespace or pod label (agent/config_tenants.cpp)
  std::string encoding = "protobuf";  // protobuf (snappy) or json (gzip)
  std::chrono::milliseconds timeout{10000};
  std::uint64_t local_file_max_bytes = 64ULL << 20;
};

class LogPipeline {
 public:
  // metadata (optional, not owned) gives Job pods their `job` stream label. Touches no file of the
  // state dir; the errors are config errors.
  static std::expected<std::unique_ptr<LogPipeline>, std::string> create(
      const Config& config, SelfMetrics& self, ErrorReporter& errors,
      ContainerMetadata* metadata = nullptr);
  // Opens the spool and checks the positions files' directory, then builds the readers, the
  // batcher and the shipper. The error names the path and the reason; call again later. A no-op
  // once it succeeded.
  std::expected<void, std::string> open();
  [[nodiscard]] bool isOpen() const;
  ~LogPipeline();
  LogPipeline(const LogPipeline&) = delete;
  LogPipeline& operator=(const LogPipeline&) = delete;

  // Starts the shipper; after open().
  void start();
  // Reads what is new (within a budget), closes batches that are due, updates the gauges. Returns
  // true when reading stopped on its budget with more to read (call again soon).
  bool tick();
  // The last tick kept a full batch because the shipper is taking batches and the spool's memory
  // is full (LogBatcher::waitingForConsumer): tick again when the shipper has sent one (onShipped).
  [[nodiscard]] bool waitingForShipper() const;
  // listener runs on the shipper's thread after each batch it sent (or dropped); set before
  // start(). The agent posts a tick from it while waitingForShipper().
  void onShipped(std::function<void()> listener);
  // Descriptors that become readable when there is something new to read (the tailer's inotify
  // descriptor, the journal's); the agent wakes tick() on them. Owned by the pipeline.
  [[nodiscard]] std::vector<int> watchFds() const;

  // Puts one event line (the agent's own, such as a Job outcome) into the log path under its own
  // stream labels. key comes back through the durable listener once the line is in the spool;
  // until then the caller keeps it and submits it again after a restart (the same line with the
  // same timestamp, which Loki stores once). False when the path is full now: try again later.
  bool submitEvent(const Labels& labels, LogEntry entry, const std::string& key);
  void onEventDurable(std::function<void(std::string_view key)> listener);

  // Spools the open batch, commits, and stops the shipper within grace.
  void stop(std::chrono::milliseconds grace);

 private:
  LogPipeline();
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden
