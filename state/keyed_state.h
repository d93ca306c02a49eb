// The keyed-state API: what operators and user functions see.
//
// A keyed operator sets the current key on its KeyedStateBackend before it
// calls user code; every state handle then reads and writes the value of
// that key (and of the handle's current namespace, e.g. a window). The heap
// and RocksDB backends implement the same interfaces, so a job switches
// backend without changing code. Handles are owned by the backend and used
// only on the task thread.
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/time.h"

namespace sluice::state {

/// Time-to-live of state entries, as Flink's StateTtlConfig with
/// processing-time expiry and StateVisibility.NeverReturnExpired.
///
/// ttl == 0 (the default) keeps entries forever. An entry's expiry is the
/// time of its last refresh + ttl, on the backend's clock (processing time;
/// a ManualClock in tests). Expired entries are never returned by any read,
/// range iteration included. They are removed when a read meets them and in
/// the background: the heap backend drops them from memory and from the
/// snapshot at every snapshot; RocksDB's compaction filter drops them when
/// their SST is compacted; neither carries them into a rescaled restore.
///
/// An entry keeps the expiry it was written with if the descriptor's TTL
/// changes across a restore (0: never expires).
///
/// Granularity: one expiry per value, reducing or aggregating state, per
/// map entry, and per list as a whole (a list's elements share one expiry
/// that every write of the list refreshes; Flink tracks list elements one
/// by one).
struct StateTtl {
  Duration ttl{0};
  /// What refreshes an entry's expiry. false (the default): creating and
  /// writing it (Flink's UpdateType.OnCreateAndWrite). true: reads too
  /// (OnReadAndWrite): get, contains, and every entry a map iteration
  /// returns; is_empty and count do not refresh.
  bool refresh_on_read = false;
  bool enabled() const { return ttl.count() > 0; }

  static StateTtl on_create_and_write(Duration ttl) { return StateTtl{ttl, false}; }
  static StateTtl on_read_and_write(Duration ttl) { return StateTtl{ttl, true}; }
};

/// Reading or writing state failed in a way the state API cannot return
/// (RocksDB I/O error, stored bytes that do not decode as the state's
/// type). Thrown; the task's exception boundary turns it into a task
/// failure and the job restores from its last checkpoint.
class StateAccessError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The operator used a state handle in a way its contract forbids (e.g.
/// modified a map while iterating it). A programming error, thrown on
/// every backend alike.
class StateUsageError : public std::logic_error {
  using std::logic_error::logic_error;
};

/// Incremental aggregation: a mutable accumulator per key and namespace.
/// Implementations must be copyable and thread-compatible (one instance per
/// subtask). All methods default to nothing more than their contract.
template <class IN, class ACC, class OUT>
class AggregateFunction {
 public:
  using Input = IN;
  using Accumulator = ACC;
  using Output = OUT;
  virtual ~AggregateFunction() = default;
  virtual ACC create_accumulator() const = 0;
  virtual void add(ACC& acc, const IN& value) const = 0;
  virtual OUT get_result(const ACC& acc) const = 0;
  /// Folds `other` into `into` (merging session windows).
  virtual void merge(ACC& into, const ACC& other) const = 0;
};

/// Common part of every state handle.
class State {
 public:
  virtual ~State() = default;
  /// Removes the value of the current key and namespace.
  virtual void clear() = 0;
  /// Internal: selects the namespace (serialized) for following calls.
  /// Operators without namespaces never call it (empty namespace).
  virtual void set_namespace(std::string_view ns) = 0;
};

template <class T>
class ValueState : public State {
 public:
  virtual std::optional<T> value() = 0;
  virtual void update(const T& v) = 0;
  T value_or(T fallback) {
    auto v = value();
    return v ? std::move(*v) : std::move(fallback);
  }
};

template <class T>
class ListState : public State {
 public:
  virtual void add(const T& v) = 0;
  virtual void add_all(const std::vector<T>& vs) = 0;
  /// Every element in insertion order (empty if none).
  virtual std::vector<T> get() = 0;
  virtual void update(const std::vector<T>& vs) = 0;
  /// Internal: appends the lists of `sources` namespaces to `target`'s and
  /// clears the sources (merging windows). Leaves the handle on `target`.
  virtual void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) = 0;
};

/// Internal: a backend's position in a map iteration (see MapRange).
template <class K, class V>
class MapCursor {
 public:
  virtual ~MapCursor() = default;
  virtual bool valid() const = 0;
  /// The current entry; both references stay valid until next().
  virtual const K& key() const = 0;
  virtual const V& value() = 0;
  virtual void next() = 0;
};

/// The entries of a map state (or of a key range of an ordered one), read
/// one at a time in key order without copying the map:
///
///   for (const auto& [ts, events] : buffer->range(KeyRange<int64_t>::closed(lo, hi))) ...
///
/// An input range: begin() may be called once. The key and value
/// references of an entry are valid until the loop advances. Expired
/// entries are skipped (and refreshed if the TTL refreshes on read).
///
/// While a MapRange of a state is alive, that state must not be modified
/// (put, remove, remove_range, clear — for any key or namespace): doing so
/// throws StateUsageError on every backend. Collect what to change and
/// apply it after the loop. Reading it (get, contains, other ranges) is
/// fine. Do not keep a MapRange beyond the callback that created it (it
/// pins the backend's resources and reads the key and namespace that were
/// current when it was made). Task thread only.
template <class K, class V>
class MapRange {
 public:
  struct Entry {
    const K& key;
    const V& value;
  };
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using difference_type = std::ptrdiff_t;
    using value_type = Entry;
    iterator() = default;
    explicit iterator(MapCursor<K, V>* c) : c_(c) {}
    Entry operator*() const { return Entry{c_->key(), c_->value()}; }
    iterator& operator++() {
      c_->next();
      return *this;
    }
    void operator++(int) { c_->next(); }
    bool operator==(std::default_sentinel_t) const { return !c_->valid(); }

