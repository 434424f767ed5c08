// CgroupFiles: which interface files each hierarchy role reads, how each file's content lands in
// the sample's fields, and the per-cycle reads; see cgroup_files.h.
#include "collectors/cgroup/cgroup_files.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "collectors/cgroup/cgroup_parsers.h"
#include "collectors/cgroup/dir_lister.h"

namespace nodewarden::cgroup {
namespace {

constexpr const char* kComponent = "cgroup";
constexpr std::uint64_t kNsPerUs = 1000;
constexpr std::uint64_t kNsPerTick = 10000000;  // USER_HZ is 100 on every Linux ABI

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
    // cAdvisor's failcnt, reservation and swap limit (its container/common/helpers.go reads the
    // spec files; runc's fs/fs2 memory stats the failcnt). memsw.* exists only with swap
    // accounting, memory.swap.max only with swap: absent then, never 0.
    FileSpec{kRoleMemV1, FileKind::kMemFailcntV1, "memory.failcnt", nullptr, false},
    FileSpec{kRoleMemV1, FileKind::kMemSoftLimitV1, "memory.soft_limit_in_bytes", nullptr, false},
    FileSpec{kRoleMemV1, FileKind::kMemswLimitV1, "memory.memsw.limit_in_bytes", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kMemMinV2, "memory.min", nullptr, false},
    FileSpec{kRoleMemV2, FileKind::kSwapMaxV2, "memory.swap.max", nullptr, false},
    // The pids controller, v1 hierarchy or v2 tree: container_threads and container_threads_max.
    FileSpec{kRolePidsV1 | kRolePidsV2, FileKind::kPidsCurrent, "pids.current", nullptr, false},
    FileSpec{kRolePidsV1 | kRolePidsV2, FileKind::kPidsMax, "pids.max", nullptr, false},
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
    // container_memory_failures_total: scope="container" from the cgroup's own counters,
    // scope="hierarchy" from the total_* ones (cAdvisor's ContainerData / HierarchicalData).
    {"pgfault", CgroupField::kMemPgfault, 1},
    {"pgmajfault", CgroupField::kMemPgmajfault, 1},
    {"total_pgfault", CgroupField::kMemHierPgfault, 1},
    {"total_pgmajfault", CgroupField::kMemHierPgmajfault, 1},
};
constexpr KeyedField kMemStatV2Keys[] = {
    {"anon", CgroupField::kMemRssBytes, 1},
    {"file", CgroupField::kMemCacheBytes, 1},
    {"file_mapped", CgroupField::kMemMappedFileBytes, 1},
    {"inactive_file", CgroupField::kCount, 1},
    // v2 has one pair of fault counters (the subtree's); cAdvisor gives it as both scopes.
    {"pgfault", CgroupField::kMemPgfault, 1},
    {"pgfault", CgroupField::kMemHierPgfault, 1},
    {"pgmajfault", CgroupField::kMemPgmajfault, 1},
    {"pgmajfault", CgroupField::kMemHierPgmajfault, 1},
};
// memory.oom_control (v1; oom_kill since 4.13) and memory.events (v2) count kills alike.
constexpr KeyedField kOomKeys[] = {{"oom_kill", CgroupField::kOomKills, 1}};
// memory.events' "max" counts the times usage hit memory.max: runc's fs2 gives it as Failcnt.
constexpr KeyedField kMemEventsKeys[] = {{"oom_kill", CgroupField::kOomKills, 1},
                                         {"max", CgroupField::kMemFailcnt, 1}};

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
      return kOomKeys;
    case FileKind::kMemEvents:
      return kMemEventsKeys;
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
    {FileKind::kMemFailcntV1, CgroupField::kMemFailcnt, 1},
    {FileKind::kPidsCurrent, CgroupField::kThreads, 1},
};

const SingleField* singleField(FileKind kind) {
  for (const auto& sf : kSingleFields) {
    if (sf.kind == kind) return &sf;
  }
  return nullptr;
}

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

