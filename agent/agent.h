// Agent: the composition root. Builds the collectors, the renderer and the HTTP server from a
// Config, runs the collection cycle on an asio timer, reloads on SIGHUP and stops on SIGTERM/SIGINT
// (SIGUSR1, SIGUSR2 and SIGALRM are logged once and ignored).
//
// What a reader gets wrong: the collection cycle runs on the io_context's one thread; HTTP
// requests run on the HTTP server's own io thread and handler pool and only read what a cycle
// published. And a state dir that cannot be used does not stop the agent: the parts that keep
// state there (the log path, remote write's spool, Job outcomes) retry their start while metrics
// and the detector go on, and /readyz answers 503 naming them. Only config errors stop the start.
// A cycle's consumers (Job outcomes, DetectorStage, PodSeriesStage, MetricsPublication,
// RemoteWriteStage) are SnapshotConsumers called in one loop; /metrics and remote write both
// render what MetricsPublication published (agent/metrics_publication.h), so neither reads the
// pod and Job series' registry directly.
#pragma once

#include <atomic>
#include <expected>
#include <functional>
#include <memory>
#include <string>

#include "agent/config.h"

namespace nodewarden {

class Agent {
 public:
  explicit Agent(Config config);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads the config again as at start (the file, then the same flags over it); SIGHUP calls it.
  using Reloader = std::function<std::expected<Config, ConfigError>()>;
  // source names the file in the log. Without a reloader, SIGHUP changes nothing. Before run().
  void setReloader(Reloader reloader, std::string source);

  // Runs until SIGTERM or SIGINT. Returns the process exit code (0 clean, 1 start-up failure:
  // the HTTP listener, or a config error found while building a component).
  int run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Raises RLIMIT_NOFILE's soft limit to its hard limit: the collector keeps one descriptor per
// cgroup file open (about 15 per container). Returns the new soft limit.
std::uint64_t raiseFileLimit();

}  // namespace nodewarden
