// libFuzzer target for the owner chain's parsers: parseJobOwner (a batch/v1 Job's JSON, as the
// API server's answer), the CronJob and Deployment naming rules, and the pod label key check and
// sanitizer. Seeds are tests/fixtures/apiserver (Pod JSON, close enough to a Job's to start from).
//
// What a reader gets wrong: this checks more than "no crash". What each function returns must be
// what its callers rely on: a CronJob answer has a name and "none" has none, a name taken from a
// Job or ReplicaSet is a proper prefix of it cut at a '-', and a sanitized label name is always a
// valid Prometheus and Loki label name; anything else traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "collectors/pods/cronjob_lookup.h"
#include "collectors/pods/owner_chain.h"
#include "pipeline/pod_labels.h"

namespace {

void check(bool invariant) {
  if (!invariant) {
    __builtin_trap();
  }
}

bool isLabelName(std::string_view s) {
  if (s.empty() || (s.front() >= '0' && s.front() <= '9')) return false;
  for (const char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

// prefix is text cut just before a '-' (and something follows it).
bool isPrefixAtDash(std::string_view text, std::string_view prefix) {
  return !prefix.empty() && prefix.size() + 1 < text.size() && text.starts_with(prefix) &&
         text[prefix.size()] == '-';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using nodewarden::pods::CronJobAnswer;

  if (const auto answer = nodewarden::pods::parseJobOwner(text)) {
    check(answer->state == CronJobAnswer::State::kCronJob ||
          answer->state == CronJobAnswer::State::kNone);
    check((answer->state == CronJobAnswer::State::kCronJob) == !answer->name.empty());
  }

  if (const auto cronjob = nodewarden::pods::cronJobByJobName(text)) {
    check(isPrefixAtDash(text, *cronjob));
    const std::string_view minutes = text.substr(cronjob->size() + 1);
    check(minutes.size() == 8 && minutes.front() != '0');
  }
  // The input split in two: a ReplicaSet name and a pod-template-hash.
  const std::string_view replicaset = text.substr(0, size / 2);
  const std::string_view hash = text.substr(size / 2);
  if (const auto deployment = nodewarden::pods::deploymentOfReplicaSet(replicaset, hash)) {
    check(isPrefixAtDash(replicaset, *deployment));
    check(replicaset.ends_with(hash) && !hash.empty());
  }

  if (nodewarden::checkPodLabelKey(text)) {
    check(!text.empty() && text.size() <= 253 + 1 + 63);
  }
  check(isLabelName(nodewarden::sanitizeLabelName(text)));
  const std::string metric = nodewarden::podLabelMetricName(text);
  check(metric.starts_with("label_") && isLabelName(metric));
  return 0;
}
