// Interposes glibc's malloc family in this executable and forwards to the __libc_* entry points,
// which glibc exports for exactly this; operator new/delete are routed through the same hooks.
#include "bench/alloc_counter.h"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void __libc_free(void* p);
}

namespace {

// Thread-local and trivially constructible: initial-exec TLS in the executable, so touching it
// from inside malloc never allocates.
struct ThreadCounts {
  bool counting;
  std::uint64_t allocs;
  std::uint64_t frees;
  std::uint64_t bytes;
};
thread_local ThreadCounts t_counts{};

inline void noteAlloc(std::size_t size) {
  if (t_counts.counting) {
    ++t_counts.allocs;
    t_counts.bytes += size;
  }
}
inline void noteFree(const void* p) {
  if (p != nullptr && t_counts.counting) ++t_counts.frees;
}

void* alignedAlloc(std::size_t alignment, std::size_t size) {
  noteAlloc(size);
  return __libc_memalign(alignment, size);
}

}  // namespace

extern "C" {

void* malloc(std::size_t size) noexcept {
  noteAlloc(size);
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) noexcept {
  noteAlloc(n * size);
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) noexcept {
  noteAlloc(size);
  return __libc_realloc(p, size);
}
void free(void* p) noexcept {
  noteFree(p);
  __libc_free(p);
}
void* memalign(std::size_t alignment, std::size_t size) noexcept {
  return alignedAlloc(alignment, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  return alignedAlloc(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = alignedAlloc(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

}  // extern "C"

void* operator new(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new(std::size_t size, std::align_val_t al) {
  void* p = alignedAlloc(static_cast<std::size_t>(al), size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](std::size_t size, std::align_val_t al) { return ::operator new(size, al); }
void* operator new(std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return alignedAlloc(static_cast<std::size_t>(al), size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return alignedAlloc(static_cast<std::size_t>(al), size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace nodewarden::bench {

AllocCounter::AllocCounter()
    : start_{t_counts.allocs, t_counts.frees, t_counts.bytes}, was_counting_(t_counts.counting) {
  t_counts.counting = true;
}

AllocCounter::~AllocCounter() { t_counts.counting = was_counting_; }

AllocCount AllocCounter::count() const {
  return {t_counts.allocs - start_.allocs, t_counts.frees - start_.frees,
          t_counts.bytes - start_.bytes};
}

}  // namespace nodewarden::bench
