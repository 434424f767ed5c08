// CgroupCollector: one collection cycle put together from the units that do the work (see
// cgroup_collector.h for the layout): search for kubelet's tree when due, list pods and
// containers, name them, read every tracked cgroup into the snapshot.
//
// What a reader gets wrong: a sample is read whole or not at all. When any hierarchy's files of a
// cgroup say it was removed, the rest are not read, it leaves this snapshot, and its pod is listed
// again next cycle; a run-queue delay or a working set is never derived from half a read.
#include "collectors/cgroup/cgroup_collector.h"

#include <unistd.h>

#include <array>
#include <charconv>
#include <vector>

#include "collectors/cgroup/aggregate_cgroups.h"
#include "collectors/cgroup/cgroup_files.h"
#include "collectors/cgroup/cgroup_hierarchies.h"
#include "collectors/cgroup/cgroup_naming.h"
#include "collectors/cgroup/cgroup_tracker.h"
#include "collectors/cgroup/pod_network.h"
#include "collectors/cgroup/process_stats.h"
#include "collectors/cgroup/run_delay.h"

namespace nodewarden {

using cgroup::TrackedCgroup;

namespace {

// Whether pids in cgroup files mean what they mean under proc_root. The kernel lists the pids of
// cgroup.procs, tasks and cgroup.threads in the reader's PID namespace, while <proc_root>/self
// names the reader in the namespace that procfs was mounted for: they differ when the agent runs
// in a PID namespace of its own beside the host's /proc (a pod without hostPID), and then every
// pid it lists is 0 or missing. False only when it can tell (a proc root without "self", as a
// fixture, is taken as matching).
bool pidsMatchProcRoot(const std::filesystem::path& proc_root) {
  std::array<char, 32> buf{};
  const std::string self = (proc_root / "self").string();
  const ssize_t n = ::readlink(self.c_str(), buf.data(), buf.size());
  if (n <= 0) return true;
  long pid = 0;
  const auto [end, ec] = std::from_chars(buf.data(), buf.data() + n, pid);
  if (ec != std::errc{} || end != buf.data() + n) return true;
  return pid == ::getpid();
}

}  // namespace

class CgroupCollector::Impl {
 public:
  Impl(CgroupCollectorOptions options, ErrorReporter& errors)
      : options_(std::move(options)),
        errors_(errors),
        hierarchies_(options_.cgroup_root, options_.max_depth, errors),
        tracker_(hierarchies_, errors),
        namer_(options_),
        run_delay_(options_.proc_root, options_.max_run_delay_threads, errors),
        network_(options_.proc_root, tracker_.budget(), errors),
        process_stats_(options_.proc_root,
                       {options_.fd_scan_interval, options_.max_fd_scan_processes}, errors) {
    read_buf_.resize(64 * 1024);
    pids_match_ = pidsMatchProcRoot(options_.proc_root);
    if (!pids_match_) {
      errors_.report("cgroup", "pid_namespace_not_host",
                     "this process is not in the PID namespace of " + options_.proc_root.string() +
                         ": the pids cgroups list are 0 or missing, so pod network, processes, "
                         "descriptors and run-queue delay are not read (run with hostPID: true)");
    }
    if (options_.aggregates) {
      aggregates_ =
          std::make_unique<cgroup::AggregateCgroups>(hierarchies_, options_.proc_root, errors_);
    }
  }

