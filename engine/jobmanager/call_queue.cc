#include "engine/jobmanager/call_queue.h"

namespace sluice::jobmanager {

namespace {
grpc::Status closed_status(const std::string& name) {
  return grpc::Status(grpc::StatusCode::CANCELLED, "taskmanager " + name + " is no longer registered");
}
}  // namespace

bool lost_on_failed_call(const grpc::Status& st, int64_t queued_ms, int64_t last_heartbeat_ms) {
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE) return true;
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return last_heartbeat_ms <= queued_ms;
  return false;
}

CallQueue::CallQueue(std::string name, std::function<void()> on_done)
    : name_(std::move(name)), on_done_(std::move(on_done)) {
  thread_ = std::thread([this] { loop(); });
}

CallQueue::~CallQueue() {
  close();
  if (thread_.joinable()) thread_.join();
}

std::future<grpc::Status> CallQueue::submit(Call call, Duration deadline) {
  Item it{std::move(call), deadline, {}};
  auto f = it.done.get_future();
  {
    std::lock_guard lk(mu_);
    if (closed_) {
      it.done.set_value(closed_status(name_));
      return f;
    }
    queue_.push_back(std::move(it));
  }
  cv_.notify_one();
  return f;
}

void CallQueue::close() {
  std::deque<Item> dropped;
  {
    std::lock_guard lk(mu_);
    closed_ = true;
    dropped.swap(queue_);
    if (in_flight_) in_flight_->TryCancel();
  }
  cv_.notify_all();
  for (auto& it : dropped) it.done.set_value(closed_status(name_));
}

void CallQueue::loop() {
  for (;;) {
    Item it;
    grpc::ClientContext ctx;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return closed_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closed and drained
      it = std::move(queue_.front());
      queue_.pop_front();
      ctx.set_deadline(std::chrono::system_clock::now() + it.deadline);
      in_flight_ = &ctx;
    }
    grpc::Status st = it.call(ctx);
    {
      std::lock_guard lk(mu_);
      in_flight_ = nullptr;
    }
    it.done.set_value(std::move(st));
    if (on_done_) on_done_();
  }
}

}  // namespace sluice::jobmanager
