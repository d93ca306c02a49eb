// What user functions see: collectors, side-output tags, the runtime
// context with keyed state, and timers.
#pragma once

#include <cstdint>
#include <exception>
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
  if constexpr (JsonWritable<T>) {
    return to_json(v);
  } else {
    return std::string(type_name<T>()) + " (" + std::to_string(serialize(v).size()) +
           " bytes, no JSON form)";
  }
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

enum class TimeDomain { kEventTime, kProcessingTime };

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

 private:
  runtime::InternalTimerService* timers_;
};

}  // namespace sluice::basic
