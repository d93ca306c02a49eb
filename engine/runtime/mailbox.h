// The task mailbox: actions that other threads hand to a task thread
// (checkpoint triggers, commit notifications, completions of async calls).
// They run on the task thread between records, so operators never see
// concurrent calls.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "engine/runtime/channel.h"

namespace sluice::runtime {

/// A bounded multi-producer, single-consumer queue of actions, each with a
/// priority. The runtime's own actions (kControlPriority) run only from the
/// task's main loop; an operator's actions carry the operator's index in
/// its chain, and an operator that yields runs only actions of priority >=
/// its own (its own and those of operators after it), so a yield never
/// re-enters an upstream operator or starts a checkpoint mid-record (as
/// Flink's mailbox priorities).
///
/// Bounded: a thread other than the task thread blocks in put() while
/// `capacity` actions are queued. The task thread never blocks (it would
/// wait for itself), nor do control actions (a coordinator or RPC thread
/// must not wait for a busy task). After close() every put() is refused and
/// blocked posters return false. Created with its task; put() from any
/// thread, run()/close() from the task thread.
class TaskMailbox {
 public:
  using Action = std::function<void()>;
  static constexpr int kControlPriority = -1;

  TaskMailbox(TaskSignal* signal, size_t capacity) : signal_(signal), capacity_(capacity) {}
  TaskMailbox(const TaskMailbox&) = delete;
  TaskMailbox& operator=(const TaskMailbox&) = delete;

  /// The thread that runs the actions (set when it starts).
  void set_task_thread(std::thread::id id) { task_thread_.store(id, std::memory_order_release); }
  bool on_task_thread() const {
    return task_thread_.load(std::memory_order_acquire) == std::this_thread::get_id();
  }

  /// Queues `action`. False (not queued; `action` is destroyed) once closed.
  bool put(Action action, int priority);
  /// A runtime action: never blocks, runs from the main loop only.
  bool put_control(Action action) { return put(std::move(action), kControlPriority); }

  /// Task thread: runs, in order, the queued actions of priority >=
  /// `min_priority`; actions they queue run at the next call. Returns how
  /// many ran.
  size_t run(int min_priority = kControlPriority);
  /// Cheap check (no lock) whether anything is queued at all.
  bool maybe_has_actions() const { return size_.load(std::memory_order_acquire) > 0; }
  size_t size() const { return size_.load(std::memory_order_acquire); }
  size_t capacity() const { return capacity_; }

  /// The task is stopping (cancelled or failed), any thread: operators'
  /// actions are refused from now on and posters blocked on a full mailbox
  /// return false at once; queued actions stay (dropped by close()).
  void refuse();
  /// Refuses further actions, drops the queued ones and wakes blocked posters.
  void close();
  bool closed() const;

 private:
  struct Entry {
    int priority;
    Action action;
  };

  TaskSignal* signal_;
  const size_t capacity_;
  std::atomic<std::thread::id> task_thread_{};
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::deque<Entry> queue_;
  std::atomic<size_t> size_{0};
  bool closed_ = false;
  bool refusing_ = false;  // operators' actions refused (control ones still queue)
};

}  // namespace sluice::runtime
