// The CEP operator's per-key state in keyed state (heap or RocksDB), behind
// a write-back cache: it is snapshotted with every checkpoint and moves with
// its key group when a job is restored at another parallelism.
//
// States (all in the operator's namespace-free keyed state):
//   cep-meta          ValueState<KeyMeta>                     per-key bookkeeping
//   cep-events        MapState<tick, StoredEvent<E>>          the shared buffer's events
//   cep-entries       MapState<id, BufferEntry>               the shared buffer's entries
//   cep-partial       MapState<id, PartialMatchState>         partial matches
//   cep-index-*       OrderedMapState<IndexKey, int64>        the four ordered indexes
//   cep-buffer        OrderedMapState<(ts, seq), E>           records waiting for the watermark
//   cep-buffer-size   ValueState<int64>                       their number
//
// Why a cache: an event of a key with partial matches reads and writes
// some twenty of these items (meta, events, entries, partial matches,
// index entries, the buffered record). Through the state API each is a
// serialized key, a B-tree of strings (heap) or a RocksDB point operation,
// and the cost of every one grows with the state's size. The cache holds
// the items of recently used keys decoded, in hash maps (by id) and B-trees
// (indexes, by IndexKey), and writes what changed back to keyed state only
// when the key is evicted and before every snapshot (flush()). The keyed
// state is therefore what a checkpoint sees; in between, the cache is the
// truth for the keys it holds. Items that live and die between two flushes
// (most partial matches, every buffered record that the watermark passes
// before the next checkpoint) never reach the backend.
//
// Bound: `max_items` items over all cached keys (cep.state-cache-entries,
// default 1,000,000); beyond it keys not selected lately are written back
// and dropped (the clock algorithm; never the selected key, however large).
// The cache of keys, its bound and its write-back are state::KeyCache
// (state/key_cache.h); this file says what one key holds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "operators/cep/shared_buffer.h"
#include "operators/cep/write_back_table.h"
#include "state/key_cache.h"
#include "state/state_factory.h"

namespace sluice::cep {

/// Everything the CEP operator keeps for one key, decoded. Owned by
/// KeyedNfaStore; task thread only.
template <class E>
struct CachedKey {
  using BufferKey = std::pair<int64_t, int64_t>;  // (timestamp, arrival sequence)
  template <class V>
  using ById = WriteBackTable<int64_t, V, absl::flat_hash_map<int64_t, WriteBackCell<V>, IdHash>>;
  template <class K, class V>
  using Ordered = WriteBackTable<K, V, absl::btree_map<K, WriteBackCell<V>>>;

  std::optional<KeyMeta> meta;
  bool meta_dirty = false;
  ById<StoredEvent<E>> events;
  ById<BufferEntry> entries;
  ById<PartialMatchState> pms;
  /// The four indexes (NfaIndex order); the group index is kept per group.
  IndexTable index[4] = {IndexTable(true), IndexTable(), IndexTable(), IndexTable()};
  Ordered<BufferKey, E> buffer;
  int64_t stored_buffer_size = 0;  ///< cep-buffer-size as the backend has it

  size_t cells() const {
    size_t n = 1 + events.cells() + entries.cells() + pms.cells() + buffer.cells();
    for (const auto& i : index) n += i.cells();
    return n;
  }
};

/// NfaStore over keyed state through a write-back cache of decoded keys
/// (see the top of this file), plus the key's event-time buffer. The
/// operator selects the backend's current key, then calls select(); the
/// NfaStore calls act on that key. flush() before every snapshot. Owned by
/// the CEP operator; task thread only.
template <class E>
class KeyedNfaStore final : public NfaStore<E> {
 public:
  using BufferKey = typename CachedKey<E>::BufferKey;

