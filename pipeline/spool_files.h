// The spool's file I/O (spool.cpp decides what to write where and when; this does it): the
// locked directory, segment file names, a whole record written with one writev(), records read
// back with pread() or a whole segment mapped for recovery, the ack file replaced atomically.
// Errors come back as text naming the call and the path ("write <path>: <strerror>"), which the
// spool reports as they are.
//
// What a reader gets wrong: nothing here syncs unless asked, and a failure leaves the file as the
// failed call left it (a partial record stays on disk): undoing it is the caller's decision,
// because only the caller knows whether the bytes before it are its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace nodewarden::spool_files {

// "<what> <path>: <strerror(err)>"
std::string errnoText(std::string_view what, const std::filesystem::path& path, int err);

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// A read-only mapping of a whole file (nothing mapped for an empty one).
class MappedFile {
 public:
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  static std::expected<std::unique_ptr<MappedFile>, std::string> open(
      const std::filesystem::path& path);

  [[nodiscard]] const char* data() const { return static_cast<const char*>(data_); }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  MappedFile() = default;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// <first-seq, 20 digits>.seg
std::string segmentName(std::uint64_t first_sequence);
// The first sequence a segment file's name carries, or nullopt for files that are not segments
// (or name a sequence above max_sequence).
std::optional<std::uint64_t> parseSegmentName(std::string_view name, std::uint64_t max_sequence);

// Creates dir (and its parents), opens it and flock()s it: one spool per directory.
std::expected<UniqueFd, std::string> lockDirectory(const std::filesystem::path& dir);
// A new segment file, opened for appending; fails if the file exists.
std::expected<UniqueFd, std::string> createSegment(const std::filesystem::path& path);

// Writes head then body at the file's end (O_APPEND) with writev(), through short writes and
// EINTR. Returns 0 or the errno of the failed call.
int appendAll(int fd, std::string_view head, std::string_view body);
// Reads exactly n bytes at offset into out. Returns 0; the errno of a failed pread(); or -1 when
// the file ends first.
int readAt(int fd, char* out, std::size_t n, std::uint64_t offset);
// The first up to n bytes of a small file into out: how many, or nullopt when there is no file.
std::expected<std::optional<std::size_t>, std::string> readPrefix(const std::filesystem::path& path,
                                                                  char* out, std::size_t n);
// Writes bytes to tmp (truncated; fdatasync'ed when durable) and renames it over path. The
// directory is the caller's to fsync.
std::expected<void, std::string> replaceFile(const std::filesystem::path& tmp,
                                             const std::filesystem::path& path,
                                             std::string_view bytes, bool durable);
// Cuts the file to size (fdatasync'ed when durable).
std::expected<void, std::string> truncateFile(const std::filesystem::path& path, std::uint64_t size,
                                              bool durable);
// fdatasync of a file by its name; a file that cannot be opened is left alone.
void syncFile(const std::filesystem::path& path);

}  // namespace nodewarden::spool_files
