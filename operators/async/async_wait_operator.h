// AsyncWaitOperator: calls an AsyncFunction for every record without
// blocking the task thread, keeps at most `capacity` records in flight,
// and emits the results in input order (ordered) or as they complete
// without crossing watermarks (unordered). Flink's AsyncWaitOperator.
//
// Threads: everything here runs on the task thread. Completions arrive from
// client threads through ResultFuture, which posts them to the task's
// mailbox (MailboxExecutor::execute); timeouts and retry delays are
// processing-time timers. At capacity the operator suspends its task's
// input; finish() yields to the mailbox until every record is done.
//
// Checkpoints: the records still in the operator (and the watermarks
// between them) are its operator state; after a restore they are called
// again. At another parallelism the records are split into contiguous
// runs, one per subtask (watermarks are then left to the sources).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/serde.h"
#include "engine/runtime/operator.h"
#include "operators/async/async_function.h"
#include "operators/async/async_metrics.h"
#include "operators/async/async_options.h"
#include "operators/async/async_state.h"

namespace sluice::async_io {

/// One async I/O subtask. Created by the job graph's factory on the task
/// that runs it; owns its copy of the user function. Task thread only.
template <class IN, class OUT>
class AsyncWaitOperator final : public runtime::OneInputOperator<IN>, private detail::AttemptTarget<OUT> {
 public:
  AsyncWaitOperator(std::unique_ptr<AsyncFunction<IN, OUT>> fn, AsyncOptions options,
                    AsyncRetryStrategy<OUT> retry = {})
      : fn_(std::move(fn)), opts_(options), retry_(std::move(retry)) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override {
    if (!restore.restored) return Status::ok();
    const auto& info = this->context().info();
    SLUICE_ASSIGN_OR_RETURN(restored_, (redistribute<IN>(restore, info.subtask, info.parallelism)));
    return Status::ok();
  }

  Status open() override {
    out_ = static_cast<runtime::Output<OUT>*>(this->outputs().at(0));
    gate_ = std::make_shared<detail::CompletionGate>(&this->context().mailbox());
    segments_.emplace_back();
    Status st = guarded("open", [&] {
      basic::RuntimeContext rc(this->context());
      return fn_->open(rc);
    });
    if (!st.is_ok()) return st;
    fn_open_ = true;
    metrics_ = std::make_unique<AsyncMetrics>(this->context().info(), opts_.capacity);
    last_publish_ns_ = monotonic_ns();
    schedule_publish();
    for (auto& item : restored_) {
      if (item.is_watermark) process_watermark(item.ts);
      else admit(std::move(item.value), item.ts);
    }
    restored_.clear();
    return Status::ok();
  }

  void process_element(const IN& value, EventTime ts) override { admit(value, ts); }

  void process_watermark(EventTime wm) override {
    if (opts_.mode == OutputMode::kOrdered) {
      if (queue_.empty()) {
        this->forward_watermark(wm);
      } else if (queue_.back().is_watermark) {
        queue_.back().wm = std::max(queue_.back().wm, wm);
      } else {
        queue_.push_back({kNone, true, wm});
      }
      return;
    }
    Segment& back = segments_.back();
    if (segments_.size() == 1 && back.pending == 0) {
      this->forward_watermark(wm);
    } else if (back.pending == 0 && back.done.empty()) {
      // Nothing since the previous watermark: it simply advances.
      Segment& prev = segments_[segments_.size() - 2];
      prev.wm = std::max(prev.wm, wm);
    } else {
      back.has_wm = true;
      back.wm = wm;
      segments_.emplace_back();
    }
  }

  /// Input ended: wait (running the mailbox and timers) until every record
  /// has left. Returns early, without error, if the task is stopping.
  Status finish() override {
    while (in_use_ > 0) {
      if (!this->context().mailbox().yield()) break;
    }
    publish();
    return Status::ok();
  }

