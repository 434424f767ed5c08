// PreadFile: a file opened once and read from offset 0 with pread() every cycle.
//
// What a reader gets wrong: kernfs (cgroupfs, procfs) regenerates the content on every read from
// offset 0, so one open descriptor serves forever; a read of a removed cgroup's file fails with
// ENODEV, which is how a vanished container is noticed without listing directories.
#pragma once

#include <cstddef>
#include <expected>
#include <span>
#include <string_view>

namespace nodewarden {

class PreadFile {
 public:
  PreadFile() = default;
  ~PreadFile() { close(); }
  PreadFile(PreadFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  PreadFile& operator=(PreadFile&& other) noexcept;
  PreadFile(const PreadFile&) = delete;
  PreadFile& operator=(const PreadFile&) = delete;

  // Opens name relative to dir_fd (read-only, close-on-exec). Returns errno on failure.
  std::expected<void, int> openAt(int dir_fd, const char* name);
  void close();
  [[nodiscard]] bool isOpen() const { return fd_ >= 0; }

  // Reads the whole file into buf (up to its size) and returns the bytes read. A file larger
  // than buf is reported as EFBIG rather than silently truncated.
  std::expected<std::string_view, int> read(std::span<char> buf) const;

 private:
  int fd_ = -1;
};

// Reads a whole file by path into buf; for one-off reads outside the hot path.
std::expected<std::string_view, int> readFileAt(int dir_fd, const char* name, std::span<char> buf);

}  // namespace nodewarden
