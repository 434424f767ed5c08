// JobOutcomes: the agent's Job-outcome service. It feeds the JobTracker from the pod metadata
// sources (statuses) and the cgroup collector (readings), and publishes what it records three
// ways: the nodewarden_job_* series, one event line per outcome into the log path (stream
// {source="nodewarden", kind="job_outcome", namespace, node}), and GET /jobs.
//
// What a reader gets wrong: the statuses come from two sources that lag differently (the API
// server's watch is first; the kubelet's /pods is the API server's copy as the kubelet last got
// it). Both are fed; a terminal status is never replaced by a later non-terminal one. And the
// cgroup readings between collection cycles are only of the tracked Job pods: the poll costs a few
// reads per Job pod, nothing per other pod.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/http_server.h"
#include "agent/log_pipeline.h"
#include "agent/workload_series.h"
#include "collectors/cgroup/cgroup_collector.h"
#include "collectors/jobs/job_metrics.h"
#include "collectors/jobs/job_tracker.h"
#include "collectors/pods/apiserver_pods.h"
#include "collectors/pods/kubelet_pods.h"
#include "pipeline/container_metadata.h"
#include "pipeline/interfaces.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

struct JobOutcomeSources {
  pods::KubeletPodsMetadata* kubelet = nullptr;
  pods::ApiServerPodWatcher* apiserver = nullptr;
  ContainerMetadata* metadata = nullptr;  // the whole chain: the CronJob of a Job
  CgroupCollector* cgroup = nullptr;
  LogPipeline* logs = nullptr;
};

// A SnapshotConsumer: its turn in the cycle takes the tracked pods' readings. Its series live in
// `series` (WorkloadSeries), published after every change, so /metrics shows an outcome as soon
// as /jobs does.
class JobOutcomes final : public SnapshotConsumer {
 public:
  JobOutcomes(const Config& config, JobOutcomeSources sources, WorkloadSeries& series,
              ErrorReporter& errors);

  // After a full collection cycle: the tracked pods' readings from the cycle's snapshot.
  void consume(const Snapshot& snapshot) override;
  // Between cycles: statuses, fresh readings of the tracked pods, decisions, events.
  void poll();
  // GET /jobs: recent outcomes, newest first; ?namespace= &job= &cronjob= &outcome= &limit=.
  // Any thread.
  [[nodiscard]] HttpResponse jobsJson(const HttpRequest& request) const;

  [[nodiscard]] const jobs::JobTracker& tracker() const { return tracker_; }

 private:
  void observeStatuses();
  void submitEvents();
  void publish();
  void publishSeries();

  const Config& config_;
  JobOutcomeSources sources_;
  ErrorReporter& errors_;
  jobs::JobTracker tracker_;
  WorkloadSeries& series_;
  jobs::JobMetrics metrics_;
  std::uint64_t published_changes_ = 0;  // metrics_.changes() when series_ was last published
  std::set<std::string, std::less<>> in_flight_;  // events submitted, not durable yet
  std::size_t kubelet_fetches_ = 0;  // the kubelet source's fetch count at the last poll
  std::string apiserver_version_;    // the watch's resourceVersion at the last poll

  mutable std::mutex published_mu_;
  std::shared_ptr<const std::vector<jobs::JobOutcome>> published_;  // newest first
};

}  // namespace nodewarden
