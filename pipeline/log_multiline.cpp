#include "pipeline/log_multiline.h"

#include <re2/re2.h>

#include <algorithm>

namespace nodewarden {
namespace multiline {
namespace {

constexpr std::string_view kTraceback = "Traceback (most recent call last):";
constexpr std::string_view kDuringHandling =
    "During handling of the above exception, another exception occurred:";
constexpr std::string_view kDirectCause =
    "The above exception was the direct cause of the following exception:";

std::string_view trimCr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}
bool isIdentChar(char c) { return isIdentStart(c) || isDigit(c); }

std::size_t indentOf(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && (line[n] == ' ' || line[n] == '\t')) ++n;
  return n;
}

}  // namespace

bool isJvmFrame(std::string_view line) {
  const std::size_t indent = indentOf(line);
  if (indent == 0) return false;
  std::string_view rest = line.substr(indent);
  if (!rest.starts_with("at ")) return false;
  rest.remove_prefix(3);
  // `pkg.Class.method(` with no space before the parenthesis and a dot in the name: "at least
  // three replicas" is not a frame. JDK 9+ adds `module/` or `app//` before the class.
  std::size_t dots = 0;
  std::size_t i = 0;
  for (; i < rest.size() && i < 1024; ++i) {
    const char c = rest[i];
    if (c == '(') break;
    if (c == ' ' || c == '\t') return false;
    if (c == '.') ++dots;
  }
  return i > 0 && i < rest.size() && rest[i] == '(' && dots > 0 &&
         rest.find(')', i) != std::string_view::npos;
}

bool isJvmContinuation(std::string_view line) {
  if (isJvmFrame(line)) return true;
  const std::size_t indent = indentOf(line);
  const std::string_view rest = line.substr(indent);
  if (rest.starts_with("Caused by: ") || rest.starts_with("Wrapped by: ")) return true;
  if (indent > 0 && rest.starts_with("Suppressed: ")) return true;
  if (rest.starts_with("... ")) {
    // `... 12 more`, logback's `... 12 common frames omitted`
    std::size_t i = 4;
    const std::size_t digits = i;
    while (i < rest.size() && isDigit(rest[i])) ++i;
    if (i == digits) return false;
    const std::string_view tail = trimCr(rest.substr(i));
    return tail == " more" || tail == " common frames omitted";
  }
  return false;
}

bool isPythonExceptionLine(std::string_view line) {
  // A dotted name (`ValueError`, `requests.exceptions.HTTPError`) alone or followed by ':'.
  line = trimCr(line);
  std::size_t i = 0;
  for (;;) {
    if (i >= line.size() || !isIdentStart(line[i])) return false;
    while (i < line.size() && isIdentChar(line[i])) ++i;
    if (i < line.size() && line[i] == '.') {
      ++i;
      continue;
    }
    break;
  }
  return i == line.size() || line[i] == ':';
}

bool isGoroutineHeader(std::string_view line) {
  if (!line.starts_with("goroutine ")) return false;
  std::size_t i = 10;
  const std::size_t digits = i;
  while (i < line.size() && isDigit(line[i])) ++i;
  // `goroutine 1 [running]:`; Go 1.23 may insert ` gp=0x... m=0 mp=0x...` before the bracket.
  return i > digits && i < line.size() && line[i] == ' ' &&
         line.find('[', i) != std::string_view::npos && trimCr(line).ends_with(":");
}

namespace {

bool isGoFunctionLine(std::string_view line) {
  line = trimCr(line);
  if (line.empty() || line[0] == ' ' || line[0] == '\t') return false;
  return line.ends_with(")") || line.starts_with("created by ") ||
         line == "...additional frames elided...";
}

bool isGoStart(std::string_view line) {
  return line.starts_with("panic: ") || line.starts_with("fatal error: ");
}

}  // namespace
}  // namespace multiline

using multiline::isGoroutineHeader;
using multiline::isJvmContinuation;
using multiline::isJvmFrame;
using multiline::isPythonExceptionLine;

struct MultilineStage::Rule {
  LogSelector match;
  std::unique_ptr<RE2> start;
  std::unique_ptr<RE2> cont;
  bool builtin = false;
};

