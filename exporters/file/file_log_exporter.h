// FileLogExporter: the log destination when no Loki URL is configured. Writes every entry as one
// JSON object per line to a local file that rolls over at a size bound, keeping one previous
// file, so logs are visible on the node (and nothing piles up in the spool) without a server.
//
// What a reader gets wrong: this is a convenience sink, not an archive: once both files are full
// the oldest lines are overwritten by design. The spool still sits in front of it, so a full disk
// or unwritable path is a RETRY, not a loss. It encodes nothing ahead (no batchEncoder()): a
// batch that carries a body was spooled for another destination before a restart, and is read
// back with the decoder it is given.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>

#include "pipeline/log_exporter.h"

namespace nodewarden {

class FileLogExporter final : public LogExporter {
 public:
  // body_decoder reads the bodies of batches spooled for another destination
  // (LogBatch::encoded_body); without it such a batch is dropped as undecodable.
  FileLogExporter(std::filesystem::path file, std::uint64_t max_bytes,
                  std::shared_ptr<const LogBatchEncoder> body_decoder = nullptr);

  [[nodiscard]] std::string_view name() const override { return "file"; }
  SendResult send(const LogBatch& batch) override;

 private:
  std::filesystem::path file_;
  std::uint64_t max_bytes_;
  std::shared_ptr<const LogBatchEncoder> body_decoder_;
  std::mutex mu_;  // guards out_ and size_
  std::ofstream out_;
  std::uint64_t size_ = 0;
};

}  // namespace nodewarden
