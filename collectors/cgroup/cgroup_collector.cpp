// CgroupCollector implementation: hierarchy detection, the search for kubelet's tree, the
// per-cycle listing of pods and containers, and the per-cycle reads of every tracked cgroup.
//
// What a reader gets wrong: pods and containers are listed in one hierarchy only (the "primary":
// v2, else cpuacct, cpu, memory). Every other hierarchy is asked for the same path below one of
// its own kubepods roots, which is the same (pod uid, container id) whatever the parent above the
// root is. That keeps the per-cycle cost to one directory walk plus one pread per file.
#include "collectors/cgroup/cgroup_collector.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectors/cgroup/cgroup_layout.h"
#include "collectors/cgroup/cgroup_parsers.h"
#include "collectors/cgroup/dir_lister.h"
#include "collectors/common/pread_file.h"
#include "pipeline/container_metadata.h"

namespace nodewarden {

using cgroup::DirLister;

namespace {

constexpr const char* kComponent = "cgroup";
constexpr std::size_t kMaxDirsSearched = 200000;  // bounds the search on a huge host tree
constexpr std::uint64_t kNsPerUs = 1000;
constexpr std::uint64_t kNsPerTick = 10000000;  // USER_HZ is 100 on every Linux ABI

// What one hierarchy is used for.
enum Role : unsigned {
  kRoleCpuV1 = 1U << 0,
  kRoleCpuAcct = 1U << 1,
  kRoleMemV1 = 1U << 2,
  kRoleBlkioV1 = 1U << 3,
  kRoleCpuV2 = 1U << 4,
  kRoleMemV2 = 1U << 5,
  kRoleIoV2 = 1U << 6,
  kRolePsi = 1U << 7,
};

enum class FileKind : std::uint8_t {
  kCpuStatV1,
  kCfsQuota,
  kCfsPeriod,
  kCpuShares,
  kCpuAcctUsage,
  kCpuAcctUser,
  kCpuAcctSys,
  kCpuAcctStat,
  kMemUsageV1,
  kMemLimitV1,
  kMemStatV1,
  kOomControl,
  kMemMaxUsageV1,
  kBlkioBytes,
  kBlkioOps,
  kCpuStatV2,
  kCpuMax,
  kCpuWeight,
  kMemCurrent,
  kMemMax,
  kMemStatV2,
  kMemEvents,
  kMemPeak,
  kSwapCurrent,
  kIoStat,
  kPsiCpu,
  kPsiMem,
  kPsiIo,
};

struct FileSpec {
  unsigned role;
  FileKind kind;
  const char* name;
  const char* fallback;  // tried when name does not exist (older kernels), may be null
  bool required;         // absent on a kernel that has the role's controller: counted
};

// Per role, the interface files read each cycle. Optional files depend on kernel config
// (swap accounting, cpuacct.usage_user since 4.7, PSI's cpu "full" line).
constexpr std::array kFileSpecs = {
    FileSpec{kRoleCpuV1, FileKind::kCpuStatV1, "cpu.stat", nullptr, true},
    FileSpec{kRoleCpuV1, FileKind::kCfsQuota, "cpu.cfs_quota_us", nullptr, false},
    FileSpec{kRoleCpuV1, FileKind::kCfsPeriod, "cpu.cfs_period_us", nullptr, false},
    FileSpec{kRoleCpuV1, FileKind::kCpuShares, "cpu.shares", nullptr, true},
    FileSpec{kRoleCpuAcct, FileKind::kCpuAcctUsage, "cpuacct.usage", nullptr, true},
    FileSpec{kRoleCpuAcct, FileKind::kCpuAcctUser, "cpuacct.usage_user", nullptr, false},
    FileSpec{kRoleCpuAcct, FileKind::kCpuAcctSys, "cpuacct.usage_sys", nullptr, false},
    FileSpec{kRoleMemV1, FileKind::kMemUsageV1, "memory.usage_in_bytes", nullptr, true},
    FileSpec{kRoleMemV1, FileKind::kMemLimitV1, "memory.limit_in_bytes", nullptr, true},
    FileSpec{kRoleMemV1, FileKind::kMemStatV1, "memory.stat", nullptr, true},
    FileSpec{kRoleMemV1, FileKind::kOomControl, "memory.oom_control", nullptr, false},
    FileSpec{kRoleMemV1, FileKind::kMemMaxUsageV1, "memory.max_usage_in_bytes", nullptr, false},
    FileSpec{kRoleBlkioV1, FileKind::kBlkioBytes, "blkio.throttle.io_service_bytes_recursive",
             "blkio.throttle.io_service_bytes", false},
    FileSpec{kRoleBlkioV1, FileKind::kBlkioOps, "blkio.throttle.io_serviced_recursive",
             "blkio.throttle.io_serviced", false},
    FileSpec{kRoleCpuV2, FileKind::kCpuStatV2, "cpu.stat", nullptr, true},
    FileSpec{kRoleCpuV2, FileKind::kCpuMax, "cpu.max", nullptr, false},
    FileSpec{kRoleCpuV2, FileKind::kCpuWeight, "cpu.weight", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kMemCurrent, "memory.current", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kMemMax, "memory.max", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kMemStatV2, "memory.stat", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kMemEvents, "memory.events", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kMemPeak, "memory.peak", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kSwapCurrent, "memory.swap.current", nullptr, false},
    FileSpec{kRoleIoV2, FileKind::kIoStat, "io.stat", nullptr, false},
    FileSpec{kRolePsi, FileKind::kPsiCpu, "cpu.pressure", nullptr, false},
    FileSpec{kRolePsi, FileKind::kPsiMem, "memory.pressure", nullptr, false},
    FileSpec{kRolePsi, FileKind::kPsiIo, "io.pressure", nullptr, false},
};

struct Hierarchy {
  std::string label;  // "v2", "cpu", "cpuacct", "memory", "blkio", "unified"
  std::string path;
  int fd = -1;
  unsigned roles = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  std::vector<std::string> roots;  // kubepods roots relative to path
};

struct OpenFile {
  FileKind kind;
  const char* name;  // the file actually found (a spec's name or its fallback)
  PreadFile file;    // closed when the slot is transient
};

// The files of one tracked cgroup in one hierarchy. When the descriptor budget is spent, a slot
// is "transient": its files are opened, read and closed every cycle by path (three syscalls
// instead of one) rather than not read at all.
struct Slot {
  bool located = false;
  bool transient = false;
  std::uint32_t attempts = 0;
  std::string dir;  // relative to the hierarchy's root; used by transient slots
  std::vector<OpenFile> files;
};

// A container's threads and the run_delay each had when last read: the counter grows by each
// thread's increase between two reads, so a thread that exits takes nothing away.
struct RunDelay {
  struct Thread {
    std::uint64_t delay_ns = 0;
    std::uint64_t generation = 0;
  };
  std::unordered_map<pid_t, Thread> threads;
  std::uint64_t total_ns = 0;
  std::uint64_t generation = 0;
  bool started = false;
};

struct Tracked {
  CgroupSample sample;
  RunDelay run_delay;       // containers only
  std::string rel;          // below the kubepods root: "burstable/pod<uid>/<id>"
  std::vector<Slot> slots;  // one per hierarchy
  std::uint64_t seen_generation = 0;
  std::chrono::steady_clock::time_point found_at{};  // when first listed: the hold counts from it
  bool named = false;
  bool gone = false;
  bool sandbox = false;  // the pod's sandbox ("pause") container, per the runtime's state