struct MultilineStage::Source {
  std::string key;
  bool has_last = false;  // last_in holds the position just past the source's last entry
  LogCheckpoint last_in;
  std::vector<Stream*> holders;  // streams with lines of this source held, oldest group first
  bool seen = true;
};

// What a held group must not let another entry of `source` commit past: the source's position
// before the group's first line of it (unknown: the first entry of the source since the start).
struct MultilineStage::Hold {
  Source* source = nullptr;
  bool known = false;
  LogCheckpoint start;
};

struct MultilineStage::Stream {
  Labels labels;
  std::uint64_t id = 0;  // the stream number the group is passed on with
  const Rule* rule = nullptr;
  std::uint64_t rule_generation = 0;
  bool rule_known = false;
  bool seen = true;

  bool held = false;
  std::size_t held_index = 0;
  LogEntry group;
  std::size_t lines = 0;
  Kind kind = Kind::kPlain;
  Phase phase = Phase::kNone;
  Source* source = nullptr;  // of the group's first line
  LogCheckpoint cp;          // passed on with the group: its last line of `source`
  std::vector<Hold> holds;   // reused: its first `hold_count` are in force
  std::size_t hold_count = 0;
  Clock::time_point stamp{};  // when flushDue first saw the group; {}: not yet

  // A blank line that belongs to the group only if what follows does (between a Python
  // traceback and its chained one, between Go's goroutines).
  bool has_blank = false;
  LogEntry blank;
  LogCheckpoint blank_cp;
  Source* blank_source = nullptr;
  bool blank_start_known = false;
  LogCheckpoint blank_start;
};

namespace {

const char* kindName(MultilineStage::Kind kind) {
  switch (kind) {
    case MultilineStage::Kind::kPlain:
      return "plain";
    case MultilineStage::Kind::kJvm:
      return "jvm";
    case MultilineStage::Kind::kPython:
      return "python";
    case MultilineStage::Kind::kGo:
      return "go";
    case MultilineStage::Kind::kCustom:
      return "custom";
  }
  return "plain";
}

constexpr auto kSweepInterval = std::chrono::minutes(1);

// to = from, line after line of one source: its key is the same, only the position moves.
void moveTo(LogCheckpoint& to, const LogCheckpoint& from) {
  if (to.source != from.source) to.source = from.source;
  to.file = from.file;
  to.offset = from.offset;
  if (to.journal_cursor != from.journal_cursor) to.journal_cursor = from.journal_cursor;
}

}  // namespace

std::expected<std::unique_ptr<MultilineStage>, std::string> MultilineStage::create(
    MultilineOptions options, const ContainerMetadata* metadata, prometheus::Registry& registry) {
  std::unique_ptr<MultilineStage> stage(new MultilineStage(std::move(options), metadata, registry));
  RE2::Options re_options;
  re_options.set_log_errors(false);
  for (const MultilineRule& r : stage->options_.rules) {
    auto rule = std::make_unique<Rule>();
    rule->match = r.match;
    const std::string& pattern = r.start.empty() ? r.continue_pattern : r.start;
    auto re = std::make_unique<RE2>(pattern, re_options);
    if (!re->ok()) return std::unexpected("multiline rule \"" + pattern + "\": " + re->error());
    (r.start.empty() ? rule->cont : rule->start) = std::move(re);
    stage->rules_.push_back(std::move(rule));
  }
  if (stage->options_.jvm || stage->options_.python || stage->options_.go) {
    stage->builtin_ = std::make_unique<Rule>();
    stage->builtin_->builtin = true;
  }
  return stage;
}

