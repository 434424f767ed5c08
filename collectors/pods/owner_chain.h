// Owner chain: from a pod's controlling owner to the workload at the top of its chain, filled into
// PodIdentity (job, cronjob, workload_kind, workload_name) by the kubelet and API-server sources.
// It follows how Kubernetes' own controllers name and own what they make:
//  - a Deployment names its ReplicaSets "<deployment>-<pod-template-hash>" and labels their pods
//    pod-template-hash=<hash> (pkg/controller/deployment sync.go, getNewReplicaSet);
//  - a CronJob is the controlling owner of its Jobs, which it names "<cronjob>-<scheduled time in
//    minutes since the Unix epoch>" (pkg/controller/cronjob utils.go, getJobName);
//  - a StatefulSet, DaemonSet, Job without a CronJob, ReplicationController, Node (static pods'
//    mirrors) or any other controller is itself the workload.
//
// What a reader gets wrong: the CronJob step is the only one the pod alone cannot answer, because
// the Job's owner is not in the pod. The API server is asked (CronJobLookup, which answers from a
// cache and never waits); while the question is out the pod's cronjob and workload are left empty,
// "not known yet", and are not the Job. The naming rule is only the fallback for when the API
// cannot tell (no API server source, a failed or forbidden request, a Job already deleted); a Job
// someone named "<x>-<8 digits>" by hand, with digits that read as a time between 2015 and 2100,
// is then taken for a CronJob's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pipeline/container_metadata.h"

namespace nodewarden::pods {

// What is known about the CronJob that controls a Job.
struct CronJobAnswer {
  enum class State : std::uint8_t {
    kPending,      // asked, not answered yet: unknown for now
    kCronJob,      // the Job's controlling owner is the CronJob `name`
    kNone,         // the Job exists and no CronJob controls it
    kUnavailable,  // the API cannot tell (unreachable, forbidden, the Job is gone): naming rule
  };
  State state = State::kUnavailable;
  std::string name;
  bool operator==(const CronJobAnswer&) const = default;
};

// Where the CronJob of a Job is asked. Thread-safe; cronJobOf never waits for the network.
class CronJobLookup {
 public:
  virtual ~CronJobLookup() = default;
  [[nodiscard]] virtual CronJobAnswer cronJobOf(std::string_view namespace_name,
                                                std::string_view job) = 0;
};

// The Deployment that made the ReplicaSet: its name without "-<pod_template_hash>", when it ends so
// (and something is left); nullopt otherwise (a ReplicaSet made by hand or by another controller).
[[nodiscard]] std::optional<std::string_view> deploymentOfReplicaSet(
    std::string_view replicaset, std::string_view pod_template_hash);

// The CronJob whose controller would have named a Job so: the name without "-<minutes>" when
// <minutes> is a decimal number without a leading zero that is a time from 2015-01-01 to
// 2100-01-01 in minutes since the epoch; nullopt otherwise (so "job-42" is no CronJob's).
[[nodiscard]] std::optional<std::string_view> cronJobByJobName(std::string_view job);

// Fills id.job, id.cronjob, id.workload_kind and id.workload_name from id.namespace_name,
// id.owner_kind, id.owner_name and id.labels. lookup: where to ask for a Job's CronJob; null when
// there is no API server source (the naming rule then answers).
void resolveOwnerChain(PodIdentity& id, CronJobLookup* lookup);

}  // namespace nodewarden::pods
