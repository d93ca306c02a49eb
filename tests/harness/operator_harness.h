// Operator test harness: drives ONE operator instance without a task or a
// cluster, Flink-style (OneInputStreamOperatorTestHarness and
// TwoInputStreamOperatorTestHarness). The harness is
// the operator's OperatorContext: a manual clock drives processing time,
// keyed operators get a heap (or RocksDB) keyed backend for the key groups
// of the configured subtask, and everything the operator emits is captured —
// main output (records with timestamps and watermarks, in order), side
// outputs by tag, dead letters and fail() calls.
//
//   OneInputOperatorHarness<Click, Count> h(std::move(op), HarnessOptions::keyed_subtask());
//   h.register_side_output<Click>("late");
//   ASSERT_TRUE(h.open().is_ok());
//   h.process_element(click, 1'000);
//   h.process_watermark(9'999);
//   OperatorSnapshot snap = h.snapshot();
//   auto restored = OneInputOperatorHarness<Click, Count>::restored(make_op(), opts, snap);
//
// Snapshots hold the operator state (StreamOperator::snapshot_state) and
// the keyed state per key group, so a harness of another parallelism or
// subtask can be restored from them (rescaling); see OperatorSnapshot::merge.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/config.h"
#include "engine/common/json.h"
#include "engine/common/serde.h"
#include "engine/common/time.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/processing_time.h"
#include "state/heap_backend.h"
#include "state/snapshot.h"
#include "state/key_groups.h"
#include "tests/harness/keyed_snapshot.h"

namespace sluice {
/// gtest printer: watermarks and timestamps as numbers, not bytes.
inline void PrintTo(const EventTime& t, std::ostream* os) {
  if (t.is_min()) *os << "EventTime::min()";
  else if (t == EventTime::max()) *os << "EventTime::max()";
  else *os << "EventTime(" << t.ms() << ")";
}
}  // namespace sluice

namespace sluice::harness {

/// A misuse of the harness or an operator call that must not fail in a test
/// (e.g. snapshot_state returning an error). Thrown; gtest reports it.
class HarnessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How the harness presents itself to the operator. Value type.
struct HarnessOptions {
  /// Default false: the operator gets no keyed backend (keyed_backend() is null).
  bool keyed = false;
  /// Default 128; the number of key groups.
  int32_t max_parallelism = state::kDefaultMaxParallelism;
  /// Default 1 subtask, index 0: the backend owns every key group.
  int32_t parallelism = 1;
  int32_t subtask = 0;
  /// Default "operator-under-test"; appears in dead letters and failures.
  std::string operator_name = "operator-under-test";
  /// Default "harness-job".
  std::string job_name = "harness-job";
  /// Default 0: the manual clock's start, epoch ms.
  int64_t start_processing_time = 0;
  /// Default empty.
  Configuration job_config;
  /// Keyed operators: the backend. Default heap; RocksDB keeps its files in
  /// a scratch directory of the test process (removed at exit).
  state::BackendKind backend = state::BackendKind::kHeap;

  HarnessOptions& with_backend(state::BackendKind kind) {
    backend = kind;
    return *this;
  }
  /// Default true: dead_letters() keeps every dead letter. false: they are
  /// only counted (dead_letter_count()), for long runs.
  bool retain_dead_letters = true;

  /// Options of subtask `subtask` of a keyed operator with `parallelism`.
  static HarnessOptions keyed_subtask(int32_t parallelism = 1, int32_t subtask = 0,
                                      int32_t max_parallelism = state::kDefaultMaxParallelism) {
    HarnessOptions o;
    o.keyed = true;
    o.parallelism = parallelism;
    o.subtask = subtask;
    o.max_parallelism = max_parallelism;
    return o;
  }
};

/// What a checkpoint of one operator holds, as the harness sees it: the
/// operator-state blob of every subtask that contributed and the keyed
/// state per absolute key group. Value type; combine the snapshots of all
/// subtasks of one run with merge() before restoring at another parallelism.
struct OperatorSnapshot {
  int32_t max_parallelism = state::kDefaultMaxParallelism;
  /// Parallelism of the run that took the snapshot.
  int32_t parallelism = 1;
  /// snapshot_state() of each subtask, by subtask index.
  std::map<int32_t, std::string> operator_states;
  /// Heap: keyed state per key group.
  KeyGroupBlobs key_groups;
  /// RocksDB: the handles of each subtask's keyed state and the directory
  /// their files resolve against (one per checkpoint id).
  std::vector<state::KeyedStateHandle> keyed_handles;
  std::string keyed_dir;