MultilineStage::MultilineStage(MultilineOptions options, const ContainerMetadata* metadata,
                               prometheus::Registry& registry)
    : options_(std::move(options)), resolver_(metadata) {
  auto& joined = prometheus::BuildCounter()
                     .Name("nodewarden_log_multiline_joined_lines_total")
                     .Help("Log lines joined to the line before them (multiline), by rule.")
                     .Register(registry);
  for (const Kind k : {Kind::kJvm, Kind::kPython, Kind::kGo, Kind::kCustom}) {
    joined_counters_[static_cast<int>(k)] = &joined.Add({{"rule", kindName(k)}});
  }
  auto& cut = prometheus::BuildCounter()
                  .Name("nodewarden_log_multiline_flushes_total")
                  .Help(
                      "Multi-line entries passed on before their next line showed their end, by "
                      "reason: timeout (collectors.logs.multiline.flush_timeout), max_bytes "
                      "(collectors.logs.max_line_bytes), max_lines.")
                  .Register(registry);
  timeout_counter_ = &cut.Add({{"reason", "timeout"}});
  bytes_counter_ = &cut.Add({{"reason", "max_bytes"}});
  lines_counter_ = &cut.Add({{"reason", "max_lines"}});
}

MultilineStage::~MultilineStage() = default;

MultilineStage::Stream& MultilineStage::streamFor(const Labels& labels, std::uint64_t stream_id) {
  if (last_stream_ != nullptr) {
    if (stream_id != 0 ? stream_id == last_id_ : last_stream_->labels == labels) {
      return *last_stream_;
    }
  }
  Stream* stream = nullptr;
  if (stream_id != 0) {
    if (const auto it = by_id_.find(stream_id); it != by_id_.end()) stream = it->second;
  }
  if (stream == nullptr) {
    // By labels: the file a rotation opened has new stream numbers but the same labels, and a
    // trace split by the rotation is joined across the two files.
    auto it = streams_.find(labels);
    if (it == streams_.end()) {
      auto s = std::make_unique<Stream>();
      s->labels = labels;
      it = streams_.emplace(labels, std::move(s)).first;
    }
    stream = it->second.get();
    if (stream_id != 0) by_id_[stream_id] = stream;
  }
  last_stream_ = stream;
  last_id_ = stream_id;
  return *stream;
}

MultilineStage::Source& MultilineStage::sourceFor(const std::string& key) {
  if (last_source_ != nullptr && last_source_->key == key) return *last_source_;
  auto it = sources_.find(key);
  if (it == sources_.end()) {
    auto s = std::make_unique<Source>();
    s->key = key;
    it = sources_.emplace(key, std::move(s)).first;
  }
  last_source_ = it->second.get();
  return *last_source_;
}

const MultilineStage::Rule* MultilineStage::ruleFor(Stream& stream, const Labels& labels,
                                                    const LogEntry& entry) {
  if (rules_.empty()) return builtin_.get();
  const std::uint64_t generation = resolver_.generation();
  if (stream.rule_known && stream.rule_generation == generation) return stream.rule;
  const LogStreamInfo info = resolver_.resolve(labels, entry);
  stream.rule = builtin_.get();
  for (const auto& rule : rules_) {
    if (rule->match.matches(info)) {
      stream.rule = rule.get();
      break;
    }
  }
  stream.rule_known = true;
  stream.rule_generation = generation;
  return stream.rule;
}

const LogCheckpoint& MultilineStage::clamp(const Source& source, const Stream* except,
                                           const LogCheckpoint& checkpoint) {
  for (const Stream* holder : source.holders) {
    if (holder == except) continue;
    for (std::size_t i = 0; i < holder->hold_count; ++i) {
      const Hold& h = holder->holds[i];
      if (h.source != &source) continue;
      if (!h.known) {
        // Nothing of this source was seen before the held group: from its beginning (a file)
        // or from the committed cursor (the journal ignores an empty one).
        scratch_cp_ = checkpoint;
        scratch_cp_.offset = 0;
        scratch_cp_.journal_cursor.clear();
        return scratch_cp_;
      }
      if (h.start.file != checkpoint.file) return checkpoint;  // content replaced since
      if (!h.start.journal_cursor.empty() || h.start.offset < checkpoint.offset) return h.start;
      return checkpoint;
    }
  }
  return checkpoint;
}

void MultilineStage::hold(Stream& stream, Source& source) {
  for (std::size_t i = 0; i < stream.hold_count; ++i) {
    if (stream.holds[i].source == &source) return;
  }
  if (stream.hold_count == stream.holds.size()) stream.holds.emplace_back();
  Hold& h = stream.holds[stream.hold_count++];
  h.source = &source;
  h.known = source.has_last;
  if (h.known) moveTo(h.start, source.last_in);
  source.holders.push_back(&stream);
}