  Result<std::string> snapshot_state(CheckpointId id) override {
    std::vector<StateItem<IN>> items;
    items.reserve(in_use_ + 1);
    if (opts_.mode == OutputMode::kOrdered) {
      for (const auto& q : queue_) {
        if (q.is_watermark) items.push_back(StateItem<IN>::watermark(q.wm));
        else items.push_back(StateItem<IN>::record(slots_[q.slot].value, slots_[q.slot].ts));
      }
    } else {
      std::vector<uint32_t> live;
      live.reserve(in_use_);
      for (uint32_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].phase != Phase::kFree) live.push_back(i);
      std::sort(live.begin(), live.end(), [&](uint32_t a, uint32_t b) { return slots_[a].seq < slots_[b].seq; });
      size_t k = 0;
      for (size_t s = 0; s < segments_.size(); ++s) {
        for (; k < live.size() && slots_[live[k]].segment == head_segment_ + s; ++k) {
          items.push_back(StateItem<IN>::record(slots_[live[k]].value, slots_[live[k]].ts));
        }
        if (segments_[s].has_wm) items.push_back(StateItem<IN>::watermark(segments_[s].wm));
      }
    }
    publish();
    return encode_state(items);
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    if (gate_) gate_->close();
    if (fn_open_) {
      (void)guarded("close", [&] {
        fn_->close();
        return Status::ok();
      });
    }
    if (suspended_) set_suspended(false);
    if (metrics_) publish();
    metrics_.reset();
  }

  /// Counters so far (in_flight as of the last publish; see in_flight()).
  const AsyncStats& stats() const { return stats_; }
  size_t in_flight() const { return in_use_; }

 private:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  enum class Phase : uint8_t { kFree, kCalling, kRetryWait, kTimeoutHandler, kDone };

  /// A record in the operator. Slots are reused (generation tells stale
  /// completions apart); `deadline_*` link the slot into the FIFO lists of
  /// overall and attempt deadlines (both timeouts are constants, so issue
  /// order is deadline order).
  struct Entry {
    IN value{};
    EventTime ts;
    uint32_t generation = 0;
    uint32_t attempt = 0;  // attempts started, the timeout handler included
    Phase phase = Phase::kFree;
    uint64_t seq = 0;
    uint64_t segment = 0;
    int64_t deadline = 0;
    int64_t attempt_deadline = 0;
    uint32_t prev[2] = {kNone, kNone};
    uint32_t next[2] = {kNone, kNone};
    bool linked[2] = {false, false};
    std::shared_ptr<detail::Attempt<OUT>> current;
    std::vector<OUT> results;
    Status last_error;
  };
  struct QueueItem {
    uint32_t slot = kNone;
    bool is_watermark = false;
    EventTime wm;
  };
  /// Unordered mode: the records between two watermarks.
  struct Segment {
    uint32_t pending = 0;        // records not done yet
    std::vector<uint32_t> done;  // done, waiting for earlier segments
    bool has_wm = false;         // the watermark that closes it
    EventTime wm;
  };
  /// Intrusive FIFO over slots_ (list 0: overall deadlines, 1: attempts).
  struct List {
    uint32_t head = kNone, tail = kNone;
  };

  // --- admission and attempts ------------------------------------------------
  template <class V>
  void admit(V&& value, EventTime ts) {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    Entry& e = slots_[slot];
    e.value = std::forward<V>(value);
    e.ts = ts;
    e.attempt = 0;
    e.seq = next_seq_++;
    e.last_error = Status::ok();
    ++in_use_;
    if (opts_.mode == OutputMode::kOrdered) {
      queue_.push_back({slot, false, EventTime()});
    } else {
      e.segment = head_segment_ + segments_.size() - 1;
      ++segments_.back().pending;
    }
    e.deadline = now() + opts_.timeout.count();
    link(0, slot);
    if (in_use_ >= static_cast<size_t>(opts_.capacity) && !suspended_) set_suspended(true);
    start_attempt(slot);
    maybe_publish();
  }

  uint64_t key_of(uint32_t slot) const { return (static_cast<uint64_t>(slots_[slot].generation) << 32) | slot; }

  std::shared_ptr<detail::Attempt<OUT>> new_attempt(uint32_t slot) {
    Entry& e = slots_[slot];
    if (e.current) e.current->done.store(true, std::memory_order_release);  // late completions are dropped
    auto a = std::make_shared<detail::Attempt<OUT>>();
    a->gate = gate_;
    a->target = this;
    a->entry = key_of(slot);
    a->attempt = ++e.attempt;
    e.current = a;
    return a;
  }

