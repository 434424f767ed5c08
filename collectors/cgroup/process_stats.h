// ProcessStatsReader: cAdvisor's process series of one cgroup. container_processes counts the
// lines of its cgroup.procs every cycle; container_threads, where no pids controller gives
// pids.current, counts its thread list (cgroup.threads or tasks); container_file_descriptors and
// container_sockets count the entries of /proc/<pid>/fd of its processes, a socket being an entry
// whose link reads "socket:[inode]" (cAdvisor's processStatsFromProcs in its libcontainer handler).
//
// What a reader gets wrong: the descriptor count is the expensive one (a getdents per process, a
// readlink per descriptor), so it is not taken every cycle. A cgroup is counted again once
// fd_scan_interval has passed since its last count, and a cycle counts at most
// max_fd_scan_processes processes: what is due past that waits for the next cycle, and the last
// count is exported meanwhile; cgroups first counted in the same cycle (all of them when the agent
// starts) are spread over the interval from then on. Reading another user's /proc/<pid>/fd needs
// CAP_DAC_READ_SEARCH to list it and ptrace read access (same uid and no more capabilities, or
// CAP_SYS_PTRACE) to readlink its entries: a process whose directory cannot be listed leaves both
// series absent, one whose links cannot be read leaves container_sockets absent; each is counted
// (cgroup/fd_scan_denied, cgroup/socket_scan_denied), never reported as 0.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "collectors/cgroup/cgroup_files.h"
#include "collectors/cgroup/cgroup_hierarchies.h"
#include "collectors/common/pread_file.h"
#include "pipeline/self_metrics.h"
#include "pipeline/snapshot.h"

namespace nodewarden::cgroup {

// One cgroup's pid lists, kept open within the descriptor budget, and its last descriptor count.
struct ProcessCounts {
  std::uint64_t fds = 0;
  std::uint64_t sockets = 0;
  bool has_fds = false;
  bool has_sockets = false;
  bool counted_once = false;
  std::chrono::steady_clock::time_point counted_at{};
  // cgroup.procs and the thread list, opened on the first read when the budget allows (then read
  // with one pread a cycle, as the interface files are); closed otherwise and read by path.
  PreadFile procs;
  PreadFile threads;
  bool opened = false;  // the open was tried (a closed file then means "by path")

  // Gives the kept descriptors back to the budget.
  void close(DescriptorBudget& budget);
};

// What one process's /proc/<pid>/fd gave.
struct FdCount {
  std::uint64_t fds = 0;
  std::uint64_t sockets = 0;
  bool listed = false;      // the directory could be listed (fds is the count)
  bool links_read = false;  // every link could be read (sockets is the count)
  int error = 0;            // errno of what failed first, 0 when nothing did
};

// The pids of a cgroup.procs / cgroup.threads / tasks file: one decimal number per line. Calls
// on_pid(pid) for each; returns the number of lines that are not a pid (garbled).
template <typename OnPid>
std::size_t forEachPid(std::string_view content, OnPid&& on_pid);

// Counts the lines of a pid list that are pids; bad gets the garbled ones.
std::size_t countPids(std::string_view content, std::size_t& bad);

class ProcessStatsReader {
 public:
  struct Limits {
    std::chrono::milliseconds fd_scan_interval{300000};
    std::size_t max_fd_scan_processes = 100;
  };
  ProcessStatsReader(std::filesystem::path proc_root, Limits limits, ErrorReporter& errors);
  ~ProcessStatsReader();
  ProcessStatsReader(const ProcessStatsReader&) = delete;
  ProcessStatsReader& operator=(const ProcessStatsReader&) = delete;

  // Opens proc_root the first time; false when it cannot be (reported once): no descriptors are
  // counted, processes and threads still are.
  bool available();

  // A new cycle at `now`: the per-cycle budget of processes starts again.
  void beginCycle(std::chrono::steady_clock::time_point now);

  // Reads the cgroup at dir below h: its cgroup.procs into kProcesses, when thread_list is not
  // null that list's length into kThreads, and when due its descriptors into pc; pc's last count
  // goes into kFileDescriptors / kSockets. buf holds the lists.
  void read(const Hierarchy& h, const std::string& dir, const char* thread_list, ProcessCounts& pc,
            CgroupSample& s, std::span<char> buf, DescriptorBudget& budget);

  // Counts /proc/<pid>/fd, for the reader and the tests.
  FdCount countFds(pid_t pid);

 private:
  bool countDue(std::string_view procs, ProcessCounts& pc, const Hierarchy& h,
                const std::string& dir);

  std::filesystem::path proc_root_;
  Limits limits_;
  ErrorReporter& errors_;
  int proc_fd_ = -1;  // -2: could not be opened (said once)
  std::chrono::steady_clock::time_point now_{};
  std::size_t scanned_ = 0;   // processes whose fds were counted this cycle
  std::uint64_t spread_ = 0;  // cgroups counted for the first time so far
  alignas(8) std::array<char, 16 * 1024> dents_{};
};

template <typename OnPid>
std::size_t forEachPid(std::string_view content, OnPid&& on_pid) {
  std::size_t bad = 0;
  while (!content.empty()) {
    const auto nl = content.find('\n');
    const std::string_view line = content.substr(0, nl);
    content.remove_prefix(nl == std::string_view::npos ? content.size() : nl + 1);
    if (line.empty()) continue;
    std::uint64_t pid = 0;
    bool ok = line.size() <= 10;
    for (char c : line) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      pid = pid * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (!ok || pid == 0 || pid > 0x7fffffff) {
      ++bad;
      continue;
    }
    on_pid(static_cast<pid_t>(pid));
  }
  return bad;
}

}  // namespace nodewarden::cgroup