void MultilineStage::release(Stream& stream) {
  for (std::size_t i = 0; i < stream.hold_count; ++i) {
    auto& holders = stream.holds[i].source->holders;
    holders.erase(std::ranges::find(holders, &stream));
  }
  stream.hold_count = 0;
  if (stream.held) {
    held_[stream.held_index] = held_.back();
    held_[stream.held_index]->held_index = stream.held_index;
    held_.pop_back();
    stream.held = false;
  }
}

void MultilineStage::startGroup(Stream& stream, Source& source, const LogEntry& entry,
                                const LogCheckpoint& checkpoint, std::uint64_t stream_id) {
  stream.group.timestamp_ns = entry.timestamp_ns;
  stream.group.line.assign(entry.line);
  stream.group.metadata = entry.metadata;
  stream.lines = 1;
  stream.source = &source;
  moveTo(stream.cp, checkpoint);
  stream.id = stream_id;
  stream.stamp = {};
  hold(stream, source);
  if (!stream.held) {
    stream.held = true;
    stream.held_index = held_.size();
    held_.push_back(&stream);
  }
}

void MultilineStage::appendLine(Stream& stream, Source& source, std::string_view line,
                                const LogCheckpoint& checkpoint) {
  stream.group.line += '\n';
  stream.group.line.append(line);
  ++stream.lines;
  if (&source == stream.source) {
    moveTo(stream.cp, checkpoint);
  } else {
    hold(stream, source);  // a group that a rotation split: see the header
  }
}

bool MultilineStage::passGroup(Stream& stream) {
  // Once no other stream holds lines of the source, everything of it read so far has been passed
  // on with this group: its latest position (a file's last line may be another stream's, passed
  // earlier with a lowered position) may be committed with it.
  // A blank line the stream keeps waiting is a later line of its source: not past it.
  const Source& source = *stream.source;
  const bool blank_after = stream.has_blank && stream.blank_source == stream.source;
  const LogCheckpoint& own =
      !blank_after && source.has_last && source.last_in.file == stream.cp.file ? source.last_in
                                                                               : stream.cp;
  const LogCheckpoint& cp = clamp(source, &stream, own);
  if (!next_->acceptStream(stream.labels, stream.group, cp, stream.id)) return false;
  release(stream);
  if (stream.group.line.capacity() > (64 << 10)) stream.group.line = std::string();
  if (stream.has_blank) {
    // The blank line did not belong to the group: it is held as a line of its own.
    stream.has_blank = false;
    std::swap(stream.group, stream.blank);
    stream.lines = 1;
    stream.kind = Kind::kPlain;
    stream.phase = Phase::kNone;
    stream.source = stream.blank_source;
    stream.cp = stream.blank_cp;
    stream.stamp = {};
    Hold& h = stream.holds.empty() ? stream.holds.emplace_back() : stream.holds[0];
    h.source = stream.source;
    h.known = stream.blank_start_known;
    if (h.known) h.start = stream.blank_start;
    stream.hold_count = 1;
    stream.source->holders.push_back(&stream);
    stream.held = true;
    stream.held_index = held_.size();
    held_.push_back(&stream);
  }
  return true;
}