  void start_attempt(uint32_t slot) {
    Entry& e = slots_[slot];
    e.phase = Phase::kCalling;
    ++stats_.requests;
    auto a = new_attempt(slot);
    if (opts_.attempt_timeout.count() > 0) {
      int64_t at = now() + opts_.attempt_timeout.count();
      if (at < e.deadline) {
        e.attempt_deadline = at;
        link(1, slot);
      }
    }
    arm_timer();
    call_user_fn(slot, [&] { fn_->async_invoke(slots_[slot].value, ResultFuture<OUT>(a)); });
  }

  void on_attempt_done(uint64_t key, uint32_t attempt, detail::Outcome<OUT>&& o) override {
    uint32_t slot = static_cast<uint32_t>(key);
    if (closed_ || slot >= slots_.size()) return;
    Entry& e = slots_[slot];
    if (key_of(slot) != key || e.attempt != attempt) return;  // stale: timed out, retried or reused
    using Kind = typename detail::Outcome<OUT>::Kind;
    if (e.phase == Phase::kTimeoutHandler) {
      if (o.kind == Kind::kResults) finalize(slot, std::move(o.results), true);
      else if (o.kind == Kind::kDeadLetter) dead_letter(slot, with_timeout_detail(e, o.reason));
      else final_error(slot, o.error);
    } else if (e.phase == Phase::kCalling) {
      unlink(1, slot);
      if (o.kind == Kind::kResults) {
        if (retry_.should_retry_result(o.results) && retry_.has_attempt_left(e.attempt)) schedule_retry(slot);
        else finalize(slot, std::move(o.results), true);
      } else if (o.kind == Kind::kDeadLetter) {
        dead_letter(slot, o.reason);
      } else {
        attempt_failed(slot, std::move(o.error));
      }
    }
    maybe_publish();
  }

  void attempt_failed(uint32_t slot, Status error) {
    Entry& e = slots_[slot];
    ++stats_.errors;
    e.last_error = error;
    if (retry_.should_retry_error(error) && retry_.has_attempt_left(e.attempt)) schedule_retry(slot);
    else if (error.code() == StatusCode::kTimeout && e.phase == Phase::kCalling) enter_timeout(slot);
    else final_error(slot, error);
  }

  void schedule_retry(uint32_t slot) {
    Entry& e = slots_[slot];
    e.phase = Phase::kRetryWait;
    ++stats_.retries;
    uint64_t key = key_of(slot);
    uint32_t attempt = e.attempt;
    int64_t at = now() + retry_.delay_before_retry(static_cast<int>(attempt)).count();
    this->context().processing_time().schedule(at, [this, key, attempt](int64_t) {
      uint32_t s = static_cast<uint32_t>(key);
      if (closed_ || key_of(s) != key) return;
      if (slots_[s].phase == Phase::kRetryWait && slots_[s].attempt == attempt) start_attempt(s);
    });
  }

  // --- timeouts ----------------------------------------------------------------
  void arm_timer() {
    int64_t next = kNever;
    if (lists_[0].head != kNone) next = slots_[lists_[0].head].deadline;
    if (lists_[1].head != kNone) next = std::min(next, slots_[lists_[1].head].attempt_deadline);
    if (next == kNever || next >= armed_at_) return;
    armed_at_ = next;
    this->context().processing_time().schedule(next, [this](int64_t t) {
      if (closed_) return;
      armed_at_ = kNever;
      on_deadlines(t);
    });
  }

  void on_deadlines(int64_t t) {
    while (lists_[1].head != kNone && slots_[lists_[1].head].attempt_deadline <= t) {
      uint32_t slot = lists_[1].head;
      unlink(1, slot);
      if (slots_[slot].phase != Phase::kCalling) continue;
      attempt_failed(slot, Status::timeout("attempt " + std::to_string(slots_[slot].attempt) + " timed out after " +
                                           format_duration(opts_.attempt_timeout)));
    }
    while (lists_[0].head != kNone && slots_[lists_[0].head].deadline <= t) {
      uint32_t slot = lists_[0].head;
      unlink(0, slot);
      Phase p = slots_[slot].phase;
      if (p == Phase::kCalling || p == Phase::kRetryWait) enter_timeout(slot);
    }
    arm_timer();
    maybe_publish();
  }