  /// The snapshot of a whole run from the snapshots of its subtasks.
  /// Throws HarnessError if they disagree or overlap.
  static OperatorSnapshot merge(const std::vector<OperatorSnapshot>& parts);
};

/// One captured record.
template <class T>
struct StreamRecord {
  T value;
  EventTime ts;
  bool operator==(const StreamRecord&) const = default;
};

template <class T>
void PrintTo(const StreamRecord<T>& r, std::ostream* os) {
  if constexpr (JsonWritable<T>) *os << to_json(r.value);
  else *os << type_name<T>();
  *os << " @ ";
  PrintTo(r.ts, os);
}

/// One thing an operator emitted on an output, in order.
template <class T>
struct OutputEvent {
  enum class Kind { kRecord, kWatermark, kWatermarkStatus };
  Kind kind = Kind::kRecord;
  std::optional<T> value;  // kRecord only
  EventTime ts;            // the record's timestamp or the watermark
  bool idle = false;       // kWatermarkStatus only

  bool is_record() const { return kind == Kind::kRecord; }
  bool is_watermark() const { return kind == Kind::kWatermark; }
};

/// An Output<T> that keeps everything it receives, for assertions. Owned by
/// the harness; written on the test thread only.
template <class T>
class CapturedOutput final : public runtime::Output<T> {
 public:
  void collect(const T& value, EventTime ts) override {
    events_.push_back({OutputEvent<T>::Kind::kRecord, value, ts, false});
  }
  void emit_watermark(EventTime wm) override {
    events_.push_back({OutputEvent<T>::Kind::kWatermark, std::nullopt, wm, false});
  }
  void emit_watermark_status(bool idle) override {
    events_.push_back({OutputEvent<T>::Kind::kWatermarkStatus, std::nullopt, EventTime::min(), idle});
  }

  /// Records, watermarks and watermark-status changes in emission order.
  const std::vector<OutputEvent<T>>& events() const { return events_; }
  std::vector<StreamRecord<T>> records() const {
    std::vector<StreamRecord<T>> out;
    for (const auto& e : events_)
      if (e.is_record()) out.push_back({*e.value, e.ts});
    return out;
  }
  std::vector<T> values() const {
    std::vector<T> out;
    for (const auto& e : events_)
      if (e.is_record()) out.push_back(*e.value);
    return out;
  }
  std::vector<EventTime> watermarks() const {
    std::vector<EventTime> out;
    for (const auto& e : events_)
      if (e.is_watermark()) out.push_back(e.ts);
    return out;
  }
  size_t record_count() const {
    size_t n = 0;
    for (const auto& e : events_) n += e.is_record() ? 1 : 0;
    return n;
  }
  /// The records captured so far; forgets every event.
  std::vector<StreamRecord<T>> take_records() {
    auto out = records();
    events_.clear();
    return out;
  }
  void clear() { events_.clear(); }

 private:
  std::vector<OutputEvent<T>> events_;
};

/// The untyped part of the harness: it is the operator's OperatorContext
/// and drives the operator's lifecycle. Not copyable or movable (the
/// operator keeps a pointer to it). Test thread only. Owns the operator,
/// which is destroyed (after close()) before the clock, backend and outputs.
class OperatorHarnessBase : public runtime::OperatorContext {
 public:
  OperatorHarnessBase(const OperatorHarnessBase&) = delete;
  OperatorHarnessBase& operator=(const OperatorHarnessBase&) = delete;
  ~OperatorHarnessBase() override;

  // --- lifecycle ---------------------------------------------------------
  /// Loads `snapshot` (keyed state of this subtask's key groups now; the
  /// union of operator states at open()). Call before open().
  Status restore(const OperatorSnapshot& snapshot);
  /// setup + initialize_state (fresh or restored) + open.
  Status open();
  /// StreamOperator::process_watermark (one-input operators).
  void process_watermark(EventTime wm);
  void process_watermark(int64_t wm) { process_watermark(EventTime(wm)); }
  /// Moves the manual clock to `now_ms` and runs every processing-time
  /// callback that is due (in time order). Time never goes back.
  void set_processing_time(int64_t now_ms);
  void advance_processing_time(int64_t delta_ms) { set_processing_time(clock_.now_ms() + delta_ms); }
  /// The input ended: StreamOperator::finish(). Send the final watermark
  /// (EventTime::max()) first if the test models a bounded source.
  Status end_input();
  /// StreamOperator::snapshot_state_async (its asynchronous part run at once) plus the keyed state of every owned
  /// key group. Throws HarnessError if the operator's snapshot fails.
  OperatorSnapshot snapshot(CheckpointId id = CheckpointId(1));
  Status notify_checkpoint_complete(CheckpointId id);
  /// StreamOperator::close(); also done by the destructor if needed.
  void close();

