// Sources: a Source<T> describes where records come from (immutable, built
// by the job); each source subtask creates a SourceReader<T> that reads its
// share (splits) of the input. The SourceOperator drives the reader from
// the task thread, assigns timestamps and generates watermarks per split.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/clock.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/watermark.h"
#include "engine/runtime/watermark_alignment.h"

namespace sluice::runtime {

enum class PollStatus { kMoreAvailable, kNothingAvailable, kEndOfInput };

/// Where a reader emits records. Task thread only.
template <class T>
class SourceOutput {
 public:
  virtual ~SourceOutput() = default;
  /// A record of split `split` (0 <= split < the declared split count).
  /// `source_ts` is the timestamp the source knows (Kafka record time) or
  /// EventTime::min().
  virtual void collect(const T& value, int split, EventTime source_ts = EventTime::min()) = 0;
  /// A record that cannot be turned into a T (goes to the dead-letter output).
  virtual void dead_letter(DeadLetter dl) = 0;
  /// The reader now reads `n` splits; watermarks are tracked per split.
  virtual void set_split_count(int n) = 0;
  /// Split `split` has no more records (a bounded split ended).
  virtual void split_finished(int split) = 0;
};

/// Reads one subtask's share of a source. Created, used and destroyed on the
/// task thread.
template <class T>
class SourceReader {
 public:
  virtual ~SourceReader() = default;
  /// Called once, after restore_state (if any).
  virtual Status open(OperatorContext& ctx, SourceOutput<T>& out) = 0;
  /// Emits what is available (one batch) and says whether to call again
  /// right away. May block briefly (at most ~10 ms) waiting for input.
  virtual Result<PollStatus> poll_next(SourceOutput<T>& out) = 0;
  /// Position to resume from, taken at a checkpoint barrier.
  virtual Result<std::string> snapshot_state(CheckpointId id) { return std::string(); }
  /// Positions of every subtask of the previous run (union), before open().
  virtual Status restore_state(const OperatorRestore& restore) { return Status::ok(); }
  virtual Status notify_checkpoint_complete(CheckpointId id) { return Status::ok(); }
  virtual void close() {}
};

template <class T>
class Source {
 public:
  virtual ~Source() = default;
  /// Kind and settings, e.g. "file:///data/clicks.ndjson" (graph hash, UI).
  virtual std::string description() const = 0;
  virtual bool bounded() const = 0;
  virtual std::unique_ptr<SourceReader<T>> create_reader() const = 0;
  /// Checks, where the job is submitted, that the input exists (a file
  /// source's path). Errors are permanent ones (is_permanent_error).
  /// Default: nothing to check.
  virtual Status check_input() const { return Status::ok(); }
};

/// Type-erased face of SourceOperator for the task loop.
class SourceDriver {
 public:
  virtual ~SourceDriver() = default;
  virtual Result<PollStatus> emit_next() = 0;
  /// The input ended: emit the final watermark.
  virtual void end_input() = 0;
  /// The watermark this source emitted last (EventTime::min() before the
  /// first, EventTime::max() once its input ended): the task's metric.
  virtual EventTime current_watermark() const = 0;
  /// Records this source has read and sent on so far (the task's
  /// records_in: a source task has no input gate).
  virtual uint64_t records_read() const = 0;
};

/// The head of a source vertex: polls the reader, stamps event time and
/// emits watermarks (after every poll batch in which they advanced, and on
/// a processing-time tick for idleness).
template <class T>
class SourceOperator final : public StreamOperator, public SourceDriver, public SourceOutput<T> {
 public:
  SourceOperator(std::shared_ptr<const Source<T>> source, WatermarkStrategy<T> strategy)
      : source_(std::move(source)), strategy_(std::move(strategy)) {}

  Status initialize_state(const OperatorRestore& restore) override {
    reader_ = source_->create_reader();
    return reader_->restore_state(restore);
  }

  Status open() override {
    out_ = static_cast<Output<T>*>(outputs().at(0));
    SLUICE_ASSIGN_OR_RETURN(guard_,
                            EventTimeGuard::resolve(strategy_.max_ahead, strategy_.floor_ms, context().job_config()));
    now_ms_hint_ = context().processing_time().now_ms();
    wall_ms_ = now_ms_hint_;
    splitless_since_ms_ = now_ms_hint_;
    if (!strategy_.alignment_group.empty()) {
      if (strategy_.alignment_max_drift.count() <= 0 || !strategy_.emit_watermarks) {
        return Status::invalid_argument("source " + context().info().operator_name +
                                        ": watermark alignment needs watermarks and a positive maximum drift");
      }
      alignment_ = WatermarkAlignment::instance().join(context().info().job_id, strategy_.alignment_group);
    }
    SLUICE_RETURN_IF_ERROR(reader_->open(context(), *this));
    if (strategy_.idleness.count() > 0) schedule_idle_check();
    return Status::ok();
  }

  Result<PollStatus> emit_next() override {
    // The guard's wall clock, read once per batch (an hour's bound needs no more).
    wall_ms_ = context().processing_time().now_ms();
    if (alignment_ && !idle_ && alignment_->should_pause(current_wm_.ms(), strategy_.alignment_max_drift.count())) {
      // Ahead of the group: read nothing this time (the task polls again
      // within a millisecond; barriers, timers and mail still run).
      paused_ = true;
      return PollStatus::kNothingAvailable;
    }
    if (paused_) {
      // Waiting for the others is not idleness.
      paused_ = false;
      for (auto& s : splits_) s.last_record_ms = std::max(s.last_record_ms, now_ms_hint_);
    }
    auto r = reader_->poll_next(*this);
    if (r.is_ok() && strategy_.emit_watermarks) maybe_emit_watermark();
    return r;
  }

