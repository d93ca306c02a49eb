// MailboxExecutor: how an operator hands work back to its task thread and
// paces its own input, so that waiting never blocks barriers, timers or
// watermarks (Flink's MailboxExecutor).
//
// Typical uses:
//  - async I/O: a client callback thread posts the completion with
//    execute(); the action runs on the task thread and emits the result;
//  - capacity: an operator at capacity calls set_input_suspended(true) and
//    the task stops feeding it records until it calls it with false (from a
//    completion action); mailbox actions, processing-time timers and source
//    checkpoint triggers keep running meanwhile;
//  - finish(): waits for in-flight work with `while (pending) if (!yield()) break;`;
//  - retries with backoff: schedule the retry on the ProcessingTimeService
//    (OperatorContext::processing_time()) and suspend input until it ran,
//    instead of sleeping on the task thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/runtime/processing_time.h"

namespace sluice::runtime {

/// An operator's handle on its task's mailbox. Handed out by
/// OperatorContext::mailbox(); valid from setup until close(). execute() is
/// thread-safe; everything else is for the task thread only.
class MailboxExecutor {
 public:
  using Action = std::function<void()>;
  virtual ~MailboxExecutor() = default;

  /// Any thread: runs `action` on the task thread between records, in the
  /// order posted. The mailbox is bounded: a thread other than the task
  /// thread blocks while it is full (so never call it holding a lock the
  /// task thread may wait for). Returns false without queueing once the
  /// task is shutting down (cancelled, failed or closed); the caller then
  /// cleans up itself. Actions still queued when the task ends are dropped
  /// (destroyed, not run). `description` names the action in errors and logs.
  virtual bool execute(Action action, std::string_view description = {}) = 0;
  /// Any thread: posts `actions` as one mailbox entry (one lock, one
  /// wake-up, one slot of the bound) that runs them in order; for a client
  /// thread that completes many calls at once. Same result as execute().
  bool execute_batch(std::vector<Action> actions, std::string_view description = {}) {
    if (actions.empty()) return true;
    if (actions.size() == 1) return execute(std::move(actions.front()), description);
    return execute(
        [batch = std::move(actions)]() mutable {
          for (auto& a : batch) a();
        },
        description);
  }

  /// Task thread: runs queued actions and due processing-time callbacks,
  /// waiting (without busy-looping) until at least one ran. Returns false at
  /// once if the task is stopping: the caller must stop waiting. In a task,
  /// only the actions and timers of this operator and of the operators
  /// chained after it run (never an upstream operator's, nor a checkpoint),
  /// so it is safe in the middle of process_element and in finish().
  virtual bool yield() = 0;
  /// Task thread: like yield() but never waits; true if something ran.
  virtual bool try_yield() = 0;

  /// Task thread: while any operator of a task has its input suspended the
  /// task reads no input (records, and the watermarks and barriers queued
  /// behind them) and polls no source; mailbox actions, timers and source
  /// checkpoint triggers keep running. Each operator has its own flag.
  virtual void set_input_suspended(bool suspended) = 0;
  virtual bool input_suspended() const = 0;
};

/// A MailboxExecutor whose owner runs the queued actions when it chooses:
/// for tests and fake operator contexts. execute() is thread-safe; run
/// methods belong to the owner's thread. yield() waits at most
/// `max_wait_ms` (default 10 s) for an action, then returns false. Given
/// `timers` (on a real-time clock), yield() and try_yield() also fire its
/// due callbacks, as a task does.
class QueueMailboxExecutor final : public MailboxExecutor {
 public:
  explicit QueueMailboxExecutor(int64_t max_wait_ms = 10'000, ProcessingTimeService* timers = nullptr)
      : max_wait_ms_(max_wait_ms), timers_(timers) {}

  bool execute(Action action, std::string_view description = {}) override {
    {
      std::lock_guard lk(mu_);
      if (closed_) return false;
      queue_.push_back(std::move(action));
    }
    cv_.notify_all();
    return true;
  }
  bool yield() override {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_wait_ms_);
    while (true) {
      if (try_yield()) return true;
      auto until = deadline;
      if (timers_) {
        if (auto next = timers_->next_deadline()) {
          auto wait = std::chrono::milliseconds(std::max<int64_t>(0, *next - timers_->now_ms()));
          until = std::min(until, std::chrono::steady_clock::now() + wait);
        }
      }
      std::unique_lock lk(mu_);
      if (closed_) return false;
      cv_.wait_until(lk, until, [&] { return !queue_.empty() || closed_; });
      if (closed_) return false;
      if (queue_.empty() && std::chrono::steady_clock::now() >= deadline) return false;
    }
  }
  bool try_yield() override {
    size_t ran = run_pending();
    if (timers_) ran += static_cast<size_t>(timers_->fire_due());
    return ran > 0;
  }
  void set_input_suspended(bool suspended) override { suspended_ = suspended; }
  bool input_suspended() const override { return suspended_; }

  /// Runs every action queued so far (not those they post); returns how many.
  size_t run_pending() {
    std::deque<Action> batch;
    {
      std::lock_guard lk(mu_);
      batch.swap(queue_);
    }
    for (auto& a : batch) a();
    return batch.size();
  }
  size_t pending() const {
    std::lock_guard lk(mu_);
    return queue_.size();
  }
  /// Refuses further actions and drops queued ones (task shutdown).
  void close() {
    {
      std::lock_guard lk(mu_);
      closed_ = true;
      queue_.clear();
    }
    cv_.notify_all();
  }

 private:
  int64_t max_wait_ms_;
  ProcessingTimeService* timers_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Action> queue_;
  bool closed_ = false;
  bool suspended_ = false;
};

}  // namespace sluice::runtime
