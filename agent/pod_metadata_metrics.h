// PodMetadataMetrics: what the pod metadata knows about the pods on this node, as series in the
// style of kube-state-metrics' kube_pod_info and kube_pod_labels:
//   nodewarden_pod_info{namespace, pod, uid, qos_class, owner_kind, owner_name, workload_kind,
//                       workload, job, cronjob} 1
//   nodewarden_pod_labels{namespace, pod, uid, label_<key>=<value> for each allow-listed
//                         pod label the pod has} 1
// The cAdvisor-compatible container series keep their labels (dashboards made for cAdvisor work
// unchanged); a query joins these on namespace and pod to group by workload or by label.
//
// What a reader gets wrong: the pods are the ones the cgroup collector tracks this cycle (its
// pod-level samples), not a metadata source's list, so a pod's series come and go with its cgroup.
// A pod the metadata does not know (yet, or any more) keeps the series it had; one never known has
// none, because nothing is guessed. Series are replaced only when what the metadata says changes:
// a steady cycle adds and removes nothing.
#pragma once

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/workload_series.h"
#include "pipeline/container_metadata.h"
#include "pipeline/interfaces.h"
#include "pipeline/snapshot.h"

namespace nodewarden {

class PodMetadataMetrics {
 public:
  // label_keys: kubernetes.pod_labels, already validated (pipeline/pod_labels.h).
  PodMetadataMetrics(prometheus::Registry& registry, const std::vector<std::string>& label_keys);

  // The series of the pods in the snapshot; those of pods no longer in it are removed. metadata
  // may be null (no source configured): then there are none.
  void update(const Snapshot& snapshot, const ContainerMetadata* metadata);

  // Pods that have series.
  [[nodiscard]] std::size_t pods() const { return pods_.size(); }
  // Grows each time a series is added or removed: a reader of the registry republishes only then.
  [[nodiscard]] std::uint64_t changes() const { return changes_; }

 private:
  // What the series of one pod were made from.
  struct Known {
    std::string namespace_name, pod_name, qos_class, owner_kind, owner_name, workload_kind,
        workload_name, job, cronjob;
    std::vector<std::optional<std::string>> label_values;  // by allow-list position
  };
  struct Series {
    Known known;
    prometheus::Gauge* info = nullptr;
    prometheus::Gauge* labels = nullptr;
    std::uint64_t seen = 0;  // the cycle that last saw the pod's cgroup
  };

  [[nodiscard]] bool same(const Known& known, const PodIdentity& id) const;
  void replace(const std::string& uid, Series& series, const PodIdentity& id);
  void remove(Series& series);

  prometheus::Family<prometheus::Gauge>& info_family_;
  prometheus::Family<prometheus::Gauge>& labels_family_;
  std::vector<std::pair<std::string, std::string>> keys_;  // pod label key, metric label name
  std::unordered_map<std::string, Series> pods_;           // by pod uid
  std::uint64_t cycle_ = 0;
  std::uint64_t changes_ = 0;
};

// The pod series' turn in the collection cycle: updated from the finished snapshot's pods, and
// published (WorkloadSeries) when that changed them. Before the cycle's publication, so /metrics
// and remote write show the pods of the snapshot they show.
class PodSeriesStage final : public SnapshotConsumer {
 public:
  PodSeriesStage(PodMetadataMetrics& metrics, const ContainerMetadata* metadata,
                 WorkloadSeries& series)
      : metrics_(metrics), metadata_(metadata), series_(series) {}

  void consume(const Snapshot& snapshot) override;

 private:
  PodMetadataMetrics& metrics_;
  const ContainerMetadata* metadata_;
  WorkloadSeries& series_;
  std::uint64_t published_changes_ = 0;
  bool published_ = false;
};

}  // namespace nodewarden
