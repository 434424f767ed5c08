// CgroupTracker: the pods and containers of kubelet's tree, listed every cycle below the kubepods
// roots of the primary hierarchy, each kept as a TrackedCgroup from the cycle it appears in to
// the cycle it is gone, with its files open in every hierarchy where it was found.
//
// What a reader gets wrong: pods and containers are listed in one hierarchy only (the primary).
// Every other hierarchy is asked for the same path below one of its own kubepods roots, which is
// the same (pod uid, container id) whatever the parent above the root is; one it is not in yet
// (runc creates them one by one) is asked again with a backoff. A pod is listed again only when
// its directory's link count moved (kernfs counts 2 + subdirectories), a container under it
// vanished, or every kFullRelistEvery cycles; so a steady cycle costs one directory walk of the
// roots and one fstat per pod, and allocates nothing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "collectors/cgroup/cgroup_files.h"
#include "collectors/cgroup/cgroup_hierarchies.h"
#include "collectors/cgroup/cgroup_layout.h"
#include "collectors/cgroup/cgroup_naming.h"
#include "collectors/cgroup/dir_lister.h"
#include "collectors/cgroup/pod_network.h"
#include "collectors/cgroup/process_stats.h"
#include "collectors/cgroup/run_delay.h"
#include "pipeline/self_metrics.h"
#include "pipeline/snapshot.h"

namespace nodewarden::cgroup {

// One pod or container cgroup: its sample and what each unit keeps about it.
struct TrackedCgroup {
  CgroupSample sample;
  NameState name;           // CgroupNamer's
  RunDelay run_delay;       // RunDelayReader's; containers only
  ProcessCounts processes;  // ProcessStatsReader's
  // cAdvisor's creation time: the earliest mtime of the cgroup's directory (or of its
  // cgroup.clone_children / cgroup.events, which later children do not touch) in the hierarchies
  // it was found in so far, in unix seconds; 0 until found. Taken when located, not per cycle.
  std::int64_t start_time_s = 0;
  bool gone = false;             // its last read found it removed: not in the snapshot
  TrackedCgroup* pod = nullptr;  // containers: their pod (a pod outlives its containers here)

  // One per hierarchy: the cgroup's files there and how often it was looked for.
  struct Slot {
    CgroupFiles files;
    std::uint32_t attempts = 0;
  };
  std::vector<Slot> slots;

  // The tracker's listing state.
  std::string rel;  // below the kubepods root: "burstable/pod<uid>/<id>"
  std::uint64_t seen_generation = 0;
  // Pods: the pod's directory in the primary hierarchy, kept open, and its link count when it
  // was last listed.
  int dir_fd = -1;
  nlink_t listed_nlink = 0;
  std::uint64_t listed_generation = 0;
  bool relist = true;  // set when a container vanished under it

  PodNetwork net;  // PodNetworkReader's; pods only

  TrackedCgroup() = default;
  TrackedCgroup(const TrackedCgroup&) = delete;
  TrackedCgroup& operator=(const TrackedCgroup&) = delete;
  ~TrackedCgroup();
};

class CgroupTracker {
 public:
  // Keyed "uid/" for a pod, "uid/container_id" for a container.
  using Map = std::unordered_map<std::string, std::unique_ptr<TrackedCgroup>>;

  CgroupTracker(const CgroupHierarchies& hierarchies, ErrorReporter& errors);
  ~CgroupTracker();
  CgroupTracker(const CgroupTracker&) = delete;
  CgroupTracker& operator=(const CgroupTracker&) = delete;

  // After a search of the hierarchies: the descriptor budget anew, and when the layout changed,
  // every cgroup forgotten (to be found again below the new roots).
  void afterSearch(std::size_t descriptor_limit, bool layout_changed);

  struct Listing {
    bool root_missing = false;  // a kubepods root could not be opened: search again
    bool found_new = false;     // cgroups were found that were not tracked before
  };
  // Lists the pods and containers below the primary hierarchy's roots (there must be one), drops
  // what is gone, and looks again for cgroups not yet found in every hierarchy. cycle counts
  // collections (the backoff of those looks); now is the new cgroups' found_at.
  Listing list(std::uint64_t cycle, std::chrono::steady_clock::time_point now);

  [[nodiscard]] Map& cgroups() { return tracked_; }
  [[nodiscard]] const Map& cgroups() const { return tracked_; }
  [[nodiscard]] std::size_t openFiles() const { return budget_.open; }
  // What other units keeping descriptors per cgroup charge (PodNetworkReader).
  // The descriptor budget, for the units that keep files of a tracked cgroup open.
  [[nodiscard]] DescriptorBudget& budget() { return budget_; }

 private:
  void visitPod(int parent_fd, std::string_view dir_name, const PodDir& pod, QosClass qos);
  Map::iterator untrack(Map::iterator it);
  int openDir(int parent_fd, const char* name, const Hierarchy& h, std::string_view what);
  void listFailed(const Hierarchy& h, std::string_view what, int err);
  TrackedCgroup* track(QosClass qos, std::string_view container_id, TrackedCgroup* pod);
  void locate(TrackedCgroup& t, std::size_t i);
  static void noteStartTime(TrackedCgroup& t, int dir_fd);
  void locateMissing(std::uint64_t cycle);

  const CgroupHierarchies& hierarchies_;
  ErrorReporter& errors_;
  Map tracked_;
  DescriptorBudget budget_;
  std::uint64_t generation_ = 0;  // of the listings
  std::chrono::steady_clock::time_point now_{};
  bool found_new_ = false;

  // Reused buffers: the listing never allocates once these have grown.
  std::string rel_, key_, uid_, path_;
  const std::string* current_root_ = nullptr;
  DirLister root_lister_, qos_lister_, pod_lister_;
};

}  // namespace nodewarden::cgroup
