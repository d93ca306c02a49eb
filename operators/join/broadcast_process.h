// Broadcast process functions (Flink's broadcast state pattern): a stream
// of records (e.g. events) connected with a broadcast stream (e.g. rules)
// that every subtask receives whole. The broadcast side writes broadcast
// state; the other side reads it.
//
//   auto rules = rule_stream.broadcast(kRules);   // MapStateDescriptor<std::string, Rule>
//   events.key_by(..).connect(rules).process(MyKeyedBroadcastFunction{});
//   events.connect(rules).process(MyBroadcastFunction{});
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/runtime/keyed.h"
#include "engine/runtime/two_input.h"
#include "operators/basic/functions.h"
#include "operators/join/broadcast_state.h"
#include "state/state_factory.h"

namespace sluice::join {

using basic::Collector;
using basic::RuntimeContext;
using basic::TimeDomain;
using basic::TimerService;

/// What both sides of a broadcast function see: time and broadcast state.
class BroadcastFunctionContext : public basic::FunctionContext {
 public:
  virtual int64_t current_processing_time() const = 0;
  /// The operator's event time: the minimum of both inputs' watermarks
  /// (an idle input left out).
  virtual int64_t current_watermark() const = 0;
  /// The broadcast input's own watermark: the event time up to which the
  /// broadcast stream is complete (INT64_MAX once it ended). A function
  /// that must not act at event time t before the broadcast side has
  /// passed t (rules that govern events) waits while this is behind t and
  /// the input is not idle.
  virtual int64_t broadcast_watermark() const = 0;
  /// Whether the broadcast input is idle (its source had nothing for its
  /// idleness timeout): then it holds nothing back, and what it sends when
  /// it becomes active again may be behind event time already passed.
  virtual bool broadcast_idle() const = 0;

 protected:
  virtual BroadcastStates& broadcast_states() = 0;
};

/// User logic over a non-keyed stream (IN1) connected with a broadcast
/// stream (IN2). One copy per subtask; task thread only.
template <class IN1, class IN2, class OUT>
class BroadcastProcessFunction {
 public:
  /// The non-broadcast side: broadcast state is read-only.
  class ReadOnlyContext : public BroadcastFunctionContext {
   public:
    template <class K, class V>
    const ReadOnlyBroadcastState<K, V>& get_broadcast_state(const state::MapStateDescriptor<K, V>& d) {
      return this->broadcast_states().get(d);
    }
  };
  /// The broadcast side: broadcast state is writable.
  class Context : public BroadcastFunctionContext {
   public:
    template <class K, class V>
    BroadcastState<K, V>& get_broadcast_state(const state::MapStateDescriptor<K, V>& d) {
      return this->broadcast_states().get(d);
    }
  };