   private:
    MapCursor<K, V>* c_ = nullptr;
  };

  explicit MapRange(std::unique_ptr<MapCursor<K, V>> cursor) : cursor_(std::move(cursor)) {}
  MapRange(MapRange&&) noexcept = default;
  MapRange& operator=(MapRange&&) noexcept = default;

  iterator begin() { return iterator(cursor_.get()); }
  std::default_sentinel_t end() const { return {}; }
  bool empty() const { return !cursor_->valid(); }

 private:
  std::unique_ptr<MapCursor<K, V>> cursor_;
};

/// Map state: per key and namespace, a map from user keys to values. Map
/// entries are independent RocksDB entries (reading one entry does not
/// read the map) and expire one by one under TTL. Iteration order is the
/// order of the Serde-serialized keys, which is stable but not the keys'
/// natural order; for ranges and natural order use OrderedMapState
/// (ordered_map_state.h).
template <class K, class V>
class MapState : public State {
 public:
  virtual std::optional<V> get(const K& key) = 0;
  virtual void put(const K& key, const V& value) = 0;
  virtual void remove(const K& key) = 0;
  virtual bool contains(const K& key) = 0;
  /// A copy of every entry, in iteration order.
  std::vector<std::pair<K, V>> entries() {
    std::vector<std::pair<K, V>> out;
    for (auto c = open_all(); c->valid(); c->next()) out.emplace_back(c->key(), c->value());
    return out;
  }
  /// Every entry in iteration order, without copying (see MapRange).
  MapRange<K, V> iterate() { return MapRange<K, V>(open_all()); }
  bool is_empty() { return !open_all()->valid(); }

 protected:
  /// Backend: a cursor over every live entry of the current key and
  /// namespace, registered as open until destroyed.
  virtual std::unique_ptr<MapCursor<K, V>> open_all() = 0;
};

template <class T>
class ReducingState : public State {
 public:
  virtual void add(const T& v) = 0;
  virtual std::optional<T> get() = 0;
  virtual void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) = 0;
};

template <class IN, class ACC, class OUT>
class AggregatingState : public State {
 public:
  virtual void add(const IN& v) = 0;
  /// Folds an accumulator built elsewhere (a local pre-aggregation of the
  /// same function) into the current namespace's, as merge() does.
  virtual void add_accumulator(const ACC& acc) = 0;
  virtual std::optional<OUT> get() = 0;
  virtual void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) = 0;
};

// ---------------------------------------------------------------------------
// Descriptors: a state's name (unique per operator; the name is what a
// snapshot is restored by) and how to build it. Types are checked on
// registration: the same name with another type is an error.

template <class T>
struct ValueStateDescriptor {
  std::string name;
  StateTtl ttl{};
};

template <class T>
struct ListStateDescriptor {
  std::string name;
  StateTtl ttl{};
};

template <class K, class V>
struct MapStateDescriptor {
  std::string name;
  StateTtl ttl{};
};

template <class T>
struct ReducingStateDescriptor {
  std::string name;
  std::function<T(const T&, const T&)> reduce;
  StateTtl ttl{};
};

template <class IN, class ACC, class OUT>
struct AggregatingStateDescriptor {
  std::string name;
  // shared: one immutable function object serves every handle of the state.
  std::shared_ptr<const AggregateFunction<IN, ACC, OUT>> function;
  StateTtl ttl{};
};

}  // namespace sluice::state
