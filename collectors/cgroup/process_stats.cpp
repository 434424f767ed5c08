// ProcessStatsReader: the pid lists of a cgroup every cycle, its processes' descriptor
// directories on a slower cadence and within a per-cycle budget; see process_stats.h.
#include "collectors/cgroup/process_stats.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "collectors/cgroup/dir_lister.h"
#include "collectors/common/pread_file.h"

namespace nodewarden::cgroup {
namespace {

constexpr const char* kComponent = "cgroup";
constexpr std::string_view kSocketPrefix = "socket:[";

std::string errnoText(int err) { return std::strerror(err); }

bool denied(int err) { return err == EACCES || err == EPERM; }

}  // namespace

std::size_t countPids(std::string_view content, std::size_t& bad) {
  std::size_t n = 0;
  bad = forEachPid(content, [&](pid_t) { ++n; });
  return n;
}

ProcessStatsReader::ProcessStatsReader(std::filesystem::path proc_root, Limits limits,
                                       ErrorReporter& errors)
    : proc_root_(std::move(proc_root)), limits_(limits), errors_(errors) {}

ProcessStatsReader::~ProcessStatsReader() {
  if (proc_fd_ >= 0) ::close(proc_fd_);
}

bool ProcessStatsReader::available() {
  if (proc_fd_ == -1) {
    proc_fd_ = ::open(proc_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc_fd_ < 0) {
      proc_fd_ = -2;
      errors_.report(kComponent, "fd_scan_no_proc", proc_root_.string() + ": " + errnoText(errno));
    }
  }
  return proc_fd_ >= 0;
}

void ProcessStatsReader::beginCycle(std::chrono::steady_clock::time_point now) {
  now_ = now;
  scanned_ = 0;
}

void ProcessCounts::close(DescriptorBudget& budget) {
  for (PreadFile* f : {&procs, &threads}) {
    if (f->isOpen()) {
      f->close();
      --budget.open;
    }
  }
  opened = false;
}

void ProcessStatsReader::read(const Hierarchy& h, const std::string& dir, const char* thread_list,
                              ProcessCounts& pc, CgroupSample& s, std::span<char> buf,
                              DescriptorBudget& budget) {
  // Built only for an error: the cycle allocates nothing.
  const auto where = [&](const char* file) { return h.path + "/" + dir + "/" + file; };
  TransientDir d;
  const bool by_path = !pc.procs.isOpen() || (thread_list != nullptr && !pc.threads.isOpen());
  if (by_path) {
    d.fd = ::openat(h.fd, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.fd < 0) return;  // gone: the next listing notices
    if (!pc.opened) {
      // Kept open like the interface files, within the same descriptor budget.
      pc.opened = true;
      const std::size_t wanted = thread_list != nullptr ? 2 : 1;
      if (budget.open + wanted <= budget.limit && pc.procs.openAt(d.fd, "cgroup.procs")) {
        ++budget.open;
        if (thread_list != nullptr && pc.threads.openAt(d.fd, thread_list)) ++budget.open;
      }
    }
  }
  const auto list = [&](const char* file) -> std::optional<std::string_view> {
    const PreadFile& kept = file == thread_list ? pc.threads : pc.procs;
    const auto content = kept.isOpen() ? kept.read(buf) : readFileAt(d.fd, file, buf);
    if (content) return *content;
    if (content.error() != ENOENT && content.error() != ENODEV) {
      errors_.report(kComponent, content.error() == EFBIG ? "file_too_large" : "read_error",
                     where(file) + ": " + errnoText(content.error()));
    }
    return std::nullopt;
  };
  if (thread_list != nullptr) {
    if (const auto threads = list(thread_list)) {
      std::size_t bad = 0;
      const std::size_t n = countPids(*threads, bad);
      if (bad == 0) {
        s.set(CgroupField::kThreads, n);
      } else {
        errors_.report(kComponent, "parse_error", where(thread_list) + ": not a pid");
      }
    }
  }
  const auto procs = list("cgroup.procs");
  if (!procs) return;
  std::size_t bad = 0;
  const std::size_t n = countPids(*procs, bad);
  if (bad != 0) {
    // A list the kernel wrote is never garbled: without it no count is right.
    errors_.report(kComponent, "parse_error", where("cgroup.procs") + ": not a pid");
    return;
  }
  s.set(CgroupField::kProcesses, n);
  if (!pc.counted_once || now_ - pc.counted_at >= limits_.fd_scan_interval) {
    if (n > limits_.max_fd_scan_processes) {
      errors_.report(kComponent, "fd_scan_too_many_processes", h.path + "/" + dir);
      pc.has_fds = pc.has_sockets = false;
      pc.counted_once = true;
      pc.counted_at = now_;
    } else if (scanned_ + n <= limits_.max_fd_scan_processes && available()) {
      scanned_ += n;
      countDue(*procs, pc, h, dir);
    }
    // else: over this cycle's budget; counted in a later cycle, the last count stands.
  }
  if (pc.has_fds) s.set(CgroupField::kFileDescriptors, pc.fds);
  if (pc.has_sockets) s.set(CgroupField::kSockets, pc.sockets);
}

bool ProcessStatsReader::countDue(std::string_view procs, ProcessCounts& pc, const Hierarchy& h,
                                  const std::string& dir) {
  std::uint64_t fds = 0;
  std::uint64_t sockets = 0;
  bool all_listed = true;
  bool all_links = true;
  int list_err = 0;
  int link_err = 0;
  forEachPid(procs, [&](pid_t pid) {
    const FdCount c = countFds(pid);
    if (!c.listed) {
      // ESRCH/ENOENT: it exited since cgroup.procs was read, and has no descriptors left.
      if (c.error == ENOENT || c.error == ESRCH) return;
      all_listed = false;
      list_err = c.error;
      return;
    }
    fds += c.fds;
    sockets += c.sockets;
    if (!c.links_read) {
      all_links = false;
      link_err = c.error;
    }
  });
  if (!pc.counted_once && limits_.fd_scan_interval.count() > 0) {
    // Cgroups first counted together (all of them at start) are spread over the interval from
    // their second count on, by the golden ratio, rather than all due again in one cycle.
    const double phase = static_cast<double>(spread_++) * 0.6180339887498949;
    const auto offset = static_cast<std::chrono::milliseconds::rep>(
        (phase - static_cast<double>(static_cast<std::uint64_t>(phase))) *
        static_cast<double>(limits_.fd_scan_interval.count()));
    pc.counted_at = now_ - std::chrono::milliseconds(offset);
  } else {
    pc.counted_at = now_;
  }
  pc.counted_once = true;
  pc.has_fds = all_listed;
  pc.has_sockets = all_listed && all_links;
  pc.fds = fds;
  pc.sockets = sockets;
  if (!all_listed) {
    errors_.report(kComponent, denied(list_err) ? "fd_scan_denied" : "fd_scan_error",
                   h.path + "/" + dir + ": /proc/<pid>/fd: " + errnoText(list_err));
  } else if (!all_links) {
    errors_.report(kComponent, denied(link_err) ? "socket_scan_denied" : "socket_scan_error",
                   h.path + "/" + dir + ": readlink /proc/<pid>/fd/*: " + errnoText(link_err));
  }
  return all_listed;
}

FdCount ProcessStatsReader::countFds(pid_t pid) {
  FdCount out;
  if (!available()) {
    out.error = ENOENT;
    return out;
  }
  std::array<char, 24> name{};
  std::snprintf(name.data(), name.size(), "%d/fd", static_cast<int>(pid));
  TransientDir d;
  d.fd = ::openat(proc_fd_, name.data(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.fd < 0) {
    out.error = errno;
    return out;
  }
  bool links = true;
  std::array<char, 16> link{};
  for (;;) {
    const long n = ::syscall(SYS_getdents64, d.fd, dents_.data(), dents_.size());
    if (n < 0) {
      out.error = errno;
      return out;  // listing failed part way (the process exited): no count
    }
    if (n == 0) break;
    long off = 0;
    while (off < n) {
      // linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
      const char* rec = dents_.data() + off;
      unsigned short reclen = 0;
      __builtin_memcpy(&reclen, rec + 16, sizeof reclen);
      const char* entry = rec + 19;
      off += reclen;
      if (entry[0] == '.') continue;  // "." and ".."; descriptors are digits
      ++out.fds;
      if (!links) continue;
      // Only the prefix matters: a link longer than the buffer is truncated, not an error.
      const ssize_t len = ::readlinkat(d.fd, entry, link.data(), link.size());
      if (len < 0) {
        if (errno == ENOENT) continue;  // closed since the listing
        links = false;
        out.error = errno;
        continue;
      }
      if (std::string_view(link.data(), static_cast<std::size_t>(len)).starts_with(kSocketPrefix)) {
        ++out.sockets;
      }
    }
  }
  out.listed = true;
  out.links_read = links;
  return out;
}

}  // namespace nodewarden::cgroup
