// expandEncodedBody: a batch's body back into its streams, with the encoder that can read it.
#include "pipeline/log_batch_encoder.h"

#include <utility>

namespace nodewarden {

std::expected<void, std::string> expandEncodedBody(LogBatch& batch,
                                                   const LogBatchEncoder& decoder) {
  if (batch.encoded_body.empty()) return {};
  auto streams = decoder.decodeBody(batch.encoded_body);
  if (!streams) return std::unexpected(streams.error());
  batch.streams = std::move(*streams);
  batch.encoded_body.clear();
  batch.encoded_body.shrink_to_fit();
  return {};
}

}  // namespace nodewarden
