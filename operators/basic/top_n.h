// Top-N per key: Flink SQL's `ROW_NUMBER() OVER (PARTITION BY key ORDER BY
// ...) <= N` as a keyed process function, and with N = 1 its deduplication
// (keep the first or the last row of a key, by whatever order is given).
//
//   bids.key_by([](const Bid& b) { return b.auction; })
//       .process(TopNFunction<int64_t, Bid>(10, [](const Bid& a, const Bid& b) {
//                  return a.price > b.price; }), "top-10 price")
//   // -> Ranked<Bid>{rank, row}: an update per rank whose row changed
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "operators/basic/keyed_process.h"

namespace sluice::basic {

/// A row of a top-N with its rank (1 = first).
template <class T>
struct Ranked {
  int64_t rank = 0;
  T row{};
  SLUICE_FIELDS(rank, row)
};

/// Keeps, per key, the N rows that come first in the order `before`
/// (before(a, b): a ranks ahead of b; a strict weak ordering) and emits, for
/// each record that enters the top, one Ranked<T> for every rank whose row
/// changed: from the new row's rank down to the last kept one. Consumers
/// read them as upserts keyed by (key, rank): the latest per (key, rank)
/// is the current top, and rank N's previous row has left it. A record
/// that ties with rows already kept ranks after them, so results depend on
/// arrival order only through ties: give `before` a total order for results
/// that do not. A record that does not enter the top changes nothing.
/// State: one ValueState holding at most N rows per key (no timers).
/// Copied per subtask by the keyed process operator; task thread only.
template <class K, class T>
class TopNFunction : public KeyedProcessFunction<K, T, Ranked<T>> {
 public:
  using Before = std::function<bool(const T&, const T&)>;

  /// Throws std::invalid_argument for n = 0 or an empty order.
  TopNFunction(size_t n, Before before, std::string state_name = "top-n")
      : n_(n), before_(std::move(before)), state_name_(std::move(state_name)) {
    if (n_ == 0) throw std::invalid_argument("a top-N needs N >= 1");
    if (!before_) throw std::invalid_argument("a top-N needs an order");
  }

  void open(RuntimeContext& rc) override {
    top_ = rc.get_state(state::ValueStateDescriptor<std::vector<T>>{state_name_, {}});
  }

  void process_element(const T& v, typename KeyedProcessFunction<K, T, Ranked<T>>::Context&,
                       Collector<Ranked<T>>& out) override {
    std::vector<T> top = top_->value().value_or(std::vector<T>{});
    const auto pos = std::upper_bound(top.begin(), top.end(), v, before_);
    const size_t at = static_cast<size_t>(pos - top.begin());
    if (at >= n_) return;
    top.insert(pos, v);
    if (top.size() > n_) top.pop_back();
    for (size_t i = at; i < top.size(); ++i) out.collect(Ranked<T>{static_cast<int64_t>(i + 1), top[i]});
    top_->update(top);
  }

 private:
  size_t n_;
  Before before_;
  std::string state_name_;
  state::ValueState<std::vector<T>>* top_ = nullptr;
};

}  // namespace sluice::basic
