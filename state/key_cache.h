// KeyCache: what an operator keeps per key, decoded in memory in front of
// its keyed state (heap or RocksDB), written back only when a key leaves the
// cache and before every snapshot.
//
// Why: an operator that reads and changes several state items per record
// pays, through the state API, a serialized key, a lookup and a copy (heap)
// or a RocksDB point operation per item, and on RocksDB a write and a delete
// for every item that lives only until the watermark passes. Behind this
// cache such items live and die in memory; the keyed state sees one write
// per changed key per checkpoint, so a checkpoint holds exactly what the
// cache held at the barrier and a restore (at any parallelism: the state is
// still keyed state) reads it back key by key.
//
// Bound: the summed weight of the cached keys (Store::weight, e.g. items
// held); beyond it keys not selected lately are written back and dropped
// (the clock algorithm; never the selected key, however heavy).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "state/keyed_state_backend.h"

namespace sluice::state {

/// The per-key cache of one operator (see the top of this file). `Entry`
/// is what one key holds, decoded (default-constructible). `Store` moves
/// an entry between the cache and keyed state; when called, the backend's
/// current key is the entry's:
///   void load(Entry&)                 read the key's items from keyed state
///   bool dirty(const Entry&)          anything to write back?
///   void write_back(Entry&)           write what changed to keyed state
///   size_t weight(const Entry&)       what the bound counts (at least 1)
/// The operator selects the backend's current key, then calls select() and
/// works on the returned entry; after changing its weight it need not tell
/// (weights are counted again when another key is selected). flush()
/// before every snapshot. Owned by the operator (or a state handle); task
/// thread only; `backend` and `store` outlive it.
template <class Entry, class Store>
class KeyCache {
 public:
  KeyCache(KeyedStateBackend& backend, Store& store, size_t max_weight)
      : backend_(backend), store_(store), max_weight_(max_weight) {}
  KeyCache(const KeyCache&) = delete;
  KeyCache& operator=(const KeyCache&) = delete;

  /// The entry of the backend's current key, loaded from keyed state unless
  /// cached; may write back and drop other keys first (the backend's
  /// current key is the same afterwards).
  Entry& select() {
    const std::string& key = backend_.current_key();
    if (cur_ && cur_->key == key) {
      touch(*cur_);  // a flush since it was selected untouched it
      return cur_->entry;
    }
    recount();
    auto it = keys_.find(key);
    if (it != keys_.end()) {
      cur_ = it->second.get();
      cur_->referenced = true;
      touch(*cur_);
      return cur_->entry;
    }
    const KeyGroup kg = backend_.current_key_group();
    std::string key_copy = key;  // eviction moves the backend's current key
    evict_for(nullptr);
    backend_.set_current_key(key_copy, kg);
    auto owned = std::make_unique<Node>();
    cur_ = owned.get();
    cur_->key = key_copy;
    cur_->kg = kg;
    store_.load(cur_->entry);
    touch(*cur_);
    clock_.push_back(cur_);
    cur_->counted = store_.weight(cur_->entry);
    total_ += cur_->counted;
    keys_.emplace(std::move(key_copy), std::move(owned));
    return cur_->entry;
  }

  /// Writes every changed entry back to keyed state (before a snapshot),
  /// then drops keys while the cache is above its bound. Leaves the
  /// backend's current key changed. Only keys selected since the last
  /// flush can have changed: the work is theirs, not the whole cache's
  /// (the barrier's share of a checkpoint).
  void flush() {
    recount();
    for (Node* n : touched_) {
      write_back(*n);
      n->touched = kUntouched;
    }
    touched_.clear();
    evict_for(cur_);  // keys that outgrew the bound while selected
  }

  /// Keys cached and their summed weight, as last counted (tests, metrics).
  size_t cached_keys() const { return keys_.size(); }
  size_t weight() const { return total_; }

 private:
  static constexpr size_t kUntouched = ~size_t{0};
  // The fields select() touches first, then the entry (whose own first
  // fields an operator reads first): one cache line apart, not five.
  struct Node {
    std::string key;
    KeyGroup kg{0};
    bool referenced = true;  ///< selected since the clock hand last passed
    size_t touched = kUntouched;  ///< index in touched_: selected since the last flush
    size_t counted = 0;      ///< weight when last added to total_
    Entry entry{};
  };

  void touch(Node& n) {
    if (n.touched != kUntouched) return;
    n.touched = touched_.size();
    touched_.push_back(&n);
  }
  void untouch(Node& n) {
    if (n.touched == kUntouched) return;
    touched_[n.touched] = touched_.back();
    touched_[n.touched]->touched = n.touched;
    touched_.pop_back();
    n.touched = kUntouched;
  }

  // The selected key's weight may have changed since it was counted.
  void recount() {
    if (!cur_) return;
    const size_t n = store_.weight(cur_->entry);
    total_ = total_ + n - cur_->counted;
    cur_->counted = n;
  }

  void write_back(Node& n) {
    if (!store_.dirty(n.entry)) return;
    backend_.set_current_key(n.key, n.kg);
    store_.write_back(n.entry);
    const size_t w = store_.weight(n.entry);  // tombstones may have gone
    total_ = total_ + w - n.counted;
    n.counted = w;
  }

  // Writes back and drops keys not selected lately (the clock algorithm:
  // the hand clears the mark of each key it passes and takes the first
  // unmarked one; never `keep` or the selected key) until the cache is
  // within its bound.
  void evict_for(Node* keep) {
    size_t passes = 0;
    while (total_ > max_weight_ && clock_.size() > 1 && passes < 2 * clock_.size() + 2) {
      if (hand_ >= clock_.size()) hand_ = 0;
      Node* victim = clock_[hand_];
      if (victim == keep || victim == cur_ || victim->referenced) {
        victim->referenced = false;
        ++hand_;
        ++passes;
        continue;
      }
      write_back(*victim);
      untouch(*victim);  // written back: nothing left for the next flush
      total_ -= victim->counted;
      clock_[hand_] = clock_.back();  // the hand now points at the moved key
      clock_.pop_back();
      keys_.erase(keys_.find(victim->key));
    }
  }

  KeyedStateBackend& backend_;
  Store& store_;
  const size_t max_weight_;
  absl::flat_hash_map<std::string, std::unique_ptr<Node>> keys_;
  std::vector<Node*> clock_;  // every cached key, in no order
  std::vector<Node*> touched_;  // keys selected since the last flush, in no order
  size_t hand_ = 0;
  Node* cur_ = nullptr;
  size_t total_ = 0;  // weights of every cached key, as last counted
};

}  // namespace sluice::state
