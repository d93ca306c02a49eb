// The window operator.
//
// Per key, records are assigned to windows (tumbling, sliding or merging
// session windows) and kept in window contents — an accumulator
// (incremental aggregation) or the list of records (full-window function).
// A window fires when the watermark passes its end; with allowed lateness
// its state is kept that much longer and every late record that still
// fits fires an updated result. Records later than that go to the late
// side output if the job asked for one, otherwise to the dead-letter
// output: never dropped silently.
//
// Two options for results that must be seen before a window is complete:
//  - early firing (Flink's ContinuousProcessingTimeTrigger): every
//    `early_firing` of processing time (aligned to its multiples), a window
//    that received records since it last fired fires its current result;
//    when the watermark passes its end or its lateness, it fires only if
//    something is still unreported. Late records within the allowed
//    lateness wait for the next early firing instead of firing one result
//    each. No result repeats the previous one; consumers read results as
//    "latest per (key, window) wins".
//  - retractions (merging windows): when windows that already fired (on
//    time, late or early) are absorbed into a merged window (a late record
//    bridging two sessions, or extending one), a retraction function sees
//    each of them with what it held and may emit a record that withdraws
//    its result; the merged window is a new window that fires when its own
//    time comes. Upsert and changelog consumers stay exact.
//
// Processing-time windows (tumbling, sliding; `on_processing_time()`
// assigners): the subtask's clock when a record arrives picks its windows
// (its event time is not used), and a window [start, end) fires as soon as
// the clock reaches `end` — so no record joins a window after it fired,
// while the clock runs forward. Nothing is late; watermarks pass through
// untouched. When a bounded input ends, the windows still open fire at
// once (finish()): their records are not lost. Early firing and allowed
// lateness do not apply (the API refuses them).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
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
  /// Default 0 (off): fire windows that changed every this much processing
  /// time, aligned to multiples of it, before (and after) the watermark
  /// reaches their end.
  Duration early_firing{0};
};

/// A window of a merging assigner and the window whose namespace holds its
/// contents (its "state window", Flink's MergingWindowSet): a merge keeps
/// the contents where one of the merged windows had them, so a session that
/// grows by one record costs one contents update, not a copy.
struct MergedWindow {
  TimeWindow window;
  TimeWindow state;
  SLUICE_FIELDS(window, state)
};

/// Window contents as an accumulator per window (incremental aggregation).
/// PreAggregatedContents (local_combiner.h) extends it with partials.
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

 protected:
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

namespace detail {
// The records a window operator's contents take: its input, or for
// pre-aggregated contents (input = WindowPartial) the records before combining.
template <class C, class IN, class = void>
struct RecordOf {
  using type = IN;
};
template <class C, class IN>
struct RecordOf<C, IN, std::void_t<typename C::Record>> {
  using type = typename C::Record;
};
}  // namespace detail

/// The window operator (see the file comment). IN is the record type, or
/// WindowPartial<K, Record, ACC> behind a LocalWindowCombiner (Contents =
/// PreAggregatedContents): a partial is folded into its window's contents,
/// a raw record in it is processed as an uncombined record. One instance
/// per subtask, task thread only, owned by the operator chain.
template <class K, class IN, class Contents, class R>
class WindowOperator final : public runtime::KeyedOneInputOperator<K, IN> {
  using Base = runtime::KeyedOneInputOperator<K, IN>;

 public:
  using V = typename Contents::Value;
  using Record = typename detail::RecordOf<Contents, IN>::type;
  static constexpr bool kPartials = !std::is_same_v<Record, IN>;
  /// Emits the result(s) of one firing of one window.
  using WindowFn = std::function<void(const K&, const TimeWindow&, const V&, basic::Collector<R>&)>;
  /// Withdraws the result of window `old`, which fired and which a merge
  /// absorbed into `merged`; `value` is what `old` held. May emit nothing.
  using RetractFn = std::function<void(const K&, const TimeWindow& old, const V& value,
                                       const TimeWindow& merged, basic::Collector<R>&)>;

