// GzipReader: zlib's inflate over pread() of a gzip file, one bounded input buffer, decompressing
// straight into the caller's buffer.
//
// What a reader gets wrong: a file may hold several gzip members one after the other (what
// `cat a.gz b.gz` makes); they are one stream, as gzip(1) reads them. Bytes after the last member
// that do not start another one are ignored, also as gzip(1) does. Running out of file inside a
// member is damage (a truncated file), not the end.
#include "collectors/logs/gzip_reader.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>

namespace nodewarden::logs {
namespace {

constexpr unsigned char kGzipMagic0 = 0x1f;
constexpr std::size_t kMinInputBytes = 64;
constexpr std::uint64_t kMinGzipFileBytes = 18;  // a 10-byte header and an 8-byte trailer

}  // namespace

struct GzipReader::Stream {
  z_stream z{};
  bool ready = false;
};

GzipReader::GzipReader(int fd, std::size_t input_bytes)
    : zs_(std::make_unique<Stream>()),
      fd_(fd),
      in_(std::clamp<std::size_t>(input_bytes, kMinInputBytes, UINT_MAX)) {
  // 16 + MAX_WBITS: a gzip header and trailer around the deflate data, checked (CRC-32, ISIZE).
  if (inflateInit2(&zs_->z, 16 + MAX_WBITS) == Z_OK) {
    zs_->ready = true;
  } else {
    error_ = "zlib: inflateInit2 failed";
  }
}

GzipReader::~GzipReader() {
  if (zs_->ready) inflateEnd(&zs_->z);
}

bool GzipReader::fill() {
  ssize_t r = -1;
  do {
    r = ::pread(fd_, in_.data(), in_.size(), static_cast<off_t>(in_offset_));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    read_error_ = std::strerror(errno);
    return false;
  }
  if (r == 0) return false;
  in_offset_ += static_cast<std::uint64_t>(r);
  zs_->z.next_in = in_.data();
  zs_->z.avail_in = static_cast<uInt>(r);
  return true;
}

std::expected<std::size_t, std::string> GzipReader::inflateInto(std::span<char> out) {
  z_stream& z = zs_->z;
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size(), UINT_MAX));
  const uInt wanted = z.avail_out;
  std::optional<std::string> error;
  while (z.avail_out > 0) {
    if (member_ended_) {
      if (z.avail_in == 0 && !fill()) {
        if (!read_error_.empty()) error = "read error: " + read_error_;
        ended_ = true;
        break;
      }
      if (z.next_in[0] != kGzipMagic0) {  // trailing bytes that start no member: ignored
        ended_ = true;
        break;
      }
      inflateReset(&z);
      member_ended_ = false;
    }
    if (z.avail_in == 0 && !fill()) {
      error = read_error_.empty() ? std::string("truncated: the file ends inside a gzip member")
                                  : "read error: " + read_error_;
      break;
    }
    const int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      member_ended_ = true;
      continue;
    }
    if (rc == Z_OK || (rc == Z_BUF_ERROR && z.avail_in == 0)) continue;
    error =
        std::string("corrupt: ") + (z.msg != nullptr ? z.msg : "zlib error " + std::to_string(rc));
    break;
  }
  const std::size_t produced = wanted - z.avail_out;
  if (error) {
    if (produced == 0) {
      ended_ = true;
      return std::unexpected(std::move(*error));
    }
    error_ = std::move(error);  // after the bytes that decoded
  }
  return produced;
}

std::expected<std::size_t, std::string> GzipReader::read(std::span<char> out) {
  if (out.empty()) return 0;
  if (!pending_.empty()) {
    const std::size_t n = std::min(out.size(), pending_.size());
    std::memcpy(out.data(), pending_.data(), n);
    pending_.erase(0, n);
    return n;
  }
  if (error_) {
    std::string e = std::move(*error_);
    error_.reset();
    ended_ = true;
    return std::unexpected(std::move(e));
  }
  if (ended_) return 0;
  auto n = inflateInto(out);
  if (n) produced_ += *n;
  return n;
}

std::expected<void, std::string> GzipReader::skip(std::uint64_t n, std::span<char> scratch) {
  while (n > 0) {
    const auto got = read(scratch.first(static_cast<std::size_t>(
        std::min<std::uint64_t>(n, static_cast<std::uint64_t>(scratch.size())))));
    if (!got) return std::unexpected(got.error());
    if (*got == 0) return {};
    n -= *got;
  }
  return {};
}

void GzipReader::unread(std::string_view bytes) { pending_.insert(0, bytes); }

std::optional<std::uint32_t> gzipTrailerSize(int fd, std::uint64_t file_size) {
  if (file_size < kMinGzipFileBytes) return std::nullopt;
  std::array<unsigned char, 4> b{};
  ssize_t r = -1;
  do {
    r = ::pread(fd, b.data(), b.size(), static_cast<off_t>(file_size - b.size()));
  } while (r < 0 && errno == EINTR);
  if (r != static_cast<ssize_t>(b.size())) return std::nullopt;
  return static_cast<std::uint32_t>(b[0]) | static_cast<std::uint32_t>(b[1]) << 8 |
         static_cast<std::uint32_t>(b[2]) << 16 | static_cast<std::uint32_t>(b[3]) << 24;
}

}  // namespace nodewarden::logs
