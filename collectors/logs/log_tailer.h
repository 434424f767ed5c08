// LogTailer: follows every container log file under kubelet's log root
// (<root>/<namespace>_<pod>_<uid>/<container>/<restart>.log), through rotation, restarts of the
// agent and restarts of containers, and hands whole log lines to a LogSink.
//
// What a reader gets wrong: positions are committed only when the pipeline says the lines before
// them are durable (commit()), never when they are read; a rotated file is kept open and read to
// its end before it is let go, however far behind the agent is. A checkpoint's source is the
// file's identity ("file:<dev>:<ino>"), not its path, because rotation renames files.
//
// Files without a checkpoint are read from their beginning (nothing is lost on a fresh install;
// the destination deduplicates any replay) unless start_at_end_for_new_files is set, which applies
// only to the files found by the first scan: a file that appears later is always new and is read
// whole. Split by concern: log_discovery (inotify and listings), tailed_file (one file),
// checkpoint_store (the JSON file of positions); this file owns the set of files and their order.
//
// Rotated files kubelet compressed (<restart>.log.<ts>.gz) are skipped unless read_compressed is
// set. Then one is read once, through gzip_reader, from where its plain predecessor was left: its
// decompressed first bytes hash to the plain file's fingerprint, so the plain file's position (in
// the checkpoint store, or remembered after the plain file was deleted) says what was delivered
// already; a .gz whose predecessor was read to its end is not read at all.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/container_metadata.h"
#include "pipeline/log_record.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::logs {

// Also part of the config's collectors.logs.* section (agent/config.h): max_line_bytes,
// max_open_files, rescan_interval and read_compressed are keys; the agent sets the rest.
struct LogTailerOptions {
  std::filesystem::path log_root = "/var/log/pods";
  std::filesystem::path checkpoint_file;  // e.g. <state-dir>/checkpoints/logs.json
  std::string node_name;
  std::size_t max_line_bytes = 256 * 1024;  // Loki's default line limit
  std::size_t max_open_files = 1024;
  std::chrono::milliseconds rescan_interval{10000};
  std::size_t read_chunk_bytes = 64 * 1024;
  // Pod metadata for the `job` stream label of Job pods and the allow-listed pod labels
  // (optional; not owned; asked on the tailer's thread while a file's pod is not fully known).
  ContainerMetadata* metadata = nullptr;
  // Pod label keys (kubernetes.pod_labels) whose values become stream labels of the pod's lines,
  // named by sanitizeLabelName (app.kubernetes.io/name -> app_kubernetes_io_name). A name that is
  // the tailer's own (container, job, namespace, node, pod, stream) or a structured metadata
  // key's is left out: a pod label never overrides them.
  std::vector<std::string> pod_labels;
  // Files found by the first scan that have no checkpoint start at their end instead of 0.
  bool start_at_end_for_new_files = false;
  // Rotated .gz files are read (decompressed as a stream), from where their plain predecessor was
  // left; off: they are skipped and counted (compressed_skipped).
  bool read_compressed = false;
  // The handle budget: while files wait for a descriptor (max_open_files reached), an open file
  // gives its own back when it read nothing for fd_idle_after, or, a live file, when it held it
  // for fd_slice. Waiting files get descriptors oldest-waiting first, so a file waits about
  // fd_slice * (files waiting / max_open_files) at most.
  std::chrono::milliseconds fd_idle_after{2000};
  std::chrono::milliseconds fd_slice{1000};
  // A rotated (superseded) file whose last line is unfinished (a CRI P record, a Docker record
  // without its newline) is read to its end and then waited on this long without growing before
  // the line is handed out as it is: until then its last record may still come.
  std::chrono::milliseconds partial_grace{5000};
  // The tailer's clock, injectable for tests; steady_clock::now when empty.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

struct LogTailerStats {
  std::size_t open_files = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t lines_read = 0;
  std::uint64_t lines_truncated = 0;
  std::uint64_t bad_records = 0;
  std::size_t files_waiting = 0;              // want a descriptor, none free (max_open_files)
  std::uint64_t open_deferred = 0;            // times a file had to wait for a free descriptor
  std::size_t files_parked = 0;               // followed without a descriptor (position kept)
  std::uint64_t fd_yields = 0;                // descriptors given back for a waiting file
  std::chrono::nanoseconds longest_wait{0};   // the longest current wait for a descriptor
  std::uint64_t parked_vanished = 0;          // files deleted while they had no descriptor
  std::uint64_t copies_positioned = 0;        // copytruncate copies read from the original's place
  std::uint64_t partials_flushed = 0;         // unfinished lines handed out at a file's final end
  std::uint64_t files_released = 0;           // rotated or deleted files read, committed and closed
  std::uint64_t truncations = 0;              // copytruncate: a file shrank below the read position
  std::uint64_t checkpoint_mismatches = 0;    // a checkpoint's inode now holds another file
  std::uint64_t compressed_skipped = 0;       // rotated .gz files not read (read_compressed off)
  std::uint64_t compressed_read = 0;          // .gz files opened to be read (decompressed)
  std::uint64_t compressed_already_read = 0;  // .gz files whose plain predecessor was read whole
  std::uint64_t compressed_corrupt = 0;       // .gz files read up to damage (corrupt, truncated)
  std::uint64_t vanished_unread = 0;          // files deleted before they could be opened
  std::uint64_t inotify_overflows = 0;
};

class LogTailer {
 public:
  LogTailer(LogTailerOptions options, ErrorReporter& errors);
  ~LogTailer();
  LogTailer(const LogTailer&) = delete;
  LogTailer& operator=(const LogTailer&) = delete;

  // The inotify descriptor the event loop waits on (readable: call poll()). -1 if unavailable
  // (the periodic rescan still finds everything).
  [[nodiscard]] int watchFd() const;

  // Handles pending inotify events, rescans when due, and reads new data, giving whole lines to
  // sink until it has no room or byte_budget bytes were read. Returns the bytes read. Never blocks.
  // A line refused while sink.hasRoom() stays true holds back only its container's files for this
  // poll (the sink is full for that stream alone: one Loki tenant's batcher); the rest read on.
  std::size_t poll(LogSink& sink, std::size_t byte_budget);

  // These positions are durable: persist them (atomically) and release rotated or deleted files
  // that are fully read and committed.
  void commit(const std::vector<LogCheckpoint>& checkpoints);

  // Read lag of each followed file in bytes (size - offset), for the per-file lag metric.
  [[nodiscard]] std::vector<std::pair<std::string, std::uint64_t>> lagPerFile() const;
  [[nodiscard]] LogTailerStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden::logs
