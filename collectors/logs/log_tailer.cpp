// LogTailer: the set of followed files, their read order per container, the handle budget, and
// the bridge between what the sink accepted and what commit() made durable.
//
// What a reader gets wrong: a file is let go only when three things hold: it will not grow (it was
// deleted, or a newer file of its container has data), everything in it was handed out, and
// commit() covered the last entry handed out. Until then its descriptor stays open, so a file
// renamed and deleted while the agent was far behind is still read to its end. So a .gz file
// whose plain predecessor is still open waits until the plain file is let go: only then is the
// plain file's position final, and it is usually the end (nothing of the .gz is read).
#include "collectors/logs/log_tailer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "collectors/logs/checkpoint_store.h"
#include "collectors/logs/container_id_index.h"
#include "collectors/logs/gzip_reader.h"
#include "collectors/logs/log_discovery.h"
#include "collectors/logs/tailed_file.h"
#include "pipeline/pod_labels.h"

namespace nodewarden::logs {
namespace {

// Stream labels and structured metadata keys of the tailer's own: a pod label never takes them.
constexpr std::string_view kReservedLabelNames[] = {
    "container", "container_id", "filename", "job",    "namespace",
    "node",      "pod",          "pod_uid",  "stream", "truncated"};

// Positions of plain files that are gone (deleted, or no longer listed) kept in memory for the .gz
// files compressed from them, which kubelet makes just before it deletes the plain file.
constexpr std::size_t kRecentPositions = 4096;

std::string_view parentOf(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

// Whether bytes (a stream's first bytes) start the way the file of this identity started.
bool startsAs(std::string_view bytes, const FileIdentity& file) {
  return file.fingerprint_bytes > 0 && file.fingerprint_bytes <= bytes.size() &&
         fingerprintOf(bytes.substr(0, file.fingerprint_bytes)) == file.fingerprint;
}

// The kubelet and the API server answer from the Pod object, which always has a QoS class (the
// API server sets it when the pod is created); the runtime's state only names the pod.
bool fromPodObject(const PodIdentity& pod) {
  return !pod.qos_class.empty() || !pod.owner_kind.empty() || !pod.labels.empty();
}

}  // namespace

class LogTailer::Impl {
 public:
  Impl(LogTailerOptions options, ErrorReporter& errors)
      : options_(std::move(options)),
        errors_(errors),
        discovery_(options_.log_root, errors),
        store_(options_.checkpoint_file),
        chunk_(std::max<std::size_t>(options_.read_chunk_bytes, 1)) {
    if (options_.max_open_files == 0) options_.max_open_files = 1;
    for (const std::string& key : options_.pod_labels) {
      std::string name = sanitizeLabelName(key);
      if (std::ranges::find(kReservedLabelNames, name) != std::end(kReservedLabelNames)) {
        spdlog::warn(
            "pod label {} is not made a log stream label: {} is one of the agent's own names", key,
            name);
        continue;
      }
      exported_labels_.emplace_back(key, std::move(name));
    }
    if (!options_.checkpoint_file.empty()) {
      if (auto loaded = store_.load(); !loaded) {
        errors_.report("logs", "checkpoint_load", loaded.error());
      }
    }
    fullScan(/*initial=*/true);
    last_rescan_ = std::chrono::steady_clock::now();
  }

  [[nodiscard]] int watchFd() const { return discovery_.fd(); }

