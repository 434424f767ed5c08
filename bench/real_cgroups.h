// RealCgroupTree: kubelet's cgroupfs layout built as real cgroups on the running kernel (cgroup v1
// cpu, cpuacct, memory, blkio plus the v2 mount at unified/ for PSI), so that the collector and
// the read floor pay what the kernel charges to generate cgroup files (seq_file show functions),
// which tmpfs copies of the same files do not.
//
// What a reader gets wrong: the cgroups are created, never populated. No process is moved into
// them, so the counters are zero, but every read still runs the kernel's show function, which is
// what the comparison is about. Each hierarchy's tree sits below the path /proc/self/cgroup gives
// for that hierarchy (the memory one is this process's own memory cgroup), under a parent named
// nodewarden-bench-<pid>; every directory made is registered before the next one, and removed
// bottom-up by remove(), by the destructor, and by the SIGINT/SIGTERM/SIGHUP/SIGQUIT handler.
#pragma once

#include <cstddef>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/synthetic_tree.h"

namespace nodewarden::bench {

struct RealTreeOptions {
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::size_t containers = 100;
  std::uint64_t seed = 1;
  // Also list the files of the aggregate cgroups as read: kubepods and its QoS cgroups here, the
  // real hierarchy roots, and /proc/meminfo (collectors.cgroup.aggregates).
  bool aggregates = false;
};

class RealCgroupTree {
 public:
  RealCgroupTree() = default;
  ~RealCgroupTree();
  RealCgroupTree(const RealCgroupTree&) = delete;
  RealCgroupTree& operator=(const RealCgroupTree&) = delete;

  // Installs the signal handlers (once) and creates the tree. On failure, whatever was created
  // is removed before returning.
  std::expected<void, std::string> build(const RealTreeOptions& options);

  // rmdir of every created cgroup, deepest first. Returns how many could not be removed.
  std::size_t remove();
  // Searches every hierarchy used for a directory of this tree's parent name; empty when clean.
  [[nodiscard]] std::vector<std::string> leftovers() const;

  // root = the cgroup root; read_files = every file of every pod and container cgroup of this
  // tree that the collector reads per cycle (those that exist on this kernel); list_dirs =
  // kubepods, QoS and pod directories in every hierarchy. files_written = cgroups created.
  [[nodiscard]] const SyntheticTree& tree() const { return tree_; }
  // "nodewarden-bench-<pid>": part of every path of this tree, and of no one else's.
  [[nodiscard]] const std::string& parentName() const { return parent_; }
  // Below-root base of each hierarchy, e.g. "memory/process_api/<hex>".
  [[nodiscard]] const std::vector<std::string>& bases() const { return bases_; }
  [[nodiscard]] std::size_t created() const { return created_; }

 private:
  SyntheticTree tree_;
  std::string parent_;
  std::vector<std::string> bases_;  // absolute hierarchy base directories
  std::vector<std::string> hierarchy_names_;
  std::size_t created_ = 0;
};

}  // namespace nodewarden::bench
