// ContainerIdIndex: which runtime container id wrote a log file, from kubelet's symlinks
// /var/log/containers/<pod>_<namespace>_<container>-<64-hex id>.log ->
// /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log.
//
// What a reader gets wrong: the link targets are not resolved. In a DaemonSet the host's
// /var/log is mounted elsewhere (e.g. /host/var/log), so an absolute target names a path that does
// not exist in the agent's container; the index keys on the target's last three components, which
// are the same wherever the tree is mounted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>

namespace nodewarden::logs {

class ContainerIdIndex {
 public:
  // Lists containers_dir again (a missing directory yields an empty index).
  void refresh(const std::filesystem::path& containers_dir);

  // The id for <pod_dir>/<container>/<restart>.log (pod_dir is "<namespace>_<pod>_<uid>"), or an
  // empty view when no link names it.
  [[nodiscard]] std::string_view lookup(std::string_view pod_dir, std::string_view container,
                                        std::uint32_t restart) const;

  [[nodiscard]] std::size_t size() const { return ids_.size(); }

 private:
  static std::string key(std::string_view pod_dir, std::string_view container,
                         std::uint32_t restart);
  std::unordered_map<std::string, std::string> ids_;
};

}  // namespace nodewarden::logs