  // Containers: their pod (a pod outlives its containers in tracked_: see discover()).
  Tracked* pod = nullptr;
  // Pods: the pod's directory in the primary hierarchy, kept open, and its link count when it
  // was last listed. kernfs (like tmpfs and ext4) counts 2 + subdirectories, so an unchanged
  // count means an unchanged set of containers, and the pod need not be listed again.
  int dir_fd = -1;
  nlink_t listed_nlink = 0;
  std::uint64_t listed_generation = 0;
  bool relist = true;  // set when a container vanished under it

  Tracked() = default;
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  ~Tracked() {
    if (dir_fd >= 0) ::close(dir_fd);
  }
};

// A pod is listed again at least this often even when its link count did not change, in case a
// container was replaced by another between two cycles without any read noticing.
constexpr std::uint64_t kFullRelistEvery = 30;

// A directory descriptor closed at the end of its scope.
struct TransientDir {
  int fd = -1;
  TransientDir() = default;
  TransientDir(const TransientDir&) = delete;
  TransientDir& operator=(const TransientDir&) = delete;
  ~TransientDir() {
    if (fd >= 0) ::close(fd);
  }
};

// The keys of the flat-keyed files that fill fields (value * scale gives the field's unit).
// kCount stands for inactive_file, which is only an input to the working set.
struct KeyedField {
  std::string_view key;
  CgroupField field;
  std::uint64_t scale;
};
constexpr KeyedField kCpuStatV1Keys[] = {
    {"nr_periods", CgroupField::kCfsPeriods, 1},
    {"nr_throttled", CgroupField::kCfsThrottledPeriods, 1},
    {"throttled_time", CgroupField::kCfsThrottledNs, 1},
};
constexpr KeyedField kCpuStatV2Keys[] = {
    {"usage_usec", CgroupField::kCpuUsageNs, kNsPerUs},
    {"user_usec", CgroupField::kCpuUserNs, kNsPerUs},
    {"system_usec", CgroupField::kCpuSystemNs, kNsPerUs},
    {"nr_periods", CgroupField::kCfsPeriods, 1},
    {"nr_throttled", CgroupField::kCfsThrottledPeriods, 1},
    {"throttled_usec", CgroupField::kCfsThrottledNs, kNsPerUs},
};
constexpr KeyedField kCpuAcctStatKeys[] = {
    {"user", CgroupField::kCpuUserNs, kNsPerTick},
    {"system", CgroupField::kCpuSystemNs, kNsPerTick},
};
// v1 memory.stat: the total_* keys are hierarchical (this cgroup and its children), as cAdvisor
// reads them.
constexpr KeyedField kMemStatV1Keys[] = {
    {"total_rss", CgroupField::kMemRssBytes, 1},
    {"total_cache", CgroupField::kMemCacheBytes, 1},
    {"total_swap", CgroupField::kMemSwapBytes, 1},
    {"total_mapped_file", CgroupField::kMemMappedFileBytes, 1},
    {"total_inactive_file", CgroupField::kCount, 1},
};
constexpr KeyedField kMemStatV2Keys[] = {
    {"anon", CgroupField::kMemRssBytes, 1},
    {"file", CgroupField::kMemCacheBytes, 1},
    {"file_mapped", CgroupField::kMemMappedFileBytes, 1},
    {"inactive_file", CgroupField::kCount, 1},
};
// memory.oom_control (v1; oom_kill since 4.13) and memory.events (v2) count kills alike.
constexpr KeyedField kOomKeys[] = {{"oom_kill", CgroupField::kOomKills, 1}};

std::span<const KeyedField> keyedFields(FileKind kind) {
  switch (kind) {
    case FileKind::kCpuStatV1:
      return kCpuStatV1Keys;
    case FileKind::kCpuStatV2:
      return kCpuStatV2Keys;
    case FileKind::kCpuAcctStat:
      return kCpuAcctStatKeys;
    case FileKind::kMemStatV1:
      return kMemStatV1Keys;
    case FileKind::kMemStatV2:
      return kMemStatV2Keys;
    case FileKind::kOomControl:
    case FileKind::kMemEvents:
      return kOomKeys;
    default:
      return {};
  }
}

// Files holding one number.
struct SingleField {
  FileKind kind;
  CgroupField field;
  std::uint64_t scale;
};
constexpr SingleField kSingleFields[] = {
    {FileKind::kCfsPeriod, CgroupField::kCpuPeriodUs, 1},
    {FileKind::kCpuShares, CgroupField::kCpuShares, 1},
    {FileKind::kCpuAcctUsage, CgroupField::kCpuUsageNs, 1},
    {FileKind::kCpuAcctUser, CgroupField::kCpuUserNs, 1},
    {FileKind::kCpuAcctSys, CgroupField::kCpuSystemNs, 1},
    {FileKind::kMemUsageV1, CgroupField::kMemUsageBytes, 1},
    {FileKind::kMemCurrent, CgroupField::kMemUsageBytes, 1},
    {FileKind::kSwapCurrent, CgroupField::kMemSwapBytes, 1},
    {FileKind::kMemMaxUsageV1, CgroupField::kMemMaxUsageBytes, 1},
    {FileKind::kMemPeak, CgroupField::kMemMaxUsageBytes, 1},
};

const SingleField* singleField(FileKind kind) {
  for (const auto& sf : kSingleFields) {
    if (sf.kind == kind) return &sf;
  }
  return nullptr;
}

// Values one file contributes to another's derived field within one read.
struct Scratch {
  std::uint64_t inactive_file = 0;
  bool has_inactive_file = false;
  bool has_user_ns = false;
};

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

class CgroupCollector::Impl {
 public:
  Impl(CgroupCollectorOptions options, ErrorReporter& errors)
      : options_(std::move(options)), errors_(errors) {
    read_buf_.resize(64 * 1024);
  }

