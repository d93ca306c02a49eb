// The tables KeyedNfaStore (keyed_store.h) keeps one cached key's items in:
// decoded values, which of them changed since they were last written back to
// keyed state, and tombstones for removed items the backend still holds.
//
// IndexTable holds the NFA's ordered indexes (cep-index-*). Their use is
// mostly at the ends: partial matches are filed by start and deadline as
// time goes on and leave in the same order (within, the per-key cap), and a
// group of partial matches gains its newest members at the end and loses
// its oldest at the front. A B-tree descent per operation costs with the
// depth of the tree, i.e. with the log of the partial matches of the key —
// at 10,000 partial matches per key (B-tree nodes of five or six index
// cells: five levels) that was most of the growth of the CPU per event
// (bench/README.md, workload 10). So the ends are reached without a
// descent (a B-tree keeps its first and last leaf), and the group index has
// one B-tree per group, so the small groups that the partial matches still
// counting move through never walk the big one.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <utility>
#include <vector>

#include "operators/cep/shared_buffer.h"

namespace sluice::cep {

/// One cached item of a WriteBackTable.
template <class V>
struct WriteBackCell {
  V value{};
  bool present = true;  ///< false: a tombstone (removed, still in the backend)
  bool stored = false;  ///< the backend holds a version of it
  bool dirty = false;   ///< changed since it was last written back
};

/// Writes the changed cells of `cells` back, put(k, v) or remove(k), and
/// marks them clean; true when a removed cell is left to erase.
template <class Cells, class Put, class Remove>
bool write_back_cells(Cells& cells, Put& put_fn, Remove& remove_fn) {
  bool tombstones = false;
  for (auto& [k, c] : cells) {
    if (!c.dirty) continue;
    c.dirty = false;
    if (c.present) {
      put_fn(k, c.value);
      c.stored = true;
    } else {
      remove_fn(k);
      tombstones = true;
    }
  }
  return tombstones;
}

/// The items of one kind of one cached key: decoded values, which of them
/// changed since they were last written back, and tombstones for removed
/// items the backend still holds. A change only marks its cell; flush()
/// walks the cells (once per checkpoint and key), so the per-event work
/// does not depend on how much the key holds. Task thread only; owned by
/// CachedKey.
template <class K, class V, class Map>
class WriteBackTable {
 public:
  using Cell = WriteBackCell<V>;

  const V* get(const K& k) const {
    auto it = cells_.find(k);
    return it == cells_.end() || !it->second.present ? nullptr : &it->second.value;
  }
  void put(const K& k, V v) {
    auto [it, inserted] = cells_.try_emplace(k);
    Cell& c = it->second;
    if (!c.present || inserted) ++live_;
    c.value = std::move(v);
    c.present = true;
    c.dirty = true;
    changed_ = true;
  }
  void remove(const K& k) {
    auto it = cells_.find(k);
    if (it == cells_.end() || !it->second.present) return;
    --live_;
    if (it->second.stored) {
      it->second.present = false;
      it->second.value = V{};
      it->second.dirty = true;
      changed_ = true;
    } else {
      cells_.erase(it);
    }
  }
  /// An item as read from the backend.
  void load(const K& k, V v) {
    cells_.insert_or_assign(k, Cell{std::move(v), true, true, false});
    ++live_;
  }
  size_t size() const { return live_; }
  /// Cells held (live items and tombstones): what the cache bound counts.
  size_t cells() const { return cells_.size(); }
  bool dirty() const { return changed_; }
  const Map& cells_map() const { return cells_; }

  /// Writes every changed item back: put(k, v) or remove(k).
  template <class Put, class Remove>
  void flush(Put&& put_fn, Remove&& remove_fn) {
    if (!changed_) return;
    changed_ = false;
    if (write_back_cells(cells_, put_fn, remove_fn))
      absl::erase_if(cells_, [](const auto& kv) { return !kv.second.present; });
  }

 private:
  Map cells_;
  size_t live_ = 0;
  bool changed_ = false;
};

/// Hash of the ids of entries, partial matches and events: they are handed
/// out in increasing order and used mostly near the newest, so the table
/// position follows the id (neighbours share cache lines) while the low
/// seven bits, which the table compares first, are mixed.
struct IdHash {
  size_t operator()(int64_t id) const {
    const auto x = static_cast<uint64_t>(id);
    return static_cast<size_t>((x << 7) | ((x * 0x9E3779B97F4A7C15ull) >> 57));
  }
};

/// One of the NFA's ordered indexes (IndexKey -> int64) of one cached key,
/// with write-back like WriteBackTable: a change marks its cell, flush()
/// writes the changed cells (put or remove) and drops the tombstones.
/// Operations at either end of the index (of a partition, when partitioned)
/// take no B-tree descent. `partitionable` (the group index): once the
/// index holds more than kSplitAt cells it keeps one B-tree per first key
/// field (per group), and one B-tree again below kJoinAt — a key with a few
/// partial matches keeps the one small tree (an emptied group would free
/// and allocate a node per event). Owned by CachedKey; task thread only.
class IndexTable {
 public:
  using Cell = WriteBackCell<int64_t>;

  explicit IndexTable(bool partitionable = false) : partitionable_(partitionable) {}

