#include "agent/config_reload.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace nodewarden {
namespace {

// One live key and how it is copied from the new config.
struct LiveKey {
  std::string_view key;
  void (*copy)(Config& to, const Config& from);
};

#define NODEWARDEN_LIVE(key, member)                                     \
  LiveKey {                                                              \
    key, [](Config& to, const Config& from) { to.member = from.member; } \
  }

constexpr std::array kLiveKeys = {
    NODEWARDEN_LIVE("log_level", log_level),
    NODEWARDEN_LIVE("detector.recommendation.cpu_percentile", detector.cpu_percentile),
    NODEWARDEN_LIVE("detector.recommendation.memory_percentile", detector.memory_percentile),
    NODEWARDEN_LIVE("detector.recommendation.margin", detector.margin),
    NODEWARDEN_LIVE("detector.recommendation.memory_peak_interval", detector.memory_peak_interval),
    NODEWARDEN_LIVE("detector.noisy_neighbor.baseline_half_life", detector.baseline_half_life),
    NODEWARDEN_LIVE("detector.noisy_neighbor.victim_z", detector.victim_z),
    NODEWARDEN_LIVE("detector.noisy_neighbor.victim_min_stall", detector.victim_min_stall),
    NODEWARDEN_LIVE("detector.noisy_neighbor.memory_victim_min_stall",
                    detector.memory_victim_min_stall),
    NODEWARDEN_LIVE("detector.noisy_neighbor.self_throttle_ratio", detector.self_throttle_ratio),
    NODEWARDEN_LIVE("detector.noisy_neighbor.victim_k", detector.victim_k),
    NODEWARDEN_LIVE("detector.noisy_neighbor.onset_min_stall.cpu", detector.onset_min_stall[0]),
    NODEWARDEN_LIVE("detector.noisy_neighbor.onset_min_stall.memory", detector.onset_min_stall[1]),
    NODEWARDEN_LIVE("detector.noisy_neighbor.onset_min_stall.io", detector.onset_min_stall[2]),
    NODEWARDEN_LIVE("detector.noisy_neighbor.episode_lead", detector.episode_lead),
    NODEWARDEN_LIVE("detector.noisy_neighbor.antagonist_threshold", detector.antagonist_threshold),
    NODEWARDEN_LIVE("placement.on_score", placement.on_score),
    NODEWARDEN_LIVE("placement.off_score", placement.off_score),
    NODEWARDEN_LIVE("placement.on_hold", placement.on_hold),
    NODEWARDEN_LIVE("placement.off_hold", placement.off_hold),
    NODEWARDEN_LIVE("placement.min_taint_duration", placement.min_taint_duration),
};

#undef NODEWARDEN_LIVE

const LiveKey* findLive(const std::string& key) {
  const auto it = std::ranges::find(kLiveKeys, std::string_view(key), &LiveKey::key);
  return it == kLiveKeys.end() ? nullptr : &*it;
}

}  // namespace

bool isLiveConfigKey(const std::string& key) { return findLive(key) != nullptr; }

std::expected<ReloadPlan, ConfigError> planReload(const Config& running, const Config& next) {
  ReloadPlan plan;
  plan.result = running;
  for (const auto& key : changedConfigKeys(running, next)) {
    if (const LiveKey* live = findLive(key)) {
      live->copy(plan.result, next);
      plan.applied.push_back(key);
    } else {
      plan.needs_restart.push_back(key);
    }
  }
  if (auto valid = validateConfig(plan.result); !valid) {
    auto error = valid.error();
    error.reason += " (with the running values of the keys that need a restart)";
    return std::unexpected(std::move(error));
  }
  return plan;
}

void applyLiveConfigKeys(Config& to, const Config& from, const std::vector<std::string>& keys) {
  for (const auto& key : keys) {
    if (const LiveKey* live = findLive(key)) live->copy(to, from);
  }
}

}  // namespace nodewarden
