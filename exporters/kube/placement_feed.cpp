// PlacementFeed: the worker that applies the placement decision to this node (see
// placement_feed.h for the rules, the shutdown choice and the RBAC).
#include "exporters/kube/placement_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "exporters/kube/node_api_client.h"
#include "exporters/kube/node_patches.h"
#include "pipeline/retry_backoff.h"

namespace nodewarden::kube {
namespace {

using nlohmann::json;

constexpr std::string_view kComponent = "placement";
constexpr std::string_view kStrategicMerge = "application/strategic-merge-patch+json";
constexpr std::string_view kMergePatch = "application/merge-patch+json";
constexpr const char* kRbac =
    "the service account needs RBAC: a ClusterRole with apiGroups [\"\"], resources [\"nodes\"], "
    "verbs [\"get\", \"patch\"] and resources [\"nodes/status\"], verbs [\"patch\"], bound to it";

std::string describe(std::string_view operation, const NodeApiResponse& response) {
  std::string out(operation);
  out += ": ";
  if (response.status != 0) {
    out += kubeapi::statusError("", "", {.http_status = response.status, .body = response.body})
               .detail;
  } else {
    out += response.error;
  }
  return out;
}

// Enough doublings to reach any max_backoff from any initial one.
constexpr unsigned kSaturated = 64;

}  // namespace

std::expected<std::unique_ptr<PlacementFeed>, std::string> PlacementFeed::create(
    PlacementOptions options, ErrorReporter& errors, prometheus::Registry& registry) {
  const auto fail = [](std::string_view field, std::string_view reason) {
    return std::unexpected("placement." + std::string(field) + ": " + std::string(reason));
  };
  if (options.node_name.empty()) return fail("node_name", "no node name (--node-name, NODE_NAME)");
  if (options.condition_type.empty()) return fail("condition_type", "empty");
  if (options.annotation_key.empty()) return fail("annotation_key", "empty");
  if (options.taint_key.empty()) return fail("taint_key", "empty");
  if (!std::isfinite(options.on_score) || !std::isfinite(options.off_score) ||
      options.off_score < 0 || options.off_score > options.on_score) {
    return fail("off_score", "must be between 0 and on_score");
  }
  if (options.on_hold.count() < 0 || options.off_hold.count() < 0 ||
      options.min_taint_duration.count() < 0) {
    return fail("on_hold", "holds and min_taint_duration must not be negative");
  }
  if (options.max_backoff.count() <= 0 || options.initial_backoff.count() <= 0) {
    return fail("max_backoff", "must be > 0");
  }
  if (options.timeout.count() <= 0) return fail("timeout", "must be > 0");
  if (options.max_conflict_retries < 1) options.max_conflict_retries = 1;

  std::unique_ptr<NodeApiClient> client;
  if (!options.dry_run) {
    auto made = NodeApiClient::create({.url = options.apiserver_url,
                                       .token_file = options.token_file,
                                       .ca_file = options.ca_file,
                                       .node_name = options.node_name,
                                       .timeout = options.timeout});
    if (!made) return fail("apiserver_url", made.error());
    client = std::move(*made);
  }
  std::unique_ptr<PlacementFeed> self(new PlacementFeed(std::move(options), errors, registry));
  self->client_ = std::move(client);
  self->thread_ = std::thread([feed = self.get()] { feed->run(); });
  return self;
}

PlacementFeed::PlacementFeed(PlacementOptions options, ErrorReporter& errors,
                             prometheus::Registry& registry)
    : options_(std::move(options)),
      errors_(errors),
      node_path_("/api/v1/nodes/" + options_.node_name),
      tainted_gauge_(prometheus::BuildGauge()
                         .Name("nodewarden_placement_tainted")
                         .Help("1 while this node carries the placement feed's PreferNoSchedule "
                               "taint (as applied; as it would be, in dry run).")
                         .Register(registry)
                         .Add({})),
      condition_gauge_(prometheus::BuildGauge()
                           .Name("nodewarden_placement_condition_status")
                           .Help("1 while the placement feed's node condition is True.")
                           .Register(registry)
                           .Add({})),
      requests_(prometheus::BuildCounter()
                    .Name("nodewarden_placement_api_requests_total")
                    .Help("Placement feed requests to the API server, by operation "
                          "(condition, annotation, taint, get) and HTTP status (or error).")
                    .Register(registry)),
      transitions_(prometheus::BuildCounter()
                       .Name("nodewarden_placement_transitions_total")
                       .Help("Placement decisions that changed, by the new state.")
                       .Register(registry)),
      transitions_on_(transitions_.Add({{"state", "on"}})),
      transitions_off_(transitions_.Add({{"state", "off"}})),
      decision_(PlacementThresholds{.on_score = options_.on_score,
                                    .off_score = options_.off_score,
                                    .on_hold = options_.on_hold,
                                    .off_hold = options_.off_hold,
                                    .min_taint_duration = options_.min_taint_duration}) {
  status_.dry_run = options_.dry_run;
}

PlacementFeed::~PlacementFeed() {
  stopping_.store(true);
  {
    const std::lock_guard lock(mu_);  // a waiter between its check and its wait sees the flag
  }
  wake_.notify_all();
  if (client_) client_->cancel();
  if (thread_.joinable()) thread_.join();
}

std::chrono::system_clock::time_point PlacementFeed::wallNow() const {
  return options_.wall_clock ? options_.wall_clock() : std::chrono::system_clock::now();
}

void PlacementFeed::update(const detector::NodeSignals& signals, Clock::time_point now) {
  bool high = false;
  PlacementDecision::Change change = PlacementDecision::Change::kNone;
  {
    const std::lock_guard lock(decision_mu_);
    change = decision_.observe(signals.interference_score, now);
    high = decision_.high();
  }
  if (change == PlacementDecision::Change::kOn) transitions_on_.Increment();
  if (change == PlacementDecision::Change::kOff) transitions_off_.Increment();
  Desired next{.high = high, .signals = signals, .now = now, .wall = wallNow()};
  {
    const std::lock_guard lock(mu_);
    desired_ = std::move(next);
    status_.desired = high;
    ++seq_;
  }
  wake_.notify_one();
}

void PlacementFeed::setThresholds(const PlacementThresholds& thresholds) {
  const std::lock_guard lock(decision_mu_);
  decision_.setThresholds(thresholds);
}

PlacementStatus PlacementFeed::status() const {
  const std::lock_guard lock(mu_);
  return status_;
}

void PlacementFeed::run() {
  std::uint64_t handled = 0;
  unsigned failures = 0;
  bool retry = false;  // the last attempt failed and its backoff is over: go again at once
  std::minstd_rand random(static_cast<std::minstd_rand::result_type>(std::random_device{}()));
  while (true) {
    Desired desired;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_.load() || retry || seq_ != handled; });
      if (stopping_.load()) return;
      desired = desired_;
      handled = seq_;
    }
    retry = false;
    const Attempt attempt = apply(desired);
    if (attempt == Attempt::kStopped) return;
    if (attempt == Attempt::kOk) {
      failures = 0;
      continue;
    }
    // The agent's one retry policy (pipeline/retry_backoff.h), from initial_backoff up to
    // max_backoff; a 403 waits the most at once: RBAC is not fixed in seconds.
    ++failures;
    const unsigned steps = attempt == Attempt::kForbidden ? kSaturated : failures;
    const auto delay = backoffDelay(steps, options_.initial_backoff, options_.max_backoff, random);
    if (!waitBackoff(delay)) return;
    retry = true;
  }
}

