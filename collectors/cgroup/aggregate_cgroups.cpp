// AggregateCgroups: finding the root, kubepods and QoS cgroups in every hierarchy and reading
// them each cycle; see aggregate_cgroups.h.
#include "collectors/cgroup/aggregate_cgroups.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "collectors/cgroup/cgroup_layout.h"
#include "collectors/cgroup/pod_network.h"
#include "collectors/common/line_reader.h"

namespace nodewarden::cgroup {
namespace {

constexpr const char* kComponent = "cgroup";
constexpr std::uint64_t kBytesPerKiB = 1024;

// The root kubelet's tree hangs from in hierarchy h that matches the primary's root `primary`:
// the one whose path shares the most trailing components with it (a controller may nest it under
// another parent: memory at machine.slice/node1/kubepods while cpu has it at the top, or below
// the agent's own cgroup), at least the last ("kubepods" or "kubepods.slice").
const std::string* matchingRoot(const Hierarchy& h, const std::string& primary) {
  const auto shared = [](std::string_view a, std::string_view b) {
    int n = 0;
    for (;;) {
      const auto sa = a.rfind('/'), sb = b.rfind('/');
      const auto la = sa == std::string_view::npos ? a : a.substr(sa + 1);
      const auto lb = sb == std::string_view::npos ? b : b.substr(sb + 1);
      if (la != lb) return n;
      ++n;
      if (sa == std::string_view::npos || sb == std::string_view::npos) return n;
      a = a.substr(0, sa);
      b = b.substr(0, sb);
    }
  };
  const std::string* best = nullptr;
  int best_n = 0;
  for (const auto& r : h.roots) {
    const int n = shared(r, primary);
    if (n > best_n) {
      best = &r;
      best_n = n;
    }
  }
  return best;
}

}  // namespace

std::expected<MeminfoTotals, ParseError> parseMeminfoTotals(std::string_view text) {
  MeminfoTotals out;
  bool total = false, free = false;
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line) && !(total && free)) {
    const bool is_total = line.starts_with("MemTotal:");
    const bool is_free = line.starts_with("MemFree:");
    if (!is_total && !is_free) continue;
    std::string_view v = line.substr(line.find(':') + 1);
    // The kernel prints both in kB ("   16318412 kB"); a value without the unit is not theirs.
    if (!v.ends_with(" kB")) return std::unexpected(ParseError::kMalformed);
    v.remove_suffix(3);
    auto n = parseU64(v);
    if (!n) return std::unexpected(n.error());
    if (*n > std::numeric_limits<std::uint64_t>::max() / kBytesPerKiB) {
      return std::unexpected(ParseError::kNotANumber);
    }
    (is_total ? out.total_bytes : out.free_bytes) = *n * kBytesPerKiB;
    (is_total ? total : free) = true;
  }
  if (!total || !free) return std::unexpected(ParseError::kMalformed);
  if (out.free_bytes > out.total_bytes) return std::unexpected(ParseError::kMalformed);
  return out;
}

AggregateCgroups::AggregateCgroups(const CgroupHierarchies& hierarchies,
                                   const std::filesystem::path& proc_root, ErrorReporter& errors)
    : hierarchies_(hierarchies),
      errors_(errors),
      meminfo_path_(proc_root / "meminfo"),
      net_dev_path_(proc_root / "1" / "net" / "dev") {}

AggregateCgroups::~AggregateCgroups() { clear(); }

void AggregateCgroups::clear() {
  for (auto& e : entries_) {
    for (auto& f : e->files) f.close(budget_);
  }
  entries_.clear();
  found_.clear();
}

void AggregateCgroups::afterSearch(std::size_t descriptor_limit, bool layout_changed) {
  budget_.limit = descriptor_limit;
  // What is there now, by cAdvisor's id: "/", then per kubepods root of the primary hierarchy
  // the root and its QoS cgroups. Each as a path below every hierarchy's root (empty: absent).
  struct Found {
    std::string id;
    QosClass qos;
    bool root;
    std::vector<std::string> rel;
  };
  std::vector<Found> found;
  const std::size_t n = hierarchies_.size();
  if (n > 0) found.push_back({"/", QosClass::kUnknown, true, std::vector<std::string>(n, ".")});
  if (hierarchies_.primary() >= 0) {
    const Hierarchy& p = hierarchies_[static_cast<std::size_t>(hierarchies_.primary())];
    for (const auto& proot : p.roots) {
      std::vector<const std::string*> roots(n, nullptr);
      for (std::size_t i = 0; i < n; ++i) roots[i] = matchingRoot(hierarchies_[i], proot);
      Found k{"/" + proot, QosClass::kUnknown, false, std::vector<std::string>(n)};
      for (std::size_t i = 0; i < n; ++i) {
        if (roots[i] != nullptr) k.rel[i] = *roots[i];
      }
      found.push_back(std::move(k));
      const int fd = ::openat(p.fd, proot.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) continue;  // gone since the search: found again by the next one
      std::vector<std::pair<std::string, QosClass>> qos_dirs;
      lister_.forEachSubdir(fd, [&](std::string_view name) {
        if (auto q = parseQosDir(name)) qos_dirs.emplace_back(std::string(name), *q);
      });
      ::close(fd);
      std::sort(qos_dirs.begin(), qos_dirs.end());
      for (const auto& [name, q] : qos_dirs) {
        Found f{"/" + proot + "/" + name, q, false, std::vector<std::string>(n)};
        for (std::size_t i = 0; i < n; ++i) {
          if (roots[i] != nullptr) f.rel[i] = *roots[i] + "/" + name;
        }
        found.push_back(std::move(f));
      }
    }
  }
  std::vector<std::string> ids;
  ids.reserve(found.size());
  for (const auto& f : found) ids.push_back(f.id);
  // The same cgroups, files already open, none of them removed since (one removed and made
  // again under the same name is a new cgroup: its files are opened anew).
  if (!layout_changed && !stale_ && ids == found_) return;
  stale_ = false;
  clear();
  found_ = std::move(ids);
  for (auto& f : found) add(std::move(f.id), f.qos, f.root, f.rel);
}

