// CgroupTracker: the per-cycle listing of kubelet's pods and containers, and the search for each
// new cgroup in every hierarchy; see cgroup_tracker.h.
#include "collectors/cgroup/cgroup_tracker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

namespace nodewarden::cgroup {
namespace {

constexpr const char* kComponent = "cgroup";

// A pod is listed again at least this often even when its link count did not change, in case a
// container was replaced by another between two cycles without any read noticing.
constexpr std::uint64_t kFullRelistEvery = 30;

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

TrackedCgroup::~TrackedCgroup() {
  if (dir_fd >= 0) ::close(dir_fd);
}

CgroupTracker::CgroupTracker(const CgroupHierarchies& hierarchies, ErrorReporter& errors)
    : hierarchies_(hierarchies), errors_(errors) {}

CgroupTracker::~CgroupTracker() = default;

void CgroupTracker::afterSearch(std::size_t descriptor_limit, bool layout_changed) {
  budget_.limit = descriptor_limit;
  if (layout_changed) {  // start over
    tracked_.clear();
    budget_.open = 0;
  }
}

CgroupTracker::Listing CgroupTracker::list(std::uint64_t cycle,
                                           std::chrono::steady_clock::time_point now) {
  ++generation_;
  now_ = now;
  found_new_ = false;
  Listing result;
  const Hierarchy& h = hierarchies_[static_cast<std::size_t>(hierarchies_.primary())];
  for (std::size_t r = 0; r < h.roots.size(); ++r) {
    const int root_fd = openDir(h.fd, h.roots[r].c_str(), h, h.roots[r]);
    if (root_fd < 0) {
      result.root_missing = true;  // kubelet's tree went away (or moved): look again next cycle
      continue;
    }
    current_root_ = &h.roots[r];
    rel_.clear();
    const int root_err = root_lister_.forEachSubdir(root_fd, [&](std::string_view name) {
      if (auto qos = parseQosDir(name)) {
        const int qos_fd = openDir(root_fd, name.data(), h, name);
        if (qos_fd < 0) return;
        const std::size_t base = rel_.size();
        rel_.append(name).push_back('/');
        const int qos_err = qos_lister_.forEachSubdir(qos_fd, [&](std::string_view pod_name) {
          if (auto pod = parsePodDir(pod_name)) visitPod(qos_fd, pod_name, *pod, *qos);
        });
        if (qos_err != 0) listFailed(h, name, qos_err);
        rel_.resize(base);
        ::close(qos_fd);
      } else if (auto pod = parsePodDir(name)) {
        // A pod directly under the root is Guaranteed in both drivers.
        visitPod(root_fd, name, *pod,
                 pod->qos_hint == QosClass::kUnknown ? QosClass::kGuaranteed : pod->qos_hint);
      }
    });
    if (root_err != 0) listFailed(h, h.roots[r], root_err);
    ::close(root_fd);
  }
  // What was not seen this cycle is gone: its series disappear from this snapshot on. A
  // container of a pod that was not listed again this cycle (its link count is unchanged) is
  // still there. Containers go first, while their pods are still alive to be asked.
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    const TrackedCgroup& t = *it->second;
    const bool alive =
        t.pod == nullptr ||
        (t.pod->seen_generation == generation_ &&
         (t.pod->listed_generation != generation_ || t.seen_generation == generation_));
    it = alive ? std::next(it) : untrack(it);
  }
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    const TrackedCgroup& t = *it->second;
    it = t.pod != nullptr || t.seen_generation == generation_ ? std::next(it) : untrack(it);
  }
  locateMissing(cycle);
  result.found_new = found_new_;
  return result;
}

void CgroupTracker::visitPod(int parent_fd, std::string_view dir_name, const PodDir& pod,
                             QosClass qos) {
  if (!normalizePodUid(pod.uid_raw, uid_)) return;
  const std::size_t base = rel_.size();
  rel_.append(dir_name);
  key_.assign(uid_).push_back('/');
  TrackedCgroup* p = track(qos, {}, nullptr);
  const Hierarchy& h = hierarchies_[static_cast<std::size_t>(hierarchies_.primary())];
  // Past the descriptor budget the pod's directory is opened, listed and closed every cycle.
  TransientDir temp;
  int dir_fd = p->dir_fd;
  if (dir_fd < 0) {
    dir_fd = openDir(parent_fd, dir_name.data(), h, rel_);
    if (dir_fd >= 0 && budget_.open < budget_.limit) {
      p->dir_fd = dir_fd;
      ++budget_.open;
      p->relist = true;
    } else {
      temp.fd = dir_fd;
    }
  }
  struct stat st {};
  if (dir_fd >= 0 && ::fstat(dir_fd, &st) == 0) {
    // Read the count before listing: a container made in between is then listed now and
    // still changes the count seen next cycle, so it is never missed.
    const bool changed = temp.fd >= 0 || p->relist || st.st_nlink < 2 ||
                         st.st_nlink != p->listed_nlink || generation_ % kFullRelistEvery == 0;
    if (changed && ::lseek(dir_fd, 0, SEEK_SET) == 0) {
      p->listed_nlink = st.st_nlink;
      p->listed_generation = generation_;
      p->relist = false;
      const std::size_t pod_rel = rel_.size();
      const int err = pod_lister_.forEachSubdir(dir_fd, [&](std::string_view name) {
        auto id = parseContainerDir(name);
        if (!id) return;
        rel_.push_back('/');
        rel_.append(name);
        key_.assign(uid_).push_back('/');
        key_.append(*id);
        track(qos, *id, p);
        rel_.resize(pod_rel);
      });
      if (err != 0) listFailed(h, rel_, err);
    }
  }
  rel_.resize(base);
}

