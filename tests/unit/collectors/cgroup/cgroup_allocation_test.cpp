// Proves that a steady-state cgroup cycle allocates nothing with every series of the collector
// read, the process series included (cgroup.procs, the thread list, /proc/<pid>/fd and its links
// counted every cycle). Counts through a replaced global operator new.
//
// What a reader gets wrong: the replacement is global to the unit_cgroup program, but it only
// counts while an AllocationCounter is alive on the calling thread, so other tests are unaffected.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <string>

#include "collectors/cgroup/cgroup_collector.h"

namespace {

std::atomic<std::size_t> g_allocations{0};
thread_local bool t_counting = false;

class AllocationCounter {
 public:
  AllocationCounter() {
    g_allocations.store(0);
    t_counting = true;
  }
  ~AllocationCounter() { t_counting = false; }
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  [[nodiscard]] std::size_t count() const { return g_allocations.load(); }
};

}  // namespace

// noinline: once inlined, GCC pairs the caller's new with our free() and warns
// (-Wmismatched-new-delete) although both sides are replaced consistently.
[[gnu::noinline]] void* operator new(std::size_t size) {
  if (t_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;

TEST(CgroupAllocationTest, SteadyStateCycleWithProcessSeriesAllocatesNothing) {
  static std::mt19937_64 rng{std::random_device{}()};
  const fs::path root = fs::temp_directory_path() / ("nodewarden-alloc-" + std::to_string(rng()));
  fs::copy(fs::path(NODEWARDEN_FIXTURES) / "cgroup" / "v2-cgroupfs-docker", root,
           fs::copy_options::recursive);
  const fs::path c = root / "sys/fs/cgroup/kubepods/burstable" /
                     "pod11111111-2222-3333-4444-555555555551" / (std::string(63, 'a') + "1");
  std::ofstream(c / "cgroup.procs", std::ios::trunc) << "100\n";
  std::ofstream(c / "cgroup.threads", std::ios::trunc) << "100\n101\n";
  fs::create_directories(root / "proc/100/fd");
  fs::create_symlink("socket:[7]", root / "proc/100/fd/0");
  fs::create_symlink("/dev/null", root / "proc/100/fd/1");

  CgroupCollectorOptions o;
  o.cgroup_root = root / "sys/fs/cgroup";
  o.log_root = root / "var/log/pods";
  o.proc_root = root / "proc";
  o.fd_scan_interval = std::chrono::milliseconds(0);  // descriptors counted every cycle
  SelfMetrics metrics;
  ErrorReporter errors(metrics.registry());
  std::size_t allocations = 0;
  bool counted = false;
  {
    CgroupCollector collector(o, errors);
    Snapshot snapshot;
    for (int i = 0; i < 3; ++i) {  // warm-up: discovery, names, buffers
      snapshot.reset();
      collector.collect(snapshot);
    }
    {
      AllocationCounter counter;
      for (int i = 0; i < 3; ++i) {
        snapshot.reset();
        collector.collect(snapshot);
      }
      allocations = counter.count();
    }
    for (const auto* s : snapshot.cgroups) {
      if (s->container_id == std::string(63, 'a') + "1") {
        counted = s->get(F::kFileDescriptors) == 2 && s->get(F::kSockets) == 1 &&
                  s->get(F::kThreads) == 2 && s->has(F::kLastSeenS);
      }
    }
  }
  fs::remove_all(root);
  EXPECT_TRUE(counted) << "the process series were read in the counted cycles";
  EXPECT_EQ(allocations, 0U);
}

}  // namespace
}  // namespace nodewarden
