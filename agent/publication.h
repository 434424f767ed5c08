// Publication<T>: how the collection thread hands what a cycle produced (the snapshot, the
// detector's state, the pod and Job series) to readers on other threads (scrapes, remote write's
// encoder, /signals) without waiting for them and, in steady state, without allocating.
//
// What a reader gets wrong: a published value is never written again while a reader holds it. The
// writer fills a buffer no reader holds (use_count() == 1: only this pool's reference) and then
// swaps the latest pointer under a mutex; a slow reader keeps its own buffer alive and costs one
// more buffer, never a wait. So the pool grows to the number of readers holding different cycles
// at once, and no further.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace nodewarden {

template <class T>
class Publication {
 public:
  // Calls fill(T&) on a buffer no reader holds (reused, or new when every buffer is held) and
  // makes it the latest. Writer thread only.
  template <class Fill>
  void publish(Fill&& fill) {
    std::shared_ptr<T> spare;
    for (auto& b : buffers_) {
      if (b.use_count() == 1) {
        // use_count() is a relaxed load: order the other threads' last reads of this buffer
        // (their reference drops are release) before it is overwritten.
        std::atomic_thread_fence(std::memory_order_acquire);
        spare = b;
        break;
      }
    }
    if (!spare) {
      spare = std::make_shared<T>();
      buffers_.push_back(spare);
    }
    std::forward<Fill>(fill)(*spare);
    std::lock_guard lock(mu_);
    latest_ = std::move(spare);
  }

  // The latest published value; null before the first. Any thread.
  [[nodiscard]] std::shared_ptr<const T> latest() const {
    std::lock_guard lock(mu_);
    return latest_;
  }

  // Buffers held by the pool (the latest and those readers still hold, plus spares).
  [[nodiscard]] std::size_t buffers() const { return buffers_.size(); }

 private:
  std::vector<std::shared_ptr<T>> buffers_;  // writer thread only
  mutable std::mutex mu_;                    // guards latest_ (the pointer, not what it points to)
  std::shared_ptr<const T> latest_;
};

}  // namespace nodewarden
