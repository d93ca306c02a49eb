// Map state on the heap backend: MapState (keys in Serde bytes) and
// OrderedMapState (keys in OrderedCodec bytes) share one implementation.
// Per (key, namespace), a B-tree from encoded map key to (value, expiry):
// entries expire one by one, iteration is in encoded-key order (the order
// RocksDB keeps the same bytes in), ranges are B-tree ranges.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>

#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "state/heap_backend.h"
#include "state/map_state_common.h"
#include "state/ordered_map_state.h"

namespace sluice::state {

/// The entries of one map state on the heap: per key group, (key,
/// namespace) -> B-tree of encoded map key -> (value, expiry). Owned by the
/// backend; task thread only.
///
/// Snapshot body (format 2): varint count of maps, then per map: bytes
/// (key, namespace), varint entry count, then per entry: bytes map key,
/// zigzag expiry (0 = never), Serde<V>. Format 1 (before entries had their
/// own expiry) stored one expiry per map and a Serde<std::map<string, V>>;
/// read_group(legacy) reads it, giving every entry the map's expiry.
template <class V>
class HeapMapTable final : public HeapTableBase {
 public:
  using Entry = HeapEntry<V>;
  using Inner = absl::btree_map<std::string, Entry>;
  using Outer = absl::flat_hash_map<std::string, Inner>;
  using Map = Outer;  // one key group (CowGroups, HeapGroupsSnapshot)
  static absl::string_view view(std::string_view s) { return absl_view(s); }

  HeapMapTable(size_t groups, std::string signature, StateTtl ttl, const Clock* clock)
      : HeapTableBase(std::move(signature), ttl, clock), groups_(groups) {}

  /// Live at `now`: never expires (0) or expires later.
  static bool live(const Entry& e, int64_t now) { return e.expiry == 0 || e.expiry > now; }
  /// The map of (key, namespace) `key`, or nullptr. It may be changed
  /// through the pointer: the group is the table's own (copied if a
  /// snapshot held it).
  Inner* find(size_t g, std::string_view key) {
    auto& m = mut(g);
    auto it = m.find(view(key));
    return it == m.end() ? nullptr : &it->second;
  }
  Inner& upsert(size_t g, std::string_view key) {
    auto& m = mut(g);
    auto it = m.find(view(key));
    if (it == m.end()) it = m.emplace(std::string(key), Inner{}).first;
    return it->second;
  }
  void erase(size_t g, std::string_view key) {
    auto& m = mut(g);
    auto it = m.find(view(key));
    if (it != m.end()) m.erase(it);
  }
  void erase_if_empty(size_t g, std::string_view key) {
    auto& m = mut(g);
    auto it = m.find(view(key));
    if (it != m.end() && it->second.empty()) m.erase(it);
  }

  /// Cursors open on this state. While any is, nothing erases entries
  /// behind their back (B-tree erasure moves entries); reads skip expired
  /// entries instead of removing them.
  int open_cursors = 0;

  void write_group(size_t g, std::string& out, int64_t now) const override {
    write_map(groups_.read(g), out, now);
  }
  std::unique_ptr<HeapTableSnapshot> capture() override {
    return std::make_unique<HeapGroupsSnapshot<HeapMapTable>>(groups_.share());
  }
  uint64_t cow_copies() const override { return groups_.copies(); }
  /// Snapshot body of one group (format above). Reads `group` only
  /// (snapshot thread).
  static void write_map(const Outer& group, std::string& out, int64_t now) {
    ByteWriter w(out);
    uint64_t maps = 0;
    for (const auto& [k, m] : group) maps += live_count(m, now) > 0 ? 1 : 0;
    w.put_varint(maps);
    for (const auto& [k, m] : group) {
      uint64_t n = live_count(m, now);
      if (n == 0) continue;  // expired entries are not carried on
      w.put_bytes(k);
      w.put_varint(n);
      for (const auto& [mk, e] : m) {
        if (!live(e, now)) continue;
        w.put_bytes(mk);
        w.put_zigzag(e.expiry);
        Serde<V>::write(w, e.value);
      }
    }
  }
  Status read_group(size_t g, std::string_view bytes, bool legacy) override {
    ByteReader r(bytes);
    uint64_t maps;
    if (!r.get_varint(maps)) return Status::corruption("heap map state snapshot: bad map count");
    auto& group = mut(g);
    for (uint64_t i = 0; i < maps; ++i) {
      std::string_view key;
      int64_t map_expiry = 0;
      uint64_t n;
      if (!r.get_bytes(key) || (legacy && !r.get_zigzag(map_expiry)) || !r.get_varint(n) ||
          n > r.remaining()) {
        return Status::corruption("heap map state snapshot: truncated map");
      }
      Inner& m = group[std::string(key)];
      for (uint64_t j = 0; j < n; ++j) {
        std::string_view mk;
        Entry e;
        e.expiry = map_expiry;
        if (!r.get_bytes(mk) || (!legacy && !r.get_zigzag(e.expiry)) ||
            !Serde<V>::read(r, e.value)) {
          return Status::corruption("heap map state snapshot: truncated entry");
        }
        m.insert_or_assign(std::string(mk), std::move(e));
      }
      if (m.empty()) group.erase(std::string(key));
    }
    if (!r.empty()) return Status::corruption("heap map state snapshot: trailing bytes");
    return Status::ok();
  }
  void for_each_key(size_t g, int64_t now,
                    const std::function<void(std::string_view)>& fn) const override {
    for (const auto& [k, m] : groups_.read(g))
      if (live_count(m, now) > 0) fn(k);
  }
  size_t entry_count() const override {
    size_t n = 0;
    for (size_t g = 0; g < groups_.size(); ++g)
      for (const auto& [k, m] : groups_.read(g)) n += m.size();
    return n;
  }

