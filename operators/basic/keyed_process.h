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
  class Context : public FunctionContext {
   public:
    virtual const K& current_key() = 0;
    virtual TimerService& timer_service() = 0;
  };
  class OnTimerContext : public Context {
   public:
    virtual TimeDomain time_domain() const = 0;
  };

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
      : Base(std::move(ks)), fn_(fn), ctx_(this) {}

  Status open() override {
    SLUICE_RETURN_IF_ERROR(Base::open());
    timer_service_ = std::make_unique<TimerService>(this->timers_.get());
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    RuntimeContext rc(this->context());
    return call_user_open(this->context(), [&] { fn_.open(rc); });
  }
  void process_element(const IN& v, EventTime ts) override {
    if (!this->set_current_key_from(v)) return;
    ctx_.ts_ = ts.ms();
    collector_.set_timestamp(ts);
    call_user(this->context(), v, [&] { fn_.process_element(v, ctx_, collector_); });
  }
  void on_event_time(const state::TimerEntry& t) override { fire(t, TimeDomain::kEventTime); }
  void on_processing_time(const state::TimerEntry& t) override {
    fire(t, TimeDomain::kProcessingTime);
  }
  void close() override { fn_.close(); }

 private:
  class Ctx final : public KeyedProcessFunction<K, IN, OUT>::OnTimerContext {
   public:
    explicit Ctx(KeyedProcessOperator* op) : op_(op) {}
    int64_t timestamp() const override { return ts_; }
    const K& current_key() override { return op_->current_key(); }
    TimerService& timer_service() override { return *op_->timer_service_; }
    TimeDomain time_domain() const override { return domain_; }
    int64_t ts_ = 0;
    TimeDomain domain_ = TimeDomain::kEventTime;

   protected:
    runtime::OutputBase* side(const std::string& id) override {
      return op_->context().side_output(id);
    }

   private:
    KeyedProcessOperator* op_;
  };

  void fire(const state::TimerEntry& t, TimeDomain domain) {
    this->set_current_key_from_timer(t);
    ctx_.ts_ = t.ts;
    ctx_.domain_ = domain;
    collector_.set_timestamp(EventTime(t.ts));
    call_user_timer(this->context(), [this]() -> const K& { return this->current_key(); }, t.ts,
                    [&] { fn_.on_timer(t.ts, ctx_, collector_); });
  }

  F fn_;
  Ctx ctx_;
  Collector<OUT> collector_;
  std::unique_ptr<TimerService> timer_service_;
};

}  // namespace sluice::basic
