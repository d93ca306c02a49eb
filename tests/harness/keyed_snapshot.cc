#include "tests/harness/keyed_snapshot.h"

namespace sluice::harness {

KeyGroupBlobs snapshot_keyed_state(const state::HeapKeyedStateBackend& backend) {
  KeyGroupBlobs out;
  const state::KeyGroupRange& range = backend.key_group_range();
  for (int32_t g = 0; g < range.size(); ++g) {
    out.emplace(range.start + g, backend.write_key_group(static_cast<size_t>(g)));
  }
  return out;
}

Status restore_keyed_state(state::HeapKeyedStateBackend& backend, const KeyGroupBlobs& blobs) {
  for (const auto& [kg, bytes] : blobs) {
    if (!backend.key_group_range().contains(KeyGroup(kg))) continue;
    SLUICE_RETURN_IF_ERROR(backend.read_key_group(KeyGroup(kg), bytes)
                               .with_context("restoring key group " + std::to_string(kg)));
  }
  return Status::ok();
}

}  // namespace sluice::harness
