// CgroupCollector: finds kubelet's pod and container cgroups under a cgroup root and reads their
// CPU, memory, IO and pressure counters each cycle.
//
// What a reader gets wrong: kubelet's tree is not at a fixed place. It is found by name
// ("kubepods" / "kubepods.slice") below each hierarchy's root at a bounded depth, separately in
// every v1 controller and in the v2 tree, because each may nest it under a different parent. A
// container is the same container across hierarchies when its pod uid and container id match.
// Names are not a periodic affair: a cgroup is named in the first collect() after any metadata
// source learns its pod (its generation() moved); until then, for at most hold_unnamed (or until
// two listings that began after it was found are in: listings_since), its sample is marked
// names_pending so that it is not exported anonymous and renamed a cycle later.
//
// The layout of collectors/cgroup/: this class only puts a cycle together; each concern is a unit
// with its own state, and none but this one knows the others.
//   cgroup_hierarchies  root discovery: the mounted hierarchies, their roles, the kubepods roots
//   cgroup_tracker      tracking: the per-cycle listing of pods and containers, a TrackedCgroup
//                       each (which holds every unit's per-cgroup state), found in every hierarchy
//   cgroup_files        reading: one cgroup's interface files in one hierarchy, opened once and
//                       read into its sample; the descriptor budget
//   cgroup_naming       naming: LogDirNames and CgroupNamer (metadata lookups, the hold)
//   run_delay           run-queue delay: the threads' /proc/<tid>/schedstat
//   pod_network         network per pod: /proc/<pid>/net/dev of a process in the pod's namespace
//   aggregate_cgroups   the root, kubepods and QoS cgroups (no pod uid): Snapshot::aggregates
//   process_stats       processes, threads without pids, descriptors and sockets (/proc/<pid>/fd)
//   cgroup_layout, cgroup_parsers, dir_lister  kubelet's directory names, the files' formats, the
//                       allocation-free directory walk
// A reader looking for "where is X read" wants cgroup_files.cpp's kFileSpecs table, not this file.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "pipeline/container_metadata.h"
#include "pipeline/interfaces.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

