// libFuzzer target for the container log parsers (collectors/logs/container_log_parser.h): every
// line of the input goes to the RFC 3339, CRI and Docker parsers and to format detection, and
// whatever parses is fed to capped PartialJoiners, one per stream, as the tailer does. The input
// is also read as a .gz file through GzipReader (damage must end the stream, never loop), and
// gzip-compressed, then read back in buffers, skips and unreads sized by the input.
//
// What a reader gets wrong: this checks more than "no crash". Messages must view the record or the
// scratch buffer, the joiner must never hold more than its cap, and the hand-written Docker scanner
// is checked against nlohmann::json: whenever both accept a record they must agree byte for byte,
// and a record nlohmann reads as a well-formed json-file entry must not be rejected.
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/logs/container_log_parser.h"
#include "collectors/logs/gzip_reader.h"

namespace {

using namespace nodewarden::logs;

void check(bool invariant) {
  if (!invariant) {
    __builtin_trap();
  }
}

bool within(std::string_view inner, std::string_view outer) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}

void checkJoined(PartialJoiner& joiner, const ParsedLine& line, std::size_t cap) {
  const bool done = joiner.add(line);
  check(done == !line.partial);
  check(joiner.line().size() <= cap);
  check(joiner.pending() == line.partial);
  check(joiner.pendingBytes() <= cap);
}

// The differential check of parseDockerLine against a real JSON parser.
void checkDockerAgainstJson(std::string_view record,
                            const std::expected<ParsedLine, LineError>& ours) {
  // nlohmann's lexer takes a raw NUL for the end of the input, where JSON says it is an error.
  if (record.find('\0') != std::string_view::npos) {
    return;
  }
  std::size_t containers = 0;
  for (const char c : record) {
    containers += (c == '{' || c == '[') ? 1 : 0;
  }
  const nlohmann::json doc = nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return;
  }
  const auto log = doc.find("log");
  const auto stream = doc.find("stream");
  const auto time = doc.find("time");
  if (log == doc.end() || !log->is_string() || stream == doc.end() || !stream->is_string() ||
      time == doc.end() || !time->is_string()) {
    if (ours) {
      __builtin_trap();  // we accepted a record without string log, stream and time
    }
    return;
  }
  const auto& stream_name = stream->get_ref<const std::string&>();
  const bool well_formed = (stream_name == "stdout" || stream_name == "stderr") &&
                           parseRfc3339Nano(time->get_ref<const std::string&>()).has_value();
  if (well_formed && containers <= 64) {
    check(ours.has_value());  // 64 nested containers is the scanner's documented bound
  }
  if (!ours) {
    return;
  }
  check(well_formed);
  const auto& text = log->get_ref<const std::string&>();
  const bool whole = !text.empty() && text.back() == '\n';
  check(ours->partial == !whole);
  check(ours->message == std::string_view(text).substr(0, text.size() - (whole ? 1 : 0)));
  check(ours->stream == (stream_name == "stdout" ? LogStream::kStdout : LogStream::kStderr));
}

