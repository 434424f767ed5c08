// The agent's one Pod model (PodInfo: what nodewarden keeps of a core/v1 Pod) and its one decoder,
// used by the kubelet's /pods source (kubelet_pods.h), the API server's list and watch
// (apiserver_pods.h) and, through them, the Job outcomes (collectors/jobs). Fields read:
// metadata.{uid, name, namespace, resourceVersion, labels, ownerReferences}, spec.nodeName,
// status.{phase, reason, message, qosClass, startTime, initContainerStatuses, containerStatuses}
// (k8s.io/api/core/v1 types.go).
//
// What a reader gets wrong:
//  - The decoder never decides whether a pod with a bad field is kept: it fills what it can and
//    reports each field it had to leave empty in PodFieldProblems. The kubelet source keeps such a
//    pod and counts the fields (one odd label must not hide a node's pod); the API server source
//    rejects it, as a Pod the API server itself validated should never have one. Only a pod
//    without metadata.uid, .name or .namespace is unusable for both (PodRejection).
//  - The owner is the ownerReference with controller: true (metav1.GetControllerOf), for both
//    sources: another owner reference is a garbage-collection link, not the workload that runs
//    the pod. A CronJob is the Job's owner, not the pod's (owner_chain.h resolves it).
//  - The runtime rarely fills `signal` in a terminated state: an OOM kill is exit 137 without it.
//    ContainerState::signal is the reported one, else exit_code - 128 for 129..192 (the shell's
//    convention), else 0. A process may also exit(137) by itself; only the cgroup can tell.
//  - Times are metav1.Time, whole seconds (collectors/common/rfc3339.h parses them).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/container_metadata.h"

namespace nodewarden::pods {

// metav1.Time: RFC 3339 at second precision.
using Timestamp = std::chrono::sys_seconds;

enum class PodPhase : std::uint8_t { kUnknown, kPending, kRunning, kSucceeded, kFailed };
enum class QosClass : std::uint8_t { kUnknown, kGuaranteed, kBurstable, kBestEffort };
enum class ContainerStateKind : std::uint8_t { kUnknown, kWaiting, kRunning, kTerminated };

[[nodiscard]] std::string_view podPhaseName(PodPhase phase);  // "Running", ..., "Unknown"
[[nodiscard]] std::string_view qosClassName(QosClass qos);    // "Guaranteed", ..., "" when unknown

// One of v1.ContainerState's three members. reason and message: waiting and terminated only;
// exit_code, signal and finished_at: terminated only; started_at: running and terminated.
struct ContainerState {
  ContainerStateKind kind = ContainerStateKind::kUnknown;
  std::string reason;   // e.g. ContainerCreating, CrashLoopBackOff, Completed, Error, OOMKilled
  std::string message;  // as the runtime or kubelet wrote it, cut at kMaxMessageBytes
  int exit_code = 0;
  int signal = 0;  // see the header comment: derived from exit_code when not reported
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;

  static constexpr std::size_t kMaxMessageBytes = 1024;
  bool operator==(const ContainerState&) const = default;
};

struct ContainerStatus {
  std::string name;
  std::string container_id;  // without the "containerd://", "cri-o://", "docker://" scheme
  std::string image;
  int restart_count = 0;
  ContainerState state;
  ContainerState last_state;  // the previous run's end (terminated), kUnknown when none
  std::string runtime;        // the containerID's scheme: containerd, cri-o, docker; empty if none
  bool operator==(const ContainerStatus&) const = default;
};

// The owner reference with controller: true (Job, ReplicaSet, StatefulSet, DaemonSet, Node for
// static pods' mirrors ...); empty when the pod has none.
struct OwnerRef {
  std::string kind;
  std::string name;
  bool operator==(const OwnerRef&) const = default;
};

struct PodInfo {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::string resource_version;  // metadata.resourceVersion; the API server's, empty from /pods
  std::map<std::string, std::string> labels;
  QosClass qos_class = QosClass::kUnknown;
  PodPhase phase = PodPhase::kUnknown;
  std::string reason;   // status.reason: Evicted, DeadlineExceeded, NodeLost, ...
  std::string message;  // status.message, cut at ContainerState::kMaxMessageBytes
  std::string node_name;
  OwnerRef owner;
  std::optional<Timestamp> start_time;
  std::vector<ContainerStatus> init_containers;
  std::vector<ContainerStatus> containers;
  bool operator==(const PodInfo&) const = default;
};

// Why a field was left empty.
enum class PodFieldProblem : std::uint8_t {
  kBadValue,     // the wrong JSON type or form (a label that is a number, a time that is not one)
  kMissingName,  // a container status without a name: it is left out
};

// The fields a decoder left empty, over one pod or a whole list.
struct PodFieldProblems {
  std::size_t count = 0;
  std::string first;  // what the first one was, for the log
  PodFieldProblem first_kind = PodFieldProblem::kBadValue;
  void add(PodFieldProblem kind, std::string what);
};

// Why an item is not a usable pod at all.
struct PodRejection {
  enum class Kind : std::uint8_t {
    kNotObject,     // the item is not a JSON object
    kBadValue,      // metadata, or metadata.uid, .name or .namespace, of the wrong type
    kMissingField,  // no metadata, or no metadata.uid, .name or .namespace
  };
  Kind kind;
  std::string why;  // for the log
};

// One Pod object (a PodList's item, a watch event's object). Fields it cannot read are left
// empty and added to `problems`. Throws nothing.
[[nodiscard]] std::expected<PodInfo, PodRejection> decodePod(const nlohmann::json& item,
                                                             PodFieldProblems& problems);

// metav1.Time as RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), the fraction dropped; nullopt
// when it is not one. Any four-digit year.
[[nodiscard]] std::optional<Timestamp> parseRfc3339(std::string_view text);

// Strips a CRI container id's runtime scheme: "containerd://<id>" → "<id>".
[[nodiscard]] std::string_view stripContainerIdScheme(std::string_view id);

// The names the ContainerMetadata face answers for a pod, before its owner chain is resolved.
[[nodiscard]] PodIdentity podIdentity(const PodInfo& pod);
// The container with this runtime id, init containers included; nullptr when none.
[[nodiscard]] const ContainerStatus* findContainer(const PodInfo& pod, std::string_view id);

}  // namespace nodewarden::pods
