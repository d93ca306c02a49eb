// Task: one subtask of one job vertex — a chain of operators driven by one
// thread, a mailbox processor. The thread reads buffers from the input
// channels (or polls the source), runs mailbox actions and processing-time
// timers between them, and writes results into the output channels. The
// same class runs in `sluice run-local` and in every taskmanager.
//
// Its parts: OperatorChain (operator_chain.h: the operators and their
// contexts), InputGate and WatermarkValve (input_gate.h), BarrierHandler
// (barrier_handler.h: aligned and unaligned checkpoints, channel_state.h:
// recorded in-flight input), TaskMailbox (mailbox.h); task.cc holds the
// run loop, the mailbox executor side of yield(), and checkpoint I/O.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/ids.h"
#include "engine/common/status.h"
#include "engine/runtime/channel.h"
#include "engine/runtime/frames.h"
#include "engine/runtime/async_executor.h"
#include "engine/runtime/stream_graph.h"
#include "state/checkpoint_storage.h"
#include "state/keyed_state_backend.h"

namespace sluice::proto {
class JobGraph;
}

namespace sluice::runtime {

enum class TaskState { kCreated, kRunning, kFinished, kCanceled, kFailed };
std::string_view task_state_name(TaskState s);

struct TaskId {
  std::string job_id;
  int vertex = 0;
  int subtask = 0;
  int attempt = 0;
  std::string to_string() const;
};

/// Identifies a channel: records of job edge `edge` from producer subtask
/// to consumer subtask.
struct ChannelKey {
  int edge = 0;
  int producer = 0;
  int consumer = 0;
  auto operator<=>(const ChannelKey&) const = default;
};

/// Hands out the channel objects of one job attempt. Producer and consumer
/// of a key get the same Channel (in memory) or the two ends of a network
/// connection (data plane). Thread-safe.
class ChannelProvider {
 public:
  virtual ~ChannelProvider() = default;
  virtual std::shared_ptr<Channel> output_channel(const ChannelKey& key) = 0;
  virtual std::shared_ptr<Channel> input_channel(const ChannelKey& key) = 0;
};

/// The job as every task of it sees it. Shared (shared_ptr) by the tasks of
/// a job and their owner, which also keeps the job library loaded.
struct JobInstance {
  std::string job_id;
  std::shared_ptr<const StreamGraph> graph;
  std::shared_ptr<const proto::JobGraph> job_graph;
  Configuration config;  // job configuration (graph config + run options)
  /// Where checkpoints go; null when checkpointing is off.
  std::shared_ptr<const state::CheckpointStorage> checkpoints;
};

/// The state of one chained operator in a checkpoint.
struct OperatorSnapshot {
  std::string uid;
  std::string operator_state;  // snapshot_state() blob
  std::optional<state::KeyedStateHandle> keyed;
};

/// What a task acknowledges for a checkpoint (after the asynchronous part).
struct TaskSnapshot {
  CheckpointId id{0};
  std::vector<OperatorSnapshot> operators;
  /// Unaligned checkpoints: the in-flight input data the task recorded.
  std::optional<state::StateFile> channel_state;
  int64_t sync_ns = 0;       // time on the task thread
  int64_t alignment_ns = 0;  // from the first to the last barrier
};

/// State handed to a task that restarts from a checkpoint: for each
/// operator uid, every old subtask's operator state and the keyed-state
/// handles that overlap this subtask's key groups.
struct TaskRestore {
  CheckpointId checkpoint{0};
  std::string base_dir;  // where the handles' file paths resolve
  struct Operator {
    OperatorRestore operator_state;
    std::vector<state::KeyedStateHandle> keyed;
  };
  std::map<std::string, Operator> operators;  // by uid
  /// Unaligned checkpoints: the task's recorded in-flight input (absolute path).
  std::string channel_state_file;
};

/// Receives a task's state changes and checkpoint acknowledgements. Called
/// from the task thread or a snapshot thread; implementations must be
/// thread-safe.
class TaskListener {
 public:
  virtual ~TaskListener() = default;
  virtual void on_task_state(const TaskId& id, TaskState state, const Status& cause) = 0;
  virtual void on_checkpoint_ack(const TaskId& id, TaskSnapshot snapshot) {}
  virtual void on_checkpoint_declined(const TaskId& id, CheckpointId cp, const Status& why) {}
  /// A source task read all its input and finished its operators; with
  /// checkpointing it now waits for a final checkpoint before it ends.
  virtual void on_end_of_input(const TaskId& id) {}
};

/// What tasks of one process share.
struct TaskServices {
  const Clock* clock = nullptr;
  TaskListener* listener = nullptr;
  /// Runs the asynchronous part of snapshots. Required when checkpointing.
  AsyncExecutor* snapshots = nullptr;
};

struct TaskOptions {
  /// Buffers per channel (backpressure bound). Default 8.
  size_t channel_capacity = 8;
  /// Bytes at which a pending output buffer is sent. Default 32 KiB.
  size_t buffer_bytes = 32 * 1024;
  /// Longest time a record waits in a pending output buffer. Default 10 ms;
  /// a job overrides it with `pipeline.buffer-timeout` (0: flush after
  /// every input step, for the lowest latency at some throughput).
  int64_t buffer_timeout_ms = 10;
  /// Send pending output buffers with every watermark, so that records and
  /// the watermark that completes their window never wait for the timeout.
  /// Default true; a job overrides it with `pipeline.flush-on-watermark`.
  bool flush_on_watermark = true;
  /// Actions other threads may queue on the task's mailbox before they
  /// block (MailboxExecutor::execute). Default 1024.
  size_t mailbox_capacity = 1024;
};

/// Counters of a task, readable from any thread (relaxed atomics).
struct TaskMetrics {
  std::atomic<uint64_t> records_in{0};
  std::atomic<uint64_t> records_out{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> dead_letters{0};
  std::atomic<int64_t> backpressured_ns{0};
  std::atomic<int64_t> busy_ns{0};
  /// Event time of the task: a source's, the watermark it emits; any
  /// other task's, the watermark of its input (the minimum over its inputs
  /// that are not idle, what its operators act on and forward).
  /// INT64_MIN: none yet; INT64_MAX: the input ended.
  std::atomic<int64_t> watermark_ms{INT64_MIN};
  /// Newest checkpoint whose completion every operator of the task has
  /// processed (two-phase sinks have committed it).
  std::atomic<int64_t> committed_checkpoint{0};
};

class Task {
 public:
  Task(TaskId id, std::shared_ptr<const JobInstance> job, ChannelProvider& channels,
       TaskServices services, TaskOptions options, std::optional<TaskRestore> restore = std::nullopt);
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  const TaskId& id() const { return id_; }
  TaskState state() const { return state_.load(); }
  Status failure() const;
  const TaskMetrics& metrics() const { return metrics_; }
  bool is_source() const { return is_source_; }

  void start();
  /// Asks the task to stop; returns at once (join() waits).
  void cancel();
  void join();

  /// Sources only: inject barrier `b` (runs on the task thread).
  void trigger_checkpoint(Barrier b);
  /// `final_checkpoint`: the first checkpoint triggered after every source
  /// ended; tasks that finished their input end once it is complete.
  void notify_checkpoint_complete(CheckpointId id, bool final_checkpoint = false);
  void notify_checkpoint_aborted(CheckpointId id);

 private:
  class Impl;
  TaskId id_;
  bool is_source_ = false;
  std::unique_ptr<Impl> impl_;
  std::atomic<TaskState> state_{TaskState::kCreated};
  TaskMetrics metrics_;
  std::thread thread_;
};

}  // namespace sluice::runtime
