// JournalReader: the node's systemd journal through libsystemd (sd-journal), filtered to the
// units that matter to a Kubernetes node, resumed from a cursor checkpoint after a restart.
//
// What a reader gets wrong: the cursor is committed only when the entries before it are durable
// (commit()), like file offsets; after a restart reading resumes just after that cursor.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/log_record.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::journal {

struct JournalOptions {
  // A journal directory (/var/log/journal, /run/log/journal, or a directory of .journal files).
  std::filesystem::path dir = "/var/log/journal";
  std::vector<std::string> units = {"kubelet.service", "containerd.service", "crio.service",
                                    "docker.service"};
  std::filesystem::path cursor_file;  // e.g. <state-dir>/checkpoints/journal.cursor
  std::string node_name;
};

class JournalReader {
 public:
  JournalReader(JournalOptions options, ErrorReporter& errors);
  ~JournalReader();
  JournalReader(const JournalReader&) = delete;
  JournalReader& operator=(const JournalReader&) = delete;

  // sd_journal_get_fd(): readable when new entries may be there; -1 when the journal is closed.
  [[nodiscard]] int watchFd() const;
  // Reads up to max_entries new entries into sink (stops early when the sink has no room).
  std::size_t poll(LogSink& sink, std::size_t max_entries);
  // Persists the cursor of the "journal" checkpoint among these, if any.
  void commit(const std::vector<LogCheckpoint>& checkpoints);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden::journal
