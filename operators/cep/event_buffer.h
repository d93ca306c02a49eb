// Records of one key waiting for the watermark (event time): kept in keyed
// state by (timestamp, arrival sequence) and taken out in that order once
// the watermark passes them.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "state/state_factory.h"

namespace sluice::cep {

/// The buffer of the backend's current key. Owned by the CEP operator;
/// task thread only.
template <class E>
class EventBuffer {
 public:
  using Key = std::pair<int64_t, int64_t>;  // (timestamp, arrival sequence)

  explicit EventBuffer(state::KeyedStateBackend& b)
      : map_(state::get_ordered_map_state(b, state::OrderedMapStateDescriptor<Key, E>{"cep-buffer", {}})),
        size_(state::get_value_state(b, state::ValueStateDescriptor<int64_t>{"cep-buffer-size", {}})) {}

  /// Buffers `e`; false (and nothing stored) if the key already holds `max`.
  bool add(int64_t ts, int64_t seq, const E& e, int64_t max) {
    const int64_t n = size_->value_or(0);
    if (n >= max) return false;
    map_->put(Key{ts, seq}, e);
    size_->update(n + 1);
    return true;
  }

  /// Removes and appends to `out` the records with timestamp <= upto, in
  /// (timestamp, sequence) order, at most `limit`.
  void take(int64_t upto, size_t limit, std::vector<std::pair<Key, E>>& out) {
    const size_t before = out.size();
    for (const auto& [k, v] : map_->range(state::KeyRange<Key>::at_most(Key{upto, std::numeric_limits<int64_t>::max()}))) {
      out.emplace_back(k, v);
      if (out.size() - before == limit) break;
    }
    const size_t n = out.size() - before;
    if (n == 0) return;
    map_->remove_range(state::KeyRange<Key>::at_most(out.back().first));
    const int64_t left = size_->value_or(0) - static_cast<int64_t>(n);
    if (left > 0) size_->update(left);
    else size_->clear();
  }

 private:
  state::OrderedMapState<Key, E>* map_;
  state::ValueState<int64_t>* size_;
};

}  // namespace sluice::cep