  void enter_timeout(uint32_t slot) {
    ++stats_.timeouts;
    unlink(0, slot);
    unlink(1, slot);
    slots_[slot].phase = Phase::kTimeoutHandler;
    auto a = new_attempt(slot);
    call_user_fn(slot, [&] { fn_->timeout(slots_[slot].value, ResultFuture<OUT>(a)); });
  }

  std::string with_timeout_detail(const Entry& e, const std::string& reason) const {
    std::string r = reason + " (timeout " + format_duration(opts_.timeout) + ", " + std::to_string(e.attempt - 1) +
                    (e.attempt - 1 == 1 ? " attempt" : " attempts");
    if (!e.last_error.is_ok()) r += "; last error: " + e.last_error.to_string();
    return r + ")";
  }

  // --- leaving the operator --------------------------------------------------------
  void final_error(uint32_t slot, const Status& error) {
    Entry& e = slots_[slot];
    std::string what = "async call failed after " + std::to_string(e.attempt) +
                       (e.attempt == 1 ? " attempt: " : " attempts: ") + error.to_string();
    if (opts_.on_error == OnError::kFailJob) {
      // The record stays: it is part of the checkpoint the job restarts from.
      this->context().fail(Status(error.code(), what + " (operator '" + this->context().info().operator_name + "')"));
      return;
    }
    dead_letter(slot, what);
  }

  void dead_letter(uint32_t slot, std::string reason) {
    ++stats_.dead_letters;
    DeadLetter dl;
    dl.reason = std::move(reason);
    dl.origin = "operator " + this->context().info().operator_name;
    dl.payload = basic::payload_of(slots_[slot].value);
    this->context().dead_letter(std::move(dl));
    finalize(slot, {}, false);
  }

  void finalize(uint32_t slot, std::vector<OUT>&& results, bool completed) {
    Entry& e = slots_[slot];
    if (completed) ++stats_.completed;
    unlink(0, slot);
    unlink(1, slot);
    e.phase = Phase::kDone;
    if (e.current) e.current->done.store(true, std::memory_order_release);
    e.current.reset();
    e.results = std::move(results);
    if (opts_.mode == OutputMode::kOrdered) {
      drain_ordered();
      return;
    }
    Segment& seg = segments_[e.segment - head_segment_];
    --seg.pending;
    if (e.segment == head_segment_) {
      emit_and_release(slot);
    } else {
      seg.done.push_back(slot);
    }
    advance_segments();
  }

  void drain_ordered() {
    while (!queue_.empty()) {
      QueueItem& q = queue_.front();
      if (q.is_watermark) {
        EventTime wm = q.wm;
        queue_.pop_front();
        this->forward_watermark(wm);
        continue;
      }
      if (slots_[q.slot].phase != Phase::kDone) break;
      uint32_t slot = q.slot;
      queue_.pop_front();
      emit_and_release(slot);
    }
  }

  void advance_segments() {
    while (segments_.size() > 1 && segments_.front().pending == 0 && segments_.front().has_wm) {
      EventTime wm = segments_.front().wm;
      segments_.pop_front();
      ++head_segment_;
      this->forward_watermark(wm);
      std::vector<uint32_t> ready = std::move(segments_.front().done);
      segments_.front().done.clear();
      for (uint32_t s : ready) emit_and_release(s);
    }
  }

  void emit_and_release(uint32_t slot) {
    Entry& e = slots_[slot];
    for (const auto& r : e.results) out_->collect(r, e.ts);
    e.results.clear();
    e.phase = Phase::kFree;
    ++e.generation;
    free_.push_back(slot);
    --in_use_;
    if (suspended_ && in_use_ < static_cast<size_t>(opts_.capacity)) set_suspended(false);
  }

