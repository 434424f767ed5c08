// ChildProcess: a program the tests or the demo start (the agent, Prometheus, a workload), with its
// output in a file and a guaranteed end: the destructor terminates and reaps it.
//
// What a reader gets wrong: only the direct child is signalled and reaped here. A workload that
// forks (stress-ng's workers) is ended through its cgroup by NodeBuilder, not through this class;
// the child gets PR_SET_PDEATHSIG so that it dies with the test even when no destructor runs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nodewarden::testing {

struct SpawnOptions {
  // stdout and stderr go here (appended); empty: /dev/null.
  std::filesystem::path output;
  // Files the child writes its own pid into before exec, in order (cgroup.procs of each
  // hierarchy). A failed write fails the spawn.
  std::vector<std::filesystem::path> join_cgroup_procs;
  // The child leads its own process group, so a terminal's Ctrl-C reaches only the parent.
  bool new_process_group = true;
};

// fork + exec with the error of the exec (or of joining a cgroup) reported back to the parent.
// argv[0] is looked up in PATH.
std::expected<pid_t, std::string> spawnProcess(const std::vector<std::string>& argv,
                                               const SpawnOptions& options);

class ChildProcess {
 public:
  ChildProcess() = default;
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  static std::expected<ChildProcess, std::string> start(const std::vector<std::string>& argv,
                                                        const SpawnOptions& options);

  [[nodiscard]] pid_t pid() const { return pid_; }
  // False once it exited (reaps it then; exitStatus() tells how).
  bool running();
  // The wait status once reaped.
  [[nodiscard]] std::optional<int> exitStatus() const { return status_; }
  // SIGTERM, wait up to grace, then SIGKILL and wait. Returns the wait status (or nullopt when
  // there was no process).
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// "exited with 3", "killed by signal 9".
std::string describeWaitStatus(int status);

}  // namespace nodewarden::testing