  virtual ~BroadcastProcessFunction() = default;
  virtual void open(basic::RuntimeContext& ctx) {}
  virtual void process_element(const IN1& value, ReadOnlyContext& ctx, basic::Collector<OUT>& out) = 0;
  /// Must change broadcast state the same way on every subtask (depend on
  /// the record and the state only), so the copies stay equal.
  virtual void process_broadcast_element(const IN2& value, Context& ctx, basic::Collector<OUT>& out) = 0;
  virtual void close() {}
};

/// User logic over a keyed stream (IN1, key K) connected with a broadcast
/// stream (IN2): keyed state and timers on the keyed side; on the
/// broadcast side writable broadcast state and apply_to_keyed_state to
/// visit the state of every key this subtask holds (e.g. apply a new rule
/// to what was seen before it). One copy per subtask; task thread only.
template <class K, class IN1, class IN2, class OUT>
class KeyedBroadcastProcessFunction {
 public:
  /// The keyed side: the current key, timers, read-only broadcast state.
  class ReadOnlyContext : public BroadcastFunctionContext {
   public:
    virtual const K& current_key() = 0;
    virtual basic::TimerService& timer_service() = 0;
    template <class KB, class VB>
    const ReadOnlyBroadcastState<KB, VB>& get_broadcast_state(const state::MapStateDescriptor<KB, VB>& d) {
      return this->broadcast_states().get(d);
    }
  };
  class OnTimerContext : public ReadOnlyContext {
   public:
    virtual basic::TimeDomain time_domain() const = 0;
  };
  /// The broadcast side: no current key (keyed state is reached through
  /// apply_to_keyed_state only), writable broadcast state.
  class Context : public BroadcastFunctionContext {
   public:
    template <class KB, class VB>
    BroadcastState<KB, VB>& get_broadcast_state(const state::MapStateDescriptor<KB, VB>& d) {
      return this->broadcast_states().get(d);
    }
    /// Calls fn(key, state) for every key of this subtask that holds a
    /// value of the state, with that key current (so the state handle reads
    /// and writes its value; other states of the key are reachable too).
    template <class T, class Fn>
    void apply_to_keyed_state(const state::ValueStateDescriptor<T>& d, Fn fn) {
      auto* s = state::get_value_state(keyed_backend(), d);
      for_each_key(d.name, [&](const K& key) { fn(key, *s); });
    }
    template <class T, class Fn>
    void apply_to_keyed_state(const state::ListStateDescriptor<T>& d, Fn fn) {
      auto* s = state::get_list_state(keyed_backend(), d);
      for_each_key(d.name, [&](const K& key) { fn(key, *s); });
    }
    template <class MK, class MV, class Fn>
    void apply_to_keyed_state(const state::MapStateDescriptor<MK, MV>& d, Fn fn) {
      auto* s = state::get_map_state(keyed_backend(), d);
      for_each_key(d.name, [&](const K& key) { fn(key, *s); });
    }

   protected:
    virtual state::KeyedStateBackend& keyed_backend() = 0;
    virtual void for_each_key(const std::string& state_name, const std::function<void(const K&)>& fn) = 0;
  };

  virtual ~KeyedBroadcastProcessFunction() = default;
  /// Register keyed state here (RuntimeContext::get_state etc.).
  virtual void open(basic::RuntimeContext& ctx) {}
  virtual void process_element(const IN1& value, ReadOnlyContext& ctx, basic::Collector<OUT>& out) = 0;
  /// Must change broadcast state the same way on every subtask.
  virtual void process_broadcast_element(const IN2& value, Context& ctx, basic::Collector<OUT>& out) = 0;
  virtual void on_timer(int64_t timestamp, OnTimerContext& ctx, basic::Collector<OUT>& out) {}
  virtual void close() {}
};

namespace detail {

/// The contexts' shared part, implemented once per operator Op (which has
/// context(), broadcast_ and watermark()).
template <class Base, class Op>
class BroadcastCtx : public Base {
 public:
  explicit BroadcastCtx(Op* op) : op_(op) {}
  int64_t timestamp() const override { return ts_; }
  int64_t current_processing_time() const override {
    return op_->context().processing_time().now_ms();
  }
  int64_t current_watermark() const override { return op_->watermark().ms(); }
  int64_t broadcast_watermark() const override { return op_->broadcast_input_watermark().ms(); }
  bool broadcast_idle() const override { return op_->broadcast_input_idle(); }
  int64_t ts_ = 0;

 protected:
  runtime::OutputBase* side(const std::string& id) override { return op_->context().side_output(id); }
  BroadcastStates& broadcast_states() override { return op_->broadcast_; }
  Op* op_;
};

/// Operator state of a keyed broadcast operator: bytes keyed part, bytes
/// broadcast part.
inline std::string pack_state(const std::string& keyed, const std::string& broadcast) {
  std::string out;
  ByteWriter w(out);
  w.put_bytes(keyed);
  w.put_bytes(broadcast);
  return out;
}
inline Status unpack_state(std::string_view blob, std::string& keyed, std::string& broadcast) {
  ByteReader r(blob);
  std::string_view k, b;
  if (!r.get_bytes(k) || !r.get_bytes(b) || !r.empty()) {
    return Status::corruption("keyed broadcast operator state does not decode");
  }
  keyed.assign(k);
  broadcast.assign(b);
  return Status::ok();
}

}  // namespace detail

/// Runs a BroadcastProcessFunction F (input 0: records, input 1: broadcast).
template <class IN1, class IN2, class OUT, class F>
class BroadcastProcessOperator final : public runtime::TwoInputOperator<IN1, IN2> {
  using Fn = BroadcastProcessFunction<IN1, IN2, OUT>;

