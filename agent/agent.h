// Agent: the composition root. Builds the collectors, the renderer and the HTTP server from a
// Config, runs the collection cycle on an asio timer and stops on SIGTERM/SIGINT.
//
// What a reader gets wrong: the collection cycle runs on the io_context's one thread; HTTP
// requests run on the HTTP server's own io thread and handler pool and only read what a cycle
// published.
#pragma once

#include <atomic>
#include <memory>

#include "agent/config.h"

namespace nodewarden {

class Agent {
 public:
  explicit Agent(Config config);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs until a signal arrives. Returns the process exit code (0 clean, 1 start-up failure).
  int run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Raises RLIMIT_NOFILE's soft limit to its hard limit: the collector keeps one descriptor per
// cgroup file open (about 15 per container). Returns the new soft limit.
std::uint64_t raiseFileLimit();

}  // namespace nodewarden
