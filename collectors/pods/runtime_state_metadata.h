// RuntimeStateMetadata: the runtime's own state on the node (containerd's and CRI-O's OCI bundle
// annotations) as a ContainerMetadata source. It needs no API access, so it is the first source
// tried: it names pods and containers, gives the image, and tells sandbox ("pause") containers
// apart.
#pragma once

#include <filesystem>
#include <vector>

#include "collectors/pods/runtime_state.h"
#include "pipeline/container_metadata.h"

namespace nodewarden::pods {

class RuntimeStateMetadata final : public ContainerMetadata {
 public:
  RuntimeStateMetadata(std::vector<std::filesystem::path> roots, ErrorReporter& errors)
      : reader_(std::move(roots), errors) {}

  void refresh() override {
    reader_.rescan();
    // Only a file read for the first time (or again after it changed) can name something new.
    if (reader_.lastRescan().parsed > 0) ++generation_;
  }
  [[nodiscard]] std::uint64_t generation() const override { return generation_; }
  // A node without either runtime's state directory (another runtime, or not mounted) never
  // shows an image here.
  [[nodiscard]] bool namesImages() const override { return reader_.lastRescan().layouts_found > 0; }
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override;
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override;
  // Pods whose sandbox the runtime's state names.
  [[nodiscard]] std::size_t podCount() const { return reader_.podCount(); }

 private:
  RuntimeStateReader reader_;
  std::uint64_t generation_ = 0;  // the collector's thread only, like the reader
};

}  // namespace nodewarden::pods
