#include "engine/runtime/local_executor.h"

#include <spdlog/spdlog.h>

#include "engine/proto/jobgraph.pb.h"

namespace sluice::runtime {

std::shared_ptr<Channel> LocalChannelProvider::get(const ChannelKey& key) {
  std::lock_guard lk(mu_);
  auto& c = channels_[key];
  if (!c) {
    c = std::make_shared<Channel>("e" + std::to_string(key.edge) + ":" +
                                      std::to_string(key.producer) + "->" +
                                      std::to_string(key.consumer),
                                  capacity_);
  }
  return c;
}

void LocalChannelProvider::close_all() {
  std::lock_guard lk(mu_);
  for (auto& [k, c] : channels_) c->close();
}

LocalExecutor::LocalExecutor(std::shared_ptr<const JobInstance> job, LocalRunOptions options)
    : job_(std::move(job)), options_(options) {
  if (!options_.clock) options_.clock = &SystemClock::instance();
}

LocalExecutor::~LocalExecutor() {
  cancel();
  for (auto& t : tasks_) t->join();
}

Status LocalExecutor::run() {
  int64_t start = monotonic_ns();
  channels_ = std::make_unique<LocalChannelProvider>(options_.task.channel_capacity);
  for (const auto& v : job_->job_graph->vertices()) {
    for (int s = 0; s < v.parallelism(); ++s) {
      TaskId id{job_->job_id, v.id(), s, 0};
      tasks_.push_back(std::make_unique<Task>(id, job_, *channels_, this, options_.clock,
                                              options_.task));
    }
  }
  {
    std::lock_guard lk(mu_);
    running_ = static_cast<int>(tasks_.size());
  }
  for (auto& t : tasks_) t->start();
  {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return running_ == 0; });
  }
  for (auto& t : tasks_) {
    t->join();
    summary_.records_in += t->metrics().records_in.load();
    summary_.dead_letters += t->metrics().dead_letters.load();
  }
  summary_.seconds = static_cast<double>(monotonic_ns() - start) / 1e9;
  std::lock_guard lk(mu_);
  if (!first_failure_.is_ok()) return first_failure_;
  if (cancelled_.load()) return Status::cancelled("the job was cancelled");
  return Status::ok();
}

void LocalExecutor::cancel() {
  cancelled_.store(true);
  for (auto& t : tasks_) t->cancel();
  if (channels_) channels_->close_all();
}

void LocalExecutor::on_task_state(const TaskId& id, TaskState state, const Status& cause) {
  if (state == TaskState::kRunning) return;
  bool cancel_others = false;
  {
    std::lock_guard lk(mu_);
    if (state == TaskState::kFailed && first_failure_.is_ok()) {
      first_failure_ = cause;
      cancel_others = true;
    }
    --running_;
  }
  if (cancel_others) {
    for (auto& t : tasks_)
      if (t->id().vertex != id.vertex || t->id().subtask != id.subtask) t->cancel();
    channels_->close_all();
  }
  cv_.notify_all();
}

}  // namespace sluice::runtime
