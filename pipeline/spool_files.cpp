// The spool's file I/O (see spool_files.h).
//
// What a reader gets wrong: appendAll() is one writev() of the whole record whenever the kernel
// takes it all (it nearly always does), so that a crash leaves at most one torn record at the
// tail; the loop only finishes what a signal or a full disk cut short.
#include "pipeline/spool_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>

namespace nodewarden::spool_files {

namespace fs = std::filesystem;

namespace {
constexpr std::string_view kSegmentSuffix = ".seg";
}  // namespace

std::string errnoText(std::string_view what, const fs::path& path, int err) {
  return std::string(what) + " " + path.string() + ": " + std::strerror(err);
}

void UniqueFd::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) {
    ::munmap(data_, size_);
  }
}

std::expected<std::unique_ptr<MappedFile>, std::string> MappedFile::open(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return std::unexpected(errnoText("open", path, errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return std::unexpected(errnoText("stat", path, errno));
  }
  std::unique_ptr<MappedFile> file(new MappedFile());
  file->size_ = static_cast<std::size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) {
      return std::unexpected(errnoText("mmap", path, errno));
    }
    file->data_ = p;
  }
  return file;
}

std::string segmentName(std::uint64_t first_sequence) {
  std::string digits = std::to_string(first_sequence);
  std::string name(20 - std::min<std::size_t>(20, digits.size()), '0');
  name.append(digits).append(kSegmentSuffix);
  return name;
}

std::optional<std::uint64_t> parseSegmentName(std::string_view name, std::uint64_t max_sequence) {
  if (name.size() <= kSegmentSuffix.size() || !name.ends_with(kSegmentSuffix)) {
    return std::nullopt;
  }
  name.remove_suffix(kSegmentSuffix.size());
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (ec != std::errc() || end != name.data() + name.size() || v > max_sequence) {
    return std::nullopt;
  }
  return v;
}

std::expected<UniqueFd, std::string> lockDirectory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return std::unexpected("create " + dir.string() + ": " + ec.message());
  }
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    return std::unexpected(errnoText("open", dir, errno));
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return std::unexpected(errno == EWOULDBLOCK
                               ? "spool " + dir.string() + " is in use by another spool"
                               : errnoText("flock", dir, errno));
  }
  return fd;
}

std::expected<UniqueFd, std::string> createSegment(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return std::unexpected(errnoText("create", path, errno));
  }
  return fd;
}

int appendAll(int fd, std::string_view head, std::string_view body) {
  std::array<iovec, 2> iov{iovec{const_cast<char*>(head.data()), head.size()},
                           iovec{const_cast<char*>(body.data()), body.size()}};
  std::size_t first = 0;  // the first iovec with bytes left
  while (first < iov.size()) {
    if (iov[first].iov_len == 0) {
      ++first;
      continue;
    }
    const ssize_t n = ::writev(fd, iov.data() + first, static_cast<int>(iov.size() - first));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    auto done = static_cast<std::size_t>(n);
    for (; first < iov.size() && done >= iov[first].iov_len; ++first) done -= iov[first].iov_len;
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + done;
      iov[first].iov_len -= done;
    }
  }
  return 0;
}

int readAt(int fd, char* out, std::size_t n, std::uint64_t offset) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) return errno;
    if (r == 0) return -1;
    got += static_cast<std::size_t>(r);
  }
  return 0;
}

std::expected<std::optional<std::size_t>, std::string> readPrefix(const fs::path& path, char* out,
                                                                  std::size_t n) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    return std::unexpected(errnoText("open", path, errno));
  }
  const ssize_t got = ::pread(fd.get(), out, n, 0);
  if (got < 0) {
    return std::unexpected(errnoText("read", path, errno));
  }
  return static_cast<std::size_t>(got);
}

std::expected<void, std::string> replaceFile(const fs::path& tmp, const fs::path& path,
                                             std::string_view bytes, bool durable) {
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return std::unexpected(errnoText("open", tmp, errno));
  }
  if (::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    return std::unexpected(errnoText("write", tmp, errno));
  }
  if (durable && ::fdatasync(fd.get()) != 0) {
    return std::unexpected(errnoText("fdatasync", tmp, errno));
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return std::unexpected(errnoText("rename", tmp, errno));
  }
  return {};
}

std::expected<void, std::string> truncateFile(const fs::path& path, std::uint64_t size,
                                              bool durable) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return std::unexpected(errnoText("truncate", path, errno));
  }
  if (durable) {
    ::fdatasync(fd.get());
  }
  return {};
}

void syncFile(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.valid()) ::fdatasync(fd.get());
}

}  // namespace nodewarden::spool_files