bool MultilineStage::acceptStream(const Labels& labels, const LogEntry& entry,
                                  const LogCheckpoint& checkpoint, std::uint64_t stream_id) {
  Stream& stream = streamFor(labels, stream_id);
  Source& source = sourceFor(checkpoint.source);
  stream.seen = true;
  source.seen = true;
  const Rule* rule = ruleFor(stream, labels, entry);
  const std::string_view line = entry.line;

  // What the line does to a held group: joins it, waits as a blank line, or ends it.
  enum class Step : std::uint8_t { kJoin, kBlank, kBreak };
  for (int round = 0; round < 2 && stream.held; ++round) {
    Step step = Step::kBreak;
    Phase phase = stream.phase;
    Kind kind = stream.kind;
    const bool blank = line.empty() || line == "\r";
    if (rule == nullptr) {
      step = Step::kBreak;
    } else if (!rule->builtin) {
      if (kind == Kind::kCustom) {
        const bool matched = RE2::PartialMatch(line, rule->start ? *rule->start : *rule->cont);
        step = (rule->start ? !matched : matched) ? Step::kJoin : Step::kBreak;
      }
    } else if (kind == Kind::kPlain) {
      // The held line is the header of a JVM trace when frames or a cause follow it.
      if (options_.jvm && !stream.has_blank && !stream.group.line.empty() &&
          (isJvmFrame(line) || line.starts_with("Caused by: "))) {
        step = Step::kJoin;
        kind = Kind::kJvm;
      }
    } else if (kind == Kind::kJvm) {
      if (isJvmContinuation(line)) step = Step::kJoin;
    } else if (kind == Kind::kPython) {
      if (phase == Phase::kPyBody) {
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
          step = Step::kJoin;
        } else if (isPythonExceptionLine(line)) {
          step = Step::kJoin;
          phase = Phase::kPyAfterEnd;
        }
      } else if (phase == Phase::kPyAfterEnd) {
        if (line.starts_with(multiline::kDuringHandling) ||
            line.starts_with(multiline::kDirectCause)) {
          step = Step::kJoin;
          phase = Phase::kPyChainText;
        } else if (blank && !stream.has_blank) {
          step = Step::kBlank;
        }
      } else if (phase == Phase::kPyChainText) {
        if (blank) {
          step = Step::kJoin;
        } else if (line.starts_with(multiline::kTraceback)) {
          step = Step::kJoin;
          phase = Phase::kPyBody;
        }
      }
    } else if (kind == Kind::kGo) {
      const bool tab = !line.empty() && line[0] == '\t';
      if (blank) {
        if (!stream.has_blank && phase != Phase::kGoDone) step = Step::kBlank;
      } else if (isGoroutineHeader(line) || line == "runtime stack:") {
        if (phase != Phase::kGoDone) {
          step = Step::kJoin;
          phase = Phase::kGoStack;
        }
      } else if (phase == Phase::kGoHeader) {
        if (!stream.has_blank && (tab || line.starts_with("[signal ") ||
                                  line.starts_with("panic: ") || line.starts_with("SIGQUIT"))) {
          step = Step::kJoin;
        }
      } else if (phase == Phase::kGoStack && !stream.has_blank) {
        if (tab || multiline::isGoFunctionLine(line)) step = Step::kJoin;
      }
      if (phase == Phase::kGoStack && line.starts_with("exit status ")) {
        step = Step::kJoin;
        phase = Phase::kGoDone;
      }
    }

    if (step == Step::kBlank) {
      stream.has_blank = true;
      stream.blank.timestamp_ns = entry.timestamp_ns;
      stream.blank.line.assign(line);
      stream.blank.metadata = entry.metadata;
      stream.blank_cp = checkpoint;
      stream.blank_source = &source;
      stream.blank_start_known = source.has_last;
      if (source.has_last) moveTo(stream.blank_start, source.last_in);
      hold(stream, source);
      moveTo(source.last_in, checkpoint);
      source.has_last = true;
      return true;
    }
    if (step == Step::kJoin) {
      const std::size_t extra = (stream.has_blank ? stream.blank.line.size() + 1 : 0);
      const std::size_t lines = stream.lines + (stream.has_blank ? 1 : 0) + 1;
      const bool too_long = stream.group.line.size() + extra + 1 + line.size() > options_.max_bytes;
      const bool too_many = lines > options_.max_lines;
      if (too_long || too_many) {
        // The group so far goes on its own (a blank line it kept waiting goes alone after it);
        // the rest of the trace starts the next entry.
        if (!passGroup(stream)) return false;
        ++(too_long ? by_bytes_ : by_lines_);
        if (stream.held && !passGroup(stream)) return false;  // the blank line, now held alone
        startGroup(stream, source, entry, checkpoint, stream_id);
      } else {
        if (stream.has_blank) {
          stream.has_blank = false;
          appendLine(stream, *stream.blank_source, stream.blank.line, stream.blank_cp);
          ++joined_[static_cast<int>(kind)];
        }
        appendLine(stream, source, line, checkpoint);
        ++joined_[static_cast<int>(kind)];
      }
      stream.kind = kind;
      stream.phase = phase;
      moveTo(source.last_in, checkpoint);
      source.has_last = true;
      return true;
    }
    // The group ended before this line. A blank line it kept becomes the held line, and the
    // line is looked at again against it.
    if (!passGroup(stream)) return false;
  }

  // The line starts something: a group to hold, or a line to pass on at once.
  Kind kind = Kind::kPlain;
  Phase phase = Phase::kNone;
  bool keep = false;
  if (rule != nullptr && !rule->builtin) {
    kind = Kind::kCustom;
    keep = true;
  } else if (rule != nullptr) {
    if (options_.python && line.starts_with(multiline::kTraceback)) {
      kind = Kind::kPython;
      phase = Phase::kPyBody;
    } else if (options_.go && multiline::isGoStart(line)) {
      kind = Kind::kGo;
      phase = Phase::kGoHeader;
    } else if (options_.go && isGoroutineHeader(line)) {
      kind = Kind::kGo;
      phase = Phase::kGoStack;
    }
    // Any line may be a JVM trace's header.
    keep = kind != Kind::kPlain || options_.jvm;
  }
  if (stream.held) {
    // Still held after two rounds (a kept blank line, refused): offer it again later.
    return false;
  }
  if (!keep) {
    if (!next_->acceptStream(labels, entry, clamp(source, &stream, checkpoint), stream_id)) {
      return false;
    }
  } else {
    startGroup(stream, source, entry, checkpoint, stream_id);
    stream.kind = kind;
    stream.phase = phase;
  }
  moveTo(source.last_in, checkpoint);
  source.has_last = true;
  return true;
}

