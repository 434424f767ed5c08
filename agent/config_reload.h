// Config reload (SIGHUP): which of the keys that changed in the file the running agent takes on,
// and which wait for a restart.
//
// Taken on at once (each handed to its component on the collection thread, see Agent):
//   log_level
//   detector.recommendation.{cpu_percentile, memory_percentile, margin, memory_peak_interval}
//   detector.noisy_neighbor.{baseline_half_life, victim_z, victim_min_stall,
//     memory_victim_min_stall, self_throttle_ratio, victim_k, onset_min_stall.*, episode_lead,
//     antagonist_threshold}
//   placement.{on_score, off_score, on_hold, off_hold, min_taint_duration}
// Every other key needs a restart: it sizes something already built (the detector's windows and
// rings, the spool, the HTTP listener), or a component reads it once when it starts (paths, URLs,
// credentials, the log path's labels and batching, the collection interval).
//
// What a reader gets wrong: the new values are checked together with the running ones they will
// sit beside (validateConfig of the result), so a victim_k above the running victim_n is refused
// even when the file also raises victim_n: that part only takes effect at the restart.
#pragma once

#include <expected>
#include <string>
#include <vector>

#include "agent/config.h"

namespace nodewarden {

struct ReloadPlan {
  std::vector<std::string> applied;        // live keys that changed, taken on now
  std::vector<std::string> needs_restart;  // changed keys kept at their running value
  Config result;                           // running, with the applied keys from the new config
};

// Whether a key (a dotted path as changedConfigKeys gives) is taken on without a restart.
bool isLiveConfigKey(const std::string& key);

// What a reload from running to next does. An error (the combination fails validateConfig) means
// nothing is applied.
std::expected<ReloadPlan, ConfigError> planReload(const Config& running, const Config& next);

// Copies the values of these live keys (ReloadPlan::applied) from `from` into `to`, field by field:
// no other field of `to` is written (other threads may be reading them). Unknown or non-live keys
// are skipped.
void applyLiveConfigKeys(Config& to, const Config& from, const std::vector<std::string>& keys);

}  // namespace nodewarden
