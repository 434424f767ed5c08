// DirLister: lists a directory's subdirectories with getdents64 into a buffer it owns, so the
// per-cycle walk of kubelet's tree allocates nothing (opendir() mallocs a DIR each call); and
// TransientDir, a directory descriptor held for one scope.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <string_view>

namespace nodewarden::cgroup {

class DirLister {
 public:
  // Calls on_dir(name) for each subdirectory of dir_fd (not "." or ".."). Returns 0 or errno.
  template <typename OnDir>
  int forEachSubdir(int dir_fd, OnDir&& on_dir) {
    for (;;) {
      const long n = ::syscall(SYS_getdents64, dir_fd, buf_.data(), buf_.size());
      if (n < 0) return errno;
      if (n == 0) return 0;
      long off = 0;
      while (off < n) {
        // linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
        const char* rec = buf_.data() + off;
        unsigned short reclen = 0;
        __builtin_memcpy(&reclen, rec + 16, sizeof reclen);
        const auto type = static_cast<unsigned char>(rec[18]);
        const std::string_view name(rec + 19);
        off += reclen;
        if (name == "." || name == "..") continue;
        if (type == DT_DIR || (type == DT_UNKNOWN && isDirAt(dir_fd, name))) on_dir(name);
      }
    }
  }

 private:
  static bool isDirAt(int dir_fd, std::string_view name) {
    struct stat st {};
    return ::fstatat(dir_fd, name.data(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
  }
  alignas(8) std::array<char, 32 * 1024> buf_{};
};

// A directory descriptor closed at the end of its scope (-1: none).
struct TransientDir {
  int fd = -1;
  TransientDir() = default;
  TransientDir(const TransientDir&) = delete;
  TransientDir& operator=(const TransientDir&) = delete;
  ~TransientDir() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace nodewarden::cgroup
