#include "engine/runtime/channel.h"

#include "engine/common/clock.h"

namespace sluice::runtime {

bool Channel::push(Buffer&& b, const CancelFlag* cancel, int64_t* blocked_ns) {
  std::shared_ptr<ChannelObserver> observer;
  {
    std::unique_lock lk(mu_);
    if (queue_.size() >= capacity_ && !closed_) {
      int64_t start = monotonic_ns();
      // Wake up now and then to notice cancellation without a notify from it.
      while (queue_.size() >= capacity_ && !closed_) {
        if (cancel && cancel->load(std::memory_order_relaxed)) break;
        not_full_.wait_for(lk, std::chrono::milliseconds(20));
      }
      if (blocked_ns) *blocked_ns += monotonic_ns() - start;
    }
    if (closed_) return false;
    if (queue_.size() >= capacity_) return false;  // cancelled while full
    bool was_empty = queue_.empty();
    queue_.push_back(std::move(b));
    if (was_empty) {
      notify_consumer();
      if (observer_) observer = observer_;
    }
  }
  if (observer) observer->on_push();
  return true;
}

void Channel::push_unbounded(Buffer&& b) {
  std::shared_ptr<ChannelObserver> observer;
  {
    std::lock_guard lk(mu_);
    if (closed_) return;
    bool was_empty = queue_.empty();
    queue_.push_back(std::move(b));
    if (was_empty) {
      notify_consumer();
      if (observer_) observer = observer_;
    }
  }
  if (observer) observer->on_push();
}

bool Channel::try_pop(Buffer& out) {
  std::shared_ptr<ChannelObserver> observer;
  {
    std::lock_guard lk(mu_);
    if (queue_.empty()) return false;
    bool was_full = queue_.size() >= capacity_;
    out = std::move(queue_.front());
    queue_.pop_front();
    if (was_full) not_full_.notify_one();
    if (observer_) observer = observer_;
  }
  if (observer) observer->on_pop();
  return true;
}

size_t Channel::size() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

void Channel::close() {
  {
    std::lock_guard lk(mu_);
    closed_ = true;
  }
  not_full_.notify_all();
}

void Channel::announce_barrier(const Barrier& b) {
  if (!b.is_unaligned() || b.must_align()) return;  // only unaligned barriers may jump the queue
  announced_.store(b.id.value(), std::memory_order_release);
  std::lock_guard lk(mu_);
  notify_consumer();
}

size_t Channel::peek_until_barrier(CheckpointId id, std::string& out, bool& found) const {
  std::lock_guard lk(mu_);
  found = false;
  size_t looked = 0;
  for (const auto& b : queue_) {
    ++looked;
    size_t at = 0;
    if (frames::find_barrier(b.data, 0, id, at)) {
      out.append(b.data, 0, at);
      found = true;
      break;
    }
    out.append(b.data);
  }
  return looked;
}

bool Channel::closed() const {
  std::lock_guard lk(mu_);
  return closed_;
}

void Channel::fail(std::string reason, StatusCode code) {
  {
    std::lock_guard lk(mu_);
    if (!broken_.load(std::memory_order_relaxed)) {
      failure_ = std::move(reason);
      failure_code_ = code == StatusCode::kOk ? StatusCode::kUnavailable : code;
      broken_.store(true, std::memory_order_release);
    }
    closed_ = true;
    notify_consumer();  // the consuming task must notice promptly
  }
  not_full_.notify_all();
}

std::string Channel::failure() const {
  std::lock_guard lk(mu_);
  return failure_;
}

Status Channel::failure_status(const std::string& what) const {
  std::lock_guard lk(mu_);
  if (!broken_.load(std::memory_order_relaxed)) return Status::ok();
  return Status(failure_code_, what + ": " + failure_);
}

void Channel::set_observer(std::shared_ptr<ChannelObserver> o) {
  std::lock_guard lk(mu_);
  observer_ = std::move(o);
}

}  // namespace sluice::runtime