  // --- helpers -------------------------------------------------------------------------
  void link(int l, uint32_t slot) {
    Entry& e = slots_[slot];
    if (e.linked[l]) unlink(l, slot);
    e.linked[l] = true;
    e.prev[l] = lists_[l].tail;
    e.next[l] = kNone;
    if (lists_[l].tail != kNone) slots_[lists_[l].tail].next[l] = slot;
    else lists_[l].head = slot;
    lists_[l].tail = slot;
  }
  void unlink(int l, uint32_t slot) {
    Entry& e = slots_[slot];
    if (!e.linked[l]) return;
    e.linked[l] = false;
    if (e.prev[l] != kNone) slots_[e.prev[l]].next[l] = e.next[l];
    else lists_[l].head = e.next[l];
    if (e.next[l] != kNone) slots_[e.next[l]].prev[l] = e.prev[l];
    else lists_[l].tail = e.prev[l];
  }

  void set_suspended(bool on) {
    suspended_ = on;
    stats_.suspended = on;
    this->context().mailbox().set_input_suspended(on);
    if (on) suspended_since_ns_ = monotonic_ns();
    else stats_.suspended_ns += monotonic_ns() - suspended_since_ns_;
  }

  int64_t now() { return this->context().processing_time().now_ms(); }

  /// Runs user code for the record in `slot`: InvalidRecord sends the
  /// record to the dead-letter output, other exceptions fail the task.
  template <class Fn>
  void call_user_fn(uint32_t slot, Fn&& f) {
    try {
      f();
    } catch (const InvalidRecord& e) {
      if (slots_[slot].phase != Phase::kFree && slots_[slot].phase != Phase::kDone) dead_letter(slot, e.what());
    } catch (const std::exception& e) {
      this->context().fail(Status::internal("async function of '" + this->context().info().operator_name +
                                            "' threw: " + e.what()));
    } catch (...) {
      this->context().fail(Status::internal("async function of '" + this->context().info().operator_name +
                                            "' threw a non-standard exception"));
    }
  }
  template <class Fn>
  Status guarded(const char* what, Fn&& f) {
    try {
      return f();
    } catch (const std::exception& e) {
      return Status::internal(std::string("async function ") + what + " threw: " + e.what());
    } catch (...) {
      return Status::internal(std::string("async function ") + what + " threw a non-standard exception");
    }
  }

  void maybe_publish() {
    if ((++events_ & 1023) != 0) return;
    int64_t t = monotonic_ns();
    if (t - last_publish_ns_ >= 100'000'000) publish();
  }
  void publish() {
    if (!metrics_) return;
    last_publish_ns_ = monotonic_ns();
    stats_.in_flight = in_use_;
    AsyncStats s = stats_;
    if (suspended_) s.suspended_ns += last_publish_ns_ - suspended_since_ns_;
    metrics_->publish(s);
  }
  void schedule_publish() {
    this->context().processing_time().schedule(now() + 1000, [this](int64_t) {
      if (closed_) return;
      publish();
      schedule_publish();
    });
  }

  std::unique_ptr<AsyncFunction<IN, OUT>> fn_;
  AsyncOptions opts_;
  AsyncRetryStrategy<OUT> retry_;
  runtime::Output<OUT>* out_ = nullptr;
  std::shared_ptr<detail::CompletionGate> gate_;  // shared with every ResultFuture handed out
  bool fn_open_ = false;
  bool closed_ = false;

  std::deque<Entry> slots_;  // deque: entries never move
  std::vector<uint32_t> free_;
  size_t in_use_ = 0;
  uint64_t next_seq_ = 0;
  std::deque<QueueItem> queue_;     // ordered mode
  std::deque<Segment> segments_;    // unordered mode; front is segment head_segment_
  uint64_t head_segment_ = 0;
  List lists_[2];
  int64_t armed_at_ = kNever;
  std::vector<StateItem<IN>> restored_;

  bool suspended_ = false;
  int64_t suspended_since_ns_ = 0;
  AsyncStats stats_;
  std::unique_ptr<AsyncMetrics> metrics_;
  uint64_t events_ = 0;
  int64_t last_publish_ns_ = 0;
};

}  // namespace sluice::async_io
