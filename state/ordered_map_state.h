// Ordered map state: a MapState whose entries are kept in the natural order
// of their keys, with range reads and range removal. What buffers by time
// are built on: interval and window joins (records per event timestamp),
// CEP (events by (timestamp, sequence), partial matches pruned by time).
//
//   // Registration (open()), with the operator's keyed-state backend:
//   auto* buffer = get_ordered_map_state(backend,
//       OrderedMapStateDescriptor<int64_t, std::vector<Order>>{"left-buffer"});
//
//   // Per record: buffer it under its timestamp.
//   auto rows = buffer->get(ts).value_or(std::vector<Order>{});
//   rows.push_back(order);
//   buffer->put(ts, rows);
//
//   // Join: every buffered row with a timestamp in [ts + lower, ts + upper].
//   for (const auto& [t, rows] : buffer->range(KeyRange<int64_t>::closed(ts + lower, ts + upper)))
//     for (const auto& row : rows) emit(row, t);
//
//   // Watermark passed: drop everything older than wm - upper.
//   buffer->remove_range(KeyRange<int64_t>::below(wm - upper));
//
//   // CEP: events by (timestamp, sequence); every event at timestamp t,
//   // then prune what lies before the watermark.
//   using Id = std::pair<int64_t, uint32_t>;
//   for (const auto& [id, e] : events->range(KeyRange<Id>::half_open({t, 0}, {t + 1, 0}))) ...
//   events->remove_range(KeyRange<Id>::below({wm, 0}));
//
// Keys: any type with an OrderedCodec (ordered_codec.h): integers of every
// width (negative numbers order before positive ones), EventTime, strings
// and bytes, pairs and tuples of those (lexicographic), and structs that opt
// in. Other key types do not compile here (plain MapState takes any
// Serde-able key but has no order). With EventTime keys, bounds computed as
// `t + Duration` saturate instead of overflowing at the ends of time.
//
// Rules: a MapRange (what range() returns) must not outlive the callback
// that made it, and while one is alive its state must not be modified —
// put/remove/remove_range/clear throw StateUsageError on both backends.
// Collect keys in the loop, change them after it.
//
// Both backends return exactly the same entries in the same order: RocksDB
// stores the ordered bytes in its keys (range reads are iterator scans with
// bounds, removal is a batch of deletes or one DeleteRange), the heap keeps
// them in a B-tree. Snapshots, restore and rescaling work as for every
// other state. Cost on RocksDB: a range read opens one iterator (a few
// microseconds) and then reads entries sequentially; get/put/remove of one
// entry are point operations. Neither backend copies the map.
//
// Threading: handles are owned by the backend and used on the task thread
// only, like every state handle.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "state/keyed_state.h"
#include "state/ordered_codec.h"

namespace sluice::state {

/// A range of keys: each end is unbounded, inclusive or exclusive. Build
/// one with the named constructors; a range whose lower end lies above its
/// upper end is empty.
template <OrderedKey K>
struct KeyRange {
  std::optional<K> lower;  // nullopt: from the first key
  bool lower_inclusive = true;
  std::optional<K> upper;  // nullopt: to the last key
  bool upper_inclusive = false;

  /// Every key.
  static KeyRange all() { return {}; }
  /// [lo, hi)
  static KeyRange half_open(K lo, K hi) { return {std::move(lo), true, std::move(hi), false}; }
  /// [lo, hi]
  static KeyRange closed(K lo, K hi) { return {std::move(lo), true, std::move(hi), true}; }
  /// [lo, last]
  static KeyRange at_least(K lo) { return {std::move(lo), true, std::nullopt, false}; }
  /// (lo, last]
  static KeyRange greater_than(K lo) { return {std::move(lo), false, std::nullopt, false}; }
  /// [first, hi)
  static KeyRange below(K hi) { return {std::nullopt, true, std::move(hi), false}; }
  /// [first, hi]
  static KeyRange at_most(K hi) { return {std::nullopt, true, std::move(hi), true}; }
  /// [k, k]
  static KeyRange single(K k) { return closed(k, k); }
};

/// Internal: a KeyRange as bounds on encoded keys, [lower, upper).
struct EncodedRange {
  std::string lower;                 // "" = from the first key
  std::optional<std::string> upper;  // nullopt = to the last key
  bool empty() const { return upper && lower >= *upper; }
  bool contains(std::string_view k) const { return k >= lower && (!upper || k < *upper); }
};

/// Encodes `r` with the key's OrderedCodec. Exclusive lower and inclusive
/// upper ends become encode(x) + '\0', the next possible byte string: no
/// key's encoding lies between the two, since encodings are prefix-free.
template <OrderedKey K>
EncodedRange encode_range(const KeyRange<K>& r) {
  EncodedRange e;
  if (r.lower) {
    ordered_encode(e.lower, *r.lower);
    if (!r.lower_inclusive) e.lower.push_back('\0');
  }
  if (r.upper) {
    e.upper.emplace();
    ordered_encode(*e.upper, *r.upper);
    if (r.upper_inclusive) e.upper->push_back('\0');
  }
  return e;
}

/// Map state in key order. Everything MapState does (get, put, remove,
/// contains, entries, iterate, is_empty, clear — entries() and iterate()
/// now in key order), plus reads and removal of key ranges.
///
/// TTL: as for MapState, each entry expires on its own; expired entries are
/// never returned, counted or seen by first/last. With refresh_on_read,
/// reads that return a value (get, contains, first, last, every entry of a
/// range whose value is read) refresh it; key-only reads (first_key,
/// last_key, count, is_empty) do not.
///
/// A handle acts on the backend's current key and the handle's namespace.
/// Owned by the backend; task thread only.
template <OrderedKey K, class V>
class OrderedMapState : public MapState<K, V> {
 public:
  using MapState<K, V>::is_empty;

