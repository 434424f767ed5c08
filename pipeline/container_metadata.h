// ContainerMetadata: names for the runtime container ids and pod uids the collectors find, from
// whatever source the agent wires in (the runtime's state on the node today; the kubelet and the
// API server in the metadata issue). Collectors ask; they never know the source.
//
// What a reader gets wrong: a lookup can miss for a container that exists (its state file not yet
// written, a source that is down). The caller then keeps what it knew and asks again later;
// nothing is guessed.
#pragma once

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
};

}  // namespace nodewarden