 public:
  BroadcastProcessOperator(const F& fn, std::vector<std::string> declared)
      : fn_(fn), broadcast_(std::move(declared)), ro_(this), rw_(this) {}

  /// Every new subtask takes the broadcast state of old subtask 0.
  Status initialize_state(const runtime::OperatorRestore& restore) override {
    if (restore.states.empty() || restore.states[0].empty()) return Status::ok();
    return broadcast_.restore(restore.states[0]);
  }
  Result<std::string> snapshot_state(CheckpointId) override { return broadcast_.snapshot(); }
  Status open() override {
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    basic::RuntimeContext rc(this->context());
    return basic::call_user_open(this->context(), [&] { fn_.open(rc); });
  }
  void process_element1(const IN1& v, EventTime ts) override {
    ro_.ts_ = ts.ms();
    collector_.set_timestamp(ts);
    basic::call_user(this->context(), v, [&] { fn_.process_element(v, ro_, collector_); });
  }
  void process_element2(const IN2& v, EventTime ts) override {
    rw_.ts_ = ts.ms();
    collector_.set_timestamp(ts);
    basic::call_user(this->context(), v, [&] { fn_.process_broadcast_element(v, rw_, collector_); });
  }
  void process_watermark(EventTime wm) override {
    watermark_ = wm;
    this->forward_watermark(wm);
  }
  void close() override { fn_.close(); }

  EventTime watermark() const { return watermark_; }
  EventTime broadcast_input_watermark() const { return this->input_watermark(1); }
  bool broadcast_input_idle() const { return this->input_idle(1); }
  using runtime::TwoInputOperator<IN1, IN2>::context;

 private:
  template <class, class>
  friend class detail::BroadcastCtx;

