// LocalExecutor: runs every subtask of a job in this process, on the same
// Task code a taskmanager runs, with in-memory channels. It is the mini
// cluster behind `sluice run-local` and the integration tests: it runs
// the checkpoint coordinator, restarts the job from its latest completed
// checkpoint after a failure, and stops it with a savepoint on request.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "engine/runtime/checkpoint_coordinator.h"
#include "engine/runtime/task.h"

namespace sluice::runtime {

/// In-memory channels of one job attempt, created on first request by
/// either side. Thread-safe.
class LocalChannelProvider final : public ChannelProvider {
 public:
  explicit LocalChannelProvider(size_t capacity) : capacity_(capacity) {}
  std::shared_ptr<Channel> output_channel(const ChannelKey& key) override { return get(key); }
  std::shared_ptr<Channel> input_channel(const ChannelKey& key) override { return get(key); }
  /// Closes every channel (wakes producers blocked on a stopped consumer).
  void close_all();
  /// Buffers queued in every channel right now (backpressure tests).
  size_t max_queued() const;

 private:
  std::shared_ptr<Channel> get(const ChannelKey& key);
  size_t capacity_;
  mutable std::mutex mu_;
  std::map<ChannelKey, std::shared_ptr<Channel>> channels_;
};

/// When and how often a failed job is restarted (exponential backoff).
struct RestartStrategy {
  /// Restarts after failures before giving up. Default 0: fail at once.
  int max_attempts = 0;
  Duration initial_backoff{200};
  Duration max_backoff{10'000};
  double multiplier = 2.0;
};

struct LocalRunOptions {
  TaskOptions task;
  /// Processing-time clock of every task. Default: the system clock.
  const Clock* clock = nullptr;
  /// Start from this checkpoint or savepoint.
  std::optional<state::StoredCheckpoint> restore;
  RestartStrategy restart;
};

/// Totals over all tasks of the last attempt, and what happened.
struct RunSummary {
  uint64_t records_in = 0;
  uint64_t dead_letters = 0;
  double seconds = 0;
  int restarts = 0;
  std::vector<std::string> restart_causes;
};

/// Runs a job to completion. run() is called once, from one thread;
/// cancel() and stop_with_savepoint() may be called from any thread.
class LocalExecutor final : public TaskListener, public CheckpointGateway {
 public:
  LocalExecutor(std::shared_ptr<const JobInstance> job, LocalRunOptions options);
  ~LocalExecutor() override;

  /// Deploys every subtask and waits until all have ended. A task failure
  /// cancels the others and, if the restart strategy allows, redeploys the
  /// job from its latest completed checkpoint; otherwise it is returned.
  Status run();
  void cancel();
  /// Takes a savepoint, then cancels the job; run() returns afterwards.
  Result<state::StoredCheckpoint> stop_with_savepoint(Duration timeout);
  /// The coordinator (null without checkpointing); valid during run().
  CheckpointCoordinator* coordinator() { return coordinator_.get(); }
  const RunSummary& summary() const { return summary_; }
  size_t max_queued_buffers() const;

  // TaskListener
  void on_task_state(const TaskId& id, TaskState state, const Status& cause) override;
  void on_checkpoint_ack(const TaskId& id, TaskSnapshot snapshot) override;
  void on_checkpoint_declined(const TaskId& id, CheckpointId cp, const Status& why) override;
  void on_end_of_input(const TaskId& id) override;
  // CheckpointGateway
  void trigger_sources(const Barrier& b) override;
  void notify_complete(CheckpointId id, bool final_checkpoint) override;
  void notify_aborted(CheckpointId id) override;

 private:
  Status deploy(int attempt, const std::optional<state::StoredCheckpoint>& restore);
  void teardown();

  std::shared_ptr<const JobInstance> job_;
  LocalRunOptions options_;
  std::unique_ptr<AsyncExecutor> snapshots_;
  std::unique_ptr<CheckpointCoordinator> coordinator_;
  std::unique_ptr<LocalChannelProvider> channels_;

  mutable std::mutex mu_;  // guards tasks_, running_, failure_
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Task>> tasks_;
  int running_ = 0;
  int attempt_ = 0;
  Status failure_;
  std::atomic<bool> cancelled_{false};
  RunSummary summary_;
};

}  // namespace sluice::runtime
