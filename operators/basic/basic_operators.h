// Stateless operators: map, filter, flat_map.
#pragma once

#include <type_traits>
#include <utility>

#include "operators/basic/functions.h"

namespace sluice::basic {

/// OUT f(const IN&)
template <class IN, class OUT, class F>
class MapOperator final : public runtime::OneInputOperator<IN> {
 public:
  explicit MapOperator(F f) : f_(std::move(f)) {}
  Status open() override {
    out_ = static_cast<runtime::Output<OUT>*>(this->outputs().at(0));
    return Status::ok();
  }
  void process_element(const IN& v, EventTime ts) override {
    call_user(this->context(), v, [&] { out_->collect(f_(v), ts); });
  }

 private:
  F f_;
  runtime::Output<OUT>* out_ = nullptr;
};

/// bool f(const IN&)
template <class T, class F>
class FilterOperator final : public runtime::OneInputOperator<T> {
 public:
  explicit FilterOperator(F f) : f_(std::move(f)) {}
  Status open() override {
    out_ = static_cast<runtime::Output<T>*>(this->outputs().at(0));
    return Status::ok();
  }
  void process_element(const T& v, EventTime ts) override {
    call_user(this->context(), v, [&] {
      if (f_(v)) out_->collect(v, ts);
    });
  }

 private:
  F f_;
  runtime::Output<T>* out_ = nullptr;
};

/// void f(const IN&, Collector<OUT>&)
template <class IN, class OUT, class F>
class FlatMapOperator final : public runtime::OneInputOperator<IN> {
 public:
  explicit FlatMapOperator(F f) : f_(std::move(f)) {}
  Status open() override {
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    return Status::ok();
  }
  void process_element(const IN& v, EventTime ts) override {
    collector_.set_timestamp(ts);
    call_user(this->context(), v, [&] { f_(v, collector_); });
  }

 private:
  F f_;
  Collector<OUT> collector_;
};

}  // namespace sluice::basic