  ~Impl() {
    closeHierarchies();
    if (proc_fd_ >= 0) ::close(proc_fd_);
  }

  void collect(Snapshot& into) {
    ++cycle_;
    now_ = options_.now ? options_.now() : std::chrono::steady_clock::now();
    if (need_search_ || now_ >= next_search_) {
      searchRoots();
      next_search_ = now_ + options_.root_search_interval;
    }
    if (primary_ >= 0) discover();
    readAll(into);
  }

  void readPods(const std::function<bool(std::string_view)>& want,
                const std::function<void(const CgroupSample&, bool)>& seen) {
    for (auto& [key, t] : tracked_) {
      if (t->sandbox || !want(t->sample.pod_uid)) continue;
      readTracked(*t);
      seen(t->sample, t->gone);
    }
  }

  CgroupCollectorStats stats() const {
    CgroupCollectorStats s;
    const bool images = imagesTold();
    for (const auto& [key, t] : tracked_) {
      (t->sample.isPod() ? s.pods : s.containers)++;
      if (awaitsNames(*t, images))
        (t->sample.names_pending ? s.unnamed_held : s.unnamed_exported)++;
    }
    s.open_files = open_files_;
    s.hierarchies = hierarchies_.size();
    for (const auto& h : hierarchies_) s.kubepods_roots += h.roots.size();
    return s;
  }

 private:
  // ---- hierarchies and the search for kubelet's tree (rare; may allocate) ----

  void closeHierarchies() {
    for (auto& h : hierarchies_) {
      if (h.fd >= 0) ::close(h.fd);
    }
    hierarchies_.clear();
  }

