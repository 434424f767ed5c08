// PodNetworkReader: a pod's network counters, per interface, from /proc/<pid>/net/dev of one
// process in the pod's network namespace (under the host procfs), as cAdvisor reads them
// (container/libcontainer/handler.go, networkStatsFromProc). The process is found in the
// cgroup.procs of one of the pod's container cgroups: the pod-level cgroup holds no process in
// either cgroup version.
//
// What a reader gets wrong: an open /proc/<pid>/net/dev holds a reference on the network
// namespace, not on the process. It goes on reading after the process exited, and after the
// namespace lost its last process (the kernel keeps it alive for the descriptor), so a failed or
// empty read never says that the pod's sandbox was replaced. The process's /proc/<pid> directory
// is therefore kept open too and looked at every cycle; once it is gone both are closed (which
// lets the old namespace go) and a process is found again. The two descriptors come out of the
// collector's descriptor budget; past it, the pod keeps its pid and its namespace's net/dev inode
// instead and opens net/dev each cycle: a pid reused by a process elsewhere shows another inode.
//
// A pod in the node's network namespace (hostNetwork) is not read at all: its counters are the
// node's, and summing them once per such pod would count the node's traffic many times over.
// How that is told without ptrace rights: readlink of /proc/<pid>/ns/net needs
// PTRACE_MODE_READ on the process, which the agent (uid 0 with every capability dropped but
// DAC_READ_SEARCH) lacks for other users' processes. /proc/<pid>/net/dev however is a procfs
// entry registered once per network namespace (net/core/net-procfs.c, dev_proc_net_init), so its
// inode number is the namespace's and stat() needs no ptrace check. Verified on Linux 6.18 with
// `ip netns add`: /proc/1/net/dev, /proc/self/net/dev gave one inode, a process in the new
// namespace another; under `setpriv --bounding-set=-all,+dac_read_search` readlink of a nobody-
// owned process's ns/net failed with EACCES while stat() of its net/dev answered. The node's is
// <proc_root>/1/net/dev (the host's init).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <expected>
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

// What parseNetDev made of a file.
struct NetDevResult {
  std::uint8_t interfaces = 0;  // written to out, in the file's order
  std::size_t ignored = 0;      // loopback and the other names cAdvisor leaves out
  std::size_t over_bound = 0;   // interface lines past out's size, skipped
  std::size_t garbled = 0;      // lines not in the kernel's format, skipped
};

// Parses /proc/<pid>/net/dev (net/core/net-procfs.c dev_seq_show): two header lines with '|',
// then "<name>: " and 16 decimal counters, of which 1-4 are received bytes, packets, errs, drop
// and 9-12 the same transmitted. A line in another form is skipped and counted in garbled, the
// rest still read. Allocates nothing.
NetDevResult parseNetDev(std::string_view text, std::span<NetInterfaceStat> out);

// cAdvisor's isIgnoredDevice: names starting with "lo", "veth" or "docker", in any case.
bool isIgnoredNetInterface(std::string_view name);

// What the reader keeps per pod (its TrackedCgroup holds it).
struct PodNetwork {
  int pid_dir_fd = -1;  // <proc_root>/<pid>, to tell when the process is gone
  PreadFile dev;        // <proc_root>/<pid>/net/dev
  // Past the descriptor budget nothing is kept open: the process and its namespace's inode.
  pid_t pid = 0;
  ino_t ino = 0;
  bool host_network = false;
  std::uint32_t attempts = 0;      // finds in a row that found no process
  std::uint64_t next_attempt = 0;  // cycle of the next find
  std::uint64_t tried_cycle = 0;   // cycle of the last find

  PodNetwork() = default;
  PodNetwork(const PodNetwork&) = delete;
  PodNetwork& operator=(const PodNetwork&) = delete;
  ~PodNetwork() { close(); }
  // Closes what is open; the caller gives back keptDescriptors() to the budget first.
  void close();
  [[nodiscard]] bool open() const { return dev.isOpen() || pid > 0; }
  [[nodiscard]] std::size_t keptDescriptors() const { return dev.isOpen() ? 2 : 0; }
};

class PodNetworkReader {
 public:
  // budget: the collector's descriptor budget (not owned), charged 2 per pod kept open.
  PodNetworkReader(std::filesystem::path proc_root, DescriptorBudget& budget,
                   ErrorReporter& errors);
  ~PodNetworkReader();
  PodNetworkReader(const PodNetworkReader&) = delete;
  PodNetworkReader& operator=(const PodNetworkReader&) = delete;

  // Reads the pod's counters into s (net, net_interfaces, net_present). False when the pod has
  // no process to read yet or its process is gone (then closed): find() one. A host-network pod
  // reads nothing and returns true.
  bool read(PodNetwork& pod, CgroupSample& s, std::span<char> buf);

  // Whether a find for the pod is due this cycle (no process, not host network, backoff over).
  [[nodiscard]] static bool wantsProcess(const PodNetwork& pod, std::uint64_t cycle);

  // Looks for a process in the cgroup at dir below h's root (one of the pod's containers) and
  // adopts it. True when the pod has a process (or was found in the node's namespace).
  bool find(PodNetwork& pod, const Hierarchy& h, const std::string& dir, std::uint64_t cycle,
            std::span<char> buf);

  // After a cycle's finds: a pod still without a process is tried again later, backing off to
  // every 64 cycles, so a pod whose processes cannot be seen costs little.
  static void backOff(PodNetwork& pod, std::uint64_t cycle);

 private:
  bool available();
  bool adopt(PodNetwork& pod, pid_t pid);
  void release(PodNetwork& pod);
  std::expected<std::string_view, int> readByPid(PodNetwork& pod, std::span<char> buf);

  std::filesystem::path proc_root_;
  DescriptorBudget& budget_;
  ErrorReporter& errors_;
  int proc_fd_ = -1;  // -2: could not be opened (said once)
  bool host_known_ = false;
  dev_t host_dev_ = 0;
  ino_t host_ino_ = 0;
};

}  // namespace nodewarden::cgroup
