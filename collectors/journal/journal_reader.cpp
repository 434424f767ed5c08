// JournalReader over libsystemd's sd-journal (man sd-journal, sd_journal_open_directory,
// sd_journal_add_match, sd_journal_seek_cursor, sd_journal_next, sd_journal_get_data): one
// sd_journal handle on the configured directory, filtered by unit, read forward entry by entry.
//
// What a reader gets wrong: an entry the sink refuses is not skipped. The handle is left on it
// (pending_) and the next poll offers the same entry again before moving on; after a seek to a
// cursor the entry at the cursor itself was already shipped and is skipped
// (sd_journal_test_cursor), unless it has been vacuumed, in which case the first entry after it is
// new and is kept.
#include "collectors/journal/journal_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

namespace nodewarden::journal {
namespace {

constexpr std::string_view kComponent = "journal";
constexpr std::string_view kSource = "journal";
// sd-journal returns compressed fields truncated to this many bytes (its own default is 64 KiB;
// stated here so the bound on one line's memory is ours). journald itself caps a line at 48 KiB.
constexpr std::size_t kDataThreshold = std::size_t{64} * 1024;
// Every journal file starts with this signature (systemd's "Journal File Format",
// header.signature).
constexpr std::string_view kJournalSignature = "LPKSHHRH";
constexpr std::string_view kServiceSuffix = ".service";

std::string errnoText(int negative_errno) { return std::strerror(-negative_errno); }

// The value of "FIELD=value" for the current entry, binary-safe; nullopt when absent.
std::optional<std::string_view> field(sd_journal* journal, const char* name) {
  const void* data = nullptr;
  std::size_t length = 0;
  if (sd_journal_get_data(journal, name, &data, &length) < 0) {
    return std::nullopt;
  }
  const std::string_view whole(static_cast<const char*>(data), length);
  const std::size_t eq = whole.find('=');
  if (eq == std::string_view::npos) {
    return std::nullopt;
  }
  return whole.substr(eq + 1);
}

bool isJournalFileName(const std::string& name) {
  return name.ends_with(".journal") || name.ends_with(".journal~");
}

bool isMachineIdName(const std::string& name) {
  return name.size() == 32 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Whether the file looks like a journal sd-journal will open: the signature, and a header whose
// header_size + arena_size fit in the file (systemd's "Journal File Format": both little-endian
// 64-bit, at offsets 88 and 96; journald grows the file before it grows arena_size, so only a
// truncated file fails this). Files sd-journal cannot open are dropped by it without a word to the
// caller, so this is how such a file gets counted.
bool looksLikeJournal(const std::filesystem::path& path) {
  constexpr std::size_t kHeaderSizeOffset = 88;
  constexpr std::size_t kArenaSizeOffset = 96;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return true;  // gone or unreadable: sd-journal reports nothing either; not ours to judge
  }
  std::array<unsigned char, kArenaSizeOffset + 8> head{};
  const ssize_t n = ::pread(fd, head.data(), head.size(), 0);
  struct stat st {};
  const int stat_result = ::fstat(fd, &st);
  ::close(fd);
  if (n != static_cast<ssize_t>(head.size()) || stat_result != 0 ||
      std::memcmp(head.data(), kJournalSignature.data(), kJournalSignature.size()) != 0) {
    return false;
  }
  auto le64 = [&head](std::size_t offset) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < 8; ++i) {
      value |= static_cast<std::uint64_t>(head[offset + i]) << (8 * i);
    }
    return value;
  };
  const std::uint64_t header_size = le64(kHeaderSizeOffset);
  const std::uint64_t arena_size = le64(kArenaSizeOffset);
  return header_size <= static_cast<std::uint64_t>(st.st_size) &&
         arena_size <= static_cast<std::uint64_t>(st.st_size) - header_size;
}

}  // namespace

