// LogTailer: the set of followed files, their read order per container, the handle budget, and
// the bridge between what the sink accepted and what commit() made durable.
//
// What a reader gets wrong: a file is let go only when three things hold: it will not grow (it was
// deleted, or a newer file of its container has data), everything in it was handed out, and
// commit() covered the last entry handed out. Until then a rotated or deleted file keeps its
// descriptor while it has data, so a file renamed and deleted while the agent was far behind is
// still read to its end. So a .gz file whose plain predecessor is still open waits until the
// plain file is let go: only then is the plain file's position final, and it is usually the end
// (nothing of the .gz is read).
//
// Having a descriptor is not the same as being followed. Beyond max_open_files, files take turns:
// a parked file (idle, or live and past its slice while others wait) keeps its TailedFile, with
// position, partial lines and identity, and is reopened by the name its inode was last listed
// under. Only a file deleted while parked is lost past its position, and that is counted.
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
  using Clock = std::chrono::steady_clock;
  enum class Opened : std::uint8_t { kYes, kNo, kLater };

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
  ~Impl() {
    for (auto& [key, w] : waiting_) {
      if (w.fd >= 0) ::close(w.fd);
    }
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  [[nodiscard]] int watchFd() const { return discovery_.fd(); }

  std::size_t poll(LogSink& sink, std::size_t byte_budget) {
    discover();
    const auto now = clock();
    lookAtParked();
    schedule(now, sink.hasRoom());

    TailContext ctx{sink, errors_, stats_, chunk_, scratch_, replaced_};
    std::size_t total = 0;
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
    // A refusal while the sink still has room is about that entry's stream (one Loki tenant's
    // batcher is full, the others are not): the container's files wait for the rest of this poll
    // and every other container is read on. Only a sink without room stops the poll.
    blocked_groups_.clear();
    // A line the sink refused last time goes first: it was read before anything still unread.
    for (auto& [key, file] : files_) {
      if (file->hasHeld() && !file->deliverHeld(ctx)) {
        if (!sink.hasRoom()) return 0;
        blocked_groups_.insert(file->containerDir());
      }
    }
    // Files deleted while they had no descriptor: what was written after their position is gone,
    // and so is the rest of an unfinished line, which is handed out as it is.
    for (auto it = vanished_parked_.begin(); it != vanished_parked_.end();) {
      const auto f = files_.find(*it);
      if (f != files_.end() && f->second->finish(ctx) == TailedFile::Status::kBlocked) {
        if (!sink.hasRoom()) return 0;
        blocked_groups_.insert(f->second->containerDir());
        ++it;
        continue;
      }
      it = vanished_parked_.erase(it);
    }

    bool blocked = false;
    bool progressed = true;
    while (!blocked && progressed && total < byte_budget) {
      progressed = false;
      // One chunk per container per round, so a chatty container does not starve the others.
      for (auto& [dir, group] : groups_) {
        if (blocked_groups_.contains(dir)) continue;
        if (readGroup(ctx, group, byte_budget - total, total, progressed, now)) {
          if (!sink.hasRoom()) {
            blocked = true;
            break;
          }
          blocked_groups_.insert(dir);
        }
        if (total >= byte_budget) break;
      }
    }
    for (const auto& p : replaced_) remember(p, /*always=*/true);
    replaced_.clear();
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
    s.open_files = open_fds_;
    std::size_t copies_held = 0;
    for (const auto& [key, w] : waiting_) copies_held += w.fd >= 0 ? 1 : 0;
    s.files_parked = files_.size() - (open_fds_ - copies_held);
    s.files_waiting = 0;
    for (const auto& [key, q] : queued_) s.files_waiting += q.for_handle ? 1 : 0;
    s.inotify_overflows = discovery_.overflows();
    return s;
  }

 private:
  struct Waiting {
    DiscoveredFile file;
    std::uint64_t seq = 0;
    bool initial = false;  // found by the first scan
    // A copy (copytruncate) whose original has not been seen truncated yet: since when it waits.
    std::optional<Clock::time_point> copy_since;
    // A descriptor opened for it and not yet adopted (counted in open_fds_); -1 while it waits:
    // copies keeping theirs while they waited could hold the whole budget.
    int fd = -1;
  };
  // A file that wants a descriptor: one found and never opened, or one that gave its descriptor
  // back and has something to read again.
  struct Queued {
    std::uint64_t ticket = 0;  // its place: oldest first
    Clock::time_point since;
    bool counted = false;     // its wait was counted as a deferral
    bool for_handle = false;  // it waits for a free descriptor (not for a predecessor)
    bool urgent = false;      // a rotated file with unread lines: ahead of every other
  };
  struct Done {
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
  };

  // Reads the first file of the group that is not at its end; returns true when the sink blocked.
  bool readGroup(TailContext& ctx, std::vector<TailedFile*>& group, std::size_t budget,
                 std::size_t& total, bool& progressed, Clock::time_point now) {
    for (std::size_t i = 0; i < group.size(); ++i) {
      TailedFile& file = *group[i];
      if (file.parked()) {
        // Without a descriptor: the later files' lines wait while it has lines before theirs.
        if (queued_.contains(file.key())) return false;
        continue;
      }
      if (file.eofThisPoll()) continue;
      // Reading what could not be handed out would only be read again.
      if (!ctx.sink.hasRoom()) return true;
      std::size_t n = 0;
      const auto status = file.readChunk(ctx, budget, n);
      total += n;
      if (n > 0) file.noteData(now);
      if (status == TailedFile::Status::kBlocked) return true;
      if (status == TailedFile::Status::kMore) {
        progressed = true;
        return false;
      }
      file.setEofThisPoll();
      file.noteAtEnd(now);
      const bool final = file.deleted() || file.compressed();
      if (final || superseded(group, i)) {
        // A newer file has data, but the writer may still be between the records of a line
        // (a P and its F): the line is handed out alone only once the file stayed as it is for
        // partial_grace. A deleted or compressed file cannot grow: its end is final at once.
        if (!final && file.hasPending() && now - file.lastGrowth() < options_.partial_grace) {
          continue;
        }
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
    // Whatever the listing no longer shows is gone, unless it is open (deleted, still draining),
    // or its directory could not be listed (EMFILE, ...): then its absence says nothing.
    for (auto it = store_.positions().begin(); it != store_.positions().end();) {
      const auto& key = it->first;
      ++it;
      if (!seen.contains(key) && !files_.contains(key) &&
          !discovery_.unlisted(parentOf(store_.positions().at(key).path))) {
        remember(store_.positions().at(key));
        store_.erase(key);
        store_dirty_ = true;
      }
    }
    if (discovery_.unlisted(options_.log_root.string())) return;  // nothing was seen at all
    std::erase_if(done_, [&](const auto& kv) { return !seen.contains(kv.first); });
    std::erase_if(compressed_seen_, [&](const auto& k) { return !seen.contains(k); });
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      // A copy whose descriptor is kept is read from it, whether or not it is still listed.
      if (seen.contains(it->first) || it->second.fd >= 0 ||
          discovery_.unlisted(it->second.file.container_dir)) {
        ++it;
        continue;
      }
      vanishedUnread(it->second.file);
      dequeue(it->first);
      it = waiting_.erase(it);
    }
    // A file without a descriptor that no listing shows any more was deleted (with its rotated
    // names, if it was rotated meanwhile): it cannot be read again. Only when its directory was
    // listed and its last name is gone: a listing that failed shows nothing, and finishing a file
    // that is still there would hand out its unfinished line alone and read it again from 0.
    // A listing can also miss a file that is renamed between its readdir and its stat (the old
    // name then shows the new file's inode, the new name was not read): so a file is gone only
    // when two listings in a row miss it.
    std::set<std::string> missed;
    for (auto& [key, file] : files_) {
      if (!file->parked() || file->finished() || seen.contains(key)) continue;
      if (discovery_.unlisted(file->containerDir())) continue;
      struct stat st {};
      if (::stat(file->path().c_str(), &st) == 0) {
        // Still there under its last name (not listed: read between the listing and now).
        if (static_cast<std::uint64_t>(st.st_ino) == file->identity().inode &&
            static_cast<std::uint64_t>(st.st_dev) == file->identity().device) {
          continue;
        }
      } else if (errno != ENOENT) {
        continue;
      }
      missed.insert(key);
      if (!missed_once_.contains(key)) continue;
      if (!vanished_parked_.insert(key).second) continue;
      file->markDeleted();
      dequeue(key);
      ++stats_.parked_vanished;
      errors_.report("logs", "deleted_without_descriptor", file->path());
    }
    missed_once_ = std::move(missed);
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
      TailedFile& file = *open->second;
      file.seenAt(f);
      if (file.parked() && !file.finished() && !f.rotated_suffix.empty() &&
          f.size > file.consumed() && firstToRead(file)) {
        enqueueUrgent(key, clock());
      }
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
    waiting_.emplace(key, Waiting{f, seq, initial, std::nullopt});
    enqueue(key, clock());
    return key;
  }

  void vanishedUnread(const DiscoveredFile& f) {
    if (f.size == 0) return;
    ++stats_.vanished_unread;
    errors_.report("logs", "file_vanished_unread", f.path);
  }

  // For log lines: the path a key was last listed under.
  [[nodiscard]] std::string pathOf(const std::string& key) const {
    if (const auto w = waiting_.find(key); w != waiting_.end()) return w->second.file.path;
    if (const auto f = files_.find(key); f != files_.end()) return f->second->path();
    return key;
  }

  Clock::time_point clock() const { return options_.clock ? options_.clock() : Clock::now(); }

  void enqueue(const std::string& key, Clock::time_point now) {
    if (queued_.contains(key)) return;
    const std::uint64_t ticket = next_ticket_++;
    queue_.emplace(ticket, key);
    queued_.emplace(key, Queued{ticket, now, false, false});
  }

  // No older file of its container is to be read before it: only such a file is worth a
  // descriptor taken at once (one behind another would give it back unread, again and again).
  [[nodiscard]] bool firstToRead(const TailedFile& file) const {
    if (std::ranges::any_of(waiting_, [&](const auto& kv) {
          return kv.second.file.container_dir == file.containerDir();
        })) {
      return false;
    }
    const auto g = groups_.find(file.containerDir());
    if (g == groups_.end()) return true;
    for (const TailedFile* other : g->second) {
      if (other == &file) return true;
      if (!other->finished()) return false;
    }
    return true;
  }

  // A parked file now listed under a rotated name with lines past its position: kubelet deletes
  // the oldest rotated files, so it goes before everything that waits.
  void enqueueUrgent(const std::string& key, Clock::time_point now) {
    Queued q{next_urgent_ticket_++, now, false, false, true};
    if (const auto it = queued_.find(key); it != queued_.end()) {
      if (it->second.urgent) return;
      q.since = it->second.since;
      q.counted = it->second.counted;
      queue_.erase(it->second.ticket);
      queued_.erase(it);
    }
    queue_.emplace(q.ticket, key);
    queued_.emplace(key, q);
  }

  void dequeue(const std::string& key) {
    const auto it = queued_.find(key);
    if (it == queued_.end()) return;
    queue_.erase(it->second.ticket);
    queued_.erase(it);
  }

  // Files without a descriptor in directories that were written to: their size now, so that one
  // with something new asks for a descriptor without waiting for a rescan.
  void lookAtParked() {
    modified_.clear();
    discovery_.takeModified(modified_);
    if (std::ranges::none_of(files_, [](const auto& kv) { return kv.second->parked(); })) return;
    for (const auto& dir : modified_) {
      const auto g = groups_.find(dir);
      if (g == groups_.end()) continue;
      for (TailedFile* f : g->second) {
        if (f->parked()) f->statPath();
      }
    }
  }

  // Hands out descriptors: to files that want one, oldest-waiting first, taking them back from
  // files that are idle or had theirs for a slice while others wait.
  void schedule(Clock::time_point now, bool sink_has_room) {
    // Parked files with something to read again: they grew (or shrank: copytruncate), or a newer
    // file of their container has data, so they are to be read to their end and let go.
    for (auto& [dir, group] : groups_) {
      for (std::size_t i = 0; i < group.size(); ++i) {
        TailedFile& f = *group[i];
        if (!f.parked() || f.finished() || queued_.contains(f.key())) continue;
        const bool to_finish = superseded(group, i) &&
                               (!f.hasPending() || now - f.lastGrowth() >= options_.partial_grace);
        if (f.changedSinceParked() || to_finish) enqueue(f.key(), now);
      }
    }
    bool opened = serve(now);
    std::size_t wanting = 0;
    std::size_t urgent = 0;
    for (const auto& [key, q] : queued_) {
      wanting += q.for_handle ? 1 : 0;
      urgent += q.for_handle && q.urgent ? 1 : 0;
    }
    // While the sink has no room nothing is read: a descriptor given back then serves no reader,
    // and the file that gave it may be deleted before it is read again. A rotated file parked with
    // unread lines is the exception: its descriptor is what keeps those lines once kubelet deletes
    // it, so one is taken for it from a live file even then, and whatever its slice.
    if (wanting > 0 && open_fds_ >= options_.max_open_files && (sink_has_room || urgent > 0)) {
      if (yieldDescriptors(now, sink_has_room ? wanting : urgent, urgent > 0) > 0) {
        opened |= serve(now);
      }
    }
    // What still waits for a descriptor is a deferral: counted once per wait.
    Clock::duration longest{0};
    for (auto& [key, q] : queued_) {
      if (!q.for_handle) continue;
      longest = std::max(longest, now - q.since);
      if (q.counted) continue;
      q.counted = true;
      ++stats_.open_deferred;
      errors_.report("logs", "fd_budget_exhausted", pathOf(key));
    }
    stats_.longest_wait = std::chrono::duration_cast<std::chrono::nanoseconds>(longest);
    if (opened) sortGroups();
  }

  // Opens queued files while descriptors are free. Returns whether one was opened.
  bool serve(Clock::time_point now) {
    bool opened = false;
    for (auto it = queue_.begin(); it != queue_.end();) {
      const std::string key = it->second;
      ++it;
      Queued& q = queued_.at(key);
      const auto held = waiting_.find(key);
      if (open_fds_ >= options_.max_open_files && (held == waiting_.end() || held->second.fd < 0)) {
        q.for_handle = true;
        continue;
      }
      Opened result = Opened::kNo;
      if (const auto w = waiting_.find(key); w != waiting_.end()) {
        result = openFile(w->second, now);
        if (result != Opened::kLater) waiting_.erase(w);
      } else if (const auto f = files_.find(key); f != files_.end()) {
        result = reopen(*f->second, now);
      }
      if (result == Opened::kLater) {
        q.for_handle = false;  // waits for something else than a descriptor
        continue;
      }
      opened |= result == Opened::kYes;
      dequeue(key);
    }
    return opened;
  }

  // Takes descriptors back from up to `wanted` open files: first those idle longest, then those
  // read to their end that held theirs a quarter slice, then those that held theirs beyond
  // fd_slice. A file that still has data to read queues again.
  // A rotated file is not made to yield while it has data (kubelet deletes old rotated files, and
  // one deleted without a descriptor could not be read to its end), nor a deleted one ever, unless
  // it is finished or cannot be read anyway: an older file of its container waits for a handle.
  // force: a rotated file with unread lines waits; any live file's descriptor will do for it.
  // Never parked: a file unlinked (st_nlink 0; it is marked deleted), nor a rotated one with
  // bytes past its read offset: either could be gone before it is reopened, and its lines with it.
  std::size_t yieldDescriptors(Clock::time_point now, std::size_t wanted, bool force) {
    auto& candidates = yield_candidates_;
    candidates.clear();
    for (auto& [dir, group] : groups_) {
      bool behind_waiting = false;
      for (TailedFile* file : group) {
        TailedFile& f = *file;
        if (f.parked()) {
          behind_waiting |= queued_.contains(f.key());
          continue;
        }
        // A .gz stream cannot be re-opened at an offset.
        if (f.compressed()) continue;
        // Idle: at its end for fd_idle_after. A file behind (the sink had no room) is not idle.
        const bool idle = f.idleFor(now, options_.fd_idle_after);
        if (f.finished()) {
          candidates.push_back({true, f.lastData(), &f});
        } else if (f.deleted()) {
          continue;
        } else if (behind_waiting) {
          candidates.push_back({true, f.lastData(), &f, true});
        } else if (idle) {
          candidates.push_back({true, f.lastData(), &f});
        } else if (!f.rotated() && f.eofThisPoll() && now - f.fdSince() >= options_.fd_slice / 4) {
          // Read to its end by the last poll: what it gets next can wait its turn.
          candidates.push_back({false, f.fdSince() - options_.fd_slice, &f});
        } else if (!f.rotated() && now - f.fdSince() >= options_.fd_slice) {
          candidates.push_back({false, f.fdSince(), &f});
        } else if (force && !f.rotated()) {
          candidates.push_back({false, f.fdSince() + options_.fd_slice, &f});
        }
      }
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const YieldCandidate& a, const YieldCandidate& b) {
                return std::tie(b.idle, a.since) < std::tie(a.idle, b.since);
              });
    std::size_t yielded = 0;
    for (const YieldCandidate& c : candidates) {
      if (yielded == wanted) break;
      TailedFile& f = *c.file;
      struct stat st {};
      if (::fstat(f.fd(), &st) != 0) continue;
      if (!f.finished()) {
        if (st.st_nlink == 0) {
          f.markDeleted();  // its end is final; it keeps its descriptor until read to it
          continue;
        }
        // Unless it cannot be read anyway: an older file of its container waits for a
        // descriptor, and files held that way could take every descriptor from it.
        if (f.rotated() && !c.behind_waiting &&
            static_cast<std::uint64_t>(st.st_size) > f.readOffset()) {
          continue;
        }
      }
      f.park(static_cast<std::uint64_t>(st.st_size),
             static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
      --open_fds_;
      ++yielded;
      ++stats_.fd_yields;
      if (!f.finished() && static_cast<std::uint64_t>(st.st_size) > f.readOffset()) {
        enqueue(f.key(), now);
      }
    }
    return yielded;
  }

  // Gives a parked file a descriptor again, on the name a listing last saw it under, if that name
  // still holds the same inode. kLater: it does not (renamed, or gone); the next listing says where
  // it went, or that it was deleted.
  Opened reopen(TailedFile& file, Clock::time_point now) {
    const int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return Opened::kLater;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_ino) != file.identity().inode ||
        static_cast<std::uint64_t>(st.st_dev) != file.identity().device) {
      ::close(fd);
      return Opened::kLater;
    }
    file.reopen(fd);
    file.setFdSince(now);
    file.noteOpened(now);
    ++open_fds_;
    return Opened::kYes;
  }

  Opened openFile(Waiting& w, Clock::time_point now) {
    int fd = w.fd;
    if (fd >= 0) {
      w.fd = -1;  // adopted below (or closed): counted again by adopt()
      --open_fds_;
    } else {
      fd = ::open(w.file.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    }
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
    } else if (!w.file.rotated_suffix.empty()) {
      // A rotated file never followed: maybe a copy (copytruncate) of content already read.
      const auto copy = copyStart(fd, size, key, w, now);
      if (!copy) {
        ::close(fd);
        return Opened::kLater;
      }
      start = *copy;
    }
    DiscoveredFile where = w.file;
    where.container_id = containerIdOf(where);
    auto file = std::make_unique<TailedFile>(fd, key, where, identity, start, size, w.seq,
                                             options_.node_name, options_.max_line_bytes);
    adopt(std::move(key), std::move(file), now);
    return Opened::kYes;
  }

  void adopt(std::string key, std::unique_ptr<TailedFile> file, Clock::time_point now) {
    file->setFdSince(now);
    file->noteOpened(now);
    ++open_fds_;
    groups_[file->containerDir()].push_back(file.get());
    files_.emplace(std::move(key), std::move(file));
  }

  // Where to start a rotated file that has no position of its own. logrotate's copytruncate
  // copies the live file under a rotated name, then truncates it: the copy's first bytes are the
  // original's, and its lines were delivered from the original up to where the original was when
  // it was seen truncated (its safe offset: an unfinished line is read again from the copy, whole).
  // Read from 0, the copy would hand out every line again, and a line the copy cut after its P
  // record, P alone. nullopt: the original is still followed and not seen truncated yet, so where
  // it stops is not known: wait (at most a rescan interval, then start where it is now).
  std::optional<std::uint64_t> copyStart(int fd, std::uint64_t size, const std::string& key,
                                         Waiting& w, Clock::time_point now) {
    copy_prefix_.resize(
        static_cast<std::size_t>(std::min<std::uint64_t>(size, kFingerprintMaxBytes)));
    std::size_t got = 0;
    while (got < copy_prefix_.size()) {
      const ssize_t r = ::pread(fd, copy_prefix_.data() + got, copy_prefix_.size() - got,
                                static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    copy_prefix_.resize(got);
    const auto patience =
        std::max<Clock::duration>(options_.rescan_interval, std::chrono::seconds(10));
    const auto g = groups_.find(w.file.container_dir);
    if (g != groups_.end() && copy_prefix_.find('\n') == std::string::npos) {
      // Not even a whole first record yet: a copy being written (cp, logrotate) cannot be told
      // from a new file until it has one. Read from 0 it would give every line again.
      if (!w.copy_since) w.copy_since = now;
      if (now - *w.copy_since < patience) return std::nullopt;
    }
    if (g != groups_.end()) {
      for (const TailedFile* f : g->second) {
        if (f->key() == key || f->compressed() || f->finished()) continue;
        if (!startsAs(copy_prefix_, f->head())) continue;
        // The original's content was replaced under the tailer's feet (truncated), not noticed by
        // its reader yet, which may be held up by backpressure: nothing more of that content can
        // be read from it, so what it delivered is final, and the copy goes on from there.
        if (!f->parked() && f->identity().fingerprint_bytes > 0 &&
            !fingerprintMatches(f->fd(), f->identity())) {
          ++stats_.copies_positioned;
          return std::min(size, f->deliveredOffset());
        }
        if (!w.copy_since) w.copy_since = now;
        if (now - *w.copy_since < patience) return std::nullopt;
        ++stats_.copies_positioned;
        return std::min(size, f->deliveredOffset());  // a copy that was never truncated after
      }
    }
    if (const auto p = plainPosition(w.file.container_dir, copy_prefix_)) {
      ++stats_.copies_positioned;
      return std::min(size, *p);
    }
    return 0;
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
    adopt(std::move(key), std::move(file), clock());
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
  // always: a replaced content's position, for its copy (see copyStart), whatever read_compressed.
  void remember(const StoredPosition& p, bool always = false) {
    if ((!options_.read_compressed && !always) || p.path.ends_with(".gz")) return;
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
    if (released && serve(clock())) sortGroups();
  }

  void release(TailedFile& file) {
    const std::string key = file.key();
    struct stat st {};
    // A parked file is looked up by name: still this inode there means still on disk.
    const bool stat_ok = file.parked()
                             ? ::stat(file.path().c_str(), &st) == 0 &&
                                   static_cast<std::uint64_t>(st.st_ino) == file.identity().inode &&
                                   static_cast<std::uint64_t>(st.st_dev) == file.identity().device
                             : ::fstat(file.fd(), &st) == 0;
    if (!file.parked()) --open_fds_;
    // The end is what was read: a .gz file's is in its decompressed stream, and a plain file
    // that grew after it was finished keeps what it grew by for the next listing to find.
    const std::uint64_t end = file.consumed();
    if (file.deleted() || !stat_ok || st.st_nlink == 0) {
      // Read to its end: a .gz compressed from it has nothing more.
      if (!file.compressed())
        remember(StoredPosition{file.path(), file.identity(), file.consumed()});
      store_.erase(key);
    } else {
      // Still on disk (a rotated file, a finished container's log): remember that it was read to
      // its end, so listings skip it and a restart does not read it again.
      const auto size = file.compressed() ? static_cast<std::uint64_t>(st.st_size) : end;
      store_.put(key, StoredPosition{file.path(), file.identity(), end});
      done_[key] = Done{
          size, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    }
    store_dirty_ = true;
    ++stats_.files_released;
    dequeue(key);
    vanished_parked_.erase(key);
    files_.erase(key);
  }

  LogTailerOptions options_;
  ErrorReporter& errors_;
  LogDiscovery discovery_;
  CheckpointStore store_;
  bool store_dirty_ = false;
  // key → followed file, with its descriptor or parked without one (position and lines kept)
  std::map<std::string, std::unique_ptr<TailedFile>> files_;
  std::map<std::string, std::vector<TailedFile*>> groups_;  // container dir → read order
  // Containers whose line the sink refused in this poll while it had room for others.
  std::set<std::string> blocked_groups_;
  std::unordered_map<std::string, Waiting> waiting_;  // key → found, not yet opened
  // Files that want a descriptor (waiting_'s, and parked ones with something to read).
  std::map<std::uint64_t, std::string> queue_;          // ticket → key: oldest first
  std::unordered_map<std::string, Queued> queued_;      // key → its place in queue_
  std::uint64_t next_ticket_ = std::uint64_t{1} << 62;  // after every urgent ticket
  std::uint64_t next_urgent_ticket_ = 0;
  std::size_t open_fds_ = 0;               // files_ that hold a descriptor
  std::set<std::string> vanished_parked_;  // parked, then deleted: to be finished
  std::set<std::string> missed_once_;      // parked, and missed by the last listing
  std::vector<StoredPosition> replaced_;   // content replaced by copytruncate
  std::vector<std::string> modified_;      // container dirs written to (reused)
  std::string copy_prefix_;                // a rotated file's first bytes
  struct YieldCandidate {
    bool idle;
    Clock::time_point since;
    TailedFile* file;
    bool behind_waiting = false;  // an older file of its container waits for a descriptor
  };
  std::vector<YieldCandidate> yield_candidates_;  // reused by yieldDescriptors()
  std::unordered_map<std::string, Done> done_;    // released, still on disk
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
