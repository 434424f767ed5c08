// RunDelayReader: a container's run-queue delay, the sum over its threads of the time they waited
// on a run queue, from each thread's /proc/<tid>/schedstat ("<on-cpu ns> <run_delay ns>
// <timeslices>", Documentation/scheduler/sched-stats.rst). The thread list comes from the
// container's cgroup: cgroup.threads in the v2 tree, tasks in the v1 cpu hierarchy.
//
// What a reader gets wrong: run_delay is per thread and a thread's counter leaves with it, so the
// container's counter is not the sum of what its threads show now. It grows by each thread's
// increase between two reads (a RunDelay per container remembers every thread's last value); a
// thread seen for the first time only sets its starting point, and one that exited takes nothing
// away, so the counter never goes back.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "collectors/cgroup/cgroup_hierarchies.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::cgroup {

// One container's threads and the run_delay each had when last read.
struct RunDelay {
  struct Thread {
    std::uint64_t delay_ns = 0;
    std::uint64_t generation = 0;
  };
  std::unordered_map<pid_t, Thread> threads;
  std::uint64_t total_ns = 0;
  std::uint64_t generation = 0;
  bool started = false;
};

class RunDelayReader {
 public:
  RunDelayReader(std::filesystem::path proc_root, std::size_t max_threads, ErrorReporter& errors);
  ~RunDelayReader();
  RunDelayReader(const RunDelayReader&) = delete;
  RunDelayReader& operator=(const RunDelayReader&) = delete;

  // Opens proc_root the first time; false when it cannot be (reported once): no delay is read.
  bool available();

  // Reads the thread list `list` ("cgroup.threads" or "tasks") of the cgroup at dir below h's
  // root, and each thread's schedstat, into rd. Returns rd's counter in ns, or nullopt when none
  // could be had this cycle (the cgroup just went away, more threads than max_threads, no /proc):
  // the field is then left absent. buf holds the thread list.
  std::optional<std::uint64_t> read(const Hierarchy& h, const std::string& dir, const char* list,
                                    RunDelay& rd, std::span<char> buf);

 private:
  std::filesystem::path proc_root_;
  std::size_t max_threads_;
  ErrorReporter& errors_;
  int proc_fd_ = -1;  // -2: could not be opened (said once)
};

}  // namespace nodewarden::cgroup