  void put(const IndexKey& k, int64_t v) {
    Run& r = run_for(k.a);
    auto it = find_in(r, k);
    if (it == r.end()) {
      const bool last = r.empty() || r.rbegin()->first < k;
      r.emplace_hint(last ? r.end() : r.lower_bound(k), k, Cell{v, true, false, true});
      ++live_;
      ++cells_;
      if (partitionable_ && !partitioned_ && cells_ > kSplitAt) split();
    } else {
      Cell& c = it->second;
      if (!c.present) ++live_;
      c.value = v;
      c.present = true;
      c.dirty = true;
    }
    changed_ = true;
  }

  void remove(const IndexKey& k) {
    Run* r = find_run(k.a);
    if (r == nullptr) return;
    auto it = find_in(*r, k);
    if (it == r->end() || !it->second.present) return;
    --live_;
    changed_ = true;
    if (it->second.stored) {
      it->second.present = false;
      it->second.value = 0;
      it->second.dirty = true;
      return;
    }
    r->erase(it);
    --cells_;
    if (!partitioned_) return;
    // An emptied group keeps its (empty) B-tree for the partial matches
    // that come next, as long as the key has few groups; flush() drops it.
    if (r->empty() && parts_.size() > kKeptParts) parts_.erase(k.a);
    if (cells_ < kJoinAt) join();
  }

  /// An item as read from the backend (in key order: appended).
  void load(const IndexKey& k, int64_t v) {
    Run& r = run_for(k.a);
    const bool last = r.empty() || r.rbegin()->first < k;
    r.insert_or_assign(last ? r.end() : r.lower_bound(k), k, Cell{v, true, true, false});
    ++live_;
    ++cells_;
    if (partitionable_ && !partitioned_ && cells_ > kSplitAt) split();
  }

  /// Appends the items with lo <= key <= hi in key order, at most `limit`.
  void scan(const IndexKey& lo, const IndexKey& hi, size_t limit,
            std::vector<std::pair<IndexKey, int64_t>>& out) const {
    auto scan_run = [&](const Run& r) {
      // From the front without a descent when the scan starts before it.
      auto it = r.empty() || !(r.begin()->first < lo) ? r.begin() : r.lower_bound(lo);
      for (; it != r.end() && limit > 0 && !(hi < it->first); ++it) {
        if (!it->second.present) continue;
        out.emplace_back(it->first, it->second.value);
        --limit;
      }
    };
    if (!partitioned_) {
      scan_run(single_);
      return;
    }
    for (auto p = parts_.lower_bound(lo.a); p != parts_.end() && p->first <= hi.a && limit > 0; ++p) {
      scan_run(p->second);
    }
  }

  size_t size() const { return live_; }
  /// Cells held (live items and tombstones): what the cache bound counts.
  size_t cells() const { return cells_; }
  bool dirty() const { return changed_; }

  /// Writes every changed item back: put(k, v) or remove(k).
  template <class Put, class Remove>
  void flush(Put&& put_fn, Remove&& remove_fn) {
    if (!changed_) return;
    changed_ = false;
    auto flush_run = [&](Run& r) {
      if (write_back_cells(r, put_fn, remove_fn))
        cells_ -= absl::erase_if(r, [](const auto& kv) { return !kv.second.present; });
    };
    if (!partitioned_) {
      flush_run(single_);
      return;
    }
    for (auto& [a, r] : parts_) flush_run(r);
    absl::erase_if(parts_, [](const auto& kv) { return kv.second.empty(); });
    if (cells_ < kJoinAt) join();
  }

 private:
  using Run = absl::btree_map<IndexKey, Cell>;
  static constexpr size_t kKeptParts = 64;
  static constexpr size_t kSplitAt = 64, kJoinAt = 16;

  void split() {
    for (auto& [k, c] : single_) {
      Run& r = parts_[k.a];
      r.emplace_hint(r.end(), k, c);
    }
    single_.clear();
    partitioned_ = true;
  }
  void join() {
    for (auto& [a, r] : parts_)
      for (auto& [k, c] : r) single_.emplace_hint(single_.end(), k, c);
    parts_.clear();
    partitioned_ = false;
  }

  Run& run_for(int64_t a) { return partitioned_ ? parts_[a] : single_; }
  Run* find_run(int64_t a) {
    if (!partitioned_) return &single_;
    auto it = parts_.find(a);
    return it == parts_.end() ? nullptr : &it->second;
  }
  // The cell of `k`: the ends are compared first (no descent).
  static Run::iterator find_in(Run& r, const IndexKey& k) {
    if (r.size() <= 8) return r.find(k);  // one leaf
    auto first = r.begin();
    if (k < first->first) return r.end();
    if (!(first->first < k)) return first;
    auto last = std::prev(r.end());
    if (last->first < k) return r.end();
    if (!(k < last->first)) return last;
    return r.find(k);
  }

  bool partitionable_;
  bool partitioned_ = false;
  Run single_;
  absl::btree_map<int64_t, Run> parts_;  // partitioned: by k.a
  size_t live_ = 0;
  size_t cells_ = 0;
  bool changed_ = false;
};

}  // namespace sluice::cep
