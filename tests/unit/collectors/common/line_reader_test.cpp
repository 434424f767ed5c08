// LineReader and FieldReader: the line and field walks the /proc and cgroup parsers share.
#include "collectors/common/line_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace nodewarden {
namespace {

// Everything a reader (LineReader or FieldReader) gives for text.
template <typename Reader>
std::vector<std::string> all(std::string_view text) {
  std::vector<std::string> out;
  Reader r(text);
  std::string_view piece;
  while (r.next(piece)) out.emplace_back(piece);
  return out;
}
std::vector<std::string> lines(std::string_view text) { return all<LineReader>(text); }
std::vector<std::string> fields(std::string_view line) { return all<FieldReader>(line); }

TEST(LineReader, LinesWithOrWithoutTheLastNewline) {
  EXPECT_EQ(lines("a\nb\n"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(lines("a\nb"), (std::vector<std::string>{"a", "b"})) << "a cut last line is a line";
  EXPECT_EQ(lines("a\n\nb\n"), (std::vector<std::string>{"a", "", "b"})) << "empty lines kept";
  EXPECT_TRUE(lines("").empty());
  EXPECT_EQ(lines("\n"), (std::vector<std::string>{""}));
}

TEST(FieldReader, FieldsBetweenRunsOfBlanksOnly) {
  EXPECT_EQ(fields("  some\tavg10=0.00   total=5 "),
            (std::vector<std::string>{"some", "avg10=0.00", "total=5"}));
  EXPECT_EQ(fields("12\r 3"), (std::vector<std::string>{"12\r", "3"})) << "\\r is no blank";
  EXPECT_TRUE(fields(" \t ").empty());
}

TEST(FieldReader, AtEndAndTheRestOfTheLine) {
  FieldReader r("8:0 Read  123 ");
  std::string_view f;
  ASSERT_TRUE(r.next(f));
  ASSERT_TRUE(r.next(f));
  EXPECT_EQ(f, "Read");
  EXPECT_EQ(r.rest(), "  123 ") << "what is left, blanks included";
  EXPECT_FALSE(r.atEnd());
  ASSERT_TRUE(r.next(f));
  EXPECT_TRUE(r.atEnd()) << "trailing blanks are no field";
  EXPECT_FALSE(r.next(f));
}

}  // namespace
}  // namespace nodewarden