  F fn_;
  BroadcastStates broadcast_;
  detail::BroadcastCtx<typename Fn::ReadOnlyContext, BroadcastProcessOperator> ro_;
  detail::BroadcastCtx<typename Fn::Context, BroadcastProcessOperator> rw_;
  basic::Collector<OUT> collector_;
  EventTime watermark_ = EventTime::min();
};

/// Runs a KeyedBroadcastProcessFunction F (input 0: keyed records, input
/// 1: broadcast records), with keyed state and timers through the keyed
/// base and broadcast state as operator state.
template <class K, class IN1, class IN2, class OUT, class F>
class KeyedBroadcastProcessOperator final
    : public runtime::TwoInputOperator<IN1, IN2, runtime::KeyedOperatorBase<K>> {
  using Fn = KeyedBroadcastProcessFunction<K, IN1, IN2, OUT>;
  using Keyed = runtime::KeyedOperatorBase<K>;

 public:
  KeyedBroadcastProcessOperator(std::shared_ptr<const runtime::KeySelector<IN1, K>> ks, const F& fn,
                                std::vector<std::string> declared)
      : ks_(std::move(ks)), fn_(fn), broadcast_(std::move(declared)), ro_(this), rw_(this) {}

  /// The watermark: minimum over the old subtasks; broadcast state: old
  /// subtask 0's.
  Status initialize_state(const runtime::OperatorRestore& restore) override {
    std::vector<std::string> watermarks;
    for (size_t i = 0; i < restore.states.size(); ++i) {
      if (restore.states[i].empty()) continue;
      std::string keyed, broadcast;
      SLUICE_RETURN_IF_ERROR(detail::unpack_state(restore.states[i], keyed, broadcast));
      watermarks.push_back(std::move(keyed));
      if (i == 0) SLUICE_RETURN_IF_ERROR(broadcast_.restore(broadcast));
    }
    return this->restore_watermark(watermarks);
  }
  Result<std::string> snapshot_state(CheckpointId) override {
    return detail::pack_state(this->watermark_state(), broadcast_.snapshot());
  }
  Status open() override {
    SLUICE_RETURN_IF_ERROR(Keyed::open());
    timer_service_ = std::make_unique<basic::TimerService>(this->timers_.get());
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    basic::RuntimeContext rc(this->context());
    return basic::call_user_open(this->context(), [&] { fn_.open(rc); });
  }
  void process_element1(const IN1& v, EventTime ts) override {
    if (!this->set_current_key(ks_->key(v))) return;
    ro_.ts_ = ts.ms();
    ro_.domain_ = basic::TimeDomain::kEventTime;
    collector_.set_timestamp(ts);
    basic::call_user(this->context(), v, [&] { fn_.process_element(v, ro_, collector_); });
  }
  void process_element2(const IN2& v, EventTime ts) override {
    rw_.ts_ = ts.ms();
    collector_.set_timestamp(ts);
    basic::call_user(this->context(), v, [&] { fn_.process_broadcast_element(v, rw_, collector_); });
  }
  void on_event_time(const state::TimerEntry& t) override { fire(t, basic::TimeDomain::kEventTime); }
  void on_processing_time(const state::TimerEntry& t) override {
    fire(t, basic::TimeDomain::kProcessingTime);
  }
  void close() override { fn_.close(); }

  EventTime watermark() const { return this->timers_->current_watermark(); }
  EventTime broadcast_input_watermark() const { return this->input_watermark(1); }
  bool broadcast_input_idle() const { return this->input_idle(1); }
  using Keyed::context;

 private:
  template <class, class>
  friend class detail::BroadcastCtx;

  class ReadOnlyCtx final
      : public detail::BroadcastCtx<typename Fn::OnTimerContext, KeyedBroadcastProcessOperator> {
   public:
    using detail::BroadcastCtx<typename Fn::OnTimerContext, KeyedBroadcastProcessOperator>::BroadcastCtx;
    const K& current_key() override { return this->op_->current_key(); }
    basic::TimerService& timer_service() override { return *this->op_->timer_service_; }
    basic::TimeDomain time_domain() const override { return domain_; }
    basic::TimeDomain domain_ = basic::TimeDomain::kEventTime;
  };
  class BroadcastSideCtx final
      : public detail::BroadcastCtx<typename Fn::Context, KeyedBroadcastProcessOperator> {
   public:
    using detail::BroadcastCtx<typename Fn::Context, KeyedBroadcastProcessOperator>::BroadcastCtx;

   protected:
    state::KeyedStateBackend& keyed_backend() override { return *this->op_->backend_; }
    void for_each_key(const std::string& state_name, const std::function<void(const K&)>& fn) override {
      this->op_->for_each_key(state_name, fn);
    }
  };

  void for_each_key(const std::string& state_name, const std::function<void(const K&)>& fn) {
    auto keys = this->backend_->keys_of_state(state_name, [](std::string_view bytes) -> size_t {
      ByteReader r(bytes);
      K k{};
      if (!Serde<K>::read(r, k)) return 0;
      return bytes.size() - r.remaining();
    });
    for (const auto& [bytes, kg] : keys) {
      this->set_current_key_bytes(bytes, kg);
      fn(this->current_key());
    }
  }
  void fire(const state::TimerEntry& t, basic::TimeDomain domain) {
    this->set_current_key_from_timer(t);
    ro_.ts_ = t.ts;
    ro_.domain_ = domain;
    collector_.set_timestamp(EventTime(t.ts));
    basic::call_user_timer(this->context(), [this]() -> const K& { return this->current_key(); },
                           t.ts, [&] { fn_.on_timer(t.ts, ro_, collector_); });
  }

  std::shared_ptr<const runtime::KeySelector<IN1, K>> ks_;
  F fn_;
  BroadcastStates broadcast_;
  ReadOnlyCtx ro_;
  BroadcastSideCtx rw_;
  basic::Collector<OUT> collector_;
  std::unique_ptr<basic::TimerService> timer_service_;
};

}  // namespace sluice::join