  void collect(Snapshot& into) {
    ++cycle_;
    const auto now = options_.now ? options_.now() : std::chrono::steady_clock::now();
    beginReads(now);
    if (need_search_ || now >= next_search_) {
      // The budget is taken again each search: RLIMIT_NOFILE may have been raised.
      const std::size_t limit = cgroup::descriptorLimit(options_.max_open_files);
      const bool changed = hierarchies_.search();
      tracker_.afterSearch(limit, changed);
      if (aggregates_) aggregates_->afterSearch(limit, changed);
      need_search_ = hierarchies_.primary() < 0;
      next_search_ = now + options_.root_search_interval;
    }
    if (hierarchies_.primary() >= 0) {
      const auto listing = tracker_.list(cycle_, now);
      if (listing.root_missing) need_search_ = true;
      namer_.update(now, listing.found_new, [this](const auto& f) {
        for (auto& [key, t] : tracker_.cgroups()) f(t->sample, t->name);
      });
    }
    for (auto& [key, t] : tracker_.cgroups()) {
      // A pod's sandbox ("pause") container is not one of its containers: its usage is in the
      // pod-level series already, as kubelet reports it.
      if (t->name.sandbox) continue;
      read(*t);
      if (!t->gone) into.cgroups.push_back(&t->sample);
    }
    // Pids that do not name the proc root's processes would give zeros for counts that are
    // not zero: those series are left absent instead (said once at start).
    if (options_.pod_network && pids_match_) readNetwork();
    if (aggregates_ && !aggregates_->collect(into, read_buf_)) need_search_ = true;
  }

  void readPods(const std::function<bool(std::string_view)>& want,
                const std::function<void(const CgroupSample&, bool)>& seen) {
    // Between cycles: last seen moves, the cycle's descriptor budget does not start again.
    last_seen_s_ = unixSeconds();
    for (auto& [key, t] : tracker_.cgroups()) {
      if (t->name.sandbox || !want(t->sample.pod_uid)) continue;
      read(*t);
      seen(t->sample, t->gone);
    }
  }

  CgroupCollectorStats stats() const {
    CgroupCollectorStats s;
    const bool images = namer_.imagesTold();
    for (const auto& [key, t] : tracker_.cgroups()) {
      (t->sample.isPod() ? s.pods : s.containers)++;
      if (cgroup::CgroupNamer::awaitsNames(t->sample, t->name, images))
        (t->sample.names_pending ? s.unnamed_held : s.unnamed_exported)++;
    }
    s.open_files = tracker_.openFiles() + (aggregates_ ? aggregates_->openFiles() : 0);
    s.hierarchies = hierarchies_.size();
    s.kubepods_roots = hierarchies_.rootCount();
    return s;
  }

 private:
  void read(TrackedCgroup& t) {
    CgroupSample& s = t.sample;
    s.clearReadings();
    t.gone = false;
    cgroup::ReadScratch scratch;
    for (std::size_t i = 0; i < t.slots.size(); ++i) {
      if (!t.slots[i].files.read(hierarchies_[i], read_buf_, s, scratch, errors_)) {
        // Removed between listing and reading: gone from this snapshot, and its pod is listed
        // again next cycle.
        t.gone = true;
        if (t.pod != nullptr) t.pod->relist = true;
        return;
      }
    }
    if (options_.run_delay && pids_match_ && t.pod != nullptr) readRunDelay(t);
    readProcessSeries(t);
    if (s.has(CgroupField::kMemUsageBytes) && scratch.has_inactive_file) {
      const auto usage = s.get(CgroupField::kMemUsageBytes);
      s.set(CgroupField::kMemWorkingSetBytes,
            usage > scratch.inactive_file ? usage - scratch.inactive_file : 0);
    }
  }

  // The thread list from the v2 tree (cgroup.threads) or else the v1 cpu hierarchy (tasks).
  void readRunDelay(TrackedCgroup& t) {
    if (!run_delay_.available()) return;
    std::size_t h = t.slots.size();
    const char* list = nullptr;
    for (std::size_t i = 0; i < t.slots.size(); ++i) {
      if (!t.slots[i].files.located()) continue;
      if ((hierarchies_[i].roles & (cgroup::kRolePsi | cgroup::kRoleCpuV2)) != 0) {
        h = i;
        list = "cgroup.threads";
        break;
      }
      if ((hierarchies_[i].roles & cgroup::kRoleCpuV1) != 0 && h == t.slots.size()) {
        h = i;
        list = "tasks";
      }
    }
    if (list == nullptr) return;
    const auto delay =
        run_delay_.read(hierarchies_[h], t.slots[h].files.dir(), list, t.run_delay, read_buf_);
    if (delay) t.sample.set(CgroupField::kRunDelayNs, *delay);
  }