void AggregateCgroups::add(std::string id, QosClass qos, bool root,
                           const std::vector<std::string>& rel) {
  auto e = std::make_unique<Entry>();
  e->sample.id = std::move(id);
  e->sample.qos = qos;
  e->root = root;
  e->files.resize(hierarchies_.size());
  for (std::size_t i = 0; i < hierarchies_.size(); ++i) {
    if (rel[i].empty()) continue;
    const Hierarchy& h = hierarchies_[i];
    const int fd = ::openat(h.fd, rel[i].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;  // this hierarchy has no such cgroup (yet)
    e->files[i].open(h, fd, rel[i], rel[i], budget_, errors_);
    ::close(fd);
  }
  entries_.push_back(std::move(e));
}

bool AggregateCgroups::collect(Snapshot& into, std::span<char> buf) {
  bool all = true;
  for (auto& e : entries_) {
    if (read(*e, buf)) {
      into.aggregates.push_back(&e->sample);
    } else {
      all = false;
      stale_ = true;
    }
  }
  return all;
}

void AggregateCgroups::readNetDev(Entry& e, std::span<char> buf) {
  if (!net_dev_.isOpen()) {
    if (auto r = net_dev_.openAt(AT_FDCWD, net_dev_path_.c_str()); !r) {
      errors_.report(kComponent, "read_error",
                     net_dev_path_.string() + ": " + std::strerror(r.error()));
      return;
    }
  }
  auto content = net_dev_.read(buf);
  if (!content) {
    errors_.report(kComponent, "read_error",
                   net_dev_path_.string() + ": " + std::strerror(content.error()));
    net_dev_.close();
    return;
  }
  CgroupSample& s = e.sample;
  const NetDevResult r = parseNetDev(*content, s.net);
  if (r.garbled > 0) {
    errors_.report(kComponent, "net_dev_parse_error",
                   net_dev_path_.string() + ": " + std::to_string(r.garbled) +
                       " lines not in the kernel's format");
  }
  if (r.over_bound > 0) {
    errors_.report(kComponent, "net_too_many_interfaces",
                   net_dev_path_.string() + ": " + std::to_string(r.over_bound) +
                       " interfaces past " + std::to_string(kMaxNetInterfaces) + " not read");
  }
  s.net_interfaces = r.interfaces;
  s.net_present = true;
}

bool AggregateCgroups::read(Entry& e, std::span<char> buf) {
  CgroupSample& s = e.sample;
  s.clearReadings();
  ReadScratch scratch;
  for (std::size_t i = 0; i < e.files.size(); ++i) {
    if (!e.files[i].located()) continue;
    // Removed (kubelet went away with its tree): out of this snapshot, and the collector
    // searches again next cycle.
    if (!e.files[i].read(hierarchies_[i], buf, s, scratch, errors_)) return false;
  }
  if (e.root) {
    readMeminfo(e, buf);
    readNetDev(e, buf);
  }
  // cAdvisor's working set: usage less inactive_file (v1: total_inactive_file), floored at 0.
  if (s.has(CgroupField::kMemUsageBytes) && scratch.has_inactive_file) {
    const auto usage = s.get(CgroupField::kMemUsageBytes);
    s.set(CgroupField::kMemWorkingSetBytes,
          usage > scratch.inactive_file ? usage - scratch.inactive_file : 0);
  }
  return true;
}

// The root's memory limit is the machine's memory (cAdvisor's GetSpec for "/" takes MemTotal in
// place of v1's unlimited memory.limit_in_bytes); on v2 the root has no memory.current, and runc's
// fs2 statMemory, which cAdvisor calls, takes MemTotal - MemFree instead. Swap stays absent there:
// runc reports SwapTotal - SwapFree, from which cAdvisor subtracts the usage, which wraps below
// zero; a node's swap is in node_memory_Swap* already.
void AggregateCgroups::readMeminfo(Entry& e, std::span<char> buf) {
  if (!meminfo_.isOpen()) {
    if (auto r = meminfo_.openAt(AT_FDCWD, meminfo_path_.c_str()); !r) {
      errors_.report(kComponent, "read_error",
                     meminfo_path_.string() + ": " + std::strerror(r.error()));
      return;
    }
  }
  auto content = meminfo_.read(buf);
  if (!content) {
    errors_.report(kComponent, "read_error",
                   meminfo_path_.string() + ": " + std::strerror(content.error()));
    return;
  }
  auto totals = parseMeminfoTotals(*content);
  if (!totals) {
    errors_.report(kComponent, "parse_error",
                   meminfo_path_.string() + ": " + parseErrorName(totals.error()));
    return;
  }
  CgroupSample& s = e.sample;
  s.set(CgroupField::kMemLimitBytes, totals->total_bytes);
  if (!s.has(CgroupField::kMemUsageBytes)) {
    s.set(CgroupField::kMemUsageBytes, totals->total_bytes - totals->free_bytes);
  }
}

}  // namespace nodewarden::cgroup
