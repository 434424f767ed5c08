// CgroupHierarchies: the detection of the mounted hierarchies and the bounded breadth-first search
// for kubepods roots below each; see cgroup_hierarchies.h.
#include "collectors/cgroup/cgroup_hierarchies.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <string_view>
#include <utility>

#include "collectors/cgroup/cgroup_layout.h"

namespace nodewarden::cgroup {
namespace {

constexpr const char* kComponent = "cgroup";
constexpr std::size_t kMaxDirsSearched = 200000;  // bounds the search on a huge host tree

bool pathExists(const std::filesystem::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

CgroupHierarchies::CgroupHierarchies(std::filesystem::path cgroup_root, int max_depth,
                                     ErrorReporter& errors)
    : cgroup_root_(std::move(cgroup_root)), max_depth_(max_depth), errors_(errors) {}

CgroupHierarchies::~CgroupHierarchies() { close(); }

void CgroupHierarchies::close() {
  for (auto& h : hierarchies_) {
    if (h.fd >= 0) ::close(h.fd);
  }
  hierarchies_.clear();
}

std::size_t CgroupHierarchies::rootCount() const {
  std::size_t n = 0;
  for (const auto& h : hierarchies_) n += h.roots.size();
  return n;
}

bool CgroupHierarchies::add(const std::string& label, const std::filesystem::path& path,
                            unsigned roles) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return false;
  }
  // "cpu" and "cpuacct" are often one mount ("cpu,cpuacct") reached through two symlinks.
  for (auto& h : hierarchies_) {
    if (h.dev == st.st_dev && h.ino == st.st_ino) {
      h.roles |= roles;
      h.label += "," + label;
      ::close(fd);
      return true;
    }
  }
  Hierarchy h;
  h.label = label;
  h.path = path.string();
  h.fd = fd;
  h.roles = roles;
  h.dev = st.st_dev;
  h.ino = st.st_ino;
  hierarchies_.push_back(std::move(h));
  return true;
}

void CgroupHierarchies::detect() {
  close();
  const auto& root = cgroup_root_;
  if (pathExists(root / "cgroup.controllers")) {
    add("v2", root, kRoleCpuV2 | kRoleMemV2 | kRoleIoV2 | kRolePsi | kRolePidsV2);
    return;
  }
  if (pathExists(root / "cpu")) add("cpu", root / "cpu", kRoleCpuV1);
  if (pathExists(root / "cpuacct")) add("cpuacct", root / "cpuacct", kRoleCpuAcct);
  if (pathExists(root / "cpu,cpuacct")) {
    add("cpu,cpuacct", root / "cpu,cpuacct", kRoleCpuV1 | kRoleCpuAcct);
  }
  if (pathExists(root / "memory")) add("memory", root / "memory", kRoleMemV1);
  if (pathExists(root / "blkio")) add("blkio", root / "blkio", kRoleBlkioV1);
  if (pathExists(root / "pids")) add("pids", root / "pids", kRolePidsV1);
  if (pathExists(root / "unified" / "cgroup.controllers")) {
    add("unified", root / "unified", kRolePsi);
  }
}

// Breadth-first below the hierarchy's root, down to max_depth, for "kubepods"/"kubepods.slice".
void CgroupHierarchies::findRoots(Hierarchy& h) {
  h.roots.clear();
  struct Pending {
    std::string rel;
    int depth;
  };
  std::deque<Pending> queue;
  queue.push_back({"", 0});
  std::size_t visited = 0;
  while (!queue.empty() && visited < kMaxDirsSearched) {
    Pending cur = std::move(queue.front());
    queue.pop_front();
    ++visited;
    const int fd = cur.rel.empty()
                       ? ::dup(h.fd)
                       : ::openat(h.fd, cur.rel.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;  // removed while searching, or not ours to read
    lister_.forEachSubdir(fd, [&](std::string_view name) {
      std::string rel = cur.rel.empty() ? std::string(name) : cur.rel + "/" + std::string(name);
      if (isKubepodsRootName(name)) {
        h.roots.push_back(std::move(rel));
      } else if (cur.depth + 1 < max_depth_) {
        queue.push_back({std::move(rel), cur.depth + 1});
      }
    });
    ::close(fd);
  }
  if (visited >= kMaxDirsSearched) {
    errors_.report(kComponent, "search_truncated",
                   h.path + ": more than " + std::to_string(kMaxDirsSearched) + " directories");
  }
  std::sort(h.roots.begin(), h.roots.end());
}

std::vector<std::string> CgroupHierarchies::signature() const {
  std::vector<std::string> sig;
  for (const auto& h : hierarchies_) {
    sig.push_back(h.path + ":" + std::to_string(h.roles));
    for (const auto& r : h.roots) sig.push_back(r);
  }
  return sig;
}

bool CgroupHierarchies::search() {
  // Where each hierarchy's roots were, so that cgroups tracked below them survive a search that
  // finds the same.
  const std::vector<std::string> old_signature = signature();
  detect();
  if (hierarchies_.empty()) {
    errors_.report(kComponent, "no_hierarchy",
                   cgroup_root_.string() + " holds no cgroup v1 or v2 hierarchy");
  }
  for (auto& h : hierarchies_) findRoots(h);
  const bool changed = signature() != old_signature;

  primary_ = -1;
  const unsigned preference[] = {kRoleCpuV2, kRoleCpuAcct, kRoleCpuV1,
                                 kRoleMemV1, kRoleBlkioV1, kRolePsi};
  for (unsigned role : preference) {
    for (std::size_t i = 0; i < hierarchies_.size() && primary_ < 0; ++i) {
      if ((hierarchies_[i].roles & role) && !hierarchies_[i].roots.empty()) {
        primary_ = static_cast<int>(i);
      }
    }
  }
  return changed;
}

}  // namespace nodewarden::cgroup
