// The log path's data: an entry, the stream it belongs to, where it came from, and a batch of
// them. Collectors (container logs, journal) produce LogEntry values with their stream labels and
// source position; the batcher groups them into LogBatch; the spool stores batches; the Loki
// exporter sends them.
//
// What a reader gets wrong: a LogBatch carries the positions (checkpoints) of every source it
// covers. They are committed only after the batch is durably in the spool, so a crash replays from
// the spool (exactly the same entries, which Loki deduplicates) and never skips a line.
//
// What a reader gets wrong about the layout: pipeline/ (this header, the batcher, the spool, the
// shipper) knows no destination's wire format. A destination that wants its batches encoded as
// they are made provides a LogBatchEncoder (pipeline/log_batch_encoder.h, from
// LogExporter::batchEncoder()); the batch then carries that encoder's body as opaque bytes.
// Loki's push format lives in exporters/loki/ alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nodewarden {

// Label pairs sorted by name, names unique. Stream labels (low cardinality: namespace, pod,
// container, node, stream, job) or structured metadata (pod_uid, container_id, filename, ...).
using Labels = std::vector<std::pair<std::string, std::string>>;

// Which file a position belongs to. Device and inode find it; the fingerprint (a hash of its
// first fingerprint_bytes bytes) tells a reused inode from the file that was checkpointed.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t fingerprint = 0;
  std::uint32_t fingerprint_bytes = 0;
  bool operator==(const FileIdentity&) const = default;
};

// A position to commit once everything before it is durable. One per source.
struct LogCheckpoint {
  std::string source;  // checkpoint key: the file's path for files, "journal" for the journal
  FileIdentity file;
  std::uint64_t offset = 0;    // bytes of the file consumed (a complete line ends before it)
  std::string journal_cursor;  // for the journal
  bool operator==(const LogCheckpoint&) const = default;
};

struct LogEntry {
  std::int64_t timestamp_ns = 0;
  std::string line;
  Labels metadata;  // Loki structured metadata
  bool operator==(const LogEntry&) const = default;
};

struct LogBatch {
  struct Stream {
    Labels labels;
    std::vector<LogEntry> entries;  // in the order they were read
    bool operator==(const Stream&) const = default;
  };
  std::vector<Stream> streams;
  std::vector<LogCheckpoint> checkpoints;  // the latest position of each source in the batch
  std::size_t bytes = 0;                   // sum of line sizes
  std::size_t lines = 0;
  std::uint64_t sequence = 0;  // assigned by the spool on append
  // When not empty, the entries as the destination's LogBatchEncoder wrote them, and `streams`
  // is empty: the batcher encodes a batch once when the destination provides an encoder (Loki's
  // protobuf API: a push body, exporters/loki/loki_push_body.h), and the spool and the exporter
  // pass these bytes on as they are. Opaque here; only the encoder's decodeBody() reads them.
  std::string encoded_body;
  bool operator==(const LogBatch&) const = default;
};

// Where collectors put what they read. accept() returns false when the pipeline is over its
// memory budget: the collector stops reading (the file is the buffer) and tries again later.
// Everything is passed by reference and copied (or encoded) by the sink as needed, so a collector
// can reuse one entry's buffers line after line instead of allocating per line.
// A process-wide number for a label set (LogSink::acceptStream): never 0, never repeated.
std::uint64_t newLogStreamId();

class LogSink {
 public:
  virtual ~LogSink() = default;
  // labels: the entry's stream labels. checkpoint: the source position just past this entry.
  virtual bool accept(const Labels& labels, const LogEntry& entry,
                      const LogCheckpoint& checkpoint) = 0;
  // The same, from a collector that numbers its label sets: stream_id is one label set's number
  // from newLogStreamId(), taken anew whenever those labels change, so a sink may recognise the
  // entry's stream by it instead of comparing labels line after line.
  virtual bool acceptStream(const Labels& labels, const LogEntry& entry,
                            const LogCheckpoint& checkpoint, std::uint64_t /*stream_id*/) {
    return accept(labels, entry, checkpoint);
  }
  // Whether accept() would take more now.
  [[nodiscard]] virtual bool hasRoom() const = 0;
};

}  // namespace nodewarden
