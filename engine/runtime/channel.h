// Channels: bounded FIFO queues of Buffers from one producer subtask to one
// consumer subtask. A full channel blocks its producer: that is Sluice's
// backpressure. The in-memory Channel below is used inside a process; the
// network data plane feeds and drains the same class on either side of a
// connection, so tasks never know which kind they talk to.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "engine/runtime/frames.h"

namespace sluice::runtime {

/// Wakes a sleeping task thread: set by channels when data arrives and by
/// the mailbox when an action is queued. The pending flag closes the race
/// between "found nothing to do" and "went to sleep". Owned by the task.
class TaskSignal {
 public:
  void notify() {
    {
      std::lock_guard lk(mu_);
      pending_ = true;
    }
    cv_.notify_one();
  }
  /// Sleeps until notified or until `deadline`; clears the pending flag.
  void wait_until(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lk(mu_);
    cv_.wait_until(lk, deadline, [&] { return pending_; });
    pending_ = false;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
};

/// Cooperative cancellation flag shared by a task and what it blocks on.
using CancelFlag = std::atomic<bool>;

/// Watches a channel from outside its producer and consumer: the network
/// data plane uses it to wake a sender when its outbound channel gets data
/// and to grant credits when a task pops from an inbound channel. Called on
/// the pushing or popping thread, outside the channel's lock; must be cheap
/// and must not block.
class ChannelObserver {
 public:
  virtual ~ChannelObserver() = default;
  /// A buffer was pushed into an empty channel.
  virtual void on_push() {}
  /// A buffer was popped.
  virtual void on_pop() {}
};

/// A bounded queue of Buffers. Thread-safe: one producer thread, one
/// consumer thread. Shared (shared_ptr) by its producer and consumer
/// sides, which are deployed and torn down independently.
class Channel {
 public:
  Channel(std::string name, size_t capacity) : name_(std::move(name)), capacity_(capacity) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  const std::string& name() const { return name_; }
  size_t capacity() const { return capacity_; }

  /// Appends a buffer, blocking while the channel is full. Returns false if
  /// `cancel` was set or the channel was closed while waiting. Adds the time
  /// spent blocked to *blocked_ns when given.
  bool push(Buffer&& b, const CancelFlag* cancel, int64_t* blocked_ns = nullptr);
  /// Appends without waiting for space (end-of-stream markers, so that a
  /// finishing producer never deadlocks on a consumer that stopped).
  void push_unbounded(Buffer&& b);
  /// Takes the oldest buffer if there is one.
  bool try_pop(Buffer& out);
  size_t size() const;

  /// The consumer's signal, notified when a buffer arrives. It is notified
  /// under the channel's lock, so once this returns the previous signal is
  /// not touched any more (network threads may push or fail the channel
  /// after its consumer is gone).
  void set_consumer_signal(TaskSignal* s) {
    std::lock_guard lk(mu_);
    consumer_signal_ = s;
  }
  /// Wakes and fails any blocked producer; later pushes are dropped (the
  /// consumer is gone, e.g. its job was cancelled).
  void close();
  bool closed() const;

  /// The network connection behind this channel broke (peer lost, send
  /// error, refused): closes the channel and records why; the task that
  /// uses either end fails with `reason` and `code`: kUnavailable (the job
  /// restarts), or a permanent code (is_permanent_error) when the cluster's
  /// configuration is wrong (TLS on one end only, certificates of another
  /// CA) and a restart would fail the same way. The first reason wins.
  void fail(std::string reason, StatusCode code = StatusCode::kUnavailable);
  /// True once fail() was called (cheap: the task polls it).
  bool broken() const { return broken_.load(std::memory_order_acquire); }
  /// Why the channel broke; empty if it did not.
  std::string failure() const;
  /// What a task using the broken channel fails with: "`what`: reason",
  /// with the code given to fail(). Ok if the channel did not break.
  Status failure_status(const std::string& what) const;

  /// Installs (or with null removes) the observer. Shared: a channel may
  /// outlive the connection that observes it, and a call already under way
  /// must find the observer alive.
  void set_observer(std::shared_ptr<ChannelObserver> o);

  /// The producer has queued the barrier of checkpoint `id`: tells the
  /// consumer at once, so an unaligned checkpoint need not wait until the
  /// consumer reaches it in the queue.
  void announce_barrier(const Barrier& b);
  /// Id of the newest barrier announced that may be taken unaligned (0 if none).
  int64_t announced_barrier() const { return announced_.load(std::memory_order_acquire); }
  /// Unaligned checkpoints: appends to `out` the queued bytes that precede
  /// the barrier of `id` (all queued bytes if it is not queued yet); sets
  /// `found`. Returns how many queued buffers it looked at (the consumer
  /// will pop them later and must not record them twice).
  size_t peek_until_barrier(CheckpointId id, std::string& out, bool& found) const;

 private:
  void notify_consumer() {  // mu_ held
    if (consumer_signal_) consumer_signal_->notify();
  }

  const std::string name_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::deque<Buffer> queue_;
  TaskSignal* consumer_signal_ = nullptr;
  bool closed_ = false;
  std::string failure_;
  StatusCode failure_code_ = StatusCode::kOk;
  std::shared_ptr<ChannelObserver> observer_;
  std::atomic<bool> broken_{false};
  std::atomic<int64_t> announced_{0};
};

}  // namespace sluice::runtime