  /// The entries of `r`, ascending, read lazily (see MapRange: no changes
  /// to this state while the range is alive).
  MapRange<K, V> range(const KeyRange<K>& r) { return MapRange<K, V>(open_cursor(encode_range(r), false)); }
  /// The entries of `r`, descending.
  MapRange<K, V> reverse_range(const KeyRange<K>& r) {
    return MapRange<K, V>(open_cursor(encode_range(r), true));
  }

  /// The entry with the smallest key in `r` (default: in the whole map).
  std::optional<std::pair<K, V>> first(const KeyRange<K>& r = KeyRange<K>::all()) {
    return copy_current(open_cursor(encode_range(r), false));
  }
  /// The entry with the largest key in `r`.
  std::optional<std::pair<K, V>> last(const KeyRange<K>& r = KeyRange<K>::all()) {
    return copy_current(open_cursor(encode_range(r), true));
  }
  /// Smallest / largest key in `r`, without reading its value.
  std::optional<K> first_key(const KeyRange<K>& r = KeyRange<K>::all()) {
    auto c = open_cursor(encode_range(r), false);
    return c->valid() ? std::optional<K>(c->key()) : std::nullopt;
  }
  std::optional<K> last_key(const KeyRange<K>& r = KeyRange<K>::all()) {
    auto c = open_cursor(encode_range(r), true);
    return c->valid() ? std::optional<K>(c->key()) : std::nullopt;
  }
  /// Number of live entries in `r` (reads every key of the range).
  uint64_t count(const KeyRange<K>& r = KeyRange<K>::all()) {
    uint64_t n = 0;
    for (auto c = open_cursor(encode_range(r), false); c->valid(); c->next()) ++n;
    return n;
  }
  /// No live entry in `r`.
  bool is_empty(const KeyRange<K>& r) { return !open_cursor(encode_range(r), false)->valid(); }

  /// Removes every entry in `r`, expired or not. The way to drop old
  /// entries when a watermark passes: on RocksDB one scan of the range and
  /// a batch of deletes (one DeleteRange above
  /// RocksDBOptions::range_delete_threshold entries), never a seek per
  /// entry.
  ///
  /// On RocksDB removed entries leave tombstones until compaction, and a
  /// read that starts at the front of the map (first(), first_key(),
  /// below(x), an unbounded remove_range) walks over them. When you know a
  /// lower bound (the previous watermark), give it: remove [previous, wm)
  /// and read at_least(previous) instead of below(wm) and first().
  void remove_range(const KeyRange<K>& r) {
    EncodedRange e = encode_range(r);
    remove_encoded_range(e);
  }

 protected:
  /// Backend: a cursor over the live entries of `r` of the current key and
  /// namespace, ascending or descending; registers itself as open until
  /// destroyed. Refreshes (refresh_on_read) an entry when its value is read.
  virtual std::unique_ptr<MapCursor<K, V>> open_cursor(const EncodedRange& r, bool reverse) = 0;
  /// Backend: removes every entry in `r` (throws StateUsageError while a
  /// cursor is open).
  virtual void remove_encoded_range(const EncodedRange& r) = 0;

 private:
  static std::optional<std::pair<K, V>> copy_current(std::unique_ptr<MapCursor<K, V>> c) {
    if (!c->valid()) return std::nullopt;
    return std::pair<K, V>(c->key(), c->value());
  }
};

/// Declares an ordered map state: a name (unique per operator) and a TTL.
template <OrderedKey K, class V>
struct OrderedMapStateDescriptor {
  std::string name;
  StateTtl ttl{};
};

}  // namespace sluice::state
