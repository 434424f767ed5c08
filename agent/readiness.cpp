#include "agent/readiness.h"

namespace nodewarden {

void Readiness::firstCollectionDone() {
  std::lock_guard lock(mu_);
  collected_ = true;
}

void Readiness::setDown(std::string_view component, std::string reason) {
  std::lock_guard lock(mu_);
  auto it = down_.find(component);
  if (it == down_.end()) {
    down_.emplace(std::string(component), std::move(reason));
  } else {
    it->second = std::move(reason);
  }
}

void Readiness::setUp(std::string_view component) {
  std::lock_guard lock(mu_);
  if (auto it = down_.find(component); it != down_.end()) down_.erase(it);
}

Readiness::Answer Readiness::answer() const {
  std::lock_guard lock(mu_);
  if (collected_ && down_.empty()) return {true, "ready\n"};
  Answer a;
  if (!collected_) a.body += "first collection not finished\n";
  for (const auto& [component, reason] : down_) a.body += component + ": " + reason + "\n";
  return a;
}

bool Readiness::isDown(std::string_view component) const {
  std::lock_guard lock(mu_);
  return down_.contains(component);
}

}  // namespace nodewarden
