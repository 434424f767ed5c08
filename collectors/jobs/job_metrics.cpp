#include "collectors/jobs/job_metrics.h"

namespace nodewarden::jobs {
namespace {

// From a second to a day: a Spark stage's minutes and a nightly batch's hours both land mid-range.
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {
    1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400};

prometheus::Labels jobLabels(const std::string& ns, const std::string& job,
                             const std::string& cronjob) {
  return {{"namespace", ns}, {"job_name", job}, {"cronjob", cronjob}};
}

}  // namespace

JobMetrics::JobMetrics(prometheus::Registry& registry, std::chrono::milliseconds retention)
    : retention_(retention),
      completions_(prometheus::BuildCounter()
                       .Name("nodewarden_job_pod_completions_total")
                       .Help("Job pods on this node that ended, by outcome and reason.")
                       .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("nodewarden_job_pod_duration_seconds")
                    .Help("Run time of Job pods on this node, start to finish, by CronJob.")
                    .Register(registry)),
      exit_code_(prometheus::BuildGauge()
                     .Name("nodewarden_job_last_exit_code")
                     .Help("Exit code of the deciding container of the job's latest pod.")
                     .Register(registry)),
      cpu_(prometheus::BuildGauge()
               .Name("nodewarden_job_last_cpu_seconds")
               .Help("CPU seconds the job's latest pod used, from its cgroup.")
               .Register(registry)),
      peak_(prometheus::BuildGauge()
                .Name("nodewarden_job_last_peak_memory_bytes")
                .Help("Peak memory of the job's latest pod, from its cgroup.")
                .Register(registry)),
      last_duration_(prometheus::BuildGauge()
                         .Name("nodewarden_job_last_duration_seconds")
                         .Help("Run time of the job's latest pod.")
                         .Register(registry)),
      completed_at_(prometheus::BuildGauge()
                        .Name("nodewarden_job_last_completion_timestamp_seconds")
                        .Help("When the job's latest pod ended (Unix time).")
                        .Register(registry)),
      last_outcome_(prometheus::BuildGauge()
                        .Name("nodewarden_job_last_outcome")
                        .Help("Always 1; outcome and reason of the job's latest pod.")
                        .Register(registry)) {}

void JobMetrics::add(const JobOutcome& o) {
  ++changes_;
  const std::string outcome(outcomeName(o.outcome));
  completions_
      .Add({{"namespace", o.namespace_name},
            {"job_name", o.job},
            {"cronjob", o.cronjob},
            {"outcome", outcome},
            {"reason", o.reason}})
      .Increment();
  counts_[{o.namespace_name, o.job, o.cronjob, outcome, o.reason}] = o.recorded_at_ms;
  if (o.duration_seconds) {
    duration_
        .Add({{"namespace", o.namespace_name}, {"cronjob", o.cronjob}, {"outcome", outcome}},
             kDurationBuckets)
        .Observe(*o.duration_seconds);
    hists_[{o.namespace_name, o.cronjob, outcome}] = o.recorded_at_ms;
  }
  setLast(o);
}

void JobMetrics::restore(const JobOutcome& o) {
  ++changes_;
  setLast(o);
}

void JobMetrics::setLast(const JobOutcome& o) {
  const JobKey key{o.namespace_name, o.job, o.cronjob};
  if (const auto it = last_.find(key); it != last_.end()) {
    if (it->second.at_ms > o.recorded_at_ms) return;  // an older run
    removeLast(key, it->second);
  }
  const auto labels = jobLabels(o.namespace_name, o.job, o.cronjob);
  if (o.exit_code) exit_code_.Add(labels).Set(*o.exit_code);
  if (o.cpu_seconds) cpu_.Add(labels).Set(*o.cpu_seconds);
  if (o.peak_memory_bytes) peak_.Add(labels).Set(static_cast<double>(*o.peak_memory_bytes));
  if (o.duration_seconds) last_duration_.Add(labels).Set(*o.duration_seconds);
  if (o.finished_at) {
    completed_at_.Add(labels).Set(static_cast<double>(o.finished_at->time_since_epoch().count()));
  }
  auto with = labels;
  with["outcome"] = std::string(outcomeName(o.outcome));
  with["reason"] = o.reason;
  last_outcome_.Add(with).Set(1);
  last_[key] = Last{o.recorded_at_ms, with["outcome"], o.reason};
}

void JobMetrics::removeLast(const JobKey& key, const Last& last) {
  const auto labels = jobLabels(std::get<0>(key), std::get<1>(key), std::get<2>(key));
  for (auto* fam : {&exit_code_, &cpu_, &peak_, &last_duration_, &completed_at_}) {
    if (fam->Has(labels)) fam->Remove(&fam->Add(labels));
  }
  auto with = labels;
  with["outcome"] = last.outcome;
  with["reason"] = last.reason;
  if (last_outcome_.Has(with)) last_outcome_.Remove(&last_outcome_.Add(with));
}

void JobMetrics::age(std::int64_t now_ms) {
  const std::int64_t keep = retention_.count();
  for (auto it = last_.begin(); it != last_.end();) {
    if (now_ms - it->second.at_ms <= keep) {
      ++it;
      continue;
    }
    removeLast(it->first, it->second);
    it = last_.erase(it);
    ++changes_;
  }
  for (auto it = counts_.begin(); it != counts_.end();) {
    if (now_ms - it->second <= keep) {
      ++it;
      continue;
    }
    const auto& [ns, job, cronjob, outcome, reason] = it->first;
    const prometheus::Labels l{{"namespace", ns},
                               {"job_name", job},
                               {"cronjob", cronjob},
                               {"outcome", outcome},
                               {"reason", reason}};
    if (completions_.Has(l)) completions_.Remove(&completions_.Add(l));
    it = counts_.erase(it);
    ++changes_;
  }
  for (auto it = hists_.begin(); it != hists_.end();) {
    if (now_ms - it->second <= keep) {
      ++it;
      continue;
    }
    const auto& [ns, cronjob, outcome] = it->first;
    const prometheus::Labels l{{"namespace", ns}, {"cronjob", cronjob}, {"outcome", outcome}};
    if (duration_.Has(l)) duration_.Remove(&duration_.Add(l, kDurationBuckets));
    it = hists_.erase(it);
    ++changes_;
  }
}

}  // namespace nodewarden::jobs
