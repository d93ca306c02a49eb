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
#include "operators/window/window_join.h"

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

/// A window join with its keys and windows: set lateness and the late
/// output, then apply() the join function. Value type.
template <class T1, class T2, class K>
class WindowJoined {
 public:
  using Input = window::JoinInput<T1, T2>;
  WindowJoined(DataStream<T1> left, DataStream<T2> right, std::function<K(const T1&)> k1,
               std::function<K(const T2&)> k2, window::WindowAssigner assigner, window::JoinType type)
      : left_(std::move(left)),
        right_(std::move(right)),
        k1_(std::move(k1)),
        k2_(std::move(k2)),
        assigner_(std::move(assigner)),
        type_(type) {}

  /// Keeps a window's records this long after it fired; a late record
  /// within it fires the window again (every pair again). Default 0.
  WindowJoined& allowed_lateness(Duration d) {
    lateness_ = d;
    return *this;
  }
  /// Records too late for every window go to side output `tag` of the
  /// result (otherwise to the dead-letter output).
  WindowJoined& side_output_late_data(const basic::OutputTag<Input>& tag) {
    late_tag_ = tag.id;
    return *this;
  }

  /// Inner join: OUT f(const T1&, const T2&), once per pair of the same
  /// key in the same window. Left outer: OUT f(const T1&, const
  /// std::optional<T2>&), a left record without a partner once with an
  /// empty optional. Results carry the window's last timestamp.
  template <class F>
  auto apply(F f, std::string name = "window-join") const {
    constexpr bool kTakesOptional = std::is_invocable_v<F&, const T1&, const std::optional<T2>&>;
    static_assert(kTakesOptional || std::is_invocable_v<F&, const T1&, const T2&>,
                  "a window join's function is OUT f(const T1&, const T2&), or for a left outer "
                  "join OUT f(const T1&, const std::optional<T2>&)");
    using window::JoinType;
    using window::JoinWindowFunction;
    if constexpr (kTakesOptional) {
      using OUT = std::decay_t<std::invoke_result_t<F&, const T1&, const std::optional<T2>&>>;
      if (type_ == JoinType::kLeftOuter) {
        return build<OUT>(JoinWindowFunction<T1, T2, OUT, K, F, JoinType::kLeftOuter>(std::move(f)), std::move(name));
      }
      return build<OUT>(JoinWindowFunction<T1, T2, OUT, K, F, JoinType::kInner>(std::move(f)), std::move(name));
    } else {
      using OUT = std::decay_t<std::invoke_result_t<F&, const T1&, const T2&>>;
      if (type_ == JoinType::kLeftOuter) {
        throw std::invalid_argument("a left outer window join's function takes the right side as "
                                    "const std::optional<T2>& (empty when a left record has no partner)");
      }
      return build<OUT>(JoinWindowFunction<T1, T2, OUT, K, F, JoinType::kInner>(std::move(f)), std::move(name));
    }
  }

 private:
  template <class OUT, class WF>
  DataStream<OUT> build(WF wf, std::string name) const {
    auto l = left_.map([](const T1& a) { return Input{a, std::nullopt}; }, name + "-left");
    auto r = right_.map([](const T2& b) { return Input{std::nullopt, b}; }, name + "-right");
    auto k1 = k1_;
    auto k2 = k2_;
    auto keyed = l.union_with(r).key_by([k1, k2](const Input& e) -> K { return e.left ? k1(*e.left) : k2(*e.right); });
    auto windowed = keyed.window(assigner_);
    windowed.allowed_lateness(lateness_);
    if (late_tag_) windowed.side_output_late_data(basic::OutputTag<Input>(*late_tag_));
    return windowed.process(std::move(wf), std::move(name));
  }

  DataStream<T1> left_;
  DataStream<T2> right_;
  std::function<K(const T1&)> k1_;
  std::function<K(const T2&)> k2_;
  window::WindowAssigner assigner_;
  window::JoinType type_;
  Duration lateness_{0};
  std::optional<std::string> late_tag_;
};

/// a.join(b).where(ka).equal_to(kb): give it its windows.
template <class T1, class T2, class K>
class JoinedWhereEqual {
 public:
  JoinedWhereEqual(DataStream<T1> left, DataStream<T2> right, std::function<K(const T1&)> k1,
                   std::function<K(const T2&)> k2, window::JoinType type)
      : left_(std::move(left)), right_(std::move(right)), k1_(std::move(k1)), k2_(std::move(k2)), type_(type) {}
  WindowJoined<T1, T2, K> window(window::WindowAssigner assigner) const {
    return WindowJoined<T1, T2, K>(left_, right_, k1_, k2_, std::move(assigner), type_);
  }

 private:
  DataStream<T1> left_;
  DataStream<T2> right_;
  std::function<K(const T1&)> k1_;
  std::function<K(const T2&)> k2_;
  window::JoinType type_;
};

/// a.join(b).where(ka): give it the right side's key.
template <class T1, class T2, class K>
class JoinedWhere {
 public:
  JoinedWhere(DataStream<T1> left, DataStream<T2> right, std::function<K(const T1&)> k1, window::JoinType type)
      : left_(std::move(left)), right_(std::move(right)), k1_(std::move(k1)), type_(type) {}
  /// K kb(const T2&): the same key type as where()'s.
  template <class F>
  JoinedWhereEqual<T1, T2, K> equal_to(F kb) const {
    using K2 = std::decay_t<std::invoke_result_t<F&, const T2&>>;
    static_assert(std::is_same_v<K, K2>, "where() and equal_to() must return the same key type");
    return JoinedWhereEqual<T1, T2, K>(left_, right_, k1_, std::function<K(const T2&)>(std::move(kb)), type_);
  }

 private:
  DataStream<T1> left_;
  DataStream<T2> right_;
  std::function<K(const T1&)> k1_;
  window::JoinType type_;
};

/// The result of DataStream::join / left_outer_join.
template <class T1, class T2>
class JoinedStreams {
 public:
  JoinedStreams(DataStream<T1> left, DataStream<T2> right, window::JoinType type)
      : left_(std::move(left)), right_(std::move(right)), type_(type) {}
  /// K ka(const T1&): the left side's key.
  template <class F>
  auto where(F ka) const {
    using K = std::decay_t<std::invoke_result_t<F&, const T1&>>;
    return JoinedWhere<T1, T2, K>(left_, right_, std::function<K(const T1&)>(std::move(ka)), type_);
  }
  /// Makes it a left outer join (as left_outer_join()).
  JoinedStreams left_outer() const { return JoinedStreams(left_, right_, window::JoinType::kLeftOuter); }

 private:
  DataStream<T1> left_;
  DataStream<T2> right_;
  window::JoinType type_;
};

template <class T>
template <class T2>
JoinedStreams<T, T2> DataStream<T>::join(const DataStream<T2>& other) const {
  return JoinedStreams<T, T2>(*this, other, window::JoinType::kInner);
}
template <class T>
template <class T2>
JoinedStreams<T, T2> DataStream<T>::left_outer_join(const DataStream<T2>& other) const {
  return JoinedStreams<T, T2>(*this, other, window::JoinType::kLeftOuter);
}

template <class T, class K>
template <class T2>
IntervalJoin<T, T2, K> KeyedStream<T, K>::interval_join(const KeyedStream<T2, K>& other) const {
  return IntervalJoin<T, T2, K>(*this, other);
}

}  // namespace sluice::api
