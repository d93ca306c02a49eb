// The NFA's state in the operator's keyed state (heap or RocksDB): it is
// snapshotted with every checkpoint and moves with its key group when a
// job is restored at another parallelism.
//
// States (all in the operator's namespace-free keyed state):
//   cep-meta     ValueState<KeyMeta>                     per-key bookkeeping
//   cep-events   MapState<tick, StoredEvent<E>>          the shared buffer's events
//   cep-entries  MapState<id, BufferEntry>               the shared buffer's entries
//   cep-partial  MapState<id, PartialMatchState>         partial matches
//   cep-index-*  OrderedMapState<IndexKey, int64>        the four ordered indexes
// Point reads and writes everywhere; an index scan is one ordered range
// read (a B-tree range on the heap, one iterator on RocksDB).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "operators/cep/shared_buffer.h"
#include "state/state_factory.h"

namespace sluice::cep {

/// NfaStore over a keyed-state backend; acts on the backend's current key.
/// Owned by the CEP operator; task thread only.
template <class E>
class KeyedNfaStore final : public NfaStore<E> {
 public:
  explicit KeyedNfaStore(state::KeyedStateBackend& b)
      : meta_(state::get_value_state(b, state::ValueStateDescriptor<KeyMeta>{"cep-meta", {}})),
        events_(state::get_map_state(b, state::MapStateDescriptor<int64_t, StoredEvent<E>>{"cep-events", {}})),
        entries_(state::get_map_state(b, state::MapStateDescriptor<int64_t, BufferEntry>{"cep-entries", {}})),
        pms_(state::get_map_state(b, state::MapStateDescriptor<int64_t, PartialMatchState>{"cep-partial", {}})) {
    static const char* kNames[] = {"cep-index-group", "cep-index-start", "cep-index-deadline", "cep-index-held"};
    for (int i = 0; i < 4; ++i) {
      index_[i] = state::get_ordered_map_state(b, state::OrderedMapStateDescriptor<IndexKey, int64_t>{kNames[i], {}});
    }
  }

  std::optional<KeyMeta> meta() override { return meta_->value(); }
  void put_meta(const KeyMeta& m) override { meta_->update(m); }
  void remove_meta() override { meta_->clear(); }

  std::optional<StoredEvent<E>> event(int64_t tick) override { return events_->get(tick); }
  void put_event(int64_t tick, const StoredEvent<E>& e) override { events_->put(tick, e); }
  void remove_event(int64_t tick) override { events_->remove(tick); }

  std::optional<BufferEntry> entry(int64_t id) override { return entries_->get(id); }
  void put_entry(int64_t id, const BufferEntry& e) override { entries_->put(id, e); }
  void remove_entry(int64_t id) override { entries_->remove(id); }

  std::optional<PartialMatchState> partial_match(int64_t id) override { return pms_->get(id); }
  void put_partial_match(int64_t id, const PartialMatchState& pm) override { pms_->put(id, pm); }
  void remove_partial_match(int64_t id) override { pms_->remove(id); }

  void index_put(NfaIndex i, const IndexKey& k, int64_t v) override { idx(i)->put(k, v); }
  void index_remove(NfaIndex i, const IndexKey& k) override { idx(i)->remove(k); }
  void index_scan(NfaIndex i, const IndexKey& lo, const IndexKey& hi, size_t limit,
                  std::vector<std::pair<IndexKey, int64_t>>& out) override {
    if (limit == 0) return;
    for (const auto& [k, v] : idx(i)->range(state::KeyRange<IndexKey>::closed(lo, hi))) {
      out.emplace_back(k, v);
      if (--limit == 0) break;
    }
  }

 private:
  state::OrderedMapState<IndexKey, int64_t>* idx(NfaIndex i) { return index_[static_cast<int>(i)]; }

  state::ValueState<KeyMeta>* meta_;
  state::MapState<int64_t, StoredEvent<E>>* events_;
  state::MapState<int64_t, BufferEntry>* entries_;
  state::MapState<int64_t, PartialMatchState>* pms_;
  state::OrderedMapState<IndexKey, int64_t>* index_[4];
};

}  // namespace sluice::cep
