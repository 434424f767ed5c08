// The wait before resending a request the destination answered with RETRY: exponential backoff
// with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"), never shorter than
// the peer's Retry-After. Shared by the log shipper and the remote-write sender.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace nodewarden {

inline std::chrono::milliseconds jitteredWait(std::chrono::milliseconds backoff,
                                              std::chrono::milliseconds retry_after,
                                              std::mt19937_64& rng) {
  std::uniform_int_distribution<std::int64_t> jitter(0, backoff.count());
  return std::max(std::chrono::milliseconds(jitter(rng)), retry_after);
}

}  // namespace nodewarden
