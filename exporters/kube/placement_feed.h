// PlacementFeed: publishes this node's noisy-neighbor state to the Kubernetes API, for this node
// only, so schedulers and people can steer away from it: a node condition (<condition_type>,
// "True" while interference is high, the detector's summary as message), an annotation with the
// node's scores as compact JSON, and a PreferNoSchedule taint while interference is high. Opt-in
// (placement.enabled); dry_run logs every patch it would send and sends none.
//
// Threads: update() runs on the collection thread and never waits on the network. It feeds the
// hysteresis (PlacementDecision) and leaves the desired state in a one-slot mailbox for the feed's
// worker thread: the latest state wins, nothing queues up behind a slow API server. The worker
// applies what differs from what it last applied and retries failures with exponential backoff
// and jitter up to max_backoff; a 403 (missing RBAC) is logged once, naming the permissions, and
// waits max_backoff between tries.
//
// Rate: the condition is patched when its status changes and otherwise as a heartbeat every
// refresh_interval; the annotation when a figure changed materially (node_patches.h), the taint
// state changed, or refresh_interval passed. The taint only when the decision changes.
//
// Shutdown leaves the node as it is (the destructor cancels the request in flight and joins). A
// DaemonSet rollout replaces this pod with the next version on the same node within seconds; the
// node's interference did not change because the agent restarts, so removing the taint would let
// pods be scheduled onto a noisy node only for the next pod to taint it again after on_hold. The
// next pod finds our taint on the node at its first GET and adopts it (min_taint_duration and
// off_hold then run from its start). When the feed is turned off for good, the taint and
// condition stay until removed by hand (kubectl taint nodes <node> <taint_key>:PreferNoSchedule-).
//
// RBAC: get and patch on nodes, patch on nodes/status (a ClusterRole bound to the DaemonSet's
// service account). Every request names this node only.
//
// What a reader gets wrong: the taint is never written from memory. spec.taints is replaced whole
// by any patch, so the worker GETs the node, adds or removes only its own taint, and PATCHes with
// the resourceVersion it read; a 409 Conflict (someone changed the node in between) re-reads and
// tries again, so no other controller's taint is ever lost.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "exporters/kube/placement_decision.h"
#include "pipeline/detector/signals.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::kube {

class NodeApiClient;
struct NodeApiResponse;

struct PlacementOptions {
  // The API server (already resolved: the agent fills in-cluster defaults, as for the pod source).
  // Unused in dry run.
  std::string apiserver_url;
  std::string token_file;
  std::string ca_file;
  std::string node_name;  // required
  bool dry_run = false;
  std::string condition_type = "NoisyNeighbor";
  std::string annotation_key = "nodewarden.io/signals";
  std::string taint_key = "nodewarden.io/noisy-neighbor";
  double on_score = 0.3;
  double off_score = 0.1;
  std::chrono::milliseconds on_hold{30'000};
  std::chrono::milliseconds off_hold{120'000};
  std::chrono::milliseconds min_taint_duration{300'000};
  std::chrono::milliseconds max_backoff{60'000};
  std::chrono::milliseconds timeout{10'000};  // each request
  // Not in the config file: the heartbeat and annotation refresh, the first backoff, and how many
  // 409s in a row one taint change takes before it counts as a failure.
  std::chrono::milliseconds refresh_interval{60'000};
  std::chrono::milliseconds initial_backoff{500};
  int max_conflict_retries = 5;
  // Wall clock for the condition's times and the annotation's "updated"; empty: system_clock.
  std::function<std::chrono::system_clock::time_point()> wall_clock;
};

// For the agent's /signals JSON. tainted and condition_status are the state as applied to the
// node (as it would be, in dry run); desired is the decision, ahead of them while a call is
// pending or failing.
struct PlacementStatus {
  bool dry_run = false;
  bool desired = false;
  bool tainted = false;
  bool condition_status = false;
  std::string last_error;  // empty once a later attempt succeeded
};

class PlacementFeed {
 public:
  using Clock = std::chrono::steady_clock;

  // Checks the options (node name, URL unless dry run, thresholds, durations), registers the
  // metrics and starts the worker thread. The errors name the option.
  static std::expected<std::unique_ptr<PlacementFeed>, std::string> create(
      PlacementOptions options, ErrorReporter& errors, prometheus::Registry& registry);
  ~PlacementFeed();  // cancels the request in flight, joins; leaves the node as it is
  PlacementFeed(const PlacementFeed&) = delete;
  PlacementFeed& operator=(const PlacementFeed&) = delete;

  // One detector cycle's result at `now` (the collection's clock). Never blocks on the network.
  void update(const detector::NodeSignals& signals, Clock::time_point now);
  [[nodiscard]] PlacementStatus status() const;
  // A config reload: the hysteresis' thresholds from the next update() on (a hold under way keeps
  // its start). Any thread.
  void setThresholds(const PlacementThresholds& thresholds);

 private:
  struct Desired {
    bool high = false;
    detector::NodeSignals signals;
    Clock::time_point now{};
    std::chrono::system_clock::time_point wall{};
  };
  enum class Attempt : std::uint8_t { kOk, kFailed, kForbidden, kStopped };

  PlacementFeed(PlacementOptions options, ErrorReporter& errors, prometheus::Registry& registry);
  void run();
  Attempt apply(Desired& desired);
  Attempt sync(Desired& desired);  // the first GET: what the node already carries
  Attempt applyCondition(const Desired& desired);
  Attempt applyTaint(bool on);
  Attempt applyAnnotation(const Desired& desired);
  Attempt patch(std::string_view operation, bool status_subresource, std::string_view content_type,
                const std::string& body);
  Attempt failed(std::string_view operation, const NodeApiResponse& response);
  void reportError(std::string_view reason, const std::string& detail);
  void succeeded();
  void count(std::string_view operation, const NodeApiResponse& response);
  bool waitBackoff(std::chrono::milliseconds delay);  // false when stopping
  [[nodiscard]] std::chrono::system_clock::time_point wallNow() const;

  PlacementOptions options_;
  ErrorReporter& errors_;
  std::unique_ptr<NodeApiClient> client_;  // null in dry run; worker thread only, but cancel()
  std::string node_path_;                  // for the dry run's log lines

  prometheus::Gauge& tainted_gauge_;
  prometheus::Gauge& condition_gauge_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Counter& transitions_on_;
  prometheus::Counter& transitions_off_;

  std::mutex decision_mu_;  // guards decision_: update() and the worker's adoption
  PlacementDecision decision_;

  mutable std::mutex mu_;  // guards the mailbox and the status; never held across a request
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  std::uint64_t seq_ = 0;  // bumped by every update()
  Desired desired_;
  PlacementStatus status_;

  // Worker thread only: what is known to be on the node.
  bool synced_ = false;
  bool forbidden_logged_ = false;
  bool taint_applied_ = false;
  std::optional<bool> condition_applied_;  // nullopt: the node has no such condition yet
  std::string transition_;                 // the condition's lastTransitionTime as applied
  std::optional<Clock::time_point> condition_at_;
  std::optional<Clock::time_point> annotation_at_;
  detector::NodeSignals annotation_signals_;
  bool annotation_tainted_ = false;

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace nodewarden::kube