  // Each pod's network counters, after its cgroup files were read (which cleared them). A steady
  // cycle is one fstatat and one pread per pod; the pods whose process is gone or not found yet
  // look for one in their containers' cgroup.procs (any container: all share the sandbox's
  // namespace), with a backoff.
  void readNetwork() {
    bool wanted = false;
    for (auto& [key, t] : tracker_.cgroups()) {
      if (!t->sample.isPod() || t->gone) continue;
      // A host-network verdict is looked at again too (after its backoff): it may have come
      // from a process that had not joined the sandbox's namespace yet.
      if (!network_.read(t->net, t->sample, read_buf_) || t->net.host_network)
        wanted |= cgroup::PodNetworkReader::wantsProcess(t->net, cycle_);
    }
    if (!wanted) return;
    for (auto& [key, t] : tracker_.cgroups()) {
      TrackedCgroup* pod = t->pod;
      if (pod == nullptr || pod->gone || !cgroup::PodNetworkReader::wantsProcess(pod->net, cycle_))
        continue;
      for (std::size_t i = 0; i < t->slots.size(); ++i) {
        if (!t->slots[i].files.located()) continue;
        if (network_.find(pod->net, hierarchies_[i], t->slots[i].files.dir(), cycle_, read_buf_))
          network_.read(pod->net, pod->sample, read_buf_);
        break;
      }
    }
    for (auto& [key, t] : tracker_.cgroups()) {
      if (t->sample.isPod()) cgroup::PodNetworkReader::backOff(t->net, cycle_);
    }
  }

  // The clocks of the cycle's reads: last seen is the wall clock in seconds (cAdvisor's
  // container_last_seen); the descriptor counts' cadence follows the steady one.
  void beginReads(std::chrono::steady_clock::time_point now) {
    last_seen_s_ = unixSeconds();
    process_stats_.beginCycle(now);
  }
  static std::int64_t unixSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // Start time, last seen, and the process series from the hierarchy cAdvisor reads them in (the
  // v2 tree, else the v1 cpu one; memory or pids when cpu has not got it).
  void readProcessSeries(TrackedCgroup& t) {
    CgroupSample& s = t.sample;
    if (t.start_time_s > 0)
      s.set(CgroupField::kStartTimeS, static_cast<std::uint64_t>(t.start_time_s));
    if (last_seen_s_ > 0) s.set(CgroupField::kLastSeenS, static_cast<std::uint64_t>(last_seen_s_));
    if (!options_.process_stats || !pids_match_) return;
    constexpr unsigned kV2 = cgroup::kRoleCpuV2 | cgroup::kRolePsi | cgroup::kRolePidsV2;
    constexpr unsigned kOrder[] = {kV2, cgroup::kRoleCpuV1, cgroup::kRoleMemV1,
                                   cgroup::kRolePidsV1};
    for (unsigned roles : kOrder) {
      for (std::size_t i = 0; i < t.slots.size(); ++i) {
        if (!t.slots[i].files.located() || (hierarchies_[i].roles & roles) == 0) continue;
        const char* threads = nullptr;
        if (!s.has(CgroupField::kThreads)) threads = roles == kV2 ? "cgroup.threads" : "tasks";
        process_stats_.read(hierarchies_[i], t.slots[i].files.dir(), threads, t.processes, s,
                            read_buf_, tracker_.budget());
        return;
      }
    }
  }

  CgroupCollectorOptions options_;
  ErrorReporter& errors_;
  cgroup::CgroupHierarchies hierarchies_;
  cgroup::CgroupTracker tracker_;
  cgroup::CgroupNamer namer_;
  cgroup::RunDelayReader run_delay_;
  bool pids_match_ = true;  // pids in cgroup files are the proc root's (pidsMatchProcRoot)
  cgroup::PodNetworkReader network_;
  cgroup::ProcessStatsReader process_stats_;
  std::int64_t last_seen_s_ = 0;
  bool need_search_ = true;
  std::chrono::steady_clock::time_point next_search_{};
  std::uint64_t cycle_ = 0;
  std::vector<char> read_buf_;  // reused: the per-cycle reads allocate nothing
  std::unique_ptr<cgroup::AggregateCgroups> aggregates_;  // collectors.cgroup.aggregates
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