class JournalReader::Impl {
 public:
  Impl(JournalOptions options, ErrorReporter& errors)
      : options_(std::move(options)), errors_(errors) {
    checkpoint_.source = std::string(kSource);
    std::error_code ec;
    os_root_ = std::filesystem::is_directory(options_.dir / "var/log/journal", ec) ||
               std::filesystem::is_directory(options_.dir / "run/log/journal", ec);
    open();  // a directory missing now is retried, and reported, by every poll
  }
  ~Impl() { close(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  [[nodiscard]] int watchFd() const { return fd_; }

  std::size_t poll(LogSink& sink, std::size_t max_entries) {
    if (journal_ == nullptr) {
      const auto now = std::chrono::steady_clock::now();
      if (now < next_open_) return 0;
      next_open_ = now + options_.reopen_interval;
      if (!open()) return 0;
    }
    // Picks up appended entries, new and rotated files (inotify behind watchFd()), and drops
    // deleted ones. INVALIDATE: the set of files changed, so look for new unreadable ones.
    const int changed = sd_journal_process(journal_);
    if (changed < 0) {
      errors_.report(kComponent, "process_failed", errnoText(changed));
    } else if (changed == SD_JOURNAL_INVALIDATE) {
      scanForBadFiles();
    }
    std::size_t accepted = 0;
    std::size_t examined = 0;
    while (examined < max_entries && sink.hasRoom()) {
      if (!pending_) {
        const int r = sd_journal_next(journal_);
        if (r < 0) {
          // The handle's state is unknown now: reopen on the next poll, from the last entry read.
          errors_.report(kComponent, "read_failed", errnoText(r));
          close();
          return accepted;
        }
        if (r == 0) {
          break;
        }
        if (!skip_cursor_.empty()) {
          const bool at_cursor = sd_journal_test_cursor(journal_, skip_cursor_.c_str()) > 0;
          skip_cursor_.clear();
          if (at_cursor) {
            continue;
          }
        }
      }
      ++examined;
      switch (emitCurrent(sink)) {
        case Emit::kAccepted:
          ++accepted;
          pending_ = false;
          break;
        case Emit::kRefused:
          pending_ = true;
          return accepted;
        case Emit::kSkipped:
          pending_ = false;
          break;
      }
    }
    return accepted;
  }

  void commit(const std::vector<LogCheckpoint>& checkpoints) {
    const LogCheckpoint* latest = nullptr;
    for (const LogCheckpoint& checkpoint : checkpoints) {
      if (checkpoint.source == kSource && !checkpoint.journal_cursor.empty()) {
        latest = &checkpoint;
      }
    }
    if (latest == nullptr || latest->journal_cursor == committed_cursor_) {
      return;
    }
    if (!options_.cursor_file.empty() && !writeCursorFile(latest->journal_cursor)) {
      return;  // reported; the next commit tries again with a later cursor
    }
    committed_cursor_ = latest->journal_cursor;
  }

 private:
  enum class Emit : std::uint8_t { kAccepted, kRefused, kSkipped };

  bool open() {
    std::error_code ec;
    if (!std::filesystem::is_directory(options_.dir, ec)) {
      errors_.report(kComponent, "dir_missing", options_.dir.string());
      return false;
    }
    sd_journal* journal = nullptr;
    const int r = sd_journal_open_directory(&journal, options_.dir.c_str(),
                                            os_root_ ? SD_JOURNAL_OS_ROOT : 0);
    if (r < 0) {
      errors_.report(kComponent, "open_failed", options_.dir.string() + ": " + errnoText(r));
      return false;
    }
    journal_ = journal;
    // Asked right after opening so that no file created from now on is missed (man
    // sd_journal_get_fd); without it sd_journal_process() would not see new files at all.
    fd_ = sd_journal_get_fd(journal_);
    if (fd_ < 0) {
      errors_.report(kComponent, "watch_failed", errnoText(fd_));
      fd_ = -1;
    }
    sd_journal_set_data_threshold(journal_, kDataThreshold);
    if (!addMatches()) {
      close();
      return false;
    }
    scanForBadFiles();
    position();
    return true;
  }

  void close() {
    if (journal_ != nullptr) {
      sd_journal_close(journal_);
    }
    journal_ = nullptr;
    fd_ = -1;
    pending_ = false;  // the refused entry comes again: reopening seeks to the last one accepted
    skip_cursor_.clear();
  }

  // OR of three groups (sd_journal_add_disjunction); within a group, matches on one field OR.
  bool addMatches() {
    if (options_.units.empty()) {
      return true;
    }
    auto add = [this](std::string_view name, std::string_view value) {
      std::string match;
      match.reserve(name.size() + 1 + value.size());
      match.append(name).append("=").append(value);
      const int r = sd_journal_add_match(journal_, match.data(), match.size());
      if (r < 0) {
        errors_.report(kComponent, "match_failed", match + ": " + errnoText(r));
      }
      return r >= 0;
    };
    bool ok = true;
    for (const std::string& unit : options_.units) {
      ok = add("_SYSTEMD_UNIT", unit) && ok;
    }
    ok = sd_journal_add_disjunction(journal_) >= 0 && ok;
    for (const std::string& unit : options_.units) {
      ok = add("UNIT", unit) && ok;
    }
    bool any_identifier = false;
    for (const std::string& unit : options_.units) {
      if (unit.ends_with(kServiceSuffix) && unit.size() > kServiceSuffix.size()) {
        if (!any_identifier) {
          ok = sd_journal_add_disjunction(journal_) >= 0 && ok;
          any_identifier = true;
        }
        ok = add("SYSLOG_IDENTIFIER",
                 std::string_view(unit).substr(0, unit.size() - kServiceSuffix.size())) &&
             ok;
      }
    }
    return ok;
  }

  // Where reading starts: just after the last entry accepted in this process (a reopen), else
  // after the committed cursor, else the tail or the head.
  void position() {
    std::string cursor = !last_cursor_.empty() ? last_cursor_ : readCursorFile();
    if (!cursor.empty()) {
      const int r = sd_journal_seek_cursor(journal_, cursor.c_str());
      if (r >= 0) {
        skip_cursor_ = cursor;
        last_cursor_ = std::move(cursor);
        return;
      }
      errors_.report(kComponent, "bad_cursor", errnoText(r));
    }
    if (!options_.start_at_tail) {
      sd_journal_seek_head(journal_);
      return;
    }
    // On the newest matching entry, so that sd_journal_next() returns the first one after it; it
    // is the position a reopen resumes from until something is read.
    sd_journal_seek_tail(journal_);
    if (sd_journal_previous(journal_) > 0) {
      char* at = nullptr;
      if (sd_journal_get_cursor(journal_, &at) >= 0) {
        last_cursor_ = at;
        std::free(at);  // NOLINT(cppcoreguidelines-no-malloc): libsystemd allocates with malloc
      }
    }
  }

  // A view from field() is valid only until the next sd_journal_get_data() call (it points into
  // an mmap window the next lookup may move), so each value is copied before the next lookup.
  Emit emitCurrent(LogSink& sink) {
    LogEntry entry;
    if (std::optional<std::string_view> message = field(journal_, "MESSAGE")) {
      entry.line.assign(message->data(), message->size());
    } else {
      return Emit::kSkipped;  // nothing to ship (MESSAGE is optional in the journal)
    }
    std::uint64_t usec = 0;
    char* cursor = nullptr;
    int r = sd_journal_get_realtime_usec(journal_, &usec);
    if (r >= 0) {
      r = sd_journal_get_cursor(journal_, &cursor);
    }
    if (r < 0) {
      errors_.report(kComponent, "bad_entry", errnoText(r));
      return Emit::kSkipped;
    }
    checkpoint_.journal_cursor.assign(cursor);
    std::free(cursor);  // NOLINT(cppcoreguidelines-no-malloc): libsystemd allocates with malloc

    entry.timestamp_ns = static_cast<std::int64_t>(usec) * 1000;
    // Sorted by name: hostname, pid, priority.
    if (auto hostname = field(journal_, "_HOSTNAME")) {
      entry.metadata.emplace_back("hostname", std::string(*hostname));
    }
    if (auto pid = field(journal_, "_PID")) {
      entry.metadata.emplace_back("pid", std::string(*pid));
    }
    if (auto priority = field(journal_, "PRIORITY")) {
      entry.metadata.emplace_back("priority", std::string(*priority));
    }
    fillLabels();
    if (!sink.accept(labels_, std::move(entry), checkpoint_)) {
      return Emit::kRefused;  // rebuilt from the journal next time; the handle stays on it
    }
    last_cursor_ = checkpoint_.journal_cursor;
    return Emit::kAccepted;
  }

  // {node, source, unit}, sorted by name. unit is always one of the configured units (so the label
  // stays low-cardinality) except with no units configured, where it is the entry's own.
  void fillLabels() {
    std::string_view unit = unitOf();
    labels_.clear();
    labels_.emplace_back("node", options_.node_name);
    labels_.emplace_back("source", kSource);
    if (!unit.empty()) {
      labels_.emplace_back("unit", unit);
    }
  }

  std::string_view unitOf() {
    auto configured = [this](std::string_view unit) -> std::string_view {
      for (const std::string& candidate : options_.units) {
        if (candidate == unit) {
          return candidate;
        }
      }
      return {};
    };
    const std::optional<std::string_view> systemd_unit = field(journal_, "_SYSTEMD_UNIT");
    if (options_.units.empty()) {
      unit_scratch_.assign(systemd_unit.value_or(std::string_view()));
      return unit_scratch_;
    }
    if (systemd_unit) {
      if (std::string_view unit = configured(*systemd_unit); !unit.empty()) {
        return unit;
      }
    }
    if (auto unit_field = field(journal_, "UNIT")) {
      if (std::string_view unit = configured(*unit_field); !unit.empty()) {
        return unit;
      }
    }
    if (auto identifier = field(journal_, "SYSLOG_IDENTIFIER")) {
      unit_scratch_.assign(*identifier).append(kServiceSuffix);
      if (std::string_view unit = configured(unit_scratch_); !unit.empty()) {
        return unit;
      }
    }
    return {};
  }

  // Counts each journal file sd-journal will not read (garbage, truncated), once per file.
  void scanForBadFiles() {
    std::vector<std::filesystem::path> dirs;
    if (os_root_) {
      dirs = {options_.dir / "var/log/journal", options_.dir / "run/log/journal"};
    } else {
      dirs = {options_.dir};
    }
    const std::size_t top_level = dirs.size();
    std::set<std::string> bad;
    std::error_code ec;
    for (std::size_t i = 0; i < dirs.size(); ++i) {
      for (std::filesystem::directory_iterator it(dirs[i], ec), end; !ec && it != end;
           it.increment(ec)) {
        const std::string name = it->path().filename().string();
        std::error_code type_ec;
        if (isMachineIdName(name) && it->is_directory(type_ec)) {
          if (i < top_level) {  // one level of <machine-id>/, as sd-journal reads them
            dirs.push_back(it->path());
          }
          continue;
        }
        if (isJournalFileName(name) && it->is_regular_file(type_ec) &&
            !looksLikeJournal(it->path())) {
          bad.insert(it->path().string());
        }
      }
      ec.clear();
    }
    for (const std::string& path : bad) {
      if (!bad_files_.contains(path)) {
        errors_.report(kComponent, "corrupt_file", path);
      }
    }
    bad_files_ = std::move(bad);
  }

  [[nodiscard]] std::string readCursorFile() const {
    if (options_.cursor_file.empty()) {
      return {};
    }
    std::ifstream in(options_.cursor_file);
    std::string cursor;
    if (!in || !std::getline(in, cursor)) {
      return {};  // no checkpoint yet
    }
    while (!cursor.empty() && (cursor.back() == '\r' || cursor.back() == ' ')) {
      cursor.pop_back();
    }
    return cursor;
  }

  // tmp + fsync + rename + fsync(dir): after a crash the file holds the old or the new cursor.
  bool writeCursorFile(const std::string& cursor) {
    const std::filesystem::path& path = options_.cursor_file;
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      errors_.report(kComponent, "commit_failed", tmp.string() + ": " + std::strerror(errno));
      return false;
    }
    const std::string text = cursor + "\n";
    std::size_t done = 0;
    bool ok = true;
    while (done < text.size()) {
      const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        ok = false;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    const int saved = errno;
    ok = ::close(fd) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
      errors_.report(kComponent, "commit_failed",
                     path.string() + ": " + std::strerror(ok ? errno : saved));
      ::unlink(tmp.c_str());
      return false;
    }
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
    return true;
  }

  JournalOptions options_;
  ErrorReporter& errors_;
  bool os_root_ = false;
  sd_journal* journal_ = nullptr;
  int fd_ = -1;
  std::chrono::steady_clock::time_point next_open_{};  // when poll() may try open() again
  bool pending_ = false;                               // the handle is on an entry the sink refused
  std::string skip_cursor_;  // after a seek: the entry at this cursor was already shipped
  std::string last_cursor_;  // the last entry accepted (or the starting point at the tail)
  std::string committed_cursor_;
  std::set<std::string> bad_files_;  // reported already
  LogCheckpoint checkpoint_;         // reused: accept() takes it by reference
  Labels labels_;                    // reused: accept() takes it by reference
  std::string unit_scratch_;
};

JournalReader::JournalReader(JournalOptions options, ErrorReporter& errors)
    : impl_(std::make_unique<Impl>(std::move(options), errors)) {}

JournalReader::~JournalReader() = default;

int JournalReader::watchFd() const { return impl_->watchFd(); }

std::size_t JournalReader::poll(LogSink& sink, std::size_t max_entries) {
  return impl_->poll(sink, max_entries);
}

void JournalReader::commit(const std::vector<LogCheckpoint>& checkpoints) {
  impl_->commit(checkpoints);
}

}  // namespace nodewarden::journal
