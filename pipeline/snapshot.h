// Snapshot: every reading of one collection cycle, the one value that flows from the metric
// collectors to the consumers (the Prometheus renderer now, the detector later).
//
// What a reader gets wrong: a Snapshot is reused from cycle to cycle so that steady-state
// collection allocates nothing. Consumers must not keep pointers into it past consume(): the
// CgroupSamples it points at belong to the collector and change on its next cycle.
#pragma once

#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nodewarden {

enum class QosClass : std::uint8_t { kUnknown, kGuaranteed, kBurstable, kBestEffort };

const char* qosName(QosClass qos);

// One reading per field, in the unit named by its comment. A field is exported only when present:
// a missing or garbled cgroup file leaves it absent (and is counted), never zero.
enum class CgroupField : std::uint8_t {
  kCpuUsageNs,           // cpuacct.usage / cpu.stat usage_usec
  kCpuUserNs,            // cpuacct.usage_user / cpu.stat user_usec
  kCpuSystemNs,          // cpuacct.usage_sys / cpu.stat system_usec
  kCfsPeriods,           // cpu.stat nr_periods
  kCfsThrottledPeriods,  // cpu.stat nr_throttled
  kCfsThrottledNs,       // cpu.stat throttled_time (ns, v1) / throttled_usec (v2)
  kCpuQuotaUs,           // cpu.cfs_quota_us / cpu.max; present only when limited
  kCpuPeriodUs,          // cpu.cfs_period_us / cpu.max
  kCpuShares,            // cpu.shares, or cpu.weight converted to shares like cAdvisor
  kMemUsageBytes,        // memory.usage_in_bytes / memory.current
  kMemWorkingSetBytes,   // usage - inactive_file, floored at 0 (cAdvisor's definition)
  kMemRssBytes,          // memory.stat total_rss / anon
  kMemCacheBytes,        // memory.stat total_cache / file
  kMemSwapBytes,         // memory.stat total_swap / memory.swap.current
  kMemMappedFileBytes,   // memory.stat total_mapped_file / file_mapped
  kMemLimitBytes,        // memory.limit_in_bytes / memory.max; 0 when unlimited (cAdvisor)
  kOomKills,             // memory.oom_control oom_kill / memory.events oom_kill
  kMemMaxUsageBytes,     // memory.max_usage_in_bytes / memory.peak (5.19+): the high-water mark
  kPsiCpuSomeUs,         // cpu.pressure some total (microseconds)
  kPsiCpuFullUs,         // cpu.pressure full total
  kPsiMemSomeUs,         // memory.pressure some total
  kPsiMemFullUs,         // memory.pressure full total
  kPsiIoSomeUs,          // io.pressure some total
  kPsiIoFullUs,          // io.pressure full total
  // Run-queue wait of the cgroup's threads (/proc/<tid>/schedstat run_delay), summed over the
  // intervals each thread was seen in: a counter that threads leaving never lower.
  kRunDelayNs,
  kMemFailcnt,           // memory.failcnt / memory.events max (as runc's fs2 sets Failcnt)
  kMemPgfault,           // memory.stat pgfault (v2: the cgroup's subtree, as cAdvisor reads it)
  kMemPgmajfault,        // memory.stat pgmajfault
  kMemHierPgfault,       // memory.stat total_pgfault / pgfault
  kMemHierPgmajfault,    // memory.stat total_pgmajfault / pgmajfault
  kMemReservationBytes,  // memory.soft_limit_in_bytes / memory.min; 0 when unlimited (cAdvisor)
  kMemSwapLimitBytes,    // memory.memsw.limit_in_bytes / memory.swap.max; 0 when unlimited
  kStartTimeS,           // the cgroup's directory mtime, earliest across hierarchies (unix s)
  kLastSeenS,            // the collection's wall-clock time (unix s)
  kThreads,              // pids.current, else the lines of cgroup.threads / tasks
  kThreadsMax,           // pids.max; 0 for "max"
  kProcesses,            // the lines of cgroup.procs
  kFileDescriptors,      // /proc/<pid>/fd entries of the cgroup.procs processes
  kSockets,              // of those, the ones whose link reads "socket:[...]"
  kCount
};
inline constexpr std::size_t kCgroupFieldCount = static_cast<std::size_t>(CgroupField::kCount);

// Block IO of one cgroup on one device (blkio.throttle.* in v1, io.stat in v2).
struct IoDeviceStat {
  std::uint32_t major = 0;
  std::uint32_t minor = 0;
  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
};
inline constexpr std::size_t kMaxIoDevices = 16;

// Network counters of one interface of a pod's network namespace (/proc/<pid>/net/dev), as
// cAdvisor reads them. name is NUL-terminated (IFNAMSIZ is 16 with the NUL).
struct NetInterfaceStat {
  std::array<char, 16> name{};
  std::uint64_t rx_bytes = 0;
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_errors = 0;
  std::uint64_t rx_dropped = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_errors = 0;
  std::uint64_t tx_dropped = 0;
};
// A pod has eth0 and seldom more (a second network attached by a meta-plugin); interfaces past
// the bound are skipped and counted, never stored in a growing buffer.
inline constexpr std::size_t kMaxNetInterfaces = 8;

