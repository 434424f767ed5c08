#include "collectors/logs/container_id_index.h"

#include <dirent.h>
#include <unistd.h>

#include <array>
#include <charconv>

namespace nodewarden::logs {
namespace {

constexpr std::size_t kIdLength = 64;

bool isHexId(std::string_view s) {
  if (s.size() != kIdLength) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Splits off the last '/'-separated component of path.
std::string_view popComponent(std::string_view& path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  const auto slash = path.rfind('/');
  const std::string_view last = slash == std::string_view::npos ? path : path.substr(slash + 1);
  path = slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
  return last;
}

}  // namespace

std::string ContainerIdIndex::key(std::string_view pod_dir, std::string_view container,
                                  std::uint32_t restart) {
  std::string k;
  k.reserve(pod_dir.size() + container.size() + 12);
  k.append(pod_dir).push_back('/');
  k.append(container).push_back('/');
  k.append(std::to_string(restart));
  return k;
}

void ContainerIdIndex::refresh(const std::filesystem::path& containers_dir) {
  ids_.clear();
  DIR* dir = ::opendir(containers_dir.c_str());
  if (dir == nullptr) return;
  std::array<char, 4096> target{};
  while (const dirent* e = ::readdir(dir)) {
    std::string_view name(e->d_name);
    if (!name.ends_with(".log")) continue;
    const std::string_view stem = name.substr(0, name.size() - 4);
    if (stem.size() < kIdLength + 1 || stem[stem.size() - kIdLength - 1] != '-') continue;
    const std::string_view id = stem.substr(stem.size() - kIdLength);
    if (!isHexId(id)) continue;
    const ssize_t n = ::readlinkat(::dirfd(dir), e->d_name, target.data(), target.size());
    if (n <= 0 || static_cast<std::size_t>(n) >= target.size()) continue;
    std::string_view path(target.data(), static_cast<std::size_t>(n));
    const std::string_view file = popComponent(path);
    const std::string_view container = popComponent(path);
    const std::string_view pod_dir = popComponent(path);
    if (!file.ends_with(".log") || container.empty() || pod_dir.empty()) continue;
    std::uint32_t restart = 0;
    const std::string_view number = file.substr(0, file.size() - 4);
    const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), restart);
    if (ec != std::errc{} || ptr != number.data() + number.size()) continue;
    ids_[key(pod_dir, container, restart)] = std::string(id);
  }
  ::closedir(dir);
}

std::string_view ContainerIdIndex::lookup(std::string_view pod_dir, std::string_view container,
                                          std::uint32_t restart) const {
  const auto it = ids_.find(key(pod_dir, container, restart));
  return it == ids_.end() ? std::string_view{} : std::string_view(it->second);
}

}  // namespace nodewarden::logs