std::size_t descriptorLimit(std::size_t max_open_files) {
  if (max_open_files > 0) return max_open_files;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1U << 20;
  return lim.rlim_cur > 1024 ? lim.rlim_cur - 1024 : lim.rlim_cur / 2;
}

void CgroupFiles::open(const Hierarchy& h, int dir_fd, std::string_view dir, std::string_view rel,
                       DescriptorBudget& budget, ErrorReporter& errors) {
  close(budget);
  dir_.assign(dir);
  located_ = true;
  std::size_t wanted = 0;
  for (const auto& spec : kFileSpecs) wanted += (h.roles & spec.role) ? 1 : 0;
  transient_ = budget.open + wanted > budget.limit;
  if (transient_ && !budget.warned) {
    budget.warned = true;
    errors.report(kComponent, "fd_budget_exhausted",
                  "more cgroup files than the descriptor budget of " +
                      std::to_string(budget.limit) +
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
        errors.report(kComponent, "too_many_open_files", h.path + "/" + std::string(rel));
      } else if (spec.required) {
        errors.report(
            kComponent, "missing_file",
            h.path + "/" + std::string(rel) + "/" + spec.name + ": " + errnoText(r.error()));
      }
      continue;
    }
    if (transient_) {
      f.close();
    } else {
      ++budget.open;
    }
    files_.push_back({kind, name, std::move(f)});
  }
}

void CgroupFiles::close(DescriptorBudget& budget) {
  for (auto& of : files_) {
    if (of.file.isOpen()) --budget.open;
  }
  files_.clear();
}

bool CgroupFiles::read(const Hierarchy& h, std::span<char> buf, CgroupSample& s,
                       ReadScratch& scratch, ErrorReporter& errors) const {
  // Transient files are opened relative to their directory, opened once per cycle, rather than
  // each walking the whole path from the hierarchy's root.
  TransientDir dir;
  int dir_err = 0;
  if (transient_ && !files_.empty()) {
    dir.fd = ::openat(h.fd, dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir.fd < 0) dir_err = errno;
  }
  for (const auto& of : files_) {
    std::expected<std::string_view, int> content = std::unexpected(dir_err);
    if (!transient_) {
      content = of.file.read(buf);
    } else if (dir.fd >= 0) {
      content = readFileAt(dir.fd, of.name, buf);
    }
    if (!content) {
      const int err = content.error();
      if (err == ENODEV || err == ENOENT) {
        // The cgroup was removed between listing and reading.
        errors.report(kComponent, "vanished_mid_read", h.path + "/" + dir_);
        return false;
      }
      errors.report(kComponent, err == EFBIG ? "file_too_large" : "read_error",
                    h.path + "/" + dir_ + "/" + of.name + ": " + errnoText(err));
      continue;
    }
    parseInto(of, *content, s, scratch, h, errors);
  }
  return true;
}

void CgroupFiles::parseFailed(const Hierarchy& h, const char* file, const char* reason,
                              ErrorReporter& errors) const {
  errors.report(kComponent, "parse_error", h.path + "/" + dir_ + "/" + file + ": " + reason);
}

