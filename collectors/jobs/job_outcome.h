// JobOutcome: how one Job pod on this node ended, decided once from the two witnesses the node
// has: the pod's status (the kubelet's /pods or the API server: phase, reasons, exit codes, times)
// and the pod's own cgroups (CPU seconds used, peak memory, and the kernel's oom_kill counter).
//
// What a reader gets wrong:
//  - An OOM kill is the kernel's fact, not the status's: the status may say "Error" with exit 137,
//    arrive late, or never arrive (the pod deleted first). A rise of the cgroup's oom_kill counter
//    makes a failed pod's reason OOMKilled whatever the status says, and decides the outcome when
//    there is no status at all. A pod-level reason (Evicted, DeadlineExceeded) still wins: the
//    kill was then a consequence, not the cause.
//  - A pod that succeeded can have an OOM kill too (a worker process killed and retried): it stays
//    succeeded, with oom_kills saying what happened.
//  - Exit code 137 without an OOM kill is a SIGKILL from someone else (a deadline, a preemption, a
//    user): it is reported as the status says, never guessed to be OOM.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/pods/pod.h"

namespace nodewarden::jobs {

using Timestamp = pods::Timestamp;

// A container's end as either source reports it (state.terminated, else lastState.terminated).
struct ContainerEnd {
  std::string name;
  bool init = false;
  int restart_count = 0;
  bool terminated = false;
  int exit_code = 0;
  int signal = 0;       // as reported, else exit_code - 128 for 129..192
  std::string reason;   // Completed, Error, OOMKilled, StartError, ContainerCannotRun, ...
  std::string waiting;  // state.waiting.reason when not terminated (kubelet source only)
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;
};

// What both metadata sources say of a pod, in one shape.
struct PodStatus {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::string job;     // the Job the pod belongs to (owner or job-name labels); empty: not a Job's
  std::string phase;   // Pending, Running, Succeeded, Failed, Unknown (any other text: Unknown)
  std::string reason;  // status.reason: Evicted, DeadlineExceeded, ...
  std::optional<Timestamp> start_time;
  std::vector<ContainerEnd> containers;  // init containers first
};

// The same for a pod from either source: both decode into the one model (pods::PodInfo).
[[nodiscard]] PodStatus fromPod(const pods::PodInfo& pod);

// Phase Succeeded or Failed: the pod has ended and will not run again.
[[nodiscard]] bool isTerminal(const PodStatus& status);

// The pod's cgroup readings, the latest taken before the cgroups were removed.
struct CgroupEvidence {
  bool seen = false;  // any reading at all
  std::optional<std::uint64_t> cpu_ns;
  std::optional<std::uint64_t> peak_memory_bytes;
  std::optional<std::uint64_t> memory_limit_bytes;
  std::uint64_t oom_kills = 0;
};

enum class Outcome : std::uint8_t { kSucceeded, kFailed, kUnknown };
[[nodiscard]] std::string_view outcomeName(Outcome outcome);  // succeeded, failed, unknown

struct JobOutcome {
  std::string pod_uid;
  std::string namespace_name;
  std::string job;
  std::string cronjob;
  std::string pod;
  std::string container;  // the container that decided the outcome; empty when none did
  Outcome outcome = Outcome::kUnknown;
  std::string reason;
  std::optional<int> exit_code;
  int signal = 0;
  int restarts = 0;  // of all containers
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;
  std::optional<double> duration_seconds;
  std::optional<double> cpu_seconds;
  std::optional<std::uint64_t> peak_memory_bytes;
  std::optional<std::uint64_t> memory_limit_bytes;
  std::uint64_t oom_kills = 0;  // from the cgroup's counter
  // Which witnesses decided: "status", "cgroup" or "status+cgroup".
  std::string evidence;
  std::int64_t recorded_at_ms = 0;  // wall clock
  bool operator==(const JobOutcome&) const = default;
};

// Labels and reasons are free text from outside: longer ones are cut to this many bytes.
inline constexpr std::size_t kMaxReasonBytes = 64;

// Decides the outcome. status: the latest status seen (nullptr when none ever was); it need not be
// terminal (a pod deleted while Running). fallback_end: when the end was observed here (the
// cgroup's removal), for a status without finish times.
[[nodiscard]] JobOutcome decide(const PodStatus* status, const CgroupEvidence& cgroup,
                                std::string_view pod_uid, std::string_view cronjob,
                                std::optional<Timestamp> fallback_end,
                                std::optional<Timestamp> first_seen);

// One JSON object (no newline); absent values are null.
[[nodiscard]] std::string toJson(const JobOutcome& outcome);
// Parses what toJson() wrote; nullopt for anything else.
[[nodiscard]] std::optional<JobOutcome> fromJson(std::string_view json);

}  // namespace nodewarden::jobs
