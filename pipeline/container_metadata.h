// ContainerMetadata: names for the runtime container ids and pod uids the collectors find, from
// whatever source the agent wires in (the runtime's state on the node today; the kubelet and the
// API server in the metadata issue). Collectors ask; they never know the source.
//
// What a reader gets wrong: a lookup can miss for a container that exists (its state file not yet
// written, a source that is down). The caller then keeps what it knew and asks again later;
// nothing is guessed.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nodewarden {

struct ContainerIdentity {
  std::string pod_uid;
  std::string namespace_name;
  std::string pod_name;
  std::string container_name;  // empty for a pod's sandbox ("pause") container
  std::string image;
  bool is_sandbox = false;
};

struct PodIdentity {
  std::string namespace_name;
  std::string pod_name;
};

class ContainerMetadata {
 public:
  virtual ~ContainerMetadata() = default;
  // Brings the source up to date; cheap when nothing changed. Called at most once per cycle.
  virtual void refresh() = 0;
  [[nodiscard]] virtual std::optional<ContainerIdentity> container(std::string_view id) const = 0;
  [[nodiscard]] virtual std::optional<PodIdentity> pod(std::string_view uid) const = 0;
};

}  // namespace nodewarden
