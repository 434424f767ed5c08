#include "collectors/cgroup/cgroup_layout.h"

namespace nodewarden::cgroup {
namespace {

constexpr std::size_t kUidLength = 36;
constexpr std::size_t kContainerIdLength = 64;

bool isHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool stripPrefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

bool stripSuffix(std::string_view& s, std::string_view suffix) {
  if (!s.ends_with(suffix)) return false;
  s.remove_suffix(suffix.size());
  return true;
}

}  // namespace

bool isKubepodsRootName(std::string_view name) {
  return name == "kubepods" || name == "kubepods.slice";
}

std::optional<QosClass> parseQosDir(std::string_view name) {
  if (name == "burstable" || name == "kubepods-burstable.slice") return QosClass::kBurstable;
  if (name == "besteffort" || name == "kubepods-besteffort.slice") return QosClass::kBestEffort;
  return std::nullopt;
}

std::optional<PodDir> parsePodDir(std::string_view name) {
  PodDir out;
  if (stripSuffix(name, ".slice")) {
    if (!stripPrefix(name, "kubepods-")) return std::nullopt;
    if (stripPrefix(name, "burstable-")) {
      out.qos_hint = QosClass::kBurstable;
    } else if (stripPrefix(name, "besteffort-")) {
      out.qos_hint = QosClass::kBestEffort;
    } else {
      out.qos_hint = QosClass::kGuaranteed;
    }
  }
  if (!stripPrefix(name, "pod")) return std::nullopt;
  if (name.size() != kUidLength) return std::nullopt;
  out.uid_raw = name;
  return out;
}

bool normalizePodUid(std::string_view raw, std::string& out) {
  if (raw.size() != kUidLength) return false;
  out.assign(raw);
  for (std::size_t i = 0; i < out.size(); ++i) {
    char& c = out[i];
    const bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_pos) {
      if (c != '-' && c != '_') return false;
      c = '-';
    } else if (!isHex(c)) {
      return false;
    }
  }
  return true;
}

std::optional<std::string_view> parseContainerDir(std::string_view name) {
  if (stripSuffix(name, ".scope")) {
    if (!stripPrefix(name, "cri-containerd-") && !stripPrefix(name, "crio-") &&
        !stripPrefix(name, "docker-")) {
      return std::nullopt;
    }
  } else {
    stripPrefix(name, "crio-");  // CRI-O with the cgroupfs driver
  }
  if (name.size() != kContainerIdLength) return std::nullopt;
  for (char c : name) {
    if (!isHex(c)) return std::nullopt;
  }
  return name;
}

}  // namespace nodewarden::cgroup
