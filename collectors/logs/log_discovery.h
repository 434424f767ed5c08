// LogDiscovery: finds kubelet's container log files,
// <root>/<namespace>_<pod>_<uid>/<container>/<restart>.log and their rotated siblings
// <restart>.log.<YYYYMMDD-hhmmss>, through inotify on the root, the pod and the container
// directories, plus full rescans that catch whatever inotify missed (queue overflow, a directory
// created and filled before its watch was added, the watch limit).
//
// What a reader gets wrong: inotify only says where to look. Every event just marks a directory to
// list again, and a listing is the only truth; the watch is added before the listing, so a file
// created in between is seen by one or the other.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pipeline/self_metrics.h"

namespace nodewarden::logs {

// One log file as seen by a listing.
struct DiscoveredFile {
  std::string path;
  std::string container_dir;  // the group whose files are read in order
  std::string namespace_name;
  std::string pod_name;
  std::string pod_uid;
  std::string container;
  std::uint32_t restart = 0;
  std::string rotated_suffix;  // empty for the live <restart>.log
  std::string container_id;    // from kubelet's /var/log/containers links; empty when unknown
  bool compressed = false;     // <restart>.log.<suffix>.gz
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

// Parses "<restart>.log" or "<restart>.log.<suffix>[.gz]". False for anything else (kubelet's
// ".tmp" files while it compresses, editors' droppings).
bool parseLogFileName(std::string_view name, std::uint32_t& restart, std::string& rotated_suffix,
                      bool& compressed);
// Parses "<namespace>_<pod>_<uid>" (names and uids cannot contain '_').
bool parsePodDirName(std::string_view name, std::string& ns, std::string& pod, std::string& uid);

class LogDiscovery {
 public:
  LogDiscovery(std::filesystem::path root, ErrorReporter& errors);
  ~LogDiscovery();
  LogDiscovery(const LogDiscovery&) = delete;
  LogDiscovery& operator=(const LogDiscovery&) = delete;

  [[nodiscard]] int fd() const { return inotify_fd_; }

  // Reads pending inotify events (non-blocking) and remembers which directories to list again.
  // Returns true if a full rescan is needed (queue overflow).
  bool drainEvents();
  [[nodiscard]] bool hasDirtyDirs() const { return !dirty_pods_.empty() || !dirty_dirs_.empty(); }

  // Lists every pod and container directory (adding missing watches) and appends every log file.
  void scanAll(std::vector<DiscoveredFile>& out);
  // Lists only the directories that events pointed at.
  void scanDirty(std::vector<DiscoveredFile>& out);
  // Whether the last scanAll() failed to list container_dir, its pod directory or the root for
  // another reason than its absence (EMFILE, EACCES...): its files were not seen, yet they may be
  // there, so their absence from the listing says nothing.
  [[nodiscard]] bool unlisted(std::string_view container_dir) const;

  // The container directories whose files were written to since the last call (IN_MODIFY): the
  // tailer looks again at the files there that have no descriptor.
  void takeModified(std::vector<std::string>& dirs);

  [[nodiscard]] std::uint64_t overflows() const { return overflows_; }

 private:
  enum class WatchKind : std::uint8_t { kRoot, kPod, kContainer };
  struct Watch {
    WatchKind kind;
    std::string path;
  };
  void watch(const std::string& path, WatchKind kind);
  void scanPodDir(const std::string& pod_dir_name, std::vector<DiscoveredFile>& out);
  void scanContainerDir(const std::string& pod_dir_name, const std::string& container,
                        std::vector<DiscoveredFile>& out);

  std::filesystem::path root_;
  ErrorReporter& errors_;
  int inotify_fd_ = -1;
  std::unordered_map<int, Watch> watches_;                    // wd → what it watches
  std::unordered_map<std::string, int> watched_;              // path → wd
  std::set<std::string> dirty_pods_;                          // pod dir names
  std::set<std::pair<std::string, std::string>> dirty_dirs_;  // (pod dir name, container)
  std::unordered_set<int> modified_;  // wds of container directories written to
  std::uint64_t overflows_ = 0;
  std::vector<std::string> unlisted_;  // directories the last scanAll() could not list
};

}  // namespace nodewarden::logs
