// CgroupFiles: the interface files of one cgroup in one hierarchy, opened once and read every
// cycle into the cgroup's CgroupSample (cpu.stat, memory.stat, io.stat, *.pressure, ... per the
// hierarchy's roles), with the descriptor budget they share with the rest of the collector.
//
// What a reader gets wrong: a file that cannot be read is not always an error. ENODEV or ENOENT
// means the cgroup was removed since it was listed: read() says so and the sample is dropped from
// the snapshot (half a sample is worse than none). Past the descriptor budget the files are
// "transient": opened, read and closed by path every cycle (three syscalls instead of one), never
// left unread. And one read of a cgroup spans hierarchies: the working set is memory usage less
// inactive_file, which may come from another file, so a ReadScratch lives across all of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/cgroup/cgroup_hierarchies.h"
#include "collectors/common/pread_file.h"
#include "pipeline/self_metrics.h"
#include "pipeline/snapshot.h"

namespace nodewarden::cgroup {

// The descriptors the collector keeps open: every cgroup's files and the pods' directories.
struct DescriptorBudget {
  std::size_t open = 0;
  std::size_t limit = 0;
  bool warned = false;  // fd_budget_exhausted is reported once
};

// max_open_files, or when 0 RLIMIT_NOFILE's soft limit less 1024 (room for HTTP connections, logs
// and the rest of the agent).
[[nodiscard]] std::size_t descriptorLimit(std::size_t max_open_files);

// Values one file contributes to another's derived field within one read of a cgroup.
struct ReadScratch {
  std::uint64_t inactive_file = 0;
  bool has_inactive_file = false;
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
  kMemFailcntV1,
  kMemSoftLimitV1,
  kMemswLimitV1,
  kMemMinV2,
  kSwapMaxV2,
  kPidsCurrent,
  kPidsMax,
};

class CgroupFiles {
 public:
  CgroupFiles() = default;
  CgroupFiles(CgroupFiles&&) noexcept = default;
  CgroupFiles& operator=(CgroupFiles&&) noexcept = default;

  // Opens the files of h's roles in dir_fd, the cgroup's directory at `dir` below h's root, in
  // place of what was open; the cgroup is located from then on. rel names the cgroup in errors.
  void open(const Hierarchy& h, int dir_fd, std::string_view dir, std::string_view rel,
            DescriptorBudget& budget, ErrorReporter& errors);
  // Closes the files and gives their descriptors back to the budget.
  void close(DescriptorBudget& budget);

  // Reads every file into s (bad values are counted and left absent). False when the cgroup was
  // removed: s is then incomplete and the rest of its files were not read.
  [[nodiscard]] bool read(const Hierarchy& h, std::span<char> buf, CgroupSample& s,
                          ReadScratch& scratch, ErrorReporter& errors) const;

  [[nodiscard]] bool located() const { return located_; }
  [[nodiscard]] bool transient() const { return transient_; }
  [[nodiscard]] std::size_t fileCount() const { return files_.size(); }
  // The cgroup's directory relative to its hierarchy's root.
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  struct OpenFile {
    FileKind kind;
    const char* name;  // the file actually found (a spec's name or its fallback)
    PreadFile file;    // closed when the cgroup's files are transient
  };
  void parseInto(const OpenFile& of, std::string_view c, CgroupSample& s, ReadScratch& sc,
                 const Hierarchy& h, ErrorReporter& errors) const;
  void parseFailed(const Hierarchy& h, const char* file, const char* reason,
                   ErrorReporter& errors) const;

  bool located_ = false;
  bool transient_ = false;
  std::string dir_;
  std::vector<OpenFile> files_;
};

}  // namespace nodewarden::cgroup
