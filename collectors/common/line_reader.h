// LineReader and FieldReader: the walk over the lines of a kernel text file and over the
// blank-separated fields of one line, shared by the /proc and cgroup parsers. Views into the
// caller's buffer; nothing is allocated.
//
// What a reader gets wrong: neither judges the text. A last line without its '\n' is returned like
// any other (the /proc parsers reject it beforehand, the cgroup parsers accept it), and only ' '
// and '\t' separate fields: a '\r' or a '\n' inside a line is part of a field, so a number that
// carries one fails to parse instead of being read up to it.
#pragma once

#include <cstddef>
#include <string_view>

namespace nodewarden {

// Walks the '\n'-separated lines of text, the last one with or without its '\n'.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : rest_(text) {}
  bool next(std::string_view& line) {
    if (rest_.empty()) return false;
    const std::size_t nl = rest_.find('\n');
    line = rest_.substr(0, nl);
    rest_.remove_prefix(nl == std::string_view::npos ? rest_.size() : nl + 1);
    return true;
  }

 private:
  std::string_view rest_;
};

// Splits one line into fields separated by runs of blanks (' ', '\t').
class FieldReader {
 public:
  explicit FieldReader(std::string_view line) : rest_(line) {}
  bool next(std::string_view& field) {
    skipBlanks();
    if (rest_.empty()) return false;
    std::size_t end = 0;
    while (end < rest_.size() && !isBlank(rest_[end])) ++end;
    field = rest_.substr(0, end);
    rest_.remove_prefix(end);
    return true;
  }
  bool atEnd() {
    skipBlanks();
    return rest_.empty();
  }
  // What the fields taken so far left of the line, blanks included.
  [[nodiscard]] std::string_view rest() const { return rest_; }

 private:
  static constexpr bool isBlank(char c) { return c == ' ' || c == '\t'; }
  void skipBlanks() {
    while (!rest_.empty() && isBlank(rest_.front())) rest_.remove_prefix(1);
  }
  std::string_view rest_;
};

}  // namespace nodewarden
