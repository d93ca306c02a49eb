// Checkpoint metadata (`_metadata` files, read on restore and by the
// jobmanager after a restart): any bytes decode to a value or an error,
// with allocations bounded by the input; a value re-encodes to bytes that
// decode to the same value.
#include <cstdint>
#include <string>

#include "state/checkpoint_storage.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  sluice::state::CheckpointMetadata m;
  if (sluice::deserialize(in, m).is_ok()) {
    std::string bytes = sluice::serialize(m);
    sluice::state::CheckpointMetadata again;
    if (!sluice::deserialize(bytes, again).is_ok()) __builtin_trap();
    if (sluice::serialize(again) != bytes) __builtin_trap();
  }
  return 0;
}
