// Writes the synthetic kubelet cgroup trees. File shapes are copied from a real 6.x kernel: v1
// memory.stat, cpu.stat, memory.oom_control, blkio.throttle.* and the unified cpu.stat and
// *.pressure of a hybrid host; v2 files follow Documentation/admin-guide/cgroup-v2.rst.
#include "bench/synthetic_tree.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <span>
#include <system_error>
#include <utility>

namespace nodewarden::bench {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kV1Unlimited = 9223372036854771712ULL;  // PAGE_COUNTER_MAX * 4096
constexpr std::uint64_t kCfsPeriodUs = 100000;
constexpr std::uint32_t kDiskMajor = 254;  // vda on the benchmark host; /proc/partitions names it
constexpr std::uint32_t kDiskMinor = 0;

// splitmix64: deterministic, so every run writes the same tree for the same seed.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + next() % (hi - lo + 1); }

 private:
  std::uint64_t state_;
};

enum class Qos : std::uint8_t { kGuaranteed, kBurstable, kBestEffort };

const char* qosDir(Qos qos) {
  switch (qos) {
    case Qos::kGuaranteed:
      return "";
    case Qos::kBurstable:
      return "burstable";
    case Qos::kBestEffort:
      return "besteffort";
  }
  return "";
}

// The readings one cgroup's files are written from. A pod's are the sum of its containers'.
struct Readings {
  std::uint64_t cpu_user_ns = 0;
  std::uint64_t cpu_sys_ns = 0;
  std::uint64_t nr_periods = 0;
  std::uint64_t nr_throttled = 0;
  std::uint64_t throttled_ns = 0;
  std::int64_t quota_us = -1;  // -1: unlimited
  std::uint64_t shares = 2;
  std::uint64_t limit_bytes = 0;  // 0: unlimited
  std::uint64_t anon = 0;
  std::uint64_t file = 0;
  std::uint64_t mapped_file = 0;
  std::uint64_t inactive_file = 0;
  std::uint64_t shmem = 0;
  std::uint64_t kernel = 0;
  std::uint64_t pgfault = 0;
  std::uint64_t pgmajfault = 0;
  std::uint64_t max_usage = 0;
  std::uint64_t oom_kills = 0;
  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::array<std::uint64_t, 6> psi_us{};  // cpu some/full, memory some/full, io some/full

  [[nodiscard]] std::uint64_t usage() const { return anon + file + kernel; }
  [[nodiscard]] bool hasIo() const { return reads + writes > 0; }

  void add(const Readings& r) {
    cpu_user_ns += r.cpu_user_ns;
    cpu_sys_ns += r.cpu_sys_ns;
    nr_periods = std::max(nr_periods, r.nr_periods);
    nr_throttled = std::max(nr_throttled, r.nr_throttled);
    throttled_ns += r.throttled_ns;
    anon += r.anon;
    file += r.file;
    mapped_file += r.mapped_file;
    inactive_file += r.inactive_file;
    shmem += r.shmem;
    kernel += r.kernel;
    pgfault += r.pgfault;
    pgmajfault += r.pgmajfault;
    max_usage += r.max_usage;
    oom_kills += r.oom_kills;
    read_bytes += r.read_bytes;
    write_bytes += r.write_bytes;
    reads += r.reads;
    writes += r.writes;
    for (std::size_t i = 0; i < psi_us.size(); ++i) psi_us[i] += r.psi_us[i];
  }
};