  std::size_t poll(LogSink& sink, std::size_t byte_budget) {
    discover();
    openWaiting();

    TailContext ctx{sink, errors_, stats_, chunk_, scratch_};
    std::size_t total = 0;
    const auto now = std::chrono::steady_clock::now();
    for (auto& [key, file] : files_) {
      file->startPoll();
      // Until the pod metadata knows a file's pod, ask again each poll: the `job` label of a Job
      // pod's lines starts as soon as its pod is listed. A partial answer is asked again once per
      // rescan, until the Pod object itself answers.
      if (options_.metadata != nullptr && file->wantsPodMetadata(now, options_.rescan_interval)) {
        if (auto pod = options_.metadata->pod(file->podUid())) applyPod(*file, *pod, now);
      }
    }

    if (!sink.hasRoom()) return 0;
    // A line the sink refused last time goes first: it was read before anything still unread.
    for (auto& [key, file] : files_) {
      if (file->hasHeld() && !file->deliverHeld(ctx)) return 0;
    }

    bool blocked = false;
    bool progressed = true;
    while (!blocked && progressed && total < byte_budget) {
      progressed = false;
      // One chunk per container per round, so a chatty container does not starve the others.
      for (auto& [dir, group] : groups_) {
        if (readGroup(ctx, group, byte_budget - total, total, progressed)) {
          blocked = true;
          break;
        }
        if (total >= byte_budget) break;
      }
    }
    releaseDone();
    return total;
  }

  void commit(const std::vector<LogCheckpoint>& checkpoints) {
    for (const auto& cp : checkpoints) {
      const auto it = files_.find(cp.source);
      if (it == files_.end()) continue;  // the journal's, or a file already released
      if (!it->second->commit(cp)) continue;
      store_.put(cp.source, StoredPosition{it->second->path(), cp.file, cp.offset});
      store_dirty_ = true;
    }
    releaseDone();
    if (store_dirty_ && !options_.checkpoint_file.empty()) {
      if (auto saved = store_.save(); !saved) {
        errors_.report("logs", "checkpoint_save", saved.error());
      } else {
        store_dirty_ = false;
      }
    }
  }

  [[nodiscard]] std::vector<std::pair<std::string, std::uint64_t>> lagPerFile() const {
    std::vector<std::pair<std::string, std::uint64_t>> out;
    out.reserve(files_.size());
    for (const auto& [key, file] : files_) {
      struct stat st {};
      std::uint64_t size = file->knownSize();
      if (!file->compressed() && ::fstat(file->fd(), &st) == 0) {
        size = static_cast<std::uint64_t>(st.st_size);
      }
      out.emplace_back(file->path(), size > file->consumed() ? size - file->consumed() : 0);
    }
    return out;
  }

  [[nodiscard]] LogTailerStats stats() const {
    LogTailerStats s = stats_;
    s.open_files = files_.size();
    s.files_waiting = waiting_.size();
    s.inotify_overflows = discovery_.overflows();
    return s;
  }

 private:
  struct Waiting {
    DiscoveredFile file;
    std::uint64_t seq = 0;
    bool initial = false;  // found by the first scan
    bool deferred = false;
  };
  struct Done {
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
  };

  // Reads the first file of the group that is not at its end; returns true when the sink blocked.
  bool readGroup(TailContext& ctx, std::vector<TailedFile*>& group, std::size_t budget,
                 std::size_t& total, bool& progressed) {
    for (std::size_t i = 0; i < group.size(); ++i) {
      TailedFile& file = *group[i];
      if (file.eofThisPoll()) continue;
      // Reading what could not be handed out would only be read again.
      if (!ctx.sink.hasRoom()) return true;
      std::size_t n = 0;
      const auto status = file.readChunk(ctx, budget, n);
      total += n;
      if (status == TailedFile::Status::kBlocked) return true;
      if (status == TailedFile::Status::kMore) {
        progressed = true;
        return false;
      }
      file.setEofThisPoll();
      if (file.deleted() || file.compressed() || superseded(group, i)) {
        if (file.finish(ctx) == TailedFile::Status::kBlocked) return true;
      }
      // At its end: the next file of the container may be read in this same round.
    }
    return false;
  }

  // A newer file of the same container has data, so the runtime writes there now.
  static bool superseded(const std::vector<TailedFile*>& group, std::size_t i) {
    for (std::size_t j = i + 1; j < group.size(); ++j) {
      if (group[j]->knownSize() > 0) return true;
    }
    return false;
  }