bool MultilineStage::flushDue(Clock::time_point now, bool force) {
  const bool done = flushHeld(now, force);
  publish();
  return done;
}

bool MultilineStage::flushHeld(Clock::time_point now, bool force) {
  if (last_sweep_ == Clock::time_point{}) last_sweep_ = now;
  if (now - last_sweep_ >= kSweepInterval) sweep(now);
  for (std::size_t i = 0; i < held_.size();) {
    Stream& stream = *held_[i];
    if (!force) {
      if (stream.stamp == Clock::time_point{}) {
        stream.stamp = now;
        ++i;
        continue;
      }
      if (now - stream.stamp < options_.flush_timeout) {
        ++i;
        continue;
      }
    }
    const bool multi = stream.lines > 1;
    if (!passGroup(stream)) return false;
    if (multi && !force) ++timeouts_;
    // A blank line the group kept waited as long: it goes too.
    if (stream.held && !passGroup(stream)) return false;
    // release() moved another stream into slot i.
  }
  return true;
}

void MultilineStage::sweep(Clock::time_point now) {
  last_sweep_ = now;
  by_id_.clear();
  last_stream_ = nullptr;
  last_source_ = nullptr;
  std::erase_if(streams_, [](auto& item) {
    Stream& s = *item.second;
    const bool drop = !s.held && !s.seen;
    s.seen = false;
    return drop;
  });
  std::erase_if(sources_, [](auto& item) {
    Source& s = *item.second;
    const bool drop = s.holders.empty() && !s.seen;
    s.seen = false;
    return drop;
  });
}

void MultilineStage::publish() {
  for (int k = 1; k < 5; ++k) {
    if (joined_[k] != 0) {
      joined_counters_[k]->Increment(static_cast<double>(joined_[k]));
      joined_[k] = 0;
    }
  }
  if (timeouts_ != 0) timeout_counter_->Increment(static_cast<double>(timeouts_));
  if (by_bytes_ != 0) bytes_counter_->Increment(static_cast<double>(by_bytes_));
  if (by_lines_ != 0) lines_counter_->Increment(static_cast<double>(by_lines_));
  timeouts_ = by_bytes_ = by_lines_ = 0;
}

}  // namespace nodewarden
