// What user functions see: collectors, side-output tags, the runtime
// context with keyed state, and timers.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <utility>

#include "engine/common/json.h"
#include "engine/runtime/dead_letter.h"
#include "engine/runtime/keyed.h"
#include "engine/runtime/operator.h"
#include "state/state_factory.h"

namespace sluice::basic {

/// Names a side output of element type T. Tags are compared by id.
template <class T>
struct OutputTag {
  std::string id;
  explicit OutputTag(std::string tag_id) : id(std::move(tag_id)) {}
};

/// Emits records of type T; the timestamp defaults to the one of the
/// record or timer being processed.
template <class T>
class Collector {
 public:
  Collector() = default;
  Collector(runtime::Output<T>* out, EventTime ts) : out_(out), ts_(ts) {}
  void collect(const T& value) { out_->collect(value, ts_); }
  void collect_with_timestamp(const T& value, int64_t ts) { out_->collect(value, EventTime(ts)); }
  void set_timestamp(EventTime ts) { ts_ = ts; }
  void set_output(runtime::Output<T>* out) { out_ = out; }

 private:
  runtime::Output<T>* out_ = nullptr;
  EventTime ts_;
};

/// The record as text for a dead letter: JSON when the type has it.
template <class T>
std::string payload_of(const T& v) {
  return dead_letter_payload(v);
}

/// Sends `record` to the dead-letter output as rejected by the operator of
/// `ctx` for `reason`.
template <class T>
void dead_letter_for(runtime::OperatorContext& ctx, const T& record, std::string reason) {
  DeadLetter dl;
  dl.reason = std::move(reason);
  dl.origin = "operator " + ctx.info().operator_name;
  dl.payload = payload_of(record);
  ctx.dead_letter(std::move(dl));
}

/// Calls user code for one record. InvalidRecord -> dead letter; any other
/// exception fails the task. This is the exception boundary of operators.
template <class T, class F>
void call_user(runtime::OperatorContext& ctx, const T& record, F&& f) {
  try {
    f();
  } catch (const InvalidRecord& e) {
    dead_letter_for(ctx, record, e.what());
  } catch (const std::exception& e) {
    ctx.fail(Status::internal("user function of '" + ctx.info().operator_name +
                              "' threw: " + e.what()));
  } catch (...) {
    ctx.fail(Status::internal("user function of '" + ctx.info().operator_name +
                              "' threw a non-standard exception"));
  }
}

/// Calls a user function's open(): an exception refuses to start the
/// operator with a message naming it.
template <class F>
Status call_user_open(runtime::OperatorContext& ctx, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return Status::invalid_argument("open() of '" + ctx.info().operator_name + "' failed: " + e.what());
  }
  return Status::ok();
}

/// Calls user code for a firing timer: InvalidRecord -> dead letter naming
/// the key (`key()` is called only then) and the timer, anything else fails
/// the task.
template <class KeyFn, class F>
void call_user_timer(runtime::OperatorContext& ctx, KeyFn&& key, int64_t ts, F&& f) {
  try {
    f();
  } catch (const InvalidRecord& e) {
    DeadLetter dl;
    dl.reason = std::string("timer rejected: ") + e.what();
    dl.origin = "operator " + ctx.info().operator_name;
    dl.payload = "key " + payload_of(key()) + " timer " + std::to_string(ts);
    ctx.dead_letter(std::move(dl));
  } catch (const std::exception& e) {
    ctx.fail(Status::internal("on_timer of '" + ctx.info().operator_name + "' threw: " + e.what()));
  } catch (...) {
    ctx.fail(Status::internal("on_timer of '" + ctx.info().operator_name +
                              "' threw a non-standard exception"));
  }
}

/// What every function context offers: the timestamp of the record (or
/// timer) being processed and side outputs. Implemented by operators.
class FunctionContext {
 public:
  virtual ~FunctionContext() = default;
  /// Event time of the record (or the timer's time in on_timer).
  virtual int64_t timestamp() const = 0;
  /// Emits to a side output (nothing if no one consumes it).
  template <class X>
  void output(const OutputTag<X>& tag, const X& value) {
    if (auto* o = side(tag.id)) static_cast<runtime::Output<X>*>(o)->collect(value, EventTime(timestamp()));
  }

 protected:
  virtual runtime::OutputBase* side(const std::string& id) = 0;
};

enum class TimeDomain { kEventTime, kProcessingTime };

class TimerService;

/// The context of keyed functions: the current key and its timers.
template <class K>
class KeyedFunctionContext : public FunctionContext {
 public:
  virtual const K& current_key() = 0;
  virtual TimerService& timer_service() = 0;
};