  // What the pod metadata says about a file's pod, as stream labels.
  void applyPod(TailedFile& file, const PodIdentity& pod,
                std::chrono::steady_clock::time_point now) {
    pod_labels_.clear();
    for (const auto& [key, name] : exported_labels_) {
      if (const auto it = pod.labels.find(key); it != pod.labels.end()) {
        pod_labels_.emplace_back(name, it->second);
      }
    }
    file.setPodMetadata(pod.job, pod_labels_, fromPodObject(pod), now);
  }

  // The runtime's id of the container that writes this file, from kubelet's links. The links are
  // listed again at most once per poll when a file is not in them (kubelet makes the link right
  // after the file).
  std::string containerIdOf(const DiscoveredFile& f) {
    const std::string pod_dir = f.namespace_name + "_" + f.pod_name + "_" + f.pod_uid;
    std::string_view id = container_ids_.lookup(pod_dir, f.container, f.restart);
    if (id.empty() && poll_count_ != ids_refreshed_at_poll_) {
      container_ids_.refresh(options_.log_root.parent_path() / "containers");
      ids_refreshed_at_poll_ = poll_count_;
      id = container_ids_.lookup(pod_dir, f.container, f.restart);
    }
    return std::string(id);
  }

  void discover() {
    ++poll_count_;
    const bool overflow = discovery_.drainEvents();
    const auto now = std::chrono::steady_clock::now();
    if (overflow || now - last_rescan_ >= options_.rescan_interval) {
      fullScan(/*initial=*/false);
      last_rescan_ = now;
    } else if (discovery_.hasDirtyDirs()) {
      found_.clear();
      discovery_.scanDirty(found_);
      sortFound();
      for (const auto& f : found_) onFound(f, /*initial=*/false);
      sortGroups();
    }
  }

  void fullScan(bool initial) {
    found_.clear();
    discovery_.scanAll(found_);
    sortFound();
    std::unordered_set<std::string> seen;
    seen.reserve(found_.size());
    for (const auto& f : found_) {
      seen.insert(onFound(f, initial));
    }
    sortGroups();
    // Whatever the listing no longer shows is gone, unless it is open (deleted, still draining).
    for (auto it = store_.positions().begin(); it != store_.positions().end();) {
      const auto& key = it->first;
      ++it;
      if (!seen.contains(key) && !files_.contains(key)) {
        remember(store_.positions().at(key));
        store_.erase(key);
        store_dirty_ = true;
      }
    }
    std::erase_if(done_, [&](const auto& kv) { return !seen.contains(kv.first); });
    std::erase_if(compressed_seen_, [&](const auto& k) { return !seen.contains(k); });
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (seen.contains(it->first)) {
        ++it;
        continue;
      }
      vanishedUnread(it->second.file);
      waiting_order_.erase(it->second.seq);
      it = waiting_.erase(it);
    }
  }

  // Listings come in directory order; files wait for a handle in read order instead.
  void sortFound() {
    std::sort(found_.begin(), found_.end(), [](const DiscoveredFile& a, const DiscoveredFile& b) {
      const bool a_live = a.rotated_suffix.empty();
      const bool b_live = b.rotated_suffix.empty();
      return std::tie(a.container_dir, a.restart, a_live, a.rotated_suffix) <
             std::tie(b.container_dir, b.restart, b_live, b.rotated_suffix);
    });
  }

  // Returns the file's key.
  std::string onFound(const DiscoveredFile& f, bool initial) {
    std::string key = fileKey(f.device, f.inode);
    if (f.compressed && !options_.read_compressed) {
      // Not read: kubelet compresses a rotated file only after a newer one exists, and the plain
      // file was drained through its open descriptor, so reading it again would only duplicate.
      if (compressed_seen_.insert(key).second) ++stats_.compressed_skipped;
      return key;
    }
    if (const auto open = files_.find(key); open != files_.end()) {
      open->second->seenAt(f);
      return key;
    }
    if (const auto w = waiting_.find(key); w != waiting_.end()) {
      w->second.file = f;
      return key;
    }
    if (const auto d = done_.find(key); d != done_.end()) {
      if (d->second.size == f.size && d->second.mtime_ns == f.mtime_ns) return key;
      done_.erase(d);  // it grew after it was let go (or the inode is reused): open it again
    }
    const std::uint64_t seq = next_seq_++;
    waiting_order_.emplace(seq, key);
    waiting_.emplace(key, Waiting{f, seq, initial, false});
    return key;
  }