  WindowOperator(std::shared_ptr<const runtime::KeySelector<IN, K>> ks, WindowSettings settings,
                 Contents contents, WindowFn fn, RetractFn retract = nullptr)
      : Base(std::move(ks)),
        settings_(std::move(settings)),
        contents_(std::move(contents)),
        fn_(std::move(fn)),
        retract_(std::move(retract)) {}

  Status open() override {
    SLUICE_RETURN_IF_ERROR(Base::open());
    contents_.open(*this->backend_);
    if (settings_.assigner.is_merging()) {
      window_set_ = state::get_value_state(
          *this->backend_, state::ValueStateDescriptor<std::vector<MergedWindow>>{"merging-windows", {}});
      // Whether a window fired is known from the watermark, unless it may
      // have fired early: then it is kept per window.
      if (retract_ && early()) {
        emitted_ = state::get_value_state(*this->backend_,
                                          state::ValueStateDescriptor<bool>{"window-emitted", {}});
      }
    }
    if (early()) {
      early_timer_ = state::get_value_state(*this->backend_,
                                            state::ValueStateDescriptor<int64_t>{"window-early-timer", {}});
    }
    collector_.set_output(static_cast<runtime::Output<R>*>(this->outputs().at(0)));
    if (settings_.late_tag) {
      late_ = static_cast<runtime::Output<Record>*>(this->context().side_output(*settings_.late_tag));
    }
    return Status::ok();
  }

  void process_element(const IN& v, EventTime ts) override {
    auto select_key = [&] { return this->set_current_key_from(v); };
    if constexpr (kPartials) {
      if (!v.raw) {
        if (select_key()) process_partial(v);
        return;
      }
      process_record(*v.raw, ts, select_key);
    } else {
      process_record(v, ts, select_key);
    }
  }

  template <class SelectKey>
  void process_record(const Record& v, EventTime ts, SelectKey&& select_key) {
    if (settings_.assigner.is_processing_time()) {
      process_on_processing_time(v, select_key);
      return;
    }
    if (ts.is_min()) {
      reject(v, "record has no event timestamp; give the source a timestamp assigner");
      return;
    }
    if (!select_key()) return;
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
      state_ns_ = ns_;
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
    const bool on_time = t.ts == w.max_timestamp();
    const bool cleanup = t.ts == cleanup_time(w);
    if (!on_time && !cleanup) return;
    // With early firing only what was not reported yet fires (at the end,
    // or before the state goes).
    if (early() ? this->take_early_timer(t.ns, true) : on_time) fire(w, state_ns_of(w));
    if (cleanup || (on_time && settings_.allowed_lateness.count() == 0)) clear_window(w);
  }
  /// An early firing: the window fires its current result if it still
  /// holds one (it may have been merged away or cleared meanwhile).
  void on_processing_time(const state::TimerEntry& t) override {
    TimeWindow w;
    if (!TimeWindow::decode(t.ns, w)) {
      this->context().fail(Status::corruption("window timer with a bad namespace"));
      return;
    }
    this->set_current_key_from_timer(t);
    if (settings_.assigner.is_processing_time()) {
      fire(w, t.ns);
      clear_window(w);
      return;
    }
    if (this->take_early_timer(t.ns, false)) fire(w, state_ns_of(w));
  }

  /// End of input: processing-time windows fire now, whatever the clock.
  Status finish() override {
    if (settings_.assigner.is_processing_time()) this->timers_->fire_all_processing_timers();
    return Status::ok();
  }

 private:
  int64_t cleanup_time(const TimeWindow& w) const {
    return (EventTime(w.max_timestamp()) + settings_.allowed_lateness).ms();
  }
  bool is_late(const TimeWindow& w, int64_t wm) const { return cleanup_time(w) <= wm; }

  bool early() const { return settings_.early_firing.count() > 0; }