Readings containerReadings(Rng& rng, Qos qos) {
  Readings r;
  r.cpu_user_ns = rng.between(1'000'000'000ULL, 9'000'000'000'000ULL);
  r.cpu_sys_ns = r.cpu_user_ns / rng.between(2, 9);
  const std::uint64_t millicores = rng.between(1, 40) * 50;  // 50m..2000m
  const bool limited = qos == Qos::kGuaranteed || (qos == Qos::kBurstable && rng.next() % 2 == 0);
  if (limited) {
    r.quota_us = static_cast<std::int64_t>(millicores * kCfsPeriodUs / 1000);
    r.limit_bytes = rng.between(64, 8192) * 1024 * 1024;
    r.nr_periods = rng.between(10'000, 9'000'000);
    r.nr_throttled = r.nr_periods / rng.between(3, 400);
    r.throttled_ns = r.nr_throttled * rng.between(100'000, 20'000'000);
  }
  r.shares = qos == Qos::kBestEffort ? 2 : millicores * 1024 / 1000;
  const std::uint64_t budget = r.limit_bytes != 0 ? r.limit_bytes : 2048ULL * 1024 * 1024;
  r.anon = (budget / 100 * rng.between(5, 80)) & ~4095ULL;
  r.file = (budget / 100 * rng.between(1, 15)) & ~4095ULL;
  r.mapped_file = (r.file / rng.between(2, 8)) & ~4095ULL;
  r.inactive_file = (r.file / rng.between(1, 4)) & ~4095ULL;
  r.shmem = rng.next() % 4 == 0 ? 4096 * rng.between(1, 64) : 0;
  r.kernel = 4096 * rng.between(100, 4000);
  r.pgfault = rng.between(10'000, 90'000'000);
  r.pgmajfault = r.pgfault / rng.between(500, 50'000);
  r.max_usage = r.usage() + 4096 * rng.between(0, 100'000);
  r.oom_kills = rng.next() % 50 == 0 ? rng.between(1, 3) : 0;
  if (rng.next() % 5 != 0) {  // one container in five never touches the disk
    r.reads = rng.between(0, 200'000);
    r.writes = rng.between(1, 2'000'000);
    r.read_bytes = r.reads * 4096 * rng.between(1, 32);
    r.write_bytes = r.writes * 4096 * rng.between(1, 16);
  }
  r.psi_us[0] = rng.between(0, 900'000'000);
  r.psi_us[1] = r.psi_us[0] / rng.between(2, 10);
  r.psi_us[2] = rng.next() % 3 == 0 ? rng.between(0, 50'000'000) : 0;
  r.psi_us[3] = r.psi_us[2] / 2;
  r.psi_us[4] = r.hasIo() ? rng.between(0, 300'000'000) : 0;
  r.psi_us[5] = r.psi_us[4] * 9 / 10;
  return r;
}

// Appends "key value\n" lines without <format> (GCC 12 lacks it).
class Text {
 public:
  Text& line(std::string_view key, std::uint64_t v) {
    s_.append(key).push_back(' ');
    s_.append(std::to_string(v)).push_back('\n');
    return *this;
  }
  Text& raw(std::string_view text) {
    s_.append(text);
    return *this;
  }
  Text& num(std::uint64_t v) {
    s_.append(std::to_string(v));
    return *this;
  }
  [[nodiscard]] const std::string& str() const { return s_; }

 private:
  std::string s_;
};

std::string psiText(std::uint64_t some_us, std::uint64_t full_us) {
  Text t;
  t.raw("some avg10=0.00 avg60=0.00 avg300=0.00 total=").num(some_us).raw("\n");
  t.raw("full avg10=0.00 avg60=0.00 avg300=0.00 total=").num(full_us).raw("\n");
  return t.str();
}

std::string v1CpuStat(const Readings& r) {
  Text t;
  t.line("nr_periods", r.nr_periods).line("nr_throttled", r.nr_throttled);
  t.line("throttled_time", r.throttled_ns).line("nr_bursts", 0).line("burst_time", 0);
  return t.str();
}

std::string v1MemoryStat(const Readings& r, const Readings& local) {
  const std::uint64_t limit = r.limit_bytes != 0 ? r.limit_bytes : kV1Unlimited;
  const std::uint64_t active_file = r.file - r.inactive_file;
  Text t;
  // Local counters first, then hierarchical limits, then the total_* (hierarchical) counters.
  t.line("cache", local.file).line("rss", local.anon).line("rss_huge", 0);
  t.line("shmem", local.shmem).line("mapped_file", local.mapped_file).line("dirty", 20480);
  t.line("writeback", 0).line("workingset_refault_anon", 0).line("workingset_refault_file", 497);
  t.line("swap", 0).line("swapcached", 0).line("pgpgin", local.pgfault / 3);
  t.line("pgpgout", local.pgfault / 4).line("pgfault", local.pgfault);
  t.line("pgmajfault", local.pgmajfault).line("inactive_anon", 0).line("active_anon", local.anon);
  t.line("inactive_file", local.inactive_file);
  t.line("active_file", local.file - local.inactive_file).line("unevictable", 0);
  t.line("hierarchical_memory_limit", limit).line("hierarchical_memsw_limit", kV1Unlimited);
  t.line("total_cache", r.file).line("total_rss", r.anon).line("total_rss_huge", 0);
  t.line("total_shmem", r.shmem).line("total_mapped_file", r.mapped_file);
  t.line("total_dirty", 151552).line("total_writeback", 0);
  t.line("total_workingset_refault_anon", 0).line("total_workingset_refault_file", 23495);
  t.line("total_swap", 0).line("total_swapcached", 0).line("total_pgpgin", r.pgfault / 3);
  t.line("total_pgpgout", r.pgfault / 4).line("total_pgfault", r.pgfault);
  t.line("total_pgmajfault", r.pgmajfault).line("total_inactive_anon", 0);
  t.line("total_active_anon", r.anon).line("total_inactive_file", r.inactive_file);
  t.line("total_active_file", active_file).line("total_unevictable", 0);
  return t.str();
}

std::string v2MemoryStat(const Readings& r) {
  const std::uint64_t slab = r.kernel / 2;
  Text t;
  t.line("anon", r.anon).line("file", r.file).line("kernel", r.kernel);
  t.line("kernel_stack", r.kernel / 16).line("pagetables", r.kernel / 8);
  t.line("sec_pagetables", 0).line("percpu", 2880).line("sock", 0).line("vmalloc", 0);
  t.line("shmem", r.shmem).line("zswap", 0).line("zswapped", 0);
  t.line("file_mapped", r.mapped_file).line("file_dirty", 20480).line("file_writeback", 0);
  t.line("swapcached", 0).line("anon_thp", 0).line("file_thp", 0).line("shmem_thp", 0);
  t.line("inactive_anon", 0).line("active_anon", r.anon).line("inactive_file", r.inactive_file);
  t.line("active_file", r.file - r.inactive_file).line("unevictable", 0);
  t.line("slab_reclaimable", slab / 2)
      .line("slab_unreclaimable", slab - slab / 2)
      .line("slab", slab);
  t.line("workingset_refault_anon", 0).line("workingset_refault_file", 497);
  t.line("workingset_activate_anon", 0).line("workingset_activate_file", 112);
  t.line("workingset_restore_anon", 0).line("workingset_restore_file", 0);
  t.line("workingset_nodereclaim", 0).line("pgdemote_kswapd", 0).line("pgdemote_direct", 0);
  t.line("pgdemote_khugepaged", 0).line("pgpromote_success", 0).line("pgscan", 0);
  t.line("pgsteal", 0).line("pgscan_kswapd", 0).line("pgscan_direct", 0);
  t.line("pgscan_khugepaged", 0).line("pgsteal_kswapd", 0).line("pgsteal_direct", 0);
  t.line("pgsteal_khugepaged", 0).line("pgfault", r.pgfault).line("pgmajfault", r.pgmajfault);
  t.line("pgrefill", 0).line("pgactivate", 1843).line("pgdeactivate", 0).line("pglazyfree", 0);
  t.line("pglazyfreed", 0).line("swpin_zero", 0).line("swpout_zero", 0).line("zswpin", 0);
  t.line("zswpout", 0).line("zswpwb", 0).line("thp_fault_alloc", 0);
  t.line("thp_collapse_alloc", 0).line("thp_swpout", 0).line("thp_swpout_fallback", 0);
  return t.str();
}

// blkio.throttle.io_service_bytes / io_serviced: one line per device and operation, then Total.
std::string blkioText(std::uint64_t reads, std::uint64_t writes) {
  Text t;
  if (reads + writes > 0) {
    const std::string dev = std::to_string(kDiskMajor) + ":" + std::to_string(kDiskMinor) + " ";
    t.raw(dev).line("Read", reads).raw(dev).line("Write", writes);
    t.raw(dev).line("Sync", writes / 3).raw(dev).line("Async", reads + writes - writes / 3);
    t.raw(dev).line("Discard", 0).raw(dev).line("Total", reads + writes);
  }
  t.line("Total", reads + writes);
  return t.str();
}

std::string ioStat(const Readings& r) {
  if (!r.hasIo()) return {};
  Text t;
  t.num(kDiskMajor).raw(":").num(kDiskMinor).raw(" rbytes=").num(r.read_bytes);
  t.raw(" wbytes=").num(r.write_bytes).raw(" rios=").num(r.reads).raw(" wios=").num(r.writes);
  t.raw(" dbytes=0 dios=0\n");
  return t.str();
}

// cpu.shares -> cpu.weight the way kubelet converts (1 + (shares - 2) * 9999 / 262142).
std::uint64_t sharesToWeight(std::uint64_t shares) { return 1 + ((shares - 2) * 9999) / 262142; }

struct File {
  const char* name;
  std::string content;
  bool read;  // read by the collector each cycle (listed in read_files)
};

class Writer {
 public:
  explicit Writer(SyntheticTree& tree) : tree_(tree) {}

  bool mkdirs(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) error_ = "mkdir " + dir.string() + ": " + ec.message();
    return !ec;
  }

  // Writes the files into dir (created); listed marks whether read files count (pod and
  // container directories) or the directory is only there for realism (kubepods, QoS).
  bool write(const fs::path& dir, std::span<const File> files, bool listed) {
    if (!mkdirs(dir)) return false;
    for (const File& f : files) {
      fs::path p = dir / f.name;
      if (!writeFile(p, f.content)) return false;
      ++tree_.files_written;
      if (listed && f.read) tree_.read_files.push_back(std::move(p));
    }
    return true;
  }

  bool writeFile(const fs::path& p, std::string_view content) {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      error_ = "open " + p.string() + ": " + std::strerror(errno);
      return false;
    }
    const ssize_t n = ::write(fd, content.data(), content.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(content.size())) {
      error_ = "write " + p.string() + ": short write";
      return false;
    }
    return true;
  }

  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  SyntheticTree& tree_;
  std::string error_;
};

// One generated cgroup: its path below kubepods and its readings (local part for v1 memory.stat).
struct Node {
  std::string rel;  // e.g. "burstable/pod<uid>/<id>" or "pod<uid>" (Guaranteed)
  Readings r;
  Readings local;
  bool root = false;  // the hierarchy root itself (rel unused)
  bool container = false;
};

// cgroup.procs: the benchmark's process in containers, nothing in pods and above.
std::string procsText(const Node& n, int process) {
  return n.container && process > 0 ? std::to_string(process) + "\n" : std::string();
}

bool writeHybrid(Writer& w, const fs::path& root, const Node& n, bool listed, int process) {
  const Readings& r = n.r;
  const std::uint64_t user = r.cpu_user_ns, sys = r.cpu_sys_ns;
  const std::string quota = std::to_string(r.quota_us);
  const std::uint64_t limit = r.limit_bytes != 0 ? r.limit_bytes : kV1Unlimited;
  const std::string oom =
      "oom_kill_disable 0\nunder_oom 0\noom_kill " + std::to_string(r.oom_kills) + "\n";
  const fs::path rel = n.root ? fs::path() : fs::path("kubepods") / n.rel;
  const File cpu[] = {
      {"cpu.stat", v1CpuStat(r), true},
      {"cpu.cfs_quota_us", quota + "\n", true},
      {"cpu.cfs_period_us", std::to_string(kCfsPeriodUs) + "\n", true},
      {"cpu.shares", std::to_string(r.shares) + "\n", true},
  };
  const File cpuacct[] = {
      {"cpuacct.usage", std::to_string(user + sys) + "\n", true},
      {"cpuacct.usage_user", std::to_string(user) + "\n", true},
      {"cpuacct.usage_sys", std::to_string(sys) + "\n", true},
      {"cpuacct.stat",
       Text().line("user", user / 10'000'000).line("system", sys / 10'000'000).str(), false},
  };
  const File memory[] = {
      {"memory.usage_in_bytes", std::to_string(r.usage()) + "\n", true},
      {"memory.limit_in_bytes", std::to_string(limit) + "\n", true},
      {"memory.stat", v1MemoryStat(r, n.local), true},
      {"memory.oom_control", oom, true},
      {"memory.max_usage_in_bytes", std::to_string(r.max_usage) + "\n", true},
      {"memory.failcnt", std::to_string(r.oom_kills * 7) + "\n", true},
      {"memory.soft_limit_in_bytes", std::to_string(kV1Unlimited) + "\n", true},
      {"memory.memsw.limit_in_bytes", std::to_string(limit) + "\n", true},
  };
  const File pids[] = {
      {"pids.current", std::string(n.container ? "3" : "9") + "\n", true},
      {"pids.max", "max\n", true},
  };
  // Kernels have both the local and the _recursive files; collectors read the _recursive ones
  // (this cgroup and its children, as cAdvisor does). A leaf's two are equal.
  const std::string io_bytes = blkioText(r.read_bytes, r.write_bytes);
  const std::string io_ops = blkioText(r.reads, r.writes);
  const File blkio[] = {
      {"blkio.throttle.io_service_bytes", io_bytes, false},
      {"blkio.throttle.io_serviced", io_ops, false},
      {"blkio.throttle.io_service_bytes_recursive", io_bytes, true},
      {"blkio.throttle.io_serviced_recursive", io_ops, true},
  };
  // The unified mount of a hybrid host carries no controllers, hence cpu.stat without CFS lines.
  const File unified[] = {
      {"cgroup.controllers", "", false},
      {"cgroup.procs", procsText(n, process), true},
      {"cpu.pressure", psiText(r.psi_us[0], r.psi_us[1]), true},
      {"memory.pressure", psiText(r.psi_us[2], r.psi_us[3]), true},
      {"io.pressure", psiText(r.psi_us[4], r.psi_us[5]), true},
      {"cpu.stat",
       Text()
           .line("usage_usec", (user + sys) / 1000)
           .line("user_usec", user / 1000)
           .line("system_usec", sys / 1000)
           .line("nice_usec", 0)
           .str(),
       false},
  };
  return w.write(root / "cpu" / rel, cpu, listed) &&
         w.write(root / "cpuacct" / rel, cpuacct, listed) &&
         w.write(root / "memory" / rel, memory, listed) &&
         w.write(root / "blkio" / rel, blkio, listed) &&
         w.write(root / "pids" / rel, pids, listed) &&
         w.write(root / "unified" / rel, unified, listed);
}

bool writeV2(Writer& w, const fs::path& root, const Node& n, bool listed, int process) {
  const Readings& r = n.r;
  const std::uint64_t user_us = r.cpu_user_ns / 1000, sys_us = r.cpu_sys_ns / 1000;
  const std::string cpu_max = (r.quota_us < 0 ? std::string("max") : std::to_string(r.quota_us)) +
                              " " + std::to_string(kCfsPeriodUs) + "\n";
  const std::string memory_max =
      (r.limit_bytes == 0 ? std::string("max") : std::to_string(r.limit_bytes)) + "\n";
  const File files[] = {
      {"cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n", false},
      {"cpu.stat",
       Text()
           .line("usage_usec", user_us + sys_us)
           .line("user_usec", user_us)
           .line("system_usec", sys_us)
           .line("nice_usec", 0)
           .line("nr_periods", r.nr_periods)
           .line("nr_throttled", r.nr_throttled)
           .line("throttled_usec", r.throttled_ns / 1000)
           .line("nr_bursts", 0)
           .line("burst_usec", 0)
           .str(),
       true},
      {"cpu.max", cpu_max, true},
      {"cpu.weight", std::to_string(sharesToWeight(r.shares)) + "\n", true},
      {"memory.current", std::to_string(r.usage()) + "\n", true},
      {"memory.max", memory_max, true},
      {"memory.stat", v2MemoryStat(r), true},
      {"memory.events",
       Text()
           .line("low", 0)
           .line("high", 0)
           .line("max", r.oom_kills * 7)
           .line("oom", r.oom_kills)
           .line("oom_kill", r.oom_kills)
           .line("oom_group_kill", 0)
           .str(),
       true},
      {"memory.peak", std::to_string(r.max_usage) + "\n", true},
      {"memory.swap.current", "0\n", true},
      {"memory.min", "0\n", true},
      {"memory.swap.max", "max\n", true},
      {"pids.current", std::string(n.container ? "3" : "9") + "\n", true},
      {"pids.max", "max\n", true},
      {"cgroup.procs", procsText(n, process), true},
      {"io.stat", ioStat(r), true},
      {"cpu.pressure", psiText(r.psi_us[0], r.psi_us[1]), true},
      {"memory.pressure", psiText(r.psi_us[2], r.psi_us[3]), true},
      {"io.pressure", psiText(r.psi_us[4], r.psi_us[5]), true},
  };
  if (!n.root) return w.write(root / "kubepods" / n.rel, files, listed);
  // The v2 root has none of the files the kernel marks CFTYPE_NOT_ON_ROOT.
  std::vector<File> at_root;
  for (const File& f : files) {
    const std::string_view name = f.name;
    if (name != "cpu.max" && name != "cpu.weight" && !name.starts_with("memory.current") &&
        name != "memory.max" && name != "memory.events" && name != "memory.peak" &&
        name != "memory.swap.current") {
      at_root.push_back(f);
    }
  }
  return w.write(root, at_root, listed);
}

// A pod's /proc/<pid>/net/dev as the kernel prints it: loopback (which the collector leaves out)
// and eth0.
std::string netDev(Rng& rng) {
  std::string t =
      "Inter-|   Receive                                                |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
      "drop fifo colls carrier compressed\n";
  for (const char* name : {"    lo:", "  eth0:"}) {
    t += name;
    for (int i = 0; i < 16; ++i) t += " " + std::to_string(i % 8 < 2 ? rng.next() % 1000000000 : 0);
    t += "\n";
  }
  return t;
}

std::string hex(Rng& rng, std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(digits);
  while (s.size() < digits) {
    std::uint64_t v = rng.next();
    for (int i = 0; i < 16 && s.size() < digits; ++i, v >>= 4) s.push_back(kHex[v & 15]);
  }
  return s;
}

// A random (version 4) UUID, as the API server assigns.
std::string podUid(Rng& rng) {
  std::string h = hex(rng, 32);
  h[12] = '4';
  h[16] = "89ab"[rng.next() % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

}  // namespace

const char* layoutName(TreeLayout layout) {
  return layout == TreeLayout::kHybrid ? "hybrid(v1+unified)" : "v2";
}

std::expected<SyntheticTree, std::string> buildSyntheticTree(const SyntheticTreeOptions& options) {
  SyntheticTree tree;
  tree.root = options.root;
  tree.proc_root = options.proc_root;
  tree.layout = options.layout;
  Writer w(tree);
  Rng rng(options.seed);
  const fs::path& root = options.root;
  const bool hybrid = options.layout == TreeLayout::kHybrid;
  const auto writeNode = [&](const Node& n, bool listed) {
    return hybrid ? writeHybrid(w, root, n, listed, options.process)
                  : writeV2(w, root, n, listed, options.process);
  };

  // Hierarchy markers the collector detects the layout by.
  if (!w.mkdirs(root)) return std::unexpected(w.error());
  if (hybrid) {
    for (const char* c : {"cpu", "cpuacct", "memory", "blkio", "pids", "unified"}) {
      if (!w.mkdirs(root / c)) return std::unexpected(w.error());
    }
    if (!w.writeFile(root / "unified" / "cgroup.controllers", "hugetlb\n")) {
      return std::unexpected(w.error());
    }
  } else if (!w.writeFile(root / "cgroup.controllers",
                          "cpuset cpu io memory hugetlb pids rdma misc\n")) {
    return std::unexpected(w.error());
  }
  if (!options.proc_root.empty() && options.process > 0) {
    // The benchmark's process, listed by the other containers, as the collector sees it.
    std::error_code ec;
    if (!w.mkdirs(options.proc_root)) return std::unexpected(w.error());
    fs::create_directory_symlink(fs::path("/proc") / std::to_string(options.process),
                                 options.proc_root / std::to_string(options.process), ec);
    if (ec)
      return std::unexpected("symlink to /proc/" + std::to_string(options.process) + ": " +
                             ec.message());
  }
  if (!options.proc_root.empty()) {
    // The node's own namespace, which the collector tells host-network pods by.
    if (!w.mkdirs(options.proc_root / "1" / "net") ||
        !w.writeFile(options.proc_root / "1" / "net" / "dev", netDev(rng))) {
      return std::unexpected(w.error());
    }
    // The root's network, read each cycle with the aggregates.
    if (options.aggregates) tree.read_files.push_back(options.proc_root / "1" / "net" / "dev");
  }
  const std::vector<fs::path> hierarchies =
      hybrid ? std::vector<fs::path>{root / "cpu",   root / "cpuacct", root / "memory",
                                     root / "blkio", root / "pids",    root / "unified"}
             : std::vector<fs::path>{root};
  for (const fs::path& h : hierarchies) {
    tree.list_dirs.push_back(h / "kubepods");
    tree.list_dirs.push_back(h / "kubepods" / "burstable");
    tree.list_dirs.push_back(h / "kubepods" / "besteffort");
  }

  // Pods: 20% Guaranteed, 50% Burstable, 30% BestEffort; 2, 3, 4 containers in turn (3 on average).
  Readings kubepods_total, burstable_total, besteffort_total;
  std::size_t made = 0;
  for (std::size_t pod = 0; made < options.containers; ++pod) {
    const std::size_t slot = pod % 10;
    const Qos qos = slot < 2 ? Qos::kGuaranteed : slot < 7 ? Qos::kBurstable : Qos::kBestEffort;
    const std::size_t want = std::min<std::size_t>(2 + pod % 3, options.containers - made);
    const std::string qdir = qosDir(qos);
    const std::string pod_rel = (qdir.empty() ? "" : qdir + "/") + "pod" + podUid(rng);

    Node pod_node{pod_rel, {}, {}};
    pod_node.r.quota_us = qos == Qos::kGuaranteed ? 0 : -1;
    std::vector<Node> containers;
    for (std::size_t c = 0; c < want; ++c) {
      Node cn{pod_rel + "/" + hex(rng, 64),
              containerReadings(rng, qos),
              {},
              /*root=*/false,
              /*container=*/true};
      cn.local = cn.r;
      pod_node.r.add(cn.r);
      pod_node.r.shares += cn.r.shares;
      if (qos == Qos::kGuaranteed) {
        pod_node.r.quota_us += cn.r.quota_us;
        pod_node.r.limit_bytes += cn.r.limit_bytes;
      }
      containers.push_back(std::move(cn));
    }
    pod_node.local.anon = 4096 * 10;  // the pod's own pages: next to nothing
    pod_node.local.kernel = 4096 * 20;
    pod_node.r.kernel += pod_node.local.kernel;
    pod_node.r.anon += pod_node.local.anon;

    if (!writeNode(pod_node, true)) return std::unexpected(w.error());
    for (const Node& cn : containers) {
      if (!writeNode(cn, true)) return std::unexpected(w.error());
    }
    if (!options.proc_root.empty()) {
      // The pod's network: a process of its first container, in the pod's own namespace.
      const std::string pid = std::to_string(100000 + pod);
      const fs::path dev_dir = options.proc_root / pid / "net";
      if (!w.mkdirs(dev_dir) || !w.writeFile(dev_dir / "dev", netDev(rng))) {
        return std::unexpected(w.error());
      }
      tree.read_files.push_back(dev_dir / "dev");
      ++tree.files_written;
      // The first container lists this pid instead of the benchmark's process: its descriptors
      // are that process's, so that the descriptor count reads the same as the others'.
      if (options.process > 0) {
        std::error_code ec;
        fs::create_directory_symlink(fs::path("/proc") / std::to_string(options.process) / "fd",
                                     options.proc_root / pid / "fd", ec);
        if (ec)
          return std::unexpected("symlink " + (options.proc_root / pid).string() + ": " +
                                 ec.message());
      }
      for (const fs::path& h : hierarchies) {
        if (!w.writeFile(h / "kubepods" / containers.front().rel / "cgroup.procs", pid + "\n")) {
          return std::unexpected(w.error());
        }
        ++tree.files_written;
      }
    }
    for (const fs::path& h : hierarchies) tree.list_dirs.push_back(h / "kubepods" / pod_rel);
    kubepods_total.add(pod_node.r);
    if (qos == Qos::kBurstable) burstable_total.add(pod_node.r);
    if (qos == Qos::kBestEffort) besteffort_total.add(pod_node.r);
    ++tree.pods;
    made += want;
  }
  tree.containers = made;

  // kubepods and the QoS directories carry the same files, as on a node; read only for the
  // aggregates.
  const Node upper[] = {{"", kubepods_total, kubepods_total},
                        {"burstable", burstable_total, {}},
                        {"besteffort", besteffort_total, {}}};
  for (const Node& n : upper) {
    if (!writeNode(n, options.aggregates)) return std::unexpected(w.error());
  }
  if (options.aggregates) {
    Node top{"", kubepods_total, kubepods_total, true};
    if (!writeNode(top, true)) return std::unexpected(w.error());
    // The root's memory: the node's /proc/meminfo, seen through the tree's own /proc when it has
    // one (the collector's proc root then).
    if (!options.proc_root.empty()) {
      std::error_code ec;
      fs::create_symlink("/proc/meminfo", options.proc_root / "meminfo", ec);
      if (ec)
        return std::unexpected("symlink " + (options.proc_root / "meminfo").string() + ": " +
                               ec.message());
    }
    tree.read_files.emplace_back("/proc/meminfo");
  }
  return tree;
}

std::expected<std::filesystem::path, std::string> makeTempDir(std::string_view prefix) {
  std::error_code ec;
  fs::path base =
      fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path(ec);
  if (ec) return std::unexpected("no temp directory: " + ec.message());
  std::string templ = (base / (std::string(prefix) + ".XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    return std::unexpected("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  return fs::path(templ);
}

}  // namespace nodewarden::bench
