// The spool's file I/O (pipeline/spool_files.h) on real files: segment names, the directory lock,
// a record appended in two pieces and read back, a read past the end, the ack-style replace, a cut.
//
// What a reader gets wrong: the error texts are checked because the spool reports them as they
// are (errors_total details, logs): they must name the call and the file.
#include "pipeline/spool_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/support/temp_dir.h"

namespace nodewarden::spool_files {
namespace {

namespace fs = std::filesystem;

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(SpoolFiles, SegmentNamesRoundTrip) {
  EXPECT_EQ(segmentName(1), "00000000000000000001.seg");
  EXPECT_EQ(segmentName(12345678901234567890ULL), "12345678901234567890.seg");
  EXPECT_EQ(parseSegmentName("00000000000000000042.seg", 1000), 42U);
  EXPECT_EQ(parseSegmentName(segmentName(999), 1000), 999U);
  EXPECT_FALSE(parseSegmentName("00000000000000001001.seg", 1000).has_value());  // past the bound
  EXPECT_FALSE(parseSegmentName(".seg", 1000).has_value());
  EXPECT_FALSE(parseSegmentName("ack", 1000).has_value());
  EXPECT_FALSE(parseSegmentName("12x.seg", 1000).has_value());
  EXPECT_FALSE(parseSegmentName("12.seg.tmp", 1000).has_value());
}

TEST(SpoolFiles, ADirectoryIsLockedByOneSpoolAtATime) {
  test_support::TempDir tmp("nodewarden-spool-files");
  const fs::path dir = tmp.path() / "a" / "b";
  auto first = lockDirectory(dir);
  ASSERT_TRUE(first.has_value()) << first.error();
  EXPECT_TRUE(fs::is_directory(dir));
  auto second = lockDirectory(dir);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error(), "spool " + dir.string() + " is in use by another spool");
  first->reset();
  EXPECT_TRUE(lockDirectory(dir).has_value());
}

TEST(SpoolFiles, AppendedPiecesReadBackAndAReadPastTheEndSaysSo) {
  test_support::TempDir tmp("nodewarden-spool-files");
  const fs::path path = tmp.path() / segmentName(1);
  {
    auto fd = createSegment(path);
    ASSERT_TRUE(fd.has_value()) << fd.error();
    EXPECT_EQ(appendAll(fd->get(), "head-", "body"), 0);
    EXPECT_EQ(appendAll(fd->get(), "only a head", {}), 0);
    EXPECT_EQ(appendAll(fd->get(), {}, {}), 0);
  }
  EXPECT_EQ(readFile(path), "head-bodyonly a head");
  auto again = createSegment(path);  // never over an existing segment
  ASSERT_FALSE(again.has_value());
  EXPECT_NE(again.error().find("create " + path.string() + ": "), std::string::npos);

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string out(6, '\0');
  EXPECT_EQ(readAt(fd, out.data(), 6, 5), 0);
  EXPECT_EQ(out, "bodyon");
  EXPECT_EQ(readAt(fd, out.data(), 6, 16), -1);  // 4 bytes left
  ::close(fd);
  EXPECT_EQ(appendAll(-1, "x", {}), EBADF);
  EXPECT_EQ(readAt(-1, out.data(), 1, 0), EBADF);

  ASSERT_TRUE(truncateFile(path, 9, false).has_value());
  EXPECT_EQ(readFile(path), "head-body");
  auto missing = truncateFile(tmp.path() / "missing", 0, false);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().find("truncate "), std::string::npos);

  auto mapped = MappedFile::open(path);
  ASSERT_TRUE(mapped.has_value()) << mapped.error();
  EXPECT_EQ(std::string((*mapped)->data(), (*mapped)->size()), "head-body");
}

TEST(SpoolFiles, ReplaceWritesTheWholeFileAndReadPrefixReadsIt) {
  test_support::TempDir tmp("nodewarden-spool-files");
  const fs::path path = tmp.path() / "ack";
  std::array<char, 8> buf{};
  auto none = readPrefix(path, buf.data(), buf.size());
  ASSERT_TRUE(none.has_value()) << none.error();
  EXPECT_FALSE(none->has_value());  // no file is not an error

  ASSERT_TRUE(replaceFile(tmp.path() / "ack.tmp", path, "first version", true).has_value());
  ASSERT_TRUE(replaceFile(tmp.path() / "ack.tmp", path, "second", false).has_value());
  EXPECT_EQ(readFile(path), "second");
  EXPECT_FALSE(fs::exists(tmp.path() / "ack.tmp"));
  auto got = readPrefix(path, buf.data(), 4);
  ASSERT_TRUE(got.has_value() && got->has_value());
  EXPECT_EQ(std::string(buf.data(), **got), "seco");

  auto failed = replaceFile(tmp.path() / "no-such-dir" / "ack.tmp", path, "x", false);
  ASSERT_FALSE(failed.has_value());
  EXPECT_NE(failed.error().find("open " + (tmp.path() / "no-such-dir" / "ack.tmp").string()),
            std::string::npos);
}

}  // namespace
}  // namespace nodewarden::spool_files
