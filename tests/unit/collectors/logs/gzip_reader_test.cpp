// Tests of GzipReader on memfd files: streaming in small buffers, concatenated members, skip() and
// unread() positions, the trailer's size, and damage (truncated, corrupt, not gzip) ending the
// stream after what decoded.
//
// What a reader gets wrong: "decodes" is checked byte for byte against the text compressed, and
// every damaged input must reach the end (read() returning 0) in a bounded number of calls.
#include "collectors/logs/gzip_reader.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <string>
#include <vector>

namespace nodewarden::logs {
namespace {

std::string gzipped(std::string_view text) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&zs, text.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A file holding bytes, closed at the end of the test.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) : fd_(::memfd_create("gz", MFD_CLOEXEC)) {
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_;
};

std::string text(int lines) {
  std::string t;
  for (int i = 0; i < lines; ++i) t += "line " + std::to_string(i) + " of some log text\n";
  return t;
}

// Reads everything in chunks of n; the error, if any, in error.
std::string readAll(GzipReader& r, std::size_t n, std::string* error = nullptr) {
  std::string out;
  std::vector<char> buf(n);
  for (int calls = 0; calls < 1000000; ++calls) {
    const auto got = r.read(buf);
    if (!got) {
      if (error != nullptr) *error = got.error();
      continue;
    }
    if (*got == 0) return out;
    out.append(buf.data(), *got);
  }
  ADD_FAILURE() << "the stream never ended";
  return out;
}

TEST(GzipReaderTest, StreamsInSmallBuffersWithASmallInputBuffer) {
  const std::string t = text(5000);
  const MemFile f(gzipped(t));
  GzipReader r(f.fd(), 100);
  EXPECT_EQ(readAll(r, 7), t);
  EXPECT_EQ(r.position(), t.size());
  std::vector<char> buf(16);
  EXPECT_EQ(r.read(buf), 0U);  // the end stays the end
}

TEST(GzipReaderTest, ConcatenatedMembersAreOneStreamAndTrailingJunkIsIgnored) {
  const MemFile f(gzipped("first\n") + gzipped("second\n") + std::string(8, '\0'));
  GzipReader r(f.fd());
  std::string error;
  EXPECT_EQ(readAll(r, 3, &error), "first\nsecond\n");
  EXPECT_EQ(error, "");
}

TEST(GzipReaderTest, SkipAndUnreadMovePositions) {
  const std::string t = text(100);
  const MemFile f(gzipped(t));
  GzipReader r(f.fd());
  std::vector<char> scratch(10);
  ASSERT_TRUE(r.skip(1000, scratch));
  EXPECT_EQ(r.position(), 1000U);
  std::vector<char> buf(50);
  ASSERT_EQ(r.read(buf), 50U);
  r.unread(std::string_view(buf.data() + 20, 30));
  EXPECT_EQ(r.position(), 1020U);
  EXPECT_EQ(readAll(r, 64), t.substr(1020));
  ASSERT_TRUE(r.skip(10, scratch));  // past the end: stops there
  EXPECT_EQ(r.position(), t.size());
}

TEST(GzipReaderTest, TrailerSizeIsTheUncompressedSize) {
  const std::string t = text(300);
  const std::string gz = gzipped(t);
  const MemFile f(gz);
  EXPECT_EQ(gzipTrailerSize(f.fd(), gz.size()), static_cast<std::uint32_t>(t.size()));
  const MemFile tiny("x");
  EXPECT_EQ(gzipTrailerSize(tiny.fd(), 1), std::nullopt);
}

TEST(GzipReaderTest, DamageEndsTheStreamAfterWhatDecoded) {
  const std::string t = text(3000);
  const std::string gz = gzipped(t);
  std::string flip = gz;
  for (std::size_t i = gz.size() / 2; i < gz.size() / 2 + 32; ++i) flip[i] ^= 0x5a;
  const std::string& flipped = flip;
  const std::string half = gz.substr(0, gz.size() / 2);
  const std::string junk = "junk";
  const std::string empty;
  const std::string no_trailer = gz.substr(0, gz.size() - 4);
  for (const std::string* bad_file : {&half, &flipped, &junk, &empty, &no_trailer}) {
    const std::string& bad = *bad_file;
    const MemFile f(bad);
    GzipReader r(f.fd(), 512);
    std::string error;
    const std::string out = readAll(r, 4096, &error);
    EXPECT_FALSE(error.empty());
    // Before the damage the bytes are right (after it, a corrupt block may decode to anything
    // until the checksum says otherwise).
    const std::size_t before = std::min(out.size(), t.size() / 4);
    EXPECT_EQ(out.substr(0, before), t.substr(0, before));
    if (&bad != &flipped) {
      EXPECT_EQ(out, t.substr(0, out.size()));
    }
  }
}

}  // namespace
}  // namespace nodewarden::logs