 private:
  // Group g, the table's own, for changes (and for cursors, which may
  // erase). The first change after a snapshot drops the group's expired
  // entries from memory, unless a cursor is open (B-tree erasure moves
  // entries under it; cursors never live across a barrier, so one open
  // now is into this group's own copy already).
  Outer& mut(size_t g) {
    bool first = false;
    Outer& group = groups_.write(g, &first);
    if (first && ttl().enabled() && open_cursors == 0) {
      const int64_t now = this->now();
      absl::erase_if(group, [&](auto& kv) {
        absl::erase_if(kv.second, [&](const auto& e) { return !live(e.second, now); });
        return kv.second.empty();
      });
    }
    return group;
  }

  static uint64_t live_count(const Inner& m, int64_t now) {
    uint64_t n = 0;
    for (const auto& [mk, e] : m) n += live(e, now) ? 1 : 0;
    return n;
  }

  CowGroups<Outer> groups_;
};

/// A heap map iteration: a B-tree position in the map of one (key,
/// namespace), ascending or descending within an encoded range. Skips
/// expired entries; erases them when it is the only open cursor of the
/// state. Created by the map handle, owned by a MapRange (or a handle
/// method); task thread only.
template <class K, class V, class Codec>
class HeapMapCursor final : public MapCursor<K, V> {
  using Table = HeapMapTable<V>;
  using Inner = typename Table::Inner;

 public:
  HeapMapCursor(Table* t, size_t g, std::string_view key, EncodedRange r, bool reverse,
                int64_t now)
      : t_(t), g_(g), key_(key), r_(std::move(r)), reverse_(reverse), now_(now) {
    ++t_->open_cursors;
    m_ = t_->find(g_, key_);
    if (!m_ || r_.empty()) {
      m_ = nullptr;
      return;
    }
    if (!reverse_) {
      it_ = m_->lower_bound(r_.lower);
    } else {
      it_ = r_.upper ? m_->lower_bound(*r_.upper) : m_->end();
      if (it_ == m_->begin()) {
        m_ = nullptr;
        return;
      }
      --it_;
    }
    settle();
  }
  ~HeapMapCursor() override {
    if (--t_->open_cursors == 0) t_->erase_if_empty(g_, key_);
  }
  HeapMapCursor(const HeapMapCursor&) = delete;
  HeapMapCursor& operator=(const HeapMapCursor&) = delete;

  bool valid() const override { return m_ != nullptr; }
  const K& key() const override {
    if (!decoded_) {
      if (!Codec::decode(it_->first, k_)) {
        throw StateAccessError("heap map state: a stored map key does not decode");
      }
      decoded_ = true;
    }
    return k_;
  }
  const V& value() override {
    if (t_->ttl().enabled() && t_->ttl().refresh_on_read) {
      it_->second.expiry = now_ + t_->ttl().ttl.count();
    }
    return it_->second.value;
  }
  void next() override {
    decoded_ = false;
    if (!reverse_) {
      ++it_;
    } else if (it_ == m_->begin()) {
      m_ = nullptr;
      return;
    } else {
      --it_;
    }
    settle();
  }

 private:
  // Moves to the first live entry in the range from the current position
  // (in the cursor's direction), or invalidates the cursor.
  void settle() {
    for (;;) {
      if (!reverse_) {
        if (it_ == m_->end() || (r_.upper && it_->first >= *r_.upper)) {
          m_ = nullptr;
          return;
        }
      } else if (it_->first < r_.lower) {
        m_ = nullptr;
        return;
      }
      if (t_->live(it_->second, now_)) return;
      const bool sole = t_->open_cursors == 1;
      if (!reverse_) {
        if (sole) it_ = m_->erase(it_);
        else ++it_;
        continue;
      }
      // Descending: step to the previous entry (erasing this one if alone).
      auto at = it_;
      if (sole) {
        auto after = m_->erase(at);
        if (after == m_->begin()) {
          m_ = nullptr;
          return;
        }
        it_ = std::prev(after);
      } else {
        if (it_ == m_->begin()) {
          m_ = nullptr;
          return;
        }
        --it_;
      }
    }
  }