// Applies one file's content to the sample: flat-keyed and single-value files through their
// tables, the few with a format of their own case by case. A value that does not parse leaves
// its field absent and is counted.
void CgroupFiles::parseInto(const OpenFile& of, std::string_view c, CgroupSample& s,
                            ReadScratch& sc, const Hierarchy& h, ErrorReporter& errors) const {
  using F = CgroupField;
  if (const auto keys = keyedFields(of.kind); !keys.empty()) {
    // memory.stat has some 50 keys and we want 4 or 5: stop once every wanted key was seen
    // (a key the kernel does not print, such as total_swap without swap accounting, just
    // means reading to the end).
    // A key may fill two fields (v2's pgfault is both scopes): every row of it is counted.
    std::size_t found = 0;
    const int bad = parseFlatKeyed(c, [&](std::string_view k, std::uint64_t v) {
      for (const auto& kf : keys) {
        if (kf.key != k) continue;
        if (kf.field == F::kCount) {  // inactive_file: only an input to the working set
          sc.inactive_file = v;
          sc.has_inactive_file = true;
        } else {
          s.set(kf.field, v * kf.scale);
        }
        ++found;
      }
      return found < keys.size();
    });
    if (bad > 0) parseFailed(h, of.name, parseErrorName(ParseError::kMalformed), errors);
    return;
  }
  if (const auto* sf = singleField(of.kind)) {
    auto r = parseSingleValue(c);
    if (r) {
      s.set(sf->field, *r * sf->scale);
    } else {
      parseFailed(h, of.name, parseErrorName(r.error()), errors);
    }
    return;
  }
  const auto fail = [&](ParseError e) { parseFailed(h, of.name, parseErrorName(e), errors); };
  switch (of.kind) {
    case FileKind::kCfsQuota: {
      auto r = parseV1CpuQuota(c);
      if (!r) return fail(r.error());
      if (r->has_value()) s.set(F::kCpuQuotaUs, **r);
      return;
    }
    case FileKind::kMemLimitV1:
    case FileKind::kMemMax: {
      auto r = of.kind == FileKind::kMemMax ? parseV2MemoryMax(c) : parseV1MemoryLimit(c);
      if (!r) return fail(r.error());
      s.set(F::kMemLimitBytes, *r);
      return;
    }
    case FileKind::kMemSoftLimitV1:
    case FileKind::kMemswLimitV1: {
      // The same "unlimited" as memory.limit_in_bytes, reported as 0 (cAdvisor's
      // specMemoryValue).
      auto r = parseV1MemoryLimit(c);
      if (!r) return fail(r.error());
      s.set(of.kind == FileKind::kMemSoftLimitV1 ? F::kMemReservationBytes : F::kMemSwapLimitBytes,
            *r);
      return;
    }
    case FileKind::kMemMinV2:
    case FileKind::kSwapMaxV2:
    case FileKind::kPidsMax: {
      // "max" or a number; "max" is 0, as cAdvisor reports no limit (and container_threads_max
      // says "infinity if value is zero").
      auto r = parseV2MemoryMax(c);
      if (!r) return fail(r.error());
      s.set(of.kind == FileKind::kMemMinV2    ? F::kMemReservationBytes
            : of.kind == FileKind::kSwapMaxV2 ? F::kMemSwapLimitBytes
                                              : F::kThreadsMax,
            *r);
      return;
    }
    case FileKind::kCpuMax: {
      auto r = parseCpuMax(c);
      if (!r) return fail(r.error());
      s.set(F::kCpuPeriodUs, r->period_us);
      if (r->quota_us) s.set(F::kCpuQuotaUs, *r->quota_us);
      return;
    }
    case FileKind::kCpuWeight: {
      auto r = parseSingleValue(c);
      if (!r) return fail(r.error());
      s.set(F::kCpuShares, cpuWeightToShares(*r));
      return;
    }
    case FileKind::kBlkioBytes:
    case FileKind::kBlkioOps:
    case FileKind::kIoStat: {
      // io_service_bytes comes before io_serviced in kFileSpecs: bytes start the device list,
      // ops add to it.
      auto r = of.kind == FileKind::kIoStat ? parseIoStat(c, s.io)
               : of.kind == FileKind::kBlkioBytes
                   ? parseBlkioThrottle(c, true, s.io, 0)
                   : parseBlkioThrottle(c, false, s.io, s.io_devices);
      if (!r) return fail(r.error());
      s.io_devices = *r;
      s.io_present = true;
      return;
    }
    case FileKind::kPsiCpu:
    case FileKind::kPsiMem:
    case FileKind::kPsiIo: {
      auto r = parsePressure(c);
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

}  // namespace nodewarden::cgroup
