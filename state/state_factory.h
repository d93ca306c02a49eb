// Typed state registration on any backend: the one place that knows which
// handle class implements a state kind on which backend.
#pragma once

#include <memory>
#include <string>

#include "engine/common/serde.h"
#include "state/cached_value_state.h"
#include "state/heap_backend.h"
#include "state/heap_map_state.h"
#include "state/keyed_state_backend.h"
#include "state/ordered_map_state.h"
#include "state/rocksdb_backend.h"
#include "state/rocksdb_map_state.h"

namespace sluice::state {

namespace detail {
template <class H, class HeapImpl, class RocksImpl, class Desc>
H* make_state(KeyedStateBackend& b, const Desc& d, std::string signature) {
  return b.register_state<H>(d.name, signature, [&]() -> std::unique_ptr<H> {
    switch (b.kind()) {
      case BackendKind::kHeap:
        return std::make_unique<HeapImpl>(static_cast<HeapKeyedStateBackend&>(b), d, signature);
      case BackendKind::kRocksDB:
        return std::make_unique<RocksImpl>(static_cast<RocksDBKeyedStateBackend&>(b), d,
                                           signature);
      default:
        throw StateTypeError("state backend '" + std::string(backend_kind_name(b.kind())) +
                             "' cannot hold state '" + d.name + "'");
    }
  });
}
}  // namespace detail

template <class T>
ValueState<T>* get_value_state(KeyedStateBackend& b, const ValueStateDescriptor<T>& d) {
  return detail::make_state<ValueState<T>, HeapValueState<T>, RocksValueState<T>>(
      b, d, "value<" + std::string(type_name<T>()) + ">");
}

/// Value state kept decoded in memory between snapshots (see
/// cached_value_state.h). The values are stored in the value state of the
/// same name (signature `value<T>`: a plain ValueState<T> of an earlier
/// version of the operator restores into it, and the reverse).
template <class T>
CachedValueState<T>* get_cached_value_state(KeyedStateBackend& b, const CachedValueStateDescriptor<T>& d) {
  ValueState<T>* stored = get_value_state(b, ValueStateDescriptor<T>{d.name, {}});
  return b.register_state<CachedValueState<T>>(
      "cached:" + d.name, "cached_value<" + std::string(type_name<T>()) + ">",
      [&] { return std::make_unique<CachedValueState<T>>(b, stored, d.max_keys); });
}

template <class T>
ListState<T>* get_list_state(KeyedStateBackend& b, const ListStateDescriptor<T>& d) {
  return detail::make_state<ListState<T>, HeapListState<T>, RocksListState<T>>(
      b, d, "list<" + std::string(type_name<T>()) + ">");
}

template <class K, class V>
MapState<K, V>* get_map_state(KeyedStateBackend& b, const MapStateDescriptor<K, V>& d) {
  return detail::make_state<MapState<K, V>, HeapMapState<K, V>, RocksMapState<K, V>>(
      b, d, "map<" + std::string(type_name<K>()) + "," + std::string(type_name<V>()) + ">");
}

/// Map state in key order, with range reads and range removal (see
/// ordered_map_state.h). K needs an OrderedCodec (ordered_codec.h). Its
/// signature differs from map state's, so a state checkpointed as one
/// cannot be restored as the other.
template <class K, class V>
OrderedMapState<K, V>* get_ordered_map_state(KeyedStateBackend& b,
                                             const OrderedMapStateDescriptor<K, V>& d) {
  static_assert(OrderedKey<K>,
                "ordered map state needs an order-preserving key encoding: use an integer, "
                "EventTime, std::string, a pair/tuple of those, or specialize OrderedCodec");
  return detail::make_state<OrderedMapState<K, V>, HeapOrderedMapState<K, V>,
                            RocksOrderedMapState<K, V>>(
      b, d, "ordered_map<" + std::string(type_name<K>()) + "," + std::string(type_name<V>()) + ">");
}

template <class T>
ReducingState<T>* get_reducing_state(KeyedStateBackend& b, const ReducingStateDescriptor<T>& d) {
  return detail::make_state<ReducingState<T>, HeapReducingState<T>, RocksReducingState<T>>(
      b, d, "reducing<" + std::string(type_name<T>()) + ">");
}

template <class IN, class ACC, class OUT>
AggregatingState<IN, ACC, OUT>* get_aggregating_state(
    KeyedStateBackend& b, const AggregatingStateDescriptor<IN, ACC, OUT>& d) {
  return detail::make_state<AggregatingState<IN, ACC, OUT>, HeapAggregatingState<IN, ACC, OUT>,
                             RocksAggregatingState<IN, ACC, OUT>>(
      b, d, "aggregating<" + std::string(type_name<ACC>()) + ">");
}

}  // namespace sluice::state