// A memfd holding bytes; -1 if one cannot be made.
int memFile(std::string_view bytes) {
  const int fd = ::memfd_create("fuzz-gz", MFD_CLOEXEC);
  if (fd >= 0 && ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads fd through GzipReader in buffers of `step`, giving back `back` bytes of every read once;
// checks the positions and that the stream ends. Returns what it decoded.
std::string readGzip(int fd, std::size_t step, std::size_t back) {
  nodewarden::logs::GzipReader reader(fd, 64 + step * 7);
  std::vector<char> buf(step);
  std::string out;
  bool gave_back = false;
  for (int calls = 0;; ++calls) {
    check(calls < (1 << 22));  // every input ends
    const auto got = reader.read(buf);
    if (!got) {
      continue;
    }
    if (*got == 0) {
      break;
    }
    check(*got <= buf.size());
    if (!gave_back && back > 0 && back <= *got) {
      reader.unread(std::string_view(buf.data() + (*got - back), back));
      out.append(buf.data(), *got - back);
      gave_back = true;
    } else {
      out.append(buf.data(), *got);
      gave_back = false;
    }
    check(reader.position() == out.size());
  }
  return out;
}

void checkGzip(std::string_view text) {
  const std::size_t step = text.empty() ? 1 : 1 + static_cast<std::uint8_t>(text.back()) % 97;
  const std::size_t back = step / 2;
  if (const int fd = memFile(text); fd >= 0) {
    (void)readGzip(fd, step, back);  // mostly damage: must end, not crash
    ::close(fd);
  }
  // The round trip: what zlib compressed comes back byte for byte.
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return;
  }
  std::string gz(deflateBound(&zs, text.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = static_cast<uInt>(gz.size());
  const int rc = deflate(&zs, Z_FINISH);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  check(rc == Z_STREAM_END);
  if (const int fd = memFile(gz); fd >= 0) {
    check(readGzip(fd, step, back) == text);
    nodewarden::logs::GzipReader skipper(fd);
    std::vector<char> scratch(step);
    check(skipper.skip(text.size() / 2, scratch).has_value());
    check(skipper.position() == text.size() / 2);
    check(nodewarden::logs::gzipTrailerSize(fd, gz.size()) ==
          static_cast<std::uint32_t>(text.size()));
    ::close(fd);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Reused across inputs, as the tailer reuses them across lines.
  static std::string scratch;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The cap comes from the input so that the fuzzer reaches truncation with short inputs.
  const std::size_t cap = size == 0 ? 0 : static_cast<std::uint8_t>(text[0]) % 64;
  PartialJoiner cri_joiners[2] = {PartialJoiner(cap), PartialJoiner(cap)};
  PartialJoiner docker_joiners[2] = {PartialJoiner(cap), PartialJoiner(cap)};

  (void)parseRfc3339Nano(text);
  (void)detectFormat(text);
  checkGzip(text);

  std::size_t begin = 0;
  while (begin <= size) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) {
      end = size;
    }
    const std::string_view record = text.substr(begin, end - begin);
    begin = end + 1;

    if (parseRfc3339Nano(record)) {
      check(record.size() >= 20 && record.size() <= 35);
    }

    const LogFormat format = detectFormat(record);
    const auto cri = parseCriLine(record);
    if (cri) {
      check(within(cri->message, record));
      // The message is the record's tail: what precedes it is "<ts> <stream> <tag>[ ]".
      check(cri->message.data() == nullptr ||
            cri->message.data() + cri->message.size() == record.data() + record.size());
      const std::string_view ts = record.substr(0, record.find(' '));
      check(parseRfc3339Nano(ts) == cri->timestamp_ns);
      check(record.substr(ts.size() + 1, 6) == streamName(cri->stream));
      checkJoined(cri_joiners[static_cast<int>(cri->stream)], *cri, cap);
    } else {
      check(record.empty() == (cri.error() == LineError::kEmpty));
      check(cri.error() != LineError::kBadJson);
    }

    const auto docker = parseDockerLine(record, scratch);
    if (docker) {
      check(within(docker->message, record) || within(docker->message, scratch));
      checkJoined(docker_joiners[static_cast<int>(docker->stream)], *docker, cap);
    } else {
      check(docker.error() != LineError::kBadTag);
    }
    checkDockerAgainstJson(record, docker);

    check(format != LogFormat::kCri || cri.has_value());
    check(format != LogFormat::kDocker || docker.has_value());
  }

  for (PartialJoiner* joiners : {cri_joiners, docker_joiners}) {
    for (int s = 0; s < 2; ++s) {
      const bool was_pending = joiners[s].pending();
      check(joiners[s].flush() == was_pending);
      check(!joiners[s].pending());
      check(joiners[s].line().size() <= cap);
    }
  }
  return 0;
}