  void vanishedUnread(const DiscoveredFile& f) {
    if (f.size == 0) return;
    ++stats_.vanished_unread;
    errors_.report("logs", "file_vanished_unread", f.path);
  }

  void openWaiting() {
    bool opened = false;
    std::vector<Waiting> later;  // .gz files whose plain predecessor is still open
    while (!waiting_order_.empty() && files_.size() < options_.max_open_files) {
      const auto first = waiting_order_.begin();
      auto node = waiting_.extract(first->second);
      waiting_order_.erase(first);
      if (node.empty()) continue;
      const Opened result = openFile(node.mapped());
      opened |= result == Opened::kYes;
      if (result == Opened::kLater) later.push_back(std::move(node.mapped()));
    }
    for (auto& w : later) {
      w.deferred = true;  // waits for its predecessor, not for a handle
      const std::string key = fileKey(w.file.device, w.file.inode);
      waiting_order_.emplace(w.seq, key);
      waiting_.emplace(key, std::move(w));
    }
    for (auto& [key, w] : waiting_) {
      if (!w.deferred) {
        w.deferred = true;
        ++stats_.open_deferred;
      }
    }
    if (opened) sortGroups();
  }

  enum class Opened : std::uint8_t { kYes, kNo, kLater };

  Opened openFile(const Waiting& w) {
    const int fd = ::open(w.file.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
      if (errno == ENOENT) {
        vanishedUnread(w.file);
      } else {
        errors_.report("logs", "open_error", w.file.path + ": " + std::strerror(errno));
      }
      return Opened::kNo;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return Opened::kNo;
    }
    FileIdentity identity;
    identity.device = static_cast<std::uint64_t>(st.st_dev);
    identity.inode = static_cast<std::uint64_t>(st.st_ino);
    // The name may hold another file by now (renamed away): follow whatever is there.
    std::string key = fileKey(identity.device, identity.inode);
    if (files_.contains(key)) {
      ::close(fd);
      return Opened::kNo;
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    fingerprintFile(fd, size, kFingerprintMaxBytes, identity);
    if (w.file.compressed) {
      const std::int64_t mtime_ns =
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      return openCompressed(fd, w, std::move(key), identity, size, mtime_ns);
    }

    std::uint64_t start = 0;
    if (const StoredPosition* stored = store_.find(key)) {
      if (stored->offset <= size && fingerprintMatches(fd, stored->file)) {
        start = stored->offset;
      } else {
        // The inode now holds another file (reuse) or was truncated while we were away.
        ++stats_.checkpoint_mismatches;
        errors_.report("logs", "checkpoint_mismatch", w.file.path);
        store_.erase(key);
        store_dirty_ = true;
      }
    } else if (w.initial && options_.start_at_end_for_new_files) {
      start = size;
    }
    DiscoveredFile where = w.file;
    where.container_id = containerIdOf(where);
    auto file = std::make_unique<TailedFile>(fd, key, where, identity, start, size, w.seq,
                                             options_.node_name, options_.max_line_bytes);
    groups_[file->containerDir()].push_back(file.get());
    files_.emplace(std::move(key), std::move(file));
    return Opened::kYes;
  }

  // A .gz file: from its own checkpoint (a restart while it was read), else from where its plain
  // predecessor was left, else from its start. identity is the .gz file's own.
  Opened openCompressed(int fd, const Waiting& w, std::string key, const FileIdentity& identity,
                        std::uint64_t size, std::int64_t mtime_ns) {
    auto gzip = std::make_unique<GzipReader>(fd);
    std::optional<std::uint64_t> start;
    bool from_plain = false;
    if (const StoredPosition* stored = store_.find(key)) {
      if (fingerprintMatches(fd, stored->file)) {
        start = stored->offset;
      } else {
        ++stats_.checkpoint_mismatches;
        errors_.report("logs", "checkpoint_mismatch", w.file.path);
        store_.erase(key);
        store_dirty_ = true;
      }
    }
    if (!start) {
      // The decompressed stream starts as the plain file it was compressed from did.
      gz_prefix_.resize(kFingerprintMaxBytes);
      std::size_t got = 0;
      bool damaged = false;
      while (got < gz_prefix_.size()) {
        const auto n = gzip->read(std::span<char>(gz_prefix_).subspan(got));
        damaged = !n;
        if (!n || *n == 0) break;
        got += *n;
      }
      gz_prefix_.resize(got);
      if (damaged) {
        gzip = std::make_unique<GzipReader>(fd);  // read again, so the damage is seen and counted
      } else {
        gzip->unread(gz_prefix_);
      }
      if (predecessorOpen(w.file, gz_prefix_)) {
        ::close(fd);
        return Opened::kLater;
      }
      if (const auto plain = plainPosition(w.file.container_dir, gz_prefix_)) {
        start = plain;
        from_plain = true;
      }
    }
    const auto trailer = gzipTrailerSize(fd, size);
    if (!start && w.initial && options_.start_at_end_for_new_files && trailer) start = *trailer;
    const std::uint64_t at = start.value_or(0);
    if (at > 0 && trailer && static_cast<std::uint32_t>(at) == *trailer) {
      // Everything in it was delivered already: not read at all, and remembered as done.
      ::close(fd);
      if (from_plain) ++stats_.compressed_already_read;
      store_.put(key, StoredPosition{w.file.path, identity, at});
      store_dirty_ = true;
      done_[key] = Done{size, mtime_ns};
      return Opened::kNo;
    }
    ++stats_.compressed_read;
    DiscoveredFile where = w.file;
    where.container_id = containerIdOf(where);
    auto file =
        std::make_unique<TailedFile>(fd, key, where, identity, at, trailer.value_or(0), w.seq,
                                     options_.node_name, options_.max_line_bytes, std::move(gzip));
    groups_[file->containerDir()].push_back(file.get());
    files_.emplace(std::move(key), std::move(file));
    return Opened::kYes;
  }

  // The plain file a .gz was compressed from is still open (being read to its end), or still
  // waits to be opened under its name (kubelet deletes it right after the .gz is made).
  bool predecessorOpen(const DiscoveredFile& gz, std::string_view prefix) const {
    const std::string_view plain_path =
        std::string_view(gz.path).substr(0, gz.path.size() - std::string_view(".gz").size());
    if (std::ranges::any_of(waiting_,
                            [&](const auto& kv) { return kv.second.file.path == plain_path; })) {
      return true;
    }
    const auto g = groups_.find(gz.container_dir);
    if (g == groups_.end()) return false;
    return std::ranges::any_of(g->second, [&](const TailedFile* f) {
      return !f->compressed() && startsAs(prefix, f->identity());
    });
  }

  // The position of the plain file a .gz of container_dir was compressed from, if one is known.
  std::optional<std::uint64_t> plainPosition(const std::string& container_dir,
                                             std::string_view prefix) const {
    std::optional<std::uint64_t> best;
    const auto consider = [&](const StoredPosition& p) {
      if (p.path.ends_with(".gz") || parentOf(p.path) != container_dir) return;
      if (!startsAs(prefix, p.file)) return;
      best = std::max(best.value_or(0), p.offset);
    };
    for (const auto& [k, p] : store_.positions()) consider(p);
    for (const auto& p : recent_) consider(p);
    return best;
  }

  // A plain file's position that leaves the store, for the .gz compressed from it.
  void remember(const StoredPosition& p) {
    if (!options_.read_compressed || p.path.ends_with(".gz")) return;
    if (recent_.size() >= kRecentPositions) recent_.pop_front();
    recent_.push_back(p);
  }

  void sortGroups() {
    for (auto& [dir, group] : groups_) {
      std::stable_sort(group.begin(), group.end(),
                       [](const TailedFile* a, const TailedFile* b) { return a->readsBefore(*b); });
    }
  }

  void releaseDone() {
    bool released = false;
    for (auto g = groups_.begin(); g != groups_.end();) {
      auto& group = g->second;
      for (std::size_t i = 0; i < group.size();) {
        TailedFile& file = *group[i];
        if (!file.releasable() || !(file.deleted() || file.compressed() || superseded(group, i))) {
          ++i;
          continue;
        }
        release(file);
        group.erase(group.begin() + static_cast<std::ptrdiff_t>(i));
        released = true;
      }
      g = group.empty() ? groups_.erase(g) : std::next(g);
    }
    if (released) openWaiting();
  }

  void release(TailedFile& file) {
    const std::string key = file.key();
    struct stat st {};
    const bool stat_ok = ::fstat(file.fd(), &st) == 0;
    // The end of a .gz file is its decompressed size, not the size of the file.
    const std::uint64_t end =
        file.compressed() ? file.consumed() : static_cast<std::uint64_t>(st.st_size);
    if (file.deleted() || !stat_ok || st.st_nlink == 0) {
      // Read to its end: a .gz compressed from it has nothing more.
      if (!file.compressed())
        remember(StoredPosition{file.path(), file.identity(), file.consumed()});
      store_.erase(key);
    } else {
      // Still on disk (a rotated file, a finished container's log): remember that it was read to
      // its end, so listings skip it and a restart does not read it again.
      const auto size = static_cast<std::uint64_t>(st.st_size);
      store_.put(key, StoredPosition{file.path(), file.identity(), end});
      done_[key] = Done{
          size, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    }
    store_dirty_ = true;
    ++stats_.files_released;
    files_.erase(key);
  }

  LogTailerOptions options_;
  ErrorReporter& errors_;
  LogDiscovery discovery_;
  CheckpointStore store_;
  bool store_dirty_ = false;
  std::map<std::string, std::unique_ptr<TailedFile>> files_;  // key → open file
  std::map<std::string, std::vector<TailedFile*>> groups_;    // container dir → read order
  std::unordered_map<std::string, Waiting> waiting_;          // key → found, not yet opened
  std::map<std::uint64_t, std::string> waiting_order_;        // seq → key: oldest first
  std::unordered_map<std::string, Done> done_;                // released, still on disk
  std::unordered_set<std::string> compressed_seen_;
  std::deque<StoredPosition> recent_;  // positions of plain files gone, newest last
  std::string gz_prefix_;              // a .gz file's first decompressed bytes
  std::vector<DiscoveredFile> found_;  // reused by every listing
  std::vector<char> chunk_;            // reused by every read
  std::string scratch_;
  // Allow-listed pod label keys and their stream label names, in the order the options list them.
  std::vector<std::pair<std::string, std::string>> exported_labels_;
  Labels pod_labels_;  // reused by applyPod()
  LogTailerStats stats_;
  std::uint64_t next_seq_ = 0;
  std::chrono::steady_clock::time_point last_rescan_;
  ContainerIdIndex container_ids_;
  std::uint64_t poll_count_ = 0;
  std::uint64_t ids_refreshed_at_poll_ = ~std::uint64_t{0};
};

LogTailer::LogTailer(LogTailerOptions options, ErrorReporter& errors)
    : impl_(std::make_unique<Impl>(std::move(options), errors)) {}
LogTailer::~LogTailer() = default;
int LogTailer::watchFd() const { return impl_->watchFd(); }
std::size_t LogTailer::poll(LogSink& sink, std::size_t byte_budget) {
  return impl_->poll(sink, byte_budget);
}
void LogTailer::commit(const std::vector<LogCheckpoint>& checkpoints) {
  impl_->commit(checkpoints);
}
std::vector<std::pair<std::string, std::uint64_t>> LogTailer::lagPerFile() const {
  return impl_->lagPerFile();
}
LogTailerStats LogTailer::stats() const { return impl_->stats(); }

}  // namespace nodewarden::logs
