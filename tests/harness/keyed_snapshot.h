// The one place where the operator test harness touches the keyed-state
// snapshot API of the heap backend. Checkpoints are being built now and
// that API will change: adapt these two functions, nothing else.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "engine/common/status.h"
#include "state/heap_backend.h"

namespace sluice::harness {

/// Keyed state of one operator: the bytes of each key group, by absolute
/// key-group number (so snapshots of several subtasks can be combined).
using KeyGroupBlobs = std::map<int32_t, std::string>;

/// Captures every key group of `backend`'s range (tables and timers).
KeyGroupBlobs snapshot_keyed_state(const state::HeapKeyedStateBackend& backend);

/// Loads the groups of `blobs` that lie in `backend`'s range; groups owned
/// by other subtasks are skipped. Must run before any state is registered.
Status restore_keyed_state(state::HeapKeyedStateBackend& backend, const KeyGroupBlobs& blobs);

}  // namespace sluice::harness
