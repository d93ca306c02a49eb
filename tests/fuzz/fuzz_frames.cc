// Data-plane input: the frames of a channel buffer (records, watermarks,
// barriers, end markers) and the handshake's hello, as they arrive from
// the network. Decoding never reads out of bounds; a hello that decodes
// encodes back to the same bytes.
#include <cstdint>
#include <string>

#include "engine/runtime/frames.h"

using namespace sluice::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  frames::Frame f;
  while (pos < in.size()) {
    size_t before = pos;
    if (!frames::next(in, pos, f)) break;
    if (pos <= before || pos > in.size()) __builtin_trap();  // progress, in bounds
    if (f.kind == FrameKind::kRecord && f.payload.data() + f.payload.size() > in.data() + in.size()) __builtin_trap();
  }
  size_t at = 0;
  (void)frames::find_barrier(in, 0, sluice::CheckpointId(1), at);
  frames::WireHello h;
  std::string error;
  if (frames::decode_hello(in, h, error)) {
    if (frames::encode_hello(h) != in) __builtin_trap();
  }
  return 0;
}
