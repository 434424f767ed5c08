// libFuzzer target for the pod status parsers the Job outcomes rest on: the kubelet's PodList
// (parsePodList), one API server Pod (parseApiPod) and one watch line (parseWatchEvent), then
// everything they accept through fromKubelet/fromApiServer, decide() and the outcome's JSON and
// back (fromJson, which also reads the agent's own state file). Seeds are tests/fixtures/kubelet
// and tests/fixtures/apiserver.
//
// What a reader gets wrong: this checks more than "no crash". A decided outcome always has a
// reason no longer than kMaxReasonBytes, an outcome name, and evidence; a terminal status never
// gives "unknown"; and whatever toJson() writes, fromJson() reads back to the same outcome when
// its times are years a state file can hold.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/jobs/job_outcome.h"

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
    for (const auto& p : list->pods) decideAll(jobs::fromKubelet(p));
  }
  if (auto pod = pods::parseApiPod(input)) decideAll(jobs::fromApiServer(*pod));
  if (auto event = pods::parseWatchEvent(input); event && event->pod) {
    decideAll(jobs::fromApiServer(*event->pod));
  }
  (void)jobs::fromJson(input);
  return 0;
}
