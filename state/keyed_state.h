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
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/time.h"

namespace sluice::state {

/// Time-to-live of a state entry. ttl == 0 (the default) keeps entries
/// forever. Expired entries are never returned; they are removed when read
/// and by background cleanup (heap: at snapshot time; RocksDB: compaction).
struct StateTtl {
  Duration ttl{0};
  /// Default false: only writes refresh the expiry, as Flink's OnCreateAndWrite.
  bool refresh_on_read = false;
  bool enabled() const { return ttl.count() > 0; }
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

template <class K, class V>
class MapState : public State {
 public:
  virtual std::optional<V> get(const K& key) = 0;
  virtual void put(const K& key, const V& value) = 0;
  virtual void remove(const K& key) = 0;
  virtual bool contains(const K& key) = 0;
  /// Every entry, ordered by serialized key.
  virtual std::vector<std::pair<K, V>> entries() = 0;
  virtual bool is_empty() = 0;
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
