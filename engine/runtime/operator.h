// The operator model. An operator is an immutable description in the
// StreamGraph (a factory) plus one StreamOperator instance per subtask,
// created on the task that runs it. All methods of an instance run on the
// task thread, so instances and their state need no locks.
//
// Lifecycle: setup -> initialize_state -> open -> (process_element |
// process_watermark | timers | snapshot_state | notify_checkpoint_*)* ->
// finish (bounded input ended) -> close.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/config.h"
#include "engine/common/ids.h"
#include "engine/common/status.h"
#include "engine/common/time.h"
#include "engine/runtime/dead_letter.h"
#include "engine/runtime/mailbox_executor.h"
#include "engine/runtime/processing_time.h"

namespace sluice::state {
class KeyedStateBackend;
}

namespace sluice::runtime {

/// Receives what an operator emits: records of one type plus watermarks.
class OutputBase {
 public:
  virtual ~OutputBase() = default;
  virtual void emit_watermark(EventTime wm) = 0;
  virtual void emit_watermark_status(bool idle) = 0;
};

template <class T>
class Output : public OutputBase {
 public:
  virtual void collect(const T& value, EventTime ts) = 0;
};

/// Who an operator instance is.
struct OperatorInfo {
  std::string job_name;
  std::string job_id;
  std::string operator_name;
  std::string uid;
  int32_t subtask = 0;
  int32_t parallelism = 1;
  int32_t max_parallelism = 128;
  int32_t attempt = 0;
};

/// Per-operator counters, written by the task thread and read by metrics
/// export (relaxed atomics: exact totals, no ordering needed).
struct OperatorMetrics {
  std::atomic<uint64_t> late_records_dropped{0};
  std::atomic<uint64_t> dead_letters{0};
};

/// What the runtime gives an operator instance. Implemented by the task
/// (and by the operator test harness).
class OperatorContext {
 public:
  virtual ~OperatorContext() = default;
  virtual const OperatorInfo& info() const = 0;
  virtual const Configuration& job_config() const = 0;
  virtual ProcessingTimeService& processing_time() = 0;
  /// Posting work to the task thread from other threads, yielding to the
  /// mailbox, suspending input at capacity (see mailbox_executor.h).
  virtual MailboxExecutor& mailbox() = 0;
  /// The operator's keyed state; null unless the operator is keyed.
  virtual state::KeyedStateBackend* keyed_backend() = 0;
  /// Sends a bad record to the job's dead-letter output; job, operator and
  /// time are filled in here.
  virtual void dead_letter(DeadLetter dl) = 0;
  /// Fails the task (it stops after the current record and the job restarts
  /// from its last checkpoint). The first failure wins.
  virtual void fail(Status st) = 0;
  /// The output of side-output `tag`, or null if nothing consumes it.
  virtual OutputBase* side_output(std::string_view tag) = 0;
  virtual OperatorMetrics& metrics() = 0;
};

/// The asynchronous part of an operator's snapshot (see
/// StreamOperator::snapshot_state_async): runs once, on a snapshot thread,
/// while the task goes on, and returns the operator-state blob of the
/// checkpoint. It owns what it needs (what the synchronous part captured:
/// buffers, duplicated file descriptors) and never touches the operator,
/// which may be processing records or already gone. An error declines the
/// checkpoint: the task does not acknowledge it, so nothing it covers is
/// committed. A part that is destroyed without having run (a part before it
/// failed) must release what it holds.
using AsyncStatePart = std::function<Result<std::string>()>;

/// What the synchronous part of an operator's snapshot returns: the
/// operator-state blob (`state`), or, when `async` is set, the work that
/// makes the checkpoint's blob off the task thread (its result replaces
/// `state`). Value type.
struct OperatorStateSnapshot {
  std::string state;
  AsyncStatePart async;
};

/// Runs a snapshot's asynchronous part at once, on the calling thread: the
/// blob of `snap` (for callers that want snapshot_state's result).
inline Result<std::string> complete_inline(Result<OperatorStateSnapshot> snap) {
  if (!snap.is_ok()) return snap.status();
  if (!snap->async) return std::move(snap->state);
  return snap->async();
}

/// The operator state of one operator at restore time: the blobs that every
/// subtask of the previous run returned from snapshot_state, in subtask
/// order. Rescaled jobs see all of them and pick what is theirs.
struct OperatorRestore {
  bool restored = false;
  int32_t old_parallelism = 0;
  std::vector<std::string> states;
};

class StreamOperator {
 public:
  virtual ~StreamOperator() = default;

