// AllocCounter: counts heap allocations made on the calling thread while a scope is open. The
// hooks (global operator new/delete and the malloc family) live in alloc_counter.cpp, so only an
// executable that links that file is instrumented.
//
// What a reader gets wrong: counting is at malloc level (operator new goes through malloc), so
// one `new` is one allocation, and allocations on other threads are not attributed to the scope.
#pragma once

#include <cstdint>

namespace nodewarden::bench {

struct AllocCount {
  std::uint64_t allocs = 0;  // malloc, calloc, realloc, aligned allocations, operator new
  std::uint64_t frees = 0;
  std::uint64_t bytes = 0;  // requested bytes
};

class AllocCounter {
 public:
  AllocCounter();
  ~AllocCounter();
  AllocCounter(const AllocCounter&) = delete;
  AllocCounter& operator=(const AllocCounter&) = delete;
  // Counts since construction.
  [[nodiscard]] AllocCount count() const;

 private:
  AllocCount start_;
  bool was_counting_;
};

}  // namespace nodewarden::bench