  Table* t_;
  size_t g_;
  std::string key_;  // (key, namespace) of the map, copied: compose() reuses its buffer
  EncodedRange r_;
  bool reverse_;
  int64_t now_;
  Inner* m_ = nullptr;  // nullptr once the cursor is exhausted
  typename Inner::iterator it_;
  mutable K k_{};
  mutable bool decoded_ = false;
};

/// The heap map handle: MapState<K, V> with Serde keys (Iface = MapState)
/// or OrderedMapState<K, V> with ordered keys. Owned by the backend; task
/// thread only.
template <class K, class V, class Codec, class Iface>
class HeapMapStateImpl final : public Iface {
  using Table = HeapMapTable<V>;

 public:
  template <class Desc>
  HeapMapStateImpl(HeapKeyedStateBackend& b, const Desc& d, std::string_view sig)
      : b_(b), t_(b.table<Table>(d.name, sig, d.ttl)), name_(d.name) {}

  void set_namespace(std::string_view ns) override { ns_.assign(ns); }

  std::optional<V> get(const K& k) override {
    auto* e = find_entry(k);
    if (!e) return std::nullopt;
    refresh(*e);
    return e->value;
  }
  void put(const K& k, const V& v) override {
    check_writable("put");
    auto& e = t_->upsert(group(), key())[encode(k)];
    e.value = v;
    e.expiry = t_->new_expiry();
  }
  void remove(const K& k) override {
    check_writable("remove");
    std::string_view key = this->key();
    auto* m = t_->find(group(), key);
    if (!m) return;
    m->erase(encode(k));
    if (m->empty()) t_->erase(group(), key);
  }
  bool contains(const K& k) override {
    auto* e = find_entry(k);
    if (e) refresh(*e);
    return e != nullptr;
  }
  std::unique_ptr<MapCursor<K, V>> open_all() override { return open_cursor(EncodedRange{}, false); }
  void clear() override {
    check_writable("clear");
    t_->erase(group(), key());
  }

  // OrderedMapState (plain members when Iface is MapState).
  std::unique_ptr<MapCursor<K, V>> open_cursor(const EncodedRange& r, bool reverse) {
    return std::make_unique<HeapMapCursor<K, V, Codec>>(t_, group(), key(), r, reverse, t_->now());
  }
  void remove_encoded_range(const EncodedRange& r) {
    check_writable("remove_range");
    if (r.empty()) return;
    std::string_view key = this->key();
    auto* m = t_->find(group(), key);
    if (!m) return;
    auto lo = m->lower_bound(r.lower);
    auto hi = r.upper ? m->lower_bound(*r.upper) : m->end();
    m->erase(lo, hi);
    if (m->empty()) t_->erase(group(), key);
  }

 private:
  size_t group() const { return b_.current_group_index(); }
  std::string_view key() { return b_.compose(ns_); }
  const std::string& encode(const K& k) {
    mk_.clear();
    Codec::encode(mk_, k);
    return mk_;
  }
  void refresh(typename Table::Entry& e) {
    if (t_->ttl().enabled() && t_->ttl().refresh_on_read) e.expiry = t_->new_expiry();
  }
  void check_writable(const char* op) const { throw_if_iterating(t_->open_cursors, name_, op); }

  // The live entry for `k`, or nullptr; an expired one is erased on the way
  // (unless a cursor is open).
  typename Table::Entry* find_entry(const K& k) {
    std::string_view key = this->key();
    auto* m = t_->find(group(), key);
    if (!m) return nullptr;
    auto it = m->find(encode(k));
    if (it == m->end()) return nullptr;
    if (t_->expired(it->second.expiry)) {
      if (t_->open_cursors == 0) {
        m->erase(it);
        if (m->empty()) t_->erase(group(), key);
      }
      return nullptr;
    }
    return &it->second;
  }

  HeapKeyedStateBackend& b_;
  Table* t_;
  std::string name_;
  std::string ns_;
  std::string mk_;  // encoded map key scratch
};

template <class K, class V>
using HeapMapState = HeapMapStateImpl<K, V, SerdeKeyCodec<K>, MapState<K, V>>;
template <class K, class V>
using HeapOrderedMapState = HeapMapStateImpl<K, V, OrderedKeyCodec<K>, OrderedMapState<K, V>>;

}  // namespace sluice::state
