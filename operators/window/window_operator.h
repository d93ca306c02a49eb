// The event-time window operator.
//
// Per key, records are assigned to windows (tumbling, sliding or merging
// session windows) and kept in window contents — an accumulator
// (incremental aggregation) or the list of records (full-window function).
// A window fires when the watermark passes its end; with allowed lateness
// its state is kept that much longer and every late record that still
// fits fires an updated result. Records later than that go to the late
// side output if the job asked for one, otherwise to the dead-letter
// output: never dropped silently.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "operators/basic/functions.h"
#include "operators/window/aggregates.h"
#include "operators/window/window.h"

namespace sluice::window {

struct WindowSettings {
  WindowAssigner assigner = WindowAssigner::tumbling(Duration(60'000));
  /// Default 0: a window's state is dropped as soon as it fires.
  Duration allowed_lateness{0};
  /// Side-output tag for records too late for any window; unset: dead letters.
  std::optional<std::string> late_tag;
};

/// Window contents as an accumulator per window (incremental aggregation).
template <class IN, class ACC, class OUT>
class AggregatingContents {
 public:
  using Value = OUT;
  explicit AggregatingContents(std::shared_ptr<const AggregateFunction<IN, ACC, OUT>> fn)
      : fn_(std::move(fn)) {}
  void open(state::KeyedStateBackend& b) {
    state_ = state::get_aggregating_state(
        b, state::AggregatingStateDescriptor<IN, ACC, OUT>{"window-contents", fn_, {}});
  }
  void set_namespace(std::string_view ns) { state_->set_namespace(ns); }
  void add(const IN& v) { state_->add(v); }
  std::optional<OUT> get() { return state_->get(); }
  void clear() { state_->clear(); }
  void merge(std::string_view target, const std::vector<std::string>& sources) {
    state_->merge_namespaces(target, sources);
  }

 private:
  // shared: one immutable function for every subtask's operator.
  std::shared_ptr<const AggregateFunction<IN, ACC, OUT>> fn_;
  state::AggregatingState<IN, ACC, OUT>* state_ = nullptr;
};

/// Window contents as the list of records (full-window functions).
template <class IN>
class ListContents {
 public:
  using Value = std::vector<IN>;
  void open(state::KeyedStateBackend& b) {
    state_ = state::get_list_state(b, state::ListStateDescriptor<IN>{"window-contents", {}});
  }
  void set_namespace(std::string_view ns) { state_->set_namespace(ns); }
  void add(const IN& v) { state_->add(v); }
  std::optional<std::vector<IN>> get() {
    auto l = state_->get();
    if (l.empty()) return std::nullopt;
    return l;
  }
  void clear() { state_->clear(); }
  void merge(std::string_view target, const std::vector<std::string>& sources) {
    state_->merge_namespaces(target, sources);
  }

 private:
  state::ListState<IN>* state_ = nullptr;
};

/// A full-window function: sees every record of the window at once.
template <class IN, class R, class K>
class ProcessWindowFunction {
 public:
  virtual ~ProcessWindowFunction() = default;
  virtual void process(const K& key, const TimeWindow& window, const std::vector<IN>& elements,
                       basic::Collector<R>& out) = 0;
};

template <class K, class IN, class Contents, class R>
class WindowOperator final : public runtime::KeyedOneInputOperator<K, IN> {
  using Base = runtime::KeyedOneInputOperator<K, IN>;

 public:
  using V = typename Contents::Value;
  /// Emits the result(s) of one firing of one window.
  using WindowFn = std::function<void(const K&, const TimeWindow&, const V&, basic::Collector<R>&)>;

  WindowOperator(std::shared_ptr<const runtime::KeySelector<IN, K>> ks, WindowSettings settings,
                 Contents contents, WindowFn fn)
      : Base(std::move(ks)),
        settings_(std::move(settings)),
        contents_(std::move(contents)),
        fn_(std::move(fn)) {}

  Status open() override {
    SLUICE_RETURN_IF_ERROR(Base::open());
    contents_.open(*this->backend_);
    if (settings_.assigner.is_merging()) {
      window_set_ = state::get_value_state(
          *this->backend_, state::ValueStateDescriptor<std::vector<TimeWindow>>{"window-set", {}});
    }
    collector_.set_output(static_cast<runtime::Output<R>*>(this->outputs().at(0)));
    if (settings_.late_tag) {
      late_ = static_cast<runtime::Output<IN>*>(this->context().side_output(*settings_.late_tag));
    }
    return Status::ok();
  }

  void process_element(const IN& v, EventTime ts) override {
    if (ts.is_min()) {
      reject(v, "record has no event timestamp; give the source a timestamp assigner");
      return;
    }
    if (!this->set_current_key_from(v)) return;
    const int64_t wm = this->timers_->current_watermark().ms();
    if (settings_.assigner.is_merging()) {
      process_merging(v, ts, wm);
      return;
    }
    settings_.assigner.assign(ts.ms(), windows_);
    bool skipped = true;
    for (const TimeWindow& w : windows_) {
      if (is_late(w, wm)) continue;
      skipped = false;
      w.encode(ns_);
      contents_.set_namespace(ns_);
      contents_.add(v);
      arm(w, wm);
    }
    if (skipped) late(v, ts, wm);
  }

  void on_event_time(const state::TimerEntry& t) override {
    TimeWindow w;
    if (!TimeWindow::decode(t.ns, w)) {
      this->context().fail(Status::corruption("window timer with a bad namespace"));
      return;
    }
    this->set_current_key_from_timer(t);
    if (t.ts == w.max_timestamp()) {
      fire(w);
      if (settings_.allowed_lateness.count() == 0) clear_window(w);
    } else if (t.ts == cleanup_time(w)) {
      clear_window(w);
    }
  }
  void on_processing_time(const state::TimerEntry&) override {}

 private:
  int64_t cleanup_time(const TimeWindow& w) const {
    return (EventTime(w.max_timestamp()) + settings_.allowed_lateness).ms();
  }
  bool is_late(const TimeWindow& w, int64_t wm) const { return cleanup_time(w) <= wm; }

  // Registers the timers of window w (ns_ holds its namespace), or fires it
  // now if the watermark already passed its end (a late record within the
  // allowed lateness: an updated result).
  void arm(const TimeWindow& w, int64_t wm) {
    if (w.max_timestamp() <= wm) {
      fire(w);
    } else {
      this->timers_->register_event_time_timer(ns_, w.max_timestamp());
    }
    if (settings_.allowed_lateness.count() > 0) {
      this->timers_->register_event_time_timer(ns_, cleanup_time(w));
    }
  }

  void process_merging(const IN& v, EventTime ts, int64_t wm) {
    std::vector<TimeWindow> set = window_set_->value_or({});
    settings_.assigner.assign(ts.ms(), windows_);
    TimeWindow merged = windows_.front();
    // Windows in the set never touch each other, but grow to a fixpoint anyway.
    std::vector<bool> absorbed(set.size(), false);
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t i = 0; i < set.size(); ++i) {
        if (!absorbed[i] && set[i].intersects(merged)) {
          absorbed[i] = true;
          merged = merged.cover(set[i]);
          grew = true;
        }
      }
    }
    if (is_late(merged, wm)) {
      late(v, ts, wm);
      return;
    }
    std::vector<std::string> sources;
    std::vector<TimeWindow> kept;
    std::string ns;
    for (size_t i = 0; i < set.size(); ++i) {
      if (!absorbed[i]) {
        kept.push_back(set[i]);
        continue;
      }
      if (set[i] == merged) continue;
      set[i].encode(ns);
      this->timers_->delete_event_time_timer(ns, set[i].max_timestamp());
      if (settings_.allowed_lateness.count() > 0) {
        this->timers_->delete_event_time_timer(ns, cleanup_time(set[i]));
      }
      sources.push_back(ns);
    }
    merged.encode(ns_);
    if (!sources.empty()) contents_.merge(ns_, sources);
    contents_.set_namespace(ns_);
    contents_.add(v);
    kept.push_back(merged);
    window_set_->update(kept);
    arm(merged, wm);
  }

