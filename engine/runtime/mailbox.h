// The task mailbox: control actions (checkpoint triggers, commits, cancel)
// that other threads hand to a task. They run on the task thread between
// records, so operators never see concurrent calls.
#pragma once

#include <deque>
#include <functional>
#include <mutex>

#include "engine/runtime/channel.h"

namespace sluice::runtime {

/// Multi-producer, single-consumer queue of actions. Thread-safe.
class Mailbox {
 public:
  using Action = std::function<void()>;
  explicit Mailbox(TaskSignal* signal) : signal_(signal) {}

  void put(Action a) {
    {
      std::lock_guard lk(mu_);
      actions_.push_back(std::move(a));
    }
    signal_->notify();
  }
  /// Runs every queued action (task thread). Returns how many ran.
  int run_all() {
    std::deque<Action> batch;
    {
      std::lock_guard lk(mu_);
      if (actions_.empty()) return 0;
      batch.swap(actions_);
    }
    for (auto& a : batch) a();
    return static_cast<int>(batch.size());
  }

 private:
  TaskSignal* signal_;
  std::mutex mu_;
  std::deque<Action> actions_;
};

}  // namespace sluice::runtime