  // A partial accumulator of one window from a LocalWindowCombiner, which
  // sends one only for a window its watermark has not reached: the window
  // has not fired here either (this operator's watermark is at most the
  // combiner's), so it is never late.
  template <class P>
  void process_partial(const P& p) {
    const TimeWindow w{p.start, p.end};
    const int64_t wm = this->timers_->current_watermark().ms();
    if (is_late(w, wm)) [[unlikely]] {
      this->context().fail(Status::internal(
          "a pre-aggregated partial of window [" + std::to_string(w.start) + ", " + std::to_string(w.end) +
          ") reached '" + this->context().info().operator_name + "' behind its watermark " + std::to_string(wm)));
      return;
    }
    w.encode(ns_);
    state_ns_ = ns_;
    contents_.set_namespace(ns_);
    contents_.add_partial(p.acc);
    arm(w, wm);
  }

  // A record for processing-time windows: the clock picks the windows; the
  // timer at a window's end fires it (registered once per key and window).
  template <class SelectKey>
  void process_on_processing_time(const Record& v, SelectKey&& select_key) {
    if (!select_key()) return;
    settings_.assigner.assign(this->timers_->current_processing_time(), windows_);
    for (const TimeWindow& w : windows_) {
      w.encode(ns_);
      contents_.set_namespace(ns_);
      contents_.add(v);
      this->timers_->register_processing_time_timer(ns_, w.end);
    }
  }

  // The namespace of window w's contents: its own, or for merging windows
  // the state window the set maps it to (empty if w is not in the set).
  std::string state_ns_of(const TimeWindow& w) {
    std::string ns;
    if (!window_set_) {
      w.encode(ns);
      return ns;
    }
    for (const MergedWindow& m : window_set_->value_or({})) {
      if (m.window == w) {
        m.state.encode(ns);
        break;
      }
    }
    return ns;
  }

  // Registers the timers of window w (ns_ holds its namespace, state_ns_
  // its contents'), or fires it now if the watermark already passed its end
  // (a late record within the allowed lateness: an updated result; with
  // early firing, at the next one).
  void arm(const TimeWindow& w, int64_t wm) {
    if (w.max_timestamp() <= wm) {
      if (!early()) fire(w, state_ns_);
    } else {
      this->timers_->register_event_time_timer(ns_, w.max_timestamp());
    }
    if (early()) {
      // One pending early firing per window, at the next multiple of the
      // interval: every change until then shares it.
      early_timer_->set_namespace(ns_);
      if (!early_timer_->value()) {
        const int64_t every = settings_.early_firing.count();
        const int64_t now = this->timers_->current_processing_time();
        const int64_t at = now - now % every + every;
        this->timers_->register_processing_time_timer(ns_, at);
        early_timer_->update(at);
      }
    }
    if (settings_.allowed_lateness.count() > 0) {
      this->timers_->register_event_time_timer(ns_, cleanup_time(w));
    }
  }

  // Whether window `ns` has changes no firing reported yet (a pending
  // early firing); forgets it, and deletes its timer if `cancel`.
  bool take_early_timer(std::string_view ns, bool cancel) {
    early_timer_->set_namespace(ns);
    std::optional<int64_t> at = early_timer_->value();
    if (!at) return false;
    early_timer_->clear();
    if (cancel) this->timers_->delete_processing_time_timer(ns, *at);
    return true;
  }

  // Whether window w (of the current key) has emitted a result.
  bool has_fired(const TimeWindow& w, std::string_view ns, int64_t wm) {
    if (w.max_timestamp() <= wm) return true;
    if (!emitted_) return false;
    emitted_->set_namespace(ns);
    return emitted_->value().value_or(false);
  }