  void fire(const TimeWindow& w) {
    std::string ns;
    w.encode(ns);
    contents_.set_namespace(ns);
    std::optional<V> value = contents_.get();
    if (!value) return;
    collector_.set_timestamp(EventTime(w.max_timestamp()));
    try {
      fn_(this->current_key(), w, *value, collector_);
    } catch (const InvalidRecord& e) {
      // The window's result is rejected, not the task: failing would only
      // fail again after every restart.
      DeadLetter dl;
      dl.reason = std::string("window result rejected: ") + e.what();
      dl.origin = "operator " + this->context().info().operator_name;
      dl.payload = "key " + basic::payload_of(this->current_key()) + " window [" +
                   std::to_string(w.start) + ", " + std::to_string(w.end) + ")";
      this->context().dead_letter(std::move(dl));
    } catch (const std::exception& e) {
      this->context().fail(Status::internal("window function of '" +
                                            this->context().info().operator_name +
                                            "' threw: " + e.what()));
    }
  }

  void clear_window(const TimeWindow& w) {
    std::string ns;
    w.encode(ns);
    contents_.set_namespace(ns);
    contents_.clear();
    if (window_set_) {
      std::vector<TimeWindow> set = window_set_->value_or({});
      std::erase(set, w);
      if (set.empty()) window_set_->clear();
      else window_set_->update(set);
    }
  }

  void late(const IN& v, EventTime ts, int64_t wm) {
    if (late_) {
      late_->collect(v, ts);
      return;
    }
    this->context().metrics().late_records_dropped.fetch_add(1, std::memory_order_relaxed);
    reject(v, "late record: event time " + std::to_string(ts.ms()) +
                  " is behind the watermark " + std::to_string(wm) +
                  " by more than the allowed lateness of " +
                  format_duration(settings_.allowed_lateness));
  }

  void reject(const IN& v, std::string reason) { basic::dead_letter_for(this->context(), v, std::move(reason)); }

  WindowSettings settings_;
  Contents contents_;
  WindowFn fn_;
  basic::Collector<R> collector_;
  runtime::Output<IN>* late_ = nullptr;
  state::ValueState<std::vector<TimeWindow>>* window_set_ = nullptr;
  std::vector<TimeWindow> windows_;
  std::string ns_;
};

}  // namespace sluice::window
