// CRI and Docker json-file record parsers, RFC 3339 timestamps, and the partial-line joiner.
// Specs: RFC 3339 section 5.6 (timestamps); kubelet's reader of both formats,
// kubernetes pkg/kubelet/kuberuntime/logs/logs.go (parseCRILog, parseDockerJSONLog); RFC 8259
// (JSON strings and numbers); moby daemon/logger/jsonfilelog (the writer of json-file logs).
//
// What a reader gets wrong: the Docker scanner is not a JSON library. It accepts exactly one flat
// object whose "log", "stream" and "time" members are strings; any other member is skipped
// (validated, nesting bounded) and duplicates follow encoding/json (the last one wins). Bytes are
// never validated as UTF-8: a log line is bytes, Loki stores bytes, and the runtime, not the agent,
// owns what a container printed. Only a \u escape is turned into UTF-8, with lone surrogates
// replaced by U+FFFD as Go's encoding/json does.
#include "collectors/logs/container_log_parser.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "collectors/common/rfc3339.h"

namespace nodewarden::logs {

namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
// Nesting of skipped members ("attrs":{...}) is tracked in one 64-bit word, one bit per level.
constexpr int kMaxJsonDepth = 64;
// The longest escaped spelling of "stream": six \uXXXX escapes.
constexpr std::size_t kMaxEscapedKeyBytes = 36;

bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

constexpr std::uint32_t kReplacementChar = 0xFFFD;

// A cursor over one Docker record. Every scan* member leaves pos_ after what it consumed and
// returns false on malformed input.
class JsonScanner {
 public:
  explicit JsonScanner(std::string_view text) : text_(text) {}

  void skipSpace() {
    while (pos_ < text_.size() && isJsonSpace(text_[pos_])) {
      ++pos_;
    }
  }
  [[nodiscard]] bool atEnd() const { return pos_ >= text_.size(); }
  [[nodiscard]] char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  // A string starting at '"'. raw is set to the bytes between the quotes, still escaped;
  // has_escape says whether raw contains a backslash.
  bool scanString(std::string_view& raw, bool& has_escape) {
    if (!consume('"')) {
      return false;
    }
    const std::size_t start = pos_;
    has_escape = false;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '"') {
        raw = text_.substr(start, pos_ - start);
        ++pos_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        return false;  // RFC 8259 section 7: control characters must be escaped
      }
      if (c == '\\') {
        has_escape = true;
        if (pos_ + 1 >= text_.size()) {
          return false;
        }
        const char e = text_[pos_ + 1];
        if (e == 'u') {
          if (pos_ + 6 > text_.size()) {
            return false;
          }
          for (std::size_t i = 2; i < 6; ++i) {
            if (hexValue(text_[pos_ + i]) < 0) {
              return false;
            }
          }
          pos_ += 6;
          continue;
        }
        if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' &&
            e != 't') {
          return false;
        }
        pos_ += 2;
        continue;
      }
      ++pos_;
    }
    return false;
  }

  // A number as RFC 8259 section 6 defines it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool scanNumber() {
    consume('-');
    if (consume('0')) {
      // no further integer digits after a leading zero
    } else if (isDigit(peek())) {
      while (isDigit(peek())) {
        ++pos_;
      }
    } else {
      return false;
    }
    if (consume('.')) {
      if (!isDigit(peek())) {
        return false;
      }
      while (isDigit(peek())) {
        ++pos_;
      }
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (!consume('+')) {
        consume('-');
      }
      if (!isDigit(peek())) {
        return false;
      }
      while (isDigit(peek())) {
        ++pos_;
      }
    }
    return true;
  }

  bool scanLiteral(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      return false;
    }
    pos_ += word.size();
    return true;
  }

  // Any JSON value, validated and discarded. Nesting is iterative: bit i of `arrays` says whether
  // open container i is an array.
  bool skipValue() {
    std::uint64_t arrays = 0;
    int depth = 0;
    std::string_view unused;
    bool unused_escape = false;
    for (;;) {
      skipSpace();
      // A value.
      const char c = peek();
      if (c == '{' || c == '[') {
        if (depth == kMaxJsonDepth) {
          return false;
        }
        ++pos_;
        const bool is_array = c == '[';
        arrays =
            is_array ? arrays | (std::uint64_t{1} << depth) : arrays & ~(std::uint64_t{1} << depth);
        ++depth;
        skipSpace();
        if (consume(is_array ? ']' : '}')) {
          --depth;
        } else {
          if (!is_array && !memberKey()) {
            return false;
          }
          continue;  // the first element or member value
        }
      } else if (c == '"') {
        if (!scanString(unused, unused_escape)) {
          return false;
        }
      } else if (c == 't') {
        if (!scanLiteral("true")) {
          return false;
        }
      } else if (c == 'f') {
        if (!scanLiteral("false")) {
          return false;
        }
      } else if (c == 'n') {
        if (!scanLiteral("null")) {
          return false;
        }
      } else if (!scanNumber()) {
        return false;
      }
      // After a value: close containers or move to the next element.
      for (;;) {
        if (depth == 0) {
          return true;
        }
        skipSpace();
        const bool in_array = (arrays >> (depth - 1)) & 1U;
        if (consume(',')) {
          if (!in_array) {
            skipSpace();
            if (!memberKey()) {
              return false;
            }
          }
          break;  // the next value
        }
        if (!consume(in_array ? ']' : '}')) {
          return false;
        }
        --depth;
      }
    }
  }

 private:
  // `"key" :` inside a skipped object.
  bool memberKey() {
    std::string_view unused;
    bool unused_escape = false;
    if (!scanString(unused, unused_escape)) {
      return false;
    }
    skipSpace();
    return consume(':');
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// Decodes the inside of a JSON string (already validated by scanString) into out.
void unescapeJson(std::string_view raw, std::string& out) {
  std::size_t i = 0;
  while (i < raw.size()) {
    // Copy the run up to the next escape in one append.
    std::size_t next = raw.find('\\', i);
    if (next == std::string_view::npos) {
      next = raw.size();
    }
    out.append(raw.data() + i, next - i);
    i = next;
    if (i >= raw.size()) {
      break;
    }
    const char e = raw[i + 1];
    i += 2;
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        auto hex4 = [&raw](std::size_t at) {
          std::uint32_t v = 0;
          for (std::size_t k = 0; k < 4; ++k) {
            v = (v << 4) | static_cast<std::uint32_t>(hexValue(raw[at + k]));
          }
          return v;
        };
        std::uint32_t cp = hex4(i);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          // A high surrogate is a code point only with a low one right after it.
          if (i + 6 <= raw.size() && raw[i] == '\\' && raw[i + 1] == 'u') {
            const std::uint32_t low = hex4(i + 2);
            if (low >= 0xDC00 && low <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
              i += 6;
            } else {
              cp = kReplacementChar;  // the next escape is decoded on its own
            }
          } else {
            cp = kReplacementChar;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = kReplacementChar;
        }
        appendUtf8(out, cp);
        break;
      }
      default:  // '"', '\\', '/'
        out.push_back(e);
        break;
    }
  }
}

