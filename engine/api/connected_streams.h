// Two-input parts of the DataStream API (included by datastream.h):
//
//   a.connect(b).process(CoProcessFunction<A, B, OUT>)
//   a.connect(b).key_by(ka, kb).process(KeyedCoProcessFunction<K, A, B, OUT>)
//   a.key_by(ka).connect(b.key_by(kb)).process(...)             // the same
//   auto rules = r.broadcast(descriptor, ...);                   // BroadcastStream<R>
//   a.connect(rules).process(BroadcastProcessFunction<A, R, OUT>)
//   a.key_by(ka).connect(rules).process(KeyedBroadcastProcessFunction<K, A, R, OUT>)
//
// Each input keeps its own partitioning: connected streams keep theirs
// (forward becomes rebalance across different parallelism), keyed ones are
// hashed by their own key selector, broadcast ones go to every subtask.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "operators/join/broadcast_process.h"
#include "operators/join/co_process.h"

namespace sluice::api {

namespace detail {
template <class IN1, class IN2, class OUT>
OUT co_output(const join::CoProcessFunction<IN1, IN2, OUT>*);
template <class K, class IN1, class IN2, class OUT>
OUT co_output(const join::KeyedCoProcessFunction<K, IN1, IN2, OUT>*);
template <class IN1, class IN2, class OUT>
OUT co_output(const join::BroadcastProcessFunction<IN1, IN2, OUT>*);
template <class K, class IN1, class IN2, class OUT>
OUT co_output(const join::KeyedBroadcastProcessFunction<K, IN1, IN2, OUT>*);

/// One side of a two-input operator: its stream, how it is partitioned
/// and, when hashed, its key selector.
struct Side {
  std::vector<StreamExecutionEnvironment::Input> inputs;
  Partitioning partitioning = Partitioning::kForward;
  std::shared_ptr<const runtime::KeySelectorBase> key_selector;
};

/// Adds a two-input node fed by `first` (input 0) and `second` (input 1).
template <class T1, class T2, class OUT, class Make>
DataStream<OUT> add_two_input(StreamExecutionEnvironment* env, std::string name,
                              std::string description, Make make, const Side& first,
                              const Side& second, bool keyed) {
  StreamNode node;
  node.name = std::move(name);
  node.description = std::move(description);
  node.keyed = keyed;
  node.in_types = {runtime::type_info<T1>(), runtime::type_info<T2>()};
  node.out_type = runtime::type_info<OUT>();
  node.factory = [make]() -> std::unique_ptr<runtime::StreamOperator> { return make(); };
  std::vector<StreamExecutionEnvironment::EdgeSpec> edges;
  for (int index : {0, 1}) {
    const Side& s = index == 0 ? first : second;
    for (const auto& in : s.inputs) edges.push_back({in, index, s.partitioning, s.key_selector});
  }
  int id = env->add_node(std::move(node), edges);
  return DataStream<OUT>(env, {StreamExecutionEnvironment::Input{id, ""}});
}

template <class T>
Side side_of(const DataStream<T>& s) {
  return Side{s.inputs(), s.partitioning(), nullptr};
}
template <class T, class K>
Side side_of(const KeyedStream<T, K>& s) {
  return Side{s.input().inputs(), Partitioning::kHash, s.key_selector()};
}
}  // namespace detail

/// A stream that every subtask of the consuming operator receives whole,
/// with the broadcast states it may write (by descriptor name). Its
/// watermark counts in the operator's event time like any input's: a rule
/// stream that is quiet for long should go idle (WatermarkStrategy::
/// with_idleness) or have no watermarks (it then holds event time at its
/// start until it ends).
template <class T>
class BroadcastStream {
 public:
  BroadcastStream(DataStream<T> input, std::vector<std::string> states)
      : input_(std::move(input)), states_(std::move(states)) {}
  const DataStream<T>& input() const { return input_; }
  const std::vector<std::string>& state_names() const { return states_; }
  detail::Side side() const { return detail::Side{input_.inputs(), Partitioning::kBroadcast, nullptr}; }

 private:
  DataStream<T> input_;
  std::vector<std::string> states_;
};

/// Two streams keyed by the same key type K: keyed state and timers are
/// shared by both sides.
template <class T1, class T2, class K>
class KeyedConnectedStreams {
 public:
  KeyedConnectedStreams(KeyedStream<T1, K> first, KeyedStream<T2, K> second)
      : first_(std::move(first)), second_(std::move(second)) {}

  /// F derives from KeyedCoProcessFunction<K, T1, T2, OUT>; copied per subtask.
  template <class F>
  auto process(F fn, std::string name = "co-process") const {
    using OUT = decltype(detail::co_output(static_cast<const F*>(nullptr)));
    static_assert(std::is_base_of_v<join::KeyedCoProcessFunction<K, T1, T2, OUT>, F>,
                  "process() of keyed connected streams takes a KeyedCoProcessFunction<K, T1, T2, OUT>");
    auto ks1 = first_.key_selector();
    auto ks2 = second_.key_selector();
    return detail::add_two_input<T1, T2, OUT>(
        first_.input().env(), std::move(name), "keyed-co-process",
        [ks1, ks2, fn]() {
          return std::make_unique<join::KeyedCoProcessOperator<K, T1, T2, OUT, F>>(ks1, ks2, fn);
        },
        detail::side_of(first_), detail::side_of(second_), true);
  }

 private:
  KeyedStream<T1, K> first_;
  KeyedStream<T2, K> second_;
};

/// Two streams of possibly different types, processed together.
template <class T1, class T2>
class ConnectedStreams {
 public:
  ConnectedStreams(DataStream<T1> first, DataStream<T2> second)
      : first_(std::move(first)), second_(std::move(second)) {}

