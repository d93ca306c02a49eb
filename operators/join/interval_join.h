// Interval join (Flink's IntervalJoinOperator): two keyed streams joined on
// event time, a left record at tl with every right record of the same key
// at tr with tl + lower <= tr <= tl + upper.
//
//   a.key_by(ka).interval_join(b.key_by(kb))
//    .between(-2s, 1s)                       // inclusive; .lower_bound_exclusive() etc.
//    .side_output_left_late_data(late_a)     // optional, else dead letters
//    .process(MyProcessJoinFunction{})
//
// Each side buffers its records in ordered map state (timestamp -> records
// at that timestamp), so both backends keep, snapshot, restore and rescale
// them like any keyed state. A record is late — and goes to its side's late
// output, or to the dead-letter output — when its timestamp is at or behind
// the operator's watermark (the watermark promises nothing at or before it
// comes any more). A buffered record is dropped by an event-time timer once
// the watermark passes the last timestamp the other side could still match
// it with: left at tl after tl + upper, right at tr after tr - lower.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/runtime/keyed.h"
#include "engine/runtime/two_input.h"
#include "operators/basic/functions.h"
#include "state/state_factory.h"

namespace sluice::join {

/// User logic of an interval join: called once per matching pair. One copy
/// per subtask (copy-constructed from the object given to process()); task
/// thread only.
template <class IN1, class IN2, class OUT>
class ProcessJoinFunction {
 public:
  /// The pair's timestamps; timestamp() (the results' default) is the
  /// larger of the two.
  class Context : public basic::FunctionContext {
   public:
    virtual int64_t left_timestamp() const = 0;
    virtual int64_t right_timestamp() const = 0;
  };

  virtual ~ProcessJoinFunction() = default;
  virtual void open(basic::RuntimeContext& ctx) {}
  virtual void process_element(const IN1& left, const IN2& right, Context& ctx,
                               basic::Collector<OUT>& out) = 0;
  virtual void close() {}
};

/// The settings of one interval join. Value type.
struct IntervalJoinSettings {
  /// Both inclusive, in ms relative to the left record's timestamp
  /// (exclusive bounds are folded in as lower + 1 / upper - 1). lower <= upper.
  int64_t lower = 0;
  int64_t upper = 0;
  /// Tags for late records of each side; unset: dead letters.
  std::optional<std::string> left_late_tag;
  std::optional<std::string> right_late_tag;
};

/// Runs a ProcessJoinFunction F over two keyed inputs (see the file
/// comment). Per-subtask instance built by the job graph; task thread only.
template <class K, class IN1, class IN2, class OUT, class F>
class IntervalJoinOperator final : public runtime::KeyedTwoInputOperator<K, IN1, IN2> {
  using Base = runtime::KeyedTwoInputOperator<K, IN1, IN2>;
  static constexpr std::string_view kLeftNs = "L";
  static constexpr std::string_view kRightNs = "R";

 public:
  IntervalJoinOperator(std::shared_ptr<const runtime::KeySelector<IN1, K>> ks1,
                       std::shared_ptr<const runtime::KeySelector<IN2, K>> ks2,
                       IntervalJoinSettings settings, const F& fn)
      : Base(std::move(ks1), std::move(ks2)), settings_(std::move(settings)), fn_(fn), ctx_(this) {}

  Status open() override {
    if (settings_.lower > settings_.upper) {
      return Status::invalid_argument("interval join: lower bound " + std::to_string(settings_.lower) +
                                      " ms is above the upper bound " +
                                      std::to_string(settings_.upper) + " ms");
    }
    SLUICE_RETURN_IF_ERROR(Base::open());
    left_ = state::get_ordered_map_state(
        *this->backend_, state::OrderedMapStateDescriptor<int64_t, std::vector<IN1>>{"interval-join-left", {}});
    right_ = state::get_ordered_map_state(
        *this->backend_, state::OrderedMapStateDescriptor<int64_t, std::vector<IN2>>{"interval-join-right", {}});
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    if (settings_.left_late_tag) {
      late_left_ = static_cast<runtime::Output<IN1>*>(this->context().side_output(*settings_.left_late_tag));
    }
    if (settings_.right_late_tag) {
      late_right_ = static_cast<runtime::Output<IN2>*>(this->context().side_output(*settings_.right_late_tag));
    }
    basic::RuntimeContext rc(this->context());
    return basic::call_user_open(this->context(), [&] { fn_.open(rc); });
  }