// One pod's or container's readings. Pod-level samples have an empty container_id.
struct CgroupSample {
  // Identity. pod_uid uses dashes as the API does; container_id is the runtime's 64-hex id.
  std::string pod_uid;
  std::string container_id;
  std::string id;  // cgroup path from the hierarchy root: cAdvisor's "id" label
  // Names; empty while unknown. Filled from what the node shows (log directory names) until the
  // metadata collector knows better. Never guessed.
  std::string namespace_name;
  std::string pod_name;
  std::string container_name;
  std::string image;
  QosClass qos = QosClass::kUnknown;
  // No source knows its names yet and it was found less than the hold ago: the exposition
  // (/metrics, remote write) leaves it out, since exporting it anonymous and renamed a cycle later
  // would split each of its series in two. Consumers keyed by pod uid and container id (the
  // detector, Job outcomes) read it as usual.
  bool names_pending = false;

  std::array<std::uint64_t, kCgroupFieldCount> values{};
  std::bitset<kCgroupFieldCount> present;
  std::array<IoDeviceStat, kMaxIoDevices> io{};
  std::uint8_t io_devices = 0;
  bool io_present = false;

  [[nodiscard]] bool has(CgroupField f) const { return present.test(index(f)); }
  [[nodiscard]] std::uint64_t get(CgroupField f) const { return values[index(f)]; }
  void set(CgroupField f, std::uint64_t v) {
    values[index(f)] = v;
    present.set(index(f));
  }
  void clearReadings() {
    present.reset();
    io_devices = 0;
    io_present = false;
    net_interfaces = 0;
    net_present = false;
  }
  [[nodiscard]] bool isPod() const { return container_id.empty(); }

  static constexpr std::size_t index(CgroupField f) { return static_cast<std::size_t>(f); }

  // The pod's network namespace, per interface (loopback and the other names cAdvisor ignores
  // left out). Pod-level samples only, and never for a pod in the node's network namespace.
  std::array<NetInterfaceStat, kMaxNetInterfaces> net{};
  std::uint8_t net_interfaces = 0;
  bool net_present = false;
};

// PSI totals of one resource (Documentation/accounting/psi.rst): microseconds stalled.
struct PsiTotals {
  std::uint64_t some_us = 0;
  std::uint64_t full_us = 0;
  bool has_some = false;
  bool has_full = false;
};

// /proc/stat cpu line: ticks (USER_HZ) per mode, in the kernel's column order.
struct CpuTimes {
  int cpu = -1;  // -1 for the aggregate "cpu" line
  std::array<std::uint64_t, 10> ticks{};
  std::uint8_t columns = 0;  // how many columns the kernel printed (older kernels print fewer)
};

struct NodeSample {
  bool has_stat = false;
  std::vector<CpuTimes> cpus;  // per-cpu lines only
  std::uint64_t context_switches = 0;
  std::uint64_t boot_time_s = 0;
  std::uint64_t forks = 0;
  std::uint64_t interrupts = 0;
  std::uint64_t procs_running = 0;
  std::uint64_t procs_blocked = 0;

  bool has_meminfo = false;
  std::vector<std::pair<std::string, std::uint64_t>> meminfo;  // key as in /proc/meminfo, bytes

  PsiTotals psi_cpu, psi_memory, psi_io;

  bool has_loadavg = false;
  double load1 = 0, load5 = 0, load15 = 0;
};

struct Snapshot {
  std::int64_t timestamp_ms = 0;  // wall clock at the end of collection
  // Samples are owned by the collector that produced them and stay valid until its next collect().
  std::vector<const CgroupSample*> cgroups;
  NodeSample node;
  // The cgroups above the pods (collectors.cgroup.aggregates): the hierarchy root (id "/"), the
  // kubepods root and its QoS cgroups, with no pod uid or names. Only the exposition reads them;
  // consumers keyed by pod uid never see them. Owned like cgroups.
  std::vector<const CgroupSample*> aggregates;

  // Empties the snapshot for the next cycle, keeping every buffer's capacity.
  void reset() {
    timestamp_ms = 0;
    cgroups.clear();
    aggregates.clear();
  }
};

// A Snapshot that owns its samples: what a cycle publishes for readers on other threads (scrapes),
// which may hold it as long as they like while the collectors go on. copyFrom() reuses every
// buffer, so republishing into the same OwnedSnapshot allocates nothing once sizes are stable.
class OwnedSnapshot {
 public:
  void copyFrom(const Snapshot& from) {
    samples_.resize(from.cgroups.size());
    for (std::size_t i = 0; i < from.cgroups.size(); ++i) samples_[i] = *from.cgroups[i];
    view_.cgroups.clear();
    for (const auto& s : samples_) view_.cgroups.push_back(&s);
    view_.node = from.node;
    view_.timestamp_ms = from.timestamp_ms;
    aggregate_samples_.resize(from.aggregates.size());
    for (std::size_t i = 0; i < from.aggregates.size(); ++i) {
      aggregate_samples_[i] = *from.aggregates[i];
    }
    view_.aggregates.clear();
    for (const auto& s : aggregate_samples_) view_.aggregates.push_back(&s);
  }
  [[nodiscard]] const Snapshot& view() const { return view_; }
  // Gives `image` to every container sample exported without one (past the naming hold, no
  // source knows its image); pod-level samples keep image="" as cAdvisor's do. Returns how many.
  // Allocates nothing while `image` fits the strings' capacity.
  std::size_t fillUnknownImages(std::string_view image) {
    std::size_t n = 0;
    for (auto& s : samples_) {
      if (s.isPod() || s.names_pending || !s.image.empty()) continue;
      s.image.assign(image);
      ++n;
    }
    return n;
  }

 private:
  std::vector<CgroupSample> samples_;
  Snapshot view_;
  std::vector<CgroupSample> aggregate_samples_;
};

}  // namespace nodewarden