  void process_merging(const Record& v, EventTime ts, int64_t wm) {
    std::vector<MergedWindow> set = window_set_->value_or({});
    std::vector<TimeWindow> windows;
    windows.reserve(set.size());
    for (const MergedWindow& m : set) windows.push_back(m.window);
    settings_.assigner.assign(ts.ms(), windows_);
    const WindowMerge m = merge_window(windows, windows_.front());
    const TimeWindow& merged = m.merged;
    if (is_late(merged, wm)) {
      late(v, ts, wm);
      return;
    }
    // The merged window keeps the contents of the first window it absorbs;
    // the others' contents are merged into them.
    const TimeWindow state = m.absorbed.empty() ? merged : set[m.absorbed.front()].state;
    std::vector<std::string> sources;
    std::vector<MergedWindow> kept;
    std::string ns, sns;
    size_t next = 0;
    for (size_t i = 0; i < set.size(); ++i) {
      if (next >= m.absorbed.size() || m.absorbed[next] != i) {
        kept.push_back(set[i]);
        continue;
      }
      ++next;
      set[i].state.encode(sns);
      if (!(set[i].state == state)) sources.push_back(sns);
      if (set[i].window == merged) continue;
      set[i].window.encode(ns);
      if (retract_ && has_fired(set[i].window, ns, wm)) retract(set[i].window, sns, merged);
      if (emitted_) {
        emitted_->set_namespace(ns);
        emitted_->clear();
      }
      if (early()) this->take_early_timer(ns, true);
      this->timers_->delete_event_time_timer(ns, set[i].window.max_timestamp());
      if (settings_.allowed_lateness.count() > 0) {
        this->timers_->delete_event_time_timer(ns, cleanup_time(set[i].window));
      }
    }
    merged.encode(ns_);
    state.encode(state_ns_);
    if (!sources.empty()) contents_.merge(state_ns_, sources);
    contents_.set_namespace(state_ns_);
    contents_.add(v);
    kept.push_back({merged, state});
    window_set_->update(kept);
    arm(merged, wm);
  }

  void retract(const TimeWindow& old, std::string_view ns, const TimeWindow& merged) {
    contents_.set_namespace(ns);
    std::optional<V> value = contents_.get();
    if (!value) return;
    collector_.set_timestamp(EventTime(old.max_timestamp()));
    guarded(old, [&] { retract_(this->current_key(), old, *value, merged, collector_); });
  }

  // Fires window w, whose contents are in namespace `state_ns`.
  void fire(const TimeWindow& w, std::string_view state_ns) {
    if (state_ns.empty()) return;  // merged away or cleared meanwhile
    contents_.set_namespace(state_ns);
    std::optional<V> value = contents_.get();
    if (!value) return;
    collector_.set_timestamp(EventTime(w.max_timestamp()));
    if (emitted_) {
      std::string ns;
      w.encode(ns);
      emitted_->set_namespace(ns);
      emitted_->update(true);
    }
    guarded(w, [&] { fn_(this->current_key(), w, *value, collector_); });
  }

  // Runs a window or retraction function of window w: InvalidRecord makes
  // the result a dead letter, anything else fails the task.
  template <class F>
  void guarded(const TimeWindow& w, F&& f) {
    try {
      f();
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
    const std::string sns = state_ns_of(w);
    if (!sns.empty()) {
      contents_.set_namespace(sns);
      contents_.clear();
    }
    if (emitted_) {
      emitted_->set_namespace(ns);
      emitted_->clear();
    }
    if (early()) this->take_early_timer(ns, true);
    if (window_set_) {
      std::vector<MergedWindow> set = window_set_->value_or({});
      std::erase_if(set, [&](const MergedWindow& m) { return m.window == w; });
      if (set.empty()) window_set_->clear();
      else window_set_->update(set);
    }
  }

  void late(const Record& v, EventTime ts, int64_t wm) {
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

  void reject(const Record& v, std::string reason) { basic::dead_letter_for(this->context(), v, std::move(reason)); }

  WindowSettings settings_;
  Contents contents_;
  WindowFn fn_;
  RetractFn retract_;
  basic::Collector<R> collector_;
  runtime::Output<Record>* late_ = nullptr;
  state::ValueState<std::vector<MergedWindow>>* window_set_ = nullptr;  // merging: window -> state window
  state::ValueState<bool>* emitted_ = nullptr;  // merging + early firing + retractions only
  state::ValueState<int64_t>* early_timer_ = nullptr;  // early firing: the pending timer of a window
  std::vector<TimeWindow> windows_;
  std::string ns_;        // the current window's namespace (timers)
  std::string state_ns_;  // where its contents are
};

}  // namespace sluice::window