  /// Called by the runtime before anything else.
  void setup(OperatorContext* ctx, std::vector<OutputBase*> outputs) {
    ctx_ = ctx;
    outputs_ = std::move(outputs);
  }

  /// Always called once before open(); `restore.restored` is false on a
  /// fresh start. Keyed state is restored by the runtime into
  /// keyed_backend() before this call.
  virtual Status initialize_state(const OperatorRestore& restore) { return Status::ok(); }
  virtual Status open() { return Status::ok(); }
  /// Event time advanced to `wm` on this operator's input. The default
  /// forwards it to every output.
  virtual void process_watermark(EventTime wm) { forward_watermark(wm); }
  /// Watermark of input `index` (the minimum over its channels, from the
  /// task's watermark valve). One-input operators take it as their
  /// watermark; operators with several inputs combine them (TwoInputOperator).
  virtual void process_watermark_input(int index, EventTime wm) { process_watermark(wm); }
  /// This operator's input became idle (or active again). The default
  /// forwards it to every output.
  virtual void process_watermark_status(bool idle) {
    for (auto* o : outputs_) o->emit_watermark_status(idle);
  }
  /// Input `index` became idle or active again.
  virtual void process_watermark_status_input(int index, bool idle) {
    process_watermark_status(idle);
  }
  /// All input has ended (after the final watermark): emit what is pending.
  virtual Status finish() { return Status::ok(); }
  /// Synchronous part of a checkpoint: returns this subtask's operator
  /// state (e.g. source positions, pending sink transactions); empty if none.
  virtual Result<std::string> snapshot_state(CheckpointId id) { return std::string(); }
  /// What the task calls at the barrier. Operators whose snapshot has slow
  /// work (fsync, serialization, upload) override this: capture here (swap
  /// a buffer, take the file handles) and return the rest as `async`; the
  /// task forwards the barrier at once and acknowledges the checkpoint only
  /// after the asynchronous part succeeded. Default: snapshot_state().
  virtual Result<OperatorStateSnapshot> snapshot_state_async(CheckpointId id) {
    auto r = snapshot_state(id);
    if (!r.is_ok()) return r.status();
    return OperatorStateSnapshot{std::move(*r), {}};
  }
  /// Checkpoint `id` is complete everywhere: commit what it covered.
  virtual Status notify_checkpoint_complete(CheckpointId id) { return Status::ok(); }
  virtual void notify_checkpoint_aborted(CheckpointId id) {}
  /// True while commit work started by notify_checkpoint_complete still
  /// runs (asynchronously, or retried on timers). The task reports the
  /// checkpoint committed (what stop-with-savepoint waits for) and ends
  /// after its final checkpoint only once this is false. Default: false.
  virtual bool commit_in_progress() const { return false; }
  virtual void close() {}

  /// Where records of input `index` go: an ElementSink<T>* as void*.
  virtual void* element_sink(int index) { return nullptr; }

 protected:
  OperatorContext& context() { return *ctx_; }
  const std::vector<OutputBase*>& outputs() const { return outputs_; }
  void forward_watermark(EventTime wm) {
    for (auto* o : outputs_) o->emit_watermark(wm);
  }

 private:
  OperatorContext* ctx_ = nullptr;
  std::vector<OutputBase*> outputs_;  // main output first, then side outputs
};

/// Receives records of type T.
template <class T>
class ElementSink {
 public:
  virtual ~ElementSink() = default;
  virtual void process_element(const T& value, EventTime ts) = 0;
};

template <class IN>
class OneInputOperator : public StreamOperator, public ElementSink<IN> {
 public:
  void* element_sink(int index) override {
    return index == 0 ? static_cast<ElementSink<IN>*>(this) : nullptr;
  }
};

}  // namespace sluice::runtime