std::expected<LogStream, LineError> streamFromName(std::string_view name) {
  if (name == "stdout") {
    return LogStream::kStdout;
  }
  if (name == "stderr") {
    return LogStream::kStderr;
  }
  return std::unexpected(LineError::kBadStream);
}

// Where a cut at `size` bytes of `text` is safe: moved back to the start of a UTF-8 sequence the
// cut would split. Bytes that are not well-formed UTF-8 are cut where they fall.
std::size_t utf8CutPoint(std::string_view text, std::size_t size) {
  if (size >= text.size()) {
    return text.size();
  }
  // Look back at most 3 bytes for the lead byte of the sequence that contains text[size].
  std::size_t lead = size;
  for (std::size_t back = 0; back < 4 && lead > 0; ++back) {
    const auto byte = static_cast<unsigned char>(text[lead]);
    if ((byte & 0xC0) != 0x80) {
      break;  // text[lead] is not a continuation byte
    }
    --lead;
  }
  const auto byte = static_cast<unsigned char>(text[lead]);
  std::size_t length = 0;
  if (byte >= 0xC2 && byte <= 0xDF) {
    length = 2;
  } else if (byte >= 0xE0 && byte <= 0xEF) {
    length = 3;
  } else if (byte >= 0xF0 && byte <= 0xF4) {
    length = 4;
  }
  if (lead < size && lead + length > size) {
    // Only back off if the bytes from the lead up to the cut really are continuations.
    for (std::size_t k = lead + 1; k < lead + length && k < text.size(); ++k) {
      if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) {
        return size;
      }
    }
    return lead;
  }
  return size;
}

}  // namespace

const char* streamName(LogStream s) {
  switch (s) {
    case LogStream::kStdout:
      return "stdout";
    case LogStream::kStderr:
      return "stderr";
  }
  return "unknown";
}

