#include "engine/runtime/local_executor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/restore.h"

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

size_t LocalChannelProvider::max_queued() const {
  std::lock_guard lk(mu_);
  size_t m = 0;
  for (const auto& [k, c] : channels_) m = std::max(m, c->size());
  return m;
}

LocalExecutor::LocalExecutor(std::shared_ptr<const JobInstance> job, LocalRunOptions options)
    : job_(std::move(job)), options_(std::move(options)) {
  if (!options_.clock) options_.clock = &SystemClock::instance();
}

LocalExecutor::~LocalExecutor() {
  cancel();
  teardown();
  if (coordinator_) coordinator_->stop();
}

Status LocalExecutor::deploy(int attempt, const std::optional<state::StoredCheckpoint>& restore) {
  TaskServices services{options_.clock, this, snapshots_.get()};
  std::lock_guard lk(mu_);
  channels_ = std::make_unique<LocalChannelProvider>(options_.task.channel_capacity);
  attempt_ = attempt;
  failure_ = Status::ok();
  for (const auto& v : job_->job_graph->vertices()) {
    for (int s = 0; s < v.parallelism(); ++s) {
      TaskId id{job_->job_id, v.id(), s, attempt};
      std::optional<TaskRestore> r;
      if (restore) r = build_task_restore(*restore, *job_->job_graph, v.id(), s);
      tasks_.push_back(
          std::make_unique<Task>(id, job_, *channels_, services, options_.task, std::move(r)));
    }
  }
  running_ = static_cast<int>(tasks_.size());
  for (auto& t : tasks_) t->start();
  return Status::ok();
}

void LocalExecutor::teardown() {
  std::vector<std::unique_ptr<Task>> tasks;
  std::unique_ptr<LocalChannelProvider> channels;
  {
    std::lock_guard lk(mu_);
    tasks.swap(tasks_);
    for (auto& t : tasks) t->cancel();
    if (channels_) channels_->close_all();
  }
  for (auto& t : tasks) t->join();
  // Tasks are gone: nothing uses the channels any more.
  std::lock_guard lk(mu_);
  channels.swap(channels_);
}

Status LocalExecutor::run() {
  int64_t start = monotonic_ns();
  std::optional<state::StoredCheckpoint> restore = options_.restore;
  if (restore) SLUICE_RETURN_IF_ERROR(check_restore_compatible(*restore, *job_->job_graph));
  if (job_->checkpoints) {
    SLUICE_ASSIGN_OR_RETURN(CheckpointConfig cfg, CheckpointConfig::from(job_->config));
    int64_t first = job_->checkpoints->highest_id() + 1;
    if (restore) first = std::max(first, restore->meta.id + 1);
    snapshots_ = std::make_unique<AsyncExecutor>(2);
    coordinator_ = std::make_unique<CheckpointCoordinator>(cfg, job_->checkpoints, job_->job_graph,
                                                           this, options_.clock, first);
    Status st = coordinator_->adopt_existing();
    if (!st.is_ok()) spdlog::warn("cannot read earlier checkpoints: {}", st.to_string());
    coordinator_->start();
  }

  Duration backoff = options_.restart.initial_backoff;
  for (int attempt = 0;; ++attempt) {
    if (coordinator_) coordinator_->reset_for_attempt(attempt);
    SLUICE_RETURN_IF_ERROR(deploy(attempt, restore));
    Status failure;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return running_ == 0; });
      failure = failure_;
    }
    uint64_t in = 0, dead = 0;
    {
      std::lock_guard lk(mu_);
      for (auto& t : tasks_) {
        in += t->metrics().records_in.load();
        dead += t->metrics().dead_letters.load();
      }
    }
    teardown();
    summary_.records_in = in;
    summary_.dead_letters = dead;
    summary_.seconds = static_cast<double>(monotonic_ns() - start) / 1e9;
    if (cancelled_.load()) break;
    if (failure.is_ok()) break;
    if (attempt >= options_.restart.max_attempts) {
      if (coordinator_) coordinator_->stop();
      return failure;
    }
    ++summary_.restarts;
    summary_.restart_causes.push_back(failure.to_string());
    if (coordinator_) {
      if (auto latest = coordinator_->latest_completed()) restore = latest;
    }
    spdlog::warn("job failed ({}); restarting in {} from {}", failure.to_string(),
                 format_duration(backoff),
                 restore ? "checkpoint " + std::to_string(restore->meta.id) : "the beginning");
    auto until = std::chrono::steady_clock::now() + backoff;
    while (!cancelled_.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (cancelled_.load()) break;
    backoff = std::min(options_.restart.max_backoff,
                       Duration(static_cast<int64_t>(static_cast<double>(backoff.count()) *
                                                     options_.restart.multiplier)));
  }
  if (coordinator_) coordinator_->stop();
  if (cancelled_.load()) return Status::cancelled("the job was cancelled");
  return Status::ok();
}