// Also the config's collectors.cgroup.* section (agent/config.h): max_depth, root_search_interval
// and run_delay are keys; the agent sets the roots (paths.*), the metadata and the hold on top.
struct CgroupCollectorOptions {
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  // For /proc/partitions (device names), /proc/<tid>/schedstat and /proc/<pid>/net/dev.
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path log_root = "/var/log/pods";  // names from directory names; may be absent
  int max_depth = 8;  // how deep below a hierarchy root kubelet's tree may sit
  // How often the hierarchies are searched again for kubelet's tree once one was found (every
  // cycle until then). Pods and containers inside a found tree are listed every cycle.
  std::chrono::milliseconds root_search_interval{60000};
  // Descriptors the collector may keep open; 0 = RLIMIT_NOFILE's soft limit less 1024. Past it,
  // files are opened per read instead (slower, never unread).
  std::size_t max_open_files = 0;
  // Names, images and sandbox flags for container ids (optional; not owned; its owner refreshes
  // it). Without it, names come from the log directories alone. A cgroup it could not name is
  // asked about again in the first collect() after its generation() moved.
  ContainerMetadata* metadata = nullptr;
  // How long at most a pod or container cgroup whose names no source knows yet is marked
  // CgroupSample::names_pending (held out of the exposition) after it was found; past it, it is
  // exported with what is known. A container lacking only its image is held only when a source
  // can tell images (ContainerMetadata::namesImages). 0: never held. The agent gives namingHold().
  std::chrono::milliseconds hold_unnamed{0};
  // How many fetches of a source that lists on a schedule (KubeletPodsMetadata::listingsSince)
  // were asked for at or after a moment and taken in. Given, a held cgroup still unknown is
  // released before hold_unnamed once two fetches asked for after it was found are in (the first
  // cannot predate it, yet the kubelet lists a container's id only after its status went round
  // the API server, so one more is waited for) and hold_at_least is over. Empty: held for
  // hold_unnamed.
  std::function<std::size_t(std::chrono::steady_clock::time_point)> listings_since;
  // With listings_since: held at least this long even when two listings are in, since early
  // fetches a second apart may both come before the kubelet lists a new container (the agent
  // gives the kubelet's refresh interval).
  std::chrono::milliseconds hold_at_least{0};
  // The clock of the hold and of the log-directory name scans; empty: steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> now;
  // Read each container's threads' run-queue delay from /proc/<tid>/schedstat (one small read per
  // thread per cycle); a container with more threads than max_run_delay_threads is skipped and
  // counted.
  bool run_delay = true;
  std::size_t max_run_delay_threads = 2048;
  // Read each pod's network counters from /proc/<pid>/net/dev of one of its processes (one
  // fstatat and one pread per pod per cycle). Host-network pods are never read.
  bool pod_network = true;
  // Also read the cgroups above the pods as cAdvisor reports them (the hierarchy root "/", the
  // kubepods root and its QoS cgroups) into Snapshot::aggregates (aggregate_cgroups.h). The
  // config's collectors.cgroup.aggregates.
  bool aggregates = false;
  // cAdvisor's process series: container_processes (cgroup.procs), container_threads where no
  // pids controller gives it (the thread list), container_file_descriptors and container_sockets
  // (/proc/<pid>/fd of each process: a getdents per process, a readlink per descriptor). The
  // descriptors of a cgroup are counted again once fd_scan_interval has passed, at most
  // max_fd_scan_processes processes per cycle (the rest wait for the next); the last count is
  // exported in between. The defaults keep the cycle inside 1.5x the read floor
  // (bench_collect_cycle): a process of 32 descriptors costs 110-170 µs to count (a readlink per
  // descriptor), a cgroup's files 35-70 µs to read, so counting each every 5 minutes adds <0.1x
  // the floor at a 10 s interval; the cap bounds a cycle in which many are due (those found at
  // start) at ~15 ms.
  bool process_stats = true;
  std::chrono::milliseconds fd_scan_interval{300000};
  std::size_t max_fd_scan_processes = 100;
};

// The hold_unnamed the agent gives: one collection interval plus two kubelet refresh intervals.
// A cgroup found in cycle N asks for a fetch that is taken in at cycle N+1 at the earliest, and
// the kubelet may list the container only in the fetch after that (asked for at N+1, taken in at
// N+2); the hold must outlast both whatever the two intervals are, with the fixed-rate timer's
// cycles falling exactly on its end.
[[nodiscard]] std::chrono::milliseconds namingHold(std::chrono::milliseconds interval,
                                                   std::chrono::milliseconds kubelet_refresh);

struct CgroupCollectorStats {
  std::size_t pods = 0;
  std::size_t containers = 0;
  std::size_t hierarchies = 0;
  std::size_t kubepods_roots = 0;
  std::size_t open_files = 0;
  // Pods and containers not fully named (sandboxes aside): still held out of the exposition, and
  // past the hold (exported with the names known, maybe none).
  std::size_t unnamed_held = 0;
  std::size_t unnamed_exported = 0;
};

class CgroupCollector final : public MetricCollector {
 public:
  CgroupCollector(CgroupCollectorOptions options, ErrorReporter& errors);
  ~CgroupCollector() override;
  CgroupCollector(const CgroupCollector&) = delete;
  CgroupCollector& operator=(const CgroupCollector&) = delete;

  [[nodiscard]] std::string_view name() const override { return "cgroup"; }
  void collect(Snapshot& into) override;
  [[nodiscard]] CgroupCollectorStats stats() const;

  // Reads again, now and between cycles, the pods `want` accepts (by uid) and their containers,
  // and hands each sample to `seen` with whether its cgroup is gone (a gone sample has no
  // readings: keep the last ones). For the few cgroups whose final counters matter (a Job's pod
  // about to be removed); the next collect() reads them again as usual. Only pods found by a
  // collect() are known here. Same thread as collect().
  void readPods(const std::function<bool(std::string_view pod_uid)>& want,
                const std::function<void(const CgroupSample& sample, bool gone)>& seen);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden
