// MapMetadata: a ContainerMetadata whose pods are a map the test fills (uid -> PodIdentity), and
// that counts how often a pod was asked for. Knows no containers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "pipeline/container_metadata.h"

namespace nodewarden::testing {

class MapMetadata final : public ContainerMetadata {
 public:
  void refresh() override {}
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view) const override {
    return std::nullopt;
  }
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override {
    ++asked;
    const auto it = pods.find(std::string(uid));
    if (it == pods.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, PodIdentity> pods;
  mutable int asked = 0;
};

}  // namespace nodewarden::testing