/// The context of a keyed function's on_timer: which timer fired.
template <class K>
class KeyedTimerContext : public KeyedFunctionContext<K> {
 public:
  virtual TimeDomain time_domain() const = 0;
};

/// Operator identity and keyed state for user functions (in open()).
class RuntimeContext {
 public:
  explicit RuntimeContext(runtime::OperatorContext& ctx) : ctx_(ctx) {}
  const runtime::OperatorInfo& info() const { return ctx_.info(); }
  int subtask_index() const { return ctx_.info().subtask; }
  int parallelism() const { return ctx_.info().parallelism; }
  const Configuration& job_config() const { return ctx_.job_config(); }

  /// Keyed state (only in functions after key_by). The handle stays valid
  /// for the life of the function and follows the current key.
  template <class T>
  state::ValueState<T>* get_state(const state::ValueStateDescriptor<T>& d) {
    return state::get_value_state(backend(), d);
  }
  template <class T>
  state::ListState<T>* get_list_state(const state::ListStateDescriptor<T>& d) {
    return state::get_list_state(backend(), d);
  }
  template <class K, class V>
  state::MapState<K, V>* get_map_state(const state::MapStateDescriptor<K, V>& d) {
    return state::get_map_state(backend(), d);
  }
  /// Map state in key order with range reads and range removal (keys
  /// with an OrderedCodec: integers, EventTime, strings, pairs/tuples of
  /// those); see state/ordered_map_state.h.
  template <class K, class V>
  state::OrderedMapState<K, V>* get_ordered_map_state(const state::OrderedMapStateDescriptor<K, V>& d) {
    return state::get_ordered_map_state(backend(), d);
  }
  template <class T>
  state::ReducingState<T>* get_reducing_state(const state::ReducingStateDescriptor<T>& d) {
    return state::get_reducing_state(backend(), d);
  }
  template <class IN, class ACC, class OUT>
  state::AggregatingState<IN, ACC, OUT>* get_aggregating_state(
      const state::AggregatingStateDescriptor<IN, ACC, OUT>& d) {
    return state::get_aggregating_state(backend(), d);
  }

 private:
  state::KeyedStateBackend& backend() {
    auto* b = ctx_.keyed_backend();
    if (!b) {
      throw state::StateTypeError("keyed state is only available after key_by (operator '" +
                                  ctx_.info().operator_name + "')");
    }
    return *b;
  }
  runtime::OperatorContext& ctx_;
};

/// Timers of the current key (in keyed functions).
class TimerService {
 public:
  explicit TimerService(runtime::InternalTimerService* timers) : timers_(timers) {}
  int64_t current_processing_time() const { return timers_->current_processing_time(); }
  int64_t current_watermark() const { return timers_->current_watermark().ms(); }
  void register_event_time_timer(int64_t ts) { timers_->register_event_time_timer({}, ts); }
  void register_processing_time_timer(int64_t ts) {
    timers_->register_processing_time_timer({}, ts);
  }
  void delete_event_time_timer(int64_t ts) { timers_->delete_event_time_timer({}, ts); }
  void delete_processing_time_timer(int64_t ts) { timers_->delete_processing_time_timer({}, ts); }
  /// Event-time timers set and not yet fired on this subtask, over all keys.
  size_t event_timer_count() const { return timers_->event_timer_count(); }

 private:
  runtime::InternalTimerService* timers_;
};

/// What a keyed operator hands its function: KeyedTimerContext<K> on the
/// operator's context, timer service and current key (`key()`, decoded only
/// when asked). The operator binds it in open() and sets `ts` and `domain`
/// before each call. Owned by the operator; task thread only.
template <class K>
class KeyedContextImpl final : public KeyedTimerContext<K> {
 public:
  explicit KeyedContextImpl(std::function<const K&()> key) : key_(std::move(key)) {}
  void bind(runtime::OperatorContext* ctx, TimerService* timers) {
    ctx_ = ctx;
    timers_ = timers;
  }
  int64_t timestamp() const override { return ts; }
  const K& current_key() override { return key_(); }
  TimerService& timer_service() override { return *timers_; }
  TimeDomain time_domain() const override { return domain; }

  int64_t ts = 0;
  TimeDomain domain = TimeDomain::kEventTime;

 protected:
  runtime::OutputBase* side(const std::string& id) override { return ctx_->side_output(id); }

 private:
  std::function<const K&()> key_;
  runtime::OperatorContext* ctx_ = nullptr;
  TimerService* timers_ = nullptr;
};

}  // namespace sluice::basic
