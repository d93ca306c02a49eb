// Built-in incremental aggregations for windows (and AggregatingState).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "state/keyed_state.h"

namespace sluice::window {

template <class IN, class ACC, class OUT>
using AggregateFunction = state::AggregateFunction<IN, ACC, OUT>;

/// Number of records.
template <class IN>
class CountAggregate final : public AggregateFunction<IN, int64_t, int64_t> {
 public:
  int64_t create_accumulator() const override { return 0; }
  void add(int64_t& acc, const IN&) const override { ++acc; }
  int64_t get_result(const int64_t& acc) const override { return acc; }
  void merge(int64_t& into, const int64_t& other) const override { into += other; }
};

/// Sum of a numeric field.
template <class IN, class V>
class SumAggregate final : public AggregateFunction<IN, V, V> {
 public:
  explicit SumAggregate(std::function<V(const IN&)> field) : field_(std::move(field)) {}
  V create_accumulator() const override { return V{}; }
  void add(V& acc, const IN& v) const override { acc += field_(v); }
  V get_result(const V& acc) const override { return acc; }
  void merge(V& into, const V& other) const override { into += other; }

 private:
  std::function<V(const IN&)> field_;
};

/// Minimum of a field (empty windows never fire, so the result is set).
template <class IN, class V>
class MinAggregate final : public AggregateFunction<IN, std::optional<V>, V> {
 public:
  explicit MinAggregate(std::function<V(const IN&)> field) : field_(std::move(field)) {}
  std::optional<V> create_accumulator() const override { return std::nullopt; }
  void add(std::optional<V>& acc, const IN& v) const override {
    V x = field_(v);
    if (!acc || x < *acc) acc = x;
  }
  V get_result(const std::optional<V>& acc) const override { return acc.value_or(V{}); }
  void merge(std::optional<V>& into, const std::optional<V>& other) const override {
    if (other && (!into || *other < *into)) into = other;
  }

 private:
  std::function<V(const IN&)> field_;
};

/// Maximum of a field.
template <class IN, class V>
class MaxAggregate final : public AggregateFunction<IN, std::optional<V>, V> {
 public:
  explicit MaxAggregate(std::function<V(const IN&)> field) : field_(std::move(field)) {}
  std::optional<V> create_accumulator() const override { return std::nullopt; }
  void add(std::optional<V>& acc, const IN& v) const override {
    V x = field_(v);
    if (!acc || *acc < x) acc = x;
  }
  V get_result(const std::optional<V>& acc) const override { return acc.value_or(V{}); }
  void merge(std::optional<V>& into, const std::optional<V>& other) const override {
    if (other && (!into || *into < *other)) into = other;
  }

 private:
  std::function<V(const IN&)> field_;
};

/// Accumulator of AvgAggregate.
struct AvgAccumulator {
  double sum = 0;
  int64_t count = 0;
  SLUICE_FIELDS(sum, count)
};

/// Arithmetic mean of a numeric field.
template <class IN>
class AvgAggregate final : public AggregateFunction<IN, AvgAccumulator, double> {
 public:
  explicit AvgAggregate(std::function<double(const IN&)> field) : field_(std::move(field)) {}
  AvgAccumulator create_accumulator() const override { return {}; }
  void add(AvgAccumulator& acc, const IN& v) const override {
    acc.sum += field_(v);
    ++acc.count;
  }
  double get_result(const AvgAccumulator& acc) const override {
    return acc.count ? acc.sum / static_cast<double>(acc.count) : 0.0;
  }
  void merge(AvgAccumulator& into, const AvgAccumulator& other) const override {
    into.sum += other.sum;
    into.count += other.count;
  }

 private:
  std::function<double(const IN&)> field_;
};

/// Reduce as an aggregation: ACC = optional<T>.
template <class T>
class ReduceAggregate final : public AggregateFunction<T, std::optional<T>, T> {
 public:
  explicit ReduceAggregate(std::function<T(const T&, const T&)> f) : f_(std::move(f)) {}
  std::optional<T> create_accumulator() const override { return std::nullopt; }
  void add(std::optional<T>& acc, const T& v) const override { acc = acc ? f_(*acc, v) : v; }
  T get_result(const std::optional<T>& acc) const override { return acc.value_or(T{}); }
  void merge(std::optional<T>& into, const std::optional<T>& other) const override {
    if (other) into = into ? f_(*into, *other) : *other;
  }

 private:
  std::function<T(const T&, const T&)> f_;
};

/// A value with the event time it belongs to.
template <class V>
struct TimedValue {
  int64_t ts = 0;
  V value{};
  SLUICE_FIELDS(ts, value)
  bool operator==(const TimedValue&) const = default;
  auto operator<=>(const TimedValue&) const = default;
};

/// The `limit` earliest values of a window by event time (ties broken by
/// value) and how many values there were beyond them: a bounded window
/// result (a session's first pages) that is the same whatever order the
/// records arrived in and however the window's parts were merged. Value
/// type; used as (part of) an accumulator.
template <class V>
struct FirstN {
  std::vector<TimedValue<V>> items;  // ascending (ts, value), at most `limit`
  int64_t more = 0;                  // values seen beyond `items`
  SLUICE_FIELDS(items, more)
  bool operator==(const FirstN&) const = default;

  void add(int64_t ts, const V& v, size_t limit) {
    TimedValue<V> tv{ts, v};
    if (items.size() >= limit && (limit == 0 || !(tv < items.back()))) {
      ++more;
      return;
    }
    items.insert(std::upper_bound(items.begin(), items.end(), tv), std::move(tv));
    if (items.size() > limit) {
      items.pop_back();
      ++more;
    }
  }
  void merge(const FirstN& o, size_t limit) {
    std::vector<TimedValue<V>> all;
    all.reserve(items.size() + o.items.size());
    std::merge(items.begin(), items.end(), o.items.begin(), o.items.end(), std::back_inserter(all));
    more += o.more;
    if (all.size() > limit) {
      more += static_cast<int64_t>(all.size() - limit);
      all.resize(limit);
    }
    items = std::move(all);
  }
  /// The values in event-time order.
  std::vector<V> values() const {
    std::vector<V> out;
    out.reserve(items.size());
    for (const auto& i : items) out.push_back(i.value);
    return out;
  }
};

/// The first `limit` values of a field by event time, and the count of the
/// rest (FirstN): e.g. a session's first 50 pages in order.
template <class IN, class V>
class FirstNAggregate final : public AggregateFunction<IN, FirstN<V>, FirstN<V>> {
 public:
  FirstNAggregate(size_t limit, std::function<int64_t(const IN&)> ts, std::function<V(const IN&)> value)
      : limit_(limit), ts_(std::move(ts)), value_(std::move(value)) {}
  FirstN<V> create_accumulator() const override { return {}; }
  void add(FirstN<V>& acc, const IN& v) const override { acc.add(ts_(v), value_(v), limit_); }
  FirstN<V> get_result(const FirstN<V>& acc) const override { return acc; }
  void merge(FirstN<V>& into, const FirstN<V>& other) const override { into.merge(other, limit_); }

 private:
  size_t limit_;
  std::function<int64_t(const IN&)> ts_;
  std::function<V(const IN&)> value_;
};

}  // namespace sluice::window