  // --- what the operator did -----------------------------------------------
  const std::vector<DeadLetter>& dead_letters() const { return dead_letters_; }
  /// Every dead letter so far, retained or not.
  uint64_t dead_letter_count() const { return dead_letter_count_; }
  /// Every fail() call in order (the runtime would keep only the first).
  const std::vector<Status>& failures() const { return failures_; }
  /// The registered side output `tag` with element type X. Throws
  /// HarnessError if it was not registered, or with another type.
  template <class X>
  CapturedOutput<X>& captured_side_output(std::string_view tag) {
    for (auto& [t, out] : sides_) {
      if (t != tag) continue;
      auto* typed = dynamic_cast<CapturedOutput<X>*>(out.get());
      if (!typed) throw HarnessError("side output '" + t + "' has another element type");
      return *typed;
    }
    throw HarnessError("side output '" + std::string(tag) + "' is not registered");
  }
  /// Declares side output `tag` carrying X (like a consumer in the job graph);
  /// undeclared tags are null for the operator. Call before open().
  template <class X>
  CapturedOutput<X>& register_side_output(std::string tag) {
    if (opened_) throw HarnessError("register side outputs before open()");
    auto out = std::make_unique<CapturedOutput<X>>();
    auto* raw = out.get();
    sides_.emplace_back(std::move(tag), std::move(out));
    return *raw;
  }

  // --- what the operator sees ----------------------------------------------
  ManualClock& clock() { return clock_; }
  /// The operator's mailbox: actions other threads posted wait here until
  /// the test runs them (run_pending) or the operator yields.
  runtime::QueueMailboxExecutor& mailbox_queue() { return mailbox_; }
  /// The heap keyed backend, or null if the operator is not keyed or on RocksDB.
  state::HeapKeyedStateBackend* heap_backend() {
    return dynamic_cast<state::HeapKeyedStateBackend*>(backend_.get());
  }
  runtime::StreamOperator& op() { return *op_; }
  const HarnessOptions& options() const { return options_; }

  // --- OperatorContext ---------------------------------------------------
  const runtime::OperatorInfo& info() const override { return info_; }
  const Configuration& job_config() const override { return options_.job_config; }
  runtime::ProcessingTimeService& processing_time() override { return pts_; }
  runtime::MailboxExecutor& mailbox() override { return mailbox_; }
  state::KeyedStateBackend* keyed_backend() override { return backend_.get(); }
  void dead_letter(DeadLetter dl) override;
  void fail(Status st) override { failures_.push_back(std::move(st)); }
  runtime::OutputBase* side_output(std::string_view tag) override;
  runtime::OperatorMetrics& metrics() override { return metrics_; }

 protected:
  OperatorHarnessBase(std::unique_ptr<runtime::StreamOperator> op, HarnessOptions options,
                      std::unique_ptr<runtime::OutputBase> main_output);
  runtime::OutputBase* main_output() { return main_output_.get(); }
  void require_open(const char* what) const {
    if (!opened_ || closed_) throw HarnessError(std::string(what) + " needs an open harness");
  }

 private:
  HarnessOptions options_;
  runtime::OperatorInfo info_;
  ManualClock clock_;
  runtime::ProcessingTimeService pts_;
  runtime::QueueMailboxExecutor mailbox_;
  std::unique_ptr<state::KeyedStateBackend> backend_;
  std::vector<DeadLetter> dead_letters_;
  uint64_t dead_letter_count_ = 0;
  std::vector<Status> failures_;
  runtime::OperatorMetrics metrics_;
  std::unique_ptr<runtime::OutputBase> main_output_;
  std::vector<std::pair<std::string, std::unique_ptr<runtime::OutputBase>>> sides_;
  std::optional<runtime::OperatorRestore> restore_;
  bool opened_ = false;
  bool closed_ = false;
  // Last: destroyed first, while everything it points to is still alive.
  std::unique_ptr<runtime::StreamOperator> op_;
};

/// Harness of an operator with one input of IN and a main output of OUT
/// (the operator must be a runtime::OneInputOperator<IN>).
template <class IN, class OUT>
class OneInputOperatorHarness final : public OperatorHarnessBase {
 public:
  explicit OneInputOperatorHarness(std::unique_ptr<runtime::StreamOperator> op,
                                   HarnessOptions options = {})
      : OperatorHarnessBase(std::move(op), std::move(options),
                            std::make_unique<CapturedOutput<OUT>>()) {
    sink_ = static_cast<runtime::ElementSink<IN>*>(this->op().element_sink(0));
    if (!sink_) throw HarnessError("the operator has no input 0");
    out_ = static_cast<CapturedOutput<OUT>*>(main_output());
  }

