// MetadataChain: the metadata sources in the order the agent tries them (the runtime's state on
// the node, the kubelet's /pods, the API server's watch), answering as one ContainerMetadata.
//
// What a reader gets wrong: the first source that knows a container or pod answers, but a field it
// leaves empty is taken from a later one: the runtime's state knows the image but not the Job;
// the kubelet knows the Job but may not list a pod yet.
#pragma once

#include <memory>
#include <vector>

#include "pipeline/container_metadata.h"

namespace nodewarden::pods {

class MetadataChain final : public ContainerMetadata {
 public:
  void add(std::unique_ptr<ContainerMetadata> source) { sources_.push_back(std::move(source)); }
  [[nodiscard]] bool empty() const { return sources_.empty(); }

  void refresh() override;
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override;
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override;
  [[nodiscard]] bool synced() const override;
  // The sum of the sources' generations: it moves when any of theirs does.
  [[nodiscard]] std::uint64_t generation() const override;
  void requestRefresh() override;
  [[nodiscard]] bool namesImages() const override;  // any source does

 private:
  std::vector<std::unique_ptr<ContainerMetadata>> sources_;
};

}  // namespace nodewarden::pods