const char* lineErrorName(LineError e) {
  switch (e) {
    case LineError::kEmpty:
      return "empty";
    case LineError::kBadTimestamp:
      return "bad_timestamp";
    case LineError::kBadStream:
      return "bad_stream";
    case LineError::kBadTag:
      return "bad_tag";
    case LineError::kBadJson:
      return "bad_json";
  }
  return "unknown";
}

// RFC 3339 section 5.6 through the agent's one parser (collectors/common/rfc3339.h), with the
// fraction at most nine digits. Stricter than the RFC in two ways Go's time.Parse (and so kubelet)
// is as well: a leap second (:60) is rejected, and the result must fit int64 nanoseconds
// (1677-09-21 .. 2262-04-11 UTC).
std::expected<std::int64_t, LineError> parseRfc3339Nano(std::string_view text) {
  const auto bad = std::unexpected(LineError::kBadTimestamp);
  const std::optional<rfc3339::Fields> fields = rfc3339::parse(text);
  if (!fields || fields->leap_second || fields->fraction_digits > 9) return bad;
  // Local time minus its offset is UTC.
  std::int64_t seconds = fields->local_seconds - fields->offset_seconds;
  std::int64_t fraction = fields->nanos;
  // Before the epoch, borrow a second into the fraction so that the earliest representable
  // instant (1677-09-21T00:12:43.145224192Z) does not overflow in the multiplication.
  if (seconds < 0 && fraction > 0) {
    seconds += 1;
    fraction -= kNanosPerSecond;
  }
  std::int64_t nanos = 0;
  if (__builtin_mul_overflow(seconds, kNanosPerSecond, &nanos) ||
      __builtin_add_overflow(nanos, fraction, &nanos)) {
    return bad;
  }
  return nanos;
}

// kubelet's parseCRILog: fields separated by single spaces; the tag field may carry further
// ':'-separated tags (cri-api's LogTagDelimiter), of which only the first is read. Unlike kubelet,
// a record that ends right after its tag is accepted as an empty message (some runtimes write
// "... F" for an empty line), and a first tag other than P or F is an error, not a full line.
std::expected<ParsedLine, LineError> parseCriLine(std::string_view record) {
  if (record.empty()) {
    return std::unexpected(LineError::kEmpty);
  }
  ParsedLine out;
  const std::size_t ts_end = record.find(' ');
  const auto ts =
      parseRfc3339Nano(record.substr(0, ts_end == std::string_view::npos ? record.size() : ts_end));
  if (!ts) {
    return std::unexpected(ts.error());
  }
  out.timestamp_ns = *ts;
  if (ts_end == std::string_view::npos) {
    return std::unexpected(LineError::kBadStream);
  }
  const std::size_t stream_begin = ts_end + 1;
  const std::size_t stream_end = record.find(' ', stream_begin);
  if (stream_end == std::string_view::npos) {
    // "<ts> stdout" with no tag at all is a missing tag if the stream itself is valid.
    return streamFromName(record.substr(stream_begin)).has_value()
               ? std::unexpected(LineError::kBadTag)
               : std::unexpected(LineError::kBadStream);
  }
  const auto stream = streamFromName(record.substr(stream_begin, stream_end - stream_begin));
  if (!stream) {
    return std::unexpected(stream.error());
  }
  out.stream = *stream;
  const std::size_t tag_begin = stream_end + 1;
  std::size_t tag_end = record.find(' ', tag_begin);
  std::size_t message_begin = record.size();
  if (tag_end == std::string_view::npos) {
    tag_end = record.size();
  } else {
    message_begin = tag_end + 1;
  }
  std::string_view tags = record.substr(tag_begin, tag_end - tag_begin);
  const std::string_view first_tag = tags.substr(0, tags.find(':'));
  if (first_tag == "P") {
    out.partial = true;
  } else if (first_tag != "F") {
    return std::unexpected(LineError::kBadTag);
  }
  out.message = record.substr(message_begin);
  return out;
}

