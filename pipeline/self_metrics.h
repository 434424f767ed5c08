// The agent's own metrics (nodewarden_*): one prometheus-cpp registry shared by every component.
// ErrorReporter is how a component reports an outside-world failure: counted by component and
// reason, logged at most once per key per log interval, never thrown.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace nodewarden {

class SelfMetrics {
 public:
  SelfMetrics();
  [[nodiscard]] prometheus::Registry& registry() { return *registry_; }
  [[nodiscard]] std::shared_ptr<prometheus::Registry> registryPtr() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

class ErrorReporter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ErrorReporter(prometheus::Registry& registry,
                         std::chrono::seconds log_interval = std::chrono::seconds(60));

  // Counts one error and logs it unless the same (component, reason) was logged within the
  // interval. Thread-safe. detail is for the log line only, never a label (unbounded values).
  void report(std::string_view component, std::string_view reason, std::string_view detail);
  // Counts one error without logging it: for a failure whose cause was already logged in full and
  // that would only repeat the same advice (a missing RBAC permission).
  void countOnly(std::string_view component, std::string_view reason);

  // Total reported for one key, for tests and the compliance check.
  [[nodiscard]] double count(std::string_view component, std::string_view reason) const;

 private:
  struct Entry {
    prometheus::Counter* counter = nullptr;
    Clock::time_point last_logged{};
    bool logged = false;
  };
  Entry& entryLocked(std::string_view component, std::string_view reason);

  prometheus::Family<prometheus::Counter>& family_;
  std::chrono::seconds log_interval_;
  mutable std::mutex mu_;  // guards entries_
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace nodewarden
