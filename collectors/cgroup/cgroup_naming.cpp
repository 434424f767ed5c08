// CgroupNamer and LogDirNames: when the tracked cgroups are named, from which source, and how long
// an unnamed one is held; see cgroup_naming.h.
#include "collectors/cgroup/cgroup_naming.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "collectors/cgroup/cgroup_layout.h"
#include "pipeline/container_metadata.h"

namespace nodewarden::cgroup {

void LogDirNames::scan(const std::filesystem::path& log_root) {
  pods_.clear();
  containers_.clear();
  // /var/log/pods/<namespace>_<pod>_<uid>: namespaces and pod names are DNS labels and
  // subdomains, which cannot hold '_', so the split is unambiguous.
  if (const int fd = ::open(log_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    lister_.forEachSubdir(fd, [&](std::string_view name) {
      const auto a = name.find('_');
      const auto b = name.rfind('_');
      if (a == std::string_view::npos || a == b) return;
      std::string uid;
      if (!normalizePodUid(name.substr(b + 1), uid)) return;
      pods_[uid] = {std::string(name.substr(0, a)), std::string(name.substr(a + 1, b - a - 1))};
    });
    ::close(fd);
  }
  // kubelet's /var/log/containers/<pod>_<namespace>_<container>-<id>.log symlinks name
  // containers by runtime id.
  const auto containers_dir = log_root.parent_path() / "containers";
  if (DIR* d = ::opendir(containers_dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      std::string_view name(e->d_name);
      if (!name.ends_with(".log")) continue;
      name.remove_suffix(4);
      if (name.size() < 66 || name[name.size() - 65] != '-') continue;
      const auto id = name.substr(name.size() - 64);
      const auto rest = name.substr(0, name.size() - 65);
      const auto a = rest.find('_');
      const auto b = rest.find('_', a == std::string_view::npos ? a : a + 1);
      if (a == std::string_view::npos || b == std::string_view::npos) continue;
      containers_[std::string(id)] = std::string(rest.substr(b + 1));
    }
    ::closedir(d);
  }
}

const LogDirNames::PodNames* LogDirNames::pod(const std::string& uid) const {
  const auto it = pods_.find(uid);
  return it == pods_.end() ? nullptr : &it->second;
}

const std::string* LogDirNames::container(const std::string& id) const {
  const auto it = containers_.find(id);
  return it == containers_.end() ? nullptr : &it->second;
}

bool CgroupNamer::imagesTold() const {
  return options_.metadata != nullptr && options_.metadata->namesImages();
}

bool CgroupNamer::awaitsNames(const CgroupSample& s, const NameState& n, bool images) {
  if (n.named || n.sandbox) return false;
  return s.pod_name.empty() ||
         (!s.isPod() && (s.container_name.empty() || (images && s.image.empty())));
}

// The log directories are read again when cgroups were found and every 30 s while some are
// unnamed; the metadata is asked about the unnamed ones again whenever its generation() moved.
CgroupNamer::Step CgroupNamer::begin(std::chrono::steady_clock::time_point now, bool found_new) {
  ContainerMetadata* meta = options_.metadata;
  // Read before the lookups: a source that moves during them is asked again next cycle.
  const std::uint64_t meta_generation = meta != nullptr ? meta->generation() : 0;
  bool name = found_new || (any_unnamed_ && meta_generation != seen_meta_generation_);
  if (found_new || (any_unnamed_ && now >= next_name_scan_)) {
    next_name_scan_ = now + std::chrono::seconds(30);
    log_names_.scan(options_.log_root);
    name = true;
  }
  seen_meta_generation_ = meta_generation;
  if (name) return Step::kName;
  // A hold also ends with the listings that came in (a list equal to the last moves no
  // generation): asked each cycle, only while something is held.
  if (any_unnamed_ && (now >= next_hold_end_ || (any_held_ && options_.listings_since))) {
    return Step::kHold;
  }
  return Step::kNone;
}

// The runtime's own state first: it also knows the image and which container is the pod's
// sandbox. The log directories' names fill in what it does not know.
void CgroupNamer::nameOne(CgroupSample& s, NameState& n) {
  if (n.named) return;
  ContainerMetadata* meta = options_.metadata;  // refreshed by its owner each cycle
  std::optional<ContainerIdentity> c;
  if (!s.isPod() && meta != nullptr) c = meta->container(s.container_id);
  if (c) {
    s.namespace_name = c->namespace_name;
    s.pod_name = c->pod_name;
    s.container_name = c->container_name;
    s.image = c->image;
    n.sandbox = c->is_sandbox;
  } else if (auto p = meta != nullptr ? meta->pod(s.pod_uid) : std::nullopt) {
    // A container the sources do not list (yet) still belongs to a pod they may know.
    s.namespace_name = p->namespace_name;
    s.pod_name = p->pod_name;
  }
  if (s.pod_name.empty()) {
    if (const auto* p = log_names_.pod(s.pod_uid)) {
      s.namespace_name = p->namespace_name;
      s.pod_name = p->pod_name;
    }
  }
  if (!s.isPod() && s.container_name.empty() && !n.sandbox) {
    if (const auto* name = log_names_.container(s.container_id)) s.container_name = *name;
  }
  const bool complete =
      !s.pod_name.empty() && (s.isPod() || n.sandbox ||
                              (!s.container_name.empty() && (meta == nullptr || !s.image.empty())));
  n.named = complete;
  any_unnamed_ = any_unnamed_ || !complete;
}

void CgroupNamer::beginHolds() {
  any_held_ = false;
  next_hold_end_ = std::chrono::steady_clock::time_point::max();
  images_ = imagesTold();
}

// Marks an unnamed cgroup still within the hold as names_pending and the rest not; notes when the
// next hold ends by time, the only moment holds must be updated again unless names change or
// listings come in. A container that lacks only an image no source can tell is not held.
void CgroupNamer::holdOne(std::chrono::steady_clock::time_point now, CgroupSample& s,
                          const NameState& n) {
  const auto end = n.found_at + options_.hold_unnamed;
  s.names_pending = now < end && awaitsNames(s, n, images_) &&
                    (!options_.listings_since || now < n.found_at + options_.hold_at_least ||
                     options_.listings_since(n.found_at) < 2);
  if (s.names_pending) {
    any_held_ = true;
    next_hold_end_ = std::min(next_hold_end_, end);
  }
}

// A pod no source knows yet: have them look now rather than at their next refresh, and again each
// cycle while it is held (a source rate-limits what this costs it): the kubelet lists a
// container's id only after its status went round the API server.
void CgroupNamer::end() {
  if (any_held_ && options_.metadata != nullptr) options_.metadata->requestRefresh();
}

}  // namespace nodewarden::cgroup
