// ContainerMetadata: names for the runtime container ids and pod uids the collectors find, from
// whatever source the agent wires in (the runtime's state on the node today; the kubelet and the
// API server in the metadata issue). Collectors ask; they never know the source.
//
// What a reader gets wrong: a lookup can miss for a container that exists (its state file not yet
// written, a source that is down, a pod started after the kubelet's last listing). The caller
// then keeps what it knew and asks again when generation() moves; nothing is guessed.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace nodewarden {

struct ContainerIdentity {
  std::string pod_uid;
  std::string namespace_name;
  std::string pod_name;
  std::string container_name;  // empty for a pod's sandbox ("pause") container
  std::string image;
  bool is_sandbox = false;
};

struct PodIdentity {
  std::string namespace_name;
  std::string pod_name;
  // The Job the pod belongs to (its controlling owner is a Job, or it carries the job-name /
  // batch.kubernetes.io/job-name label); empty otherwise or when the source cannot tell.
  std::string job;
  // The CronJob that owns that Job (the Job's own owner, read from the API server when it is a
  // source, else recognised by the CronJob controller's "<cronjob>-<minutes>" naming); empty
  // otherwise.
  std::string cronjob;
  // The controlling owner as the pod lists it (ReplicaSet, Job, StatefulSet, DaemonSet, Node ...)
  // and the workload at the top of its chain (Deployment through its ReplicaSet, CronJob through
  // its Job, else the owner itself); empty when the source cannot tell.
  std::string owner_kind;
  std::string owner_name;
  std::string workload_kind;
  std::string workload_name;
  std::string qos_class;  // Guaranteed, Burstable, BestEffort; empty when unknown
  // All of the pod's labels as the source has them; what is exported is allow-listed by the user.
  std::map<std::string, std::string> labels;
};

// The Job name of a pod from its controlling owner and labels, as the metadata sources see them.
std::string jobOfPod(std::string_view owner_kind, std::string_view owner_name,
                     const std::string* job_name_label, const std::string* batch_job_name_label);

class ContainerMetadata {
 public:
  virtual ~ContainerMetadata() = default;
  // Brings the source up to date; cheap when nothing changed. Called at most once per cycle.
  virtual void refresh() = 0;
  [[nodiscard]] virtual std::optional<ContainerIdentity> container(std::string_view id) const = 0;
  [[nodiscard]] virtual std::optional<PodIdentity> pod(std::string_view uid) const = 0;
  // Whether the source has had its first answer (a listing done, or failed): until then a miss
  // means "not asked yet" rather than "unknown".
  [[nodiscard]] virtual bool synced() const { return true; }
  // A number that moves whenever the source may answer something it did not answer before (a
  // list or watch event taken in, a new state file read). A caller holding cgroups it could not
  // name asks again when it moved, and only then. It only grows; a source that cannot tell keeps
  // 0 (its callers then ask again on their own schedule). Same thread as refresh().
  [[nodiscard]] virtual std::uint64_t generation() const { return 0; }
  // A cgroup of a pod the source does not know has just appeared: bring the source up to date
  // soon rather than at its next scheduled refresh (the kubelet source fetches at once, at most
  // once a second). Never waits; what is learnt is taken in by a later refresh(), which moves
  // generation(). Same thread as refresh().
  virtual void requestRefresh() {}
  // Whether the source can tell containers' images (the runtime's state only on a node where it
  // found the runtime's state directory; the kubelet and the API server always). A container
  // whose image no source can tell is not waited for (CgroupCollectorOptions::hold_unnamed).
  [[nodiscard]] virtual bool namesImages() const { return true; }
};

}  // namespace nodewarden