CgroupTracker::Map::iterator CgroupTracker::untrack(Map::iterator it) {
  TrackedCgroup& t = *it->second;
  for (auto& slot : t.slots) slot.files.close(budget_);
  // The pod network's, closed by ~PodNetwork.
  budget_.open -= std::min(budget_.open, t.net.keptDescriptors());
  t.processes.close(budget_);
  if (t.dir_fd >= 0) --budget_.open;  // closed by ~TrackedCgroup
  return tracked_.erase(it);
}

// Opens a directory of kubelet's tree for listing. ENOENT is the normal race with a pod's
// removal; anything else (EACCES, EIO) hides pods and is counted.
int CgroupTracker::openDir(int parent_fd, const char* name, const Hierarchy& h,
                           std::string_view what) {
  const int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) listFailed(h, what, errno);
  return fd;
}

void CgroupTracker::listFailed(const Hierarchy& h, std::string_view what, int err) {
  if (err == ENOENT) return;
  errors_.report(kComponent, "unreadable_dir",
                 h.path + "/" + std::string(what) + ": " + errnoText(err));
}

TrackedCgroup* CgroupTracker::track(QosClass qos, std::string_view container_id,
                                    TrackedCgroup* pod) {
  auto it = tracked_.find(key_);
  if (it != tracked_.end()) {
    it->second->seen_generation = generation_;
    return it->second.get();
  }
  auto t = std::make_unique<TrackedCgroup>();
  t->pod = pod;
  t->seen_generation = generation_;
  t->name.found_at = now_;
  t->rel = rel_;
  t->sample.pod_uid = uid_;
  t->sample.container_id = std::string(container_id);
  t->sample.qos = qos;
  t->sample.id = "/" + *current_root_ + "/" + rel_;
  t->slots.resize(hierarchies_.size());
  for (std::size_t i = 0; i < hierarchies_.size(); ++i) locate(*t, i);
  found_new_ = true;
  return tracked_.emplace(key_, std::move(t)).first->second.get();
}

// Finds t's cgroup in hierarchy i below one of its kubepods roots and opens its files.
void CgroupTracker::locate(TrackedCgroup& t, std::size_t i) {
  const Hierarchy& h = hierarchies_[i];
  TrackedCgroup::Slot& slot = t.slots[i];
  ++slot.attempts;
  for (const auto& root : h.roots) {
    path_.assign(root).push_back('/');
    path_.append(t.rel);
    const int dir_fd = ::openat(h.fd, path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) continue;
    slot.files.open(h, dir_fd, path_, t.rel, budget_, errors_);
    noteStartTime(t, dir_fd);
    ::close(dir_fd);
    return;
  }
}

// cAdvisor's container/common GetSpec: the lowest mtime of the cgroup directory and of
// cgroup.clone_children (v1) or cgroup.events (v2) across the hierarchies, since a directory's own
// mtime moves when a child is made in it.
void CgroupTracker::noteStartTime(TrackedCgroup& t, int dir_fd) {
  struct stat st {};
  const auto note = [&] {
    const std::int64_t s = st.st_mtim.tv_sec;
    if (s > 0 && (t.start_time_s == 0 || s < t.start_time_s)) t.start_time_s = s;
  };
  if (::fstat(dir_fd, &st) == 0) note();
  for (const char* name : {"cgroup.clone_children", "cgroup.events"}) {
    if (::fstatat(dir_fd, name, &st, 0) == 0) note();
  }
}

// Retries hierarchies where a new cgroup was not found yet (runc creates them one by one),
// backing off so a hierarchy that never has it costs little.
void CgroupTracker::locateMissing(std::uint64_t cycle) {
  for (auto& [key, t] : tracked_) {
    for (std::size_t i = 0; i < t->slots.size(); ++i) {
      TrackedCgroup::Slot& s = t->slots[i];
      if (s.files.located() || hierarchies_[i].roots.empty()) continue;
      const std::uint32_t every = 1U << std::min<std::uint32_t>(s.attempts, 6);
      if (cycle % every == 0) locate(*t, i);
    }
  }
}

}  // namespace nodewarden::cgroup
