// LocalExecutor: runs every subtask of a job in this process, on the same
// Task code a taskmanager runs, with in-memory channels. It is the mini
// cluster behind `sluice run-local` and the integration tests.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

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

 private:
  std::shared_ptr<Channel> get(const ChannelKey& key);
  size_t capacity_;
  std::mutex mu_;
  std::map<ChannelKey, std::shared_ptr<Channel>> channels_;
};

struct LocalRunOptions {
  TaskOptions task;
  /// Processing-time clock of every task. Default: the system clock.
  const Clock* clock = nullptr;
};

/// Totals over all tasks of a finished run.
struct RunSummary {
  uint64_t records_in = 0;
  uint64_t dead_letters = 0;
  double seconds = 0;
};

/// Runs one attempt of a job to completion. Not reusable; run() is called
/// once, from one thread; cancel() may be called from any thread.
class LocalExecutor final : public TaskListener {
 public:
  LocalExecutor(std::shared_ptr<const JobInstance> job, LocalRunOptions options);
  ~LocalExecutor() override;

  /// Deploys every subtask and waits until all have ended. The first task
  /// failure cancels the others and is returned.
  Status run();
  void cancel();
  const RunSummary& summary() const { return summary_; }

  void on_task_state(const TaskId& id, TaskState state, const Status& cause) override;

 private:
  std::shared_ptr<const JobInstance> job_;
  LocalRunOptions options_;
  std::unique_ptr<LocalChannelProvider> channels_;
  std::vector<std::unique_ptr<Task>> tasks_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
  Status first_failure_;
  std::atomic<bool> cancelled_{false};
  RunSummary summary_;
};

}  // namespace sluice::runtime