  KeyedNfaStore(state::KeyedStateBackend& b, size_t max_items)
      : meta_(state::get_value_state(b, state::ValueStateDescriptor<KeyMeta>{"cep-meta", {}})),
        events_(state::get_map_state(b, state::MapStateDescriptor<int64_t, StoredEvent<E>>{"cep-events", {}})),
        entries_(state::get_map_state(b, state::MapStateDescriptor<int64_t, BufferEntry>{"cep-entries", {}})),
        pms_(state::get_map_state(b, state::MapStateDescriptor<int64_t, PartialMatchState>{"cep-partial", {}})),
        buffer_(state::get_ordered_map_state(b, state::OrderedMapStateDescriptor<BufferKey, E>{"cep-buffer", {}})),
        buffer_size_(state::get_value_state(b, state::ValueStateDescriptor<int64_t>{"cep-buffer-size", {}})),
        cache_(b, *this, max_items) {
    static const char* kNames[] = {"cep-index-group", "cep-index-start", "cep-index-deadline", "cep-index-held"};
    for (int i = 0; i < 4; ++i) {
      index_[i] = state::get_ordered_map_state(b, state::OrderedMapStateDescriptor<IndexKey, int64_t>{kNames[i], {}});
    }
  }
  KeyedNfaStore(const KeyedNfaStore&) = delete;
  KeyedNfaStore& operator=(const KeyedNfaStore&) = delete;

  /// Makes the backend's current key the store's, reading it from keyed
  /// state unless cached; may write back and drop other keys first.
  void select() { cur_ = &cache_.select(); }

  /// Writes every changed item of every cached key back to keyed state
  /// (before a snapshot). Leaves the backend's current key changed.
  void flush() { cache_.flush(); }

  /// Keys and items cached (tests, metrics).
  size_t cached_keys() const { return cache_.cached_keys(); }

  // --- NfaStore ---------------------------------------------------------------
  std::optional<KeyMeta> meta() override { return cur_->meta; }
  bool meta_into(KeyMeta& out) override {
    if (!cur_->meta) return false;
    out = *cur_->meta;
    return true;
  }
  void put_meta(const KeyMeta& m) override {
    cur_->meta = m;
    cur_->meta_dirty = true;
  }
  void remove_meta() override {
    if (!cur_->meta) return;
    cur_->meta.reset();
    cur_->meta_dirty = true;
  }
  std::optional<StoredEvent<E>> event(int64_t tick) override { return opt(cur_->events.get(tick)); }
  void put_event(int64_t tick, const StoredEvent<E>& e) override { cur_->events.put(tick, e); }
  void remove_event(int64_t tick) override { cur_->events.remove(tick); }
  std::optional<BufferEntry> entry(int64_t id) override { return opt(cur_->entries.get(id)); }
  void put_entry(int64_t id, const BufferEntry& e) override { cur_->entries.put(id, e); }
  void remove_entry(int64_t id) override { cur_->entries.remove(id); }
  std::optional<PartialMatchState> partial_match(int64_t id) override { return opt(cur_->pms.get(id)); }
  void put_partial_match(int64_t id, const PartialMatchState& pm) override { cur_->pms.put(id, pm); }
  void remove_partial_match(int64_t id) override { cur_->pms.remove(id); }
  void index_put(NfaIndex i, const IndexKey& k, int64_t v) override { idx(i).put(k, v); }
  void index_remove(NfaIndex i, const IndexKey& k) override { idx(i).remove(k); }
  void index_scan(NfaIndex i, const IndexKey& lo, const IndexKey& hi, size_t limit,
                  std::vector<std::pair<IndexKey, int64_t>>& out) override {
    idx(i).scan(lo, hi, limit, out);
  }

  // --- the event-time buffer of the selected key -------------------------------
  /// Buffers `e`; false (and nothing stored) if the key already holds `max`.
  bool buffer_add(int64_t ts, int64_t seq, const E& e, int64_t max) {
    if (static_cast<int64_t>(cur_->buffer.size()) >= max) return false;
    cur_->buffer.put(BufferKey{ts, seq}, e);
    return true;
  }
  /// Timestamp of the earliest buffered record.
  std::optional<int64_t> buffer_first() const {
    for (const auto& [k, c] : cur_->buffer.cells_map())
      if (c.present) return k.first;
    return std::nullopt;
  }
  /// Removes and appends to `out` the records with timestamp <= upto, in
  /// (timestamp, sequence) order, at most `limit`.
  void buffer_take(int64_t upto, size_t limit, std::vector<std::pair<BufferKey, E>>& out) {
    const size_t before = out.size();
    for (const auto& [k, c] : cur_->buffer.cells_map()) {
      if (k.first > upto || out.size() - before == limit) break;
      if (c.present) out.emplace_back(k, c.value);
    }
    for (size_t i = before; i < out.size(); ++i) cur_->buffer.remove(out[i].first);
  }

