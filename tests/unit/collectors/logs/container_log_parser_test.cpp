// Tests of the CRI and Docker json-file record parsers, RFC 3339 timestamps and PartialJoiner,
// against the corpus in tests/fixtures/logs/parser (also the fuzz target's seeds).
//
// What a reader gets wrong: the expected values here are written out by hand (timestamps computed
// independently, e.g. with Python's datetime), never produced by the code under test, so a test
// that passes says the parser agrees with the formats, not with itself.
#include "collectors/logs/container_log_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace nodewarden::logs {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
// 2024-03-01T10:00:00Z
constexpr std::int64_t kMarch1 = 1'709'287'200 * kSecond;
constexpr std::size_t kCap = 1024;

std::vector<std::string> readRecords(const std::string& name) {
  const std::string path = std::string(NODEWARDEN_FIXTURES) + "/logs/parser/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.is_open()) << path;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) {
      end = text.size();
    }
    records.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return records;
}

struct Record {
  std::int64_t ts;
  LogStream stream;
  bool partial;
  std::string message;
  bool operator==(const Record&) const = default;
};

void PrintTo(const Record& r, std::ostream* os) {
  *os << "{" << r.ts << ", " << streamName(r.stream) << ", " << (r.partial ? "P" : "F") << ", \""
      << r.message << "\"}";
}

// A whole log line out of the joiners.
struct Line {
  LogStream stream;
  std::int64_t ts;
  std::string text;
  bool truncated;
  bool flushed;  // emitted by flush() at the end of the file, not by a final record
  bool operator==(const Line&) const = default;
};

void PrintTo(const Line& l, std::ostream* os) {
  *os << "{" << streamName(l.stream) << ", " << l.ts << ", \"" << l.text.substr(0, 80)
      << (l.text.size() > 80 ? "..." : "") << "\" (" << l.text.size() << " bytes)"
      << (l.truncated ? ", truncated" : "") << (l.flushed ? ", flushed" : "") << "}";
}

std::expected<ParsedLine, LineError> parse(LogFormat format, std::string_view record,
                                           std::string& scratch) {
  return format == LogFormat::kCri ? parseCriLine(record) : parseDockerLine(record, scratch);
}

std::vector<Record> parseAll(LogFormat format, const std::string& name) {
  std::vector<Record> out;
  std::string scratch;
  for (const std::string& record : readRecords(name)) {
    const auto parsed = parse(format, record, scratch);
    EXPECT_TRUE(parsed.has_value()) << name << ": " << record;
    if (parsed) {
      out.push_back(Record{parsed->timestamp_ns, parsed->stream, parsed->partial,
                           std::string(parsed->message)});
    }
  }
  return out;
}

// What the tailer does with a file: parse, join per stream, flush what is left at its end.
std::vector<Line> joinAll(LogFormat format, const std::string& name, std::size_t cap) {
  std::vector<Line> out;
  std::string scratch;
  PartialJoiner joiners[2] = {PartialJoiner(cap), PartialJoiner(cap)};
  for (const std::string& record : readRecords(name)) {
    const auto parsed = parse(format, record, scratch);
    EXPECT_TRUE(parsed.has_value()) << name << ": " << record.substr(0, 100);
    if (!parsed) {
      continue;
    }
    PartialJoiner& joiner = joiners[static_cast<int>(parsed->stream)];
    if (joiner.add(*parsed)) {
      EXPECT_LE(joiner.line().size(), cap);
      out.push_back(Line{parsed->stream, joiner.timestampNs(), std::string(joiner.line()),
                         joiner.truncated(), false});
    }
  }
  for (const LogStream s : {LogStream::kStdout, LogStream::kStderr}) {
    PartialJoiner& joiner = joiners[static_cast<int>(s)];
    if (joiner.flush()) {
      out.push_back(
          Line{s, joiner.timestampNs(), std::string(joiner.line()), joiner.truncated(), true});
    }
  }
  return out;
}

