// Keyed process functions: per-key state and timers in user code.
#pragma once

#include <memory>

#include "operators/basic/functions.h"

namespace sluice::basic {

/// User logic after key_by. One copy per subtask (copy-constructed from the
/// object given to process()); all calls on the task thread.
template <class K, class IN, class OUT>
class KeyedProcessFunction {
 public:
  using Context = KeyedFunctionContext<K>;
  using OnTimerContext = KeyedTimerContext<K>;

  virtual ~KeyedProcessFunction() = default;
  /// Register state here.
  virtual void open(RuntimeContext& ctx) {}
  virtual void process_element(const IN& value, Context& ctx, Collector<OUT>& out) = 0;
  virtual void on_timer(int64_t timestamp, OnTimerContext& ctx, Collector<OUT>& out) {}
  virtual void close() {}
};

template <class K, class IN, class OUT, class F>
class KeyedProcessOperator final : public runtime::KeyedOneInputOperator<K, IN> {
  using Base = runtime::KeyedOneInputOperator<K, IN>;

 public:
  KeyedProcessOperator(std::shared_ptr<const runtime::KeySelector<IN, K>> ks, const F& fn)
      : Base(std::move(ks)), fn_(fn), ctx_([this]() -> const K& { return this->current_key(); }) {}

  Status open() override {
    SLUICE_RETURN_IF_ERROR(Base::open());
    timer_service_ = std::make_unique<TimerService>(this->timers_.get());
    ctx_.bind(&this->context(), timer_service_.get());
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    RuntimeContext rc(this->context());
    return call_user_open(this->context(), [&] { fn_.open(rc); });
  }
  void process_element(const IN& v, EventTime ts) override {
    if (!this->set_current_key_from(v)) return;
    ctx_.ts = ts.ms();
    ctx_.domain = TimeDomain::kEventTime;
    collector_.set_timestamp(ts);
    call_user(this->context(), v, [&] { fn_.process_element(v, ctx_, collector_); });
  }
  void on_event_time(const state::TimerEntry& t) override { fire(t, TimeDomain::kEventTime); }
  void on_processing_time(const state::TimerEntry& t) override {
    fire(t, TimeDomain::kProcessingTime);
  }
  void close() override { fn_.close(); }

 private:
  void fire(const state::TimerEntry& t, TimeDomain domain) {
    this->set_current_key_from_timer(t);
    ctx_.ts = t.ts;
    ctx_.domain = domain;
    collector_.set_timestamp(EventTime(t.ts));
    call_user_timer(this->context(), [this]() -> const K& { return this->current_key(); }, t.ts,
                    [&] { fn_.on_timer(t.ts, ctx_, collector_); });
  }

  F fn_;
  KeyedContextImpl<K> ctx_;
  Collector<OUT> collector_;
  std::unique_ptr<TimerService> timer_service_;
};

}  // namespace sluice::basic
