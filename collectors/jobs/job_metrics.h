// JobMetrics: the Prometheus view of Job outcomes on this node.
//
//   nodewarden_job_pod_completions_total{namespace,job_name,cronjob,outcome,reason}   counter
//   nodewarden_job_pod_duration_seconds{namespace,cronjob,outcome}                histogram
//   nodewarden_job_last_exit_code{namespace,job_name,cronjob}                          gauge
//   nodewarden_job_last_cpu_seconds{namespace,job_name,cronjob}                        gauge
//   nodewarden_job_last_peak_memory_bytes{namespace,job_name,cronjob}                  gauge
//   nodewarden_job_last_duration_seconds{namespace,job_name,cronjob}                   gauge
//   nodewarden_job_last_completion_timestamp_seconds{namespace,job_name,cronjob}       gauge
//   nodewarden_job_last_outcome{namespace,job_name,cronjob,outcome,reason}             gauge, 1
//
// The Job's name is `job_name`, as in kube-state-metrics: a `job` label would collide with the
// scrape job's (Prometheus renames the target's to exported_job, or, with honor_labels, loses it).
//
// What a reader gets wrong: cardinality. A CronJob makes a new Job (a new `job_name`) every run,
// so every series naming a Job is aged out `retention` after its last change, and the duration
// histogram has no `job_name` label at all (one histogram per run would hold one observation). The
// histogram is per CronJob; Jobs of no CronJob share cronjob="". A value the outcome lacks (CPU
// of a pod whose cgroup was never read, an exit code of a pod with no status) has no series for
// that run rather than a stale or made-up one.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "collectors/jobs/job_outcome.h"

namespace nodewarden::jobs {

class JobMetrics {
 public:
  JobMetrics(prometheus::Registry& registry, std::chrono::milliseconds retention);

  // A new outcome: counted, observed and made the job's latest.
  void add(const JobOutcome& outcome);
  // An outcome recorded before a restart: made the job's latest again, not counted twice.
  void restore(const JobOutcome& outcome);
  // Removes the series not changed within retention of `now_ms` (wall clock, ms).
  void age(std::int64_t now_ms);
  // Grows with every change of a series (added, set, removed): a reader of the registry
  // republishes only then.
  [[nodiscard]] std::uint64_t changes() const { return changes_; }

 private:
  using JobKey = std::tuple<std::string, std::string, std::string>;  // namespace, job, cronjob
  using CountKey = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  using HistKey = std::tuple<std::string, std::string, std::string>;  // namespace, cronjob, outcome
  struct Last {
    std::int64_t at_ms = 0;
    std::string outcome;
    std::string reason;
  };
  void setLast(const JobOutcome& o);
  void removeLast(const JobKey& key, const Last& last);

  std::chrono::milliseconds retention_;
  prometheus::Family<prometheus::Counter>& completions_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Gauge>& exit_code_;
  prometheus::Family<prometheus::Gauge>& cpu_;
  prometheus::Family<prometheus::Gauge>& peak_;
  prometheus::Family<prometheus::Gauge>& last_duration_;
  prometheus::Family<prometheus::Gauge>& completed_at_;
  prometheus::Family<prometheus::Gauge>& last_outcome_;
  std::map<CountKey, std::int64_t> counts_;  // last increment, ms
  std::map<HistKey, std::int64_t> hists_;
  std::map<JobKey, Last> last_;
  std::uint64_t changes_ = 0;
};

}  // namespace nodewarden::jobs
