#include "collectors/jobs/job_outcome.h"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

namespace nodewarden::jobs {
namespace {

using json = nlohmann::json;

std::string cut(std::string_view s) { return std::string(s.substr(0, kMaxReasonBytes)); }

void fromState(const pods::ContainerState& s, ContainerEnd& c) {
  c.terminated = true;
  c.exit_code = s.exit_code;
  c.signal = s.signal;
  c.reason = cut(s.reason);
  c.started_at = s.started_at;
  c.finished_at = s.finished_at;
}

std::string jobOf(std::string_view owner_kind, std::string_view owner_name,
                  const std::map<std::string, std::string>& labels) {
  const auto label = [&](const char* k) {
    const auto it = labels.find(k);
    return it == labels.end() ? nullptr : &it->second;
  };
  return jobOfPod(owner_kind, owner_name, label("job-name"), label("batch.kubernetes.io/job-name"));
}

// The container whose end explains the pod's: a failed init container (the app never ran), else
// the first app container that failed, else the first app container that ended.
const ContainerEnd* decisive(const PodStatus& s, bool failed) {
  if (failed) {
    for (const auto& c : s.containers) {
      if (c.init && c.terminated && c.exit_code != 0) return &c;
    }
    for (const auto& c : s.containers) {
      if (!c.init && c.terminated && (c.exit_code != 0 || c.reason == "OOMKilled")) return &c;
    }
    for (const auto& c : s.containers) {
      if (!c.init && !c.terminated && !c.waiting.empty()) return &c;
    }
  }
  for (const auto& c : s.containers) {
    if (!c.init && c.terminated) return &c;
  }
  return nullptr;
}

template <typename T>
json orNull(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// RFC 3339 in UTC, as the API server writes times.
json timeOrNull(const std::optional<Timestamp>& t) {
  if (!t) return nullptr;
  const std::time_t secs = static_cast<std::time_t>(t->time_since_epoch().count());
  std::tm tm{};
  if (::gmtime_r(&secs, &tm) == nullptr) return nullptr;
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

}  // namespace

PodStatus fromPod(const pods::PodInfo& pod) {
  PodStatus s;
  s.uid = pod.uid;
  s.namespace_name = pod.namespace_name;
  s.name = pod.name;
  s.job = jobOf(pod.owner.kind, pod.owner.name, pod.labels);
  s.phase = std::string(pods::podPhaseName(pod.phase));
  s.reason = cut(pod.reason);
  s.start_time = pod.start_time;
  for (const auto* list : {&pod.init_containers, &pod.containers}) {
    for (const auto& cs : *list) {
      ContainerEnd c;
      c.name = cs.name;
      c.init = list == &pod.init_containers;
      c.restart_count = cs.restart_count;
      if (cs.state.kind == pods::ContainerStateKind::kTerminated) {
        fromState(cs.state, c);
      } else {
        if (cs.state.kind == pods::ContainerStateKind::kWaiting) c.waiting = cut(cs.state.reason);
        if (cs.last_state.kind == pods::ContainerStateKind::kTerminated) {
          fromState(cs.last_state, c);
        }
      }
      s.containers.push_back(std::move(c));
    }
  }
  return s;
}

bool isTerminal(const PodStatus& status) {
  return status.phase == "Succeeded" || status.phase == "Failed";
}

std::string_view outcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSucceeded:
      return "succeeded";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kUnknown:
      break;
  }
  return "unknown";
}

JobOutcome decide(const PodStatus* status, const CgroupEvidence& cgroup, std::string_view pod_uid,
                  std::string_view cronjob, std::optional<Timestamp> fallback_end,
                  std::optional<Timestamp> first_seen) {
  JobOutcome o;
  o.pod_uid = std::string(pod_uid);
  o.cronjob = std::string(cronjob);
  o.oom_kills = cgroup.oom_kills;
  if (cgroup.cpu_ns) o.cpu_seconds = static_cast<double>(*cgroup.cpu_ns) / 1e9;
  o.peak_memory_bytes = cgroup.peak_memory_bytes;
  o.memory_limit_bytes = cgroup.memory_limit_bytes;
  const bool terminal = status != nullptr && isTerminal(*status);
  if (status != nullptr) {
    o.namespace_name = status->namespace_name;
    o.pod = status->name;
    o.job = status->job;
    o.started_at = status->start_time;
    for (const auto& c : status->containers) {
      o.restarts += c.restart_count;
      if (!o.started_at && c.started_at) o.started_at = c.started_at;
      // Without a terminal status, a finish is an init container's or an earlier run's, not
      // the pod's end: that is when the cgroups went away.
      if (terminal && c.finished_at && (!o.finished_at || *c.finished_at > *o.finished_at)) {
        o.finished_at = c.finished_at;
      }
    }
  }
  if (!o.started_at) o.started_at = first_seen;
  if (!o.finished_at) o.finished_at = fallback_end;
  if (o.started_at && o.finished_at && *o.finished_at >= *o.started_at) {
    o.duration_seconds = std::chrono::duration<double>(*o.finished_at - *o.started_at).count();
  }

  if (terminal) {
    const bool failed = status->phase == "Failed";
    o.outcome = failed ? Outcome::kFailed : Outcome::kSucceeded;
    const ContainerEnd* c = decisive(*status, failed);
    if (c != nullptr) {
      o.container = c->name;
      if (c->terminated) {
        o.exit_code = c->exit_code;
        o.signal = c->signal;
        o.reason = c->reason;
      } else {
        o.reason = c->waiting;
      }
    }
    if (!status->reason.empty()) o.reason = status->reason;
    if (failed && cgroup.oom_kills > 0 && status->reason.empty()) o.reason = "OOMKilled";
    if (o.reason.empty()) o.reason = failed ? "Error" : "Completed";
  } else if (cgroup.oom_kills > 0) {
    // No final status (late, or the pod deleted first): the kernel's counter says what happened.
    o.outcome = Outcome::kFailed;
    o.reason = "OOMKilled";
    if (status != nullptr) {
      if (const ContainerEnd* c = decisive(*status, true); c != nullptr && c->terminated) {
        o.container = c->name;
        o.exit_code = c->exit_code;
        o.signal = c->signal;
      }
    }
  } else {
    o.outcome = Outcome::kUnknown;
    o.reason = "Unknown";
  }
  if (status != nullptr && cgroup.seen) {
    o.evidence = "status+cgroup";
  } else {
    o.evidence = status != nullptr ? "status" : "cgroup";
  }
  return o;
}

std::string toJson(const JobOutcome& o) {
  json j = {
      {"pod_uid", o.pod_uid},
      {"namespace", o.namespace_name},
      {"job", o.job},
      {"cronjob", o.cronjob},
      {"pod", o.pod},
      {"container", o.container},
      {"outcome", outcomeName(o.outcome)},
      {"reason", o.reason},
      {"exit_code", orNull(o.exit_code)},
      {"signal", o.signal},
      {"restarts", o.restarts},
      {"started_at", timeOrNull(o.started_at)},
      {"finished_at", timeOrNull(o.finished_at)},
      {"duration_seconds", orNull(o.duration_seconds)},
      {"cpu_seconds", orNull(o.cpu_seconds)},
      {"peak_memory_bytes", orNull(o.peak_memory_bytes)},
      {"memory_limit_bytes", orNull(o.memory_limit_bytes)},
      {"oom_kills", o.oom_kills},
      {"evidence", o.evidence},
      {"recorded_at_ms", o.recorded_at_ms},
  };
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<JobOutcome> fromJson(std::string_view text) {
  const json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  JobOutcome o;
  bool ok = true;
  const auto str = [&](const char* k, std::string& out) {
    const auto it = j.find(k);
    if (it == j.end() || !it->is_string()) {
      ok = false;
      return;
    }
    out = it->get<std::string>();
  };
  const auto number = [&]<typename T>(const char* k, std::optional<T>& out) {
    const auto it = j.find(k);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_number()) {
      ok = false;
      return;
    }
    out = it->get<T>();
  };
  const auto time = [&](const char* k, std::optional<Timestamp>& out) {
    const auto it = j.find(k);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_string()) {
      ok = false;
      return;
    }
    out = pods::parseRfc3339(it->get<std::string>());
    if (!out) ok = false;
  };
  str("pod_uid", o.pod_uid);
  str("namespace", o.namespace_name);
  str("job", o.job);
  str("cronjob", o.cronjob);
  str("pod", o.pod);
  str("container", o.container);
  std::string outcome;
  str("outcome", outcome);
  o.outcome = outcome == "succeeded" ? Outcome::kSucceeded
              : outcome == "failed"  ? Outcome::kFailed
                                     : Outcome::kUnknown;
  str("reason", o.reason);
  str("evidence", o.evidence);
  number("exit_code", o.exit_code);
  std::optional<int> signal, restarts;
  number("signal", signal);
  number("restarts", restarts);
  o.signal = signal.value_or(0);
  o.restarts = restarts.value_or(0);
  time("started_at", o.started_at);
  time("finished_at", o.finished_at);
  number("duration_seconds", o.duration_seconds);
  number("cpu_seconds", o.cpu_seconds);
  number("peak_memory_bytes", o.peak_memory_bytes);
  number("memory_limit_bytes", o.memory_limit_bytes);
  std::optional<std::uint64_t> ooms;
  number("oom_kills", ooms);
  o.oom_kills = ooms.value_or(0);
  std::optional<std::int64_t> at;
  number("recorded_at_ms", at);
  o.recorded_at_ms = at.value_or(0);
  if (!ok || o.pod_uid.empty()) return std::nullopt;
  return o;
}

}  // namespace nodewarden::jobs
