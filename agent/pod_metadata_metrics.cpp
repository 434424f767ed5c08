#include "agent/pod_metadata_metrics.h"

#include "pipeline/pod_labels.h"

namespace nodewarden {

PodMetadataMetrics::PodMetadataMetrics(prometheus::Registry& registry,
                                       const std::vector<std::string>& label_keys)
    : info_family_(prometheus::BuildGauge()
                       .Name("nodewarden_pod_info")
                       .Help("Always 1 for each pod on this node the pod metadata knows; labels "
                             "carry its QoS class, controlling owner, workload, Job and CronJob.")
                       .Register(registry)),
      labels_family_(prometheus::BuildGauge()
                         .Name("nodewarden_pod_labels")
                         .Help("Always 1 for each pod on this node the pod metadata knows; labels "
                               "carry the allow-listed pod labels (kubernetes.pod_labels) as "
                               "label_<name>.")
                         .Register(registry)) {
  keys_.reserve(label_keys.size());
  for (const std::string& key : label_keys) keys_.emplace_back(key, podLabelMetricName(key));
}

void PodMetadataMetrics::update(const Snapshot& snapshot, const ContainerMetadata* metadata) {
  ++cycle_;
  for (const CgroupSample* sample : snapshot.cgroups) {
    if (!sample->isPod() || sample->pod_uid.empty()) continue;
    auto it = pods_.find(sample->pod_uid);
    if (it != pods_.end()) it->second.seen = cycle_;
    if (metadata == nullptr) continue;
    const auto id = metadata->pod(sample->pod_uid);
    if (!id || id->namespace_name.empty() || id->pod_name.empty()) continue;  // keeps what it had
    if (it == pods_.end()) {
      it = pods_.emplace(sample->pod_uid, Series{}).first;
      it->second.seen = cycle_;
    } else if (same(it->second.known, *id)) {
      continue;
    }
    replace(it->first, it->second, *id);
  }
  for (auto it = pods_.begin(); it != pods_.end();) {
    if (it->second.seen == cycle_) {
      ++it;
      continue;
    }
    remove(it->second);
    it = pods_.erase(it);
    ++changes_;
  }
}

bool PodMetadataMetrics::same(const Known& k, const PodIdentity& id) const {
  if (k.namespace_name != id.namespace_name || k.pod_name != id.pod_name ||
      k.qos_class != id.qos_class || k.owner_kind != id.owner_kind ||
      k.owner_name != id.owner_name || k.workload_kind != id.workload_kind ||
      k.workload_name != id.workload_name || k.job != id.job || k.cronjob != id.cronjob) {
    return false;
  }
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    const auto it = id.labels.find(keys_[i].first);
    const std::optional<std::string>& had = k.label_values[i];
    if ((it == id.labels.end()) != !had.has_value()) return false;
    if (had && *had != it->second) return false;
  }
  return true;
}

void PodMetadataMetrics::replace(const std::string& uid, Series& series, const PodIdentity& id) {
  ++changes_;
  remove(series);
  Known& k = series.known;
  k.namespace_name = id.namespace_name;
  k.pod_name = id.pod_name;
  k.qos_class = id.qos_class;
  k.owner_kind = id.owner_kind;
  k.owner_name = id.owner_name;
  k.workload_kind = id.workload_kind;
  k.workload_name = id.workload_name;
  k.job = id.job;
  k.cronjob = id.cronjob;
  k.label_values.assign(keys_.size(), std::nullopt);

  prometheus::Labels labels{{"namespace", id.namespace_name}, {"pod", id.pod_name}, {"uid", uid}};
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    const auto it = id.labels.find(keys_[i].first);
    if (it == id.labels.end()) continue;
    k.label_values[i] = it->second;
    labels.emplace(keys_[i].second, it->second);
  }
  series.labels = &labels_family_.Add(labels);
  series.labels->Set(1);

  prometheus::Labels info{{"namespace", id.namespace_name},
                          {"pod", id.pod_name},
                          {"uid", uid},
                          {"qos_class", id.qos_class},
                          {"owner_kind", id.owner_kind},
                          {"owner_name", id.owner_name},
                          {"workload_kind", id.workload_kind},
                          {"workload", id.workload_name},
                          {"job_name", id.job},
                          {"cronjob", id.cronjob}};
  series.info = &info_family_.Add(info);
  series.info->Set(1);
}

void PodMetadataMetrics::remove(Series& series) {
  if (series.info != nullptr) info_family_.Remove(series.info);
  if (series.labels != nullptr) labels_family_.Remove(series.labels);
  series.info = nullptr;
  series.labels = nullptr;
}

void PodSeriesStage::consume(const Snapshot& snapshot) {
  metrics_.update(snapshot, metadata_);
  // The first cycle publishes even with no pod: /metrics has shown the families' HELP and TYPE
  // from the start.
  if (published_ && metrics_.changes() == published_changes_) return;
  published_changes_ = metrics_.changes();
  published_ = true;
  series_.publish();
}

}  // namespace nodewarden