  /// Partitions both by key: K k1(const T1&) and K k2(const T2&) must give
  /// the same key type.
  template <class F1, class F2>
  auto key_by(F1 k1, F2 k2) const {
    using K = std::decay_t<std::invoke_result_t<F1&, const T1&>>;
    using K2 = std::decay_t<std::invoke_result_t<F2&, const T2&>>;
    static_assert(std::is_same_v<K, K2>, "both key selectors of key_by must return the same key type");
    return KeyedConnectedStreams<T1, T2, K>(first_.key_by(std::move(k1)), second_.key_by(std::move(k2)));
  }

  /// F derives from CoProcessFunction<T1, T2, OUT>; copied per subtask.
  template <class F>
  auto process(F fn, std::string name = "co-process") const {
    using OUT = decltype(detail::co_output(static_cast<const F*>(nullptr)));
    static_assert(std::is_base_of_v<join::CoProcessFunction<T1, T2, OUT>, F>,
                  "process() of connected streams takes a CoProcessFunction<T1, T2, OUT>; "
                  "key_by(...) first for a KeyedCoProcessFunction");
    return detail::add_two_input<T1, T2, OUT>(
        first_.env(), std::move(name), "co-process",
        [fn]() { return std::make_unique<join::CoProcessOperator<T1, T2, OUT, F>>(fn); },
        detail::side_of(first_), detail::side_of(second_), false);
  }

 private:
  DataStream<T1> first_;
  DataStream<T2> second_;
};

/// A non-keyed stream connected with a broadcast stream.
template <class T1, class T2>
class BroadcastConnectedStream {
 public:
  BroadcastConnectedStream(DataStream<T1> first, BroadcastStream<T2> second)
      : first_(std::move(first)), second_(std::move(second)) {}

  /// F derives from BroadcastProcessFunction<T1, T2, OUT>; copied per subtask.
  template <class F>
  auto process(F fn, std::string name = "broadcast-process") const {
    using OUT = decltype(detail::co_output(static_cast<const F*>(nullptr)));
    static_assert(std::is_base_of_v<join::BroadcastProcessFunction<T1, T2, OUT>, F>,
                  "process() takes a BroadcastProcessFunction<T1, T2, OUT>");
    auto states = second_.state_names();
    return detail::add_two_input<T1, T2, OUT>(
        first_.env(), std::move(name), "broadcast-process " + names(states),
        [fn, states]() {
          return std::make_unique<join::BroadcastProcessOperator<T1, T2, OUT, F>>(fn, states);
        },
        detail::side_of(first_), second_.side(), false);
  }

  static std::string names(const std::vector<std::string>& states) {
    std::string out;
    for (const auto& s : states) out += (out.empty() ? "" : ",") + s;
    return out;
  }

 private:
  DataStream<T1> first_;
  BroadcastStream<T2> second_;
};

/// A keyed stream connected with a broadcast stream.
template <class T1, class K, class T2>
class KeyedBroadcastConnectedStream {
 public:
  KeyedBroadcastConnectedStream(KeyedStream<T1, K> first, BroadcastStream<T2> second)
      : first_(std::move(first)), second_(std::move(second)) {}

  /// F derives from KeyedBroadcastProcessFunction<K, T1, T2, OUT>; copied per subtask.
  template <class F>
  auto process(F fn, std::string name = "keyed-broadcast-process") const {
    using OUT = decltype(detail::co_output(static_cast<const F*>(nullptr)));
    static_assert(std::is_base_of_v<join::KeyedBroadcastProcessFunction<K, T1, T2, OUT>, F>,
                  "process() of a keyed stream connected with a broadcast stream takes a "
                  "KeyedBroadcastProcessFunction<K, T1, T2, OUT>");
    auto states = second_.state_names();
    auto ks = first_.key_selector();
    return detail::add_two_input<T1, T2, OUT>(
        first_.input().env(), std::move(name),
        "keyed-broadcast-process " + BroadcastConnectedStream<T1, T2>::names(states),
        [ks, fn, states]() {
          return std::make_unique<join::KeyedBroadcastProcessOperator<K, T1, T2, OUT, F>>(ks, fn, states);
        },
        detail::side_of(first_), second_.side(), true);
  }

 private:
  KeyedStream<T1, K> first_;
  BroadcastStream<T2> second_;
};

// --- the DataStream / KeyedStream members that return these ------------------

template <class T>
template <class T2>
ConnectedStreams<T, T2> DataStream<T>::connect(const DataStream<T2>& other) const {
  return ConnectedStreams<T, T2>(*this, other);
}

template <class T>
template <class T2>
BroadcastConnectedStream<T, T2> DataStream<T>::connect(const BroadcastStream<T2>& other) const {
  return BroadcastConnectedStream<T, T2>(*this, other);
}

template <class T>
template <class D, class... Ds>
BroadcastStream<T> DataStream<T>::broadcast(const D& descriptor, const Ds&... more) const {
  return BroadcastStream<T>(broadcast(), std::vector<std::string>{descriptor.name, more.name...});
}

template <class T, class K>
template <class T2>
KeyedConnectedStreams<T, T2, K> KeyedStream<T, K>::connect(const KeyedStream<T2, K>& other) const {
  return KeyedConnectedStreams<T, T2, K>(*this, other);
}

template <class T, class K>
template <class T2>
KeyedBroadcastConnectedStream<T, K, T2> KeyedStream<T, K>::connect(const BroadcastStream<T2>& other) const {
  return KeyedBroadcastConnectedStream<T, K, T2>(*this, other);
}

}  // namespace sluice::api
