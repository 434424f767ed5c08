// Detector: turns each cycle's Snapshot into signals (usage windows, self-saturation, stall by
// cause, right-sizing) and noisy-neighbor verdicts, in a fixed amount of memory per container.
//
// Method (the detector issue; defaults and their reasons are in README "Detector"):
// - stall is PSI "some" (delta total / delta t) per pod and resource. The part the pod causes
//   itself is split off: CPU stall while the pod is throttled by its own quota, memory stall while
//   its usage is near its own limit. What is left is "others".
// - a pod is high for a resource in an interval when its others-stall is victim_z standard
//   deviations and victim_min_stall above its own baseline (an EWMA that learns only from
//   intervals that are not high), and its own activity did not just rise (a pod that starts work
//   and then waits for the CPU is its own cause: the pod whose activity changed first is the
//   antagonist, not the victim);
// - candidates are co-located pods whose activity for that resource rose within the correlation
//   window; each is ranked by the Pearson correlation of its activity with the victim's
//   others-stall over that window. A victim verdict needs victim_k of the last victim_n intervals
//   high (or the current one alone over 2 x victim_z and onset_min_stall) AND a candidate at or
//   above antagonist_threshold; the candidate is named antagonist.
//   A named antagonist stays named while the verdict holds and it keeps at least half the activity
//   it had when named (a long-running antagonist makes both series flat, and flat series have no
//   correlation).
//
// What a reader gets wrong: everything here runs on the collection thread, once per cycle, and
// update() never reads a file: all inputs are in the Snapshot. State() copies are what other
// threads read. Detector itself decides nothing: detector.cpp runs three parts in a fixed order
// and publishes what they wrote. right_sizing.h (per container: usage windows, throttle ratio,
// recommendations), noisy_neighbor.h (per pod: stall by cause, baselines, victims, onsets,
// antagonists; the method above) and node_score.h (saturation, pressure, interference score and
// summary). Every counter they turn into a rate goes through rate_tracker.h, which alone knows the
// first reading, a missing one, a reset and a clock that did not advance; cgroup_table.h keeps
// their per-cgroup entries (admitted, forgotten after three cycles unseen); detector_parts.h is
// what else they share. max_containers bounds pods and containers together, so the admission is
// the Detector's, not a part's.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "pipeline/detector/signals.h"
#include "pipeline/snapshot.h"

namespace nodewarden::detector {

struct DetectorOptions {
  std::string node;
  std::chrono::milliseconds interval{10000};
  std::array<std::chrono::milliseconds, kWindows> windows{
      std::chrono::seconds(10), std::chrono::minutes(1), std::chrono::minutes(5)};
  // Windows whose quantiles are rendered on /metrics (all are in the state).
  std::array<bool, kWindows> metrics_windows{false, true, false};
  int max_containers = 2000;
  // Right-sizing.
  std::chrono::milliseconds half_life{std::chrono::hours(24)};
  std::chrono::milliseconds memory_peak_interval{std::chrono::hours(1)};
  double cpu_percentile = 0.9;
  double memory_percentile = 0.95;
  double margin = 0.15;
  int min_recommendation_samples = 6;  // samples (cpu) before a recommendation is published
  // Noisy neighbors.
  std::chrono::milliseconds baseline_half_life{std::chrono::minutes(10)};
  double victim_z = 3.0;
  double victim_min_stall = 0.15;  // cpu and io
  // Memory's: memory stall is 0 at every measured pod's baseline, and a victim whose reclaimed
  // cache is refaulted loses half its rate at 0.12 of memory stall (measured), where CPU stall
  // of 0.15 costs a few percent.
  double memory_victim_min_stall = 0.1;
  double self_throttle_ratio = 0.2;
  int victim_k = 2;
  int victim_n = 3;
  // One interval is a verdict on its own (no k of n) when its others-stall is 2 x victim_z
  // standard deviations and at least this share of wall time above the baseline, per resource
  // (cpu, memory, io). CPU stall is noisy: a neighbour that barely slows a pod leaves 0.11-0.14,
  // and the interval after an antagonist stops up to 0.29 (measured), so CPU needs twice
  // victim_min_stall. Memory stall is 0 at a pod's baseline and rose only under reclaim in every
  // measured run, so its own minimum suffices there.
  std::array<double, kResources> onset_min_stall{0.3, 0.1, 0.3};
  std::chrono::milliseconds correlation_window{std::chrono::minutes(2)};
  // How far before a victim's current episode the ranking looks (its quiet lead-in), at most the
  // correlation window: long enough to see an antagonist start before the stall shows, short
  // enough that the same pod's earlier, harmless activity does not blur the correlation.
  std::chrono::milliseconds episode_lead{std::chrono::seconds(30)};
  double antagonist_threshold = 0.6;
  // A pod's memory stall is its own when its usage is at least this share of its own limit.
  double self_memory_limit_ratio = 0.9;
  // Smallest rise of activity that makes a pod a candidate (or its own stall self-inflicted).
  double min_cpu_rise_cores = 0.1;
  double min_memory_rise_bytes = 32.0 * 1024 * 1024;
  double min_io_rise_bytes_per_second = 1024.0 * 1024;
  double stall_std_floor = 0.02;  // z-scores divide by at least this (a flat baseline is not 0)
  int baseline_warmup = 3;        // intervals of baseline before a pod can be judged
};

struct DetectorStats {
  std::size_t pods = 0;
  std::size_t containers = 0;
  std::uint64_t dropped = 0;  // cgroups not tracked because max_containers was reached
};

class Detector {
 public:
  explicit Detector(DetectorOptions options);
  ~Detector();
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  // One cycle. now_s is a monotonic clock in seconds (the histograms' and windows' time);
  // snapshot.timestamp_ms is the wall clock reported in the output.
  void update(const Snapshot& snapshot, double now_s);
  // What the last update concluded.
  [[nodiscard]] const DetectorState& state() const;
  [[nodiscard]] DetectorStats stats() const;
  [[nodiscard]] const DetectorOptions& options() const;
  // A config reload: takes the decision thresholds of options (the right-sizing percentiles and
  // margin, the noisy-neighbor z, stalls, k, lead and threshold) from the next update() on, and
  // keeps what sized this detector's windows. Same thread as update().
  void retune(const DetectorOptions& options);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden::detector
