// libFuzzer target for the Loki push body decoders, which read bodies back from the spool (a body
// passed its record checksum, but a decoder must not trust it): decodeLokiJsonText, gunzipBody and
// decodeLokiBody (either kind: gzipped JSON or snappy protobuf).
//
// The first input byte picks the mode (the rest is the data):
//   0  data is JSON text: decodeLokiJsonText
//   1  data is a push body as it is: decodeLokiBody (gzip magic: JSON, else snappy protobuf)
// The seed corpus (tests/fuzz/corpus/loki_body) holds JSON bodies the writer makes, their gzip,
// and bodies of the shapes the decoder must refuse.
//
// What a reader gets wrong: this checks more than "no crash". Whatever decodes must come back the
// same through the JSON writer and decoder (the writer can express everything the decoder
// accepts, the decoder reads everything the writer makes); anything else traps.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/loki/loki_json_body.h"

namespace {

void roundTrip(const std::vector<nodewarden::LogBatch::Stream>& streams) {
  nodewarden::LogBatch batch;
  batch.streams = streams;
  std::string body;
  nodewarden::LokiJsonWriter writer;
  writer.body(batch, body);
  auto again = nodewarden::decodeLokiJsonBody(body);
  if (!again || *again != streams) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 2) {
    case 0: {
      auto streams = nodewarden::decodeLokiJsonText(input);
      if (streams) roundTrip(*streams);
      break;
    }
    default: {
      auto streams = nodewarden::decodeLokiBody(input);
      if (streams && nodewarden::isLokiJsonBody(input)) roundTrip(*streams);
      break;
    }
  }
  return 0;
}