bool PlacementFeed::waitBackoff(std::chrono::milliseconds delay) {
  std::unique_lock lock(mu_);
  // New updates do not cut the wait short: they arrive every few seconds and would turn the
  // backoff into a retry per collection.
  return !wake_.wait_for(lock, delay, [this] { return stopping_.load(); });
}

PlacementFeed::Attempt PlacementFeed::apply(Desired& desired) {
  if (!options_.dry_run && !synced_) {
    const Attempt attempt = sync(desired);
    if (attempt != Attempt::kOk) return attempt;
  }
  Attempt attempt = applyCondition(desired);
  if (attempt != Attempt::kOk) return attempt;
  if (taint_applied_ != desired.high) {
    attempt = applyTaint(desired.high);
    if (attempt != Attempt::kOk) return attempt;
  }
  attempt = applyAnnotation(desired);
  if (attempt != Attempt::kOk) return attempt;
  succeeded();
  return Attempt::kOk;
}

PlacementFeed::Attempt PlacementFeed::sync(Desired& desired) {
  const NodeApiResponse response = client_->getNode();
  count("get", response);
  if (!response.ok()) return failed("get", response);
  const json node = json::parse(response.body, nullptr, false);
  if (!node.is_object()) {
    reportError("apiserver_bad_json", "get: the node is not a JSON object");
    return Attempt::kFailed;
  }
  const json* taints = nullptr;
  if (const auto spec = node.find("spec"); spec != node.end() && spec->is_object()) {
    if (const auto t = spec->find("taints"); t != spec->end()) taints = &*t;
  }
  taint_applied_ = taints != nullptr && hasTaint(*taints, options_.taint_key);
  if (const auto status = node.find("status"); status != node.end() && status->is_object()) {
    const auto conditions = status->find("conditions");
    if (conditions != status->end() && conditions->is_array()) {
      for (const json& c : *conditions) {
        if (!c.is_object() || c.value("type", "") != options_.condition_type) continue;
        const std::string s = c.value("status", "");
        if (s == "True" || s == "False") condition_applied_ = s == "True";
        transition_ = c.value("lastTransitionTime", "");
      }
    }
  }
  if (taint_applied_) {
    // Left by the previous pod of a rollout (or an earlier run): take it over rather than lift it
    // before this agent's detector has even warmed up.
    const std::lock_guard lock(decision_mu_);
    if (!decision_.high()) {
      decision_.adopt(true, desired.now);
      spdlog::info(
          "placement: node {} already carries {}:{}; keeping it (off after off_hold "
          "under off_score and min_taint_duration from now)",
          options_.node_name, options_.taint_key, kTaintEffect);
    }
    desired.high = decision_.high();
  }
  {
    const std::lock_guard lock(mu_);
    status_.tainted = taint_applied_;
    status_.desired = desired.high;
    if (condition_applied_) status_.condition_status = *condition_applied_;
  }
  tainted_gauge_.Set(taint_applied_ ? 1 : 0);
  synced_ = true;
  return Attempt::kOk;
}

