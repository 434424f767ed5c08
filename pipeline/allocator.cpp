#include "pipeline/allocator.h"

#include <malloc.h>

namespace nodewarden {

bool tuneAllocator(const AllocatorSettings& settings) {
  bool ok = ::mallopt(M_ARENA_MAX, settings.arena_max) == 1;
  // Setting either threshold turns glibc's dynamic adjustment of both off.
  ok = ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(settings.mmap_threshold)) == 1 && ok;
  ok = ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(settings.trim_threshold)) == 1 && ok;
  return ok;
}

}  // namespace nodewarden
