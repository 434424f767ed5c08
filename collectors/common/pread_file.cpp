#include "collectors/common/pread_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace nodewarden {

PreadFile& PreadFile::operator=(PreadFile&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

std::expected<void, int> PreadFile::openAt(int dir_fd, const char* name) {
  close();
  const int fd = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return std::unexpected(errno);
  fd_ = fd;
  return {};
}

void PreadFile::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

std::expected<std::string_view, int> PreadFile::read(std::span<char> buf) const {
  if (fd_ < 0) return std::unexpected(EBADF);
  std::size_t total = 0;
  for (;;) {
    const ssize_t n =
        ::pread(fd_, buf.data() + total, buf.size() - total, static_cast<off_t>(total));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno);
    }
    if (n == 0) break;
    const std::size_t asked = buf.size() - total;
    total += static_cast<std::size_t>(n);
    if (total == buf.size()) return std::unexpected(EFBIG);
    // kernfs and procfs fill the whole request unless the content ended, as do regular files:
    // a short read is the end, which saves the second pread that would only return 0.
    if (static_cast<std::size_t>(n) < asked) break;
  }
  return std::string_view(buf.data(), total);
}

std::expected<std::string_view, int> readFileAt(int dir_fd, const char* name, std::span<char> buf) {
  PreadFile f;
  if (auto r = f.openAt(dir_fd, name); !r) return std::unexpected(r.error());
  return f.read(buf);
}

}  // namespace nodewarden
