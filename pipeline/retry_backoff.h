// The one retry policy of the agent: exponential backoff with "equal jitter" (AWS architecture
// blog, "Exponential Backoff And Jitter"): the wait doubles per consecutive failure from an initial
// one up to a cap, half of it fixed and the other half random, and it is never shorter than the
// peer's Retry-After. Used by the log shipper, the remote-write sender, the state directory's
// retry, the Kubernetes clients (the API-server pod watch) and the placement feed.
//
// What a reader gets wrong: the fixed half is the point, not a detail. With full jitter a wait may
// be 0, and a server that fails every request at once (or closes every watch) is retried in a busy
// loop; with equal jitter the wait is never below half the backoff, and agents restarted together
// still spread out over the other half.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace nodewarden {

// The wait before the next attempt after `failures` consecutive failures (>= 1): initial doubled
// per failure up to max, then half of it fixed and the other half scaled by jitter01 in [0, 1].
// Never below initial / 2. Pure, for tests; the others draw jitter01 themselves.
[[nodiscard]] inline std::chrono::milliseconds backoffDelay(unsigned failures,
                                                            std::chrono::milliseconds initial,
                                                            std::chrono::milliseconds max,
                                                            double jitter01) {
  using std::chrono::milliseconds;
  milliseconds delay = std::max(initial, milliseconds(1));
  const milliseconds cap = std::max(max, delay);
  for (unsigned i = 1; i < failures && delay < cap; ++i) delay = std::min(delay * 2, cap);
  const double jitter = std::clamp(jitter01, 0.0, 1.0);
  const auto half = delay.count() / 2;
  const auto varying =
      static_cast<std::int64_t>(static_cast<double>(delay.count() - half) * jitter);
  return milliseconds(half + varying);
}

// backoffDelay() with the jitter drawn from rng.
template <typename Rng>
[[nodiscard]] std::chrono::milliseconds backoffDelay(unsigned failures,
                                                     std::chrono::milliseconds initial,
                                                     std::chrono::milliseconds max, Rng& rng) {
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  return backoffDelay(failures, initial, max, jitter(rng));
}

// The wait for a caller that keeps the current backoff itself (and doubles it after): the same
// equal jitter of `backoff`, never shorter than retry_after.
template <typename Rng>
[[nodiscard]] std::chrono::milliseconds jitteredWait(std::chrono::milliseconds backoff,
                                                     std::chrono::milliseconds retry_after,
                                                     Rng& rng) {
  return std::max(backoffDelay(1, backoff, backoff, rng), retry_after);
}

}  // namespace nodewarden