  void end_input() override {
    current_wm_ = EventTime::max();
    if (idle_) set_idle(false);
    if (alignment_) alignment_->exclude();
    forward_watermark(EventTime::max());
  }

  EventTime current_watermark() const override { return current_wm_; }
  uint64_t records_read() const override { return records_read_; }

  Result<std::string> snapshot_state(CheckpointId id) override { return reader_->snapshot_state(id); }
  Status notify_checkpoint_complete(CheckpointId id) override {
    return reader_->notify_checkpoint_complete(id);
  }
  void close() override {
    if (reader_) reader_->close();
  }

  // SourceOutput
  void collect(const T& value, int split, EventTime source_ts) override {
    int64_t ts = strategy_.timestamp_assigner ? strategy_.timestamp_assigner(value, source_ts.ms())
                                              : source_ts.ms();
    if (std::string why = guard_.check(ts, wall_ms_); !why.empty()) {
      // Neither event time nor idleness moves for it.
      DeadLetter dl;
      dl.reason = std::move(why);
      dl.origin = "source " + context().info().operator_name + (split >= 0 ? " split " + std::to_string(split) : "");
      dl.payload = dead_letter_payload(value);
      context().dead_letter(std::move(dl));
      return;
    }
    if (split >= 0 && split < static_cast<int>(splits_.size())) {
      SplitState& s = splits_[split];
      if (ts > s.max_ts) s.max_ts = ts;
      s.seen = true;
      if (s.idle) s.idle = false;
      s.last_record_ms = now_ms_hint_;
    }
    if (idle_) set_idle(false);
    ++records_read_;
    out_->collect(value, EventTime(ts));
  }
  void dead_letter(DeadLetter dl) override { context().dead_letter(std::move(dl)); }
  void set_split_count(int n) override {
    int64_t now = context().processing_time().now_ms();
    if (n == 0 && !splits_.empty()) splitless_since_ms_ = now;
    while (static_cast<int>(splits_.size()) < n) splits_.push_back(SplitState{now});
    splits_.resize(n);
  }
  void split_finished(int split) override {
    if (split >= 0 && split < static_cast<int>(splits_.size())) splits_[split].finished = true;
  }

 private:
  struct SplitState {
    int64_t last_record_ms = 0;
    int64_t max_ts = INT64_MIN;
    bool seen = false;
    bool idle = false;
    bool finished = false;
  };

  // Watermark = min over active splits of (max_ts - bound - 1).
  void maybe_emit_watermark() {
    bool any_active = false;
    int64_t wm = INT64_MAX;
    for (const auto& s : splits_) {
      if (s.finished || s.idle) continue;
      any_active = true;
      int64_t w = s.seen ? s.max_ts - strategy_.out_of_orderness.count() - 1 : INT64_MIN;
      wm = std::min(wm, w);
    }
    if (!any_active) {
      // Every split is idle or done: let downstream ignore this source. A
      // reader without any split (more subtasks than Kafka partitions) is
      // idle once the idleness timeout passed without one.
      bool idle_now = splits_.empty() ? strategy_.idleness.count() > 0 &&
                                            now_ms_hint_ - splitless_since_ms_ >= strategy_.idleness.count()
                                      : !all_finished();
      if (idle_now && !idle_) set_idle(true);
      return;
    }
    if (wm != INT64_MIN && EventTime(wm) > current_wm_) {
      current_wm_ = EventTime(wm);
      forward_watermark(current_wm_);
    }
    if (alignment_) alignment_->report(current_wm_.ms());
  }
  bool all_finished() const {
    return std::all_of(splits_.begin(), splits_.end(), [](const SplitState& s) { return s.finished; });
  }
  void set_idle(bool idle) {
    idle_ = idle;
    if (alignment_) {
      if (idle) alignment_->exclude();
      else alignment_->report(current_wm_.ms());
    }
    StreamOperator::process_watermark_status(idle);
  }
  void schedule_idle_check() {
    auto& pts = context().processing_time();
    int64_t period = std::max<int64_t>(10, std::min<int64_t>(200, strategy_.idleness.count() / 2));
    pts.schedule(pts.now_ms() + period, [this](int64_t now) {
      now_ms_hint_ = now;
      for (auto& s : splits_) {
        if (paused_) s.last_record_ms = now;  // waiting for the alignment group is not idleness
        if (!s.finished && !s.idle && now - s.last_record_ms >= strategy_.idleness.count()) {
          s.idle = true;
        }
      }
      if (strategy_.emit_watermarks) maybe_emit_watermark();
      schedule_idle_check();
    });
  }

  std::shared_ptr<const Source<T>> source_;
  WatermarkStrategy<T> strategy_;
  std::unique_ptr<SourceReader<T>> reader_;
  Output<T>* out_ = nullptr;
  std::vector<SplitState> splits_;
  EventTime current_wm_ = EventTime::min();
  uint64_t records_read_ = 0;  // records_read()
  bool idle_ = false;
  EventTimeGuard guard_;
  int64_t wall_ms_ = 0;  // the guard's wall clock, per poll batch
  // Processing time of the last idleness tick: reading the clock per record
  // would cost more than the precision is worth.
  int64_t now_ms_hint_ = 0;
  int64_t splitless_since_ms_ = 0;  // since when the reader has had no split
  std::unique_ptr<WatermarkAlignment::Member> alignment_;  // with watermark alignment
  bool paused_ = false;  // the last emit_next waited for the alignment group
};

}  // namespace sluice::runtime
