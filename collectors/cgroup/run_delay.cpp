// RunDelayReader: the thread list of a container's cgroup and one small read per thread per
// cycle; see run_delay.h.
#include "collectors/cgroup/run_delay.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "collectors/cgroup/cgroup_parsers.h"
#include "collectors/common/line_reader.h"
#include "collectors/common/pread_file.h"

namespace nodewarden::cgroup {
namespace {

constexpr const char* kComponent = "cgroup";

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

RunDelayReader::RunDelayReader(std::filesystem::path proc_root, std::size_t max_threads,
                               ErrorReporter& errors)
    : proc_root_(std::move(proc_root)), max_threads_(max_threads), errors_(errors) {}

RunDelayReader::~RunDelayReader() {
  if (proc_fd_ >= 0) ::close(proc_fd_);
}

bool RunDelayReader::available() {
  if (proc_fd_ == -1) {
    proc_fd_ = ::open(proc_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc_fd_ < 0) {
      proc_fd_ = -2;
      errors_.report(kComponent, "run_delay_no_proc",
                     proc_root_.string() + ": " + errnoText(errno));
    }
  }
  return proc_fd_ >= 0;
}

std::optional<std::uint64_t> RunDelayReader::read(const Hierarchy& h, const std::string& dir,
                                                  const char* list, RunDelay& rd,
                                                  std::span<char> buf) {
  // Built only for an error: the cycle allocates nothing.
  const auto where = [&] { return h.path + "/" + dir; };
  if (!available()) return std::nullopt;
  const int dir_fd = ::openat(h.fd, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return std::nullopt;  // gone: the next listing notices
  const auto tids = readFileAt(dir_fd, list, buf);
  ::close(dir_fd);
  if (!tids) {
    if (tids.error() == ENOENT || tids.error() == ENODEV) return std::nullopt;  // just went away
    errors_.report(kComponent, tids.error() == EFBIG ? "run_delay_too_many_threads" : "read_error",
                   where() + "/" + list + ": " + errnoText(tids.error()));
    return std::nullopt;
  }
  ++rd.generation;
  std::size_t threads = 0;
  std::array<char, 128> stat_buf{};
  std::array<char, 32> name{};
  LineReader lines(*tids);
  std::string_view line;
  while (lines.next(line)) {
    pid_t tid = 0;
    if (std::from_chars(line.data(), line.data() + line.size(), tid).ec != std::errc() ||
        tid <= 0) {
      continue;
    }
    if (++threads > max_threads_) {
      errors_.report(kComponent, "run_delay_too_many_threads", where());
      return std::nullopt;
    }
    std::snprintf(name.data(), name.size(), "%d/schedstat", static_cast<int>(tid));
    const auto stat = readFileAt(proc_fd_, name.data(), stat_buf);
    if (!stat) continue;  // exited since the list was read, or no schedstats in this kernel
    const auto delay = parseSchedstatRunDelay(*stat);
    if (!delay) {
      errors_.report(kComponent, "parse_error",
                     where() + "/schedstat: " + parseErrorName(delay.error()));
      continue;
    }
    auto [it, added] = rd.threads.try_emplace(tid);
    if (!added && rd.started && *delay >= it->second.delay_ns) {
      rd.total_ns += *delay - it->second.delay_ns;
    }
    it->second.delay_ns = *delay;
    it->second.generation = rd.generation;
  }
  std::erase_if(rd.threads, [&](const auto& kv) { return kv.second.generation != rd.generation; });
  rd.started = true;
  return rd.total_ns;
}

}  // namespace nodewarden::cgroup