PlacementFeed::Attempt PlacementFeed::applyCondition(const Desired& desired) {
  const auto now = Clock::now();
  const bool changes = condition_applied_ != desired.high;
  if (!changes && condition_at_ && now - *condition_at_ < options_.refresh_interval) {
    return Attempt::kOk;
  }
  ConditionState state{.status = desired.high,
                       .message = desired.signals.summary,
                       .heartbeat = desired.wall,
                       .transition = transition_};
  if (changes || state.transition.empty()) state.transition = rfc3339(desired.wall);
  const Attempt attempt = patch("condition", true, kStrategicMerge,
                                conditionPatch(options_.condition_type, state).dump());
  if (attempt != Attempt::kOk) return attempt;
  condition_applied_ = desired.high;
  transition_ = state.transition;
  condition_at_ = now;
  condition_gauge_.Set(desired.high ? 1 : 0);
  const std::lock_guard lock(mu_);
  status_.condition_status = desired.high;
  return Attempt::kOk;
}

PlacementFeed::Attempt PlacementFeed::applyTaint(bool on) {
  const auto applied = [&] {
    taint_applied_ = on;
    tainted_gauge_.Set(on ? 1 : 0);
    spdlog::info("placement: {} taint {}:{} on node {}{}", on ? "added" : "removed",
                 options_.taint_key, kTaintEffect, options_.node_name,
                 options_.dry_run ? " (dry run)" : "");
    const std::lock_guard lock(mu_);
    status_.tainted = on;
  };
  if (options_.dry_run) {
    // No GET in dry run, so the other taints are unknown: the log shows ours being added to, or
    // removed from, whatever the node has.
    const json would = taintPatch(taintsWith(json::array(), options_.taint_key, on), "<from GET>");
    spdlog::info(
        "placement dry run: would GET {}, then PATCH {} ({}) with our taint {}, every "
        "other taint kept: {}",
        node_path_, node_path_, kMergePatch, on ? "added" : "removed", would.dump());
    applied();
    return Attempt::kOk;
  }
  for (int attempt = 0; attempt < options_.max_conflict_retries; ++attempt) {
    if (stopping_.load()) return Attempt::kStopped;
    const NodeApiResponse got = client_->getNode();
    count("get", got);
    if (!got.ok()) return failed("get", got);
    const json node = json::parse(got.body, nullptr, false);
    const json* meta = node.is_object() && node.contains("metadata") ? &node["metadata"] : nullptr;
    if (meta == nullptr || !meta->is_object() || !meta->contains("resourceVersion") ||
        !(*meta)["resourceVersion"].is_string()) {
      reportError("apiserver_bad_json", "get: the node has no metadata.resourceVersion");
      return Attempt::kFailed;
    }
    json taints = json::array();
    if (const auto spec = node.find("spec"); spec != node.end() && spec->is_object()) {
      if (const auto t = spec->find("taints"); t != spec->end() && t->is_array()) taints = *t;
    }
    if (hasTaint(taints, options_.taint_key) == on) {  // already so (another replica, by hand)
      applied();
      return Attempt::kOk;
    }
    const std::string body = taintPatch(taintsWith(taints, options_.taint_key, on),
                                        (*meta)["resourceVersion"].get_ref<const std::string&>())
                                 .dump();
    const NodeApiResponse response = client_->patchNode(false, kMergePatch, body);
    count("taint", response);
    if (response.ok()) {
      applied();
      return Attempt::kOk;
    }
    if (response.status != 409) return failed("taint", response);
    // Changed since the GET: read it again and redo the change on what is there now.
  }
  reportError("apiserver_conflict", "taint: the node changed under every one of " +
                                        std::to_string(options_.max_conflict_retries) +
                                        " read-modify-write attempts (409 Conflict)");
  return Attempt::kFailed;
}

