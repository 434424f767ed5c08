// LogDiscovery: inotify watches and directory listings of kubelet's /var/log/pods tree.
//
// What a reader gets wrong: IN_MODIFY on a container directory fires for every write to its log
// files. It is watched so that the event loop wakes up when there is data to read, not to decide
// what to read: the tailer reads every open file on each poll. The directories it names are only
// used for the files that have no descriptor (the handle budget), which cannot be read to find out.
#include "collectors/logs/log_discovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace nodewarden::logs {
namespace {

constexpr std::uint32_t kDirEvents =
    IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
constexpr std::uint32_t kContainerDirEvents = kDirEvents | IN_MODIFY;

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Calls on_entry(name, d_type) for each entry of path except "." and "..".
template <typename OnEntry>
int listDir(const std::string& path, OnEntry&& on_entry) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return errno;
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    on_entry(name, e->d_type);
  }
  ::closedir(dir);
  return 0;
}

bool isDir(const std::string& path, unsigned char d_type) {
  if (d_type == DT_DIR) return true;
  if (d_type != DT_UNKNOWN) return false;
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

bool parseLogFileName(std::string_view name, std::uint32_t& restart, std::string& rotated_suffix,
                      bool& compressed) {
  const auto dot = name.find(".log");
  if (dot == std::string_view::npos || !allDigits(name.substr(0, dot)) || dot > 9) return false;
  restart = 0;
  for (const char c : name.substr(0, dot))
    restart = restart * 10 + static_cast<std::uint32_t>(c - '0');
  std::string_view rest = name.substr(dot + 4);
  compressed = false;
  rotated_suffix.clear();
  if (rest.empty()) return true;
  if (rest.front() != '.') return false;
  rest.remove_prefix(1);
  if (rest.ends_with(".gz")) {
    compressed = true;
    rest.remove_suffix(3);
  }
  // kubelet's suffix is a timestamp, 20060102-150405: digits and '-'.
  if (rest.empty() || !std::all_of(rest.begin(), rest.end(),
                                   [](char c) { return (c >= '0' && c <= '9') || c == '-'; })) {
    return false;
  }
  rotated_suffix.assign(rest);
  return true;
}

bool parsePodDirName(std::string_view name, std::string& ns, std::string& pod, std::string& uid) {
  const auto a = name.find('_');
  if (a == std::string_view::npos || a == 0) return false;
  const auto b = name.find('_', a + 1);
  if (b == std::string_view::npos || b == a + 1 || b + 1 >= name.size()) return false;
  if (name.find('_', b + 1) != std::string_view::npos) return false;
  ns.assign(name.substr(0, a));
  pod.assign(name.substr(a + 1, b - a - 1));
  uid.assign(name.substr(b + 1));
  return true;
}

LogDiscovery::LogDiscovery(std::filesystem::path root, ErrorReporter& errors)
    : root_(std::move(root)), errors_(errors) {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    errors_.report("logs", "inotify_unavailable", std::strerror(errno));
  }
}

LogDiscovery::~LogDiscovery() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

void LogDiscovery::watch(const std::string& path, WatchKind kind) {
  if (inotify_fd_ < 0 || watched_.contains(path)) return;
  const int wd = ::inotify_add_watch(
      inotify_fd_, path.c_str(),
      (kind == WatchKind::kContainer ? kContainerDirEvents : kDirEvents) | IN_ONLYDIR);
  if (wd < 0) {
    // ENOSPC is the max_user_watches limit: the periodic rescan still finds everything.
    if (errno != ENOENT)
      errors_.report("logs", "inotify_watch", path + ": " + std::strerror(errno));
    return;
  }
  // The same directory may come back under a new name (rename): the kernel reuses the wd.
  if (const auto old = watches_.find(wd); old != watches_.end()) watched_.erase(old->second.path);
  watches_[wd] = Watch{kind, path};
  watched_[path] = wd;
}

