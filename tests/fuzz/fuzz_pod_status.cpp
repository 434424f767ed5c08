// libFuzzer target for the one Pod decoder (collectors/pods/pod.h) and the Job outcomes resting
// on it: the kubelet's PodList (parsePodList), one API server Pod (parseApiPod) and one watch line
// (parseWatchEvent), which all decode through decodePod, then everything they accept through
// fromPod, decide() and the outcome's JSON and
// back (fromJson, which also reads the agent's own state file). Seeds are tests/fixtures/kubelet
// and tests/fixtures/apiserver.
//
// What a reader gets wrong: this checks more than "no crash". A decided outcome always has a
// reason no longer than kMaxReasonBytes, an outcome name, and evidence; a terminal status never
// gives "unknown"; and whatever toJson() writes, fromJson() reads back to the same outcome when
// its times are years a state file can hold.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "collectors/jobs/job_outcome.h"
#include "collectors/pods/apiserver_pods.h"
#include "collectors/pods/kubelet_pods.h"

namespace {

using namespace nodewarden;

void check(bool invariant) {
  if (!invariant) {
    __builtin_trap();
  }
}

bool representable(const std::optional<jobs::Timestamp>& t) {
  using namespace std::chrono;
  if (!t) return true;
  const auto ymd = year_month_day(floor<days>(*t));
  return ymd.year() >= year(1000) && ymd.year() <= year(9999);
}

void decideAll(const jobs::PodStatus& s) {
  jobs::CgroupEvidence e;
  for (int oom = 0; oom < 2; ++oom) {
    e.seen = oom == 1;
    e.oom_kills = static_cast<std::uint64_t>(oom);
    const jobs::JobOutcome o = jobs::decide(&s, e, s.uid, "", std::nullopt, std::nullopt);
    check(!o.reason.empty() && o.reason.size() <= jobs::kMaxReasonBytes);
    check(!o.evidence.empty());
    check(!jobs::isTerminal(s) || o.outcome != jobs::Outcome::kUnknown);
    const std::string text = jobs::toJson(o);
    const auto back = jobs::fromJson(text);
    if (!o.pod_uid.empty() && representable(o.started_at) && representable(o.finished_at)) {
      check(back.has_value());
      // Doubles go through JSON at full precision; everything else is text or an integer.
      check(*back == o);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto list = pods::parsePodList(input)) {
    for (const auto& p : list->pods) decideAll(jobs::fromPod(p));
  }
  // One decoder: the API server's strict reading of a Pod accepts exactly what the lenient one
  // reads without a problem, and both give the same pod.
  const nlohmann::json doc = nlohmann::json::parse(input, nullptr, false);
  pods::PodFieldProblems problems;
  const auto lenient = doc.is_discarded()
                           ? std::expected<pods::PodInfo, pods::PodRejection>(std::unexpected(
                                 pods::PodRejection{pods::PodRejection::Kind::kNotObject, ""}))
                           : pods::decodePod(doc, problems);
  const auto strict = pods::parseApiPod(input);
  check(strict.has_value() == (lenient.has_value() && problems.count == 0));
  if (strict) {
    check(*strict == *lenient);
    decideAll(jobs::fromPod(*strict));
  }
  if (auto event = pods::parseWatchEvent(input); event && event->pod) {
    decideAll(jobs::fromPod(*event->pod));
  }
  (void)jobs::fromJson(input);
  return 0;
}
