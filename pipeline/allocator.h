// The agent's malloc settings, one place for the agent and the benchmarks that measure its paths.
//
// What a reader gets wrong: glibc's defaults are not neutral here. Per-thread arenas hold freed
// batch buffers of the HTTP and shipper threads; a dynamic mmap threshold moves ~1 MiB push bodies
// (allocated on the reading thread, freed on the shipper's in spool order) into the heap, where
// they leave holes it cannot return. A fixed threshold keeps those in mappings of their own, but
// then every allocation above it costs a fresh mapping and a page fault per 4 KiB page: the log
// path reuses its batch-sized buffers (stream buffers, push bodies through the spool) so that only
// the first batches pay that.
#pragma once

#include <cstddef>

namespace nodewarden {

struct AllocatorSettings {
  int arena_max = 2;
  // Above snappy's per-call working memory (~172 KiB for 64 KiB blocks), which is allocated and
  // freed on the same thread and stays in the heap; below a push body (hundreds of KiB).
  std::size_t mmap_threshold = 256 * 1024;
  // Free memory at the heap's top kept rather than returned: the working memory above is
  // freed and allocated again per batch; returning it each time costs its page faults again.
  std::size_t trim_threshold = 1024 * 1024;
};

// mallopt() of the settings; call before any thread starts. Returns false if glibc refused one.
bool tuneAllocator(const AllocatorSettings& settings = {});

}  // namespace nodewarden
