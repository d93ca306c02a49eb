// Co-process functions: user logic over two connected streams (Flink's
// CoProcessFunction and KeyedCoProcessFunction).
//
//   a.connect(b).process(MyCoProcess{})                        // non-keyed
//   a.connect(b).key_by(ka, kb).process(MyKeyedCoProcess{})    // keyed state and timers
#pragma once

#include <memory>
#include <string>

#include "engine/runtime/keyed.h"
#include "engine/runtime/two_input.h"
#include "operators/basic/functions.h"

namespace sluice::join {

using basic::Collector;
using basic::FunctionContext;
using basic::RuntimeContext;
using basic::TimeDomain;
using basic::TimerService;

/// User logic over two connected, non-keyed streams. One copy per subtask
/// (copy-constructed from the object given to process()); all calls on the
/// task thread. Timers need keyed streams (connect(..).key_by(..)).
template <class IN1, class IN2, class OUT>
class CoProcessFunction {
 public:
  class Context : public FunctionContext {
   public:
    virtual int64_t current_processing_time() const = 0;
    /// The operator's event time: the minimum of both inputs' watermarks.
    virtual int64_t current_watermark() const = 0;
  };

  virtual ~CoProcessFunction() = default;
  virtual void open(RuntimeContext& ctx) {}
  virtual void process_element1(const IN1& value, Context& ctx, Collector<OUT>& out) = 0;
  virtual void process_element2(const IN2& value, Context& ctx, Collector<OUT>& out) = 0;
  virtual void close() {}
};

/// User logic over two streams connected and keyed by the same key type K:
/// keyed state and timers are shared by both sides; the current key is the
/// key of the record being processed (from its side's key selector) or of
/// the firing timer. One copy per subtask; task thread only.
template <class K, class IN1, class IN2, class OUT>
class KeyedCoProcessFunction {
 public:
  using Context = basic::KeyedFunctionContext<K>;
  using OnTimerContext = basic::KeyedTimerContext<K>;

  virtual ~KeyedCoProcessFunction() = default;
  /// Register keyed state here (RuntimeContext::get_state etc.).
  virtual void open(RuntimeContext& ctx) {}
  virtual void process_element1(const IN1& value, Context& ctx, Collector<OUT>& out) = 0;
  virtual void process_element2(const IN2& value, Context& ctx, Collector<OUT>& out) = 0;
  virtual void on_timer(int64_t timestamp, OnTimerContext& ctx, Collector<OUT>& out) {}
  virtual void close() {}
};

/// Runs a CoProcessFunction F.
template <class IN1, class IN2, class OUT, class F>
class CoProcessOperator final : public runtime::TwoInputOperator<IN1, IN2> {
 public:
  explicit CoProcessOperator(const F& fn) : fn_(fn), ctx_(this) {}

  Status open() override {
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    RuntimeContext rc(this->context());
    return basic::call_user_open(this->context(), [&] { fn_.open(rc); });
  }
  void process_element1(const IN1& v, EventTime ts) override {
    begin(ts);
    basic::call_user(this->context(), v, [&] { fn_.process_element1(v, ctx_, collector_); });
  }
  void process_element2(const IN2& v, EventTime ts) override {
    begin(ts);
    basic::call_user(this->context(), v, [&] { fn_.process_element2(v, ctx_, collector_); });
  }
  void process_watermark(EventTime wm) override {
    watermark_ = wm;
    this->forward_watermark(wm);
  }
  void close() override { fn_.close(); }

 private:
  class Ctx final : public CoProcessFunction<IN1, IN2, OUT>::Context {
   public:
    explicit Ctx(CoProcessOperator* op) : op_(op) {}
    int64_t timestamp() const override { return ts_; }
    int64_t current_processing_time() const override {
      return op_->context().processing_time().now_ms();
    }
    int64_t current_watermark() const override { return op_->watermark_.ms(); }
    int64_t ts_ = 0;

   protected:
    runtime::OutputBase* side(const std::string& id) override { return op_->context().side_output(id); }

   private:
    CoProcessOperator* op_;
  };
  void begin(EventTime ts) {
    ctx_.ts_ = ts.ms();
    collector_.set_timestamp(ts);
  }

  F fn_;
  Ctx ctx_;
  Collector<OUT> collector_;
  EventTime watermark_ = EventTime::min();
};

/// Runs a KeyedCoProcessFunction F: keyed state and timers for both inputs
/// through one keyed base (KeyedTwoInputOperator).
template <class K, class IN1, class IN2, class OUT, class F>
class KeyedCoProcessOperator final : public runtime::KeyedTwoInputOperator<K, IN1, IN2> {
  using Base = runtime::KeyedTwoInputOperator<K, IN1, IN2>;

 public:
  KeyedCoProcessOperator(std::shared_ptr<const runtime::KeySelector<IN1, K>> ks1,
                         std::shared_ptr<const runtime::KeySelector<IN2, K>> ks2, const F& fn)
      : Base(std::move(ks1), std::move(ks2)),
        fn_(fn),
        ctx_([this]() -> const K& { return this->current_key(); }) {}

  Status open() override {
    SLUICE_RETURN_IF_ERROR(Base::open());
    timer_service_ = std::make_unique<TimerService>(this->timers_.get());
    ctx_.bind(&this->context(), timer_service_.get());
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    RuntimeContext rc(this->context());
    return basic::call_user_open(this->context(), [&] { fn_.open(rc); });
  }
  void process_element1(const IN1& v, EventTime ts) override {
    if (!this->set_current_key_from1(v)) return;
    begin(ts.ms(), TimeDomain::kEventTime);
    basic::call_user(this->context(), v, [&] { fn_.process_element1(v, ctx_, collector_); });
  }
  void process_element2(const IN2& v, EventTime ts) override {
    if (!this->set_current_key_from2(v)) return;
    begin(ts.ms(), TimeDomain::kEventTime);
    basic::call_user(this->context(), v, [&] { fn_.process_element2(v, ctx_, collector_); });
  }
  void on_event_time(const state::TimerEntry& t) override { fire(t, TimeDomain::kEventTime); }
  void on_processing_time(const state::TimerEntry& t) override {
    fire(t, TimeDomain::kProcessingTime);
  }
  void close() override { fn_.close(); }

 private:
  void begin(int64_t ts, TimeDomain domain) {
    ctx_.ts = ts;
    ctx_.domain = domain;
    collector_.set_timestamp(EventTime(ts));
  }
  void fire(const state::TimerEntry& t, TimeDomain domain) {
    this->set_current_key_from_timer(t);
    begin(t.ts, domain);
    basic::call_user_timer(this->context(), [this]() -> const K& { return this->current_key(); },
                           t.ts, [&] { fn_.on_timer(t.ts, ctx_, collector_); });
  }

  F fn_;
  basic::KeyedContextImpl<K> ctx_;
  Collector<OUT> collector_;
  std::unique_ptr<TimerService> timer_service_;
};

}  // namespace sluice::join
