// ReadFloor: the least work any cgroup collector must do per cycle — read every file once — so
// that the collector's cost can be stated as a multiple of it.
//
// What a reader gets wrong: the process may not hold one descriptor per file (RLIMIT_NOFILE is
// often 20k in a container, and a hybrid node with 5000 containers has >100k files). Files beyond
// the descriptor budget are opened in chunks each cycle and only the pread()s are timed, so the
// pread floor stays "pread only" whatever the budget; openReadClose() is the honest floor of a
// collector that cannot keep descriptors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace nodewarden::bench {

struct CycleCost {
  std::int64_t cpu_ns = 0;   // CLOCK_THREAD_CPUTIME_ID
  std::int64_t wall_ns = 0;  // CLOCK_MONOTONIC
  std::int64_t user_us = 0;  // getrusage(RUSAGE_SELF)
  std::int64_t sys_us = 0;
  std::uint64_t bytes = 0;
  std::size_t errors = 0;

  CycleCost& operator+=(const CycleCost& o);
};

// Brackets a piece of work with the three clocks.
class CostMeter {
 public:
  CostMeter();
  [[nodiscard]] CycleCost stop() const;

 private:
  std::int64_t cpu0_ = 0;
  std::int64_t wall0_ = 0;
  std::int64_t user0_ = 0;
  std::int64_t sys0_ = 0;
};

class ReadFloor {
 public:
  // Keeps up to fd_budget of files open for the whole run; the rest are opened per cycle.
  ReadFloor(std::span<const std::filesystem::path> files,
            std::span<const std::filesystem::path> list_dirs, std::size_t fd_budget);
  ~ReadFloor();
  ReadFloor(const ReadFloor&) = delete;
  ReadFloor& operator=(const ReadFloor&) = delete;

  // pread() of every file into a stack buffer; only the preads are timed.
  CycleCost preadCycle();
  // open() + read() + close() of every file, all timed.
  CycleCost openReadCloseCycle();
  // open(O_DIRECTORY) + getdents64 + close of every directory a collector lists, all timed.
  CycleCost listCycle();

  [[nodiscard]] std::size_t files() const { return paths_.size(); }
  [[nodiscard]] std::size_t keptOpen() const { return kept_.size(); }

 private:
  std::vector<std::string> paths_;
  std::vector<std::string> dirs_;
  std::vector<int> kept_;   // fds of paths_[0, kept_.size())
  std::vector<int> chunk_;  // reused for the per-cycle remainder
  std::size_t chunk_size_ = 0;
};

// The three floor cycles of one round, measured together.
struct FloorRound {
  CycleCost pread;
  CycleCost open_read_close;
  CycleCost list;
};

// Runs a ReadFloor in a forked child with its own descriptor table, so that the floor keeps its
// files open even when the collector under test already uses most of RLIMIT_NOFILE. Fork it
// before anything starts threads. Rounds are run one at a time on request, which keeps collector
// and floor interleaved.
class FloorProcess {
 public:
  FloorProcess(std::span<const std::filesystem::path> files,
               std::span<const std::filesystem::path> list_dirs);
  ~FloorProcess();
  FloorProcess(const FloorProcess&) = delete;
  FloorProcess& operator=(const FloorProcess&) = delete;

  [[nodiscard]] bool ok() const { return pid_ > 0; }
  [[nodiscard]] std::size_t keptOpen() const { return kept_; }
  [[nodiscard]] std::size_t files() const { return files_; }
  bool round(FloorRound& out);

 private:
  int pid_ = -1;
  int cmd_fd_ = -1;
  int res_fd_ = -1;
  std::size_t kept_ = 0;
  std::size_t files_ = 0;
};

}  // namespace nodewarden::bench
