// LineReader and FieldReader: the line and field walks the /proc and cgroup parsers share.
#include "collectors/common/line_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace nodewarden {
namespace {

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  LineReader r(text);
  std::string_view line;
  while (r.next(line)) out.emplace_back(line);
  return out;
}

std::vector<std::string> fields(std::string_view line) {
  std::vector<std::string> out;
  FieldReader r(line);
  std::string_view field;
  while (r.next(field)) out.emplace_back(field);
  return out;
}

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
