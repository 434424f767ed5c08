// Kubelet's cgroup naming, both drivers: what a directory name under kubepods says about QoS,
// pod uid and container id.
//
//   cgroupfs: kubepods/{burstable,besteffort}/pod<uid>/<id>   Guaranteed: kubepods/pod<uid>/<id>
//   systemd:  kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<rt>-<id>.scope
//             Guaranteed: kubepods.slice/kubepods-pod<uid_>.slice/<rt>-<id>.scope
//   <rt> is cri-containerd, crio or docker; cgroupfs CRI-O names containers crio-<id>.
//
// What a reader gets wrong: the systemd driver escapes the uid's dashes as underscores (a dash is
// systemd's slice separator); the uid is reported with dashes as the API writes it. CRI-O's
// "crio-conmon-<id>.scope" holds the monitor process, not the container, and is not a container.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pipeline/snapshot.h"

namespace nodewarden::cgroup {

// The name of kubelet's top-level cgroup in either driver.
bool isKubepodsRootName(std::string_view name);

// A QoS-class directory directly under the kubepods root ("burstable",
// "kubepods-besteffort.slice").
std::optional<QosClass> parseQosDir(std::string_view name);

struct PodDir {
  std::string_view uid_raw;                // as written in the name (underscores for systemd)
  QosClass qos_hint = QosClass::kUnknown;  // from the systemd name; cgroupfs: from the parent
};
std::optional<PodDir> parsePodDir(std::string_view name);

// Writes the uid with dashes into out (reusing its capacity); false when not a valid uid.
bool normalizePodUid(std::string_view raw, std::string& out);

// The 64-hex container id of a container directory, or nullopt (conmon, sandboxes' helpers,
// anything else kubelet or the runtime put there).
std::optional<std::string_view> parseContainerDir(std::string_view name);

}  // namespace nodewarden::cgroup
