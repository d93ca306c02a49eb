// The chain of operators one task runs: built from the job vertex (one
// instance per chained StreamGraph node, outputs wired to the next
// operator or to record writers), with each operator's context — keyed
// state backend, processing-time timers, mailbox executor, side outputs —
// and the lifecycle calls over the whole chain.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/status.h"
#include "engine/runtime/dead_letter.h"
#include "engine/runtime/frames.h"
#include "engine/runtime/mailbox_executor.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/processing_time.h"
#include "engine/runtime/record_writer.h"
#include "engine/runtime/stream_graph.h"
#include "engine/runtime/task.h"
#include "engine/runtime/two_input.h"

namespace sluice::proto {
class JobVertex;
}

namespace sluice::runtime {

/// What an operator chain needs from the task that runs it.
class ChainHost {
 public:
  virtual ~ChainHost() = default;
  /// Any thread: fails the task (the first failure wins).
  virtual void fail(Status st) = 0;
  /// Set once fail() was called; chained outputs stop passing anything on.
  virtual const std::atomic<bool>* failed_flag() const = 0;
  virtual void emit_dead_letter(const DeadLetter& dl) = 0;
  /// Any thread: queues `action` on the task's mailbox with `priority`
  /// (the operator's index in the chain); false once the task is stopping.
  virtual bool post(MailboxExecutor::Action action, int priority) = 0;
  /// Task thread: runs mailbox actions and timers of operators >=
  /// `priority`; with `wait`, sleeps until one ran. False if the task is
  /// stopping (or, without `wait`, if nothing ran).
  virtual bool yield(int priority, bool wait) = 0;
};

/// The asynchronous parts of one task's checkpoint, each with the index of
/// its operator in the chain (and in TaskSnapshot::operators): the keyed
/// state's files and the operators' own asynchronous parts (their blobs).
/// Run on a snapshot thread by upload_snapshot; value type.
struct AsyncSnapshotParts {
  std::vector<std::pair<size_t, state::AsyncSnapshot>> keyed;
  std::vector<std::pair<size_t, AsyncStatePart>> operator_state;
};

/// One task's operators, head first. Built and used on the task thread
/// (operators see only their contexts); owned by the task.
class OperatorChain {
 public:
  /// Instantiates the operators of `vertex` from the job's StreamGraph.
  /// `writers` are the task's record writers by job edge id.
  static Result<std::unique_ptr<OperatorChain>> build(const JobInstance& job, const TaskId& id,
                                                      const proto::JobVertex& vertex,
                                                      const std::map<int, RecordWriter*>& writers,
                                                      const Clock* clock, ChainHost& host);
  ~OperatorChain();
  OperatorChain(const OperatorChain&) = delete;
  OperatorChain& operator=(const OperatorChain&) = delete;

  size_t size() const { return ops_.size(); }
  StreamOperator& head() { return *ops_.front().op; }
  const StreamNode& head_node() const { return *ops_.front().node; }
  /// The operator of StreamGraph node `node_id` and its node (the target of
  /// a job edge: the head, or a chained operator with an input of its own
  /// from another task, e.g. the broadcast side of a chained broadcast
  /// process); null if the node is not in this chain.
  StreamOperator* operator_of(int node_id);
  const StreamNode* node_of(int node_id) const;

  /// Restores operator and keyed state (when `restore` is given), then
  /// opens the operators from the tail, so consumers are ready first.
  Status restore_and_open(const TaskRestore* restore);
  /// All input ended: finish() head first, so each operator's final output
  /// reaches the next before it finishes itself.
  Status finish(const std::function<bool()>& failed);
  /// close() every operator (always, also after a failure).
  void close();

  /// Synchronous part of checkpoint `b`: every operator's state (or what
  /// it captured for its asynchronous part) and a consistent view of its
  /// keyed state (whose files are written by the returned asynchronous
  /// parts). The error names the operator.
  Status snapshot(const Barrier& b, const state::CheckpointStorage* storage, TaskSnapshot& snap,
                  AsyncSnapshotParts& parts);
  Status notify_checkpoint_complete(CheckpointId id);
  void notify_checkpoint_aborted(CheckpointId id);

  /// Runs the due processing-time callbacks of operators `first` and
  /// after, in time order; returns how many ran.
  int fire_timers(size_t first = 0);
  /// The earliest pending callback of operators `first` and after.
  std::optional<int64_t> next_timer(size_t first = 0) const;
  /// Drops every pending callback (task shutdown).
  void clear_timers();

  /// Some operator still runs commit work (StreamOperator::commit_in_progress).
  bool commit_in_progress() const;
  /// Some operator has suspended its input (MailboxExecutor).
  bool input_suspended() const { return suspended_ > 0; }
  /// The counter behind input_suspended(), read by the input gate per record.
  const int* suspended_counter() const { return &suspended_; }
  /// "v<vertex>-<subtask>-<what>", file-name safe: names snapshot files.
  std::string file_stem(const std::string& what) const;

 private:
  class Context;
  class Executor;
  struct Op {
    const StreamNode* node = nullptr;
    std::unique_ptr<StreamOperator> op;
    std::unique_ptr<Context> ctx;
  };
  OperatorChain(const Clock* clock, ChainHost& host, int vertex, int subtask);
  template <class T>
  T* own(std::unique_ptr<T> p) {
    T* raw = p.get();
    owned_outputs_.push_back(std::move(p));
    return raw;
  }

  const Clock* clock_;
  ChainHost& host_;
  const int vertex_;
  const int subtask_;
  std::vector<Op> ops_;  // head first
  std::vector<std::unique_ptr<OutputBase>> owned_outputs_;
  // (node id, input index) fed by several chained edges: their combined watermark.
  std::map<std::pair<int, int>, std::unique_ptr<InputWatermarks>> merges_;
  int suspended_ = 0;
};

}  // namespace sluice::runtime
