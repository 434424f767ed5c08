// JobTracker: follows this node's Job pods from their first status to their end and records each
// end once (JobOutcome), with the pod's final cgroup readings.
//
// The agent feeds it, on one thread: the statuses of Job pods (observeStatus, from the kubelet or
// the API server), the readings of their cgroups (observeCgroup: every collection cycle, and in
// between for the pods wants() names, so the last reading before the cgroups are removed is at
// most one short tick old), and endCycle() after a full collection (a tracked pod whose cgroup
// was not found is gone). settle() then decides:
//  - a terminal status (Succeeded/Failed) is recorded at once, with the latest readings; if the
//    pod's cgroup was never read (a pod shorter than a cycle) it waits up to cgroup_wait for the
//    next collection to find it first;
//  - a pod whose cgroups are gone without a terminal status waits up to status_wait for one, then
//    is recorded from the cgroup alone (OOMKilled when the kernel's oom_kill counter rose, else
//    outcome unknown): an OOM kill is caught even when the status is late or never comes.
//
// What a reader gets wrong: "once" holds across restarts. Recorded pod uids (and the recent
// outcomes that /jobs serves) are kept in state_file, so a restarted agent that sees a Completed
// pod still listed by the kubelet does not count it twice, while a pod that ended while the agent
// was down is still recorded (from its status). An outcome's event for the log path is pending
// until the log path says it is durable (eventDurable), and pending again after a restart.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/jobs/job_outcome.h"
#include "pipeline/self_metrics.h"
#include "pipeline/snapshot.h"

namespace nodewarden::jobs {

// Also the config's collectors.jobs.* section (agent/config.h): status_wait, retention and
// max_recent are keys; the agent sets cgroup_wait, state_file and cronjob_of on top.
struct JobTrackerOptions {
  using Clock = std::chrono::steady_clock;
  // After a pod's cgroups are gone, how long a terminal status is waited for.
  std::chrono::milliseconds status_wait{30'000};
  // After a terminal status, how long a pod whose cgroup was never read waits for a collection to
  // find it (the agent sets about two collection intervals).
  std::chrono::milliseconds cgroup_wait{30'000};
  // How long recorded outcomes are kept (for /jobs and against counting a pod twice).
  std::chrono::milliseconds retention{std::chrono::hours(6)};
  int max_recent = 1000;             // outcomes kept at most, newest kept (at least 1)
  std::filesystem::path state_file;  // empty: nothing survives a restart
  // Asked at the decision for a pod whose CronJob was not known from observeStatus() (the
  // API server's answer about the Job's owner may come after the pod's last status change).
  std::function<std::string(std::string_view pod_uid)> cronjob_of;
  std::function<Clock::time_point()> now;                       // empty: Clock::now
  std::function<std::chrono::system_clock::time_point()> wall;  // empty: system_clock::now
};

class JobTracker {
 public:
  using Clock = JobTrackerOptions::Clock;
  JobTracker(JobTrackerOptions options, ErrorReporter& errors);

  // A Job pod's latest status; cronjob is the Job's CronJob when known. Pods without a job are
  // ignored, as are pods already recorded.
  void observeStatus(const PodStatus& status, std::string_view cronjob);
  // A reading of a tracked pod's cgroup, pod-level or a container's; gone: the cgroup vanished.
  void observeCgroup(const CgroupSample& sample, bool gone);
  // After a full collection cycle: tracked pods whose pod-level cgroup was read before and not
  // in this cycle are gone.
  void endCycle();
  // Whether the pod's cgroups are worth reading now (tracked and not decided yet).
  [[nodiscard]] bool wants(std::string_view pod_uid) const;
  // Decides the pods that ended; returns the outcomes recorded now (each pod once).
  std::vector<JobOutcome> settle();

  // Recorded outcomes within retention, oldest first.
  [[nodiscard]] const std::deque<JobOutcome>& recent() const { return recent_; }
  // Outcomes whose log event is not durable yet, oldest first (each listed until eventDurable).
  [[nodiscard]] std::vector<const JobOutcome*> pendingEvents() const;
  void eventDurable(std::string_view pod_uid);
  [[nodiscard]] std::size_t tracked() const { return pods_.size(); }

 private:
  struct PerContainer {
    std::uint64_t cpu_ns = 0;
    std::uint64_t oom_kills = 0;
    std::uint64_t peak = 0;
    std::uint64_t limit = 0;
    bool has_cpu = false;
    bool has_peak = false;
  };
  struct Tracked {
    std::optional<PodStatus> status;
    std::string cronjob;
    std::optional<Timestamp> first_seen;  // wall clock
    std::optional<Clock::time_point> terminal_since;
    // Pod-level readings; containers' by id (a restarted container is a new id).
    PerContainer pod;
    bool pod_seen = false;
    bool seen_this_cycle = false;
    std::map<std::string, PerContainer, std::less<>> containers;
    std::optional<Clock::time_point> gone_at;
    std::optional<Timestamp> gone_wall;
    Clock::time_point last_touch{};
  };

  [[nodiscard]] Clock::time_point now() const;
  [[nodiscard]] Timestamp wallNow() const;
  [[nodiscard]] CgroupEvidence evidence(const Tracked& t) const;
  void record(JobOutcome outcome);
  void prune();
  void load();
  void save();

  JobTrackerOptions options_;
  ErrorReporter& errors_;
  std::map<std::string, Tracked, std::less<>> pods_;
  std::deque<JobOutcome> recent_;
  std::set<std::string, std::less<>> recorded_;  // uids of recent_
  std::set<std::string, std::less<>> pending_events_;
  bool dirty_ = false;
};

}  // namespace nodewarden::jobs
