// The owner chain's rules (see owner_chain.h); the CronJob lookup itself is cronjob_lookup's.
#include "collectors/pods/owner_chain.h"

#include <charconv>

namespace nodewarden::pods {
namespace {

// 2015-01-01T00:00:00Z and 2100-01-01T00:00:00Z in minutes since the Unix epoch: CronJobs did not
// exist before the first bound, and a Job's suffix beyond the second is no scheduled time.
constexpr std::uint64_t kFirstPlausibleMinute = 1'420'070'400 / 60;
constexpr std::uint64_t kLastPlausibleMinute = 4'102'444'800 / 60;

const std::string* label(const PodIdentity& id, const char* key) {
  const auto it = id.labels.find(key);
  return it == id.labels.end() ? nullptr : &it->second;
}

void setWorkload(PodIdentity& id, std::string_view kind, std::string_view name) {
  id.workload_kind = std::string(kind);
  id.workload_name = std::string(name);
}

}  // namespace

std::optional<std::string_view> deploymentOfReplicaSet(std::string_view replicaset,
                                                       std::string_view pod_template_hash) {
  if (pod_template_hash.empty() || replicaset.size() < pod_template_hash.size() + 2) {
    return std::nullopt;
  }
  const std::size_t dash = replicaset.size() - pod_template_hash.size() - 1;
  if (replicaset[dash] != '-' || replicaset.substr(dash + 1) != pod_template_hash) {
    return std::nullopt;
  }
  return replicaset.substr(0, dash);
}

std::optional<std::string_view> cronJobByJobName(std::string_view job) {
  const auto dash = job.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  const std::string_view digits = job.substr(dash + 1);
  if (digits.empty() || digits.front() == '0') return std::nullopt;
  std::uint64_t minutes = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), minutes);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (minutes < kFirstPlausibleMinute || minutes > kLastPlausibleMinute) return std::nullopt;
  return job.substr(0, dash);
}

void resolveOwnerChain(PodIdentity& id, CronJobLookup* lookup) {
  // The labels the Job controller sets on its pods name the Job even when the owner is missing.
  id.job = jobOfPod(id.owner_kind, id.owner_name, label(id, "job-name"),
                    label(id, "batch.kubernetes.io/job-name"));
  id.cronjob.clear();
  id.workload_kind.clear();
  id.workload_name.clear();
  if (id.owner_kind.empty() || id.owner_name.empty()) return;

  if (id.owner_kind == "ReplicaSet") {
    const std::string* hash = label(id, "pod-template-hash");
    if (const auto deployment =
            deploymentOfReplicaSet(id.owner_name, hash != nullptr ? *hash : std::string_view())) {
      setWorkload(id, "Deployment", *deployment);
      return;
    }
    setWorkload(id, id.owner_kind, id.owner_name);
    return;
  }
  if (id.owner_kind != "Job") {
    setWorkload(id, id.owner_kind, id.owner_name);
    return;
  }

  CronJobAnswer answer;  // kUnavailable: the naming rule
  if (lookup != nullptr) answer = lookup->cronJobOf(id.namespace_name, id.owner_name);
  switch (answer.state) {
    case CronJobAnswer::State::kPending:
      return;  // not known yet: cronjob and workload stay empty
    case CronJobAnswer::State::kCronJob:
      id.cronjob = std::move(answer.name);
      break;
    case CronJobAnswer::State::kNone:
      break;
    case CronJobAnswer::State::kUnavailable:
      if (const auto cronjob = cronJobByJobName(id.owner_name)) id.cronjob = std::string(*cronjob);
      break;
  }
  if (id.cronjob.empty()) {
    setWorkload(id, "Job", id.owner_name);
  } else {
    id.workload_kind = "CronJob";
    id.workload_name = id.cronjob;
  }
}

}  // namespace nodewarden::pods