PlacementFeed::Attempt PlacementFeed::applyAnnotation(const Desired& desired) {
  const auto now = Clock::now();
  if (annotation_at_ && annotation_tainted_ == taint_applied_ &&
      now - *annotation_at_ < options_.refresh_interval &&
      !materiallyChanged(annotation_signals_, desired.signals)) {
    return Attempt::kOk;
  }
  const std::string value = annotationValue(desired.signals, taint_applied_, desired.wall);
  const Attempt attempt = patch("annotation", false, kMergePatch,
                                annotationPatch(options_.annotation_key, value).dump());
  if (attempt != Attempt::kOk) return attempt;
  annotation_at_ = now;
  annotation_signals_ = desired.signals;
  annotation_tainted_ = taint_applied_;
  return Attempt::kOk;
}

PlacementFeed::Attempt PlacementFeed::patch(std::string_view operation, bool status_subresource,
                                            std::string_view content_type,
                                            const std::string& body) {
  if (options_.dry_run) {
    spdlog::info("placement dry run: would PATCH {}{} ({}): {}", node_path_,
                 status_subresource ? "/status" : "", content_type, body);
    return Attempt::kOk;
  }
  const NodeApiResponse response = client_->patchNode(status_subresource, content_type, body);
  count(operation, response);
  if (!response.ok()) return failed(operation, response);
  return Attempt::kOk;
}

void PlacementFeed::count(std::string_view operation, const NodeApiResponse& response) {
  if (response.cancelled) return;  // shutting down: no request was answered
  requests_
      .Add({{"operation", std::string(operation)},
            {"code", response.status != 0 ? std::to_string(response.status) : "error"}})
      .Increment();
}

PlacementFeed::Attempt PlacementFeed::failed(std::string_view operation,
                                             const NodeApiResponse& response) {
  if (response.cancelled || stopping_.load()) return Attempt::kStopped;
  const std::string detail = describe(operation, response);
  if (response.status == 403) {
    {
      const std::lock_guard lock(mu_);
      status_.last_error = detail;
    }
    if (forbidden_logged_) {
      errors_.countOnly(kComponent, "apiserver_forbidden");
    } else {
      forbidden_logged_ = true;
      errors_.report(kComponent, "apiserver_forbidden", detail + " (" + kRbac + ")");
    }
    return Attempt::kForbidden;
  }
  if (response.status == 401) {
    reportError("apiserver_unauthorized",
                detail + " (the bearer token was refused: expired, or the wrong file)");
  } else if (response.status != 0) {
    reportError("apiserver_http_error", detail);
  } else {
    reportError("apiserver_connect", detail);
  }
  return Attempt::kFailed;
}

void PlacementFeed::reportError(std::string_view reason, const std::string& detail) {
  {
    const std::lock_guard lock(mu_);
    status_.last_error = detail;
  }
  errors_.report(kComponent, reason, detail);
}

void PlacementFeed::succeeded() {
  const std::lock_guard lock(mu_);
  status_.last_error.clear();
}

}  // namespace nodewarden::kube
