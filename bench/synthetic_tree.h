// SyntheticTree: writes a kubelet-shaped cgroup tree (cgroupfs driver) as regular files under a
// temp directory, so the cgroup collector can be benchmarked at 100..5000 containers on any host.
//
// What a reader gets wrong: the files are plain files on tmpfs, not cgroupfs. Reading them costs a
// fraction of what the kernel charges to generate real cgroup files, so absolute figures are a
// lower bound; the point is the comparison with the floor (the same files, only pread) and the
// growth with the number of containers. read_files lists exactly the files both of them read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace nodewarden::bench {

enum class TreeLayout : std::uint8_t {
  kHybrid,  // v1 controllers cpu, cpuacct, memory, blkio, pids plus a v2 mount at unified/ (PSI)
  kV2,      // one cgroup2 hierarchy
};

const char* layoutName(TreeLayout layout);

struct SyntheticTreeOptions {
  std::filesystem::path root;  // created; must not exist or be empty
  std::size_t containers = 100;
  TreeLayout layout = TreeLayout::kV2;
  std::uint64_t seed = 1;
  // Given: a /proc for the pods' network (created; outside root): <pid>/net/dev per pod, the pid
  // in the cgroup.procs of the pod's first container, and 1/net/dev for the node's namespace.
  std::filesystem::path proc_root;
  // Also for the aggregate cgroups (collectors.cgroup.aggregates): the hierarchy root gets the
  // files the kernel has there, and the root's, kubepods' and the QoS directories' files are in
  // read_files with /proc/meminfo (the root's memory limit, and its usage on v2).
  bool aggregates = false;
  // Listed in every container's cgroup.procs (pods' are empty, as on a node), so that the
  // collector counts a real process's /proc/<pid>/fd; 0: every cgroup.procs is empty.
  int process = 0;
};

struct SyntheticTree {
  std::filesystem::path root;
  std::filesystem::path proc_root;  // as given in the options; empty: no per-pod network
  TreeLayout layout = TreeLayout::kV2;
  std::size_t pods = 0;
  std::size_t containers = 0;
  std::size_t files_written = 0;
  // Every file in a pod or container directory that the collector reads each cycle (per the
  // CgroupField sources in pipeline/snapshot.h), and each pod's <proc_root>/<pid>/net/dev. Files
  // written only for realism are not listed.
  std::vector<std::filesystem::path> read_files;
  // Directories whose entries a collector lists each cycle to find pods and containers: kubepods,
  // the QoS directories and the pod directories, in every hierarchy.
  std::vector<std::filesystem::path> list_dirs;
};

std::expected<SyntheticTree, std::string> buildSyntheticTree(const SyntheticTreeOptions& options);

// A fresh directory under /dev/shm (tmpfs) when it exists, else the system temp directory.
std::expected<std::filesystem::path, std::string> makeTempDir(std::string_view prefix);

}  // namespace nodewarden::bench
