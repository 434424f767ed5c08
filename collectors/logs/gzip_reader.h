// GzipReader: the decompressed bytes of a gzip file (kubelet's rotated <restart>.log.<ts>.gz),
// streamed from a descriptor through zlib with bounded buffers, for the tailer's parser.
//
// What a reader gets wrong: positions are offsets in the decompressed stream, the same offsets the
// plain file had before kubelet compressed it, and the stream cannot seek. Going forward is
// decoding and discarding (skip()); going back is only possible for bytes handed out by the last
// read, which the caller gives back with unread() when its sink refused them. A corrupt or
// truncated file yields everything that decodes before the damage, then one error, then the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nodewarden::logs {

class GzipReader {
 public:
  // Reads fd from its offset 0 with pread(); does not own fd.
  explicit GzipReader(int fd, std::size_t input_bytes = 64 * 1024);
  ~GzipReader();
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  // Decompresses into out. 0: the end of the stream (its last gzip member ended). An error names
  // the damage (corrupt data, a truncated file, a read error); bytes decoded before it are
  // returned first, the error on the next call, and the end of the stream on every call after it.
  std::expected<std::size_t, std::string> read(std::span<char> out);
  // Decodes and discards up to n bytes, through scratch. The stream may end first (position()
  // tells how far it went).
  std::expected<void, std::string> skip(std::uint64_t n, std::span<char> scratch);
  // The last bytes handed out were not used: the next read() returns them again first. At most
  // what the last read() returned.
  void unread(std::string_view bytes);

  // Decompressed bytes handed out and not given back.
  [[nodiscard]] std::uint64_t position() const { return produced_ - pending_.size(); }

 private:
  std::expected<std::size_t, std::string> inflateInto(std::span<char> out);
  bool fill();  // false at the end of the file or on a read error (read_error_ set)

  struct Stream;
  std::unique_ptr<Stream> zs_;
  int fd_;
  std::vector<unsigned char> in_;
  std::uint64_t in_offset_ = 0;  // of the file, next pread()
  std::uint64_t produced_ = 0;
  std::string pending_;  // given back by unread(), handed out first
  bool ended_ = false;
  bool member_ended_ = false;  // a gzip member ended; another may follow
  std::optional<std::string> error_;
  std::string read_error_;
};

// The uncompressed size a gzip file's trailer records (ISIZE: the size of its last member modulo
// 2^32), or nothing when fd is too short to be gzip.
std::optional<std::uint32_t> gzipTrailerSize(int fd, std::uint64_t file_size);

}  // namespace nodewarden::logs
