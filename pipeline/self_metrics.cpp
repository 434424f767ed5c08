#include "pipeline/self_metrics.h"

#include <spdlog/spdlog.h>

namespace nodewarden {

SelfMetrics::SelfMetrics() : registry_(std::make_shared<prometheus::Registry>()) {}

ErrorReporter::ErrorReporter(prometheus::Registry& registry, std::chrono::seconds log_interval)
    : family_(prometheus::BuildCounter()
                  .Name("nodewarden_errors_total")
                  .Help("Outside-world failures handled and skipped, by component and reason.")
                  .Register(registry)),
      log_interval_(log_interval) {}

ErrorReporter::Entry& ErrorReporter::entryLocked(std::string_view component,
                                                 std::string_view reason) {
  std::string key;
  key.reserve(component.size() + reason.size() + 1);
  key.append(component).push_back('\0');
  key.append(reason);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    Entry e;
    e.counter =
        &family_.Add({{"component", std::string(component)}, {"reason", std::string(reason)}});
    it = entries_.emplace(std::move(key), e).first;
  }
  return it->second;
}

void ErrorReporter::report(std::string_view component, std::string_view reason,
                           std::string_view detail) {
  bool log = false;
  {
    std::lock_guard lock(mu_);
    Entry& e = entryLocked(component, reason);
    e.counter->Increment();
    const auto now = Clock::now();
    if (!e.logged || now - e.last_logged >= log_interval_) {
      e.logged = true;
      e.last_logged = now;
      log = true;
    }
  }
  if (log) {
    spdlog::warn("{} error: {} ({}); further ones counted in nodewarden_errors_total", component,
                 reason, detail);
  }
}

void ErrorReporter::countOnly(std::string_view component, std::string_view reason) {
  std::lock_guard lock(mu_);
  entryLocked(component, reason).counter->Increment();
}

double ErrorReporter::count(std::string_view component, std::string_view reason) const {
  std::lock_guard lock(mu_);
  std::string key(component);
  key.push_back('\0');
  key.append(reason);
  auto it = entries_.find(key);
  return it == entries_.end() ? 0.0 : it->second.counter->Value();
}

}  // namespace nodewarden