  bool addHierarchy(const std::string& label, const std::filesystem::path& path, unsigned roles) {
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

  static bool exists(const std::filesystem::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
  }

  void detectHierarchies() {
    closeHierarchies();
    const auto& root = options_.cgroup_root;
    if (exists(root / "cgroup.controllers")) {
      addHierarchy("v2", root, kRoleCpuV2 | kRoleMemV2 | kRoleIoV2 | kRolePsi);
      return;
    }
    if (exists(root / "cpu")) addHierarchy("cpu", root / "cpu", kRoleCpuV1);
    if (exists(root / "cpuacct")) addHierarchy("cpuacct", root / "cpuacct", kRoleCpuAcct);
    if (exists(root / "cpu,cpuacct")) {
      addHierarchy("cpu,cpuacct", root / "cpu,cpuacct", kRoleCpuV1 | kRoleCpuAcct);
    }
    if (exists(root / "memory")) addHierarchy("memory", root / "memory", kRoleMemV1);
    if (exists(root / "blkio")) addHierarchy("blkio", root / "blkio", kRoleBlkioV1);
    if (exists(root / "unified" / "cgroup.controllers")) {
      addHierarchy("unified", root / "unified", kRolePsi);
    }
  }

  // Breadth-first below each hierarchy root, down to max_depth, for "kubepods"/"kubepods.slice".
  void findRoots(Hierarchy& h) {
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
      search_lister_.forEachSubdir(fd, [&](std::string_view name) {
        std::string rel = cur.rel.empty() ? std::string(name) : cur.rel + "/" + std::string(name);
        if (cgroup::isKubepodsRootName(name)) {
          h.roots.push_back(std::move(rel));
        } else if (cur.depth + 1 < options_.max_depth) {
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

  void searchRoots() {
    // Remember where each hierarchy's roots were so tracked cgroups survive a re-search.
    std::vector<std::string> old_signature;
    for (const auto& h : hierarchies_) {
      old_signature.push_back(h.path + ":" + std::to_string(h.roles));
      for (const auto& r : h.roots) old_signature.push_back(r);
    }
    file_budget_ = fileBudget();
    detectHierarchies();
    if (hierarchies_.empty()) {
      errors_.report(kComponent, "no_hierarchy",
                     options_.cgroup_root.string() + " holds no cgroup v1 or v2 hierarchy");
    }
    for (auto& h : hierarchies_) findRoots(h);
    std::vector<std::string> new_signature;
    for (const auto& h : hierarchies_) {
      new_signature.push_back(h.path + ":" + std::to_string(h.roles));
      for (const auto& r : h.roots) new_signature.push_back(r);
    }
    if (new_signature != old_signature) {  // layout changed: start over
      tracked_.clear();
      open_files_ = 0;
    }

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
    need_search_ = primary_ < 0;
  }

  // ---- per-cycle listing of pods and containers (allocation-free in steady state) ----

  void discover() {
    ++generation_;
    Hierarchy& h = hierarchies_[static_cast<std::size_t>(primary_)];
    for (std::size_t r = 0; r < h.roots.size(); ++r) {
      const int root_fd = openDir(h.fd, h.roots[r].c_str(), h, h.roots[r]);
      if (root_fd < 0) {
        need_search_ = true;  // kubelet's tree went away (or moved): look again next cycle
        continue;
      }
      current_root_ = &h.roots[r];
      rel_.clear();
      const int root_err = root_lister_.forEachSubdir(root_fd, [&](std::string_view name) {
        if (auto qos = cgroup::parseQosDir(name)) {
          const int qos_fd = openDir(root_fd, name.data(), h, name);
          if (qos_fd < 0) return;
          const std::size_t base = rel_.size();
          rel_.append(name).push_back('/');
          const int qos_err = qos_lister_.forEachSubdir(qos_fd, [&](std::string_view pod_name) {
            if (auto pod = cgroup::parsePodDir(pod_name)) visitPod(qos_fd, pod_name, *pod, *qos);
          });
          if (qos_err != 0) listFailed(h, name, qos_err);
          rel_.resize(base);
          ::close(qos_fd);
        } else if (auto pod = cgroup::parsePodDir(name)) {
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
      const Tracked& t = *it->second;
      const bool alive =
          t.pod == nullptr ||
          (t.pod->seen_generation == generation_ &&
           (t.pod->listed_generation != generation_ || t.seen_generation == generation_));
      it = alive ? std::next(it) : untrack(it);
    }
    for (auto it = tracked_.begin(); it != tracked_.end();) {
      const Tracked& t = *it->second;
      it = t.pod != nullptr || t.seen_generation == generation_ ? std::next(it) : untrack(it);
    }
    locateMissing();
    updateNames();
  }

  void visitPod(int parent_fd, std::string_view dir_name, const cgroup::PodDir& pod, QosClass qos) {
    if (!cgroup::normalizePodUid(pod.uid_raw, uid_)) return;
    const std::size_t base = rel_.size();
    rel_.append(dir_name);
    key_.assign(uid_).push_back('/');
    Tracked* p = track(qos, {}, nullptr);
    const Hierarchy& h = hierarchies_[static_cast<std::size_t>(primary_)];
    // Past the descriptor budget the pod's directory is opened, listed and closed every cycle.
    TransientDir temp;
    int dir_fd = p->dir_fd;
    if (dir_fd < 0) {
      dir_fd = openDir(parent_fd, dir_name.data(), h, rel_);
      if (dir_fd >= 0 && open_files_ < file_budget_) {
        p->dir_fd = dir_fd;
        ++open_files_;
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
          auto id = cgroup::parseContainerDir(name);
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

  using TrackedMap = std::unordered_map<std::string, std::unique_ptr<Tracked>>;

  TrackedMap::iterator untrack(TrackedMap::iterator it) {
    Tracked& t = *it->second;
    for (auto& slot : t.slots) closeSlot(slot);
    if (t.dir_fd >= 0) --open_files_;  // closed by ~Tracked
    return tracked_.erase(it);
  }

  // Opens a directory of kubelet's tree for listing. ENOENT is the normal race with a pod's
  // removal; anything else (EACCES, EIO) hides pods and is counted.
  int openDir(int parent_fd, const char* name, const Hierarchy& h, std::string_view what) {
    const int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) listFailed(h, what, errno);
    return fd;
  }

  void listFailed(const Hierarchy& h, std::string_view what, int err) {
    if (err == ENOENT) return;
    errors_.report(kComponent, "unreadable_dir",
                   h.path + "/" + std::string(what) + ": " + errnoText(err));
  }

  Tracked* track(QosClass qos, std::string_view container_id, Tracked* pod) {
    auto it = tracked_.find(key_);
    if (it != tracked_.end()) {
      it->second->seen_generation = generation_;
      return it->second.get();
    }
    auto t = std::make_unique<Tracked>();
    t->pod = pod;
    t->seen_generation = generation_;
    t->found_at = now_;
    t->rel = rel_;
    t->sample.pod_uid = uid_;
    t->sample.container_id = std::string(container_id);
    t->sample.qos = qos;
    t->sample.id = "/" + *current_root_ + "/" + rel_;
    t->slots.resize(hierarchies_.size());
    for (std::size_t i = 0; i < hierarchies_.size(); ++i) locate(*t, i);
    names_dirty_ = true;
    return tracked_.emplace(key_, std::move(t)).first->second.get();
  }

  // Finds t's cgroup in hierarchy i below one of its kubepods roots and opens its files.
  void locate(Tracked& t, std::size_t i) {
    Hierarchy& h = hierarchies_[i];
    Slot& slot = t.slots[i];
    ++slot.attempts;
    for (const auto& root : h.roots) {
      path_.assign(root).push_back('/');
      path_.append(t.rel);
      const int dir_fd = ::openat(h.fd, path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir_fd < 0) continue;
      openFiles(h, slot, dir_fd, t);
      ::close(dir_fd);
      slot.located = true;
      return;
    }
  }

  void openFiles(const Hierarchy& h, Slot& slot, int dir_fd, const Tracked& t) {
    closeSlot(slot);
    slot.dir = path_;
    std::size_t wanted = 0;
    for (const auto& spec : kFileSpecs) wanted += (h.roles & spec.role) ? 1 : 0;
    slot.transient = open_files_ + wanted > file_budget_;
    if (slot.transient && !warned_budget_) {
      warned_budget_ = true;
      errors_.report(kComponent, "fd_budget_exhausted",
                     "more cgroup files than the descriptor budget of " +
                         std::to_string(file_budget_) +
                         "; reading the rest by path each cycle (raise RLIMIT_NOFILE)");
    }
    for (const auto& spec : kFileSpecs) {
      if (!(h.roles & spec.role)) continue;
      PreadFile f;
      const char* name = spec.name;
      auto r = f.openAt(dir_fd, name);
      if (!r && r.error() == ENOENT && spec.fallback != nullptr) {
        name = spec.fallback;
        r = f.openAt(dir_fd, name);
      }
      FileKind kind = spec.kind;
      if (!r && spec.kind == FileKind::kCpuAcctUser) {
        // Kernels before 4.7 have no cpuacct.usage_user/_sys: use cpuacct.stat's ticks.
        name = "cpuacct.stat";
        kind = FileKind::kCpuAcctStat;
        r = f.openAt(dir_fd, name);
        if (!r) continue;
      }
      if (!r) {
        if (r.error() == EMFILE || r.error() == ENFILE) {
          errors_.report(kComponent, "too_many_open_files", h.path + "/" + t.rel);
        } else if (spec.required) {
          errors_.report(kComponent, "missing_file",
                         h.path + "/" + t.rel + "/" + spec.name + ": " + errnoText(r.error()));
        }
        continue;
      }
      if (slot.transient) {
        f.close();
      } else {
        ++open_files_;
      }
      slot.files.push_back({kind, name, std::move(f)});
    }
  }

  void closeSlot(Slot& slot) {
    for (auto& of : slot.files) {
      if (of.file.isOpen()) --open_files_;
    }
    slot.files.clear();
  }

  std::size_t fileBudget() const {
    if (options_.max_open_files > 0) return options_.max_open_files;
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1U << 20;
    // Leave room for HTTP connections, logs and the rest of the agent.
    return lim.rlim_cur > 1024 ? lim.rlim_cur - 1024 : lim.rlim_cur / 2;
  }

  // Retries hierarchies where a new cgroup was not found yet (runc creates them one by one),
  // backing off so a hierarchy that never has it costs little.
  void locateMissing() {
    for (auto& [key, t] : tracked_) {
      for (std::size_t i = 0; i < t->slots.size(); ++i) {
        Slot& s = t->slots[i];
        if (s.located || hierarchies_[i].roots.empty()) continue;
        const std::uint32_t every = 1U << std::min<std::uint32_t>(s.attempts, 6);
        if (cycle_ % every == 0) locate(*t, i);
      }
    }
  }

  // ---- names ----

  // After each listing. The log directories are read again when cgroups were found (kubelet makes
  // a pod's log directory before its containers) and every 30 s while some are unnamed; the
  // metadata is asked about the unnamed ones again whenever its generation() moved, so a pod is
  // named in the first cycle after any source learns it. A steady cycle reads one number.
  void updateNames() {
    ContainerMetadata* meta = options_.metadata;
    // Read before the lookups: a source that moves during them is asked again next cycle.
    const std::uint64_t meta_generation = meta != nullptr ? meta->generation() : 0;
    bool resolve = names_dirty_ || (any_unnamed_ && meta_generation != seen_meta_generation_);
    if (names_dirty_ || (any_unnamed_ && now_ >= next_name_scan_)) {
      scanLogNames();
      resolve = true;
    }
    names_dirty_ = false;
    seen_meta_generation_ = meta_generation;
    if (resolve) {
      nameUnnamed();
    } else if (any_unnamed_ && (now_ >= next_hold_end_ || (any_held_ && options_.listings_since))) {
      // A hold also ends with the listings that came in (a list equal to the last moves no
      // generation): asked each cycle, only while something is held.
      updateHolds();
    }
    // A pod no source knows yet: have them look now rather than at their next refresh, and again
    // each cycle while it is held (a source rate-limits what this costs it): the kubelet lists a
    // container's id only after its status went round the API server.
    if (any_held_ && meta != nullptr) meta->requestRefresh();
  }

  void scanLogNames() {
    next_name_scan_ = now_ + std::chrono::seconds(30);
    pod_names_.clear();
    container_names_.clear();
    // /var/log/pods/<namespace>_<pod>_<uid>: namespaces and pod names are DNS labels and
    // subdomains, which cannot hold '_', so the split is unambiguous.
    if (const int fd = ::open(options_.log_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fd >= 0) {
      search_lister_.forEachSubdir(fd, [&](std::string_view name) {
        const auto a = name.find('_');
        const auto b = name.rfind('_');
        if (a == std::string_view::npos || a == b) return;
        std::string uid;
        if (!cgroup::normalizePodUid(name.substr(b + 1), uid)) return;
        pod_names_[uid] = {std::string(name.substr(0, a)),
                           std::string(name.substr(a + 1, b - a - 1))};
      });
      ::close(fd);
    }
    // kubelet's /var/log/containers/<pod>_<namespace>_<container>-<id>.log symlinks name
    // containers by runtime id.
    const auto containers_dir = options_.log_root.parent_path() / "containers";
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
        container_names_[std::string(id)] = std::string(rest.substr(b + 1));
      }
      ::closedir(d);
    }
  }

  // Names the cgroups not yet named from the metadata, then from the log directories' names.
  void nameUnnamed() {
    // The runtime's own state first: it also knows the image and which container is the pod's
    // sandbox. The log directories' names fill in what it does not know.
    ContainerMetadata* meta = options_.metadata;  // refreshed by its owner each cycle
    any_unnamed_ = false;
    for (auto& [key, t] : tracked_) {
      if (t->named) continue;
      auto& s = t->sample;
      std::optional<ContainerIdentity> c;
      if (!s.isPod() && meta != nullptr) c = meta->container(s.container_id);
      if (c) {
        s.namespace_name = c->namespace_name;
        s.pod_name = c->pod_name;
        s.container_name = c->container_name;
        s.image = c->image;
        t->sandbox = c->is_sandbox;
      } else if (auto p = meta != nullptr ? meta->pod(s.pod_uid) : std::nullopt) {
        // A container the sources do not list (yet) still belongs to a pod they may know.
        s.namespace_name = p->namespace_name;
        s.pod_name = p->pod_name;
      }
      if (s.pod_name.empty()) {
        if (auto it = pod_names_.find(s.pod_uid); it != pod_names_.end()) {
          s.namespace_name = it->second.first;
          s.pod_name = it->second.second;
        }
      }
      if (!s.isPod() && s.container_name.empty() && !t->sandbox) {
        if (auto it = container_names_.find(s.container_id); it != container_names_.end()) {
          s.container_name = it->second;
        }
      }
      const bool complete = !s.pod_name.empty() &&
                            (s.isPod() || t->sandbox ||
                             (!s.container_name.empty() && (meta == nullptr || !s.image.empty())));
      t->named = complete;
      any_unnamed_ = any_unnamed_ || !complete;
    }
    updateHolds();
  }

  bool imagesTold() const {
    return options_.metadata != nullptr && options_.metadata->namesImages();
  }

  // Whether t lacks a name a source could still give: its pod's, its own, or its image when a
  // source tells images.
  static bool awaitsNames(const Tracked& t, bool images) {
    if (t.named || t.sandbox) return false;
    const CgroupSample& s = t.sample;
    return s.pod_name.empty() ||
           (!s.isPod() && (s.container_name.empty() || (images && s.image.empty())));
  }

  // Marks the unnamed cgroups still within the hold as names_pending and the rest not; notes when
  // the next hold ends by time, the only moment this must run again unless names change or
  // listings come in. A container that lacks only an image no source can tell is not held.
  void updateHolds() {
    any_held_ = false;
    next_hold_end_ = std::chrono::steady_clock::time_point::max();
    const bool images = imagesTold();
    for (auto& [key, t] : tracked_) {
      CgroupSample& s = t->sample;
      const auto end = t->found_at + options_.hold_unnamed;
      s.names_pending = now_ < end && awaitsNames(*t, images) &&
                        (!options_.listings_since || now_ < t->found_at + options_.hold_at_least ||
                         options_.listings_since(t->found_at) < 2);
      if (s.names_pending) {
        any_held_ = true;
        next_hold_end_ = std::min(next_hold_end_, end);
      }
    }
  }

  // ---- per-cycle reads ----

  void readAll(Snapshot& into) {
    for (auto& [key, t] : tracked_) {
      // A pod's sandbox ("pause") container is not one of its containers: its usage is in the
      // pod-level series already, as kubelet reports it.
      if (t->sandbox) continue;
      readTracked(*t);
      if (!t->gone) into.cgroups.push_back(&t->sample);
    }
  }

  void readTracked(Tracked& t) {
    CgroupSample& s = t.sample;
    s.clearReadings();
    t.gone = false;
    Scratch scratch;
    for (std::size_t i = 0; i < t.slots.size(); ++i) {
      Slot& slot = t.slots[i];
      // A transient slot's files are opened relative to its directory, opened once per cycle,
      // rather than each walking the whole path from the hierarchy's root.
      TransientDir dir;
      int dir_err = 0;
      if (slot.transient && !slot.files.empty()) {
        dir.fd = ::openat(hierarchies_[i].fd, slot.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir.fd < 0) dir_err = errno;
      }
      for (auto& of : slot.files) {
        std::expected<std::string_view, int> content = std::unexpected(dir_err);
        if (!slot.transient) {
          content = of.file.read(read_buf_);
        } else if (dir.fd >= 0) {
          content = readFileAt(dir.fd, of.name, read_buf_);
        }
        if (!content) {
          const int err = content.error();
          if (err == ENODEV || err == ENOENT) {
            // The cgroup was removed between listing and reading: gone from this snapshot, and
            // its pod is listed again next cycle.
            t.gone = true;
            if (t.pod != nullptr) t.pod->relist = true;
            errors_.report(kComponent, "vanished_mid_read", where(i, slot));
            return;
          }
          errors_.report(kComponent, err == EFBIG ? "file_too_large" : "read_error",
                         where(i, slot) + "/" + of.name + ": " + errnoText(err));
          continue;
        }
        parseInto(of, *content, s, scratch, i, slot);
      }
    }
    if (options_.run_delay && t.pod != nullptr) readRunDelay(t);
    if (s.has(CgroupField::kMemUsageBytes) && scratch.has_inactive_file) {
      const auto usage = s.get(CgroupField::kMemUsageBytes);
      s.set(CgroupField::kMemWorkingSetBytes,
            usage > scratch.inactive_file ? usage - scratch.inactive_file : 0);
    }
  }

  // Sums the run-queue delay of the container's threads: the thread list from the v2 tree
  // (cgroup.threads) or the v1 cpu hierarchy (tasks), each thread's /proc/<tid>/schedstat
  // ("<on-cpu ns> <run_delay ns> <timeslices>", Documentation/scheduler/sched-stats.rst). A
  // thread seen for the first time only sets its starting point.
  void readRunDelay(Tracked& t) {
    if (proc_fd_ == -1) {
      proc_fd_ = ::open(options_.proc_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (proc_fd_ < 0) {
        proc_fd_ = -2;
        errors_.report(kComponent, "run_delay_no_proc",
                       options_.proc_root.string() + ": " + errnoText(errno));
      }
    }
    if (proc_fd_ < 0) return;
    std::size_t h = t.slots.size();
    const char* list = nullptr;
    for (std::size_t i = 0; i < t.slots.size(); ++i) {
      if (!t.slots[i].located) continue;
      if ((hierarchies_[i].roles & (kRolePsi | kRoleCpuV2)) != 0) {
        h = i;
        list = "cgroup.threads";
        break;
      }
      if ((hierarchies_[i].roles & kRoleCpuV1) != 0 && h == t.slots.size()) {
        h = i;
        list = "tasks";
      }
    }
    if (list == nullptr) return;
    TransientDir dir;
    dir.fd =
        ::openat(hierarchies_[h].fd, t.slots[h].dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir.fd < 0) return;  // gone: the next listing notices
    const auto tids = readFileAt(dir.fd, list, read_buf_);
    if (!tids) {
      if (tids.error() == ENOENT || tids.error() == ENODEV) return;  // the cgroup just went away
      errors_.report(kComponent,
                     tids.error() == EFBIG ? "run_delay_too_many_threads" : "read_error",
                     where(h, t.slots[h]) + "/" + list + ": " + errnoText(tids.error()));
      return;
    }
    RunDelay& rd = t.run_delay;
    ++rd.generation;
    std::size_t threads = 0;
    std::string_view rest = *tids;
    std::array<char, 128> stat_buf{};
    std::array<char, 32> name{};
    while (!rest.empty()) {
      const std::size_t nl = rest.find('\n');
      const std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      pid_t tid = 0;
      if (std::from_chars(line.data(), line.data() + line.size(), tid).ec != std::errc() ||
          tid <= 0) {
        continue;
      }
      if (++threads > options_.max_run_delay_threads) {
        errors_.report(kComponent, "run_delay_too_many_threads", where(h, t.slots[h]));
        return;
      }
      std::snprintf(name.data(), name.size(), "%d/schedstat", static_cast<int>(tid));
      const auto stat = readFileAt(proc_fd_, name.data(), stat_buf);
      if (!stat) continue;  // exited since the list was read, or no schedstats in this kernel
      const auto delay = cgroup::parseSchedstatRunDelay(*stat);
      if (!delay) {
        parseFailed(h, t.slots[h], "schedstat", delay.error());
        continue;
      }
      auto [it, added] = rd.threads.try_emplace(tid);
      if (!added && rd.started && *delay >= it->second.delay_ns) {
        rd.total_ns += *delay - it->second.delay_ns;
      }
      it->second.delay_ns = *delay;
      it->second.generation = rd.generation;
    }
    std::erase_if(rd.threads,
                  [&](const auto& kv) { return kv.second.generation != rd.generation; });
    rd.started = true;
    t.sample.set(CgroupField::kRunDelayNs, rd.total_ns);
  }

  std::string where(std::size_t h, const Slot& slot) const {
    return hierarchies_[h].path + "/" + slot.dir;
  }

  void parseFailed(std::size_t h, const Slot& slot, const char* file, cgroup::ParseError e) {
    errors_.report(kComponent, "parse_error",
                   where(h, slot) + "/" + file + ": " + cgroup::parseErrorName(e));
  }

  // Applies one file's content to the sample: flat-keyed and single-value files through their
  // tables, the few with a format of their own case by case. A value that does not parse leaves
  // its field absent and is counted.
  void parseInto(const OpenFile& of, std::string_view c, CgroupSample& s, Scratch& sc,
                 std::size_t h, const Slot& slot) {
    using F = CgroupField;
    if (const auto keys = keyedFields(of.kind); !keys.empty()) {
      // memory.stat has some 50 keys and we want 4 or 5: stop once every wanted key was seen
      // (a key the kernel does not print, such as total_swap without swap accounting, just
      // means reading to the end).
      std::size_t found = 0;
      const int bad = cgroup::parseFlatKeyed(c, [&](std::string_view k, std::uint64_t v) {
        for (const auto& kf : keys) {
          if (kf.key != k) continue;
          if (kf.field == F::kCount) {  // inactive_file: only an input to the working set
            sc.inactive_file = v;
            sc.has_inactive_file = true;
          } else {
            s.set(kf.field, v * kf.scale);
          }
          return ++found < keys.size();
        }
        return true;
      });
      if (bad > 0) parseFailed(h, slot, of.name, cgroup::ParseError::kMalformed);
      return;
    }
    if (const auto* sf = singleField(of.kind)) {
      auto r = cgroup::parseSingleValue(c);
      if (r) {
        s.set(sf->field, *r * sf->scale);
      } else {
        parseFailed(h, slot, of.name, r.error());
      }
      return;
    }
    const auto fail = [&](cgroup::ParseError e) { parseFailed(h, slot, of.name, e); };
    switch (of.kind) {
      case FileKind::kCfsQuota: {
        auto r = cgroup::parseV1CpuQuota(c);
        if (!r) return fail(r.error());
        if (r->has_value()) s.set(F::kCpuQuotaUs, **r);
        return;
      }
      case FileKind::kMemLimitV1:
      case FileKind::kMemMax: {
        auto r = of.kind == FileKind::kMemMax ? cgroup::parseV2MemoryMax(c)
                                              : cgroup::parseV1MemoryLimit(c);
        if (!r) return fail(r.error());
        s.set(F::kMemLimitBytes, *r);
        return;
      }
      case FileKind::kCpuMax: {
        auto r = cgroup::parseCpuMax(c);
        if (!r) return fail(r.error());
        s.set(F::kCpuPeriodUs, r->period_us);
        if (r->quota_us) s.set(F::kCpuQuotaUs, *r->quota_us);
        return;
      }
      case FileKind::kCpuWeight: {
        auto r = cgroup::parseSingleValue(c);
        if (!r) return fail(r.error());
        s.set(F::kCpuShares, cgroup::cpuWeightToShares(*r));
        return;
      }
      case FileKind::kBlkioBytes:
      case FileKind::kBlkioOps:
      case FileKind::kIoStat: {
        // io_service_bytes comes before io_serviced in kFileSpecs: bytes start the device list,
        // ops add to it.
        auto r = of.kind == FileKind::kIoStat ? cgroup::parseIoStat(c, s.io)
                 : of.kind == FileKind::kBlkioBytes
                     ? cgroup::parseBlkioThrottle(c, true, s.io, 0)
                     : cgroup::parseBlkioThrottle(c, false, s.io, s.io_devices);
        if (!r) return fail(r.error());
        s.io_devices = *r;
        s.io_present = true;
        return;
      }
      case FileKind::kPsiCpu:
      case FileKind::kPsiMem:
      case FileKind::kPsiIo: {
        auto r = cgroup::parsePressure(c);
        if (!r) return fail(r.error());
        const auto [some, full] =
            of.kind == FileKind::kPsiCpu   ? std::pair{F::kPsiCpuSomeUs, F::kPsiCpuFullUs}
            : of.kind == FileKind::kPsiMem ? std::pair{F::kPsiMemSomeUs, F::kPsiMemFullUs}
                                           : std::pair{F::kPsiIoSomeUs, F::kPsiIoFullUs};
        if (r->has_some) s.set(some, r->some_us);
        if (r->has_full) s.set(full, r->full_us);
        return;
      }
      default:
        return;  // every other kind is in a table above
    }
  }

  CgroupCollectorOptions options_;
  ErrorReporter& errors_;
  std::vector<Hierarchy> hierarchies_;
  int primary_ = -1;
  bool need_search_ = true;
  std::chrono::steady_clock::time_point next_search_{};
  std::uint64_t cycle_ = 0;
  std::uint64_t generation_ = 0;

  std::unordered_map<std::string, std::unique_ptr<Tracked>> tracked_;  // TrackedMap

  // Reused buffers: the per-cycle path never allocates once these have grown.
  std::vector<char> read_buf_;
  int proc_fd_ = -1;  // -2: could not be opened (said once)
  std::string rel_, key_, uid_, path_;
  const std::string* current_root_ = nullptr;
  DirLister root_lister_, qos_lister_, pod_lister_, search_lister_;

  std::size_t open_files_ = 0;
  std::size_t file_budget_ = 0;
  bool warned_budget_ = false;

  bool names_dirty_ = false;
  bool any_unnamed_ = false;
  bool any_held_ = false;
  std::chrono::steady_clock::time_point now_{};  // this cycle's, from options_.now
  std::chrono::steady_clock::time_point next_name_scan_{};
  std::chrono::steady_clock::time_point next_hold_end_ =
      std::chrono::steady_clock::time_point::max();
  std::uint64_t seen_meta_generation_ = 0;
  std::unordered_map<std::string, std::pair<std::string, std::string>> pod_names_;
  std::unordered_map<std::string, std::string> container_names_;
};

CgroupCollector::CgroupCollector(CgroupCollectorOptions options, ErrorReporter& errors)
    : impl_(std::make_unique<Impl>(std::move(options), errors)) {}

CgroupCollector::~CgroupCollector() = default;

void CgroupCollector::collect(Snapshot& into) { impl_->collect(into); }

CgroupCollectorStats CgroupCollector::stats() const { return impl_->stats(); }

void CgroupCollector::readPods(const std::function<bool(std::string_view)>& want,
                               const std::function<void(const CgroupSample&, bool)>& seen) {
  impl_->readPods(want, seen);
}

std::chrono::milliseconds namingHold(std::chrono::milliseconds interval,
                                     std::chrono::milliseconds kubelet_refresh) {
  return interval + 2 * kubelet_refresh;
}

}  // namespace nodewarden