// moby's jsonfilelog writes one JSONLog object per record: {"log":..,"stream":..,"attrs":..,
// "time":..}. A log that ends in '\n' is a whole line; moby splits lines longer than 16 KiB into
// records without it (and the last record of a stream closed mid-line has none either).
std::expected<ParsedLine, LineError> parseDockerLine(std::string_view record,
                                                     std::string& scratch) {
  struct Member {
    std::string_view raw;  // between the quotes, still escaped
    bool escaped = false;
    bool seen = false;
  };
  Member log;
  Member stream;
  Member time;
  JsonScanner in(record);
  in.skipSpace();
  if (in.atEnd()) {
    return std::unexpected(LineError::kEmpty);
  }
  if (!in.consume('{')) {
    return std::unexpected(LineError::kBadJson);
  }
  in.skipSpace();
  if (!in.consume('}')) {
    for (;;) {
      in.skipSpace();
      std::string_view key;
      bool key_escaped = false;
      if (!in.scanString(key, key_escaped)) {
        return std::unexpected(LineError::kBadJson);
      }
      in.skipSpace();
      if (!in.consume(':')) {
        return std::unexpected(LineError::kBadJson);
      }
      in.skipSpace();
      // moby never escapes keys, but encoding/json would read "l\u006fg" as "log"; so do we. The
      // decoded key is short (SSO) and this path is never taken for moby's records.
      std::string decoded_key;
      if (key_escaped && key.size() <= kMaxEscapedKeyBytes) {
        unescapeJson(key, decoded_key);
        key = decoded_key;
      }
      Member* member = nullptr;
      if (key == "log") {
        member = &log;
      } else if (key == "stream") {
        member = &stream;
      } else if (key == "time") {
        member = &time;
      }
      if (member != nullptr && in.peek() == '"') {
        // Duplicates: the last one wins, as in encoding/json.
        if (!in.scanString(member->raw, member->escaped)) {
          return std::unexpected(LineError::kBadJson);
        }
        member->seen = true;
      } else {
        if (!in.skipValue()) {
          return std::unexpected(LineError::kBadJson);
        }
        if (member != nullptr) {
          member->seen = false;  // a known member that is not a string counts as missing
        }
      }
      in.skipSpace();
      if (in.consume(',')) {
        continue;
      }
      if (in.consume('}')) {
        break;
      }
      return std::unexpected(LineError::kBadJson);
    }
  }
  in.skipSpace();
  if (!in.atEnd() || !log.seen) {
    return std::unexpected(LineError::kBadJson);
  }
  // Timestamps and stream names are ASCII and moby writes them unescaped; an escaped one is
  // decoded off the hot path into a local string.
  std::string unescaped;
  auto plain = [&unescaped](const Member& m) {
    if (!m.escaped) {
      return m.raw;
    }
    unescaped.clear();
    unescapeJson(m.raw, unescaped);
    return std::string_view(unescaped);
  };
  if (!time.seen) {
    return std::unexpected(LineError::kBadTimestamp);
  }
  const auto ts = parseRfc3339Nano(plain(time));
  if (!ts) {
    return std::unexpected(ts.error());
  }
  if (!stream.seen) {
    return std::unexpected(LineError::kBadStream);
  }
  const auto stream_kind = streamFromName(plain(stream));
  if (!stream_kind) {
    return std::unexpected(stream_kind.error());
  }
  ParsedLine out;
  out.timestamp_ns = *ts;
  out.stream = *stream_kind;
  std::string_view message = log.raw;
  if (log.escaped) {
    scratch.clear();  // keeps its capacity
    unescapeJson(log.raw, scratch);
    message = scratch;
  }
  if (!message.empty() && message.back() == '\n') {
    message.remove_suffix(1);
  } else {
    out.partial = true;
  }
  out.message = message;
  return out;
}

LogFormat detectFormat(std::string_view first_record) {
  std::size_t i = 0;
  while (i < first_record.size() && isJsonSpace(first_record[i])) {
    ++i;
  }
  if (i < first_record.size() && first_record[i] == '{') {
    std::string scratch;  // once per file
    return parseDockerLine(first_record, scratch) ? LogFormat::kDocker : LogFormat::kUnknown;
  }
  return parseCriLine(first_record) ? LogFormat::kCri : LogFormat::kUnknown;
}

bool PartialJoiner::add(const ParsedLine& record) {
  if (complete_) {
    line_.clear();  // keeps its capacity: no allocation per line once warmed up
    timestamp_ns_ = record.timestamp_ns;
    truncated_ = false;
    complete_ = false;
  }
  if (!truncated_) {
    const std::size_t room = max_bytes_ - line_.size();
    if (record.message.size() <= room) {
      line_.append(record.message);
    } else {
      // Keep what fits, backed off to a UTF-8 boundary so a valid line stays valid; the rest of
      // the line, up to its last record, is dropped.
      line_.append(record.message.substr(0, utf8CutPoint(record.message, room)));
      truncated_ = true;
    }
  }
  if (!record.partial) {
    complete_ = true;
  }
  return complete_;
}

bool PartialJoiner::flush() {
  if (complete_) {
    return false;
  }
  complete_ = true;
  return true;
}

}  // namespace nodewarden::logs
