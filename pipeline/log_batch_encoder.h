// LogBatchEncoder: a log destination's own encoding of a batch, applied once by the batcher. A
// destination whose request body can be built entry by entry as lines come (Loki's protobuf push
// body, exporters/loki/loki_push_body.h) provides one (LogExporter::batchEncoder()); the batcher
// then encodes every entry as it accepts it, closes the batch as one body (LogBatch::encoded_body),
// the spool stores those bytes as they are and the exporter sends them as they are. Without an
// encoder the batch keeps its entries in `streams` and the exporter encodes at send time.
//
// What a reader gets wrong: pipeline/ knows no wire format. A body is opaque bytes here; only the
// encoder that wrote it can read it back (decodeBody), and the spool's records do not say which
// one did. Whatever needs the entries of a body one by one (the shipper splitting a batch that was
// refused as too large, a destination that takes no body after a restart found bodies in the
// spool) is handed the encoder by the agent, which knows what the spool's bodies are.
#pragma once

#include <cstddef>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/log_record.h"

namespace nodewarden {

// A stream whose entries are encoded already (encodeEntry's bytes, back to back), in pieces: the
// entries' bytes are the pieces joined (an entry may be cut anywhere between two pieces).
struct EncodedLogStream {
  const Labels* labels = nullptr;
  std::span<const std::string_view> entries;
};

class LogBatchEncoder {
 public:
  virtual ~LogBatchEncoder() = default;
  // Encodes one entry: into `room` when it fits there (returns its size, <= room.size()), else
  // into the first bytes of `spill` (grown as needed; returns its size, > room.size()). Called for
  // every line: allocates nothing when it fits.
  virtual std::size_t encodeEntry(const LogEntry& entry, std::span<char> room,
                                  std::string& spill) = 0;
  // The body of these streams into out (replacing it; its capacity is reused).
  virtual void encodeBody(std::span<const EncodedLogStream> streams, std::string& out) = 0;
  // The streams of a body this kind of encoder wrote. Rejects anything malformed with a reason.
  // Const and without state: may be called from any thread.
  [[nodiscard]] virtual std::expected<std::vector<LogBatch::Stream>, std::string> decodeBody(
      std::string_view body) const = 0;
};

// Moves batch.encoded_body back into batch.streams with decoder (nothing happens without a body).
std::expected<void, std::string> expandEncodedBody(LogBatch& batch, const LogBatchEncoder& decoder);

}  // namespace nodewarden