std::vector<std::optional<LineError>> errorsOf(LogFormat format, const std::string& name) {
  std::vector<std::optional<LineError>> out;
  std::string scratch;
  for (const std::string& record : readRecords(name)) {
    const auto parsed = parse(format, record, scratch);
    out.push_back(parsed ? std::nullopt : std::optional<LineError>(parsed.error()));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// RFC 3339

TEST(Rfc3339, AcceptsFractionsAndZones) {
  EXPECT_EQ(parseRfc3339Nano("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339Nano("1969-12-31T23:59:59Z"), -kSecond);
  EXPECT_EQ(parseRfc3339Nano("1969-12-31T23:59:59.5Z"), -kSecond / 2);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00Z"), kMarch1);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01t10:00:00z"), kMarch1);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00.1Z"), kMarch1 + 100'000'000);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00.000001Z"), kMarch1 + 1'000);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00.123456789Z"), kMarch1 + 123'456'789);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T12:00:00+02:00"), kMarch1);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T04:30:00-05:30"), kMarch1);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00-00:00"), kMarch1);
  EXPECT_EQ(parseRfc3339Nano("2024-03-02T09:59:00+23:59"), kMarch1);  // 23:59 ahead
  // The zone can move the date across a month and a (leap) year boundary.
  EXPECT_EQ(parseRfc3339Nano("2024-02-29T23:00:00-11:00"), kMarch1);
  EXPECT_EQ(parseRfc3339Nano("2000-02-29T00:00:00Z"), 951'782'400 * kSecond);
  EXPECT_EQ(parseRfc3339Nano("1900-03-01T00:00:00Z"), -2'203'891'200 * kSecond);
  // The edges of int64 nanoseconds.
  EXPECT_EQ(parseRfc3339Nano("1677-09-21T00:12:43.145224192Z"),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(parseRfc3339Nano("2262-04-11T23:47:16.854775807Z"),
            std::numeric_limits<std::int64_t>::max());
}

// The date and time to the second are remembered from the last valid timestamp: whatever
// follows them is still read (fraction, zone, junk), and a rejected one is never remembered.
TEST(Rfc3339, TimestampsOfTheSameSecondInAnyOrder) {
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00.5Z"), kMarch1 + kSecond / 2);
  EXPECT_FALSE(parseRfc3339Nano("2024-03-01T10:00:00.Z").has_value());
  EXPECT_FALSE(parseRfc3339Nano("2024-03-01T10:00:00ZZ").has_value());
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00+02:00"), kMarch1 - 2 * 3600 * kSecond);
  EXPECT_FALSE(parseRfc3339Nano("2024-04-31T10:00:00Z").has_value());
  EXPECT_FALSE(parseRfc3339Nano("2024-04-31T10:00:00Z").has_value());  // not remembered
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00Z"), kMarch1);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:01Z"), kMarch1 + kSecond);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01T10:00:00.000000001Z"), kMarch1 + 1);
  EXPECT_EQ(parseRfc3339Nano("2024-03-01t10:00:00z"), kMarch1);
}

TEST(Rfc3339, RejectsEverythingElse) {
  for (const std::string_view bad : {
           "",
           "2024-03-01",
           "2024-03-01 10:00:00Z",             // missing T
           "2024-03-01T10:00:00",              // missing zone
           "2024-03-01T10:00Z",                // missing seconds
           "2024-3-01T10:00:00Z",              // one-digit month
           "2024-00-01T10:00:00Z",             // month 0
           "2024-13-01T10:00:00Z",             // month 13
           "2024-01-00T10:00:00Z",             // day 0
           "2024-04-31T10:00:00Z",             // April 31
           "2023-02-29T10:00:00Z",             // not a leap year
           "1900-02-29T10:00:00Z",             // not a leap year (century)
           "2024-03-01T24:00:00Z",             // hour 24
           "2024-03-01T10:60:00Z",             // minute 60
           "2024-03-01T10:00:60Z",             // leap second, rejected like Go's time.Parse
           "2024-03-01T10:00:00.Z",            // empty fraction
           "2024-03-01T10:00:00,5Z",           // comma fraction
           "2024-03-01T10:00:00.1234567890Z",  // ten digits
           "2024-03-01T10:00:00+02",           // short zone
           "2024-03-01T10:00:00+0200",         // zone without colon
           "2024-03-01T10:00:00+02:0",         // short zone minutes
           "2024-03-01T10:00:00+24:00",        // zone hour 24
           "2024-03-01T10:00:00+02:60",        // zone minute 60
           "2024-03-01T10:00:00ZZ",            // junk after zone
           "2024-03-01T10:00:00Z ",            // trailing space
           " 2024-03-01T10:00:00Z",            // leading space
           "+2024-03-01T10:00:00Z",            // sign
           "2024-03-01T10:00:00.-1Z",          // sign in fraction
           "2024-0a-01T10:00:00Z",             // letter
           "1677-09-21T00:12:43.145224191Z",   // before int64 nanoseconds
           "2262-04-11T23:47:16.854775808Z",   // after int64 nanoseconds
           "0000-01-01T00:00:00Z",
           "9999-12-31T23:59:59Z",
       }) {
    const auto parsed = parseRfc3339Nano(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error(), LineError::kBadTimestamp) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// CRI

TEST(CriLine, BasicFixture) {
  const std::vector<Record> expected = {
      {kMarch1 + 123'456'789, LogStream::kStdout, false, "hello world"},
      {kMarch1 + 1 * kSecond, LogStream::kStderr, false, "no fraction"},
      {kMarch1 + 2 * kSecond + 500'000'000, LogStream::kStdout, false, "zone plus two"},
      {kMarch1 + 3 * kSecond + 1'000, LogStream::kStderr, false, "zone minus five thirty"},
      {kMarch1 + 4 * kSecond + 100'000'000, LogStream::kStdout, false, "lowercase z"},
      {kMarch1 + 5 * kSecond, LogStream::kStdout, false, ""},  // "F " then nothing
      {kMarch1 + 6 * kSecond, LogStream::kStdout, false, ""},  // "F" and the end
      {kMarch1 + 7 * kSecond, LogStream::kStdout, false, "  leading spaces kept, trailing too  "},
      {kMarch1 + 8 * kSecond, LogStream::kStdout, false, "forward-compatible tags"},
      {1'709'251'199 * kSecond + 999'999'999, LogStream::kStdout, false, "leap day"},
  };
  EXPECT_EQ(parseAll(LogFormat::kCri, "cri_basic.log"), expected);
}

TEST(CriLine, MessageViewsTheRecord) {
  const std::string record = "2024-03-01T10:00:00Z stderr P part";
  const auto parsed = parseCriLine(record);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->partial);
  EXPECT_EQ(parsed->stream, LogStream::kStderr);
  EXPECT_EQ(parsed->message.data(), record.data() + record.size() - 4);
}

TEST(CriLine, PartialAndInterleavedStreams) {
  const std::int64_t t = kMarch1;
  const std::vector<Line> expected = {
      {LogStream::kStderr, t + 2, "err part one, err end", false, false},
      {LogStream::kStdout, t + 1, "first part second part third part", false, false},
      {LogStream::kStdout, t + 6, "single", false, false},
      {LogStream::kStderr, t + 7, "", false, false},  // "P " then "F": an empty line
      {LogStream::kStdout, t + 9, "cut off by rotation", false, true},
  };
  EXPECT_EQ(joinAll(LogFormat::kCri, "cri_partial_interleaved.log", kCap), expected);
}

TEST(CriLine, InvalidUtf8PassesThrough) {
  const std::vector<Line> expected = {
      {LogStream::kStdout, kMarch1, "bad bytes \xff\xfe kept", false, false},
      {LogStream::kStdout, kMarch1 + kSecond, "truncated \xe2\x82 and overlong \xc0\xaf", false,
       false},
      {LogStream::kStdout, kMarch1 + 2 * kSecond, "valid \xe2\x82\xac euro", false, false},
      // A character split across two partial records is whole again once joined.
      {LogStream::kStderr, kMarch1 + 3 * kSecond, "caf\xc3\xa9 au lait", false, false},
  };
  EXPECT_EQ(joinAll(LogFormat::kCri, "cri_invalid_utf8.log", kCap), expected);
}

TEST(CriLine, LongLinesAreCappedAndTheRestDropped) {
  const std::vector<Line> expected = {
      // 3000 bytes in three records: the first 1024 kept, the rest dropped until the F record.
      {LogStream::kStdout, kMarch1, std::string(1000, 'a') + std::string(24, 'b'), true, false},
      {LogStream::kStdout, kMarch1 + 3 * kSecond, "after long", false, false},
      {LogStream::kStdout, kMarch1 + 4 * kSecond, std::string(1024, 'd'), false, false},
      {LogStream::kStdout, kMarch1 + 5 * kSecond, std::string(1024, 'e'), true, false},
      // The cut at 1024 would split the 3-byte euro sign at 1022..1024: it goes whole.
      {LogStream::kStderr, kMarch1 + 6 * kSecond, std::string(1022, 'f'), true, false},
      {LogStream::kStdout, kMarch1 + 8 * kSecond, std::string(1024, 'g'), true, false},
  };
  EXPECT_EQ(joinAll(LogFormat::kCri, "cri_long_line.log", kCap), expected);
}

TEST(CriLine, MalformedRecords) {
  using E = LineError;
  const std::vector<std::optional<LineError>> expected = {
      E::kEmpty,
      E::kBadTimestamp,  // missing T
      E::kBadStream,     // stdin
      E::kBadTag,        // X
      E::kBadTag,        // no tag
      E::kBadStream,     // nothing after the timestamp
      E::kBadTimestamp,  // month 13
      E::kBadTimestamp,  // February 30
      E::kBadTimestamp,  // 2023-02-29
      E::kBadTimestamp,  // hour 24
      E::kBadTimestamp,  // minute 60
      E::kBadTimestamp,  // leap second
      E::kBadTimestamp,  // empty fraction
      E::kBadTimestamp,  // ten fraction digits
      E::kBadTimestamp,  // no zone
      E::kBadTimestamp,  // +0200
      E::kBadTimestamp,  // +24:00
      E::kBadTimestamp,  // junk after zone
      E::kBadTimestamp,  // garbage
      E::kBadTimestamp,  // leading space
      E::kBadStream,     // two spaces: empty stream
      E::kBadTag,        // lowercase p
      E::kBadTag,        // empty tag
      E::kBadTimestamp,  // before int64 ns
      E::kBadTimestamp,  // after int64 ns
      E::kBadTimestamp,  // letter in month
  };
  EXPECT_EQ(errorsOf(LogFormat::kCri, "cri_malformed.log"), expected);
}

// ---------------------------------------------------------------------------------------------
// Docker json-file

TEST(DockerLine, BasicFixture) {
  const std::vector<Record> expected = {
      {kMarch1 + 123'456'789, LogStream::kStdout, false, "hello world"},
      {kMarch1 + 1 * kSecond, LogStream::kStderr, false, "keys in another order"},
      {kMarch1 + 2 * kSecond + 500'000'000, LogStream::kStdout, false, "with attrs"},
      {kMarch1 + 3 * kSecond + 1'000, LogStream::kStdout, false,
       "escapes: \"q\" \\ / \b\f\r\t end"},
      {kMarch1 + 4 * kSecond + 100'000'000, LogStream::kStdout, false,
       "unicode: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 A"},
      // Lone surrogates become U+FFFD (EF BF BD), as in Go's encoding/json; the escape after a
      // high surrogate that is not a low one is decoded on its own.
      {kMarch1 + 5 * kSecond, LogStream::kStderr, false,
       "lone: \xef\xbf\xbd x \xef\xbf\xbd y \xef\xbf\xbd"
       "A"},
      {kMarch1 + 6 * kSecond, LogStream::kStdout, false, ""},
      {kMarch1 + 7 * kSecond, LogStream::kStderr, false, "spaces around tokens"},
      {kMarch1 + 8 * kSecond, LogStream::kStdout, false, "raw utf8 \xc3\xa9 \xe2\x82\xac ok"},
      {kMarch1 + 9 * kSecond, LogStream::kStdout, false, "duplicate: the last wins"},
      {kMarch1 + 10 * kSecond, LogStream::kStdout, false, "escaped key"},
  };
  EXPECT_EQ(parseAll(LogFormat::kDocker, "docker_basic.log"), expected);
}

TEST(DockerLine, ScratchIsReusedAndPlainMessagesViewTheRecord) {
  std::string scratch;
  scratch.reserve(256);
  const char* const buffer = scratch.data();
  const auto first = parseDockerLine(
      R"({"log":"one\n","stream":"stdout","time":"2024-03-01T10:00:00Z"})", scratch);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->message, "one");
  EXPECT_EQ(first->message.data(), buffer);
  const auto second = parseDockerLine(
      R"({"log":"two\t\n","stream":"stdout","time":"2024-03-01T10:00:00Z"})", scratch);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->message, "two\t");
  EXPECT_EQ(scratch.data(), buffer);  // no reallocation
  // Without any escape (a partial record) the message is a view of the record itself.
  const std::string record = R"({"log":"plain","stream":"stdout","time":"2024-03-01T10:00:00Z"})";
  const auto third = parseDockerLine(record, scratch);
  ASSERT_TRUE(third.has_value());
  EXPECT_TRUE(third->partial);
  EXPECT_EQ(third->message.data(), record.data() + 8);
}

TEST(DockerLine, PartialAndInterleavedStreams) {
  const std::int64_t t = kMarch1;
  const std::vector<Line> expected = {
      {LogStream::kStderr, t + 2, "err part one, err end", false, false},
      {LogStream::kStdout, t + 1, "first part second part third part", false, false},
      {LogStream::kStdout, t + 6, "single", false, false},
      {LogStream::kStdout, t + 7, "cut off by rotation", false, true},
  };
  EXPECT_EQ(joinAll(LogFormat::kDocker, "docker_partial_interleaved.log", kCap), expected);
}

TEST(DockerLine, InvalidUtf8PassesThrough) {
  const std::vector<Line> expected = {
      {LogStream::kStdout, kMarch1, "bad bytes \xff\xfe kept", false, false},
      {LogStream::kStderr, kMarch1 + kSecond, "caf\xc3\xa9 au lait", false, false},
  };
  EXPECT_EQ(joinAll(LogFormat::kDocker, "docker_invalid_utf8.log", kCap), expected);
}

TEST(DockerLine, LongLinesAreCappedAndTheRestDropped) {
  const std::vector<Line> expected = {
      {LogStream::kStdout, kMarch1, std::string(1000, 'a') + std::string(24, 'b'), true, false},
      {LogStream::kStdout, kMarch1 + 3 * kSecond, "after long", false, false},
      // 1023 bytes and a 2-byte e-acute: the cut backs off to 1023.
      {LogStream::kStderr, kMarch1 + 4 * kSecond, std::string(1023, 'h'), true, false},
      // 16384 escaped tabs decode to 16384 bytes.
      {LogStream::kStdout, kMarch1 + 5 * kSecond, std::string(1024, '\t'), true, false},
  };
  EXPECT_EQ(joinAll(LogFormat::kDocker, "docker_long_line.log", kCap), expected);
}

TEST(DockerLine, MalformedRecords) {
  using E = LineError;
  const std::vector<std::optional<LineError>> expected = {
      E::kEmpty,
      E::kBadJson,       // not json
      E::kBadJson,       // no closing brace
      E::kBadJson,       // trailing garbage
      E::kBadJson,       // \x
      E::kBadJson,       // \u12G4
      E::kBadJson,       // raw tab in a string
      E::kBadJson,       // no log
      E::kBadStream,     // no stream
      E::kBadStream,     // stdin
      E::kBadTimestamp,  // no time
      E::kBadTimestamp,  // "yesterday"
      E::kBadJson,       // trailing comma
      E::kBadJson,       // number with a leading zero in attrs
      E::kBadJson,       // missing comma
      E::kBadJson,       // an array, not an object
      E::kBadJson,       // trailing comma in a nested array
      E::kBadJson,       // unterminated string
      E::kBadJson,       // "1."
      E::kBadJson,       // log is a number
      E::kBadTimestamp,  // +05:00:00
      E::kBadJson,       // attrs nested 65 deep (the scanner's bound is 64)
      E::kBadJson,       // "tru"
      E::kBadJson,       // {}
  };
  EXPECT_EQ(errorsOf(LogFormat::kDocker, "docker_malformed.log"), expected);
}

TEST(DockerLine, NestingUpToTheBoundIsSkipped) {
  std::string scratch;
  const std::string record = R"({"log":"x\n","attrs":)" + std::string(64, '[') +
                             std::string(64, ']') +
                             R"(,"stream":"stdout","time":"2024-03-01T10:00:00Z"})";
  const auto parsed = parseDockerLine(record, scratch);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->message, "x");
}

// ---------------------------------------------------------------------------------------------
// Format detection and names

TEST(DetectFormat, FromTheFirstRecord) {
  for (const char* name : {"cri_basic.log", "cri_partial_interleaved.log", "cri_long_line.log",
                           "cri_invalid_utf8.log"}) {
    EXPECT_EQ(detectFormat(readRecords(name).front()), LogFormat::kCri) << name;
  }
  for (const char* name : {"docker_basic.log", "docker_partial_interleaved.log",
                           "docker_long_line.log", "docker_invalid_utf8.log"}) {
    EXPECT_EQ(detectFormat(readRecords(name).front()), LogFormat::kDocker) << name;
  }
  EXPECT_EQ(detectFormat(""), LogFormat::kUnknown);
  EXPECT_EQ(detectFormat("plain text"), LogFormat::kUnknown);
  EXPECT_EQ(detectFormat(R"({"msg":"structured app log"})"), LogFormat::kUnknown);
  EXPECT_EQ(detectFormat("2024-03-01T10:00:00Z stdout X tag"), LogFormat::kUnknown);
}

TEST(Names, StreamsAndErrors) {
  EXPECT_STREQ(streamName(LogStream::kStdout), "stdout");
  EXPECT_STREQ(streamName(LogStream::kStderr), "stderr");
  EXPECT_STREQ(lineErrorName(LineError::kEmpty), "empty");
  EXPECT_STREQ(lineErrorName(LineError::kBadTimestamp), "bad_timestamp");
  EXPECT_STREQ(lineErrorName(LineError::kBadStream), "bad_stream");
  EXPECT_STREQ(lineErrorName(LineError::kBadTag), "bad_tag");
  EXPECT_STREQ(lineErrorName(LineError::kBadJson), "bad_json");
}

// ---------------------------------------------------------------------------------------------
// PartialJoiner

ParsedLine rec(std::int64_t ts, bool partial, std::string_view message) {
  ParsedLine r;
  r.timestamp_ns = ts;
  r.partial = partial;
  r.message = message;
  return r;
}

TEST(PartialJoiner, PendingStateAndTimestampOfTheFirstRecord) {
  PartialJoiner j(kCap);
  EXPECT_FALSE(j.pending());
  EXPECT_FALSE(j.flush());
  EXPECT_FALSE(j.add(rec(10, true, "")));  // an empty partial record still opens a line
  EXPECT_TRUE(j.pending());
  EXPECT_EQ(j.pendingBytes(), 0U);
  EXPECT_FALSE(j.add(rec(11, true, "ab")));
  EXPECT_EQ(j.pendingBytes(), 2U);
  EXPECT_TRUE(j.add(rec(12, false, "c")));
  EXPECT_FALSE(j.pending());
  EXPECT_EQ(j.pendingBytes(), 0U);
  EXPECT_EQ(j.line(), "abc");
  EXPECT_EQ(j.timestampNs(), 10);
  EXPECT_FALSE(j.truncated());
  EXPECT_TRUE(j.add(rec(20, false, "next")));
  EXPECT_EQ(j.line(), "next");
  EXPECT_EQ(j.timestampNs(), 20);
}

TEST(PartialJoiner, TruncationIsPerLine) {
  PartialJoiner j(4);
  EXPECT_FALSE(j.add(rec(1, true, "abc")));
  EXPECT_FALSE(j.add(rec(2, true, "def")));  // "d" fits, then the line is truncated
  EXPECT_FALSE(j.add(rec(3, true, "")));     // room left but dropped: the line is truncated
  EXPECT_TRUE(j.add(rec(4, false, "g")));
  EXPECT_EQ(j.line(), "abcd");
  EXPECT_TRUE(j.truncated());
  EXPECT_TRUE(j.add(rec(5, false, "ok")));
  EXPECT_EQ(j.line(), "ok");
  EXPECT_FALSE(j.truncated());
}

TEST(PartialJoiner, CutNeverSplitsAValidUtf8Sequence) {
  struct Case {
    std::size_t cap;
    std::string_view input;
    std::string_view kept;
  };
  const std::string_view emoji = "ab\xf0\x9f\x98\x80";  // 2 + 4 bytes
  for (const Case& c : {
           Case{2, emoji, "ab"}, Case{3, emoji, "ab"}, Case{5, emoji, "ab"}, Case{6, emoji, emoji},
           Case{1, "\xc3\xa9", ""},
           // Not UTF-8: cut where the cap falls.
           Case{2, "a\x80\x80\x80\x80", "a\x80"}, Case{2, "a\xff\x80", "a\xff"},
           Case{2, "a\xe2z", "a\xe2"},  // a lead byte without its continuations
       }) {
    PartialJoiner j(c.cap);
    ASSERT_TRUE(j.add(rec(0, false, c.input)));
    EXPECT_EQ(j.line(), c.kept) << c.cap << " " << c.input;
    EXPECT_EQ(j.truncated(), c.kept.size() != c.input.size());
  }
}

TEST(PartialJoiner, ZeroCapKeepsNothing) {
  PartialJoiner j(0);
  EXPECT_TRUE(j.add(rec(1, false, "x")));
  EXPECT_EQ(j.line(), "");
  EXPECT_TRUE(j.truncated());
  EXPECT_TRUE(j.add(rec(2, false, "")));
  EXPECT_FALSE(j.truncated());
}

TEST(PartialJoiner, BufferIsReusedAcrossLines) {
  PartialJoiner j(kCap);
  ASSERT_TRUE(j.add(rec(1, false, std::string(kCap, 'x'))));
  const char* const buffer = j.line().data();
  for (int i = 0; i < 100; ++i) {
    ASSERT_FALSE(j.add(rec(2, true, "part ")));
    ASSERT_TRUE(j.add(rec(3, false, "end")));
    ASSERT_EQ(j.line().data(), buffer);
  }
}

}  // namespace
}  // namespace nodewarden::logs
