#include "collectors/pods/runtime_state_metadata.h"

namespace nodewarden::pods {

std::optional<ContainerIdentity> RuntimeStateMetadata::container(std::string_view id) const {
  const ContainerMeta* m = reader_.find(id);
  if (m == nullptr || m->pod_uid.empty()) return std::nullopt;
  return ContainerIdentity{m->pod_uid,        m->namespace_name, m->pod_name,
                           m->container_name, m->image,          m->is_sandbox};
}

std::optional<PodIdentity> RuntimeStateMetadata::pod(std::string_view uid) const {
  const ContainerMeta* m = reader_.findSandboxOfPod(uid);
  if (m == nullptr || m->pod_name.empty()) return std::nullopt;
  PodIdentity id;
  id.namespace_name = m->namespace_name;
  id.pod_name = m->pod_name;
  return id;
}

}  // namespace nodewarden::pods
