#include "bench/read_floor.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>

namespace nodewarden::bench {
namespace {

std::int64_t clockNs(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t toUs(const timeval& tv) {
  return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000 + tv.tv_usec;
}

bool readExact(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool writeExact(int fd, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t r = ::write(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

std::size_t openDescriptors() {
  std::size_t n = 0;
  for (int fd = 0; fd < 1024; ++fd) n += ::fcntl(fd, F_GETFD) >= 0 ? 1 : 0;
  return n;
}

// Larger than any generated file (v2 memory.stat is ~1.3 KiB); one read each, as a collector does.
constexpr std::size_t kReadBuffer = 8192;

}  // namespace

CycleCost& CycleCost::operator+=(const CycleCost& o) {
  cpu_ns += o.cpu_ns;
  wall_ns += o.wall_ns;
  user_us += o.user_us;
  sys_us += o.sys_us;
  bytes += o.bytes;
  errors += o.errors;
  return *this;
}

CostMeter::CostMeter() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  user0_ = toUs(ru.ru_utime);
  sys0_ = toUs(ru.ru_stime);
  wall0_ = clockNs(CLOCK_MONOTONIC);
  cpu0_ = clockNs(CLOCK_THREAD_CPUTIME_ID);
}

CycleCost CostMeter::stop() const {
  CycleCost c;
  c.cpu_ns = clockNs(CLOCK_THREAD_CPUTIME_ID) - cpu0_;
  c.wall_ns = clockNs(CLOCK_MONOTONIC) - wall0_;
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  c.user_us = toUs(ru.ru_utime) - user0_;
  c.sys_us = toUs(ru.ru_stime) - sys0_;
  return c;
}

ReadFloor::ReadFloor(std::span<const std::filesystem::path> files,
                     std::span<const std::filesystem::path> list_dirs, std::size_t fd_budget) {
  paths_.reserve(files.size());
  for (const auto& f : files) paths_.push_back(f.string());
  dirs_.reserve(list_dirs.size());
  for (const auto& d : list_dirs) dirs_.push_back(d.string());
  // Keep most of the budget open; a quarter of it (at least 64) is the per-cycle chunk.
  const std::size_t chunk = std::max<std::size_t>(64, fd_budget / 4);
  const std::size_t keep =
      paths_.size() <= fd_budget ? paths_.size() : (fd_budget > chunk ? fd_budget - chunk : 0);
  chunk_size_ = chunk;
  kept_.reserve(keep);
  for (std::size_t i = 0; i < keep; ++i) {
    kept_.push_back(::open(paths_[i].c_str(), O_RDONLY | O_CLOEXEC));
  }
  chunk_.reserve(chunk_size_);
}

ReadFloor::~ReadFloor() {
  for (int fd : kept_) {
    if (fd >= 0) ::close(fd);
  }
}

CycleCost ReadFloor::preadCycle() {
  std::array<char, kReadBuffer> buf;
  CycleCost total;
  const auto readAll = [&](std::span<const int> fds) {
    CycleCost part;
    const CostMeter meter;
    for (int fd : fds) {
      const ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
      if (n < 0) {
        ++part.errors;
      } else {
        part.bytes += static_cast<std::uint64_t>(n);
      }
    }
    const CycleCost spent = meter.stop();
    part.cpu_ns = spent.cpu_ns;
    part.wall_ns = spent.wall_ns;
    part.user_us = spent.user_us;
    part.sys_us = spent.sys_us;
    total += part;
  };
  readAll(kept_);
  for (std::size_t i = kept_.size(); i < paths_.size(); i += chunk_size_) {
    const std::size_t end = std::min(paths_.size(), i + chunk_size_);
    chunk_.clear();
    for (std::size_t j = i; j < end; ++j) {
      chunk_.push_back(::open(paths_[j].c_str(), O_RDONLY | O_CLOEXEC));
    }
    readAll(chunk_);
    for (int fd : chunk_) {
      if (fd >= 0) ::close(fd);
    }
  }
  return total;
}

CycleCost ReadFloor::openReadCloseCycle() {
  std::array<char, kReadBuffer> buf;
  std::uint64_t bytes = 0;
  std::size_t errors = 0;
  const CostMeter meter;
  for (const std::string& p : paths_) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    const ssize_t n = fd < 0 ? -1 : ::read(fd, buf.data(), buf.size());
    if (fd >= 0) ::close(fd);
    if (n < 0) {
      ++errors;
    } else {
      bytes += static_cast<std::uint64_t>(n);
    }
  }
  CycleCost c = meter.stop();
  c.bytes = bytes;
  c.errors = errors;
  return c;
}

CycleCost ReadFloor::listCycle() {
  alignas(8) std::array<char, 32 * 1024> buf;
  std::uint64_t bytes = 0;
  std::size_t errors = 0;
  const CostMeter meter;
  for (const std::string& d : dirs_) {
    const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      ++errors;
      continue;
    }
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buf.data(), buf.size());
      if (n <= 0) {
        if (n < 0) ++errors;
        break;
      }
      bytes += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
  }
  CycleCost c = meter.stop();
  c.bytes = bytes;
  c.errors = errors;
  return c;
}

FloorProcess::FloorProcess(std::span<const std::filesystem::path> files,
                           std::span<const std::filesystem::path> list_dirs)
    : files_(files.size()) {
  int cmd[2], res[2];
  if (::pipe2(cmd, O_CLOEXEC) != 0) return;
  if (::pipe2(res, O_CLOEXEC) != 0) {
    ::close(cmd[0]);
    ::close(cmd[1]);
    return;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(cmd[1]);
    ::close(res[0]);
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    const std::size_t used = openDescriptors() + 32;
    const std::size_t budget = rl.rlim_cur > used ? rl.rlim_cur - used : 0;
    ReadFloor floor(files, list_dirs, budget);
    const std::size_t kept = floor.keptOpen();
    if (!writeExact(res[1], &kept, sizeof kept)) ::_exit(1);
    char c = 0;
    while (readExact(cmd[0], &c, 1) && c == 'r') {
      FloorRound r;
      r.pread = floor.preadCycle();
      r.open_read_close = floor.openReadCloseCycle();
      r.list = floor.listCycle();
      if (!writeExact(res[1], &r, sizeof r)) break;
    }
    ::_exit(0);
  }
  ::close(cmd[0]);
  ::close(res[1]);
  if (pid < 0) {
    ::close(cmd[1]);
    ::close(res[0]);
    return;
  }
  pid_ = pid;
  cmd_fd_ = cmd[1];
  res_fd_ = res[0];
  if (!readExact(res_fd_, &kept_, sizeof kept_)) pid_ = -pid_;
}

FloorProcess::~FloorProcess() {
  if (cmd_fd_ >= 0) {
    const char q = 'q';
    writeExact(cmd_fd_, &q, 1);
    ::close(cmd_fd_);
  }
  if (res_fd_ >= 0) ::close(res_fd_);
  const pid_t pid = pid_ > 0 ? pid_ : -pid_;
  if (pid > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
}

bool FloorProcess::round(FloorRound& out) {
  if (pid_ <= 0) return false;
  const char r = 'r';
  return writeExact(cmd_fd_, &r, 1) && readExact(res_fd_, &out, sizeof out);
}

}  // namespace nodewarden::bench
