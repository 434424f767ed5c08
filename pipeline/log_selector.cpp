#include "pipeline/log_selector.h"

#include <algorithm>

namespace nodewarden {

std::string_view labelValue(const Labels& labels, std::string_view name) {
  for (const auto& [key, value] : labels) {
    if (key == name) return value;
  }
  return {};
}

namespace {

bool listed(const std::vector<std::string>& values, std::string_view value) {
  return values.empty() || std::ranges::find(values, value) != values.end();
}

}  // namespace

bool LogSelector::matchesEverything() const {
  return namespaces.empty() && pods.empty() && containers.empty() && streams.empty() &&
         pod_labels.empty();
}

bool LogSelector::matches(const LogStreamInfo& info) const {
  if (!listed(namespaces, info.namespace_name) || !listed(pods, info.pod) ||
      !listed(containers, info.container) || !listed(streams, info.stream)) {
    return false;
  }
  if (pod_labels.empty()) return true;
  if (info.pod_labels == nullptr) return false;
  for (const auto& [key, value] : pod_labels) {
    const auto it = info.pod_labels->find(key);
    if (it == info.pod_labels->end() || it->second != value) return false;
  }
  return true;
}

LogStreamInfo LogStreamResolver::resolve(const Labels& labels, const LogEntry& entry) {
  LogStreamInfo info;
  info.namespace_name = labelValue(labels, "namespace");
  info.pod = labelValue(labels, "pod");
  info.container = labelValue(labels, "container");
  info.stream = labelValue(labels, "stream");
  if (metadata_ == nullptr) return info;
  const std::string_view uid = labelValue(entry.metadata, "pod_uid");
  if (uid.empty()) return info;
  if (metadata_->generation() != cached_generation_ || pods_.size() > 4096) {
    pods_.clear();
    cached_generation_ = metadata_->generation();
  }
  auto it = pods_.find(std::string(uid));
  if (it == pods_.end()) {
    std::optional<std::map<std::string, std::string>> pod_labels;
    if (auto pod = metadata_->pod(uid)) pod_labels = std::move(pod->labels);
    // A source that cannot tell when it learns something (generation() stays 0) is asked again
    // for a pod it did not know, line after line, until it knows it.
    if (!pod_labels && cached_generation_ == 0) return info;
    it = pods_.emplace(std::string(uid), std::move(pod_labels)).first;
  }
  if (it->second) info.pod_labels = &*it->second;
  return info;
}

}  // namespace nodewarden
