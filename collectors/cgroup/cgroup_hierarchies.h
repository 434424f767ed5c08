// CgroupHierarchies: which cgroup hierarchies a host has (v2, or the v1 controllers with an
// optional unified tree), what each is read for, and where kubelet's tree ("kubepods" /
// "kubepods.slice") sits below each of them. The root discovery of CgroupCollector; it runs at
// start, every root_search_interval, and whenever kubelet's tree went away. Rare: it may allocate.
//
// What a reader gets wrong: kubelet's tree is searched for separately in every hierarchy, by name
// and breadth-first down to max_depth, because each controller may nest it under another parent
// (memory at machine.slice/node1/kubepods while cpu has it at the top). One mount reached by two
// names ("cpu" and "cpuacct" both linking to "cpu,cpuacct") is one hierarchy with both roles.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "collectors/cgroup/dir_lister.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::cgroup {

// What one hierarchy is read for.
enum Role : unsigned {
  kRoleCpuV1 = 1U << 0,
  kRoleCpuAcct = 1U << 1,
  kRoleMemV1 = 1U << 2,
  kRoleBlkioV1 = 1U << 3,
  kRoleCpuV2 = 1U << 4,
  kRoleMemV2 = 1U << 5,
  kRoleIoV2 = 1U << 6,
  kRolePsi = 1U << 7,
  kRolePidsV1 = 1U << 8,  // the v1 pids hierarchy: pids.current, pids.max
  kRolePidsV2 = 1U << 9,  // the same files in the v2 tree (where the pids controller is on)
};

struct Hierarchy {
  std::string label;  // "v2", "cpu", "cpuacct", "memory", "blkio", "pids", "unified"
  std::string path;
  int fd = -1;  // the hierarchy's root directory, open while it is known
  unsigned roles = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  std::vector<std::string> roots;  // kubepods roots relative to path, sorted
};

class CgroupHierarchies {
 public:
  CgroupHierarchies(std::filesystem::path cgroup_root, int max_depth, ErrorReporter& errors);
  ~CgroupHierarchies();
  CgroupHierarchies(const CgroupHierarchies&) = delete;
  CgroupHierarchies& operator=(const CgroupHierarchies&) = delete;

  // Detects the hierarchies again and searches each for kubelet's tree. Returns true when the
  // layout (hierarchies, their roles, their roots) differs from the previous search's: what was
  // found below the old one must be found again. A hierarchy's index stays the same otherwise.
  bool search();

  [[nodiscard]] std::span<const Hierarchy> all() const { return hierarchies_; }
  [[nodiscard]] const Hierarchy& operator[](std::size_t i) const { return hierarchies_[i]; }
  [[nodiscard]] std::size_t size() const { return hierarchies_.size(); }
  // The hierarchy in which pods and containers are listed: the first with a kubepods root of
  // v2, cpuacct, cpu, memory, blkio, the unified tree. -1: kubelet's tree was not found.
  [[nodiscard]] int primary() const { return primary_; }
  [[nodiscard]] std::size_t rootCount() const;

 private:
  void close();
  void detect();
  bool add(const std::string& label, const std::filesystem::path& path, unsigned roles);
  void findRoots(Hierarchy& h);
  [[nodiscard]] std::vector<std::string> signature() const;

  std::filesystem::path cgroup_root_;
  int max_depth_;
  ErrorReporter& errors_;
  std::vector<Hierarchy> hierarchies_;
  int primary_ = -1;
  DirLister lister_;
};

}  // namespace nodewarden::cgroup