void LocalExecutor::cancel() {
  cancelled_.store(true);
  std::lock_guard lk(mu_);
  for (auto& t : tasks_) t->cancel();
  if (channels_) channels_->close_all();
}

Result<state::StoredCheckpoint> LocalExecutor::stop_with_savepoint(Duration timeout) {
  if (!coordinator_) {
    return Status::failed_precondition("savepoints need checkpoint storage; pass --checkpoint-dir");
  }
  auto f = coordinator_->trigger_savepoint(/*stop=*/true);
  if (f.wait_for(timeout) != std::future_status::ready) {
    coordinator_->resume_checkpoints();
    return Status::timeout("the savepoint did not complete within " + format_duration(timeout));
  }
  auto r = f.get();
  if (!r.is_ok()) {
    coordinator_->resume_checkpoints();
    return r;
  }
  // Two-phase sinks commit what the savepoint covers when they process its
  // completion: cancelling before that would leave it uncommitted.
  const int64_t id = r->meta.id;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    bool all = true;
    {
      std::lock_guard lk(mu_);
      for (const auto& t : tasks_) {
        if (t->state() == TaskState::kRunning &&
            t->metrics().committed_checkpoint.load(std::memory_order_acquire) < id) {
          all = false;
        }
      }
    }
    if (all) break;
    if (std::chrono::steady_clock::now() > deadline) {
      spdlog::warn("tasks did not confirm savepoint {} within 30 s; stopping anyway", id);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  cancel();
  return r;
}

size_t LocalExecutor::max_queued_buffers() const {
  std::lock_guard lk(mu_);
  return channels_ ? channels_->max_queued() : 0;
}

void LocalExecutor::on_task_state(const TaskId& id, TaskState state, const Status& cause) {
  if (state == TaskState::kRunning) return;
  bool cancel_others = false;
  {
    std::lock_guard lk(mu_);
    if (id.attempt != attempt_) return;
    if (state == TaskState::kFailed && failure_.is_ok()) {
      failure_ = cause.is_ok() ? Status::internal("task " + id.to_string() + " failed") : cause;
      cancel_others = true;
    }
    --running_;
    if (cancel_others) {
      for (auto& t : tasks_) t->cancel();
      if (channels_) channels_->close_all();
    }
  }
  cv_.notify_all();
}

void LocalExecutor::on_checkpoint_ack(const TaskId& id, TaskSnapshot snapshot) {
  if (coordinator_) coordinator_->acknowledge(id, std::move(snapshot));
}

void LocalExecutor::on_checkpoint_declined(const TaskId& id, CheckpointId cp, const Status& why) {
  if (coordinator_) coordinator_->decline(id, cp, why);
}

void LocalExecutor::on_end_of_input(const TaskId& id) {
  if (coordinator_) coordinator_->source_ended(id);
}

void LocalExecutor::trigger_sources(const Barrier& b) {
  std::lock_guard lk(mu_);
  for (auto& t : tasks_)
    if (t->is_source()) t->trigger_checkpoint(b);
}

void LocalExecutor::notify_complete(CheckpointId id, bool final_checkpoint) {
  std::lock_guard lk(mu_);
  for (auto& t : tasks_) t->notify_checkpoint_complete(id, final_checkpoint);
}

void LocalExecutor::notify_aborted(CheckpointId id) {
  std::lock_guard lk(mu_);
  for (auto& t : tasks_) t->notify_checkpoint_aborted(id);
}

}  // namespace sluice::runtime
