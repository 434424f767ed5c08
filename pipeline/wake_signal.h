// WakeSignal: how a sender thread (the log shipper, the remote-write sender) waits: for new work
// (notify), for a backoff to pass, or for stop, whichever comes first.
//
// What a reader gets wrong: a notify() during a backoff does not cut it short (only stop does),
// so new work never turns a retry storm into a busy loop; it is remembered for the next
// waitForWork() instead.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace nodewarden {

class WakeSignal {
 public:
  void notify() {
    {
      std::lock_guard lock(mu_);
      wake_ = true;
    }
    cv_.notify_all();
  }
  void stop() {
    stopping_ = true;
    notify();
  }
  void reset() { stopping_ = false; }
  [[nodiscard]] bool stopping() const { return stopping_.load(); }

  // Returns after d, or at once when stopping.
  void sleepFor(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [this] { return stopping_.load(); });
  }
  // Returns on notify(), stop, or after idle (to look again anyway); consumes the notification.
  void waitForWork(std::chrono::milliseconds idle) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, idle, [this] { return wake_ || stopping_.load(); });
    wake_ = false;
  }

 private:
  std::mutex mu_;  // guards wake_ and the condition variable's wait
  std::condition_variable cv_;
  bool wake_ = false;
  std::atomic<bool> stopping_{false};
};

}  // namespace nodewarden
