// NodeCollector: keeps /proc/stat, /proc/meminfo, /proc/pressure/{cpu,memory,io} and
// /proc/loadavg open and re-reads each with one pread from offset 0 into a shared, reused buffer.
//
// What a reader gets wrong: a procfs file must be read in one call to be one consistent snapshot
// (seq_file regenerates the text on every read from offset 0), so when the buffer turns out too
// small the whole file is read again into a bigger one rather than continued at an offset. A file
// that is missing, unreadable or garbled only drops its own section for that cycle.
#include "collectors/node/node_collector.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "collectors/common/pread_file.h"
#include "collectors/node/proc_parsers.h"

namespace nodewarden {
namespace {

constexpr std::string_view kComponent = "node";
// /proc/stat of a 2-cpu VM is ~1 KiB and of a 256-cpu host ~40 KiB; the buffer doubles as needed
// and is then reused. The cap only guards against a file that never stops growing.
constexpr std::size_t kInitialBufferBytes = 16 * 1024;
constexpr std::size_t kMaxBufferBytes = 16 * 1024 * 1024;

enum class ReadStatus : std::uint8_t { kOk, kMissing, kReadError, kTooLarge };

// One /proc file, opened once and kept open; reopened after a failed read.
class ProcFile {
 public:
  explicit ProcFile(std::filesystem::path path) : path_(std::move(path)), display_(path_.string()) {
    int ignored = 0;
    open(ignored);  // a file missing now is retried, and reported, at collection time
  }
  ProcFile(const ProcFile&) = delete;
  ProcFile& operator=(const ProcFile&) = delete;

  [[nodiscard]] const std::string& display() const { return display_; }

  // The whole file as text viewing into buffer (valid until the buffer's next use).
  ReadStatus read(std::vector<char>& buffer, std::string_view& text, int& err) {
    if (!file_.isOpen() && !open(err)) {
      return openFailure(err);
    }
    const ReadStatus status = readWhole(buffer, text, err);
    if (status != ReadStatus::kReadError) {
      return status;
    }
    // The file behind the descriptor may be gone (procfs remounted, hotplug): try a fresh one.
    close();
    if (!open(err)) {
      return openFailure(err);
    }
    return readWhole(buffer, text, err);
  }

 private:
  static ReadStatus openFailure(int err) {
    return err == ENOENT || err == ENOTDIR ? ReadStatus::kMissing : ReadStatus::kReadError;
  }

  bool open(int& err) {
    auto r = file_.openAt(AT_FDCWD, display_.c_str());
    if (!r) err = r.error();
    return r.has_value();
  }

  void close() { file_.close(); }

  ReadStatus readWhole(std::vector<char>& buffer, std::string_view& text, int& err) {
    for (;;) {
      auto r = file_.read(buffer);
      if (r) {
        text = *r;
        return ReadStatus::kOk;
      }
      if (r.error() != EFBIG) {
        err = r.error();
        return ReadStatus::kReadError;
      }
      if (buffer.size() >= kMaxBufferBytes) {
        return ReadStatus::kTooLarge;
      }
      buffer.resize(buffer.size() * 2);
    }
  }

  std::filesystem::path path_;
  std::string display_;
  PreadFile file_;
};

}  // namespace

class NodeCollector::Impl {
 public:
  Impl(const std::filesystem::path& proc_root, ErrorReporter& errors)
      : errors_(errors),
        stat_(proc_root / "stat"),
        meminfo_(proc_root / "meminfo"),
        psi_cpu_(proc_root / "pressure" / "cpu"),
        psi_memory_(proc_root / "pressure" / "memory"),
        psi_io_(proc_root / "pressure" / "io"),
        loadavg_(proc_root / "loadavg"),
        buffer_(kInitialBufferBytes) {}

  void collect(NodeSample& node) {
    std::string_view text;

    node.has_stat = false;
    if (read(stat_, text)) {
      if (auto ok = parseProcStat(text, node); ok) {
        node.has_stat = true;
      } else {
        reportParseError(stat_, ok.error());
      }
    }

    node.has_meminfo = false;
    if (read(meminfo_, text)) {
      if (auto ok = parseMeminfo(text, node.meminfo); ok) {
        node.has_meminfo = true;
      } else {
        reportParseError(meminfo_, ok.error());
      }
    }

    collectPressure(psi_cpu_, node.psi_cpu);
    collectPressure(psi_memory_, node.psi_memory);
    collectPressure(psi_io_, node.psi_io);

    node.has_loadavg = false;
    if (read(loadavg_, text)) {
      if (auto loads = parseLoadavg(text); loads) {
        node.has_loadavg = true;
        node.load1 = loads->load1;
        node.load5 = loads->load5;
        node.load15 = loads->load15;
      } else {
        reportParseError(loadavg_, loads.error());
      }
    }
  }

 private:
  void collectPressure(ProcFile& file, PsiTotals& into) {
    into = PsiTotals{};
    std::string_view text;
    if (!read(file, text)) {
      return;
    }
    if (auto ok = parsePressure(text, into); !ok) {
      into = PsiTotals{};
      reportParseError(file, ok.error());
    }
  }

  bool read(ProcFile& file, std::string_view& text) {
    int err = 0;
    switch (file.read(buffer_, text, err)) {
      case ReadStatus::kOk:
        return true;
      case ReadStatus::kMissing:
        report(file, "missing", err);
        return false;
      case ReadStatus::kReadError:
        report(file, "read_error", err);
        return false;
      case ReadStatus::kTooLarge:
        setDetail(file, "larger than the read buffer cap");
        errors_.report(kComponent, "read_error", detail_);
        return false;
    }
    return false;
  }

  void report(const ProcFile& file, std::string_view reason, int err) {
    const char* name = ::strerrorname_np(err);
    setDetail(file, name != nullptr ? name : "unknown errno");
    errors_.report(kComponent, reason, detail_);
  }

  void reportParseError(const ProcFile& file, ProcParseError error) {
    setDetail(file, procParseErrorName(error));
    errors_.report(kComponent, "parse_error", detail_);
  }

  // Error details reuse one string: errors can repeat every cycle and are not worth an allocation.
  void setDetail(const ProcFile& file, std::string_view what) {
    detail_.assign(file.display());
    detail_ += ": ";
    detail_ += what;
  }

  ErrorReporter& errors_;
  ProcFile stat_;
  ProcFile meminfo_;
  ProcFile psi_cpu_;
  ProcFile psi_memory_;
  ProcFile psi_io_;
  ProcFile loadavg_;
  std::vector<char> buffer_;
  std::string detail_;
};

NodeCollector::NodeCollector(std::filesystem::path proc_root, ErrorReporter& errors)
    : impl_(std::make_unique<Impl>(proc_root, errors)) {}

NodeCollector::~NodeCollector() = default;

void NodeCollector::collect(Snapshot& into) { impl_->collect(into.node); }

}  // namespace nodewarden
