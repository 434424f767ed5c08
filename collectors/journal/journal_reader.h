// JournalReader: the node's systemd journal through libsystemd (sd-journal), filtered to the
// units that matter to a Kubernetes node, resumed from a cursor checkpoint after a restart.
//
// What a reader gets wrong: the cursor is committed only when the entries before it are durable
// (commit()), like file offsets; after a restart reading resumes just after that cursor. Without a
// committed cursor a start begins at the journal's tail (start_at_tail), so a crash before the
// first commit loses what was written between that start and the restart.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/log_record.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::journal {

struct JournalOptions {
  // A journal directory (/var/log/journal, /run/log/journal, or a directory of .journal files;
  // <machine-id>/ subdirectories are read too), or an OS root such as /host that holds
  // var/log/journal and/or run/log/journal (opened with SD_JOURNAL_OS_ROOT).
  std::filesystem::path dir = "/var/log/journal";
  // Entries whose _SYSTEMD_UNIT or UNIT (systemd's own lines about the unit: started, exited,
  // killed) is one of these, or whose SYSLOG_IDENTIFIER is one's name without ".service" (the
  // daemon run outside a unit). Empty: every entry, labelled with its _SYSTEMD_UNIT.
  std::vector<std::string> units = {"kubelet.service", "containerd.service", "crio.service",
                                    "docker.service"};
  std::filesystem::path cursor_file;  // e.g. <state-dir>/checkpoints/journal.cursor
  std::string node_name;
  // With no committed cursor: true skips the history already in the journal (a node keeps months
  // of it) and ships only what is written from now on; false ships everything from the head.
  bool start_at_tail = true;
  // While the journal cannot be opened (no directory yet: a node without a persistent journal),
  // opening is tried again at most this often, so the error count grows by one per interval
  // rather than by one per poll.
  std::chrono::milliseconds reopen_interval{10000};
};

// Not thread-safe: construct, poll() and commit() on one thread (the event loop's).
class JournalReader {
 public:
  JournalReader(JournalOptions options, ErrorReporter& errors);
  ~JournalReader();
  JournalReader(const JournalReader&) = delete;
  JournalReader& operator=(const JournalReader&) = delete;

  // sd_journal_get_fd(): readable when new entries may be there; -1 when the journal is closed
  // (directory missing: poll on a timer, each poll retries opening it).
  [[nodiscard]] int watchFd() const;
  // Reads up to max_entries new entries into sink (stops early when the sink has no room) and
  // returns how many it accepted. An entry the sink refuses is offered again by the next poll.
  std::size_t poll(LogSink& sink, std::size_t max_entries);
  // Persists the cursor of the "journal" checkpoint among these, if any (tmp + fsync + rename).
  void commit(const std::vector<LogCheckpoint>& checkpoints);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden::journal
