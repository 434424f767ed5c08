// Proves the node hot path allocates nothing in steady state: a collect() after warm-up, and
// rendering into a string with enough capacity. Counts through a replaced global operator new.
//
// What a reader gets wrong: the replacement is global to the unit_node program, but it only counts
// while an AllocationCounter is alive on the calling thread, so other tests are unaffected.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "collectors/node/node_collector.h"
#include "exporters/prometheus/node_text.h"
#include "fixture_files.h"

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
  if (t_counting) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }

namespace nodewarden {
namespace {

TEST(NodeAllocationTest, SteadyStateCollectAllocatesNothing) {
  SelfMetrics metrics;
  ErrorReporter errors(metrics.registry());
  NodeCollector collector(fixtures::fixturePath("proc"), errors);
  Snapshot snapshot;
  collector.collect(snapshot);  // warm-up: sizes the buffer, the cpu vector, the meminfo strings
  std::size_t allocations = 0;
  {
    AllocationCounter counter;
    collector.collect(snapshot);
    collector.collect(snapshot);
    allocations = counter.count();
  }
  EXPECT_EQ(allocations, 0U);
  EXPECT_TRUE(snapshot.node.has_stat);
  EXPECT_TRUE(snapshot.node.has_meminfo);
  EXPECT_TRUE(snapshot.node.psi_memory.has_full);
  EXPECT_TRUE(snapshot.node.has_loadavg);
}

TEST(NodeAllocationTest, RenderingIntoAReservedStringAllocatesNothing) {
  SelfMetrics metrics;
  ErrorReporter errors(metrics.registry());
  NodeCollector collector(fixtures::fixturePath("proc"), errors);
  Snapshot snapshot;
  collector.collect(snapshot);
  std::string out;
  out.reserve(64 * 1024);
  std::size_t allocations = 0;
  {
    AllocationCounter counter;
    appendNodeMetrics(snapshot.node, out);
    allocations = counter.count();
  }
  EXPECT_EQ(allocations, 0U);
  EXPECT_GT(out.size(), 1000U);
}

}  // namespace
}  // namespace nodewarden