 private:
  template <class T>
  static std::optional<T> opt(const T* p) {
    return p ? std::optional<T>(*p) : std::nullopt;
  }
  IndexTable& idx(NfaIndex i) {
    return cur_->index[static_cast<int>(i)];
  }

  // --- state::KeyCache's Store -------------------------------------------------------
  friend class state::KeyCache<CachedKey<E>, KeyedNfaStore>;
  size_t weight(const CachedKey<E>& k) const { return k.cells(); }

  void load(CachedKey<E>& k) {
    k.meta = meta_->value();
    k.stored_buffer_size = buffer_size_->value_or(0);
    if (k.meta) {
      for (const auto& [id, v] : events_->iterate()) k.events.load(id, v);
      for (const auto& [id, v] : entries_->iterate()) k.entries.load(id, v);
      for (const auto& [id, v] : pms_->iterate()) k.pms.load(id, v);
      for (int i = 0; i < 4; ++i)
        for (const auto& [ik, v] : index_[i]->iterate()) k.index[i].load(ik, v);
    }
    if (k.stored_buffer_size > 0) {
      for (const auto& [bk, v] : buffer_->iterate()) k.buffer.load(bk, v);
    }
  }

  bool dirty(const CachedKey<E>& k) const {
    bool any = k.meta_dirty || k.events.dirty() || k.entries.dirty() || k.pms.dirty() || k.buffer.dirty() ||
               static_cast<int64_t>(k.buffer.size()) != k.stored_buffer_size;
    for (const auto& i : k.index) any = any || i.dirty();
    return any;
  }

  void write_back(CachedKey<E>& k) {
    if (k.meta_dirty) {
      if (k.meta) meta_->update(*k.meta);
      else meta_->clear();
      k.meta_dirty = false;
    }
    k.events.flush([&](int64_t id, const StoredEvent<E>& v) { events_->put(id, v); },
                   [&](int64_t id) { events_->remove(id); });
    k.entries.flush([&](int64_t id, const BufferEntry& v) { entries_->put(id, v); },
                    [&](int64_t id) { entries_->remove(id); });
    k.pms.flush([&](int64_t id, const PartialMatchState& v) { pms_->put(id, v); },
                [&](int64_t id) { pms_->remove(id); });
    for (int i = 0; i < 4; ++i) {
      k.index[i].flush([&](const IndexKey& ik, int64_t v) { index_[i]->put(ik, v); },
                       [&](const IndexKey& ik) { index_[i]->remove(ik); });
    }
    k.buffer.flush([&](const BufferKey& bk, const E& v) { buffer_->put(bk, v); },
                   [&](const BufferKey& bk) { buffer_->remove(bk); });
    const auto n = static_cast<int64_t>(k.buffer.size());
    if (n != k.stored_buffer_size) {
      if (n > 0) buffer_size_->update(n);
      else buffer_size_->clear();
      k.stored_buffer_size = n;
    }
  }

  state::ValueState<KeyMeta>* meta_;
  state::MapState<int64_t, StoredEvent<E>>* events_;
  state::MapState<int64_t, BufferEntry>* entries_;
  state::MapState<int64_t, PartialMatchState>* pms_;
  state::OrderedMapState<IndexKey, int64_t>* index_[4];
  state::OrderedMapState<BufferKey, E>* buffer_;
  state::ValueState<int64_t>* buffer_size_;
  state::KeyCache<CachedKey<E>, KeyedNfaStore> cache_;
  CachedKey<E>* cur_ = nullptr;
};

}  // namespace sluice::cep
