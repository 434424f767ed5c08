#include "agent/job_outcomes.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

namespace nodewarden {
namespace {

// Whether a kubelet or API server pod is a Job's, before building its whole status.
bool isJobPod(std::string_view owner_kind, const std::map<std::string, std::string>& labels) {
  return owner_kind == "Job" || labels.contains("job-name") ||
         labels.contains("batch.kubernetes.io/job-name");
}

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

JobOutcomes::JobOutcomes(const Config& config, JobOutcomeSources sources, WorkloadSeries& series,
                         ErrorReporter& errors)
    : config_(config),
      sources_(sources),
      errors_(errors),
      tracker_(
          [&] {
            jobs::JobTrackerOptions o = config.jobs;  // status_wait, retention, max_recent
            // A pod shorter than a cycle: its cgroup gets two collections to be found.
            o.cgroup_wait = std::min(config.jobs.status_wait, 2 * config.interval);
            o.state_file = config.paths.state_dir / "jobs" / "outcomes.jsonl";
            o.cronjob_of = [metadata = sources.metadata](std::string_view uid) {
              if (metadata == nullptr) return std::string();
              auto p = metadata->pod(uid);
              return p ? p->cronjob : std::string();
            };
            return o;
          }(),
          errors),
      series_(series),
      metrics_(series.registry(), config.jobs.retention) {
  for (const auto& o : tracker_.recent()) metrics_.restore(o);
  // Even with nothing restored: the families' HELP and TYPE are on /metrics from the start.
  publishSeries();
  if (sources_.logs != nullptr) {
    sources_.logs->onEventDurable([this](std::string_view key) {
      tracker_.eventDurable(key);
      if (const auto it = in_flight_.find(key); it != in_flight_.end()) in_flight_.erase(it);
    });
  }
  if (sources_.kubelet == nullptr && sources_.apiserver == nullptr) {
    spdlog::warn(
        "job outcomes: no kubelet or API server source, so no pod statuses: Job pods cannot be "
        "recognised and no outcome will be recorded");
  }
  publish();
}

void JobOutcomes::observeStatuses() {
  const auto cronjobOf = [&](const std::string& uid) {
    if (sources_.metadata == nullptr) return std::string();
    auto p = sources_.metadata->pod(uid);
    return p ? p->cronjob : std::string();
  };
  // The kubelet first and the API server last: the watch is the fresher of the two. Each is read
  // only when it changed since the last poll (a new fetch, a new resourceVersion).
  if (sources_.kubelet != nullptr && sources_.kubelet->stats().fetches != kubelet_fetches_) {
    kubelet_fetches_ = sources_.kubelet->stats().fetches;
    for (const auto& p : sources_.kubelet->pods()) {
      if (!isJobPod(p.owner.kind, p.labels)) continue;
      tracker_.observeStatus(jobs::fromPod(p), cronjobOf(p.uid));
    }
  }
  if (sources_.apiserver != nullptr &&
      sources_.apiserver->resourceVersion() != apiserver_version_) {
    apiserver_version_ = sources_.apiserver->resourceVersion();
    for (const auto& p : sources_.apiserver->pods()) {
      if (!isJobPod(p.owner.kind, p.labels)) continue;
      tracker_.observeStatus(jobs::fromPod(p), cronjobOf(p.uid));
    }
  }
}

void JobOutcomes::consume(const Snapshot& snapshot) {
  if (tracker_.tracked() == 0) return;
  for (const CgroupSample* s : snapshot.cgroups) {
    if (tracker_.wants(s->pod_uid)) tracker_.observeCgroup(*s, false);
  }
  tracker_.endCycle();
}

void JobOutcomes::poll() {
  observeStatuses();
  if (sources_.cgroup != nullptr && tracker_.tracked() > 0) {
    sources_.cgroup->readPods(
        [this](std::string_view uid) { return tracker_.wants(uid); },
        [this](const CgroupSample& s, bool gone) { tracker_.observeCgroup(s, gone); });
  }
  const auto recorded = tracker_.settle();
  for (const auto& o : recorded) {
    metrics_.add(o);
    spdlog::info(
        "job outcome: {}/{} job={} cronjob={} outcome={} reason={} exit_code={} cpu_seconds={} "
        "peak_memory_bytes={} evidence={}",
        o.namespace_name, o.pod, o.job, o.cronjob, jobs::outcomeName(o.outcome), o.reason,
        o.exit_code ? std::to_string(*o.exit_code) : "-",
        o.cpu_seconds ? std::to_string(*o.cpu_seconds) : "-",
        o.peak_memory_bytes ? std::to_string(*o.peak_memory_bytes) : "-", o.evidence);
  }
  metrics_.age(wallMs());
  // Before /jobs: a reader that sees an outcome there finds its series on /metrics.
  if (metrics_.changes() != published_changes_) publishSeries();
  submitEvents();
  if (!recorded.empty() || published_->size() != tracker_.recent().size()) publish();
}

void JobOutcomes::submitEvents() {
  if (sources_.logs == nullptr) return;
  for (const jobs::JobOutcome* o : tracker_.pendingEvents()) {
    if (in_flight_.contains(o->pod_uid)) continue;
    Labels labels = {{"kind", "job_outcome"},
                     {"namespace", o->namespace_name},
                     {"node", config_.node_name},
                     {"source", "nodewarden"}};
    LogEntry entry;
    // The recorded time, kept across restarts: a re-sent event is the same entry, stored once.
    entry.timestamp_ns = o->recorded_at_ms * 1'000'000;
    entry.line = jobs::toJson(*o);
    if (!sources_.logs->submitEvent(labels, std::move(entry), o->pod_uid)) break;  // full: later
    in_flight_.insert(o->pod_uid);
  }
}

void JobOutcomes::publishSeries() {
  published_changes_ = metrics_.changes();
  series_.publish();
}

void JobOutcomes::publish() {
  auto list = std::make_shared<std::vector<jobs::JobOutcome>>(tracker_.recent().rbegin(),
                                                              tracker_.recent().rend());
  std::lock_guard lock(published_mu_);
  published_ = std::move(list);
}

HttpResponse JobOutcomes::jobsJson(const HttpRequest& request) const {
  std::shared_ptr<const std::vector<jobs::JobOutcome>> list;
  {
    std::lock_guard lock(published_mu_);
    list = published_;
  }
  const std::string ns = request.param("namespace");
  const std::string job = request.param("job");
  const std::string cronjob = request.param("cronjob");
  const std::string outcome = request.param("outcome");
  const std::string limit_text = request.param("limit");
  std::size_t limit = list->size();
  if (!limit_text.empty()) {
    std::size_t v = 0;
    const auto r = std::from_chars(limit_text.data(), limit_text.data() + limit_text.size(), v);
    if (r.ec != std::errc() || r.ptr != limit_text.data() + limit_text.size()) {
      return HttpResponse{400, "text/plain; charset=utf-8",
                          "limit must be a non-negative integer\n", false};
    }
    limit = v;
  }
  if (!outcome.empty() && outcome != "succeeded" && outcome != "failed" && outcome != "unknown") {
    return HttpResponse{400, "text/plain; charset=utf-8",
                        "outcome must be succeeded, failed or unknown\n", false};
  }
  std::string body = "{\"node\":" + nlohmann::json(config_.node_name).dump() + ",\"outcomes\":[";
  std::size_t n = 0;
  for (const auto& o : *list) {
    if (n >= limit) break;
    if ((!ns.empty() && o.namespace_name != ns) || (!job.empty() && o.job != job) ||
        (!cronjob.empty() && o.cronjob != cronjob) ||
        (!outcome.empty() && jobs::outcomeName(o.outcome) != outcome)) {
      continue;
    }
    if (n++ > 0) body += ',';
    body += jobs::toJson(o);
  }
  body += "]}\n";
  return HttpResponse{200, "application/json", std::move(body), true};
}

}  // namespace nodewarden
