// Window joins (Flink's JoinedStreams, built the way Flink builds them: as
// a co-group on the window operator). Both inputs are tagged into one
// stream of JoinInput<A, B>, keyed by their own key selectors, and cut into
// windows by the ordinary WindowOperator with list contents — tumbling,
// sliding or merging session windows, allowed lateness, late records to a
// side output, state, timers, snapshots and rescaling all as for any
// window. When a window fires, JoinWindowFunction pairs every left record
// of the key and window with every right one (inner), or emits a left
// record without a partner once with an empty right (left outer).
//
// Like every window with allowed lateness, a late record that still fits a
// window fires it again: the window's pairs are emitted again, with the
// new ones (Flink's behaviour).
#pragma once

#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "operators/window/window_operator.h"

namespace sluice::window {

/// One record of either side of a window join: exactly one of left and
/// right is set. The late side output of a window join carries these.
template <class A, class B>
struct JoinInput {
  std::optional<A> left;
  std::optional<B> right;
  SLUICE_FIELDS(left, right)
};

/// Inner or left outer.
enum class JoinType { kInner, kLeftOuter };

/// The window function of a window join: F is OUT f(const A&, const B&)
/// (inner) or OUT f(const A&, const std::optional<B>&) (left outer). One
/// copy per subtask; task thread only.
template <class A, class B, class OUT, class K, class F, JoinType kType>
class JoinWindowFunction final : public ProcessWindowFunction<JoinInput<A, B>, OUT, K> {
 public:
  explicit JoinWindowFunction(F f) : f_(std::move(f)) {}

  void process(const K&, const TimeWindow&, const std::vector<JoinInput<A, B>>& elements,
               basic::Collector<OUT>& out) override {
    lefts_.clear();
    rights_.clear();
    for (const auto& e : elements) {
      if (e.left) lefts_.push_back(&*e.left);
      else if (e.right) rights_.push_back(&*e.right);
    }
    for (const A* l : lefts_) {
      if constexpr (kType == JoinType::kLeftOuter) {
        if (rights_.empty()) {
          out.collect(f_(*l, std::optional<B>()));
          continue;
        }
        for (const B* r : rights_) out.collect(f_(*l, std::optional<B>(*r)));
      } else {
        for (const B* r : rights_) out.collect(f_(*l, *r));
      }
    }
  }

 private:
  F f_;
  std::vector<const A*> lefts_;
  std::vector<const B*> rights_;
};

}  // namespace sluice::window
