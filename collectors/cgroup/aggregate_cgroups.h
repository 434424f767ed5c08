// AggregateCgroups: the cgroups above the pods that cAdvisor also reports: the hierarchy root
// (id="/", the whole node), kubelet's kubepods root ("/kubepods", "/kubepods.slice") and its QoS
// cgroups ("/kubepods/burstable", "/kubepods.slice/kubepods-besteffort.slice"), read each cycle
// with the same CgroupFiles as pods and containers, into Snapshot::aggregates.
//
// What a reader gets wrong: these samples have no pod uid, so they never go into
// Snapshot::cgroups, which the consumers keyed by pod uid (the detector, Job outcomes, the pod
// and workload series) read; only the exposition reads Snapshot::aggregates. The root is not a
// cgroup like the others: cgroup v2 has no memory.current, memory.max, cpu.max or cpu.weight at
// the root, so its usage comes from /proc/meminfo (MemTotal - MemFree, as runc's fs2 statMemory
// does for cAdvisor) and its memory limit is the machine's MemTotal on v1 and v2 alike (cAdvisor's
// GetSpec for "/"). The QoS cgroups are found when the hierarchies are searched (every
// root_search_interval), not every cycle: kubelet creates them once, at its start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/cgroup/cgroup_files.h"
#include "collectors/cgroup/cgroup_hierarchies.h"
#include "collectors/cgroup/cgroup_parsers.h"
#include "collectors/cgroup/dir_lister.h"
#include "collectors/common/pread_file.h"
#include "pipeline/self_metrics.h"
#include "pipeline/snapshot.h"

namespace nodewarden::cgroup {

// /proc/meminfo's MemTotal and MemFree in bytes (proc(5): "MemTotal:  16318412 kB").
struct MeminfoTotals {
  std::uint64_t total_bytes = 0;
  std::uint64_t free_bytes = 0;
};
[[nodiscard]] std::expected<MeminfoTotals, ParseError> parseMeminfoTotals(std::string_view text);

class AggregateCgroups {
 public:
  AggregateCgroups(const CgroupHierarchies& hierarchies, const std::filesystem::path& proc_root,
                   ErrorReporter& errors);
  ~AggregateCgroups();
  AggregateCgroups(const AggregateCgroups&) = delete;
  AggregateCgroups& operator=(const AggregateCgroups&) = delete;

  // After a search of the hierarchies: finds the root, the kubepods roots of the primary
  // hierarchy and their QoS cgroups, and opens their files in every hierarchy, unless the same
  // were found last time and the layout did not change.
  void afterSearch(std::size_t descriptor_limit, bool layout_changed);

  // Reads every aggregate cgroup into its sample and appends those still there to
  // into.aggregates. Allocates nothing. False when one was removed: search again.
  [[nodiscard]] bool collect(Snapshot& into, std::span<char> buf);

  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] std::size_t openFiles() const { return budget_.open; }

 private:
  struct Entry {
    CgroupSample sample;  // id as cAdvisor names it; container, pod, namespace, image empty
    bool root = false;
    std::vector<CgroupFiles> files;  // one per hierarchy; not located where it is absent
  };
  void clear();
  void add(std::string id, QosClass qos, bool root, const std::vector<std::string>& rel);
  [[nodiscard]] bool read(Entry& e, std::span<char> buf);
  void readMeminfo(Entry& e, std::span<char> buf);
  void readNetDev(Entry& e, std::span<char> buf);

  const CgroupHierarchies& hierarchies_;
  ErrorReporter& errors_;
  std::filesystem::path meminfo_path_;
  PreadFile meminfo_;
  // The node's network, on the root's series as cAdvisor's raw handler reads it (pid 1's
  // namespace): the one place host-network pods' traffic is counted, once.
  std::filesystem::path net_dev_path_;
  PreadFile net_dev_;
  std::vector<std::unique_ptr<Entry>> entries_;  // stable addresses: the snapshot points at them
  std::vector<std::string> found_;               // the ids found by the last search
  bool stale_ = false;                           // one was removed since: open them all again
  DescriptorBudget budget_;
  DirLister lister_;
};

}  // namespace nodewarden::cgroup
