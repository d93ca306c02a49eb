// KeyedStateBackend: where one keyed operator subtask keeps its state.
//
// A backend covers the key groups its subtask owns. The operator sets the
// current key (serialized, with its key group) before each record or timer;
// state handles and timers then act on that key. Owned by the operator
// instance; used only on the task thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/ids.h"
#include "engine/common/status.h"
#include "state/key_groups.h"
#include "state/keyed_state.h"
#include "state/snapshot.h"
#include "state/timers.h"

namespace sluice::state {

enum class BackendKind { kHeap, kRocksDB };

std::string_view backend_kind_name(BackendKind kind);
Result<BackendKind> parse_backend_kind(std::string_view name);

/// A state was registered twice under one name with different types.
class StateTypeError : public std::logic_error {
  using std::logic_error::logic_error;
};

/// A cache in front of a backend's state (cached_value_state.h): holds
/// changes the backend has not seen yet. Registered with the backend, which
/// has it write them back before every snapshot and key listing. Owned by
/// a state handle of that backend; task thread only.
class StateCache {
 public:
  virtual ~StateCache() = default;
  /// Writes every pending change to the backend's state (may move the
  /// backend's current key).
  virtual void write_back_all() = 0;
};

class KeyedStateBackend {
 public:
  KeyedStateBackend(KeyGroupRange range, int32_t max_parallelism, const Clock* clock);
  virtual ~KeyedStateBackend();
  KeyedStateBackend(const KeyedStateBackend&) = delete;
  KeyedStateBackend& operator=(const KeyedStateBackend&) = delete;

  virtual BackendKind kind() const = 0;
  const KeyGroupRange& key_group_range() const { return range_; }
  int32_t max_parallelism() const { return max_parallelism_; }

  /// Selects the key that following state accesses and timers use. The key
  /// group must lie in this backend's range.
  void set_current_key(std::string_view key_bytes, KeyGroup kg) {
    current_key_.assign(key_bytes.data(), key_bytes.size());
    current_kg_ = kg;
  }
  const std::string& current_key() const { return current_key_; }
  KeyGroup current_key_group() const { return current_kg_; }
  /// Index of the current key group inside the range (0-based).
  size_t current_group_index() const {
    return static_cast<size_t>(current_kg_.value() - range_.start);
  }

  /// The named timer queue ("event", "processing"), created on first use.
  TimerQueue& timer_queue(const std::string& name);
  const std::map<std::string, std::unique_ptr<TimerQueue>>& timer_queues() const {
    return timers_;
  }

  /// Processing time, for state TTL.
  int64_t now_ms() const { return clock_->now_ms(); }

  /// Synchronous part of a snapshot (task thread, at the barrier): captures
  /// a consistent view of every state and timer and returns the
  /// asynchronous part, which writes it under `target` and describes it.
  virtual Result<AsyncSnapshot> snapshot(CheckpointId id, const SnapshotTarget& target) = 0;
  /// Loads the key groups of this backend's range from `handles` (written
  /// by subtasks of any parallelism). Called once, before any state is
  /// registered.
  virtual Status restore(const std::vector<KeyedStateHandle>& handles, const std::string& job_dir) = 0;
  /// Checkpoint `id` completed (incremental backends learn which of their
  /// files are now part of a durable checkpoint).
  virtual void notify_checkpoint_complete(CheckpointId id) {}

  /// Registers a cache whose changes must reach this backend before every
  /// snapshot (`cache` is owned by a state handle of this backend).
  void add_cache(StateCache* cache) { caches_.push_back(cache); }
  /// Writes back every registered cache; the current key is kept. Called by
  /// snapshot() and keys_of_state() of every backend.
  void write_back_caches();

  /// Length of the serialized key at the start of `bytes` (keys are
  /// self-delimiting Serde bytes), or 0 if they do not decode as a key.
  using KeyLength = std::function<size_t(std::string_view bytes)>;
  /// Every key of this backend's range holding a live entry of state `name`
  /// in the default (empty) namespace, once, with its key group (Flink's
  /// applyToKeyedState). `name` must be registered. The keys are collected
  /// first, so the caller may change state while it goes through them.
  virtual std::vector<std::pair<std::string, KeyGroup>> keys_of_state(
      const std::string& name, const KeyLength& key_length) = 0;

  /// Returns the handle registered under `name`, creating it with `make`
  /// on first use. Throws StateTypeError if `name` was registered with
  /// another signature (kind and type).
  template <class H, class Make>
  H* register_state(const std::string& name, std::string_view signature, Make&& make) {
    auto it = states_.find(name);
    if (it != states_.end()) {
      if (it->second.signature != signature) {
        throw StateTypeError("state '" + name + "' is registered as " + it->second.signature +
                             " and cannot be used as " + std::string(signature));
      }
      return static_cast<H*>(it->second.handle.get());
    }
    std::unique_ptr<H> handle = make();
    H* raw = handle.get();
    states_.emplace(name, Registered{std::string(signature), std::move(handle)});
    return raw;
  }

 protected:
  struct Registered {
    std::string signature;
    std::unique_ptr<State> handle;
  };

  const KeyGroupRange range_;
  const int32_t max_parallelism_;
  const Clock* clock_;
  std::string current_key_;
  KeyGroup current_kg_{0};
  std::map<std::string, Registered> states_;
  std::map<std::string, std::unique_ptr<TimerQueue>> timers_;
  std::vector<StateCache*> caches_;
};

}  // namespace sluice::state
