// Records of one key waiting for the watermark (event time): kept in keyed
// state by (timestamp, arrival sequence) and taken out in that order once
// the watermark passes them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>
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
      : map_(state::get_map_state(b, state::MapStateDescriptor<Key, E>{"cep-buffer", {}})),
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
    std::vector<std::pair<Key, E>> all = map_->entries();
    std::erase_if(all, [&](const auto& e) { return e.first.first > upto; });
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (all.size() > limit) all.resize(limit);
    for (const auto& [k, v] : all) map_->remove(k);
    if (!all.empty()) {
      const int64_t n = size_->value_or(0) - static_cast<int64_t>(all.size());
      if (n > 0) size_->update(n);
      else size_->clear();
    }
    out.insert(out.end(), std::make_move_iterator(all.begin()), std::make_move_iterator(all.end()));
  }

  /// The earliest timestamp waiting, if any.
  std::optional<int64_t> first_timestamp() {
    std::optional<int64_t> first;
    for (const auto& [k, v] : map_->entries()) first = first ? std::min(*first, k.first) : k.first;
    return first;
  }

 private:
  state::MapState<Key, E>* map_;
  state::ValueState<int64_t>* size_;
};

}  // namespace sluice::cep