bool LogDiscovery::drainEvents() {
  if (inotify_fd_ < 0) return false;
  bool overflow = false;
  alignas(inotify_event) std::array<char, 16384> buf;
  for (;;) {
    const ssize_t n = ::read(inotify_fd_, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: drained
    std::size_t off = 0;
    while (off + sizeof(inotify_event) <= static_cast<std::size_t>(n)) {
      inotify_event ev{};
      std::memcpy(&ev, buf.data() + off, sizeof ev);
      const std::string_view name =
          ev.len > 0 ? std::string_view(buf.data() + off + sizeof ev) : std::string_view();
      off += sizeof ev + ev.len;
      if ((ev.mask & IN_Q_OVERFLOW) != 0) {
        overflow = true;
        continue;
      }
      const auto it = watches_.find(ev.wd);
      if (it == watches_.end()) continue;
      if ((ev.mask & IN_IGNORED) != 0) {
        modified_.erase(ev.wd);
        watched_.erase(it->second.path);
        watches_.erase(it);
        continue;
      }
      const Watch& w = it->second;
      if ((ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) continue;  // IN_IGNORED follows
      switch (w.kind) {
        case WatchKind::kRoot:
          if ((ev.mask & IN_ISDIR) != 0 && (ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0) {
            dirty_pods_.emplace(name);
          }
          break;
        case WatchKind::kPod:
          if ((ev.mask & IN_ISDIR) != 0 && (ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0) {
            const std::string_view pod_dir =
                std::string_view(w.path).substr(root_.string().size() + 1);
            dirty_dirs_.emplace(std::string(pod_dir), std::string(name));
          }
          break;
        case WatchKind::kContainer:
          if ((ev.mask & IN_MODIFY) != 0) modified_.insert(ev.wd);
          if ((ev.mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) != 0) {
            const std::string_view rel = std::string_view(w.path).substr(root_.string().size() + 1);
            const auto slash = rel.find('/');
            if (slash != std::string_view::npos) {
              dirty_dirs_.emplace(std::string(rel.substr(0, slash)),
                                  std::string(rel.substr(slash + 1)));
            }
          }
          break;
      }
    }
  }
  if (overflow) ++overflows_;
  return overflow;
}

void LogDiscovery::takeModified(std::vector<std::string>& dirs) {
  for (const int wd : modified_) {
    if (const auto it = watches_.find(wd); it != watches_.end()) dirs.push_back(it->second.path);
  }
  modified_.clear();
}

bool LogDiscovery::unlisted(std::string_view container_dir) const {
  return std::ranges::any_of(unlisted_, [&](const std::string& dir) {
    return container_dir == dir ||
           (container_dir.starts_with(dir) && container_dir.size() > dir.size() &&
            container_dir[dir.size()] == '/');
  });
}

void LogDiscovery::scanAll(std::vector<DiscoveredFile>& out) {
  unlisted_.clear();
  dirty_pods_.clear();
  dirty_dirs_.clear();
  watch(root_.string(), WatchKind::kRoot);
  std::vector<std::string> pods;
  const int err = listDir(root_.string(), [&](std::string_view name, unsigned char type) {
    if (isDir(root_.string() + "/" + std::string(name), type)) pods.emplace_back(name);
  });
  if (err != 0 && err != ENOENT) {
    errors_.report("logs", "list_dir", root_.string() + ": " + std::strerror(err));
    unlisted_.push_back(root_.string());
  }
  for (const auto& pod : pods) scanPodDir(pod, out);
}

void LogDiscovery::scanDirty(std::vector<DiscoveredFile>& out) {
  const auto pods = std::move(dirty_pods_);
  const auto dirs = std::move(dirty_dirs_);
  dirty_pods_.clear();
  dirty_dirs_.clear();
  for (const auto& pod : pods) scanPodDir(pod, out);
  for (const auto& [pod, container] : dirs) {
    if (pods.contains(pod)) continue;  // listed with its pod directory
    scanContainerDir(pod, container, out);
  }
}

void LogDiscovery::scanPodDir(const std::string& pod_dir_name, std::vector<DiscoveredFile>& out) {
  std::string ns, pod, uid;
  if (!parsePodDirName(pod_dir_name, ns, pod, uid)) return;
  const std::string pod_path = root_.string() + "/" + pod_dir_name;
  watch(pod_path, WatchKind::kPod);
  std::vector<std::string> containers;
  const int err = listDir(pod_path, [&](std::string_view name, unsigned char type) {
    if (isDir(pod_path + "/" + std::string(name), type)) containers.emplace_back(name);
  });
  if (err != 0 && err != ENOENT) {
    errors_.report("logs", "list_dir", pod_path + ": " + std::strerror(err));
    unlisted_.push_back(pod_path);
  }
  for (const auto& c : containers) scanContainerDir(pod_dir_name, c, out);
}

void LogDiscovery::scanContainerDir(const std::string& pod_dir_name, const std::string& container,
                                    std::vector<DiscoveredFile>& out) {
  DiscoveredFile proto;
  if (!parsePodDirName(pod_dir_name, proto.namespace_name, proto.pod_name, proto.pod_uid)) return;
  proto.container = container;
  proto.container_dir = root_.string() + "/" + pod_dir_name + "/" + container;
  watch(proto.container_dir, WatchKind::kContainer);
  const int err = listDir(proto.container_dir, [&](std::string_view name, unsigned char type) {
    if (type != DT_REG && type != DT_UNKNOWN) return;
    DiscoveredFile f = proto;
    if (!parseLogFileName(name, f.restart, f.rotated_suffix, f.compressed)) return;
    f.path = proto.container_dir + "/" + std::string(name);
    struct stat st {};
    if (::stat(f.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    f.device = static_cast<std::uint64_t>(st.st_dev);
    f.inode = static_cast<std::uint64_t>(st.st_ino);
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    out.push_back(std::move(f));
  });
  if (err != 0 && err != ENOENT) {
    errors_.report("logs", "list_dir", proto.container_dir + ": " + std::strerror(err));
    unlisted_.push_back(proto.container_dir);
  }
}

}  // namespace nodewarden::logs