  void process_element1(const IN1& v, EventTime ts) override {
    if (!accept(v, ts, late_left_, "left")) return;
    if (!this->set_current_key_from1(v)) return;
    const int64_t t = ts.ms();
    buffer(left_, t, v);
    for (const auto& [tr, rights] : right_->range(state::KeyRange<int64_t>::closed(
             sat_add(t, settings_.lower), sat_add(t, settings_.upper)))) {
      for (const IN2& r : rights) emit(v, t, r, tr);
    }
    this->timers_->register_event_time_timer(kLeftNs, sat_add(t, std::max<int64_t>(settings_.upper, 0)));
  }

  void process_element2(const IN2& v, EventTime ts) override {
    if (!accept(v, ts, late_right_, "right")) return;
    if (!this->set_current_key_from2(v)) return;
    const int64_t t = ts.ms();
    buffer(right_, t, v);
    for (const auto& [tl, lefts] : left_->range(state::KeyRange<int64_t>::closed(
             sat_add(t, -settings_.upper), sat_add(t, -settings_.lower)))) {
      for (const IN1& l : lefts) emit(l, tl, v, t);
    }
    this->timers_->register_event_time_timer(kRightNs, sat_add(t, std::max<int64_t>(-settings_.lower, 0)));
  }

  void on_event_time(const state::TimerEntry& t) override {
    this->set_current_key_from_timer(t);
    if (t.ns == kLeftNs) {
      left_->remove(sat_add(t.ts, -std::max<int64_t>(settings_.upper, 0)));
    } else if (t.ns == kRightNs) {
      right_->remove(sat_add(t.ts, -std::max<int64_t>(-settings_.lower, 0)));
    } else {
      this->context().fail(Status::corruption("interval join timer with an unknown namespace"));
    }
  }
  void on_processing_time(const state::TimerEntry&) override {}
  void close() override { fn_.close(); }

 private:
  class Ctx final : public ProcessJoinFunction<IN1, IN2, OUT>::Context {
   public:
    explicit Ctx(IntervalJoinOperator* op) : op_(op) {}
    int64_t timestamp() const override { return std::max(left_ts, right_ts); }
    int64_t left_timestamp() const override { return left_ts; }
    int64_t right_timestamp() const override { return right_ts; }
    int64_t left_ts = 0;
    int64_t right_ts = 0;

   protected:
    runtime::OutputBase* side(const std::string& id) override { return op_->context().side_output(id); }

   private:
    IntervalJoinOperator* op_;
  };

  static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
  }

  template <class V>
  static void buffer(state::OrderedMapState<int64_t, std::vector<V>>* s, int64_t t, const V& v) {
    std::vector<V> rows = s->get(t).value_or(std::vector<V>{});
    rows.push_back(v);
    s->put(t, rows);
  }

  /// False if `v` must not join: no timestamp (dead letter) or late (late
  /// output or dead letter).
  template <class V>
  bool accept(const V& v, EventTime ts, runtime::Output<V>* late, const char* side) {
    if (ts.is_min()) {
      reject(v, std::string(side) + " record has no event timestamp; give the source a timestamp assigner");
      return false;
    }
    const EventTime wm = this->timers_->current_watermark();
    if (wm.is_min() || ts > wm) return true;
    if (late) {
      late->collect(v, ts);
      return false;
    }
    this->context().metrics().late_records_dropped.fetch_add(1, std::memory_order_relaxed);
    reject(v, std::string("late ") + side + " record: event time " + std::to_string(ts.ms()) +
                  " is not after the watermark " + std::to_string(wm.ms()));
    return false;
  }

  template <class V>
  void reject(const V& v, std::string reason) {
    DeadLetter dl;
    dl.reason = std::move(reason);
    dl.origin = "operator " + this->context().info().operator_name;
    dl.payload = basic::payload_of(v);
    this->context().dead_letter(std::move(dl));
  }

  void emit(const IN1& l, int64_t tl, const IN2& r, int64_t tr) {
    ctx_.left_ts = tl;
    ctx_.right_ts = tr;
    collector_.set_timestamp(EventTime(std::max(tl, tr)));
    basic::call_user(this->context(), l, [&] { fn_.process_element(l, r, ctx_, collector_); });
  }

  IntervalJoinSettings settings_;
  F fn_;
  Ctx ctx_;
  basic::Collector<OUT> collector_;
  state::OrderedMapState<int64_t, std::vector<IN1>>* left_ = nullptr;
  state::OrderedMapState<int64_t, std::vector<IN2>>* right_ = nullptr;
  runtime::Output<IN1>* late_left_ = nullptr;
  runtime::Output<IN2>* late_right_ = nullptr;
};

}  // namespace sluice::join
