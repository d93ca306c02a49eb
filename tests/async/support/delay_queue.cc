#include "tests/async/support/delay_queue.h"

#include <pthread.h>
#include <time.h>

#include "engine/common/clock.h"

namespace sluice::async_test {

DelayQueue::DelayQueue(const char* thread_name) : name_(thread_name) {
  thread_ = std::thread([this] { loop(); });
  handle_ = thread_.native_handle();
}

DelayQueue::~DelayQueue() {
  flush();
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DelayQueue::after(int64_t delay_us, Action a) {
  {
    std::lock_guard lk(mu_);
    int64_t at = flushing_ ? 0 : monotonic_ns() + delay_us * 1000;
    bool earliest = items_.empty() || at < items_.top().at_ns;
    items_.push({at, seq_++, std::move(a)});
    if (!earliest) return;
  }
  cv_.notify_all();
}

void DelayQueue::flush() {
  std::unique_lock lk(mu_);
  flushing_ = true;
  cv_.notify_all();
  idle_cv_.wait(lk, [&] { return items_.empty() && !running_action_; });
}

void DelayQueue::resume() {
  std::lock_guard lk(mu_);
  flushing_ = false;
}

int64_t DelayQueue::cpu_ns() const {
  clockid_t id;
  timespec ts{};
  if (pthread_getcpuclockid(handle_, &id) != 0 || clock_gettime(id, &ts) != 0) return 0;
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

void DelayQueue::loop() {
  pthread_setname_np(pthread_self(), name_);
  std::unique_lock lk(mu_);
  std::vector<Action> due;
  while (true) {
    if (items_.empty()) {
      idle_cv_.notify_all();
      if (stop_) return;
      cv_.wait(lk);
      continue;
    }
    int64_t now = monotonic_ns();
    if (!flushing_ && items_.top().at_ns > now) {
      cv_.wait_for(lk, std::chrono::nanoseconds(items_.top().at_ns - now));
      continue;
    }
    while (!items_.empty() && (flushing_ || items_.top().at_ns <= now)) {
      due.push_back(std::move(const_cast<Item&>(items_.top()).action));
      items_.pop();
    }
    running_action_ = true;
    lk.unlock();
    for (auto& a : due) a();
    due.clear();
    lk.lock();
    running_action_ = false;
  }
}

}  // namespace sluice::async_test