  /// A fresh, not yet opened harness restored from `snapshot`. The options
  /// may name another parallelism and subtask (rescaling). Register side
  /// outputs on it, then open().
  static std::unique_ptr<OneInputOperatorHarness> restored(
      std::unique_ptr<runtime::StreamOperator> op, HarnessOptions options,
      const OperatorSnapshot& snapshot) {
    auto h = std::make_unique<OneInputOperatorHarness>(std::move(op), std::move(options));
    Status st = h->restore(snapshot);
    if (!st.is_ok()) throw HarnessError("restore failed: " + st.to_string());
    return h;
  }

  void process_element(const IN& value, EventTime ts) {
    require_open("process_element");
    sink_->process_element(value, ts);
  }
  void process_element(const IN& value, int64_t ts) { process_element(value, EventTime(ts)); }

  CapturedOutput<OUT>& output() { return *out_; }

 private:
  CapturedOutput<OUT>* out_ = nullptr;  // owned by the base
  runtime::ElementSink<IN>* sink_ = nullptr;
};

/// Harness of an operator with two inputs (a runtime::TwoInputOperator<IN1,
/// IN2, ...>) and a main output of OUT. Watermarks are given per input, as
/// the task's watermark valve would; the operator combines them.
template <class IN1, class IN2, class OUT>
class TwoInputOperatorHarness final : public OperatorHarnessBase {
 public:
  explicit TwoInputOperatorHarness(std::unique_ptr<runtime::StreamOperator> op,
                                   HarnessOptions options = {})
      : OperatorHarnessBase(std::move(op), std::move(options),
                            std::make_unique<CapturedOutput<OUT>>()) {
    sink1_ = static_cast<runtime::ElementSink<IN1>*>(this->op().element_sink(0));
    sink2_ = static_cast<runtime::ElementSink<IN2>*>(this->op().element_sink(1));
    if (!sink1_ || !sink2_) throw HarnessError("the operator does not have two inputs");
    out_ = static_cast<CapturedOutput<OUT>*>(main_output());
  }

  /// A fresh, not yet opened harness restored from `snapshot` (any
  /// parallelism and subtask in `options`).
  static std::unique_ptr<TwoInputOperatorHarness> restored(
      std::unique_ptr<runtime::StreamOperator> op, HarnessOptions options,
      const OperatorSnapshot& snapshot) {
    auto h = std::make_unique<TwoInputOperatorHarness>(std::move(op), std::move(options));
    Status st = h->restore(snapshot);
    if (!st.is_ok()) throw HarnessError("restore failed: " + st.to_string());
    return h;
  }

  void process_element1(const IN1& value, EventTime ts) {
    require_open("process_element1");
    sink1_->process_element(value, ts);
  }
  void process_element1(const IN1& value, int64_t ts) { process_element1(value, EventTime(ts)); }
  void process_element2(const IN2& value, EventTime ts) {
    require_open("process_element2");
    sink2_->process_element(value, ts);
  }
  void process_element2(const IN2& value, int64_t ts) { process_element2(value, EventTime(ts)); }
  /// The watermark of input 1 (index 0) or 2 (index 1).
  void process_watermark1(int64_t wm) { watermark_input(0, EventTime(wm)); }
  void process_watermark2(int64_t wm) { watermark_input(1, EventTime(wm)); }
  /// Input 1 or 2 became idle (true) or active again (false).
  void set_idle1(bool idle) { status_input(0, idle); }
  void set_idle2(bool idle) { status_input(1, idle); }
  /// Input 1 or 2 ended: its watermark goes to EventTime::max(), as the
  /// task's valve sends for a finished input.
  void end_input1() { watermark_input(0, EventTime::max()); }
  void end_input2() { watermark_input(1, EventTime::max()); }

  CapturedOutput<OUT>& output() { return *out_; }

 private:
  void watermark_input(int index, EventTime wm) {
    require_open("process_watermark");
    op().process_watermark_input(index, wm);
  }
  void status_input(int index, bool idle) {
    require_open("set_idle");
    op().process_watermark_status_input(index, idle);
  }

  CapturedOutput<OUT>* out_ = nullptr;  // owned by the base
  runtime::ElementSink<IN1>* sink1_ = nullptr;
  runtime::ElementSink<IN2>* sink2_ = nullptr;
};

/// Key group of `key` as KeySelector serializes it.
template <class K>
KeyGroup key_group_of(const K& key, int32_t max_parallelism = state::kDefaultMaxParallelism) {
  return state::key_group_for_key(serialize(key), max_parallelism);
}

/// The subtask that receives records with `key` (hash partitioning).
template <class K>
int32_t subtask_for_key(const K& key, int32_t parallelism,
                        int32_t max_parallelism = state::kDefaultMaxParallelism) {
  return state::subtask_for_key_group(max_parallelism, parallelism,
                                      key_group_of(key, max_parallelism));
}

}  // namespace sluice::harness
