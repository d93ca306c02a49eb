#include "engine/runtime/mailbox.h"

#include <vector>

namespace sluice::runtime {

bool TaskMailbox::put(Action action, int priority) {
  {
    std::unique_lock lk(mu_);
    if (priority != kControlPriority) {
      if (!on_task_thread()) not_full_.wait(lk, [&] { return closed_ || refusing_ || queue_.size() < capacity_; });
      if (refusing_) return false;
    }
    if (closed_) return false;
    queue_.push_back(Entry{priority, std::move(action)});
    size_.store(queue_.size(), std::memory_order_release);
  }
  signal_->notify();
  return true;
}

size_t TaskMailbox::run(int min_priority) {
  if (!maybe_has_actions()) return 0;
  std::vector<Action> batch;
  {
    std::lock_guard lk(mu_);
    if (min_priority <= kControlPriority) {
      batch.reserve(queue_.size());
      for (auto& e : queue_) batch.push_back(std::move(e.action));
      queue_.clear();
    } else {
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->priority >= min_priority) {
          batch.push_back(std::move(it->action));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    size_.store(queue_.size(), std::memory_order_release);
  }
  if (batch.empty()) return 0;
  not_full_.notify_all();
  for (auto& a : batch) a();
  return batch.size();
}

void TaskMailbox::refuse() {
  {
    std::lock_guard lk(mu_);
    refusing_ = true;
  }
  not_full_.notify_all();
}

void TaskMailbox::close() {
  std::deque<Entry> dropped;
  {
    std::lock_guard lk(mu_);
    closed_ = true;
    dropped.swap(queue_);
    size_.store(0, std::memory_order_release);
  }
  not_full_.notify_all();
  // `dropped` is destroyed here, outside the lock: captured objects may
  // clean up (e.g. complete a promise) and must not deadlock on the mailbox.
}

bool TaskMailbox::closed() const {
  std::lock_guard lk(mu_);
  return closed_;
}

}  // namespace sluice::runtime
