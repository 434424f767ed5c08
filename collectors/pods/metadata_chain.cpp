#include "collectors/pods/metadata_chain.h"

namespace nodewarden::pods {
namespace {

void fill(std::string& into, const std::string& from) {
  if (into.empty()) into = from;
}

}  // namespace

bool MetadataChain::synced() const {
  for (const auto& s : sources_) {
    if (!s->synced()) return false;
  }
  return true;
}

void MetadataChain::refresh() {
  for (auto& s : sources_) s->refresh();
}

std::uint64_t MetadataChain::generation() const {
  std::uint64_t sum = 0;
  for (const auto& s : sources_) sum += s->generation();
  return sum;
}

void MetadataChain::requestRefresh() {
  for (auto& s : sources_) s->requestRefresh();
}

bool MetadataChain::namesImages() const {
  for (const auto& s : sources_) {
    if (s->namesImages()) return true;
  }
  return false;
}

std::optional<ContainerIdentity> MetadataChain::container(std::string_view id) const {
  std::optional<ContainerIdentity> out;
  for (const auto& s : sources_) {
    auto c = s->container(id);
    if (!c) continue;
    if (!out) {
      out = std::move(c);
      continue;
    }
    fill(out->pod_uid, c->pod_uid);
    fill(out->namespace_name, c->namespace_name);
    fill(out->pod_name, c->pod_name);
    fill(out->container_name, c->container_name);
    fill(out->image, c->image);
  }
  return out;
}

std::optional<PodIdentity> MetadataChain::pod(std::string_view uid) const {
  std::optional<PodIdentity> out;
  for (const auto& s : sources_) {
    auto p = s->pod(uid);
    if (!p) continue;
    if (!out) {
      out = std::move(p);
      continue;
    }
    fill(out->namespace_name, p->namespace_name);
    fill(out->pod_name, p->pod_name);
    fill(out->job, p->job);
    fill(out->cronjob, p->cronjob);
    fill(out->owner_kind, p->owner_kind);
    fill(out->owner_name, p->owner_name);
    fill(out->workload_kind, p->workload_kind);
    fill(out->workload_name, p->workload_name);
    fill(out->qos_class, p->qos_class);
    if (out->labels.empty()) out->labels = std::move(p->labels);
  }
  return out;
}

}  // namespace nodewarden::pods
