// CgroupNamer: the namespace, pod, container and image names of the tracked cgroups, from the
// metadata sources (ContainerMetadata) and from kubelet's log directories (LogDirNames), and the
// hold that keeps a cgroup no source has named yet out of the exposition (names_pending).
//
// What a reader gets wrong: naming is not a periodic affair. It runs after each listing but does
// work only when something moved: a cgroup was found (the log directories are read again, since
// kubelet makes a pod's log directory before its containers), a source's generation() moved (the
// unnamed cgroups are asked about again, only they), or a hold ends (by time, or with listings
// that came in). A steady cycle reads one number. A cgroup once fully named is never asked about
// again; one never named is exported after the hold with what is known, maybe nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "collectors/cgroup/cgroup_collector.h"
#include "collectors/cgroup/dir_lister.h"
#include "pipeline/snapshot.h"

namespace nodewarden::cgroup {

// Names from kubelet's log layout: /var/log/pods/<namespace>_<pod>_<uid> directories name pods,
// and the /var/log/containers/<pod>_<namespace>_<container>-<id>.log links (in log_root's parent)
// name containers by runtime id. Either may be absent.
class LogDirNames {
 public:
  struct PodNames {
    std::string namespace_name;
    std::string pod_name;
  };
  // Replaces what the last scan found.
  void scan(const std::filesystem::path& log_root);
  [[nodiscard]] const PodNames* pod(const std::string& uid) const;
  [[nodiscard]] const std::string* container(const std::string& id) const;

 private:
  std::unordered_map<std::string, PodNames> pods_;
  std::unordered_map<std::string, std::string> containers_;
  DirLister lister_;
};

// What the namer keeps per cgroup (the collector holds it beside the cgroup's sample).
struct NameState {
  std::chrono::steady_clock::time_point found_at{};  // when first listed: the hold counts from it
  bool named = false;    // every name a source could give is on the sample: never asked again
  bool sandbox = false;  // the pod's sandbox ("pause") container, per the runtime's state
};

class CgroupNamer {
 public:
  // Reads metadata, log_root, hold_unnamed, listings_since and hold_at_least of options, which
  // must outlive the namer.
  explicit CgroupNamer(const CgroupCollectorOptions& options) : options_(options) {}

  // After each listing, at the cycle's now; found_new: the listing found cgroups. for_each(f)
  // calls f(CgroupSample&, NameState&) for every tracked cgroup, in any order.
  template <typename ForEach>
  void update(std::chrono::steady_clock::time_point now, bool found_new, ForEach&& for_each) {
    const Step step = begin(now, found_new);
    if (step == Step::kName) {
      any_unnamed_ = false;
      for_each([this](CgroupSample& s, NameState& n) { nameOne(s, n); });
    }
    if (step != Step::kNone) {
      beginHolds();
      for_each([this, now](CgroupSample& s, NameState& n) { holdOne(now, s, n); });
    }
    end();
  }

  // Whether a source can tell images (then a container without one still awaits a name).
  [[nodiscard]] bool imagesTold() const;
  // Whether the cgroup lacks a name a source could still give: its pod's, its own, or its image
  // when images are told.
  [[nodiscard]] static bool awaitsNames(const CgroupSample& s, const NameState& n, bool images);

 private:
  enum class Step : std::uint8_t { kNone, kName, kHold };
  Step begin(std::chrono::steady_clock::time_point now, bool found_new);
  void nameOne(CgroupSample& s, NameState& n);
  void beginHolds();
  void holdOne(std::chrono::steady_clock::time_point now, CgroupSample& s, const NameState& n);
  void end();

  const CgroupCollectorOptions& options_;
  LogDirNames log_names_;
  bool any_unnamed_ = false;
  bool any_held_ = false;
  bool images_ = false;  // imagesTold() for the holds being updated
  std::chrono::steady_clock::time_point next_name_scan_{};
  std::chrono::steady_clock::time_point next_hold_end_ =
      std::chrono::steady_clock::time_point::max();
  std::uint64_t seen_meta_generation_ = 0;
};

}  // namespace nodewarden::cgroup
