// CachedValueState<T>: value state whose values stay decoded in memory
// between checkpoints — for an operator that reads and changes one
// (possibly large) value per record of a key: a per-key buffer, counters,
// lists of recent items.
//
// The values live in a KeyCache (key_cache.h) in front of an ordinary
// ValueState<T> of the same name: a read hands out the cached object (no
// copy, no decoding), a change marks it, and the backend has the cache
// write every changed value to the value state before each snapshot
// (KeyedStateBackend::write_back_caches). A checkpoint therefore holds
// exactly what the cache held at the barrier; after a restore, at any
// parallelism, values are read back from the value state key by key as
// they are first used. Beyond `max_keys` cached keys, keys not used lately
// are written back and dropped.
//
//   auto* s = get_cached_value_state(backend, CachedValueStateDescriptor<Buf>{"buffer"});
//   Buf& b = s->mutable_value();   // the current key's value (created empty), marked changed
//   if (const Buf* r = s->value()) ...  // read only: nullptr when the key has none
//
// No namespaces, no TTL. Task thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "engine/common/serde.h"
#include "state/key_cache.h"
#include "state/keyed_state.h"
#include "state/keyed_state_backend.h"

namespace sluice::state {

template <class T>
struct CachedValueStateDescriptor {
  std::string name;
  /// Keys whose values stay in memory (default 100 000).
  size_t max_keys = 100'000;
};

/// See the top of this file. Owned by the backend it is registered with
/// (get_cached_value_state); task thread only.
template <class T>
class CachedValueState final : public State, public StateCache {
 public:
  CachedValueState(KeyedStateBackend& backend, ValueState<T>* stored, size_t max_keys)
      : store_{stored}, cache_(backend, store_, max_keys) {
    backend.add_cache(this);
  }

  /// The current key's value, or nullptr. Valid until another key is used.
  const T* value() {
    Entry& e = cache_.select();
    return e.has_value ? &e.value : nullptr;
  }
  /// The current key's value to change in place (a default T if it had
  /// none); the key's value is written back at the next snapshot. Valid
  /// until another key is used.
  T& mutable_value() {
    Entry& e = cache_.select();
    e.dirty = true;
    e.has_value = true;  // a default T if it had none
    return e.value;
  }
  void update(T v) {
    Entry& e = cache_.select();
    e.value = std::move(v);
    e.has_value = true;
    e.dirty = true;
  }
  void clear() override {
    Entry& e = cache_.select();
    if (!e.has_value) return;
    e.value = T{};
    e.has_value = false;
    e.dirty = true;
  }
  void set_namespace(std::string_view ns) override {
    if (!ns.empty()) throw StateUsageError("cached value state has no namespaces");
  }
  void write_back_all() override { cache_.flush(); }

  size_t cached_keys() const { return cache_.cached_keys(); }

 private:
  // Flags first and the value in place (not a std::optional, whose flag
  // follows the value): what a record touches first shares a cache line.
  // Without a value, `value` is a default T.
  struct Entry {
    bool dirty = false;
    bool has_value = false;
    T value{};
  };
  struct Store {
    ValueState<T>* state;
    void load(Entry& e) {
      std::optional<T> v = state->value();
      e.has_value = v.has_value();
      e.value = v ? std::move(*v) : T{};
    }
    bool dirty(const Entry& e) const { return e.dirty; }
    void write_back(Entry& e) {
      if (e.has_value) state->update(e.value);
      else state->clear();
      e.dirty = false;
    }
    size_t weight(const Entry&) const { return 1; }
  };

  Store store_;
  KeyCache<Entry, Store> cache_;
};

}  // namespace sluice::state
