// Joins in the DataStream API (included by datastream.h):
//
//   // Interval join: left at tl with right at tr, tl + lower <= tr <= tl + upper.
//   a.key_by(ka).interval_join(b.key_by(kb))
//    .between(-2s, 1s)                          // .lower_bound_exclusive() / .upper_bound_exclusive()
//    .side_output_left_late_data(late_a)        // optional; .side_output_right_late_data(late_b)
//    .process(ProcessJoinFunction<A, B, OUT>)
//
//   // Window join: pairs of the same key in the same event-time window.
//   a.join(b).where(ka).equal_to(kb)
//    .window(TumblingEventTimeWindows::of(1min))   // or sliding, session
//    .allowed_lateness(10s)                        // optional
//    .side_output_late_data(late)                  // OutputTag<JoinInput<A, B>>
//    .apply([](const A&, const B&) { return OUT{...}; });
//   a.left_outer_join(b)...apply([](const A&, const std::optional<B>&) { ... });
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "operators/join/interval_join.h"

namespace sluice::api {

namespace detail {
template <class IN1, class IN2, class OUT>
OUT join_output(const join::ProcessJoinFunction<IN1, IN2, OUT>*);
}  // namespace detail

/// An interval join being described: two keyed streams and the bounds.
/// Value type; process() adds the operator.
template <class T1, class T2, class K>
class IntervalJoined {
 public:
  IntervalJoined(KeyedStream<T1, K> left, KeyedStream<T2, K> right, Duration lower, Duration upper)
      : left_(std::move(left)), right_(std::move(right)), lower_(lower), upper_(upper) {}

  /// The lower bound does not match itself (tr > tl + lower).
  IntervalJoined& lower_bound_exclusive() {
    lower_exclusive_ = true;
    return *this;
  }
  /// The upper bound does not match itself (tr < tl + upper).
  IntervalJoined& upper_bound_exclusive() {
    upper_exclusive_ = true;
    return *this;
  }
  /// Left records at or behind the watermark go to side output `tag` of
  /// the result stream (otherwise to the dead-letter output).
  IntervalJoined& side_output_left_late_data(const basic::OutputTag<T1>& tag) {
    settings_.left_late_tag = tag.id;
    return *this;
  }
  IntervalJoined& side_output_right_late_data(const basic::OutputTag<T2>& tag) {
    settings_.right_late_tag = tag.id;
    return *this;
  }

  /// F derives from ProcessJoinFunction<T1, T2, OUT>; copied per subtask.
  /// Throws std::invalid_argument if the bounds leave an empty interval.
  template <class F>
  auto process(F fn, std::string name = "interval-join") const {
    using OUT = decltype(detail::join_output(static_cast<const F*>(nullptr)));
    static_assert(std::is_base_of_v<join::ProcessJoinFunction<T1, T2, OUT>, F>,
                  "process() of an interval join takes a ProcessJoinFunction<T1, T2, OUT>");
    join::IntervalJoinSettings s = settings_;
    s.lower = lower_.count() + (lower_exclusive_ ? 1 : 0);
    s.upper = upper_.count() - (upper_exclusive_ ? 1 : 0);
    if (s.lower > s.upper) {
      throw std::invalid_argument("interval_join: between(" + format_duration(lower_) + ", " +
                                  format_duration(upper_) +
                                  ") with its exclusive bounds matches nothing; the lower bound "
                                  "must not exceed the upper one");
    }
    auto ks1 = left_.key_selector();
    auto ks2 = right_.key_selector();
    DataStream<OUT> out = detail::add_two_input<T1, T2, OUT>(
        left_.input().env(), std::move(name),
        "interval-join [" + std::to_string(s.lower) + " ms, " + std::to_string(s.upper) + " ms]",
        [ks1, ks2, s, fn]() {
          return std::make_unique<join::IntervalJoinOperator<K, T1, T2, OUT, F>>(ks1, ks2, s, fn);
        },
        detail::side_of(left_), detail::side_of(right_), true);
    auto& types = left_.input().env()->graph().node(out.node_id()).side_output_types;
    if (s.left_late_tag) types[*s.left_late_tag] = runtime::type_info<T1>();
    if (s.right_late_tag) types[*s.right_late_tag] = runtime::type_info<T2>();
    return out;
  }

 private:
  KeyedStream<T1, K> left_;
  KeyedStream<T2, K> right_;
  Duration lower_;
  Duration upper_;
  bool lower_exclusive_ = false;
  bool upper_exclusive_ = false;
  join::IntervalJoinSettings settings_;
};

/// The result of KeyedStream::interval_join: give it its bounds.
template <class T1, class T2, class K>
class IntervalJoin {
 public:
  IntervalJoin(KeyedStream<T1, K> left, KeyedStream<T2, K> right)
      : left_(std::move(left)), right_(std::move(right)) {}
  /// Both inclusive by default, relative to the left record's timestamp.
  IntervalJoined<T1, T2, K> between(Duration lower, Duration upper) const {
    return IntervalJoined<T1, T2, K>(left_, right_, lower, upper);
  }

 private:
  KeyedStream<T1, K> left_;
  KeyedStream<T2, K> right_;
};

template <class T, class K>
template <class T2>
IntervalJoin<T, T2, K> KeyedStream<T, K>::interval_join(const KeyedStream<T2, K>& other) const {
  return IntervalJoin<T, T2, K>(*this, other);
}

}  // namespace sluice::api
