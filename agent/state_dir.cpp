#include "agent/state_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace nodewarden {
namespace {

constexpr const char* kProbeName = ".nodewarden-probe";

std::string because(const std::string& what, const std::filesystem::path& path, int err) {
  return what + " " + path.string() + ": " + std::strerror(err);
}

}  // namespace

std::expected<void, std::string> checkStateDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return std::unexpected("cannot create " + dir.string() + ": " + ec.message());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return std::unexpected(because("cannot stat", dir, errno));
  if (!S_ISDIR(st.st_mode)) return std::unexpected(because("cannot use", dir, ENOTDIR));
  const auto probe = dir / kProbeName;
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(because("cannot write in", dir, errno));
  ::close(fd);
  if (::unlink(probe.c_str()) != 0) return std::unexpected(because("cannot remove", probe, errno));
  return {};
}

std::expected<void, std::string> checkStateFile(const std::filesystem::path& file) {
  if (auto dir = checkStateDir(file.parent_path()); !dir) return dir;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return std::unexpected(because("cannot stat", file, errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return std::unexpected(because("cannot use", file, S_ISDIR(st.st_mode) ? EISDIR : EINVAL) +
                           (S_ISDIR(st.st_mode) ? "" : " (not a regular file)"));
  }
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::unexpected(because("cannot open", file, errno));
  ::close(fd);
  return {};
}

}  // namespace nodewarden
